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

mod filter;
pub mod probe;
mod run;
pub mod sandbox;
pub mod syscalls;
mod tracer;
pub mod user;

use std::path::{Path, PathBuf};

pub use probe::{HttpProbe, ProbeResult, TcpProbe};
pub use run::{run, tail_of, Probes, RunOptions, RunOutcome};
pub use sandbox::{Network, Sandbox};
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

/// Whether this process can trace: Linux x86-64 as root. `Err` says why not, in words.
pub fn check_supported() -> Result<(), TraceError> {
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        return Err(TraceError::Unsupported(
            "run-time tracing is implemented for Linux on x86-64 only".into(),
        ));
    }
    if !nix::unistd::geteuid().is_root() {
        return Err(TraceError::Unsupported(
            "run-time tracing needs root (it creates namespaces and mounts, and uses ptrace)"
                .into(),
        ));
    }
    Ok(())
}
