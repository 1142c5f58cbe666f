//! The tracer: one thread that starts the sandbox, owns every ptrace request,
//! and records each path a file syscall names, across the whole process tree.
//!
//! Stops come only from the seccomp filter (one stop per traced call, none for
//! the rest), fork/clone/exec events and signals. The syscall's result is not
//! waited for: a path is kept when it exists in the original image, so whether
//! this run found it (or created it) does not change what is kept, and skipping
//! the exit stop halves the cost of tracing.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::cgroup::MemoryCgroup;
use crate::sandbox::{self, Launch, Namespaces, Prepared, Sandbox, Stdio};
use crate::syscalls::{self, Abi, Access};
use crate::TraceError;

/// One path the program named.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TracedPath {
    /// What the first call naming it did.
    pub access: Access,
    /// The program (as exec'd) of the process that named it first.
    pub by: String,
}

/// Every path the run named, as seen inside the sandbox (absolute, not resolved through symlinks).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Trace {
    /// By path.
    pub paths: BTreeMap<String, TracedPath>,
    /// Processes seen (including threads).
    pub processes: u64,
    /// Traced calls seen.
    pub calls: u64,
    /// The limit of the policy that ended the run, in words.
    pub limit: Option<String>,
    /// The system calls (ABI, number) the program made, when the run recorded them,
    /// each with the program that made it first: from its first exec on, in every
    /// process and exec probe (whittle's own setup before the exec is not the program's).
    #[serde(skip)]
    pub syscalls: BTreeMap<(Abi, u32), String>,
}

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Exit {
    /// It exited with this code.
    Code(i32),
    /// A signal ended it.
    Signal(i32),
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exit code {c}"),
            Exit::Signal(s) => write!(f, "killed by signal {s}"),
        }
    }
}

fn exit_of(status: libc::c_int) -> Exit {
    if libc::WIFEXITED(status) {
        Exit::Code(libc::WEXITSTATUS(status))
    } else {
        Exit::Signal(libc::WTERMSIG(status))
    }
}

/// Requests to the tracer thread.
pub(crate) enum Command {
    /// Run a program inside the sandbox (an exec probe); stdout/stderr to these files.
    Exec {
        argv: Vec<String>,
        stdout: PathBuf,
        stderr: PathBuf,
    },
    /// Send this signal to the sandbox's pid 1.
    Signal(libc::c_int),
}

/// What the tracer thread reports.
pub(crate) enum Event {
    /// The program started (its exec succeeded): its host pid, and the sandbox's
    /// user and network namespaces.
    Started(libc::pid_t, Option<(OwnedFd, OwnedFd)>),
    /// It could not start.
    StartFailed(String),
    /// An exec probe ended.
    ExecDone(Result<Exit, String>),
    /// The sandbox's pid 1 ended.
    AppExited(Exit),
    /// Every traced process is gone.
    Finished(Trace),
}

/// Sandboxes alive in this process, so an interrupted whittle can kill them first.
static RUNNING: Mutex<Vec<libc::pid_t>> = Mutex::new(Vec::new());

/// SIGKILLs every running sandbox (the pid namespace dies with its pid 1). For
/// Ctrl-C handlers: afterwards their temporary roots can be removed.
pub fn kill_running() {
    if let Ok(pids) = RUNNING.lock() {
        for pid in pids.iter() {
            // SAFETY: kill has no memory effects.
            unsafe { libc::kill(*pid, libc::SIGKILL) };
        }
    }
}

/// Wakes the tracer thread out of `waitpid` so it reads its commands.
pub(crate) struct Waker {
    tid: AtomicI32,
}

const WAKE_SIGNAL: libc::c_int = libc::SIGUSR1;

extern "C" fn on_wake(_: libc::c_int) {}

impl Waker {
    pub(crate) fn new() -> Arc<Waker> {
        // A handler without SA_RESTART makes the tracer's blocking waitpid return EINTR.
        // SAFETY: sigaction with a handler that does nothing.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_wake as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(WAKE_SIGNAL, &sa, std::ptr::null_mut());
        }
        Arc::new(Waker {
            tid: AtomicI32::new(0),
        })
    }

    /// Sends `cmd` and pokes the tracer until it has taken it (a poke can land
    /// just before it blocks, so one is not enough).
    pub(crate) fn send(&self, tx: &Sender<(Command, Sender<()>)>, cmd: Command) -> bool {
        let (ack_tx, ack_rx) = std::sync::mpsc::channel();
        if tx.send((cmd, ack_tx)).is_err() {
            return false;
        }
        loop {
            let tid = self.tid.load(Ordering::Acquire);
            if tid > 0 {
                // SAFETY: tgkill to a thread of this process; the handler does nothing.
                unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, WAKE_SIGNAL) };
            }
            match ack_rx.recv_timeout(Duration::from_millis(20)) {
                Ok(()) => return true,
                Err(RecvTimeoutError::Disconnected) => return false,
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }
}

