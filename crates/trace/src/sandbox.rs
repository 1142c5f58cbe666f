//! The sandbox: a process in new mount, pid, uts, ipc and (by default) network
//! namespaces, pivoted into a private copy of the image root, with a minimal
//! `/dev`, a fresh `/proc` and tmpfs `/tmp` and `/run`, running as the image's
//! user under the tracer's seccomp filter.
//!
//! Everything the child does between `clone` and `execve` is a raw syscall on
//! memory prepared beforehand: whittle has other threads (progress, signal
//! handling), so the child may only make async-signal-safe calls — no
//! allocation, no locks, no panics. Failures are reported as (step, errno)
//! over a close-on-exec pipe.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::TraceError;

/// Which network the program sees.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Network {
    /// Its own network namespace with only loopback up.
    #[default]
    Loopback,
    /// The host's network.
    Host,
}

/// What to run, and as whom.
#[derive(Clone, Debug)]
pub struct Sandbox {
    /// The unpacked image root (a private copy: the run may write to it).
    pub root: PathBuf,
    /// The command line; `argv[0]` is looked up in `path` when it has no `/`.
    pub argv: Vec<String>,
    /// The whole environment.
    pub env: Vec<String>,
    /// Directories to search for `argv[0]`, inside the root.
    pub path: Vec<String>,
    /// Working directory inside the root.
    pub workdir: String,
    /// User, group and supplementary groups.
    pub uid: u32,
    /// Primary group.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// The network.
    pub network: Network,
    /// Host name inside.
    pub hostname: String,
    /// Stop on file syscalls (false: run in the same sandbox untraced, for comparisons).
    pub trace_files: bool,
}

/// The steps of the child's setup, as reported through the error pipe.
const STEPS: &[&str] = &[
    "make mounts private",
    "bind-mount the root",
    "mount /proc",
    "mount /dev",
    "create a device node in /dev",
    "mount /dev/shm",
    "mount /tmp",
    "mount /run",
    "set the host name",
    "bring loopback up",
    "pivot into the root",
    "detach the old root",
    "install the seccomp filter",
    "set groups",
    "set the group id",
    "set the user id",
    "enter the working directory",
    "start the program",
    "become traceable",
    "join the sandbox's namespaces",
    "fork into the pid namespace",
    "redirect standard streams",
];
const STEP_PRIVATE: u32 = 0;
const STEP_BIND: u32 = 1;
const STEP_PROC: u32 = 2;
const STEP_DEV: u32 = 3;
const STEP_MKNOD: u32 = 4;
const STEP_SHM: u32 = 5;
const STEP_TMP: u32 = 6;
const STEP_RUN: u32 = 7;
const STEP_HOSTNAME: u32 = 8;
const STEP_LOOPBACK: u32 = 9;
const STEP_PIVOT: u32 = 10;
const STEP_UMOUNT: u32 = 11;
const STEP_SECCOMP: u32 = 12;
const STEP_GROUPS: u32 = 13;
const STEP_GID: u32 = 14;
const STEP_UID: u32 = 15;
const STEP_WORKDIR: u32 = 16;
const STEP_EXEC: u32 = 17;
const STEP_TRACEME: u32 = 18;
const STEP_SETNS: u32 = 19;
const STEP_FORK: u32 = 20;
const STEP_STDIO: u32 = 21;

/// Turns an error-pipe message into words.
pub(crate) fn describe_failure(msg: [u8; 8], argv0: &str) -> String {
    let step = u32::from_ne_bytes([msg[0], msg[1], msg[2], msg[3]]);
    let errno = i32::from_ne_bytes([msg[4], msg[5], msg[6], msg[7]]);
    let err = std::io::Error::from_raw_os_error(errno);
    match step {
        STEP_EXEC => match errno {
            libc::ENOENT => format!(
                "cannot start {argv0}: no such program in the image, or its interpreter or ELF loader is missing ({err})"
            ),
            libc::ENOEXEC => format!("cannot start {argv0}: not a program this machine can run ({err})"),
            libc::EACCES => format!("cannot start {argv0}: not executable ({err})"),
            _ => format!("cannot start {argv0}: {err}"),
        },
        s => format!(
            "the sandbox could not {}: {err}",
            STEPS.get(s as usize).copied().unwrap_or("start")
        ),
    }
}

