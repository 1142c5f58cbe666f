//! The file syscalls the tracer stops on, and where each keeps its path arguments.
//!
//! The x86-64 and i386 ABIs are described (a 64-bit program can make i386 calls
//! with `int 0x80`); elsewhere tracing reports itself unsupported. The numbers
//! are checked against the kernel headers by the tests.

/// What a syscall does with its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    /// Opens, stats or reads the path (a lookup).
    Lookup,
    /// Runs the program at the path.
    Exec,
    /// Makes the path the working directory.
    Chdir,
    /// Creates, removes, renames or changes the path (reported; kept only if the image has it).
    Modify,
}

/// One path argument: the register index of its directory fd (`None` for the
/// working directory) and of the pointer to the path string.
#[derive(Clone, Copy, Debug)]
pub struct PathArg {
    /// Argument index of the dirfd, for the `*at` calls.
    pub dirfd: Option<usize>,
    /// Argument index of the path pointer.
    pub path: usize,
}

/// A traced syscall.
#[derive(Clone, Copy, Debug)]
pub struct Syscall {
    /// Its name.
    pub name: &'static str,
    /// Its number in its ABI.
    pub nr: u32,
    /// What it does with its paths.
    pub access: Access,
    /// Its path arguments.
    pub paths: &'static [PathArg],
}

const fn p(path: usize) -> PathArg {
    PathArg { dirfd: None, path }
}
const fn at(dirfd: usize, path: usize) -> PathArg {
    PathArg {
        dirfd: Some(dirfd),
        path,
    }
}

macro_rules! table {
    ($doc:literal $table:ident: $($name:ident = $nr:expr => $access:ident [$($arg:expr),*];)*) => {
        #[doc = $doc]
        pub const $table: &[Syscall] = &[
            $(Syscall { name: stringify!($name), nr: $nr, access: Access::$access, paths: &[$($arg),*] },)*
        ];
    };
}

table! {
    "The traced syscalls of the x86-64 ABI." TRACED_X86_64:
    execve = 59 => Exec [p(0)];
    execveat = 322 => Exec [at(0, 1)];
    open = 2 => Lookup [p(0)];
    openat = 257 => Lookup [at(0, 1)];
    openat2 = 437 => Lookup [at(0, 1)];
    creat = 85 => Modify [p(0)];
    stat = 4 => Lookup [p(0)];
    lstat = 6 => Lookup [p(0)];
    newfstatat = 262 => Lookup [at(0, 1)];
    statx = 332 => Lookup [at(0, 1)];
    statfs = 137 => Lookup [p(0)];
    access = 21 => Lookup [p(0)];
    faccessat = 269 => Lookup [at(0, 1)];
    faccessat2 = 439 => Lookup [at(0, 1)];
    readlink = 89 => Lookup [p(0)];
    readlinkat = 267 => Lookup [at(0, 1)];
    getxattr = 191 => Lookup [p(0)];
    lgetxattr = 192 => Lookup [p(0)];
    inotify_add_watch = 254 => Lookup [p(1)];
    chdir = 80 => Chdir [p(0)];
    chroot = 161 => Chdir [p(0)];
    mkdir = 83 => Modify [p(0)];
    mkdirat = 258 => Modify [at(0, 1)];
    rmdir = 84 => Modify [p(0)];
    unlink = 87 => Modify [p(0)];
    unlinkat = 263 => Modify [at(0, 1)];
    rename = 82 => Modify [p(0), p(1)];
    renameat = 264 => Modify [at(0, 1), at(2, 3)];
    renameat2 = 316 => Modify [at(0, 1), at(2, 3)];
    link = 86 => Modify [p(0), p(1)];
    linkat = 265 => Modify [at(0, 1), at(2, 3)];
    symlink = 88 => Modify [p(1)];
    symlinkat = 266 => Modify [at(1, 2)];
    chmod = 90 => Modify [p(0)];
    fchmodat = 268 => Modify [at(0, 1)];
    chown = 92 => Modify [p(0)];
    lchown = 94 => Modify [p(0)];
    fchownat = 260 => Modify [at(0, 1)];
    truncate = 76 => Modify [p(0)];
    mknod = 133 => Modify [p(0)];
    mknodat = 259 => Modify [at(0, 1)];
    utimensat = 280 => Modify [at(0, 1)];
    utime = 132 => Modify [p(0)];
    utimes = 235 => Modify [p(0)];
    futimesat = 261 => Modify [at(0, 1)];
}

