//! A seccomp profile written from a recorded run, in the JSON form that
//! `docker run --security-opt seccomp=FILE` and the OCI runtime spec's
//! `linux.seccomp` take: the calls the program made are allowed, plus the few
//! a container runtime makes between installing the filter and the program's
//! exec ([`RUNTIME_CALLS`]); everything else fails with EPERM.
//!
//! The profile is data only: the same names for every ABI listed (that is how
//! both formats work; the runtime resolves each name per ABI), sorted, so the
//! bytes are a function of the set of calls.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::policy::NAMESPACE_FLAGS;
use crate::syscalls::Abi;

/// Calls a container runtime needs between installing the filter and the
/// program's first instruction, with why. runc (Docker's runtime) installs the
/// filter *before* it drops to the image's user when no-new-privileges is off
/// (Docker's default), so its last steps run under the profile too. Measured with
/// runc 1.1 (Debian 12's): a profile without any one of the first group does not
/// start a static `true`; the second group is what runc's Go runtime may call at any
/// moment (a goroutine preempted, a signal, the collector) and newer runc releases'
/// path lookup.
pub const RUNTIME_CALLS: &[(&str, &str)] = &[
    ("execve", "start the program"),
    ("capget", "drop to the container's capabilities"),
    ("capset", "drop to the container's capabilities"),
    (
        "prctl",
        "drop the bounding set, keep capabilities across setuid",
    ),
    ("setgroups", "switch to the image's user and groups"),
    ("setgid", "switch to the image's user and groups"),
    ("setuid", "switch to the image's user and groups"),
    ("chdir", "enter the working directory"),
    (
        "getcwd",
        "check that the working directory is inside the container",
    ),
    (
        "fstatfs",
        "check that /proc is procfs before closing inherited descriptors",
    ),
    (
        "openat",
        "list /proc/self/fd to close inherited descriptors; read /proc/self/status",
    ),
    (
        "getdents64",
        "list /proc/self/fd to close inherited descriptors",
    ),
    ("close", "close inherited descriptors"),
    (
        "fstat",
        "check the standard descriptors when switching user",
    ),
    (
        "newfstatat",
        "check /dev/null when switching user; find the entrypoint on PATH",
    ),
    (
        "read",
        "read /proc/self/status; wait for the engine's go-ahead",
    ),
    ("write", "tell the engine the container started"),
    ("getppid", "check that the engine is still there"),
    ("futex", "wake the runtime's other threads"),
    ("exit_group", "end the process"),
    ("faccessat", "find the entrypoint on PATH (newer runc)"),
    ("faccessat2", "find the entrypoint on PATH (newer runc)"),
    ("nanosleep", "the runtime's Go threads, until the exec"),
    ("sched_yield", "the runtime's Go threads, until the exec"),
    ("epoll_pwait", "the runtime's Go threads, until the exec"),
    ("getpid", "the runtime's Go threads: preemption signals"),
    ("gettid", "the runtime's Go threads: preemption signals"),
    ("tgkill", "the runtime's Go threads: preemption signals"),
    (
        "rt_sigreturn",
        "the runtime's Go threads: return from a signal handler",
    ),
    ("rt_sigprocmask", "the runtime's Go threads: signal masks"),
    ("mmap", "the runtime's Go threads: memory"),
    ("munmap", "the runtime's Go threads: memory"),
    ("madvise", "the runtime's Go threads: memory"),
    ("exit", "the runtime's Go threads end"),
];

/// A Docker/OCI seccomp profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeccompProfile {
    /// What a call no rule names gets: `SCMP_ACT_ERRNO`.
    pub default_action: &'static str,
    /// The errno of the default action: EPERM.
    pub default_errno_ret: u32,
    /// The ABIs the filter covers (`SCMP_ARCH_X86_64`, and `SCMP_ARCH_X86` when the
    /// program made i386 calls); any other ABI is refused by the runtime.
    pub architectures: Vec<&'static str>,
    /// The rules, in order.
    pub syscalls: Vec<SyscallRule>,
}

/// One rule: these calls get this action (when their arguments match).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyscallRule {
    /// Call names, sorted.
    pub names: Vec<String>,
    /// `SCMP_ACT_ALLOW` or `SCMP_ACT_ERRNO`.
    pub action: &'static str,
    /// The errno of an `SCMP_ACT_ERRNO` rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    /// Conditions on the arguments, all of which must hold.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<ArgCondition>,
}