fn cstring(bytes: &[u8]) -> Result<CString, TraceError> {
    CString::new(bytes).map_err(|_| {
        TraceError::Config(format!(
            "{:?} contains a NUL byte",
            String::from_utf8_lossy(bytes)
        ))
    })
}

fn host_path(root: &Path, inside: &str) -> Result<CString, TraceError> {
    let mut p = root.as_os_str().as_bytes().to_vec();
    let rel = inside.trim_start_matches('/');
    if !rel.is_empty() {
        p.push(b'/');
        p.extend_from_slice(rel.as_bytes());
    }
    cstring(&p)
}

/// A null-terminated array of pointers into `strings` (which must outlive it).
struct CArgv {
    _strings: Vec<CString>,
    ptrs: Vec<*const libc::c_char>,
}

impl CArgv {
    fn new(items: &[String]) -> Result<CArgv, TraceError> {
        let strings: Vec<CString> = items
            .iter()
            .map(|s| cstring(s.as_bytes()))
            .collect::<Result<_, _>>()?;
        let mut ptrs: Vec<*const libc::c_char> = strings.iter().map(|s| s.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        Ok(CArgv {
            _strings: strings,
            ptrs,
        })
    }
}

struct Device {
    path: CString,
    major: u32,
    minor: u32,
}

struct DevLink {
    path: CString,
    target: CString,
}

/// How to run one program once inside: identity, working directory, command.
pub(crate) struct Launch {
    candidates: Vec<CString>,
    argv: CArgv,
    env: CArgv,
    workdir: CString,
    uid: u32,
    gid: u32,
    groups: Vec<libc::gid_t>,
}

impl Launch {
    pub(crate) fn new(
        argv: &[String],
        env: &[String],
        path: &[String],
        workdir: &str,
        ids: (u32, u32, &[u32]),
    ) -> Result<Launch, TraceError> {
        let Some(argv0) = argv.first() else {
            return Err(TraceError::Config(
                "nothing to run: the command is empty".into(),
            ));
        };
        let candidates = if argv0.contains('/') {
            vec![cstring(argv0.as_bytes())?]
        } else {
            path.iter()
                .map(|d| cstring(format!("{}/{argv0}", d.trim_end_matches('/')).as_bytes()))
                .collect::<Result<_, _>>()?
        };
        if candidates.is_empty() {
            return Err(TraceError::Config(format!(
                "{argv0} has no directory and the image has no PATH to find it in"
            )));
        }
        Ok(Launch {
            candidates,
            argv: CArgv::new(argv)?,
            env: CArgv::new(env)?,
            workdir: cstring(workdir.as_bytes())?,
            uid: ids.0,
            gid: ids.1,
            groups: ids.2.to_vec(),
        })
    }
}

/// Everything the sandbox's first process needs, made before `clone`.
pub(crate) struct Prepared {
    root: CString,
    proc_dir: CString,
    dev_dir: CString,
    shm_dir: CString,
    tmp_dir: CString,
    run_dir: CString,
    devices: Vec<Device>,
    dev_links: Vec<DevLink>,
    hostname: Vec<u8>,
    loopback: bool,
    /// Empty when file syscalls are not traced.
    filter: Vec<libc::sock_filter>,
    pub(crate) launch: Launch,
}

/// Makes `root/inside` a real directory (replacing a symlink or file there, so
/// that no mount can follow a link out of the root).
fn ensure_dir(root: &Path, inside: &str) -> Result<(), TraceError> {
    let path = root.join(inside.trim_start_matches('/'));
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => {
            std::fs::remove_file(&path).map_err(|e| TraceError::io("cannot replace", &path, e))?
        }
        Err(_) => {}
    }
    std::fs::create_dir_all(&path).map_err(|e| TraceError::io("cannot create", &path, e))
}

