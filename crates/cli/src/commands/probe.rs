//! Flags for run-time tracing (`slim --http-probe ...`, `verify`) and one traced
//! run of a flattened image: unpack it privately, resolve its user inside it,
//! run its program in the sandbox with the probes, report.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use whittle_image::mutate::Flat;
use whittle_image::Scratch;
use whittle_slim::{RunConfig, DEFAULT_PATH};
use whittle_trace::{
    HttpProbe, IdMapping, Network, Policy, Probes, RunOptions, RunOutcome, Sandbox, TcpProbe,
};

/// How to run and drive the program under trace.
#[derive(Args, Debug, Default, Clone)]
pub struct TraceFlags {
    /// Run the program in a sandbox and keep every file it touches (any probe flag implies it).
    #[arg(long)]
    pub trace: bool,
    /// While it runs, GET this port and path (repeatable); without a value, GET / on every exposed port.
    #[arg(long, value_name = "[PORT][/PATH]", num_args = 0..=1, default_missing_value = "")]
    pub http_probe: Vec<String>,
    /// While it runs, connect to PORT; with :LINE, send the line and read the reply (repeatable).
    #[arg(long, value_name = "PORT[:LINE]")]
    pub tcp_probe: Vec<String>,
    /// While it runs, run this command inside the sandbox, traced too (repeatable; words split as a shell would).
    #[arg(long, value_name = "CMD")]
    pub exec_probe: Vec<String>,
    /// While it runs, run this host-side script in the program's network
    /// (WHITTLE_APP_HOST, WHITTLE_APP_PORT(S), WHITTLE_APP_ADDR set); non-zero exit is a failed probe.
    #[arg(long, value_name = "FILE")]
    pub probe_script: Option<PathBuf>,
    /// Let the program run this long after the probes (it may end sooner); with no probes, the default is 10.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub duration: Option<Duration>,
    /// After the stop signal, wait this long before SIGKILL.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub stop_timeout: Duration,
    /// Keep each run's logs here: LABEL-program.log (its stdout and stderr),
    /// LABEL-exec-N.out/.err (each exec probe's), LABEL being original or slimmed.
    #[arg(long, value_name = "DIR")]
    pub keep_logs: Option<PathBuf>,
    /// Exec probes and the probe script start once this port accepts (repeatable; any of
    /// them); default: the image's exposed ports, or, with none, failing exec probes are
    /// retried until --ready-timeout.
    #[arg(long, value_name = "PORT")]
    pub ready_port: Vec<u16>,
    /// Wait at most this long for a probed port to accept connections.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_secs)]
    pub ready_timeout: Duration,
    /// The program's network: `loopback` (its own, nothing outside) or `host`.
    #[arg(long, value_name = "MODE", default_value = "loopback", value_parser = ["loopback", "host"])]
    pub network: String,
    /// Give the program this capability beyond Docker's default set (repeatable; `ALL`).
    #[arg(long, value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Take this capability from Docker's default set (repeatable; `ALL`).
    #[arg(long, value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// Write the output even when a probe fails on the original image (by default that is an error).
    #[arg(long)]
    pub allow_probe_failure: bool,
    /// At most this much memory (`512m`, `2g`; 0: none). Default: half the machine's memory.
    /// A memory cgroup enforces it where whittle can make one (root); else RLIMIT_DATA.
    #[arg(long, value_name = "SIZE", value_parser = whittle_trace::parse_size)]
    pub memory: Option<u64>,
    /// At most this many processes and threads in the sandbox (0: no limit); reaching it fails the run.
    #[arg(long, value_name = "N", default_value_t = whittle_trace::policy::DEFAULT_PIDS_LIMIT)]
    pub pids_limit: u64,
    /// slim, extract: write a seccomp profile (Docker/OCI JSON) allowing only the system
    /// calls the traced run made (implies --trace); verify: run the slimmed image under it.
    #[arg(long, value_name = "FILE")]
    pub seccomp_profile: Option<PathBuf>,
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let t = s.trim().trim_end_matches('s');
    t.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0 && *v < 1e9)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{s:?} is not a number of seconds"))
}

/// With no probe at all, how long a program may run before it is stopped.
const DEFAULT_LINGER: Duration = Duration::from_secs(10);

