//! The file syscalls the tracer stops on, and where each keeps its path arguments.
//!
//! Only x86-64 is described; elsewhere tracing reports itself unsupported.

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
    /// Its number on this architecture.
    pub nr: i64,
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
    ($($name:ident => $access:ident [$($arg:expr),*];)*) => {
        /// Every traced syscall.
        pub const TRACED: &[Syscall] = &[
            $(Syscall { nr: libc::$name, access: Access::$access, paths: &[$($arg),*] },)*
        ];
    };
}

#[cfg(target_arch = "x86_64")]
table! {
    SYS_execve => Exec [p(0)];
    SYS_execveat => Exec [at(0, 1)];
    SYS_open => Lookup [p(0)];
    SYS_openat => Lookup [at(0, 1)];
    SYS_openat2 => Lookup [at(0, 1)];
    SYS_creat => Modify [p(0)];
    SYS_stat => Lookup [p(0)];
    SYS_lstat => Lookup [p(0)];
    SYS_newfstatat => Lookup [at(0, 1)];
    SYS_statx => Lookup [at(0, 1)];
    SYS_statfs => Lookup [p(0)];
    SYS_access => Lookup [p(0)];
    SYS_faccessat => Lookup [at(0, 1)];
    SYS_faccessat2 => Lookup [at(0, 1)];
    SYS_readlink => Lookup [p(0)];
    SYS_readlinkat => Lookup [at(0, 1)];
    SYS_getxattr => Lookup [p(0)];
    SYS_lgetxattr => Lookup [p(0)];
    SYS_inotify_add_watch => Lookup [p(1)];
    SYS_chdir => Chdir [p(0)];
    SYS_chroot => Chdir [p(0)];
    SYS_mkdir => Modify [p(0)];
    SYS_mkdirat => Modify [at(0, 1)];
    SYS_rmdir => Modify [p(0)];
    SYS_unlink => Modify [p(0)];
    SYS_unlinkat => Modify [at(0, 1)];
    SYS_rename => Modify [p(0), p(1)];
    SYS_renameat => Modify [at(0, 1), at(2, 3)];
    SYS_renameat2 => Modify [at(0, 1), at(2, 3)];
    SYS_link => Modify [p(0), p(1)];
    SYS_linkat => Modify [at(0, 1), at(2, 3)];
    SYS_symlink => Modify [p(1)];
    SYS_symlinkat => Modify [at(1, 2)];
    SYS_chmod => Modify [p(0)];
    SYS_fchmodat => Modify [at(0, 1)];
    SYS_chown => Modify [p(0)];
    SYS_lchown => Modify [p(0)];
    SYS_fchownat => Modify [at(0, 1)];
    SYS_truncate => Modify [p(0)];
    SYS_mknod => Modify [p(0)];
    SYS_mknodat => Modify [at(0, 1)];
    SYS_utimensat => Modify [at(0, 1)];
}

#[cfg(not(target_arch = "x86_64"))]
/// Every traced syscall (none: this architecture is not described yet).
pub const TRACED: &[Syscall] = &[];

/// The traced syscall with number `nr`.
pub fn lookup(nr: i64) -> Option<&'static Syscall> {
    TRACED.iter().find(|s| s.nr == nr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn numbers_are_unique_and_found() {
        let mut seen = std::collections::HashSet::new();
        for s in TRACED {
            assert!(seen.insert(s.nr), "{} twice", s.nr);
            assert_eq!(lookup(s.nr).map(|f| f.nr), Some(s.nr));
            assert!(!s.paths.is_empty());
        }
        assert_eq!(
            lookup(libc::SYS_openat).map(|s| s.access),
            Some(Access::Lookup)
        );
        assert!(lookup(libc::SYS_read).is_none());
    }
}
