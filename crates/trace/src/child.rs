//! The child side of the sandbox: what runs between `clone`/`fork` and
//! `execve`, applying the prepared [`crate::sandbox::Prepared`] policy.
//!
//! whittle has other threads (progress, signal handling), so these processes
//! may only make async-signal-safe calls: raw syscalls on memory prepared
//! before the fork — no allocation, no locks, no panics. Failures are
//! reported as (step, errno) over a close-on-exec pipe.

use std::ffi::CString;
use std::os::fd::RawFd;

use crate::sandbox::{Launch, Op, OpKind, Prepared, Step};

/// Reports `step` with the current errno and exits.
///
/// SAFETY (for callers): only raw syscalls on an fd owned by this process.
pub(crate) unsafe fn fail(err_fd: RawFd, step: Step) -> ! {
    let errno = *libc::__errno_location();
    let mut msg = [0u8; 8];
    msg[..4].copy_from_slice(&(step as u32).to_ne_bytes());
    msg[4..].copy_from_slice(&errno.to_ne_bytes());
    libc::write(err_fd, msg.as_ptr().cast(), msg.len());
    libc::_exit(127)
}

unsafe fn check(rc: libc::c_long, err_fd: RawFd, step: Step) {
    if rc < 0 {
        fail(err_fd, step);
    }
}

fn errno() -> i32 {
    // SAFETY: reads this thread's errno.
    unsafe { *libc::__errno_location() }
}

const NONE: *const libc::c_char = std::ptr::null();

fn lit(s: &'static [u8]) -> *const libc::c_char {
    s.as_ptr().cast()
}

fn opt(s: &Option<CString>) -> *const libc::c_char {
    s.as_ref().map_or(NONE, |c| c.as_ptr())
}

/// Keeps this process out of reach of the sandbox's processes (no
/// `/proc/PID/fd`, no ptrace attach, no `/proc/PID/mem`) while it still holds
/// a copy of whittle's memory, and makes it die with its parent. (The
/// sandbox's pid 1 needs none of this: nothing else runs in its namespaces
/// before it execs, and an ordinary user's tracer must read its memory.)
unsafe fn seal() {
    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    libc::prctl(libc::PR_SET_DUMPABLE, 0);
}

/// Stops for the tracer: `PTRACE_TRACEME`, then SIGSTOP to itself (the tracer
/// sets its options at that stop).
unsafe fn become_tracee(err_fd: RawFd) {
    check(
        libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0),
        err_fd,
        Step::TraceMe,
    );
    // getpid through the syscall: glibc's cached thread data is the parent's after a raw clone.
    let me = libc::syscall(libc::SYS_getpid) as libc::pid_t;
    libc::kill(me, libc::SIGSTOP);
}

unsafe fn redirect(stdio: [RawFd; 3], err_fd: RawFd) {
    for (fd, target) in stdio.iter().zip(0..) {
        if *fd != target {
            check(libc::dup2(*fd, target) as libc::c_long, err_fd, Step::Stdio);
        }
    }
}

/// Closes every descriptor but 0–2 and the error pipe (close-on-exec), so that
/// nothing of whittle's — and nothing the caller's shell left open — crosses
/// into the sandbox.
unsafe fn close_other_fds(err_fd: RawFd) {
    let err = err_fd as libc::c_uint;
    if err > 3 {
        libc::syscall(libc::SYS_close_range, 3u32, err - 1, 0u32);
    }
    libc::syscall(libc::SYS_close_range, err + 1, u32::MAX, 0u32);
}

/// Waits for the parent's byte on `fd` (it has written the id maps). A byte,
/// not end-of-file: other children forked meanwhile may hold the write end.
/// Anything but the byte (the parent gave up, or died) ends the child: it must
/// not go on without its id maps.
unsafe fn wait_for_parent(fd: RawFd) {
    let mut b = [0u8; 1];
    loop {
        let n = libc::read(fd, b.as_mut_ptr().cast(), 1);
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        if n != 1 {
            libc::_exit(127);
        }
        break;
    }
    libc::close(fd);
}

/// Becomes root of the user namespace (the caller's host id may be unmapped there).
unsafe fn become_inside_root(err_fd: RawFd) {
    check(
        libc::syscall(libc::SYS_setresgid, 0, 0, 0),
        err_fd,
        Step::InsideRoot,
    );
    check(
        libc::syscall(libc::SYS_setresuid, 0, 0, 0),
        err_fd,
        Step::InsideRoot,
    );
}