impl TraceFlags {
    /// Whether a traced run was asked for.
    pub fn enabled(&self) -> bool {
        self.trace
            || !self.http_probe.is_empty()
            || !self.tcp_probe.is_empty()
            || !self.exec_probe.is_empty()
            || self.probe_script.is_some()
            || self.duration.is_some()
            || self.seccomp_profile.is_some()
    }

    fn probes(&self, exposed: &[u16]) -> Result<Probes> {
        let mut http: Vec<HttpProbe> = self
            .http_probe
            .iter()
            .map(|s| HttpProbe::parse(s).map_err(anyhow::Error::msg))
            .collect::<Result<_>>()?;
        let tcp: Vec<TcpProbe> = self
            .tcp_probe
            .iter()
            .map(|s| TcpProbe::parse(s).map_err(anyhow::Error::msg))
            .collect::<Result<_>>()?;
        let exec = self
            .exec_probe
            .iter()
            .map(|c| match shlex::split(c) {
                Some(words) if !words.is_empty() => Ok(words),
                _ => bail!("--exec-probe {c:?} is empty or badly quoted"),
            })
            .collect::<Result<Vec<_>>>()?;
        if let Some(script) = &self.probe_script {
            if !script.is_file() {
                bail!("--probe-script {}: no such file", script.display());
            }
        }
        if http.iter().any(|p| p.port.is_none()) && exposed.is_empty() {
            bail!("--http-probe without a port: the image exposes no ports (give --http-probe PORT/PATH)");
        }
        let nothing =
            http.is_empty() && tcp.is_empty() && exec.is_empty() && self.probe_script.is_none();
        // `--trace` alone on an image with ports: GET / on each.
        if nothing && self.duration.is_none() && !exposed.is_empty() {
            http.push(HttpProbe {
                port: None,
                path: "/".into(),
            });
        }
        let nothing =
            http.is_empty() && tcp.is_empty() && exec.is_empty() && self.probe_script.is_none();
        Ok(Probes {
            http,
            tcp,
            exec,
            script: self.probe_script.clone(),
            duration: self.duration.or(nothing.then_some(DEFAULT_LINGER)),
        })
    }
}

/// The parts of an image config a run needs beyond [`RunConfig`].
struct RuntimeConfig {
    user: String,
    exposed: Vec<u16>,
    stop_signal: i32,
}

fn runtime_config(config: &[u8]) -> Result<RuntimeConfig> {
    let doc: serde_json::Value =
        serde_json::from_slice(config).context("the image config is not JSON")?;
    let c = &doc["config"];
    let mut exposed: Vec<u16> = c["ExposedPorts"]
        .as_object()
        .map(|m| {
            m.keys()
                .filter_map(|k| {
                    let (port, proto) = k.split_once('/').unwrap_or((k, "tcp"));
                    (proto == "tcp").then(|| port.parse().ok()).flatten()
                })
                .collect()
        })
        .unwrap_or_default();
    exposed.sort_unstable();
    let stop_signal = match c["StopSignal"].as_str() {
        None | Some("") => libc::SIGTERM,
        Some(s) => signal_number(s)
            .with_context(|| format!("the image's StopSignal {s:?} is not a signal"))?,
    };
    Ok(RuntimeConfig {
        user: c["User"].as_str().unwrap_or("").to_string(),
        exposed,
        stop_signal,
    })
}

fn signal_number(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return (1..65).contains(&n).then_some(n);
    }
    let name = s.trim_start_matches("SIG");
    let table = [
        ("HUP", libc::SIGHUP),
        ("INT", libc::SIGINT),
        ("QUIT", libc::SIGQUIT),
        ("KILL", libc::SIGKILL),
        ("USR1", libc::SIGUSR1),
        ("USR2", libc::SIGUSR2),
        ("TERM", libc::SIGTERM),
        ("WINCH", libc::SIGWINCH),
    ];
    table.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// Where a run's root is unpacked: a directory of `scratch`, or one on
/// `/dev/shm` when that is a tmpfs and the root takes under a quarter of the
/// available memory. (On ext4, unpacking thousands of files right after
/// deleting thousands makes inode allocation crawl: a repeated slim took 3 s
/// instead of 1 s.)
enum RunDir<'a> {
    Scratch(&'a Scratch),
    Memory(Scratch),
}

impl RunDir<'_> {
    fn path(&self) -> &std::path::Path {
        match self {
            RunDir::Scratch(s) => s.path(),
            RunDir::Memory(s) => s.path(),
        }
    }
}