#[derive(Clone)]
struct Proc {
    exe: Arc<str>,
    /// Whether it runs the program (it, or the process it was forked from, has
    /// exec'd) rather than whittle's setup.
    execd: bool,
    /// Waiting for the SIGSTOP every new tracee starts with.
    fresh: bool,
    /// The path of an `execve` in flight.
    exec: Option<Arc<str>>,
}

struct ExecProbe {
    pid: libc::pid_t,
    failure: OwnedFd,
    argv0: String,
}

struct Tracer {
    root_prefix: String,
    procs: HashMap<libc::pid_t, Proc>,
    trace: Trace,
    pid1: libc::pid_t,
    pid1_failure: Option<OwnedFd>,
    argv0: String,
    events: Sender<Event>,
    sandbox: Sandbox,
    ns: Option<Namespaces>,
    probes: Vec<ExecProbe>,
    started: bool,
    alive: Arc<std::sync::atomic::AtomicBool>,
    /// Whether processes joining the sandbox become root of its user namespace.
    become_root: bool,
    /// The seccomp program, for exec probes.
    filter: Vec<libc::sock_filter>,
    /// The policy's pids limit.
    pids_limit: Option<u64>,
    /// The run's memory cgroup, where whittle could make one.
    cgroup: Option<MemoryCgroup>,
    /// Record every call the program makes (the filter stops on all of them).
    record_syscalls: bool,
}

const OPTIONS: libc::c_int = libc::PTRACE_O_TRACESECCOMP
    | libc::PTRACE_O_TRACEFORK
    | libc::PTRACE_O_TRACEVFORK
    | libc::PTRACE_O_TRACECLONE
    | libc::PTRACE_O_TRACEEXEC
    | libc::PTRACE_O_EXITKILL;

fn ptrace_cont(pid: libc::pid_t, sig: libc::c_int) {
    // SAFETY: PTRACE_CONT takes no pointers; a vanished tracee only makes it fail.
    unsafe { libc::ptrace(libc::PTRACE_CONT, pid, 0, sig as libc::c_long) };
}

fn event_msg(pid: libc::pid_t) -> Option<libc::c_ulong> {
    let mut msg: libc::c_ulong = 0;
    // SAFETY: GETEVENTMSG writes one unsigned long to the pointer given.
    let rc = unsafe {
        libc::ptrace(
            libc::PTRACE_GETEVENTMSG,
            pid,
            0,
            &mut msg as *mut libc::c_ulong,
        )
    };
    (rc == 0).then_some(msg)
}

/// `struct ptrace_syscall_info` as filled for a seccomp stop.
#[repr(C)]
struct SyscallInfo {
    op: u8,
    pad: [u8; 3],
    arch: u32,
    instruction_pointer: u64,
    stack_pointer: u64,
    nr: u64,
    args: [u64; 6],
    ret_data: u32,
    pad2: u32,
}
/// `ptrace`'s request argument is unsigned in glibc, an `int` in musl.
#[cfg(target_env = "musl")]
const PTRACE_GET_SYSCALL_INFO: libc::c_int = 0x420e;
#[cfg(not(target_env = "musl"))]
const PTRACE_GET_SYSCALL_INFO: libc::c_uint = 0x420e;
const PTRACE_SYSCALL_INFO_SECCOMP: u8 = 3;

/// The ABI, number and six arguments of the call a tracee is stopped in.
///
/// The kernel tells the ABI (an `int 0x80` from a 64-bit program is an i386
/// call, with its arguments in other registers), so both are read right.
fn syscall_args(pid: libc::pid_t) -> Option<(Abi, u64, [u64; 6])> {
    // SAFETY: the struct is plain data; the kernel writes at most its size.
    let mut info: SyscallInfo = unsafe { std::mem::zeroed() };
    let rc = unsafe {
        libc::ptrace(
            PTRACE_GET_SYSCALL_INFO,
            pid,
            std::mem::size_of::<SyscallInfo>(),
            &mut info as *mut SyscallInfo,
        )
    };
    if rc <= 0 || info.op != PTRACE_SYSCALL_INFO_SECCOMP {
        return None;
    }
    let abi = Abi::from_audit_arch(info.arch)?;
    let mut args = info.args;
    if abi == Abi::I386 {
        // i386 arguments are 32-bit registers.
        for a in &mut args {
            *a &= 0xffff_ffff;
        }
    }
    Some((abi, info.nr, args))
}