table! {
    "The traced syscalls of the i386 ABI (`int 0x80`, or a 32-bit program)." TRACED_I386:
    execve = 11 => Exec [p(0)];
    execveat = 358 => Exec [at(0, 1)];
    open = 5 => Lookup [p(0)];
    openat = 295 => Lookup [at(0, 1)];
    openat2 = 437 => Lookup [at(0, 1)];
    creat = 8 => Modify [p(0)];
    oldstat = 18 => Lookup [p(0)];
    oldlstat = 84 => Lookup [p(0)];
    stat = 106 => Lookup [p(0)];
    lstat = 107 => Lookup [p(0)];
    stat64 = 195 => Lookup [p(0)];
    lstat64 = 196 => Lookup [p(0)];
    fstatat64 = 300 => Lookup [at(0, 1)];
    statx = 383 => Lookup [at(0, 1)];
    statfs = 99 => Lookup [p(0)];
    statfs64 = 268 => Lookup [p(0)];
    access = 33 => Lookup [p(0)];
    faccessat = 307 => Lookup [at(0, 1)];
    faccessat2 = 439 => Lookup [at(0, 1)];
    readlink = 85 => Lookup [p(0)];
    readlinkat = 305 => Lookup [at(0, 1)];
    getxattr = 229 => Lookup [p(0)];
    lgetxattr = 230 => Lookup [p(0)];
    inotify_add_watch = 292 => Lookup [p(1)];
    chdir = 12 => Chdir [p(0)];
    chroot = 61 => Chdir [p(0)];
    mkdir = 39 => Modify [p(0)];
    mkdirat = 296 => Modify [at(0, 1)];
    rmdir = 40 => Modify [p(0)];
    unlink = 10 => Modify [p(0)];
    unlinkat = 301 => Modify [at(0, 1)];
    rename = 38 => Modify [p(0), p(1)];
    renameat = 302 => Modify [at(0, 1), at(2, 3)];
    renameat2 = 353 => Modify [at(0, 1), at(2, 3)];
    link = 9 => Modify [p(0), p(1)];
    linkat = 303 => Modify [at(0, 1), at(2, 3)];
    symlink = 83 => Modify [p(1)];
    symlinkat = 304 => Modify [at(1, 2)];
    chmod = 15 => Modify [p(0)];
    fchmodat = 306 => Modify [at(0, 1)];
    chown = 182 => Modify [p(0)];
    chown32 = 212 => Modify [p(0)];
    lchown = 16 => Modify [p(0)];
    lchown32 = 198 => Modify [p(0)];
    fchownat = 298 => Modify [at(0, 1)];
    truncate = 92 => Modify [p(0)];
    truncate64 = 193 => Modify [p(0)];
    mknod = 14 => Modify [p(0)];
    mknodat = 297 => Modify [at(0, 1)];
    utimensat = 320 => Modify [at(0, 1)];
    utime = 30 => Modify [p(0)];
    utimes = 271 => Modify [p(0)];
    futimesat = 299 => Modify [at(0, 1)];
}

/// Numbers of the calls the sandbox refuses or inspects, by name: (name, x86-64, i386).
/// `None` where the ABI has no such call.
pub const NUMBERS: &[(&str, Option<u32>, Option<u32>)] = &[
    ("mount", Some(165), Some(21)),
    ("umount", None, Some(22)),
    ("umount2", Some(166), Some(52)),
    ("pivot_root", Some(155), Some(217)),
    ("fsopen", Some(430), Some(430)),
    ("fsconfig", Some(431), Some(431)),
    ("fsmount", Some(432), Some(432)),
    ("fspick", Some(433), Some(433)),
    ("move_mount", Some(429), Some(429)),
    ("open_tree", Some(428), Some(428)),
    ("mount_setattr", Some(442), Some(442)),
    ("unshare", Some(272), Some(310)),
    ("setns", Some(308), Some(346)),
    ("init_module", Some(175), Some(128)),
    ("finit_module", Some(313), Some(350)),
    ("delete_module", Some(176), Some(129)),
    ("create_module", Some(174), Some(127)),
    ("get_kernel_syms", Some(177), Some(130)),
    ("query_module", Some(178), Some(167)),
    ("kexec_load", Some(246), Some(283)),
    ("kexec_file_load", Some(320), None),
    ("reboot", Some(169), Some(88)),
    ("swapon", Some(167), Some(87)),
    ("swapoff", Some(168), Some(115)),
    ("open_by_handle_at", Some(304), Some(342)),
    ("bpf", Some(321), Some(357)),
    ("perf_event_open", Some(298), Some(336)),
    ("add_key", Some(248), Some(286)),
    ("request_key", Some(249), Some(287)),
    ("keyctl", Some(250), Some(288)),
    ("userfaultfd", Some(323), Some(374)),
    ("fanotify_init", Some(300), Some(338)),
    ("lookup_dcookie", Some(212), Some(253)),
    ("acct", Some(163), Some(51)),
    ("quotactl", Some(179), Some(131)),
    ("quotactl_fd", Some(443), Some(443)),
    ("iopl", Some(172), Some(110)),
    ("ioperm", Some(173), Some(101)),
    ("settimeofday", Some(164), Some(79)),
    ("stime", None, Some(25)),
    ("clock_settime", Some(227), Some(264)),
    ("clock_settime64", None, Some(404)),
    ("clock_adjtime", Some(305), Some(343)),
    ("clock_adjtime64", None, Some(405)),
    ("adjtimex", Some(159), Some(124)),
    ("syslog", Some(103), Some(103)),
    ("nfsservctl", Some(180), Some(169)),
    ("uselib", Some(134), Some(86)),
    ("_sysctl", Some(156), Some(149)),
    ("vhangup", Some(153), Some(111)),
    ("vm86", None, Some(166)),
    ("vm86old", None, Some(113)),
    ("clone", Some(56), Some(120)),
    ("clone3", Some(435), Some(435)),
];