impl Prepared {
    pub(crate) fn new(s: &Sandbox) -> Result<Prepared, TraceError> {
        for dir in ["/proc", "/dev", "/tmp", "/run"] {
            ensure_dir(&s.root, dir)?;
        }
        // The working directory is created when missing, as container runtimes do.
        let workdir = if s.workdir.is_empty() {
            "/"
        } else {
            &s.workdir
        };
        ensure_dir(&s.root, workdir)?;
        let dev = |name: &str| host_path(&s.root, &format!("/dev/{name}"));
        let devices = [
            ("null", 1, 3),
            ("zero", 1, 5),
            ("full", 1, 7),
            ("random", 1, 8),
            ("urandom", 1, 9),
            ("tty", 5, 0),
        ]
        .into_iter()
        .map(|(name, major, minor)| {
            Ok(Device {
                path: dev(name)?,
                major,
                minor,
            })
        })
        .collect::<Result<_, TraceError>>()?;
        let dev_links = [
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
        ]
        .into_iter()
        .map(|(name, target)| {
            Ok(DevLink {
                path: dev(name)?,
                target: cstring(target.as_bytes())?,
            })
        })
        .collect::<Result<_, TraceError>>()?;
        Ok(Prepared {
            root: cstring(s.root.as_os_str().as_bytes())?,
            proc_dir: host_path(&s.root, "/proc")?,
            dev_dir: host_path(&s.root, "/dev")?,
            shm_dir: dev("shm")?,
            tmp_dir: host_path(&s.root, "/tmp")?,
            run_dir: host_path(&s.root, "/run")?,
            devices,
            dev_links,
            hostname: s.hostname.as_bytes().to_vec(),
            loopback: s.network == Network::Loopback,
            filter: if s.trace_files {
                crate::filter::program()
            } else {
                Vec::new()
            },
            launch: Launch::new(&s.argv, &s.env, &s.path, workdir, (s.uid, s.gid, &s.groups))?,
        })
    }

    /// The namespaces the first process gets.
    pub(crate) fn clone_flags(&self) -> libc::c_int {
        let mut flags =
            libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC;
        if self.loopback {
            flags |= libc::CLONE_NEWNET;
        }
        flags
    }
}

/// The standard streams of a launched program.
pub(crate) struct Stdio {
    pub(crate) stdin: OwnedFd,
    pub(crate) stdout: OwnedFd,
    pub(crate) stderr: OwnedFd,
}

impl Stdio {
    /// `/dev/null` in, both outputs to `log` (appending).
    pub(crate) fn to_file(log: &Path) -> Result<Stdio, TraceError> {
        let null = std::fs::File::open("/dev/null")
            .map_err(|e| TraceError::io("cannot open", Path::new("/dev/null"), e))?;
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| TraceError::io("cannot create", log, e))?;
        let err = out
            .try_clone()
            .map_err(|e| TraceError::io("cannot open", log, e))?;
        Ok(Stdio {
            stdin: null.into(),
            stdout: out.into(),
            stderr: err.into(),
        })
    }

    /// `/dev/null` in, stdout to `out`, stderr to `err`.
    pub(crate) fn split(out: &Path, err: &Path) -> Result<Stdio, TraceError> {
        let mut s = Stdio::to_file(out)?;
        let e = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(err)
            .map_err(|e| TraceError::io("cannot create", err, e))?;
        s.stderr = e.into();
        Ok(s)
    }

    fn raw(&self) -> [RawFd; 3] {
        [
            self.stdin.as_raw_fd(),
            self.stdout.as_raw_fd(),
            self.stderr.as_raw_fd(),
        ]
    }
}

/// A close-on-exec pipe: (read end, write end).
pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd), TraceError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| TraceError::Sys("cannot make a pipe", e))
}

/// Reads the child's 8-byte failure report; `None` when the pipe closed empty (exec happened).
pub(crate) fn read_failure(read_end: &OwnedFd) -> Option<[u8; 8]> {
    let mut buf = [0u8; 8];
    let mut got = 0;
    while got < 8 {
        match nix::unistd::read(read_end, &mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
        }
    }
    (got == 8).then_some(buf)
}

// ---- child side: async-signal-safe only ----

/// Reports `step` with the current errno and exits.
///
/// SAFETY (for callers): only raw syscalls on an fd owned by this process.
unsafe fn fail(err_fd: RawFd, step: u32) -> ! {
    let errno = *libc::__errno_location();
    let mut msg = [0u8; 8];
    msg[..4].copy_from_slice(&step.to_ne_bytes());
    msg[4..].copy_from_slice(&errno.to_ne_bytes());
    libc::write(err_fd, msg.as_ptr().cast(), msg.len());
    libc::_exit(127)
}

unsafe fn check(rc: libc::c_long, err_fd: RawFd, step: u32) {
    if rc < 0 {
        fail(err_fd, step);
    }
}

/// Stops for the tracer: `PTRACE_TRACEME`, then SIGSTOP to itself (the tracer
/// sets its options at that stop).
unsafe fn become_tracee(err_fd: RawFd) {
    check(
        libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0),
        err_fd,
        STEP_TRACEME,
    );
    // getpid through the syscall: glibc's cached thread data is the parent's after a raw clone.
    let me = libc::syscall(libc::SYS_getpid) as libc::pid_t;
    libc::kill(me, libc::SIGSTOP);
}

