//! The sandbox's policy as one value: which ids the program gets, what it
//! sees mounted, what is masked, which capabilities and system calls it keeps,
//! and its limits — the shape of an OCI runtime config, so that the whole
//! confinement can be read (and tested) in one place. [`crate::sandbox`] is
//! the mechanism that applies it.
//!
//! [`Policy::docker_default`] is `docker run` with no flags, made stricter
//! where tracing allows: every run is in a user namespace, `/` and `/dev` are
//! `nodev`, and the process count is limited.

use crate::idmap::IdMapping;

/// One Linux capability, by number (`capability.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Capability(pub u8);

/// Capability names in number order (`CAP_` left off).
const CAP_NAMES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// The highest capability number this table knows.
pub const CAP_LAST: u8 = (CAP_NAMES.len() - 1) as u8;

impl Capability {
    /// Parses `NET_ADMIN`, `CAP_NET_ADMIN` or `net_admin`.
    pub fn parse(name: &str) -> Option<Capability> {
        let upper = name.trim().to_ascii_uppercase();
        let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
        CAP_NAMES
            .iter()
            .position(|n| *n == bare)
            .map(|i| Capability(i as u8))
    }

    /// `CAP_NAME`.
    pub fn name(self) -> String {
        CAP_NAMES
            .get(self.0 as usize)
            .map_or_else(|| format!("CAP_{}", self.0), |n| format!("CAP_{n}"))
    }

    /// This capability's bit in a `CapEff`-style mask.
    pub fn bit(self) -> u64 {
        1u64 << self.0
    }
}

/// Docker's default capability set (moby `oci/caps/defaults.go`): 14 capabilities,
/// `CapEff` `00000000a80425fb`.
pub const DOCKER_DEFAULT_CAPS: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// The capabilities a program keeps: the bounding set, and (for a root program)
/// its effective and permitted sets. Inheritable and ambient sets are empty, as
/// in Docker ≥ 23, so a non-root program has none unless it execs a program
/// with file capabilities.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// The kept set as a mask of bits.
    pub mask: u64,
}

impl Capabilities {
    /// Docker's default set.
    pub fn docker_default() -> Capabilities {
        let mask = DOCKER_DEFAULT_CAPS
            .iter()
            .filter_map(|n| Capability::parse(n))
            .fold(0, |m, c| m | c.bit());
        Capabilities { mask }
    }

    /// Adds and drops capabilities by name (`ALL` allowed in both), drops first
    /// as Docker does. Unknown names are an error naming them.
    pub fn adjust(&mut self, add: &[String], drop: &[String]) -> Result<(), String> {
        let all = (1u64 << (CAP_LAST + 1)) - 1;
        let parse = |n: &String| -> Result<u64, String> {
            if n.eq_ignore_ascii_case("all") {
                return Ok(all);
            }
            Capability::parse(n)
                .map(Capability::bit)
                .ok_or_else(|| format!("{n:?} is not a Linux capability"))
        };
        for n in drop {
            self.mask &= !parse(n)?;
        }
        for n in add {
            self.mask |= parse(n)?;
        }
        Ok(())
    }

    /// Whether `cap` is kept.
    pub fn has(&self, cap: Capability) -> bool {
        self.mask & cap.bit() != 0
    }

    /// The kept capabilities' names.
    pub fn names(&self) -> Vec<String> {
        (0..=CAP_LAST)
            .map(Capability)
            .filter(|c| self.has(*c))
            .map(Capability::name)
            .collect()
    }
}

/// What a mount entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MountKind {
    /// A new filesystem of this type (`proc`, `tmpfs`, `devpts`, `mqueue`, `sysfs`).
    Fs {
        /// Filesystem type.
        fstype: &'static str,
        /// Mount data (`mode=755,size=65536k`).
        data: &'static str,
    },
    /// A bind mount of a host file (a device node) onto an empty file made for it.
    BindHostFile {
        /// The host path.
        source: &'static str,
    },
}

/// One mount in the run root, in the order made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// Path inside the container.
    pub destination: &'static str,
    /// What is mounted.
    pub kind: MountKind,
    /// `MS_*` flags.
    pub flags: u64,
    /// Whether the run goes on without it (with a note) when the kernel refuses it.
    pub optional: bool,
}

