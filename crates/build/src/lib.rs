//! Building images from scratch from one TOML definition: the spec, which
//! names the build steps to run in throwaway containers, the layers to
//! assemble from their outputs, from host files and from other images, and
//! the image config.
//!
//! Everything a build does is written in that one file, so the same spec and
//! the same inputs give the same image. The spec is parsed and checked in full
//! before anything runs: every mistake is reported with the line and column
//! it sits on.
#![deny(missing_docs)]

mod baseline;
pub mod build;
pub mod check;
pub mod spec;
pub mod stage;
pub mod step;

use std::path::{Path, PathBuf};

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The spec is wrong (with its file, line and column).
    #[error(transparent)]
    Spec(#[from] spec::SpecError),
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
    /// An input (image, host path, step output) is not usable.
    #[error("{0}")]
    Input(String),
    /// A step failed.
    #[error("step {name}: {why}")]
    Step {
        /// The step.
        name: String,
        /// What happened, with its output.
        why: String,
    },
    /// The entrypoint or user would not work in the image.
    #[error("{0}")]
    Entrypoint(String),
    /// Reading or writing an image failed.
    #[error(transparent)]
    Image(#[from] whittle_image::Error),
    /// The sandbox failed.
    #[error(transparent)]
    Trace(#[from] whittle_trace::TraceError),
}

impl BuildError {
    pub(crate) fn io(what: &'static str, path: &Path, source: std::io::Error) -> BuildError {
        BuildError::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    }
}