/// Reads a NUL-terminated string of at most PATH_MAX bytes from the tracee, a page at a time.
fn read_cstring(pid: libc::pid_t, addr: u64) -> Option<Vec<u8>> {
    const PAGE: u64 = 4096;
    const MAX: usize = 4096;
    let mut out = Vec::new();
    let mut at = addr;
    let mut buf = [0u8; PAGE as usize];
    while out.len() < MAX {
        let len = (PAGE - at % PAGE) as usize;
        let local = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: len,
        };
        let remote = libc::iovec {
            iov_base: at as *mut libc::c_void,
            iov_len: len,
        };
        // SAFETY: reads at most `len` bytes into `buf`, which holds a page.
        let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
        if n <= 0 {
            return None;
        }
        let got = &buf[..n as usize];
        if let Some(end) = got.iter().position(|b| *b == 0) {
            out.extend_from_slice(&got[..end]);
            return Some(out);
        }
        out.extend_from_slice(got);
        at += n as u64;
    }
    None
}

/// Joins `rel` onto `base` lexically, dropping `.` and empty components.
fn join(base: &str, rel: &str) -> String {
    let mut out = String::with_capacity(base.len() + rel.len() + 1);
    let full = if rel.starts_with('/') {
        rel.to_string()
    } else {
        format!("{base}/{rel}")
    };
    for part in full.split('/') {
        if part.is_empty() || part == "." {
            continue;
        }
        out.push('/');
        out.push_str(part);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

impl Tracer {
    /// A `/proc/PID/...` link of a tracee, as a path inside the sandbox.
    fn proc_link(&self, pid: libc::pid_t, what: &str) -> Option<String> {
        let target = std::fs::read_link(format!("/proc/{pid}/{what}")).ok()?;
        let s = target.to_str()?;
        // Seen from outside, a link may show the host path of the root.
        match s.strip_prefix(&self.root_prefix) {
            Some("") => Some("/".into()),
            Some(rest) if rest.starts_with('/') => Some(rest.to_string()),
            _ => Some(s.to_string()),
        }
    }

    /// Records a path the first time it is named.
    fn note(&mut self, path: String, access: Access, by: &str) {
        self.trace.paths.entry(path).or_insert_with(|| TracedPath {
            access,
            by: by.to_string(),
        });
    }

    fn on_seccomp(&mut self, pid: libc::pid_t) {
        let Some((abi, nr, args)) = syscall_args(pid) else {
            return;
        };
        if self.record_syscalls {
            if let (Some(p), Ok(nr)) = (self.procs.get(&pid), u32::try_from(nr)) {
                if p.execd {
                    self.trace
                        .syscalls
                        .entry((abi, nr))
                        .or_insert_with(|| p.exe.to_string());
                }
            }
        }
        let Some(call) = syscalls::lookup(abi, nr) else {
            return;
        };
        self.trace.calls += 1;
        for arg in call.paths {
            let ptr = args[arg.path];
            if ptr == 0 {
                continue;
            }
            let Some(raw) = read_cstring(pid, ptr) else {
                continue;
            };
            let Ok(name) = String::from_utf8(raw) else {
                continue;
            };
            let path = if name.starts_with('/') {
                join("/", &name)
            } else if name.is_empty() {
                // AT_EMPTY_PATH: the call is about an fd already open.
                continue;
            } else {
                let dirfd = arg.dirfd.map(|i| args[i] as i32).unwrap_or(libc::AT_FDCWD);
                let base = if dirfd == libc::AT_FDCWD {
                    self.proc_link(pid, "cwd")
                } else {
                    self.proc_link(pid, &format!("fd/{dirfd}"))
                };
                let Some(base) = base else { continue };
                join(&base, &name)
            };
            let proc = self.procs.get_mut(&pid);
            let exe = proc
                .as_ref()
                .map(|p| p.exe.clone())
                .unwrap_or_else(|| Arc::from(""));
            if call.access == Access::Exec {
                if let Some(p) = proc {
                    p.exec = Some(Arc::from(path.as_str()));
                }
            }
            self.note(path, call.access, &exe);
        }
    }

    fn on_event(&mut self, pid: libc::pid_t, event: libc::c_int) {
        match event {
            libc::PTRACE_EVENT_SECCOMP => self.on_seccomp(pid),
            libc::PTRACE_EVENT_FORK | libc::PTRACE_EVENT_VFORK | libc::PTRACE_EVENT_CLONE => {
                if let Some(child) = event_msg(pid) {
                    let child = child as libc::pid_t;
                    let (exe, execd) = self
                        .procs
                        .get(&pid)
                        .map(|p| (p.exe.clone(), p.execd))
                        .unwrap_or_else(|| (Arc::from(""), false));
                    let entry = self.procs.entry(child).or_insert(Proc {
                        exe: exe.clone(),
                        execd,
                        fresh: true,
                        exec: None,
                    });
                    if entry.exe.is_empty() {
                        entry.exe = exe;
                    }
                    entry.execd |= execd;
                    self.trace.processes += 1;
                    self.check_pids();
                }
            }
            libc::PTRACE_EVENT_EXEC => {
                // A non-leader thread that execs takes over the leader's pid.
                if let Some(former) = event_msg(pid) {
                    let former = former as libc::pid_t;
                    if former != pid {
                        if let Some(p) = self.procs.remove(&former) {
                            self.procs.insert(pid, p);
                        }
                    }
                }
                if let Some(p) = self.procs.get_mut(&pid) {
                    p.execd = true;
                    if let Some(path) = p.exec.take() {
                        p.exe = path;
                    }
                }
                if pid == self.pid1 && !self.started {
                    self.started = true;
                    self.pid1_failure = None;
                    let net = self.ns.as_ref().and_then(|n| {
                        Some((n.user()?.try_clone().ok()?, n.net()?.try_clone().ok()?))
                    });
                    let _ = self.events.send(Event::Started(pid, net));
                }
            }
            _ => {}
        }
        ptrace_cont(pid, 0);
    }

    /// Ends the run when its processes reach the pids limit (the kernel's
    /// RLIMIT_NPROC refuses further forks; this says why the run ended).
    fn check_pids(&mut self) {
        let Some(limit) = self.pids_limit else { return };
        if self.trace.limit.is_none() && self.procs.len() as u64 >= limit {
            self.trace.limit = Some(format!(
                "the program reached the pids limit ({limit} processes and threads; raise it with --pids-limit)"
            ));
            // SAFETY: kill has no memory effects; the pid namespace dies with its pid 1.
            unsafe { libc::kill(self.pid1, libc::SIGKILL) };
        }
    }

    fn on_stop(&mut self, pid: libc::pid_t, sig: libc::c_int) {
        let fresh = match self.procs.get_mut(&pid) {
            Some(p) if p.fresh => {
                p.fresh = false;
                true
            }
            Some(_) => false,
            None => {
                // A new child whose first stop came before its parent's fork event.
                self.procs.insert(
                    pid,
                    Proc {
                        exe: Arc::from(""),
                        execd: false,
                        fresh: false,
                        exec: None,
                    },
                );
                true
            }
        };
        if fresh && sig == libc::SIGSTOP {
            ptrace_cont(pid, 0);
            return;
        }
        if matches!(
            sig,
            libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU
        ) {
            // SAFETY: GETSIGINFO writes a siginfo_t.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            let rc = unsafe {
                libc::ptrace(
                    libc::PTRACE_GETSIGINFO,
                    pid,
                    0,
                    &mut info as *mut libc::siginfo_t,
                )
            };
            if rc < 0 {
                // A group-stop: resume rather than leave the tree stopped forever.
                ptrace_cont(pid, 0);
                return;
            }
        }
        ptrace_cont(pid, sig);
    }

    fn on_exit(&mut self, pid: libc::pid_t, status: libc::c_int) {
        self.procs.remove(&pid);
        if pid == self.pid1 {
            self.alive.store(false, Ordering::Release);
            if !self.started {
                let msg = self
                    .pid1_failure
                    .take()
                    .and_then(|fd| sandbox::read_failure(&fd))
                    .map(|m| sandbox::describe_failure(m, &self.argv0))
                    .unwrap_or_else(|| {
                        format!(
                            "the sandbox ended before the program started ({})",
                            exit_of(status)
                        )
                    });
                let _ = self.events.send(Event::StartFailed(msg));
            }
            let _ = self.events.send(Event::AppExited(exit_of(status)));
            if let Ok(mut running) = RUNNING.lock() {
                running.retain(|p| *p != pid);
            }
        }
        if let Some(i) = self.probes.iter().position(|p| p.pid == pid) {
            let probe = self.probes.remove(i);
            let result = match sandbox::read_failure(&probe.failure) {
                Some(m) => Err(sandbox::describe_failure(m, &probe.argv0)),
                None => Ok(exit_of(status)),
            };
            let _ = self.events.send(Event::ExecDone(result));
        }
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Signal(sig) => {
                // SAFETY: kill has no memory effects.
                unsafe { libc::kill(self.pid1, sig) };
            }
            Command::Exec {
                argv,
                stdout,
                stderr,
            } => {
                let result = self.start_exec(&argv, &stdout, &stderr);
                if let Err(e) = result {
                    let _ = self.events.send(Event::ExecDone(Err(e.to_string())));
                }
            }
        }
    }

    fn start_exec(
        &mut self,
        argv: &[String],
        stdout: &Path,
        stderr: &Path,
    ) -> Result<(), TraceError> {
        let Some(ns) = &self.ns else {
            return Err(TraceError::Config("the sandbox is not running".into()));
        };
        let s = &self.sandbox;
        let launch = Launch::new(s, argv, self.cgroup.is_none())?;
        let stdio = Stdio::split(stdout, stderr)?;
        let (read_end, write_end) = sandbox::pipe()?;
        let pid = sandbox::spawn_joined(ns, &self.filter, &launch, &stdio, &write_end)?;
        drop(write_end);
        if let Some(cg) = &self.cgroup {
            // It stops for the tracer before it forks the program.
            if let Err(e) = cg.add(pid) {
                // SAFETY: kill our own child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                return Err(e);
            }
        }
        self.procs.insert(
            pid,
            Proc {
                exe: Arc::from(""),
                execd: false,
                fresh: true,
                exec: None,
            },
        );
        // Its calls before exec are made while it is sealed (an ordinary user's tracer
        // cannot read its memory then): what they name is known here.
        let workdir = if s.workdir.is_empty() {
            "/"
        } else {
            &s.workdir
        };
        self.note(join("/", workdir), Access::Chdir, "");
        let root = crate::rootfs::RootDir::open(&self.sandbox.root, None).ok();
        for c in &launch.candidates {
            let Ok(path) = c.to_str() else { continue };
            self.note(join("/", path), Access::Exec, "");
            // execve stops at the first candidate that exists.
            let flags = rustix::fs::OFlags::PATH;
            if root
                .as_ref()
                .is_some_and(|r| r.resolve(path, flags).is_ok())
            {
                break;
            }
        }
        self.probes.push(ExecProbe {
            pid,
            failure: read_end,
            argv0: argv.first().cloned().unwrap_or_default(),
        });
        // Its options are set at its first stop, in the loop of `trace_thread`.
        Ok(())
    }
}