/// A symlink made in `/dev`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DevLink {
    /// Inside `/dev`.
    pub name: &'static str,
    /// Its target.
    pub target: &'static str,
}

/// The C type of an `RLIMIT_*` constant: glibc's is unsigned, musl's an `int`.
#[cfg(target_env = "musl")]
pub type RlimitResource = libc::c_int;
/// The C type of an `RLIMIT_*` constant: glibc's is unsigned, musl's an `int`.
#[cfg(not(target_env = "musl"))]
pub type RlimitResource = libc::__rlimit_resource_t;

/// A resource limit (`RLIMIT_*`) set before the program starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rlimit {
    /// `libc::RLIMIT_*`.
    pub resource: RlimitResource,
    /// Soft limit.
    pub soft: u64,
    /// Hard limit.
    pub hard: u64,
}

/// How the system calls outside the traced set are handled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeccompPolicy {
    /// Calls refused with EPERM, by name (looked up for both the x86-64 and i386 ABIs).
    pub deny: Vec<&'static str>,
    /// `clone`/`unshare` flags refused with EPERM (new namespaces).
    pub deny_clone_flags: u64,
    /// `clone3` answers ENOSYS, so that C libraries fall back to `clone`, whose flags the filter can see.
    pub clone3_enosys: bool,
}

/// Calls Docker's default profile refuses (or allows only with a capability the
/// program does not have), refused here with EPERM on both ABIs.
pub const DENIED_SYSCALLS: &[&str] = &[
    // mounts, old and new API
    "mount",
    "umount",
    "umount2",
    "pivot_root",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    // namespaces
    "unshare",
    "setns",
    // kernel modules, kexec, reboot, swap
    "init_module",
    "finit_module",
    "delete_module",
    "create_module",
    "get_kernel_syms",
    "query_module",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "swapon",
    "swapoff",
    // file handles (reach files outside the root), bpf, perf, keys, userfaultfd
    "open_by_handle_at",
    "bpf",
    "perf_event_open",
    "add_key",
    "request_key",
    "keyctl",
    "userfaultfd",
    "fanotify_init",
    "lookup_dcookie",
    // accounting, quotas, raw I/O, clocks, the kernel log
    "acct",
    "quotactl",
    "quotactl_fd",
    "iopl",
    "ioperm",
    "settimeofday",
    "stime",
    "clock_settime",
    "clock_settime64",
    "clock_adjtime",
    "clock_adjtime64",
    "adjtimex",
    "syslog",
    // obsolete or dangerous leftovers
    "nfsservctl",
    "uselib",
    "_sysctl",
    "vhangup",
    "vm86",
    "vm86old",
];

/// `CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET` (Docker's mask;
/// `CLONE_NEWTIME` shares its bit with the exit signal in `clone`'s flags).
pub const NAMESPACE_FLAGS: u64 = 0x7E02_0000;

/// Files of `/proc` hidden behind an empty read-only file (or an empty
/// read-only tmpfs for directories), as Docker masks them.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Parts of `/proc` that stay readable but not writable.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The content of an engine-provided file for a container named `hostname`
/// (`host_resolv` is the host's `/etc/resolv.conf`).
pub fn engine_file(name: &str, hostname: &str, host_resolv: &str) -> String {
    match name {
        "/etc/hosts" => format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
             fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
             ff02::2\tip6-allrouters\n127.0.0.1\t{hostname}\n::1\t{hostname}\n"
        ),
        "/etc/hostname" => format!("{hostname}\n"),
        _ => resolv_conf(host_resolv),
    }
}

/// The host's resolver configuration without loopback name servers (which mean
/// nothing in another network namespace); Google's when none is left, as Docker does.
fn resolv_conf(host: &str) -> String {
    let mut out = String::new();
    let mut servers = 0;
    for line in host.lines() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("nameserver"), Some(addr)) => {
                if addr.starts_with("127.") || addr == "::1" {
                    continue;
                }
                servers += 1;
                out.push_str(&format!("nameserver {addr}\n"));
            }
            (Some("search" | "domain" | "options"), Some(_)) => {
                out.push_str(line.trim());
                out.push('\n');
            }
            _ => {}
        }
    }
    if servers == 0 {
        out.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
    out
}

