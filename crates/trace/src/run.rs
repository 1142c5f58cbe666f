//! One traced run: start the sandbox, wait for its ports, probe it, stop it,
//! and collect what it touched.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::net::Net;
use crate::probe::{self, HttpProbe, ProbeResult, TcpProbe};
use crate::sandbox::{Network, Sandbox, Stdio};
use crate::tracer::{self, Command, Event, Exit, Trace, Waker};
use crate::TraceError;

/// How to drive the program.
#[derive(Clone, Debug, Default)]
pub struct Probes {
    /// `--http-probe`.
    pub http: Vec<HttpProbe>,
    /// `--tcp-probe`.
    pub tcp: Vec<TcpProbe>,
    /// `--exec-probe`, each split into argv.
    pub exec: Vec<Vec<String>>,
    /// `--probe-script`.
    pub script: Option<PathBuf>,
    /// `--duration`: how long to let the program run after the probes (it may end sooner).
    pub duration: Option<Duration>,
}

impl Probes {
    /// True when nothing drives the program.
    pub fn is_empty(&self) -> bool {
        self.http.is_empty() && self.tcp.is_empty() && self.exec.is_empty() && self.script.is_none()
    }
}

/// Everything about a run but the program.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The probes.
    pub probes: Probes,
    /// Ports the image exposes (for `--http-probe` without a port, and the script's environment).
    pub exposed_ports: Vec<u16>,
    /// The signal that asks the program to stop (the image's StopSignal; SIGTERM by default).
    pub stop_signal: i32,
    /// How long to wait after it before SIGKILL.
    pub stop_timeout: Duration,
    /// How long to wait for a probed port to accept connections.
    pub ready_timeout: Duration,
    /// Ports whose accepting means the program is ready for exec probes and the
    /// script (`--ready-port`); empty: the exposed ports.
    pub ready_ports: Vec<u16>,
    /// Where the program's output and the probes' outputs go.
    pub log_dir: PathBuf,
}

/// How the run went.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RunOutcome {
    /// How the program's first process ended.
    pub exit: Option<Exit>,
    /// Whether whittle stopped it (rather than it ending by itself).
    pub stopped: bool,
    /// Whether it had to be killed after the stop timeout.
    pub killed: bool,
    /// Whether the stop signal could not stop it: the sandbox's pid 1 has no handler
    /// for it, or dropped the handler on receiving it (pid 1 of a pid namespace ignores
    /// signals it does not catch), so it was killed after a short grace instead of the
    /// whole stop timeout.
    pub stop_ignored: bool,
    /// Each probe, in order.
    pub probes: Vec<ProbeResult>,
    /// Every path named.
    #[serde(skip)]
    pub trace: Trace,
    /// The program's stdout and stderr.
    pub log: PathBuf,
    /// Wall time from start to the last process gone.
    pub seconds: f64,
}

struct Running {
    commands: Sender<(Command, Sender<()>)>,
    events: Receiver<Event>,
    waker: Arc<Waker>,
    alive: Arc<AtomicBool>,
    exit: Option<Exit>,
    trace: Option<Trace>,
    pending: Vec<Event>,
}

impl Running {
    /// Handles an event that is not the one being waited for.
    fn note(&mut self, ev: Event) -> Option<Event> {
        match ev {
            Event::AppExited(exit) => {
                self.exit = Some(exit);
                self.alive.store(false, Ordering::Release);
                None
            }
            Event::Finished(t) => {
                self.alive.store(false, Ordering::Release);
                self.trace = Some(t);
                None
            }
            other => Some(other),
        }
    }

    /// Waits for the next event that is not an exit notice, up to `timeout`.
    fn next(&mut self, timeout: Duration) -> Option<Event> {
        if !self.pending.is_empty() {
            return Some(self.pending.remove(0));
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(ev) => {
                    if let Some(ev) = self.note(ev) {
                        return Some(ev);
                    }
                }
                Err(_) => return None,
            }
        }
    }

    /// Waits until the program's pid 1 has ended, up to `timeout`.
    fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.exit.is_none() && self.trace.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(ev) => {
                    if let Some(ev) = self.note(ev) {
                        self.pending.push(ev);
                    }
                }
                Err(RecvTimeoutError::Timeout) => return false,
                Err(RecvTimeoutError::Disconnected) => return true,
            }
        }
        true
    }

    fn send(&self, cmd: Command) -> bool {
        self.waker.send(&self.commands, cmd)
    }
}

