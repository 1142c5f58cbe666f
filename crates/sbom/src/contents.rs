//! An image's flattened filesystem with a SHA-256 and a SHA-1 of every regular file, read
//! in one streaming pass over its layers.
//!
//! Each layer is read once (all layers in parallel), its files hashed as the tar streams
//! past, nothing staged on disk and no layer held in memory. The image crate's flattener
//! then applies the layers in order, so whiteouts and opaque directories hide what they
//! delete, and hard links share their target's data (and digest). The few small files an
//! SBOM needs to read (the package databases, os-release) are kept in memory as they pass.

use std::collections::HashMap;
use std::io::{self, Read};

use sha1::Sha1;
use sha2::{Digest as _, Sha256};
use whittle_image::entries::{read_changes_with, EntryKind, FileVisitor, ReadOptions};
use whittle_image::flatten::{FlatView, Flattener};
use whittle_image::{Image, Layer, Limits};
use whittle_slim::pkgdb;

use crate::SbomError;

/// The digests of one file's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileDigests {
    /// SHA-256.
    pub sha256: [u8; 32],
    /// SHA-1 (SPDX 2.3 requires one for every file).
    pub sha1: [u8; 20],
}

impl FileDigests {
    /// The digests of `bytes`.
    pub fn of(bytes: &[u8]) -> FileDigests {
        FileDigests {
            sha256: Sha256::digest(bytes).into(),
            sha1: Sha1::digest(bytes).into(),
        }
    }
}

/// One regular file of the flattened image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileInfo {
    /// Absolute path.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// Digests of its bytes.
    pub digests: FileDigests,
}

/// Files above this size are never kept for reading (a dpkg status of a large image is a
/// few MiB).
const MAX_CAPTURE: u64 = 64 << 20;

/// Whether a layer member (normalised, root-relative) is a file the SBOM reads.
fn is_database_file(path: &str) -> bool {
    let db = |p: &str| p.trim_start_matches('/').to_string();
    path == db(pkgdb::DPKG_STATUS)
        || path == db(pkgdb::APK_INSTALLED)
        || pkgdb::OS_RELEASE.iter().any(|p| path == db(p))
        || path
            .strip_prefix(&format!("{}/", db(pkgdb::DPKG_INFO_DIR)))
            .is_some_and(|name| name.ends_with(".list") && !name.contains('/'))
}

/// A flattened image with file digests.
#[derive(Debug, Default)]
pub struct Contents {
    pub(crate) view: FlatView,
    /// Digests by (layer, data offset), the key of a [`whittle_image::flatten::DataRef`].
    pub(crate) digests: HashMap<(usize, u64), FileDigests>,
    /// Bytes of the database files, by the same key.
    pub(crate) captured: HashMap<(usize, u64), Vec<u8>>,
}

type LayerRead = (
    whittle_image::entries::LayerChanges,
    HashMap<u64, FileDigests>,
    HashMap<u64, Vec<u8>>,
);

fn read_layer(layer: &Layer, limits: &Limits) -> Result<LayerRead, SbomError> {
    let mut tar = layer.open_tar(limits)?;
    let mut digests = HashMap::new();
    let mut captured = HashMap::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut visit = |path: &str, offset: u64, size: u64, data: &mut dyn Read| -> io::Result<()> {
        let capture = size <= MAX_CAPTURE && is_database_file(path);
        let mut kept = Vec::new();
        let (mut sha256, mut sha1) = (Sha256::new(), Sha1::new());
        loop {
            let n = data.read(&mut buf)?;
            if n == 0 {
                break;
            }
            sha256.update(&buf[..n]);
            sha1.update(&buf[..n]);
            if capture {
                kept.extend_from_slice(&buf[..n]);
            }
        }
        digests.insert(
            offset,
            FileDigests {
                sha256: sha256.finalize().into(),
                sha1: sha1.finalize().into(),
            },
        );
        if capture {
            captured.insert(offset, kept);
        }
        Ok(())
    };
    let visitor: &mut FileVisitor<'_> = &mut visit;
    // read_changes_with reads to the end of the stream: the blob digest and diff_id are
    // verified by the time it returns.
    let changes = read_changes_with(
        &mut tar,
        &layer.descriptor.digest,
        limits,
        ReadOptions::default(),
        Some(visitor),
    )?;
    Ok((changes, digests, captured))
}

impl Contents {
    /// Reads every layer of `image` once and flattens them.
    pub fn read(image: &Image, limits: &Limits) -> Result<Contents, SbomError> {
        let layers = whittle_image::parallel::map_indexed(
            image.layers.len(),
            whittle_image::parallel::cores(),
            |i| read_layer(&image.layers[i], limits),
        )?;
        let mut flat = Flattener::new(false);
        let mut out = Contents::default();
        for (i, (changes, digests, captured)) in layers.into_iter().enumerate() {
            flat.apply(i, &image.layers[i].descriptor.digest, changes)?;
            out.digests
                .extend(digests.into_iter().map(|(offset, d)| ((i, offset), d)));
            out.captured
                .extend(captured.into_iter().map(|(offset, b)| ((i, offset), b)));
        }
        out.view = flat.finish();
        Ok(out)
    }

    /// The text of a database file at an absolute path (symlinks followed inside the image),
    /// if the image has it.
    pub fn read_text(&self, path: &str) -> Option<String> {
        let key = self.view.resolve(path)?;
        let data = self.view.nodes.get(key)?.data?;
        let bytes = self.captured.get(&(data.layer, data.offset))?;
        Some(String::from_utf8_lossy(bytes).into_owned())
    }

    /// The installed packages the image's own database lists, and its os-release.
    pub fn installed_packages(&self) -> pkgdb::PackageDb {
        pkgdb::read_package_db(|path| self.read_text(path))
    }

    /// Every regular file, sorted by path.
    pub fn files(&self) -> Result<Vec<FileInfo>, SbomError> {
        let mut out = Vec::new();
        for (key, node) in &self.view.nodes {
            if node.kind != EntryKind::File {
                continue;
            }
            let path = format!("/{key}");
            let digests = match node.data {
                Some(data) => *self
                    .digests
                    .get(&(data.layer, data.offset))
                    .ok_or_else(|| SbomError::NoDigest(path.clone()))?,
                None => FileDigests::of(b""),
            };
            out.push(FileInfo {
                path,
                size: node.size(),
                digests,
            });
        }
        Ok(out)
    }

    /// The real path (symlinks followed) of `path` if it is there and not a directory.
    pub(crate) fn resolve_non_dir(&self, path: &str) -> Option<(String, bool)> {
        let key = self.view.resolve(path)?;
        let node = self.view.nodes.get(key)?;
        (node.kind != EntryKind::Dir).then(|| (format!("/{key}"), node.kind == EntryKind::File))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_files() {
        for p in [
            "var/lib/dpkg/status",
            "var/lib/dpkg/info/libc6:amd64.list",
            "lib/apk/db/installed",
            "etc/os-release",
            "usr/lib/os-release",
        ] {
            assert!(is_database_file(p), "{p}");
        }
        for p in [
            "var/lib/dpkg/info/libc6.md5sums",
            "var/lib/dpkg/status-old",
            "var/lib/dpkg/info/x/y.list",
            "usr/sbin/nginx",
        ] {
            assert!(!is_database_file(p), "{p}");
        }
    }
}