/// Half the machine's memory: enough for a normal program, and the host keeps the rest.
pub fn default_memory_limit() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024 / 2)
}

/// The default limit on processes (and threads) of one run.
pub const DEFAULT_PIDS_LIMIT: u64 = 4096;

/// The whole confinement of one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The user namespace's id maps.
    pub ids: IdMapping,
    /// Capabilities kept.
    pub capabilities: Capabilities,
    /// System calls refused.
    pub seccomp: SeccompPolicy,
    /// Mounts, in order, after the root (bound `nodev`) and before `pivot_root`.
    pub mounts: Vec<Mount>,
    /// Symlinks in `/dev`.
    pub dev_links: Vec<DevLink>,
    /// Masked paths (see [`MASKED_PATHS`]).
    pub masked_paths: Vec<&'static str>,
    /// Read-only paths (see [`READONLY_PATHS`]).
    pub readonly_paths: Vec<&'static str>,
    /// Files the engine provides over the image's, bind-mounted (never written into
    /// the image): `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`, as Docker does.
    pub engine_files: Vec<&'static str>,
    /// Resource limits.
    pub rlimits: Vec<Rlimit>,
    /// At most this many processes and threads; reaching it ends the run with an error.
    pub pids_limit: Option<u64>,
    /// At most this many bytes of memory: a memory cgroup where whittle can make one
    /// (reaching it ends the run with an error), else `RLIMIT_DATA` (allocations fail).
    pub memory_limit: Option<u64>,
    /// `PR_SET_NO_NEW_PRIVS` (off as in Docker, so set-uid programs of the image work).
    pub no_new_privileges: bool,
}

const MS_NOSUID: u64 = libc::MS_NOSUID;
const MS_NODEV: u64 = libc::MS_NODEV;
const MS_NOEXEC: u64 = libc::MS_NOEXEC;
const MS_RDONLY: u64 = libc::MS_RDONLY;
const MS_STRICTATIME: u64 = libc::MS_STRICTATIME;

/// The standard device nodes of a container's `/dev`, bound from the host's
/// (a user namespace may not make device nodes, and the tmpfs under them is `nodev`).
pub const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

impl Policy {
    /// `docker run` with no flags, in a user namespace with these id maps.
    pub fn docker_default(ids: IdMapping) -> Policy {
        let fs = |destination, fstype, data, flags, optional| Mount {
            destination,
            kind: MountKind::Fs { fstype, data },
            flags,
            optional,
        };
        let mut mounts = vec![
            fs("/proc", "proc", "", MS_NOSUID | MS_NODEV | MS_NOEXEC, false),
            fs(
                "/dev",
                "tmpfs",
                "mode=755,size=65536k",
                MS_NOSUID | MS_NODEV | MS_STRICTATIME,
                false,
            ),
        ];
        for (name, path) in DEVICES.iter().zip([
            "/dev/null",
            "/dev/zero",
            "/dev/full",
            "/dev/random",
            "/dev/urandom",
            "/dev/tty",
        ]) {
            mounts.push(Mount {
                destination: dev_path(name),
                kind: MountKind::BindHostFile { source: path },
                flags: MS_NOSUID | MS_NOEXEC,
                optional: *name == "tty",
            });
        }
        mounts.extend([
            fs(
                "/dev/pts",
                "devpts",
                "newinstance,ptmxmode=0666,mode=0620",
                MS_NOSUID | MS_NOEXEC,
                true,
            ),
            fs(
                "/dev/shm",
                "tmpfs",
                "mode=1777,size=65536k",
                MS_NOSUID | MS_NODEV | MS_NOEXEC,
                false,
            ),
            fs(
                "/dev/mqueue",
                "mqueue",
                "",
                MS_NOSUID | MS_NODEV | MS_NOEXEC,
                true,
            ),
            fs(
                "/sys",
                "sysfs",
                "",
                MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY,
                true,
            ),
        ]);
        Policy {
            ids,
            capabilities: Capabilities::docker_default(),
            seccomp: SeccompPolicy {
                deny: DENIED_SYSCALLS.to_vec(),
                deny_clone_flags: NAMESPACE_FLAGS,
                clone3_enosys: true,
            },
            mounts,
            dev_links: vec![
                DevLink {
                    name: "fd",
                    target: "/proc/self/fd",
                },
                DevLink {
                    name: "stdin",
                    target: "/proc/self/fd/0",
                },
                DevLink {
                    name: "stdout",
                    target: "/proc/self/fd/1",
                },
                DevLink {
                    name: "stderr",
                    target: "/proc/self/fd/2",
                },
                DevLink {
                    name: "ptmx",
                    target: "pts/ptmx",
                },
            ],
            masked_paths: MASKED_PATHS.to_vec(),
            readonly_paths: READONLY_PATHS.to_vec(),
            engine_files: vec!["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"],
            rlimits: vec![Rlimit {
                resource: libc::RLIMIT_NOFILE,
                soft: 1_048_576,
                hard: 1_048_576,
            }],
            pids_limit: Some(DEFAULT_PIDS_LIMIT),
            memory_limit: default_memory_limit(),
            no_new_privileges: false,
        }
    }
}