/// The mount flags a remount must keep (a user namespace may not clear the
/// flags it inherited), plus `extra`.
unsafe fn kept_flags(target: *const libc::c_char) -> libc::c_ulong {
    // The kernel's `struct statfs` on 64-bit Linux (glibc's hides `f_flags`).
    #[repr(C)]
    struct KernelStatfs {
        words: [libc::c_long; 10],
        f_flags: libc::c_long,
        spare: [libc::c_long; 4],
    }
    let mut st: KernelStatfs = std::mem::zeroed();
    if libc::syscall(libc::SYS_statfs, target, &mut st as *mut KernelStatfs) != 0 {
        return 0;
    }
    let keep = libc::ST_RDONLY
        | libc::ST_NOSUID
        | libc::ST_NODEV
        | libc::ST_NOEXEC
        | libc::ST_NOATIME
        | libc::ST_NODIRATIME
        | ST_RELATIME;
    (st.f_flags as libc::c_ulong) & keep
}

/// `ST_RELATIME` from `<sys/statvfs.h>` (Linux's `MNT_RELATIME` bit), which the libc
/// crate defines for glibc only.
const ST_RELATIME: libc::c_ulong = 0x1000;

unsafe fn remount(target: *const libc::c_char, extra: libc::c_ulong) -> libc::c_int {
    let flags = kept_flags(target) | extra | libc::MS_REMOUNT | libc::MS_BIND;
    libc::mount(NONE, target, NONE, flags, std::ptr::null())
}

/// Whether `path` exists, and whether it is a directory.
unsafe fn kind_of(path: *const libc::c_char) -> Option<bool> {
    let mut st: libc::stat = std::mem::zeroed();
    if libc::lstat(path, &mut st) != 0 {
        return None;
    }
    Some(st.st_mode & libc::S_IFMT == libc::S_IFDIR)
}

unsafe fn apply(op: &Op, err_fd: RawFd) {
    let target = op.target.as_ptr();
    let rc: libc::c_int = match op.kind {
        OpKind::Mount => libc::mount(
            opt(&op.source),
            target,
            opt(&op.fstype),
            op.flags,
            opt(&op.data).cast(),
        ),
        OpKind::MkdirMount => {
            let made = libc::mkdir(target, 0o755);
            if made != 0 && errno() != libc::EEXIST {
                made
            } else {
                libc::mount(
                    opt(&op.source),
                    target,
                    opt(&op.fstype),
                    op.flags,
                    opt(&op.data).cast(),
                )
            }
        }
        OpKind::BindFile => {
            let fd = libc::open(
                target,
                libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
                0o666,
            );
            if fd < 0 {
                fd
            } else {
                libc::close(fd);
                libc::mount(
                    opt(&op.source),
                    target,
                    NONE,
                    libc::MS_BIND,
                    std::ptr::null(),
                )
            }
        }
        OpKind::BindOnto => libc::mount(
            opt(&op.source),
            target,
            NONE,
            libc::MS_BIND,
            std::ptr::null(),
        ),
        OpKind::Symlink => libc::symlink(opt(&op.source), target),
        OpKind::Mask => match kind_of(target) {
            None => 0,
            Some(true) => libc::mount(
                lit(b"tmpfs\0"),
                target,
                lit(b"tmpfs\0"),
                libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                lit(b"size=0\0").cast(),
            ),
            Some(false) => {
                let bound = libc::mount(
                    lit(b"/dev/null\0"),
                    target,
                    NONE,
                    libc::MS_BIND,
                    std::ptr::null(),
                );
                if bound != 0 {
                    bound
                } else {
                    remount(target, libc::MS_RDONLY)
                }
            }
        },
        OpKind::ReadOnly => match kind_of(target) {
            None => 0,
            Some(_) => {
                let bound = libc::mount(
                    target,
                    target,
                    NONE,
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                );
                if bound != 0 {
                    bound
                } else {
                    remount(target, libc::MS_RDONLY)
                }
            }
        },
    };
    if rc != 0 && !op.optional {
        fail(err_fd, op.step);
    }
}

unsafe fn loopback_up(err_fd: RawFd) {
    let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
    check(sock as libc::c_long, err_fd, Step::Loopback);
    let mut ifr: libc::ifreq = std::mem::zeroed();
    for (dst, src) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    ifr.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    check(
        libc::ioctl(sock, libc::SIOCSIFFLAGS as _, &ifr) as libc::c_long,
        err_fd,
        Step::Loopback,
    );
    libc::close(sock);
}