/// A system call ABI the filter tells apart (`seccomp_data.arch`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Abi {
    /// x86-64 (`AUDIT_ARCH_X86_64`).
    X86_64,
    /// i386: 32-bit programs and `int 0x80` (`AUDIT_ARCH_I386`).
    I386,
}

impl Abi {
    /// Both, in filter order.
    pub const ALL: [Abi; 2] = [Abi::X86_64, Abi::I386];

    /// Its `AUDIT_ARCH_*` value.
    pub fn audit_arch(self) -> u32 {
        match self {
            Abi::X86_64 => 62 | 0x8000_0000 | 0x4000_0000,
            Abi::I386 => 3 | 0x4000_0000,
        }
    }

    /// The ABI of an `AUDIT_ARCH_*` value.
    pub fn from_audit_arch(arch: u32) -> Option<Abi> {
        Abi::ALL.into_iter().find(|a| a.audit_arch() == arch)
    }

    /// Its traced calls.
    pub fn traced(self) -> &'static [Syscall] {
        match self {
            Abi::X86_64 => TRACED_X86_64,
            Abi::I386 => TRACED_I386,
        }
    }

    /// The number of the call `name` in this ABI.
    pub fn number(self, name: &str) -> Option<u32> {
        if let Some(s) = self.traced().iter().find(|s| s.name == name) {
            return Some(s.nr);
        }
        let (_, x64, i386) = NUMBERS.iter().find(|(n, _, _)| *n == name)?;
        match self {
            Abi::X86_64 => *x64,
            Abi::I386 => *i386,
        }
    }
}

/// The traced syscall with number `nr` in `abi`.
pub fn lookup(abi: Abi, nr: u64) -> Option<&'static Syscall> {
    abi.traced().iter().find(|s| u64::from(s.nr) == nr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_unique_and_found() {
        for abi in Abi::ALL {
            let mut seen = std::collections::HashSet::new();
            for s in abi.traced() {
                assert!(seen.insert(s.nr), "{} twice", s.nr);
                assert_eq!(lookup(abi, u64::from(s.nr)).map(|f| f.nr), Some(s.nr));
                assert!(!s.paths.is_empty());
            }
        }
        assert_eq!(
            lookup(Abi::X86_64, 257).map(|s| s.access),
            Some(Access::Lookup)
        );
        assert_eq!(lookup(Abi::I386, 5).map(|s| s.name), Some("open"));
        assert!(lookup(Abi::X86_64, 0).is_none());
        assert_eq!(Abi::from_audit_arch(0xc000_003e), Some(Abi::X86_64));
        assert_eq!(Abi::from_audit_arch(0x4000_0003), Some(Abi::I386));
    }

    /// `#define __NR_name N` lines of a kernel header, by name.
    fn header(path: &str) -> std::collections::HashMap<String, u32> {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("{path}: {e} (install linux-libc-dev)"));
        text.lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                (w.next()? == "#define").then_some(())?;
                let name = w.next()?.strip_prefix("__NR_")?;
                Some((name.to_string(), w.next()?.parse().ok()?))
            })
            .collect()
    }

    #[test]
    fn numbers_match_the_kernel_headers() {
        let dir = "/usr/include/x86_64-linux-gnu/asm";
        for (abi, file) in [(Abi::X86_64, "unistd_64.h"), (Abi::I386, "unistd_32.h")] {
            let known = header(&format!("{dir}/{file}"));
            for s in abi.traced() {
                assert_eq!(known.get(s.name), Some(&s.nr), "{abi:?} {}", s.name);
            }
            for (name, _, _) in NUMBERS {
                assert_eq!(
                    known.get(*name).copied(),
                    abi.number(name),
                    "{abi:?} {name}"
                );
            }
        }
    }
}