/// A condition on one argument.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArgCondition {
    /// Which argument (0-5).
    pub index: u32,
    /// The operand (the mask, for `SCMP_CMP_MASKED_EQ`).
    pub value: u64,
    /// The second operand (what the masked argument must equal).
    pub value_two: u64,
    /// The comparison.
    pub op: &'static str,
}

/// What [`SeccompProfile::from_calls`] made of a run.
#[derive(Clone, Debug)]
pub struct ProfileSummary {
    /// The profile.
    pub profile: SeccompProfile,
    /// Calls the program made (by name, all ABIs).
    pub program_calls: usize,
    /// Calls allowed only for the runtime ([`RUNTIME_CALLS`] the program did not make).
    pub runtime_only: usize,
    /// Numbers no name is known for (ABI, number): they stay refused.
    pub unnamed: Vec<(Abi, u32)>,
}

/// The name of call `nr` in `abi`.
pub fn syscall_name(abi: Abi, nr: u32) -> Option<&'static str> {
    match abi {
        Abi::X86_64 => syscalls::x86_64::Sysno::new(nr as usize).map(|s| s.name()),
        Abi::I386 => syscalls::x86::Sysno::new(nr as usize).map(|s| s.name()),
    }
}

impl SeccompProfile {
    /// The profile allowing `calls` (what a recorded run made) and [`RUNTIME_CALLS`].
    ///
    /// `clone` is allowed only without namespace flags, and `clone3` answers ENOSYS
    /// (its flags are out of a filter's reach; C libraries then fall back to `clone`):
    /// both as in Docker's default profile and in whittle's sandbox, where the run
    /// was recorded.
    pub fn from_calls(calls: &BTreeSet<(Abi, u32)>) -> ProfileSummary {
        let mut program = BTreeSet::new();
        let mut unnamed = Vec::new();
        for (abi, nr) in calls {
            match syscall_name(*abi, *nr) {
                Some(name) => {
                    program.insert(name);
                }
                None => unnamed.push((*abi, *nr)),
            }
        }
        let mut names: BTreeSet<&str> = program.clone();
        let mut runtime_only = 0;
        for (name, _) in RUNTIME_CALLS {
            if names.insert(name) {
                runtime_only += 1;
            }
        }
        let clone_used = names.remove("clone");
        names.remove("clone3");
        let mut architectures = vec!["SCMP_ARCH_X86_64"];
        if calls.iter().any(|(abi, _)| *abi == Abi::I386) {
            architectures.push("SCMP_ARCH_X86");
        }
        let mut syscalls = vec![SyscallRule {
            names: names.iter().map(|n| n.to_string()).collect(),
            action: "SCMP_ACT_ALLOW",
            errno_ret: None,
            args: Vec::new(),
        }];
        if clone_used {
            syscalls.push(SyscallRule {
                names: vec!["clone".into()],
                action: "SCMP_ACT_ALLOW",
                errno_ret: None,
                args: vec![ArgCondition {
                    index: 0,
                    value: NAMESPACE_FLAGS,
                    value_two: 0,
                    op: "SCMP_CMP_MASKED_EQ",
                }],
            });
        }
        syscalls.push(SyscallRule {
            names: vec!["clone3".into()],
            action: "SCMP_ACT_ERRNO",
            errno_ret: Some(libc::ENOSYS as u32),
            args: Vec::new(),
        });
        ProfileSummary {
            program_calls: program.len(),
            runtime_only,
            unnamed,
            profile: SeccompProfile {
                default_action: "SCMP_ACT_ERRNO",
                default_errno_ret: libc::EPERM as u32,
                architectures,
                syscalls,
            },
        }
    }

    /// The profile as pretty JSON with a final newline.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Every call name the profile allows (with or without argument conditions).
    pub fn allowed(&self) -> BTreeSet<&str> {
        self.syscalls
            .iter()
            .filter(|r| r.action == "SCMP_ACT_ALLOW")
            .flat_map(|r| r.names.iter().map(String::as_str))
            .collect()
    }
}