unsafe fn install_filter(filter: &[libc::sock_filter], err_fd: RawFd) {
    if filter.is_empty() {
        return;
    }
    let prog = libc::sock_fprog {
        len: filter.len() as libc::c_ushort,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // With CAP_SYS_ADMIN in the user namespace no_new_privs is not needed, so
    // set-uid programs of the image still work (as under Docker).
    check(
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &prog as *const libc::sock_fprog,
        ),
        err_fd,
        Step::Seccomp,
    );
}

/// `struct __user_cap_header_struct` and `__user_cap_data_struct` (version 3: two words).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}
#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}
const CAP_V3: u32 = 0x2008_0522;

/// Limits, capabilities and identity, then the program: what every process
/// started in the sandbox goes through, pid 1 and exec probes alike.
pub(crate) unsafe fn launch(l: &Launch, err_fd: RawFd) -> ! {
    // A session of its own: no controlling terminal, so `/dev/tty` cannot reach the
    // terminal whittle was started from (and TIOCSTI cannot type into its shell).
    libc::setsid();
    for r in &l.rlimits {
        let lim = libc::rlimit {
            rlim_cur: r.1,
            rlim_max: r.2,
        };
        check(
            libc::setrlimit(r.0 as _, &lim) as libc::c_long,
            err_fd,
            Step::Rlimit,
        );
    }
    if l.no_new_privileges {
        check(
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) as libc::c_long,
            err_fd,
            Step::Capabilities,
        );
    }
    // The bounding set first: it needs CAP_SETPCAP, which may be dropped below.
    for cap in 0..=l.cap_last {
        if l.caps & (1u64 << cap) == 0 {
            let rc = libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0);
            if rc != 0 && errno() != libc::EINVAL {
                fail(err_fd, Step::Capabilities);
            }
        }
    }
    // Raw syscalls, not glibc's wrappers: those apply the change to every thread
    // glibc knows of, and after a raw clone it still believes the parent's threads
    // exist — it waits for them forever.
    if l.set_groups {
        check(
            libc::syscall(libc::SYS_setgroups, l.groups.len(), l.groups.as_ptr()),
            err_fd,
            Step::Groups,
        );
    }
    check(
        libc::syscall(libc::SYS_setresgid, l.gid, l.gid, l.gid),
        err_fd,
        Step::Gid,
    );
    check(
        libc::syscall(libc::SYS_setresuid, l.uid, l.uid, l.uid),
        err_fd,
        Step::Uid,
    );
    // Root keeps the allowed set, anyone else nothing (set-uid and file
    // capabilities still give up to the bounding set at exec, as under Docker).
    let kept = if l.uid == 0 { l.caps } else { 0 };
    let mut header = CapHeader {
        version: CAP_V3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: kept as u32,
            permitted: kept as u32,
            inheritable: 0,
        },
        CapData {
            effective: (kept >> 32) as u32,
            permitted: (kept >> 32) as u32,
            inheritable: 0,
        },
    ];
    check(
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        ),
        err_fd,
        Step::Capabilities,
    );
    libc::prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
        0,
        0,
        0,
    );
    check(
        libc::chdir(l.workdir.as_ptr()) as libc::c_long,
        err_fd,
        Step::Workdir,
    );
    libc::umask(0o022);
    let mut code = libc::ENOENT;
    for candidate in &l.candidates {
        libc::execve(
            candidate.as_ptr(),
            l.argv.ptrs.as_ptr(),
            l.env.ptrs.as_ptr(),
        );
        let e = errno();
        match e {
            libc::ENOENT | libc::ENOTDIR => {}
            libc::EACCES => code = e,
            _ => {
                code = e;
                break;
            }
        }
    }
    *libc::__errno_location() = code;
    fail(err_fd, Step::Exec)
}

