//! Build steps: a command run in a builder image inside whittle's sandbox —
//! own namespaces, loopback-only network unless the spec says `network =
//! "host"`, a fixed environment (nothing leaks from the host), inputs copied in
//! read-only — and the outputs it leaves, located safely inside its root.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::OFlags;
use whittle_image::mutate::Flat;
use whittle_trace::rootfs::RootDir;
use whittle_trace::{Exit, IdMapping, Network, Policy, Probes, RunOptions, Sandbox};

use crate::spec::{Step, StepNetwork};
use crate::BuildError;

/// The PATH a step runs with.
const STEP_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The longest a step may run.
const STEP_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

/// A finished step: its root (kept until the layers are written) and outputs.
pub struct StepResult {
    /// The step's name.
    pub name: String,
    /// The unpacked root the step ran in, with what it wrote.
    pub root: PathBuf,
    /// Each declared output: in-step path and its real host path inside `root`.
    pub outputs: Vec<(String, PathBuf)>,
    /// Seconds it ran.
    pub seconds: f64,
}

/// Resolves `inside` as if `root` were `/` (symlinks cannot lead out) and returns its host path.
pub fn resolve_in_root(root: &Path, inside: &str) -> Result<PathBuf, BuildError> {
    let dir = RootDir::open(root, None)?;
    let fd = dir
        .resolve(inside, OFlags::PATH | OFlags::NOFOLLOW)
        .map_err(|e| BuildError::Input(format!("{inside}: {}", std::io::Error::from(e))))?;
    dir.beneath(&fd, inside)
        .map_err(|_| BuildError::Input(format!("{inside} lies outside the step's root")))
}

/// Runs `step` in its builder image (already flattened as `flat`), unpacked into `root`.
pub fn run(
    step: &Step,
    flat: &Flat,
    root: &Path,
    log_dir: &Path,
    epoch: u64,
    quiet: bool,
) -> Result<StepResult, BuildError> {
    whittle_trace::check_supported()?;
    fs::create_dir_all(root).map_err(|e| BuildError::io("cannot create", root, e))?;
    // Steps run as root of the builder image, in a user namespace.
    let ids = IdMapping::for_caller(0, 0);
    whittle_trace::unpack_for_run(flat, root, &ids)?;
    // Every write beneath the root resolves inside it: a builder image's
    // symlinks cannot lead an input or an output's directory to the host.
    let dir = RootDir::open(root, ids.to_host(0, 0))?;
    for (inside, host) in &step.inputs {
        dir.copy_in_read_only(host, inside)?;
    }
    for out in &step.outputs {
        if let Some((parent, _)) = out.trim_end_matches('/').rsplit_once('/') {
            if !parent.is_empty() {
                dir.mkdir_all(parent)?;
            }
        }
    }
    let mut env = vec![
        format!("PATH={STEP_PATH}"),
        "HOME=/root".to_string(),
        "TZ=UTC".to_string(),
        "LANG=C.UTF-8".to_string(),
        format!("SOURCE_DATE_EPOCH={epoch}"),
    ];
    for (k, v) in &step.env {
        env.retain(|e| e.split('=').next() != Some(k.as_str()));
        env.push(format!("{k}={v}"));
    }
    let sandbox = Sandbox {
        root: root.to_path_buf(),
        argv: vec!["/bin/sh".into(), "-c".into(), step.run.clone()],
        env,
        path: STEP_PATH.split(':').map(String::from).collect(),
        workdir: step.workdir.clone().unwrap_or_else(|| "/".into()),
        uid: 0,
        gid: 0,
        groups: if ids.can_set_groups() {
            vec![0]
        } else {
            vec![]
        },
        network: match step.network {
            StepNetwork::None => Network::Loopback,
            StepNetwork::Host => Network::Host,
        },
        hostname: "whittle-build".into(),
        trace_files: false,
        record_syscalls: false,
        policy: Policy::docker_default(ids),
        // whittle reads the step's root back. Root gave every owner on the host; an
        // ordinary user leaves the builder image's files its own (root inside the
        // step), so that every file the step leaves stays readable here.
        owners: Vec::new(),
    };
    let opts = RunOptions {
        probes: Probes {
            duration: Some(STEP_TIMEOUT),
            ..Probes::default()
        },
        exposed_ports: vec![],
        stop_signal: libc::SIGTERM,
        stop_timeout: Duration::from_secs(5),
        ready_timeout: Duration::from_secs(1),
        ready_ports: vec![],
        log_dir: log_dir.to_path_buf(),
    };
    if !quiet {
        eprintln!("step {}: running in {}", step.name, step.image);
    }
    let out = whittle_trace::run(sandbox, &opts).map_err(|e| BuildError::Step {
        name: step.name.clone(),
        why: e.to_string(),
    })?;
    if out.exit != Some(Exit::Code(0)) {
        let how = out
            .exit
            .map_or("did not finish".to_string(), |e| e.to_string());
        let tail = whittle_trace::tail_of(&out.log);
        return Err(BuildError::Step {
            name: step.name.clone(),
            why: format!("it failed ({how}); its output:\n{tail}"),
        });
    }
    let mut outputs = Vec::new();
    for o in &step.outputs {
        let real = resolve_in_root(root, o).map_err(|e| BuildError::Step {
            name: step.name.clone(),
            why: format!("declared output {o} is missing: {e}"),
        })?;
        outputs.push((o.clone(), real));
    }
    if !quiet {
        eprintln!("step {}: done in {:.2} s", step.name, out.seconds);
    }
    Ok(StepResult {
        name: step.name.clone(),
        root: root.to_path_buf(),
        outputs,
        seconds: out.seconds,
    })
}
