//! The one error type of the image crate: every variant names what it was
//! looking at (a digest, a path, a layer) so that a message stands on its own.

use std::path::PathBuf;

use crate::Digest;

/// Errors from reading, flattening and writing images.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O failure on a named file.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done ("cannot open", "cannot write", ...).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An I/O failure while streaming a blob.
    #[error("reading blob {digest}: {source}")]
    BlobIo {
        /// The blob.
        digest: Digest,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A blob whose bytes do not hash to its digest.
    #[error("blob {expected} is corrupt: its content hashes to {found}")]
    DigestMismatch {
        /// The digest the manifest names.
        expected: Digest,
        /// The digest of the bytes read.
        found: Digest,
    },
    /// A blob whose length differs from the descriptor's size.
    #[error("blob {digest} has {found} bytes, but its descriptor says {expected}")]
    SizeMismatch {
        /// The blob.
        digest: Digest,
        /// The size in the descriptor.
        expected: u64,
        /// The number of bytes read.
        found: u64,
    },
    /// A layer whose uncompressed content does not match the config's diff_id.
    #[error("layer {layer} uncompresses to {found}, but the image config says its diff_id is {expected}")]
    DiffIdMismatch {
        /// The layer's blob digest.
        layer: Digest,
        /// The diff_id in the config.
        expected: Digest,
        /// The digest of the uncompressed bytes.
        found: Digest,
    },
    /// A blob the image needs is not there.
    #[error("blob {digest} is missing from {location}")]
    MissingBlob {
        /// The blob.
        digest: Digest,
        /// Where it was looked for.
        location: String,
    },
    /// A string that is not a digest we accept.
    #[error("invalid digest {0:?}: expected sha256: followed by 64 lowercase hex digits")]
    InvalidDigest(String),
    /// JSON that does not parse or lacks a required field.
    #[error("invalid {what}: {reason}")]
    InvalidJson {
        /// Which document ("image config", "manifest", ...).
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// A layer tar that cannot be read safely.
    #[error("layer {layer}: {reason}")]
    BadLayer {
        /// The layer's blob digest.
        layer: Digest,
        /// What is wrong, in words.
        reason: String,
    },
    /// A layer member that is refused (escaping path, bad whiteout, ...).
    #[error("layer {layer}: entry {path:?}: {reason}")]
    BadEntry {
        /// The layer's blob digest.
        layer: Digest,
        /// The member's name as written in the tar.
        path: String,
        /// Why it is refused.
        reason: String,
    },
    /// A bound from [`crate::Limits`] was exceeded.
    #[error("layer {layer}: {what} exceeds the limit of {limit} (raise it with --max-layer-size if the image is genuine)")]
    LimitExceeded {
        /// The layer's blob digest.
        layer: Digest,
        /// What was counted.
        what: &'static str,
        /// The limit.
        limit: u64,
    },
    /// A compression the reader does not know.
    #[error(
        "layer {digest} has media type {media_type}, which is not a layer type whittle can read"
    )]
    UnsupportedLayer {
        /// The layer's blob digest.
        digest: Digest,
        /// Its media type.
        media_type: String,
    },
    /// A path of a flattened filesystem that cannot be written to disk as it is.
    #[error("cannot unpack /{path}: {reason}")]
    Unpack {
        /// The path, relative to the image root.
        path: String,
        /// Why, in words.
        reason: String,
    },
    /// The image config and manifest disagree on the number of layers.
    #[error("the manifest lists {layers} layers but the config lists {diff_ids} diff_ids")]
    LayerCountMismatch {
        /// Layers in the manifest.
        layers: usize,
        /// diff_ids in the config.
        diff_ids: usize,
    },
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A copy of errors that carry only data (no I/O cause), used to recover an
    /// error that another library wrapped on its way up.
    pub fn clone_data(&self) -> Option<Error> {
        Some(match self {
            Error::DigestMismatch { expected, found } => Error::DigestMismatch {
                expected: expected.clone(),
                found: found.clone(),
            },
            Error::SizeMismatch {
                digest,
                expected,
                found,
            } => Error::SizeMismatch {
                digest: digest.clone(),
                expected: *expected,
                found: *found,
            },
            Error::DiffIdMismatch {
                layer,
                expected,
                found,
            } => Error::DiffIdMismatch {
                layer: layer.clone(),
                expected: expected.clone(),
                found: found.clone(),
            },
            Error::MissingBlob { digest, location } => Error::MissingBlob {
                digest: digest.clone(),
                location: location.clone(),
            },
            Error::BadLayer { layer, reason } => Error::BadLayer {
                layer: layer.clone(),
                reason: reason.clone(),
            },
            Error::LimitExceeded { layer, what, limit } => Error::LimitExceeded {
                layer: layer.clone(),
                what,
                limit: *limit,
            },
            Error::Unpack { path, reason } => Error::Unpack {
                path: path.clone(),
                reason: reason.clone(),
            },
            _ => return None,
        })
    }

    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            what,
            path: path.into(),
            source,
        }
    }
}
