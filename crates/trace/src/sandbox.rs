//! The sandbox: the mechanism that applies a [`Policy`] to one program. A
//! process in new user, mount, pid, uts, ipc and (by default) network
//! namespaces, pivoted into a private copy of the image root, with `/proc`,
//! `/dev` and `/sys` as `docker run` gives them, capabilities, seccomp filter,
//! limits and identity from the policy and the image — and under the tracer.
//!
//! Everything the child runs is prepared here, before `clone`; the child side
//! (async-signal-safe) is [`crate::child`].

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::policy::{MountKind, Policy};
use crate::rootfs::RootDir;
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

pub use whittle_image::unpack::DeferredOwner;

/// What to run, and as whom.
#[derive(Clone, Debug)]
pub struct Sandbox {
    /// The unpacked image root (a private copy: the run may write to it), owned as
    /// the policy's id map says.
    pub root: PathBuf,
    /// The command line; `argv[0]` is looked up in `path` when it has no `/`.
    pub argv: Vec<String>,
    /// The whole environment.
    pub env: Vec<String>,
    /// Directories to search for `argv[0]`, inside the root.
    pub path: Vec<String>,
    /// Working directory inside the root.
    pub workdir: String,
    /// User (inside the user namespace).
    pub uid: u32,
    /// Primary group.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// The network.
    pub network: Network,
    /// Host name inside.
    pub hostname: String,
    /// Stop on file syscalls (false: run in the same sandbox untraced, for build steps).
    pub trace_files: bool,
    /// Also stop on every other call the filter does not refuse, and record which
    /// calls the program made (for a seccomp profile; costs a stop per call).
    pub record_syscalls: bool,
    /// The confinement.
    pub policy: Policy,
    /// Owners to give inside the namespace.
    pub owners: Vec<DeferredOwner>,
}

/// The steps of the child's setup, as reported through the error pipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Step {
    Private,
    Bind,
    InsideRoot,
    Proc,
    Dev,
    Device,
    DevLink,
    Shm,
    Mask,
    ReadOnly,
    Hostname,
    Loopback,
    Pivot,
    Umount,
    Owners,
    Seccomp,
    Rlimit,
    Capabilities,
    Groups,
    Gid,
    Uid,
    Workdir,
    Exec,
    TraceMe,
    Setns,
    Fork,
    Stdio,
}

impl Step {
    const ALL: [Step; 27] = [
        Step::Private,
        Step::Bind,
        Step::InsideRoot,
        Step::Proc,
        Step::Dev,
        Step::Device,
        Step::DevLink,
        Step::Shm,
        Step::Mask,
        Step::ReadOnly,
        Step::Hostname,
        Step::Loopback,
        Step::Pivot,
        Step::Umount,
        Step::Owners,
        Step::Seccomp,
        Step::Rlimit,
        Step::Capabilities,
        Step::Groups,
        Step::Gid,
        Step::Uid,
        Step::Workdir,
        Step::Exec,
        Step::TraceMe,
        Step::Setns,
        Step::Fork,
        Step::Stdio,
    ];

    fn words(self) -> &'static str {
        match self {
            Step::Private => "make mounts private",
            Step::Bind => "bind-mount the root (nodev)",
            Step::InsideRoot => "become root of its user namespace",
            Step::Proc => "mount /proc",
            Step::Dev => "mount /dev",
            Step::Device => "bind a device node or an engine file (/etc/hosts) into the root",
            Step::DevLink => "make a link in /dev",
            Step::Shm => "mount a filesystem in /dev or /sys",
            Step::Mask => "mask a path of /proc or /sys",
            Step::ReadOnly => "make a path of /proc read-only",
            Step::Hostname => "set the host name",
            Step::Loopback => "bring loopback up",
            Step::Pivot => "pivot into the root",
            Step::Umount => "detach the old root",
            Step::Owners => "give files their owners inside the user namespace",
            Step::Seccomp => "install the seccomp filter",
            Step::Rlimit => "set a resource limit",
            Step::Capabilities => "drop capabilities",
            Step::Groups => "set groups",
            Step::Gid => "set the group id",
            Step::Uid => "set the user id",
            Step::Workdir => "enter the working directory",
            Step::Exec => "start the program",
            Step::TraceMe => "become traceable",
            Step::Setns => "join the sandbox's namespaces",
            Step::Fork => "fork into the pid namespace",
            Step::Stdio => "redirect standard streams",
        }
    }
}

