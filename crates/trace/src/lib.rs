//! Running an image's program in a private sandbox and recording every file it
//! touches.
//!
//! The sandbox is a process in new mount, pid, uts, ipc and network namespaces
//! (loopback only unless asked), pivoted into a private copy of the image root,
//! with the image's user, environment and working directory. It runs under
//! ptrace with a seccomp-bpf filter so that only file syscalls stop; every path
//! they name, across the whole process tree, is recorded. Probes (HTTP, TCP,
//! commands inside, a host script, a duration) drive the program, then it is
//! stopped — SIGKILL after a grace period — and nothing is left running or
//! mounted: the namespaces die with the program's pid 1, and `PTRACE_O_EXITKILL`
//! kills the tree if whittle itself dies.
//!
//! Linux on x86-64, as root.
#![deny(missing_docs)]

mod cgroup;
mod child;
mod filter;
pub mod idmap;
mod net;
pub mod policy;
pub mod probe;
pub mod profile;
pub mod rootfs;
mod run;
pub mod sandbox;
pub mod syscalls;
mod tracer;
pub mod user;

use std::path::{Path, PathBuf};

pub use cgroup::parse_size;
pub use idmap::IdMapping;
pub use policy::Policy;
pub use probe::{HttpProbe, ProbeResult, TcpProbe};
pub use profile::SeccompProfile;
pub use run::{run, tail_of, Probes, RunOptions, RunOutcome};
pub use sandbox::{DeferredOwner, Network, Sandbox};
pub use tracer::{kill_running, Exit, Trace, TracedPath};

/// Why a traced run failed.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// A file operation failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// On what.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A system call failed.
    #[error("{0}: {1}")]
    Sys(&'static str, nix::errno::Errno),
    /// Bad input (a NUL in an argument, an unknown user, an empty command).
    #[error("{0}")]
    Config(String),
    /// The program could not be started in the sandbox.
    #[error("{0}")]
    Start(String),
    /// Tracing is not possible here.
    #[error("{0}")]
    Unsupported(String),
    /// The image could not be unpacked.
    #[error(transparent)]
    Image(#[from] whittle_image::Error),
    /// The program hit a limit of the sandbox, which ended the run.
    #[error("{0}")]
    Limit(String),
}

impl TraceError {
    pub(crate) fn io(what: &'static str, path: &Path, source: std::io::Error) -> TraceError {
        TraceError::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Whether this process can run the sandbox: Linux x86-64 with user
/// namespaces enabled (root or not). `Err` says why not, in words.
pub fn check_supported() -> Result<(), TraceError> {
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        return Err(TraceError::Unsupported(
            "run-time tracing is implemented for Linux on x86-64 only".into(),
        ));
    }
    let max = std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    if max == Some(0) {
        return Err(TraceError::Unsupported(
            "the sandbox needs user namespaces, and this kernel allows none \
             (/proc/sys/user/max_user_namespaces is 0)"
                .into(),
        ));
    }
    Ok(())
}

/// Writes `flat`'s filesystem to `dest` for a run under `ids`: owners mapped to
/// the namespace's host ids (those this process may not give are returned, to be
/// given inside the namespace), device nodes as empty files (a layer's device
/// node must not reach a host device).
pub fn unpack_for_run(
    flat: &whittle_image::mutate::Flat,
    dest: &Path,
    ids: &IdMapping,
) -> Result<whittle_image::unpack::Unpacked, TraceError> {
    let map = |u: u32, g: u32| ids.to_host(u, g);
    let options = whittle_image::unpack::UnpackOptions {
        ids: Some(&map),
        no_devices: true,
    };
    Ok(whittle_image::unpack::unpack_with(
        flat, &flat.view, dest, options,
    )?)
}
