//! Facts whittle has proven about compressed layer blobs: "the blob with digest D
//! decompresses to the tar with diff_id X, of N bytes".
//!
//! Proving it costs a full decompression; knowing it lets a later copy of the same blob
//! check only the blob's digest (which proves the bytes are the ones whose content was
//! checked) and lets a later read skip hashing the tar. containerd keeps the same fact
//! as a label on its content. A fact is written only after whittle computed both sides
//! itself: when it wrote a compressed layer, or when a full read checked one.
//!
//! The facts live in a per-user cache directory, one small file per blob, and are
//! trusted as far as that directory is: it is used only when it belongs to the user and
//! nobody else can write to it. A missing, torn or unreadable fact is a miss (the blob
//! is decompressed as before); a fact naming another diff_id than the config's refuses
//! the layer, as decompressing it would. Nothing here is used until [`use_dir`] is
//! called: the library alone never touches the user's files.

use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::Digest;

static FACTS_DIR: OnceLock<Option<PathBuf>> = OnceLock::new();

/// What whittle knows about a compressed blob's content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerFact {
    /// The digest of the uncompressed tar.
    pub diff_id: Digest,
    /// The tar's length in bytes.
    pub size: u64,
}

/// Why a cache directory cannot hold facts.
#[derive(Debug, thiserror::Error)]
pub enum FactsDirError {
    /// It could not be made or read.
    #[error("cannot use {0}: {1}")]
    Io(PathBuf, io::Error),
    /// Someone else could plant facts in it.
    #[error("{0} is not used: it must belong to this user and be writable by nobody else")]
    Untrusted(PathBuf),
}

/// Keeps facts under `dir` (made, mode 0700, when missing) for the rest of the process;
/// `None` keeps none. Only the first call counts. An unusable directory is an error and
/// leaves facts off.
pub fn use_dir(dir: Option<&Path>) -> Result<(), FactsDirError> {
    let checked = match dir {
        None => Ok(None),
        Some(d) => facts_dir(d).map(Some),
    };
    let (chosen, result) = match checked {
        Ok(d) => (d, Ok(())),
        Err(e) => (None, Err(e)),
    };
    let _ = FACTS_DIR.set(chosen);
    result
}

fn facts_dir(dir: &Path) -> Result<PathBuf, FactsDirError> {
    let layers = dir.join("layers/sha256");
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&layers)
        .map_err(|e| FactsDirError::Io(dir.to_path_buf(), e))?;
    let uid = rustix::process::geteuid().as_raw();
    for d in [dir, &dir.join("layers"), &layers] {
        let meta = fs::metadata(d).map_err(|e| FactsDirError::Io(d.to_path_buf(), e))?;
        if meta.uid() != uid || meta.permissions().mode() & 0o022 != 0 {
            return Err(FactsDirError::Untrusted(d.to_path_buf()));
        }
    }
    Ok(layers)
}

fn fact_path(digest: &Digest) -> Option<PathBuf> {
    FACTS_DIR
        .get()
        .and_then(|d| d.as_ref())
        .map(|d| d.join(digest.hex()))
}

/// The fact known about the blob `digest`, if any.
pub fn known(digest: &Digest) -> Option<LayerFact> {
    let text = fs::read_to_string(fact_path(digest)?).ok()?;
    let (diff_id, size) = text.trim_end().split_once(' ')?;
    Some(LayerFact {
        diff_id: diff_id.parse().ok()?,
        size: size.parse().ok()?,
    })
}

/// Records that the blob `digest` decompresses to `fact`. Best effort: a fact that cannot
/// be written only means the next run proves it again.
pub fn record(digest: &Digest, fact: &LayerFact) {
    let Some(path) = fact_path(digest) else {
        return;
    };
    if known(digest).as_ref() == Some(fact) {
        return;
    }
    let Some(dir) = path.parent() else {
        return;
    };
    let write = || -> io::Result<()> {
        let mut temp = tempfile::Builder::new()
            .prefix(&crate::temp_prefix())
            .tempfile_in(dir)?;
        writeln!(temp, "sha256:{} {}", fact.diff_id.hex(), fact.size)?;
        temp.persist(&path).map_err(|e| e.error)?;
        Ok(())
    };
    let _ = write();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_others_can_write_to_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let open = tmp.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(facts_dir(&open), Err(FactsDirError::Untrusted(_))));
        let private = tmp.path().join("private/cache");
        let layers = facts_dir(&private).unwrap();
        assert_eq!(
            fs::metadata(&layers).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }
}