/// Keeps this thread, and so the sandbox it forks (affinity is inherited), on
/// the CPU it runs on: a ptrace stop then hands over to the tracer without a
/// cross-CPU wake-up, which makes each stop about four times cheaper on a VM.
fn pin_to_current_cpu() {
    // SAFETY: sched_getcpu has no preconditions; the cpu_set_t is zeroed then filled.
    unsafe {
        let cpu = libc::sched_getcpu();
        if cpu < 0 {
            return;
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu as usize, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Runs the sandbox under trace on the calling thread until every traced process is gone.
pub(crate) fn trace_thread(
    sandbox: Sandbox,
    stdio: Stdio,
    commands: Receiver<(Command, Sender<()>)>,
    events: Sender<Event>,
    waker: Arc<Waker>,
    alive: Arc<std::sync::atomic::AtomicBool>,
) {
    pin_to_current_cpu();
    // SAFETY: gettid has no memory effects.
    waker.tid.store(
        unsafe { libc::syscall(libc::SYS_gettid) } as i32,
        Ordering::Release,
    );
    let argv0 = sandbox.argv.first().cloned().unwrap_or_default();
    let pids_limit = sandbox.policy.pids_limit;
    let record_syscalls = sandbox.record_syscalls;
    let memory = sandbox.policy.memory_limit.filter(|b| *b > 0);
    let cgroup = match memory.map(MemoryCgroup::create).transpose() {
        Ok(c) => c.flatten(),
        Err(e) => {
            alive.store(false, Ordering::Release);
            let _ = events.send(Event::StartFailed(e.to_string()));
            let _ = events.send(Event::Finished(Trace::default()));
            return;
        }
    };
    #[allow(clippy::type_complexity)]
    let started =
        (|| -> Result<(libc::pid_t, OwnedFd, bool, Vec<libc::sock_filter>), TraceError> {
            let prepared = Prepared::new(&sandbox, cgroup.is_none())?;
            let (read_end, write_end) = sandbox::pipe()?;
            let (pid, maps_written) = sandbox::spawn(&prepared, &stdio, &write_end)?;
            let placed = cgroup.as_ref().map_or(Ok(()), |c| c.add(pid));
            if let Err(e) = placed.and_then(|()| sandbox.policy.ids.apply(pid)) {
                // SAFETY: kill and waitpid on our own child.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, std::ptr::null_mut(), libc::__WALL);
                }
                return Err(e);
            }
            sandbox::release(maps_written)?;
            Ok((pid, read_end, prepared.become_root, prepared.filter))
        })();
    drop(stdio);
    let (pid1, failure, become_root, filter) = match started {
        Ok(v) => v,
        Err(e) => {
            alive.store(false, Ordering::Release);
            let _ = events.send(Event::StartFailed(e.to_string()));
            let _ = events.send(Event::Finished(Trace::default()));
            return;
        }
    };
    if let Ok(mut running) = RUNNING.lock() {
        running.push(pid1);
    }
    let root_prefix = sandbox
        .root
        .to_string_lossy()
        .trim_end_matches('/')
        .to_string();
    let mut t = Tracer {
        root_prefix,
        procs: HashMap::new(),
        trace: Trace {
            processes: 1,
            ..Trace::default()
        },
        pid1,
        pid1_failure: Some(failure),
        argv0,
        events,
        sandbox,
        ns: None,
        probes: Vec::new(),
        started: false,
        alive,
        become_root,
        filter,
        pids_limit,
        cgroup,
        record_syscalls,
    };
    t.procs.insert(
        pid1,
        Proc {
            exe: Arc::from(""),
            execd: false,
            fresh: true,
            exec: None,
        },
    );
    loop {
        while let Ok((cmd, ack)) = commands.try_recv() {
            t.command(cmd);
            let _ = ack.send(());
        }
        let mut status = 0;
        // SAFETY: waitpid writes the status int. __WNOTHREAD: never reap children of other threads.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::__WALL | libc::__WNOTHREAD) };
        if pid < 0 {
            match nix::errno::Errno::last() {
                nix::errno::Errno::EINTR => continue,
                _ => break,
            }
        }
        if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
            t.on_exit(pid, status);
            continue;
        }
        if !libc::WIFSTOPPED(status) {
            continue;
        }
        let sig = libc::WSTOPSIG(status);
        let event = (status >> 16) & 0xff;
        if event != 0 {
            t.on_event(pid, event);
            continue;
        }
        // The first stop of a process we started ourselves: set the options its tree inherits.
        let ours = pid == t.pid1 || t.probes.iter().any(|p| p.pid == pid);
        let first_stop = t.procs.get(&pid).is_some_and(|p| p.fresh);
        if ours && sig == libc::SIGSTOP && first_stop {
            // SAFETY: SETOPTIONS takes the options as data.
            unsafe { libc::ptrace(libc::PTRACE_SETOPTIONS, pid, 0, OPTIONS as libc::c_long) };
            if pid == t.pid1 {
                t.ns = Namespaces::of(pid, t.become_root).ok();
            }
            if let Some(p) = t.procs.get_mut(&pid) {
                p.fresh = false;
            }
            ptrace_cont(pid, 0);
            continue;
        }
        t.on_stop(pid, sig);
    }
    if let (Some(cg), Some(bytes)) = (&t.cgroup, memory) {
        if t.trace.limit.is_none() && cg.oom_killed() {
            t.trace.limit = Some(format!(
                "the program exceeded the memory limit ({} MB; raise it with --memory)",
                bytes >> 20
            ));
        }
    }
    drop(t.cgroup.take());
    let _ = t.events.send(Event::Finished(std::mem::take(&mut t.trace)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_paths_lexically() {
        assert_eq!(join("/etc", "nginx/./nginx.conf"), "/etc/nginx/nginx.conf");
        assert_eq!(join("/var/www", "/etc//passwd"), "/etc/passwd");
        assert_eq!(join("/", "."), "/");
        // `..` is left for resolution inside the image, where symlinks are known.
        assert_eq!(join("/a", "../b"), "/a/../b");
    }
}