fn exec_probe(run: &mut Running, argv: &[String], log_dir: &Path, index: usize) -> ProbeResult {
    let name = format!(
        "exec {}",
        shlex::try_join(argv.iter().map(String::as_str)).unwrap_or_else(|_| argv.join(" "))
    );
    let out = log_dir.join(format!("exec-{index}.out"));
    let err = log_dir.join(format!("exec-{index}.err"));
    let failed = |summary: String| ProbeResult {
        seconds: 0.0,
        name: name.clone(),
        ok: false,
        fingerprint: format!("error: {summary}"),
        summary,
    };
    if !run.alive.load(Ordering::Acquire) {
        return failed("the program had already exited".into());
    }
    if !run.send(Command::Exec {
        argv: argv.to_vec(),
        stdout: out.clone(),
        stderr: err,
    }) {
        return failed("the program had already exited".into());
    }
    let result = loop {
        match run.next(Duration::from_secs(3600)) {
            Some(Event::ExecDone(r)) => break r,
            Some(_) => continue,
            None => break Err("the sandbox ended while it ran".into()),
        }
    };
    match result {
        Ok(exit) => {
            let stdout = std::fs::read(&out).unwrap_or_default();
            ProbeResult {
                seconds: 0.0,
                name: name.clone(),
                ok: exit == Exit::Code(0),
                summary: format!("{exit}, {} bytes of output", stdout.len()),
                fingerprint: format!("{exit}, stdout {}", probe::sha256(&stdout)),
            }
        }
        Err(e) => failed(e),
    }
}