/// Removes roots that whittle processes which no longer exist left in `dir`
/// (`kill -9` skips every clean-up; in memory they would stay until reboot).
fn sweep_dead_runs(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(".whittle-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// `/dev/shm`, where interrupted runs' roots may be left for the sweep.
pub const MEMORY_DIR: &str = "/dev/shm";

/// A scratch directory in memory (on /dev/shm) for unpacked roots, when
/// /dev/shm is a tmpfs with room for `need` bytes (a container's is 64 MB by
/// default); also sweeps roots dead whittle processes left there.
pub fn memory_scratch(need: u64) -> Option<Scratch> {
    let shm = std::path::Path::new(MEMORY_DIR);
    let stat = rustix::fs::statfs(shm).ok()?;
    // (f_type's integer type differs between targets.)
    #[allow(clippy::unnecessary_cast)]
    let is_tmpfs = stat.f_type as i64 == libc::TMPFS_MAGIC as i64;
    #[allow(clippy::unnecessary_cast)]
    let free = (stat.f_bavail as u64).saturating_mul(stat.f_bsize as u64);
    if !is_tmpfs || free < need {
        return None;
    }
    sweep_dead_runs(shm);
    Scratch::new_in(shm).ok()
}

fn run_dir<'a>(flat: &Flat, scratch: &'a Scratch) -> Result<RunDir<'a>> {
    let bytes: u64 = flat.view.nodes.values().map(|n| n.size()).sum();
    let available = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemAvailable:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024);
    if bytes < available / 4 {
        // Room for the root and what the run writes beside it (logs, a database's files).
        let need = bytes.saturating_add(bytes / 4).saturating_add(64 << 20);
        if let Some(s) = memory_scratch(need) {
            return Ok(RunDir::Memory(s));
        }
    }
    Ok(RunDir::Scratch(scratch))
}

/// Runs the program of `config` from the filesystem of `flat` under trace.
pub fn traced_run(
    label: &str,
    flat: &Flat,
    config: &[u8],
    scratch: &Scratch,
    flags: &TraceFlags,
    quiet: bool,
) -> Result<RunOutcome> {
    whittle_trace::check_supported()?;
    let run_config = RunConfig::from_config(config)?;
    let rt = runtime_config(config)?;
    let probes = flags.probes(&rt.exposed)?;
    let argv = run_config.argv();
    if argv.is_empty() {
        bail!("{label} has no entrypoint and no cmd: nothing to run (give --entrypoint)");
    }
    let run_dir = run_dir(flat, scratch)?;
    let root = run_dir.path().join(format!("run-{label}"));
    std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    let started = std::time::Instant::now();
    let ids = IdMapping::for_caller(0, 0);
    // The root is removed under the same map it was unpacked with.
    let removal_ids = ids.clone();
    let result = run_in(
        label, flat, &root, &rt, probes, argv, run_config, ids, flags, scratch, quiet, started,
    );
    // The run's root is scratch: the output never takes files from it.
    let _ = whittle_trace::rootfs::remove_tree(&root, &removal_ids);
    result
}