fn dev_path(name: &str) -> &'static str {
    match name {
        "null" => "/dev/null",
        "zero" => "/dev/zero",
        "full" => "/dev/full",
        "random" => "/dev/random",
        "urandom" => "/dev/urandom",
        _ => "/dev/tty",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_capabilities_are_dockers_fourteen() {
        let caps = Capabilities::docker_default();
        assert_eq!(caps.mask, 0xa80425fb, "{:?}", caps.names());
        assert_eq!(caps.names().len(), 14);
        assert!(!caps.has(Capability::parse("SYS_ADMIN").unwrap()));
    }

    #[test]
    fn engine_files_are_dockers() {
        let hosts = engine_file("/etc/hosts", "box", "");
        assert!(hosts.contains("127.0.0.1\tlocalhost\n") && hosts.contains("::1\tbox\n"));
        assert_eq!(engine_file("/etc/hostname", "box", ""), "box\n");
        let resolv = engine_file(
            "/etc/resolv.conf",
            "box",
            "# x\nnameserver 127.0.0.53\nsearch example.org\nnameserver 10.0.0.2\n",
        );
        assert_eq!(resolv, "search example.org\nnameserver 10.0.0.2\n");
        assert!(engine_file("/etc/resolv.conf", "b", "nameserver 127.0.0.1\n").contains("8.8.8.8"));
    }

    #[test]
    fn cap_add_and_drop_by_name() {
        let mut caps = Capabilities::docker_default();
        caps.adjust(&["NET_ADMIN".into()], &["cap_chown".into()])
            .unwrap();
        assert!(caps.has(Capability::parse("CAP_NET_ADMIN").unwrap()));
        assert!(!caps.has(Capability::parse("CHOWN").unwrap()));
        caps.adjust(&[], &["ALL".into()]).unwrap();
        assert_eq!(caps.mask, 0);
        let err = caps.adjust(&["SYS_WIZARD".into()], &[]).unwrap_err();
        assert!(err.contains("SYS_WIZARD"), "{err}");
    }

    #[test]
    fn the_default_policy_masks_and_refuses_what_docker_does() {
        let p = Policy::docker_default(IdMapping::single(0, 0, 1000, 1000));
        for path in [
            "/proc/kcore",
            "/proc/keys",
            "/proc/timer_list",
            "/proc/sched_debug",
        ] {
            assert!(p.masked_paths.contains(&path), "{path}");
        }
        for path in ["/proc/sys", "/proc/sysrq-trigger"] {
            assert!(p.readonly_paths.contains(&path), "{path}");
        }
        for call in [
            "mount",
            "umount2",
            "unshare",
            "setns",
            "keyctl",
            "bpf",
            "kexec_load",
        ] {
            assert!(p.seccomp.deny.contains(&call), "{call}");
        }
        let dev = p.mounts.iter().find(|m| m.destination == "/dev").unwrap();
        assert!(dev.flags & libc::MS_NODEV != 0, "/dev is nodev");
        let sys = p.mounts.iter().find(|m| m.destination == "/sys").unwrap();
        assert!(sys.flags & libc::MS_RDONLY != 0, "/sys is read-only");
        assert!(!p.no_new_privileges);
        assert!(p.pids_limit.is_some());
    }
}