unsafe fn redirect(stdio: [RawFd; 3], err_fd: RawFd) {
    for (fd, target) in stdio.iter().zip(0..) {
        if *fd != target {
            check(libc::dup2(*fd, target) as libc::c_long, err_fd, STEP_STDIO);
        }
    }
}

unsafe fn mount(
    src: *const libc::c_char,
    target: &CString,
    fstype: *const libc::c_char,
    flags: libc::c_ulong,
    data: *const libc::c_char,
    err_fd: RawFd,
    step: u32,
) {
    check(
        libc::mount(src, target.as_ptr(), fstype, flags, data.cast()) as libc::c_long,
        err_fd,
        step,
    );
}

/// Drops to the program's identity, enters its working directory and execs it,
/// trying each PATH candidate as `execvp` does.
unsafe fn launch(l: &Launch, err_fd: RawFd) -> ! {
    // Raw syscalls, not glibc's wrappers: those apply the change to every thread
    // glibc knows of, and after a raw clone it still believes the parent's threads
    // exist — it waits for them forever.
    check(
        libc::syscall(libc::SYS_setgroups, l.groups.len(), l.groups.as_ptr()),
        err_fd,
        STEP_GROUPS,
    );
    check(libc::syscall(libc::SYS_setgid, l.gid), err_fd, STEP_GID);
    check(libc::syscall(libc::SYS_setuid, l.uid), err_fd, STEP_UID);
    check(
        libc::chdir(l.workdir.as_ptr()) as libc::c_long,
        err_fd,
        STEP_WORKDIR,
    );
    libc::umask(0o022);
    let mut errno = libc::ENOENT;
    for candidate in &l.candidates {
        libc::execve(
            candidate.as_ptr(),
            l.argv.ptrs.as_ptr(),
            l.env.ptrs.as_ptr(),
        );
        let e = *libc::__errno_location();
        match e {
            libc::ENOENT | libc::ENOTDIR => {}
            libc::EACCES => errno = e,
            _ => {
                errno = e;
                break;
            }
        }
    }
    *libc::__errno_location() = errno;
    fail(err_fd, STEP_EXEC)
}

unsafe fn install_filter(filter: &[libc::sock_filter], err_fd: RawFd) {
    let prog = libc::sock_fprog {
        len: filter.len() as libc::c_ushort,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // As root with CAP_SYS_ADMIN no_new_privs is not needed, so set-uid programs in the image still work.
    check(
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &prog as *const libc::sock_fprog,
        ),
        err_fd,
        STEP_SECCOMP,
    );
}

unsafe fn loopback_up(err_fd: RawFd) {
    let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
    check(sock as libc::c_long, err_fd, STEP_LOOPBACK);
    let mut ifr: libc::ifreq = std::mem::zeroed();
    for (dst, src) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    ifr.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    check(
        libc::ioctl(sock, libc::SIOCSIFFLAGS as _, &ifr) as libc::c_long,
        err_fd,
        STEP_LOOPBACK,
    );
    libc::close(sock);
}