/// The first process of the sandbox, right after `clone` with new namespaces.
///
/// SAFETY: call only in the child of a raw `clone`; it reads the prepared
/// memory and makes raw syscalls, nothing else.
pub(crate) unsafe fn sandbox_child(
    p: &Prepared,
    stdio: [RawFd; 3],
    sync_fd: RawFd,
    err_fd: RawFd,
) -> ! {
    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    redirect(stdio, err_fd);
    wait_for_parent(sync_fd);
    close_other_fds(err_fd);
    become_tracee(err_fd);
    libc::umask(0);
    // Nothing mounted here may propagate back to the host.
    check(
        libc::mount(
            NONE,
            lit(b"/\0"),
            NONE,
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) as libc::c_long,
        err_fd,
        Step::Private,
    );
    // The root is reached with the caller's host ids, which own the directories
    // above it; from here on everything is relative to it.
    check(
        libc::mount(
            p.root.as_ptr(),
            p.root.as_ptr(),
            NONE,
            libc::MS_BIND | libc::MS_REC,
            std::ptr::null(),
        ) as libc::c_long,
        err_fd,
        Step::Bind,
    );
    check(
        remount(p.root.as_ptr(), libc::MS_NODEV) as libc::c_long,
        err_fd,
        Step::Bind,
    );
    check(
        libc::chdir(p.root.as_ptr()) as libc::c_long,
        err_fd,
        Step::Pivot,
    );
    for op in &p.early_ops {
        apply(op, err_fd);
    }
    if p.become_root {
        become_inside_root(err_fd);
    }
    for op in &p.ops {
        apply(op, err_fd);
    }
    check(
        libc::sethostname(p.hostname.as_ptr().cast(), p.hostname.len()) as libc::c_long,
        err_fd,
        Step::Hostname,
    );
    if p.loopback {
        loopback_up(err_fd);
    }
    // pivot_root(".", ".") stacks the old root under the new one; detaching it leaves only the image.
    check(
        libc::syscall(libc::SYS_pivot_root, lit(b".\0"), lit(b".\0")),
        err_fd,
        Step::Pivot,
    );
    check(
        libc::umount2(lit(b".\0"), libc::MNT_DETACH) as libc::c_long,
        err_fd,
        Step::Umount,
    );
    check(
        libc::chdir(lit(b"/\0")) as libc::c_long,
        err_fd,
        Step::Pivot,
    );
    // Owners the caller could not give on the host, given inside the namespace.
    for o in &p.owners {
        let rc = libc::fchownat(
            libc::AT_FDCWD,
            o.path.as_ptr(),
            o.uid,
            o.gid,
            libc::AT_SYMLINK_NOFOLLOW,
        );
        if rc != 0 && errno() != libc::ENOENT {
            fail(err_fd, Step::Owners);
        }
        if !o.symlink && rc == 0 {
            libc::chmod(o.path.as_ptr(), o.mode);
        }
    }
    install_filter(&p.filter, err_fd);
    launch(&p.launch, err_fd)
}

/// A program run inside a running sandbox (an exec probe): joins its
/// namespaces (the user namespace first: it owns the others), then forks into
/// its pid namespace and launches there; the intermediate process exits with
/// the program's status.
///
/// SAFETY: call only in a freshly forked child; raw syscalls on prepared memory.
pub(crate) unsafe fn joined_child(
    ns: &[(RawFd, libc::c_int)],
    become_root: bool,
    filter: &[libc::sock_filter],
    l: &Launch,
    stdio: [RawFd; 3],
    err_fd: RawFd,
) -> ! {
    seal();
    become_tracee(err_fd);
    for (fd, flag) in ns {
        check(libc::setns(*fd, *flag) as libc::c_long, err_fd, Step::Setns);
        if *flag == libc::CLONE_NEWUSER && become_root {
            become_inside_root(err_fd);
        }
    }
    redirect(stdio, err_fd);
    close_other_fds(err_fd);
    install_filter(filter, err_fd);
    let child = libc::fork();
    if child < 0 {
        fail(err_fd, Step::Fork);
    }
    if child == 0 {
        launch(l, err_fd);
    }
    let mut status = 0;
    loop {
        let rc = libc::waitpid(child, &mut status, 0);
        if rc == child {
            break;
        }
        if rc < 0 && errno() != libc::EINTR {
            libc::_exit(127);
        }
    }
    // The launched program's failure report already went through the pipe.
    if libc::WIFEXITED(status) {
        libc::_exit(libc::WEXITSTATUS(status));
    }
    libc::_exit(128 + libc::WTERMSIG(status))
}

/// Removes a tree as root of a new user namespace with the caller's id map
/// (the files an ordinary user gave to subordinate ids are not the user's to
/// delete on the host): unshare, wait until the maps are written, become
/// root inside, exec `rm -rf`.
///
/// SAFETY: call only in a freshly forked child; raw syscalls on prepared memory.
pub(crate) unsafe fn remove_in_namespace(sync_fd: RawFd, argv: &[*const libc::c_char]) -> ! {
    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    if libc::unshare(libc::CLONE_NEWUSER) != 0 {
        libc::_exit(126);
    }
    wait_for_parent(sync_fd);
    if libc::syscall(libc::SYS_setresgid, 0, 0, 0) != 0
        || libc::syscall(libc::SYS_setresuid, 0, 0, 0) != 0
    {
        libc::_exit(126);
    }
    let env: [*const libc::c_char; 1] = [std::ptr::null()];
    libc::execve(argv[0], argv.as_ptr(), env.as_ptr());
    libc::_exit(127)
}