/// What a seccomp profile (Docker's or the OCI runtime spec's JSON) allows, by call
/// name: enough to tell whether a recorded run would have run the same under it.
///
/// Argument conditions are not evaluated: a rule that names a call with conditions
/// counts as allowing it (whittle's sandbox refuses `clone` with namespace flags
/// whatever the profile says), and Docker's `includes`/`excludes` (by capability or
/// architecture) are taken as met.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileRules {
    /// Whether a call no rule names is allowed (`defaultAction` allows or only logs).
    default_allows: bool,
    /// The calls rules name, and whether the first such rule allows them.
    named: std::collections::BTreeMap<String, bool>,
    /// The ABIs listed (`architectures`, or `archMap`'s), empty when none are.
    architectures: Vec<String>,
}

/// Why a profile could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ProfileError(String);

fn allowing(action: &str) -> Result<bool, ProfileError> {
    match action {
        "SCMP_ACT_ALLOW" | "SCMP_ACT_LOG" => Ok(true),
        "SCMP_ACT_ERRNO"
        | "SCMP_ACT_KILL"
        | "SCMP_ACT_KILL_PROCESS"
        | "SCMP_ACT_KILL_THREAD"
        | "SCMP_ACT_TRAP"
        | "SCMP_ACT_TRACE"
        | "SCMP_ACT_NOTIFY" => Ok(false),
        other => Err(ProfileError(format!("unknown seccomp action {other:?}"))),
    }
}