/// The first process of the sandbox, right after `clone` with new namespaces.
///
/// SAFETY: call only in the child of a raw `clone`; it reads the prepared
/// memory and makes raw syscalls, nothing else.
unsafe fn sandbox_child(p: &Prepared, stdio: [RawFd; 3], err_fd: RawFd) -> ! {
    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    become_tracee(err_fd);
    redirect(stdio, err_fd);
    libc::umask(0);
    let none: *const libc::c_char = std::ptr::null();
    let lit = |s: &'static [u8]| s.as_ptr() as *const libc::c_char;
    // Nothing mounted here may propagate back to the host.
    check(
        libc::mount(
            none,
            lit(b"/\0"),
            none,
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) as libc::c_long,
        err_fd,
        STEP_PRIVATE,
    );
    mount(
        p.root.as_ptr(),
        &p.root,
        none,
        libc::MS_BIND | libc::MS_REC,
        none,
        err_fd,
        STEP_BIND,
    );
    let nosuid = libc::MS_NOSUID | libc::MS_NODEV;
    mount(
        lit(b"proc\0"),
        &p.proc_dir,
        lit(b"proc\0"),
        nosuid | libc::MS_NOEXEC,
        none,
        err_fd,
        STEP_PROC,
    );
    mount(
        lit(b"tmpfs\0"),
        &p.dev_dir,
        lit(b"tmpfs\0"),
        libc::MS_NOSUID | libc::MS_STRICTATIME,
        lit(b"mode=755,size=65536k\0"),
        err_fd,
        STEP_DEV,
    );
    for d in &p.devices {
        let rc = libc::mknod(
            d.path.as_ptr(),
            libc::S_IFCHR | 0o666,
            libc::makedev(d.major, d.minor),
        );
        check(rc as libc::c_long, err_fd, STEP_MKNOD);
    }
    for l in &p.dev_links {
        libc::symlink(l.target.as_ptr(), l.path.as_ptr());
    }
    check(
        libc::mkdir(p.shm_dir.as_ptr(), 0o1777) as libc::c_long,
        err_fd,
        STEP_SHM,
    );
    mount(
        lit(b"shm\0"),
        &p.shm_dir,
        lit(b"tmpfs\0"),
        nosuid | libc::MS_NOEXEC,
        lit(b"mode=1777,size=65536k\0"),
        err_fd,
        STEP_SHM,
    );
    mount(
        lit(b"tmpfs\0"),
        &p.tmp_dir,
        lit(b"tmpfs\0"),
        nosuid,
        lit(b"mode=1777\0"),
        err_fd,
        STEP_TMP,
    );
    mount(
        lit(b"tmpfs\0"),
        &p.run_dir,
        lit(b"tmpfs\0"),
        nosuid,
        lit(b"mode=755\0"),
        err_fd,
        STEP_RUN,
    );
    check(
        libc::sethostname(p.hostname.as_ptr().cast(), p.hostname.len()) as libc::c_long,
        err_fd,
        STEP_HOSTNAME,
    );
    if p.loopback {
        loopback_up(err_fd);
    }
    // pivot_root(".", ".") stacks the old root under the new one; detaching it leaves only the image.
    check(
        libc::chdir(p.root.as_ptr()) as libc::c_long,
        err_fd,
        STEP_PIVOT,
    );
    check(
        libc::syscall(libc::SYS_pivot_root, lit(b".\0"), lit(b".\0")),
        err_fd,
        STEP_PIVOT,
    );
    check(
        libc::umount2(lit(b".\0"), libc::MNT_DETACH) as libc::c_long,
        err_fd,
        STEP_UMOUNT,
    );
    check(libc::chdir(lit(b"/\0")) as libc::c_long, err_fd, STEP_PIVOT);
    if !p.filter.is_empty() {
        install_filter(&p.filter, err_fd);
    }
    launch(&p.launch, err_fd)
}