/// Turns an error-pipe message into words.
pub(crate) fn describe_failure(msg: [u8; 8], argv0: &str) -> String {
    let step = u32::from_ne_bytes([msg[0], msg[1], msg[2], msg[3]]);
    let errno = i32::from_ne_bytes([msg[4], msg[5], msg[6], msg[7]]);
    let err = std::io::Error::from_raw_os_error(errno);
    match Step::ALL.get(step as usize).copied() {
        Some(Step::Exec) => match errno {
            libc::ENOENT => format!(
                "cannot start {argv0}: no such program in the image, or its interpreter or ELF loader is missing ({err})"
            ),
            libc::ENOEXEC => format!("cannot start {argv0}: not a program this machine can run ({err})"),
            libc::EACCES => format!("cannot start {argv0}: not executable ({err})"),
            _ => format!("cannot start {argv0}: {err}"),
        },
        s => format!(
            "the sandbox could not {}: {err}",
            s.map_or("start", Step::words)
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

/// `/inside` as a path relative to the root (the child works from the root).
fn relative(inside: &str) -> Result<CString, TraceError> {
    let rel = inside.trim_start_matches('/');
    cstring(if rel.is_empty() { b"." } else { rel.as_bytes() })
}

/// A null-terminated array of pointers into `strings` (which must outlive it).
pub(crate) struct CArgv {
    _strings: Vec<CString>,
    pub(crate) ptrs: Vec<*const libc::c_char>,
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

/// How to run one program once inside: limits, capabilities, identity,
/// working directory, command.
pub(crate) struct Launch {
    pub(crate) candidates: Vec<CString>,
    pub(crate) argv: CArgv,
    pub(crate) env: CArgv,
    pub(crate) workdir: CString,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) groups: Vec<libc::gid_t>,
    pub(crate) set_groups: bool,
    /// (resource, soft, hard)
    pub(crate) rlimits: Vec<(crate::policy::RlimitResource, u64, u64)>,
    pub(crate) caps: u64,
    pub(crate) cap_last: u32,
    pub(crate) no_new_privileges: bool,
}

/// The highest capability this kernel knows.
fn cap_last() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

impl Launch {
    /// `memory_rlimit`: enforce the memory limit with `RLIMIT_DATA` (no cgroup holds the run).
    pub(crate) fn new(
        s: &Sandbox,
        argv: &[String],
        memory_rlimit: bool,
    ) -> Result<Launch, TraceError> {
        let Some(argv0) = argv.first() else {
            return Err(TraceError::Config(
                "nothing to run: the command is empty".into(),
            ));
        };
        let candidates = if argv0.contains('/') {
            vec![cstring(argv0.as_bytes())?]
        } else {
            s.path
                .iter()
                .map(|d| cstring(format!("{}/{argv0}", d.trim_end_matches('/')).as_bytes()))
                .collect::<Result<_, _>>()?
        };
        if candidates.is_empty() {
            return Err(TraceError::Config(format!(
                "{argv0} has no directory and the image has no PATH to find it in"
            )));
        }
        let workdir = if s.workdir.is_empty() {
            "/"
        } else {
            &s.workdir
        };
        let p = &s.policy;
        let mut rlimits = Vec::new();
        for r in &p.rlimits {
            // The hard limit cannot be raised without CAP_SYS_RESOURCE on the host.
            let mut cur = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: getrlimit fills the struct.
            let hard = if unsafe { libc::getrlimit(r.resource as _, &mut cur) } == 0 {
                r.hard.min(cur.rlim_max)
            } else {
                r.hard
            };
            rlimits.push((r.resource, r.soft.min(hard), hard));
        }
        if let Some(n) = p.pids_limit {
            // The tracer ends the run when N processes live; the kernel refuses forks a
            // little above as the backstop (exited children it still counts until
            // their parent reaps them, which the tracer does not see).
            let backstop = n.saturating_add(n / 4).saturating_add(8);
            rlimits.push((libc::RLIMIT_NPROC, backstop, backstop));
        }
        if let (Some(n), true) = (p.memory_limit, memory_rlimit) {
            rlimits.push((libc::RLIMIT_DATA, n, n));
        }
        Ok(Launch {
            candidates,
            argv: CArgv::new(argv)?,
            env: CArgv::new(&s.env)?,
            workdir: cstring(workdir.as_bytes())?,
            uid: s.uid,
            gid: s.gid,
            groups: s.groups.clone(),
            set_groups: p.ids.can_set_groups(),
            rlimits,
            caps: p.capabilities.mask,
            cap_last: cap_last(),
            no_new_privileges: p.no_new_privileges,
        })
    }
}

/// What one mount-table step does (see [`crate::child`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OpKind {
    /// `mount(source, target, fstype, flags, data)`.
    Mount,
    /// `mkdir` then mount.
    MkdirMount,
    /// An empty file, then a bind mount of the host's `source` on it.
    BindFile,
    /// A bind mount of the host's `source` onto an existing file.
    BindOnto,
    /// A symlink to `source`.
    Symlink,
    /// An empty read-only tmpfs over a directory, `/dev/null` over a file; nothing when missing.
    Mask,
    /// Bind onto itself, remount read-only; nothing when missing.
    ReadOnly,
}

/// One step of the child's mount table, paths relative to the root.
pub(crate) struct Op {
    pub(crate) kind: OpKind,
    pub(crate) source: Option<CString>,
    pub(crate) target: CString,
    pub(crate) fstype: Option<CString>,
    pub(crate) flags: libc::c_ulong,
    pub(crate) data: Option<CString>,
    pub(crate) optional: bool,
    pub(crate) step: Step,
}

/// An owner to give, as the child needs it.
pub(crate) struct Owner {
    pub(crate) path: CString,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) mode: libc::mode_t,
    pub(crate) symlink: bool,
}

/// Everything the sandbox's first process needs, made before `clone`.
pub(crate) struct Prepared {
    pub(crate) root: CString,
    pub(crate) become_root: bool,
    /// Mounts made with the caller's host ids, before becoming the namespace's root
    /// (their sources sit in the caller's private directories).
    pub(crate) early_ops: Vec<Op>,
    /// Mounts made as the namespace's root (what they create must be owned by a mapped id).
    pub(crate) ops: Vec<Op>,
    pub(crate) hostname: Vec<u8>,
    pub(crate) loopback: bool,
    pub(crate) owners: Vec<Owner>,
    /// The seccomp program (denials always; file calls stop when tracing).
    pub(crate) filter: Vec<libc::sock_filter>,
    pub(crate) launch: Launch,
}

/// Where the engine-provided files of a run are written: beside its root, removed with the run.
pub(crate) fn engine_dir(root: &Path) -> PathBuf {
    let mut name = root.as_os_str().to_os_string();
    name.push(".engine");
    PathBuf::from(name)
}

/// The mount table of a policy, as the child's steps.
fn mount_ops(p: &Policy) -> Result<Vec<Op>, TraceError> {
    let c = |s: &str| cstring(s.as_bytes());
    let mut ops = Vec::new();
    for m in &p.mounts {
        let step = match m.destination {
            "/proc" => Step::Proc,
            "/dev" => Step::Dev,
            _ => Step::Shm,
        };
        ops.push(match &m.kind {
            MountKind::Fs { fstype, data } => Op {
                kind: if matches!(m.destination, "/proc" | "/dev" | "/sys") {
                    OpKind::Mount
                } else {
                    OpKind::MkdirMount
                },
                source: Some(c(fstype)?),
                target: relative(m.destination)?,
                fstype: Some(c(fstype)?),
                flags: m.flags as libc::c_ulong,
                data: (!data.is_empty()).then(|| c(data)).transpose()?,
                optional: m.optional,
                step,
            },
            MountKind::BindHostFile { source } => Op {
                kind: OpKind::BindFile,
                source: Some(c(source)?),
                target: relative(m.destination)?,
                fstype: None,
                flags: 0,
                data: None,
                optional: m.optional,
                step: Step::Device,
            },
        });
        if m.destination == "/dev" {
            for l in &p.dev_links {
                ops.push(Op {
                    kind: OpKind::Symlink,
                    source: Some(c(l.target)?),
                    target: relative(&format!("/dev/{}", l.name))?,
                    fstype: None,
                    flags: 0,
                    data: None,
                    optional: false,
                    step: Step::DevLink,
                });
            }
        }
    }
    for (paths, kind, step) in [
        (&p.masked_paths, OpKind::Mask, Step::Mask),
        (&p.readonly_paths, OpKind::ReadOnly, Step::ReadOnly),
    ] {
        for path in paths.iter() {
            ops.push(Op {
                kind,
                source: None,
                target: relative(path)?,
                fstype: None,
                flags: 0,
                data: None,
                optional: false,
                step,
            });
        }
    }
    Ok(ops)
}

impl Prepared {
    pub(crate) fn new(s: &Sandbox, memory_rlimit: bool) -> Result<Prepared, TraceError> {
        let inside_root = s.policy.ids.to_host(0, 0);
        let root = RootDir::open(&s.root, inside_root)?;
        for dir in ["proc", "dev", "sys"] {
            root.mount_point(dir)?;
        }
        // The working directory is created when missing, as container runtimes do.
        let workdir = if s.workdir.is_empty() {
            "/"
        } else {
            &s.workdir
        };
        root.mkdir_all(workdir)?;
        let owners = s
            .owners
            .iter()
            .map(|o| {
                Ok(Owner {
                    path: cstring(o.path.as_bytes())?,
                    uid: o.uid,
                    gid: o.gid,
                    mode: o.mode & 0o7777,
                    symlink: o.symlink,
                })
            })
            .collect::<Result<_, TraceError>>()?;
        let mut early_ops = Vec::new();
        if !s.policy.engine_files.is_empty() {
            let dir = engine_dir(&s.root);
            std::fs::create_dir_all(&dir).map_err(|e| TraceError::io("cannot create", &dir, e))?;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| TraceError::io("cannot chmod", &dir, e))?;
            let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
            for (i, name) in s.policy.engine_files.iter().enumerate() {
                let source = dir.join(format!("{i}"));
                let text = crate::policy::engine_file(name, &s.hostname, &host_resolv);
                std::fs::write(&source, text)
                    .map_err(|e| TraceError::io("cannot write", &source, e))?;
                std::fs::set_permissions(&source, std::fs::Permissions::from_mode(0o644))
                    .map_err(|e| TraceError::io("cannot chmod", &source, e))?;
                // Writable by the container's root, as under Docker.
                if let Some((uid, gid)) = inside_root {
                    std::os::unix::fs::chown(&source, Some(uid), Some(gid))
                        .map_err(|e| TraceError::io("cannot change the owner of", &source, e))?;
                }
                let target = root.mount_file(name)?;
                // Bound with the caller's host ids, which reach the file beside the root.
                early_ops.push(Op {
                    kind: OpKind::BindOnto,
                    source: Some(cstring(source.as_os_str().as_bytes())?),
                    target: cstring(target.as_bytes())?,
                    fstype: None,
                    flags: 0,
                    data: None,
                    optional: false,
                    step: Step::Device,
                });
            }
        }
        Ok(Prepared {
            root: cstring(s.root.as_os_str().as_bytes())?,
            // Root of the namespace when 0 is mapped; a single-id map has only the program's id.
            become_root: inside_root.is_some(),
            early_ops,
            ops: mount_ops(&s.policy)?,
            hostname: s.hostname.as_bytes().to_vec(),
            loopback: s.network == Network::Loopback,
            owners,
            filter: crate::filter::program(&s.policy.seccomp, stops_of(s))?,
            launch: Launch::new(s, &s.argv, memory_rlimit)?,
        })
    }

    /// The namespaces the first process gets.
    pub(crate) fn clone_flags(&self) -> libc::c_int {
        let mut flags = libc::CLONE_NEWUSER
            | libc::CLONE_NEWNS
            | libc::CLONE_NEWPID
            | libc::CLONE_NEWUTS
            | libc::CLONE_NEWIPC;
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

    pub(crate) fn raw(&self) -> [RawFd; 3] {
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

/// Starts the sandbox's first process (pid 1 of its namespaces) as a traced child
/// of the calling thread, which must be the tracer thread. Returns its pid and
/// the write end of the pipe it waits on: write its id maps, then [`release`] it.
pub(crate) fn spawn(
    p: &Prepared,
    stdio: &Stdio,
    err_write: &OwnedFd,
) -> Result<(libc::pid_t, OwnedFd), TraceError> {
    let fds = stdio.raw();
    let err_fd = err_write.as_raw_fd();
    let (sync_read, sync_write) = pipe()?;
    let sync_fd = sync_read.as_raw_fd();
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
            crate::child::sandbox_child(p, fds, sync_fd, err_fd);
        }
        rc
    };
    if pid < 0 {
        return Err(TraceError::Sys(
            "cannot create the sandbox's namespaces (user namespaces may be disabled: see /proc/sys/user/max_user_namespaces)",
            nix::errno::Errno::last(),
        ));
    }
    drop(sync_read);
    Ok((pid as libc::pid_t, sync_write))
}

/// Lets a child waiting in `wait_for_parent` go on.
pub(crate) fn release(sync_write: OwnedFd) -> Result<(), TraceError> {
    nix::unistd::write(&sync_write, b"g")
        .map(|_| ())
        .map_err(|e| TraceError::Sys("cannot start the sandbox", e))
}

/// The namespaces of a running sandbox, opened so that later processes can join it.
pub(crate) struct Namespaces {
    fds: Vec<(OwnedFd, libc::c_int)>,
    become_root: bool,
}

impl Namespaces {
    /// Opens `/proc/PID/ns/*` of the sandbox's pid 1.
    pub(crate) fn of(pid: libc::pid_t, become_root: bool) -> Result<Namespaces, TraceError> {
        // The user namespace first (it owns the others), the mount namespace last
        // (joining it changes the root).
        let kinds = [
            ("user", libc::CLONE_NEWUSER),
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
        Ok(Namespaces { fds, become_root })
    }

    fn find(&self, kind: libc::c_int) -> Option<&OwnedFd> {
        self.fds.iter().find(|(_, f)| *f == kind).map(|(fd, _)| fd)
    }

    /// The network namespace, for probes.
    pub(crate) fn net(&self) -> Option<&OwnedFd> {
        self.find(libc::CLONE_NEWNET)
    }

    /// The user namespace, which owns the others.
    pub(crate) fn user(&self) -> Option<&OwnedFd> {
        self.find(libc::CLONE_NEWUSER)
    }
}

/// Starts `launch` inside the sandbox whose namespaces are `ns`, traced by the calling thread.
pub(crate) fn spawn_joined(
    ns: &Namespaces,
    filter: &[libc::sock_filter],
    launch: &Launch,
    stdio: &Stdio,
    err_write: &OwnedFd,
) -> Result<libc::pid_t, TraceError> {
    let raw: Vec<(RawFd, libc::c_int)> =
        ns.fds.iter().map(|(fd, f)| (fd.as_raw_fd(), *f)).collect();
    let fds = stdio.raw();
    let err_fd = err_write.as_raw_fd();
    // SAFETY: as in `spawn`; the child runs only `joined_child`.
    let pid = unsafe {
        let rc = libc::fork();
        if rc == 0 {
            crate::child::joined_child(&raw, ns.become_root, filter, launch, fds, err_fd);
        }
        rc
    };
    if pid < 0 {
        return Err(TraceError::Sys("cannot fork", nix::errno::Errno::last()));
    }
    Ok(pid)
}

/// Which calls of the sandbox stop for the tracer.
fn stops_of(s: &Sandbox) -> crate::filter::Stops {
    use crate::filter::Stops;
    match (s.trace_files, s.record_syscalls) {
        (_, true) => Stops::EveryCall,
        (true, false) => Stops::FileCalls,
        (false, false) => Stops::Never,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idmap::IdMapping;

    #[test]
    fn failures_read_as_words() {
        let mut msg = [0u8; 8];
        msg[..4].copy_from_slice(&(Step::Exec as u32).to_ne_bytes());
        msg[4..].copy_from_slice(&libc::ENOENT.to_ne_bytes());
        let text = describe_failure(msg, "/usr/sbin/nginx");
        assert!(text.contains("cannot start /usr/sbin/nginx"), "{text}");
        assert!(text.contains("interpreter or ELF loader"), "{text}");
        msg[..4].copy_from_slice(&(Step::Proc as u32).to_ne_bytes());
        assert!(describe_failure(msg, "x").contains("mount /proc"));
        for (i, s) in Step::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i, "{s:?} out of order");
        }
    }

    fn sandbox(argv: &[&str], path: &[&str]) -> Sandbox {
        Sandbox {
            root: PathBuf::from("/nonexistent"),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            env: vec![],
            path: path.iter().map(|s| s.to_string()).collect(),
            workdir: "/".into(),
            uid: 0,
            gid: 0,
            groups: vec![],
            network: Network::Loopback,
            hostname: "h".into(),
            trace_files: true,
            record_syscalls: false,
            policy: Policy::docker_default(IdMapping::single(0, 0, 1000, 1000)),
            owners: vec![],
        }
    }

    #[test]
    fn launch_tries_every_path_directory() {
        let s = sandbox(&["nginx"], &["/usr/sbin", "/bin/"]);
        let l = Launch::new(&s, &s.argv, false).unwrap();
        let c: Vec<_> = l
            .candidates
            .iter()
            .map(|c| c.to_str().unwrap().to_string())
            .collect();
        assert_eq!(c, ["/usr/sbin/nginx", "/bin/nginx"]);
        assert!(Launch::new(&s, &[], false).is_err());
        assert!(Launch::new(&s, &["a\0b".into()], false).is_err());
        let with_data = Launch::new(&s, &s.argv, true).unwrap();
        assert!(with_data.rlimits.iter().any(|r| r.0 == libc::RLIMIT_DATA));
        assert!(!l.rlimits.iter().any(|r| r.0 == libc::RLIMIT_DATA));
        // The pids limit is an RLIMIT_NPROC for the program; single-id maps cannot set groups.
        assert!(l.rlimits.iter().any(|r| r.0 == libc::RLIMIT_NPROC));
        assert!(!l.set_groups);
        assert_eq!(l.caps, 0xa80425fb);
    }

    #[test]
    fn the_mount_table_follows_the_policy() {
        let s = sandbox(&["/x"], &[]);
        let ops = mount_ops(&s.policy).unwrap();
        let find = |t: &str| {
            ops.iter()
                .find(|o| o.target.to_str().unwrap() == t)
                .unwrap()
        };
        assert_eq!(find("proc").kind, OpKind::Mount);
        assert_eq!(find("dev/null").kind, OpKind::BindFile);
        assert_eq!(find("dev/ptmx").kind, OpKind::Symlink);
        assert_eq!(find("proc/kcore").kind, OpKind::Mask);
        assert_eq!(find("proc/sys").kind, OpKind::ReadOnly);
        // /dev before what is made in it, masks after every mount.
        let at = |t: &str| {
            ops.iter()
                .position(|o| o.target.to_str().unwrap() == t)
                .unwrap()
        };
        assert!(at("dev") < at("dev/null") && at("dev") < at("dev/shm"));
        assert!(at("sys") < at("sys/firmware") && at("proc/sys") > at("dev/mqueue"));
    }
}
