//! Errors of the transports.

use std::path::PathBuf;

/// What can go wrong reading or writing an image through a transport.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A reference that does not parse.
    #[error(
        "invalid image reference {input:?}: {reason}\n{}",
        crate::reference::ACCEPTED
    )]
    BadReference {
        /// What the user wrote.
        input: String,
        /// Why it is refused.
        reason: String,
    },
    /// A transport used in a direction it does not support.
    #[error("{transport}: cannot be used as a {direction}")]
    Direction {
        /// The transport.
        transport: &'static str,
        /// "source" or "destination".
        direction: &'static str,
    },
    /// A file-system failure.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An image or layout that is not what it should be.
    #[error("{location}: {reason}")]
    Invalid {
        /// The file or directory.
        location: String,
        /// Why.
        reason: String,
    },
    /// No image matches the tag or reference asked for.
    #[error("{location}: no image {wanted}; it has {available}")]
    NotFound {
        /// The file or directory.
        location: String,
        /// The tag asked for.
        wanted: String,
        /// What there is.
        available: String,
    },
    /// Several images and no tag to choose one.
    #[error("{location} holds {count} images ({available}); name one with {how}")]
    Ambiguous {
        /// The file or directory.
        location: String,
        /// The reference suffixes that pick one.
        how: &'static str,
        /// How many.
        count: usize,
        /// Their names.
        available: String,
    },
    /// An error from the image core.
    #[error(transparent)]
    Image(#[from] whittle_image::Error),
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            what,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid(location: impl std::fmt::Display, reason: impl Into<String>) -> Self {
        Error::Invalid {
            location: location.to_string(),
            reason: reason.into(),
        }
    }
}