/// Starts the sandbox's first process (pid 1 of its namespace) as a traced child
/// of the calling thread, which must be the tracer thread. Returns its pid; it is
/// stopped (SIGSTOP) or already reporting a failure through `err_fd`'s pipe.
pub(crate) fn spawn(
    p: &Prepared,
    stdio: &Stdio,
    err_write: &OwnedFd,
) -> Result<libc::pid_t, TraceError> {
    let fds = stdio.raw();
    let err_fd = err_write.as_raw_fd();
    // SAFETY: a raw clone without CLONE_VM duplicates the address space like fork;
    // the child runs only `sandbox_child`, which never returns and keeps to
    // async-signal-safe syscalls on memory prepared before this call.
    let pid = unsafe {
        let rc = libc::syscall(
            libc::SYS_clone,
            (p.clone_flags() | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        );
        if rc == 0 {
            sandbox_child(p, fds, err_fd);
        }
        rc
    };
    if pid < 0 {
        return Err(TraceError::Sys(
            "cannot create the sandbox's namespaces (tracing needs root or CAP_SYS_ADMIN)",
            nix::errno::Errno::last(),
        ));
    }
    Ok(pid as libc::pid_t)
}

/// The namespaces of a running sandbox, opened so that later processes can join it.
pub(crate) struct Namespaces {
    fds: Vec<(OwnedFd, libc::c_int)>,
}

impl Namespaces {
    /// Opens `/proc/PID/ns/*` of the sandbox's pid 1.
    pub(crate) fn of(pid: libc::pid_t) -> Result<Namespaces, TraceError> {
        // The mount namespace last: joining it changes the root.
        let kinds = [
            ("ipc", libc::CLONE_NEWIPC),
            ("uts", libc::CLONE_NEWUTS),
            ("net", libc::CLONE_NEWNET),
            ("pid", libc::CLONE_NEWPID),
            ("mnt", libc::CLONE_NEWNS),
        ];
        let mut fds = Vec::new();
        for (name, flag) in kinds {
            let path = PathBuf::from(format!("/proc/{pid}/ns/{name}"));
            let f =
                std::fs::File::open(&path).map_err(|e| TraceError::io("cannot open", &path, e))?;
            fds.push((OwnedFd::from(f), flag));
        }
        Ok(Namespaces { fds })
    }

    /// The network namespace, for probes.
    pub(crate) fn net(&self) -> Option<&OwnedFd> {
        self.fds
            .iter()
            .find(|(_, f)| *f == libc::CLONE_NEWNET)
            .map(|(fd, _)| fd)
    }
}

/// A program run inside a running sandbox (an exec probe): joins its
/// namespaces, then forks into its pid namespace and launches there; the
/// intermediate process exits with the program's status.
///
/// SAFETY: call only in a freshly forked child; raw syscalls on prepared memory.
unsafe fn joined_child(
    ns: &[(RawFd, libc::c_int)],
    filter: &[libc::sock_filter],
    l: &Launch,
    stdio: [RawFd; 3],
    err_fd: RawFd,
) -> ! {
    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    become_tracee(err_fd);
    for (fd, flag) in ns {
        check(libc::setns(*fd, *flag) as libc::c_long, err_fd, STEP_SETNS);
    }
    redirect(stdio, err_fd);
    install_filter(filter, err_fd);
    let child = libc::fork();
    if child < 0 {
        fail(err_fd, STEP_FORK);
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
        if rc < 0 && *libc::__errno_location() != libc::EINTR {
            libc::_exit(127);
        }
    }
    // The launched program's failure report already went through the pipe; keep the pipe closed-on-exit.
    if libc::WIFEXITED(status) {
        libc::_exit(libc::WEXITSTATUS(status));
    }
    libc::_exit(128 + libc::WTERMSIG(status))
}

/// Starts `launch` inside the sandbox whose namespaces are `ns`, traced by the calling thread.
pub(crate) fn spawn_joined(
    ns: &Namespaces,
    launch: &Launch,
    stdio: &Stdio,
    err_write: &OwnedFd,
) -> Result<libc::pid_t, TraceError> {
    let raw: Vec<(RawFd, libc::c_int)> =
        ns.fds.iter().map(|(fd, f)| (fd.as_raw_fd(), *f)).collect();
    let filter = crate::filter::program();
    let fds = stdio.raw();
    let err_fd = err_write.as_raw_fd();
    // SAFETY: as in `spawn`; the child runs only `joined_child`.
    let pid = unsafe {
        let rc = libc::fork();
        if rc == 0 {
            joined_child(&raw, &filter, launch, fds, err_fd);
        }
        rc
    };
    if pid < 0 {
        return Err(TraceError::Sys("cannot fork", nix::errno::Errno::last()));
    }
    Ok(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_read_as_words() {
        let mut msg = [0u8; 8];
        msg[..4].copy_from_slice(&STEP_EXEC.to_ne_bytes());
        msg[4..].copy_from_slice(&libc::ENOENT.to_ne_bytes());
        let text = describe_failure(msg, "/usr/sbin/nginx");
        assert!(text.contains("cannot start /usr/sbin/nginx"), "{text}");
        assert!(text.contains("interpreter or ELF loader"), "{text}");
        msg[..4].copy_from_slice(&STEP_PROC.to_ne_bytes());
        assert!(describe_failure(msg, "x").contains("mount /proc"));
    }

    #[test]
    fn launch_tries_every_path_directory() {
        let l = Launch::new(
            &["nginx".into()],
            &[],
            &["/usr/sbin".into(), "/bin/".into()],
            "/",
            (0, 0, &[]),
        )
        .unwrap();
        let c: Vec<_> = l
            .candidates
            .iter()
            .map(|c| c.to_str().unwrap().to_string())
            .collect();
        assert_eq!(c, ["/usr/sbin/nginx", "/bin/nginx"]);
        assert!(Launch::new(&[], &[], &[], "/", (0, 0, &[])).is_err());
        assert!(Launch::new(&["a\0b".into()], &[], &[], "/", (0, 0, &[])).is_err());
    }
}