impl ProfileRules {
    /// Reads a profile.
    pub fn parse(bytes: &[u8]) -> Result<ProfileRules, ProfileError> {
        let v: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| ProfileError(format!("not JSON: {e}")))?;
        let default = v["defaultAction"]
            .as_str()
            .ok_or_else(|| ProfileError("it has no defaultAction".into()))?;
        let default_allows = allowing(default)?;
        let mut named = std::collections::BTreeMap::new();
        for (i, rule) in v["syscalls"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let action = rule["action"]
                .as_str()
                .ok_or_else(|| ProfileError(format!("syscalls[{i}] has no action")))?;
            let allows = allowing(action)?;
            // Docker's older profiles name one call per rule in `name`.
            let names = match (&rule["names"], &rule["name"]) {
                (serde_json::Value::Array(list), _) => list.as_slice(),
                (_, one @ serde_json::Value::String(_)) => std::slice::from_ref(one),
                _ => return Err(ProfileError(format!("syscalls[{i}] has no names"))),
            };
            for name in names {
                let name = name.as_str().ok_or_else(|| {
                    ProfileError(format!("syscalls[{i}] has a name that is not a string"))
                })?;
                named.entry(name.to_string()).or_insert(allows);
            }
        }
        let mut architectures: Vec<String> = v["architectures"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|a| a.as_str().map(String::from))
            .collect();
        for entry in v["archMap"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            architectures.extend(entry["architecture"].as_str().map(String::from));
            for sub in entry["subArchitectures"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                architectures.extend(sub.as_str().map(String::from));
            }
        }
        Ok(ProfileRules {
            default_allows,
            named,
            architectures,
        })
    }

    /// Whether the profile lets the program make call `nr` of `abi`.
    pub fn allows(&self, abi: Abi, nr: u32) -> bool {
        let arch = match abi {
            Abi::X86_64 => "SCMP_ARCH_X86_64",
            Abi::I386 => "SCMP_ARCH_X86",
        };
        // With no architectures listed, the runtime uses the native one only.
        let covered = if self.architectures.is_empty() {
            abi == Abi::X86_64
        } else {
            self.architectures.iter().any(|a| a == arch)
        };
        if !covered {
            return false;
        }
        match syscall_name(abi, nr) {
            Some(name) => self.named.get(name).copied().unwrap_or(self.default_allows),
            None => self.default_allows,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calls(list: &[(Abi, u32)]) -> BTreeSet<(Abi, u32)> {
        list.iter().copied().collect()
    }

    #[test]
    fn allows_the_calls_made_and_the_runtimes_and_refuses_the_rest() {
        // x86-64: read 0, write 1, sysinfo 99, clone 56, clone3 435.
        let s = SeccompProfile::from_calls(&calls(&[
            (Abi::X86_64, 0),
            (Abi::X86_64, 1),
            (Abi::X86_64, 99),
            (Abi::X86_64, 56),
            (Abi::X86_64, 435),
        ]));
        let p = &s.profile;
        assert_eq!(p.default_action, "SCMP_ACT_ERRNO");
        assert_eq!(p.default_errno_ret, 1);
        assert_eq!(p.architectures, vec!["SCMP_ARCH_X86_64"]);
        let allowed = p.allowed();
        for name in ["read", "write", "sysinfo", "clone", "execve", "capset"] {
            assert!(allowed.contains(name), "{name}");
        }
        for name in ["mount", "ptrace", "socket", "clone3", "uname"] {
            assert!(!allowed.contains(name), "{name}");
        }
        let clone = p.syscalls.iter().find(|r| r.names == ["clone"]).unwrap();
        assert_eq!(clone.args[0].value, 0x7E02_0000);
        let clone3 = p.syscalls.iter().find(|r| r.names == ["clone3"]).unwrap();
        assert_eq!(clone3.errno_ret, Some(38));
        assert_eq!(s.program_calls, 5);
        assert!(s.unnamed.is_empty());
        // Names are sorted and unique: the bytes depend on the set only.
        let names = &p.syscalls[0].names;
        assert!(names.windows(2).all(|w| w[0] < w[1]), "{names:?}");
    }

    #[test]
    fn i386_calls_add_the_abi_and_their_names() {
        // i386 socketcall is 102; x86-64 has no such call.
        let s = SeccompProfile::from_calls(&calls(&[(Abi::X86_64, 0), (Abi::I386, 102)]));
        assert_eq!(
            s.profile.architectures,
            vec!["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]
        );
        assert!(s.profile.allowed().contains("socketcall"));
        let unknown = SeccompProfile::from_calls(&calls(&[(Abi::X86_64, 100_000)]));
        assert_eq!(unknown.unnamed, vec![(Abi::X86_64, 100_000)]);
    }

    #[test]
    fn rules_read_back_from_a_written_profile_and_from_dockers_shapes() {
        let made = SeccompProfile::from_calls(&calls(&[(Abi::X86_64, 0), (Abi::X86_64, 56)]));
        let rules = ProfileRules::parse(&made.profile.to_json()).unwrap();
        assert!(rules.allows(Abi::X86_64, 0)); // read
        assert!(rules.allows(Abi::X86_64, 56)); // clone, with its condition
        assert!(!rules.allows(Abi::X86_64, 99)); // sysinfo
        assert!(!rules.allows(Abi::X86_64, 435)); // clone3: ENOSYS
        assert!(!rules.allows(Abi::I386, 3)); // no i386 in the profile
                                              // Default allow, one refusal, archMap and a single `name`.
        let docker = br#"{"defaultAction":"SCMP_ACT_ALLOW",
            "archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86"]}],
            "syscalls":[{"name":"sysinfo","action":"SCMP_ACT_ERRNO"}]}"#;
        let rules = ProfileRules::parse(docker).unwrap();
        assert!(rules.allows(Abi::I386, 3));
        assert!(!rules.allows(Abi::X86_64, 99));
        for bad in [
            &b"{"[..],
            br#"{"syscalls":[]}"#,
            br#"{"defaultAction":"SCMP_ACT_MAYBE"}"#,
            br#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"action":"SCMP_ACT_ALLOW"}]}"#,
        ] {
            assert!(ProfileRules::parse(bad).is_err());
        }
    }

    #[test]
    fn the_same_calls_give_the_same_bytes() {
        let a = SeccompProfile::from_calls(&calls(&[(Abi::X86_64, 56), (Abi::X86_64, 0)]));
        let b = SeccompProfile::from_calls(&calls(&[(Abi::X86_64, 0), (Abi::X86_64, 56)]));
        assert_eq!(a.profile.to_json(), b.profile.to_json());
        let text = String::from_utf8(a.profile.to_json()).unwrap();
        assert!(
            text.contains("\"defaultAction\": \"SCMP_ACT_ERRNO\""),
            "{text}"
        );
        assert!(text.contains("\"errnoRet\": 38"), "{text}");
        assert!(text.contains("\"valueTwo\": 0"), "{text}");
    }
}