#[allow(clippy::too_many_arguments)]
fn run_in(
    label: &str,
    flat: &Flat,
    root: &std::path::Path,
    rt: &RuntimeConfig,
    probes: Probes,
    argv: Vec<String>,
    run_config: RunConfig,
    ids: IdMapping,
    flags: &TraceFlags,
    scratch: &Scratch,
    quiet: bool,
    started: std::time::Instant,
) -> Result<RunOutcome> {
    let unpacked = whittle_trace::unpack_for_run(flat, root, &ids)
        .with_context(|| format!("cannot unpack {label} to run it"))?;
    let unpack_time = started.elapsed();
    let id = whittle_trace::user::resolve(root, &rt.user)?;
    // With one id to map, it is the program's own.
    let ids = if ids.method == whittle_trace::idmap::MapMethod::Single {
        IdMapping::for_caller(id.uid, id.gid)
    } else {
        ids
    };
    if let (Some(note), false) = (ids.note(), quiet) {
        eprintln!("{label}: note: {note}");
    }
    let groups = if ids.can_set_groups() {
        id.groups
    } else {
        Vec::new()
    };
    let mut policy = Policy::docker_default(ids);
    policy
        .capabilities
        .adjust(&flags.cap_add, &flags.cap_drop)
        .map_err(anyhow::Error::msg)?;
    policy.pids_limit = (flags.pids_limit > 0).then_some(flags.pids_limit);
    if let Some(bytes) = flags.memory {
        policy.memory_limit = (bytes > 0).then_some(bytes);
    }
    let mut env = run_config.env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", id.home));
    }
    env.push("HOSTNAME=whittle".into());
    let path_dirs = run_config.path_dirs();
    let sandbox = Sandbox {
        root: root.to_path_buf(),
        argv: argv.clone(),
        env,
        path: path_dirs,
        workdir: run_config.workdir.clone(),
        uid: id.uid,
        gid: id.gid,
        groups,
        network: if flags.network == "host" {
            Network::Host
        } else {
            Network::Loopback
        },
        hostname: "whittle".into(),
        trace_files: true,
        record_syscalls: flags.seccomp_profile.is_some(),
        policy,
        owners: unpacked.deferred,
    };
    let opts = RunOptions {
        probes,
        exposed_ports: rt.exposed.clone(),
        stop_signal: rt.stop_signal,
        stop_timeout: flags.stop_timeout,
        ready_timeout: flags.ready_timeout,
        ready_ports: flags.ready_port.clone(),
        log_dir: scratch.path().join(format!("log-{label}")),
    };
    if !quiet {
        eprintln!(
            "{label}: running {} in a sandbox (unpacked in {:.2} s)",
            argv.join(" "),
            unpack_time.as_secs_f64()
        );
    }
    let outcome = whittle_trace::run(sandbox, &opts);
    if let Some(dir) = &flags.keep_logs {
        keep_logs(&opts.log_dir, dir, label)?;
    }
    let outcome = outcome.with_context(|| format!("cannot run {label}"))?;
    if !quiet {
        describe(label, &outcome);
    }
    Ok(outcome)
}

/// Copies a run's logs (the program's output, each exec probe's stdout and
/// stderr) into `dir` as `LABEL-NAME`.
fn keep_logs(from: &std::path::Path, dir: &std::path::Path, label: &str) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let entries =
        std::fs::read_dir(from).with_context(|| format!("cannot list {}", from.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", from.display()))?;
        let name = entry.file_name();
        let to = dir.join(format!("{label}-{}", name.to_string_lossy()));
        std::fs::copy(entry.path(), &to)
            .with_context(|| format!("cannot write {}", to.display()))?;
    }
    Ok(())
}

/// Prints how a run went.
pub fn describe(label: &str, o: &RunOutcome) {
    for p in &o.probes {
        let mark = if p.ok { "ok" } else { "FAILED" };
        eprintln!(
            "{label}: probe {}: {} in {:.2} s ({mark})",
            p.name, p.summary, p.seconds
        );
    }
    let how = match (o.exit, o.stopped, o.killed) {
        (Some(e), _, true) if o.stop_ignored => format!(
            "{e}: its pid 1 has no handler for the stop signal, or dropped it on receiving \
             it (pid 1 of a pid namespace ignores a signal it does not handle), so it was \
             killed after a short grace, not the stop timeout"
        ),
        (Some(e), _, true) => format!("{e}, killed after the stop timeout"),
        (Some(e), true, false) => format!("{e} after the stop signal"),
        (Some(e), false, _) => format!("{e} by itself"),
        (None, _, _) => "end unknown".into(),
    };
    eprintln!(
        "{label}: program ended: {how}; traced {} calls naming {} paths in {} processes ({:.2} s)",
        o.trace.calls,
        o.trace.paths.len(),
        o.trace.processes,
        o.seconds
    );
    let bad_exit = !o.stopped && !matches!(o.exit, Some(whittle_trace::Exit::Code(0)));
    if bad_exit || o.probes.iter().any(|p| !p.ok) {
        let tail = whittle_trace::tail_of(&o.log);
        if !tail.is_empty() {
            eprintln!("{label}: the program's last output:\n{tail}");
        }
    }
}