fn script_probe(
    script: &Path,
    ns: Option<&(std::os::fd::OwnedFd, std::os::fd::OwnedFd)>,
    ports: &[u16],
) -> ProbeResult {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let name = format!("script {}", script.display());
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    let mut cmd = std::process::Command::new(script);
    cmd.env("WHITTLE_APP_HOST", "127.0.0.1")
        .env("WHITTLE_APP_PORTS", ports.join(" "))
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit());
    if let Some(first) = ports.first() {
        cmd.env("WHITTLE_APP_PORT", first);
        cmd.env("WHITTLE_APP_ADDR", format!("127.0.0.1:{first}"));
    }
    if let Some((user, net)) = ns {
        let (user, net) = (user.as_raw_fd(), net.as_raw_fd());
        // An ordinary user enters the network through the sandbox's user namespace
        // (which owns it); root enters it directly and stays root on the host.
        let through_user = !nix::unistd::geteuid().is_root();
        // SAFETY: setns is async-signal-safe, and the fds stay open until the child has exec'd.
        unsafe {
            cmd.pre_exec(move || {
                if through_user && libc::setns(user, libc::CLONE_NEWUSER) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::setns(net, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    match cmd.output() {
        Ok(out) => {
            let exit = match out.status.code() {
                Some(c) => Exit::Code(c),
                None => Exit::Signal(
                    std::os::unix::process::ExitStatusExt::signal(&out.status).unwrap_or(0),
                ),
            };
            ProbeResult {
                seconds: 0.0,
                name,
                ok: out.status.success(),
                summary: format!("{exit}, {} bytes of output", out.stdout.len()),
                fingerprint: format!("{exit}, stdout {}", probe::sha256(&out.stdout)),
            }
        }
        Err(e) => ProbeResult {
            seconds: 0.0,
            name,
            ok: false,
            summary: format!("cannot run it: {e}"),
            fingerprint: "not run".into(),
        },
    }
}

/// Runs `sandbox` under trace, drives it with `opts.probes`, stops it, and reports.
///
/// Needs root (namespaces, mounts, ptrace). The root directory is used as is:
/// pass a private copy, since the program may write to it.
pub fn run(sandbox: Sandbox, opts: &RunOptions) -> Result<RunOutcome, TraceError> {
    let began = Instant::now();
    std::fs::create_dir_all(&opts.log_dir)
        .map_err(|e| TraceError::io("cannot create", &opts.log_dir, e))?;
    let log = opts.log_dir.join("program.log");
    let stdio = Stdio::to_file(&log)?;
    let network = sandbox.network;
    let _engine_files = RemovedAtEnd(crate::sandbox::engine_dir(&sandbox.root));
    let waker = Waker::new();
    let (cmd_tx, cmd_rx) = mpsc::channel();
    let (ev_tx, ev_rx) = mpsc::channel();
    let thread_waker = waker.clone();
    let alive = Arc::new(AtomicBool::new(true));
    let thread_alive = alive.clone();
    let tracer = std::thread::Builder::new()
        .name("whittle-tracer".into())
        .spawn(move || {
            tracer::trace_thread(sandbox, stdio, cmd_rx, ev_tx, thread_waker, thread_alive)
        })
        .map_err(|e| {
            TraceError::Sys(
                "cannot start the tracer thread",
                nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0)),
            )
        })?;
    let mut run = Running {
        commands: cmd_tx,
        events: ev_rx,
        waker,
        alive,
        exit: None,
        trace: None,
        pending: Vec::new(),
    };
    let (pid1, ns) = match run.next(Duration::from_secs(3600)) {
        Some(Event::Started(pid1, ns)) => (pid1, ns),
        Some(Event::StartFailed(why)) => {
            run.wait_exit(Duration::from_secs(5));
            let _ = tracer.join();
            let tail = tail_of(&log);
            return Err(TraceError::Start(if tail.is_empty() {
                why
            } else {
                format!("{why}\n{tail}")
            }));
        }
        _ => {
            let _ = tracer.join();
            return Err(TraceError::Start(
                "the tracer stopped before the program started".into(),
            ));
        }
    };
    let ns = if network == Network::Loopback {
        ns
    } else {
        None
    };
    let net = match &ns {
        Some((user, netns)) => Net::sandbox(user, netns)
            .map_err(|e| TraceError::Start(format!("cannot reach the sandbox's network: {e}")))?,
        None => Net::host(),
    };
    let mut results = Vec::new();
    let deadline = Instant::now() + opts.ready_timeout;
    let alive = run.alive.clone();
    let is_alive = move || alive.load(Ordering::Acquire);
    for p in &opts.probes.http {
        let ports = match p.port {
            Some(port) => vec![port],
            None => opts.exposed_ports.clone(),
        };
        for port in ports {
            results.push(timed(|| {
                match probe::wait_ready(&net, &[port], deadline, &is_alive) {
                    Ok(_) => probe::http_get(&net, port, &p.path),
                    Err(why) => ProbeResult {
                        seconds: 0.0,
                        name: format!("GET :{port}{}", p.path),
                        ok: false,
                        fingerprint: "not ready".into(),
                        summary: why,
                    },
                }
            }));
        }
    }
    for t in &opts.probes.tcp {
        results.push(timed(|| {
            match probe::wait_ready(&net, &[t.port], deadline, &is_alive) {
                Ok(_) => probe::tcp(&net, t.port, t.send.as_deref()),
                Err(why) => ProbeResult {
                    seconds: 0.0,
                    name: format!("TCP :{}", t.port),
                    ok: false,
                    fingerprint: "not ready".into(),
                    summary: why,
                },
            }
        }));
    }
    // Exec probes and the script wait for the program too: until one of the ready
    // ports (or the exposed ones) accepts; with no port to watch, a failing exec
    // probe is retried until the ready timeout.
    let ready_ports = if opts.ready_ports.is_empty() {
        &opts.exposed_ports
    } else {
        &opts.ready_ports
    };
    let later = !opts.probes.exec.is_empty() || opts.probes.script.is_some();
    // A probe that got its answer shows the program ready.
    let mut ready = results.iter().any(|r| r.ok);
    if later && !ready && !ready_ports.is_empty() {
        // Not ready in time: the probes run anyway and say what they find.
        ready = probe::wait_ready(&net, ready_ports, deadline, &is_alive).is_ok();
    }
    drop(net);
    for (i, argv) in opts.probes.exec.iter().enumerate() {
        let mut pause = Duration::from_millis(10);
        let started = Instant::now();
        let mut r = loop {
            let r = exec_probe(&mut run, argv, &opts.log_dir, i);
            // A command that cannot start will not start later either.
            let retry = !r.ok
                && !ready
                && ready_ports.is_empty()
                && !r.summary.starts_with("cannot start")
                && run.alive.load(Ordering::Acquire)
                && Instant::now() + pause < deadline;
            if !retry {
                ready |= r.ok;
                break r;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(500));
        };
        r.seconds = started.elapsed().as_secs_f64();
        results.push(r);
    }
    if let Some(script) = &opts.probes.script {
        results.push(timed(|| {
            script_probe(script, ns.as_ref(), &opts.exposed_ports)
        }));
    }
    let linger = opts.probes.duration.unwrap_or(Duration::ZERO);
    let ended_by_itself = run.wait_exit(linger);
    let mut stopped = false;
    let mut killed = false;
    let mut stop_ignored = false;
    if !ended_by_itself {
        stopped = true;
        // Read before the signal: a handler installed later cannot matter.
        stop_ignored = opts.stop_signal != libc::SIGKILL && !catches(pid1, opts.stop_signal);
        run.send(Command::Signal(opts.stop_signal));
        let mut deadline = Instant::now()
            + if stop_ignored {
                STOP_IGNORED_GRACE.min(opts.stop_timeout)
            } else {
                opts.stop_timeout
            };
        let mut exited = false;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if run.wait_exit(left.min(STOP_POLL)) {
                exited = true;
                break;
            }
            if Instant::now() >= deadline {
                break;
            }
            // A handler that resets itself and re-raises the signal (Node.js does) leaves
            // pid 1 with the default action, which the kernel ignores for it: it asked to
            // end and cannot, so it gets the short grace too.
            if !stop_ignored && !catches(pid1, opts.stop_signal) {
                stop_ignored = true;
                deadline = deadline.min(Instant::now() + STOP_IGNORED_GRACE);
            }
        }
        if !exited {
            killed = true;
            run.send(Command::Signal(libc::SIGKILL));
            run.wait_exit(Duration::from_secs(3600));
        }
    }
    // The rest of the tree dies with pid 1; wait for the tracer to see every exit.
    while run.trace.is_none() {
        if run.next(Duration::from_secs(3600)).is_none() && run.trace.is_none() {
            break;
        }
    }
    let _ = tracer.join();
    if let Some(limit) = run.trace.as_ref().and_then(|t| t.limit.clone()) {
        return Err(TraceError::Limit(limit));
    }
    Ok(RunOutcome {
        exit: run.exit,
        stopped,
        killed,
        stop_ignored,
        probes: results,
        trace: run.trace.take().unwrap_or_default(),
        log,
        seconds: began.elapsed().as_secs_f64(),
    })
}

/// Runs a probe and records how long it took.
fn timed(probe: impl FnOnce() -> ProbeResult) -> ProbeResult {
    let started = Instant::now();
    let mut r = probe();
    r.seconds = started.elapsed().as_secs_f64();
    r
}

/// A directory of the run's own, removed however the run ends.
struct RemovedAtEnd(PathBuf);

impl Drop for RemovedAtEnd {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How long a tree whose pid 1 ignores the stop signal may finish in-flight work
/// before it is killed.
const STOP_IGNORED_GRACE: Duration = Duration::from_millis(250);

/// How often, while waiting for the stop signal to end the run, pid 1's handler is looked at.
const STOP_POLL: Duration = Duration::from_millis(50);

/// Whether `pid` has a handler for `sig` (`SigCgt` of `/proc/PID/status`). When
/// unsure, yes: then the whole stop timeout applies, as before.
fn catches(pid: libc::pid_t, sig: i32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return true;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_none_or(|mask| !(1..=64).contains(&sig) || mask & (1u64 << (sig - 1)) != 0)
}

/// The last lines of a log, for error messages.
pub fn tail_of(path: &Path) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(10);
    lines[start..]
        .iter()
        .map(|l| format!("  | {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
