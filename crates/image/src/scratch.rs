//! A private temporary directory of blobs that whittle made, usable as a blob store.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::blob::{BlobStore, FileRegion, OwnedRegionReader};
use crate::{Digest, Error, Result};

/// The name prefix of every temporary file and directory whittle creates:
/// `.whittle-PID-`, so that a signal handler can remove exactly this process's
/// leftovers (Drop does not run when a signal ends the process).
pub fn temp_prefix() -> String {
    format!(".whittle-{}-", std::process::id())
}

/// Gives the owner write and search permission on every directory of a tree (no
/// symlink followed), so that a non-root process can remove it: a sandboxed run
/// or build step leaves read-only directories of the image (and its read-only
/// inputs) behind, and only root may delete inside those as they are.
pub fn make_tree_removable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(md) = std::fs::symlink_metadata(path) else {
        return;
    };
    if !md.is_dir() {
        return;
    }
    let mode = md.permissions().mode();
    if mode & 0o700 != 0o700 {
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode | 0o700));
    }
    if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                make_tree_removable(&e.path());
            }
        }
    }
}

/// Temporary blob files, removed when the last image using them is dropped.
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Root deletes inside read-only directories; anyone else makes them writable first.
        // (The directory is ours: its owner is who we are.)
        use std::os::unix::fs::MetadataExt;
        if std::fs::metadata(self.dir.path()).is_ok_and(|m| m.uid() != 0) {
            make_tree_removable(self.dir.path());
        }
    }
}

impl Scratch {
    /// A new scratch directory inside `parent` (pick one on the output's filesystem).
    pub fn new_in(parent: &Path) -> Result<Scratch> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}scratch-", temp_prefix()))
            .tempdir_in(parent)
            .map_err(|e| Error::io("cannot create a scratch directory in", parent, e))?;
        Ok(Scratch { dir })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A fresh file name inside the scratch directory.
    pub fn new_file(&self, stem: &str) -> PathBuf {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        self.dir
            .path()
            .join(format!("{stem}-{}", COUNTER.fetch_add(1, Ordering::SeqCst)))
    }

    /// Moves a finished blob file to its content-addressed name.
    pub fn adopt(&self, file: &Path, digest: &Digest) -> Result<()> {
        let dst = self.dir.path().join(digest.hex());
        std::fs::rename(file, &dst).map_err(|e| Error::io("cannot rename", file, e))
    }
}

impl BlobStore for Scratch {
    fn open_raw(&self, digest: &Digest) -> Result<Box<dyn Read + Send + '_>> {
        let region = self.locate(digest).ok_or_else(|| Error::MissingBlob {
            digest: digest.clone(),
            location: self.location(),
        })?;
        Ok(Box::new(OwnedRegionReader::open(&region)?))
    }

    fn locate(&self, digest: &Digest) -> Option<FileRegion> {
        let path = self.dir.path().join(digest.hex());
        let len = std::fs::metadata(&path).ok()?.len();
        Some(FileRegion {
            path,
            offset: 0,
            len,
        })
    }

    fn own_file(&self, digest: &Digest) -> Option<PathBuf> {
        let path = self.dir.path().join(digest.hex());
        path.is_file().then_some(path)
    }

    fn location(&self) -> String {
        format!("whittle's scratch directory {}", self.dir.path().display())
    }
}