/// Fails when a probe failed on the original image: a run that did not work
/// cannot tell what the program needs, and its output would be blessed untested.
pub fn require_probes_ok(label: &str, o: &RunOutcome, flags: &TraceFlags) -> Result<()> {
    let failed: Vec<String> = o
        .probes
        .iter()
        .filter(|p| !p.ok)
        .map(|p| format!("{}: {}", p.name, p.summary))
        .collect();
    if failed.is_empty() || flags.allow_probe_failure {
        return Ok(());
    }
    let asked = !flags.http_probe.is_empty()
        || !flags.tcp_probe.is_empty()
        || !flags.exec_probe.is_empty()
        || flags.probe_script.is_some();
    if !asked {
        // Only the GET / that bare --trace adds for exposed ports: a batch program
        // that exposes a port it does not serve is not a failed run.
        eprintln!(
            "{label}: warning: the GET that --trace adds for the exposed ports failed ({}); \
             give --http-probe to make it a check",
            failed.join("; ")
        );
        return Ok(());
    }
    bail!(
        "{} probe(s) failed on the {label} image, so the run says nothing reliable about what it \
         needs: {} (fix the probe or the image; --allow-probe-failure writes the output anyway)",
        failed.len(),
        failed.join("; ")
    )
}

/// The traced paths as slim takes them: path -> the program that named it.
pub fn traced_paths(o: &RunOutcome) -> std::collections::BTreeMap<String, String> {
    o.trace
        .paths
        .iter()
        .map(|(p, t)| (p.clone(), t.by.clone()))
        .collect()
}

/// Writes the seccomp profile of `runs` (the calls of all of them) to `path`,
/// through a temporary file beside it so that a failure leaves no half-written profile.
pub fn write_seccomp_profile(
    path: &std::path::Path,
    runs: &[&RunOutcome],
    quiet: bool,
) -> Result<()> {
    let calls: std::collections::BTreeSet<_> = runs
        .iter()
        .flat_map(|r| r.trace.syscalls.keys().copied())
        .collect();
    if calls.is_empty() {
        bail!(
            "cannot write the seccomp profile {}: the run recorded no system calls (the program never started)",
            path.display()
        );
    }
    let made = whittle_trace::SeccompProfile::from_calls(&calls);
    let tmp = temp_beside(path);
    std::fs::write(&tmp, made.profile.to_json())
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            anyhow::anyhow!("cannot write the seccomp profile {}: {e}", path.display())
        })?;
    if !quiet {
        eprintln!(
            "seccomp profile: {} system calls the program made, {} more a container runtime \
             needs to start it, everything else refused with EPERM; wrote {}",
            made.program_calls,
            made.runtime_only,
            path.display()
        );
        if !made.unnamed.is_empty() {
            eprintln!(
                "seccomp profile: note: {} call numbers have no known name and stay refused: {:?}",
                made.unnamed.len(),
                made.unnamed
            );
        }
    }
    Ok(())
}

/// Fails early (before a long run) when the seccomp profile's directory does not exist.
pub fn check_profile_path(flags: &TraceFlags) -> Result<()> {
    let Some(path) = &flags.seccomp_profile else {
        return Ok(());
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    if !dir.is_dir() {
        bail!(
            "--seccomp-profile {}: its directory {} does not exist",
            path.display(),
            dir.display()
        );
    }
    if path.is_dir() {
        bail!("--seccomp-profile {} is a directory", path.display());
    }
    Ok(())
}

fn temp_beside(path: &std::path::Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.whittle-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ports_user_and_stop_signal() {
        let rt = runtime_config(
            br#"{"config":{"User":"www-data","ExposedPorts":{"443/tcp":{},"80/tcp":{},"53/udp":{}},"StopSignal":"SIGQUIT"}}"#,
        )
        .unwrap();
        assert_eq!(
            (rt.user.as_str(), rt.exposed, rt.stop_signal),
            ("www-data", vec![80, 443], libc::SIGQUIT)
        );
        assert!(runtime_config(br#"{"config":{"StopSignal":"SIGNOPE"}}"#).is_err());
        assert_eq!(parse_secs("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_secs("-1").is_err());
    }

    #[test]
    fn defaults_follow_the_image() {
        let flags = TraceFlags {
            trace: true,
            ..Default::default()
        };
        let p = flags.probes(&[80]).unwrap();
        assert_eq!(p.http.len(), 1);
        assert_eq!(p.duration, None);
        let p = flags.probes(&[]).unwrap();
        assert!(p.http.is_empty());
        assert_eq!(p.duration, Some(DEFAULT_LINGER));
        let bare = TraceFlags {
            http_probe: vec![String::new()],
            ..Default::default()
        };
        assert!(bare.probes(&[]).is_err());
        let bad = TraceFlags {
            exec_probe: vec!["'unterminated".into()],
            ..Default::default()
        };
        assert!(bad.probes(&[]).is_err());
    }
}
