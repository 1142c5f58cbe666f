//! `oci:DIR[:TAG]`: an OCI image layout directory.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use whittle_image::blob::{FileRegion, OwnedRegionReader};
use whittle_image::manifest::{parse_json, REF_NAME};
use whittle_image::{BlobStore, Digest, Image, Index, Limits, RawDoc};

use crate::layout::{self, Blob, OCI_LAYOUT};
use crate::{Error, Result};

/// Blobs of a layout directory.
pub struct LayoutStore {
    dir: PathBuf,
}

impl LayoutStore {
    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs/sha256").join(digest.hex())
    }
}

impl BlobStore for LayoutStore {
    fn open_raw(&self, digest: &Digest) -> whittle_image::Result<Box<dyn Read + Send + '_>> {
        let region = self
            .locate(digest)
            .ok_or_else(|| whittle_image::Error::MissingBlob {
                digest: digest.clone(),
                location: self.location(),
            })?;
        Ok(Box::new(OwnedRegionReader::open(&region)?))
    }

    fn locate(&self, digest: &Digest) -> Option<FileRegion> {
        let path = self.blob_path(digest);
        let meta = fs::metadata(&path).ok()?;
        meta.is_file().then_some(FileRegion {
            path,
            offset: 0,
            len: meta.len(),
        })
    }

    fn location(&self) -> String {
        format!("the OCI layout {}", self.dir.display())
    }
}

fn check_layout(dir: &Path) -> Result<()> {
    let marker = dir.join("oci-layout");
    let bytes = fs::read(&marker).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound if !dir.exists() => {
            Error::invalid(dir.display(), "no such directory")
        }
        io::ErrorKind::NotFound => Error::invalid(
            dir.display(),
            "not an OCI image layout (it has no oci-layout file)",
        ),
        _ => Error::io("cannot read", &marker, e),
    })?;
    let v: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::invalid(marker.display(), format!("invalid JSON: {e}")))?;
    match v.get("imageLayoutVersion").and_then(|v| v.as_str()) {
        Some("1.0.0") => Ok(()),
        other => Err(Error::invalid(
            marker.display(),
            format!("unsupported imageLayoutVersion {other:?}"),
        )),
    }
}

/// Reads the image `pick` names (or the only one) from the layout at `dir`.
pub fn open(
    dir: &Path,
    pick: Option<&crate::LayoutPick>,
    platform: &whittle_image::Platform,
) -> Result<Image> {
    let (store, index, location) = open_store(dir)?;
    layout::select_image(store, &index, pick, &location, platform)
}

/// The layout as a blob store, its `index.json`, and its name for messages.
pub fn open_store(dir: &Path) -> Result<(Arc<dyn BlobStore>, Vec<u8>, String)> {
    check_layout(dir)?;
    let index_path = dir.join("index.json");
    let index = fs::read(&index_path).map_err(|e| Error::io("cannot read", &index_path, e))?;
    let store = Arc::new(LayoutStore {
        dir: dir.to_path_buf(),
    });
    Ok((store, index, format!("oci:{}", dir.display())))
}

fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::Builder::new()
        .prefix(&whittle_image::temp_prefix())
        .permissions(crate::output_file_mode())
        .tempfile_in(dir)
        .map_err(|e| Error::io("cannot create a temporary file in", dir, e))?;
    temp.write_all(bytes)
        .map_err(|e| Error::io("cannot write", temp.path(), e))?;
    temp.as_file()
        .sync_all()
        .map_err(|e| Error::io("cannot sync", temp.path(), e))?;
    temp.persist(path)
        .map_err(|e| Error::io("cannot rename into place", path, e.error))?;
    Ok(())
}

fn write_blob(blobs: &Path, blob: &Blob<'_>, limits: &Limits) -> Result<()> {
    let dst = blobs.join(blob.digest().hex());
    if fs::metadata(&dst).is_ok_and(|m| m.len() == blob.size()) {
        return Ok(());
    }
    if let Some(own) = blob.own_file() {
        return place_own_file(&own, &dst);
    }
    let temp = tempfile::Builder::new()
        .prefix(&whittle_image::temp_prefix())
        .permissions(crate::output_file_mode())
        .tempfile_in(blobs)
        .map_err(|e| Error::io("cannot create a temporary file in", blobs, e))?;
    let (file, temp_path) = temp.into_parts();
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut src = blob.open(limits)?;
    io::copy(&mut src, &mut out).map_err(|e| crate::copy_error(&temp_path, e))?;
    let file = out
        .into_inner()
        .map_err(|e| Error::io("cannot write", &*temp_path, e.into_error()))?;
    file.sync_all()
        .map_err(|e| Error::io("cannot sync", &*temp_path, e))?;
    temp_path
        .persist(&dst)
        .map_err(|e| Error::io("cannot rename into place", &dst, e.error))?;
    Ok(())
}

/// Puts a blob that whittle wrote in this run at `dst`: a hard link when the
/// scratch space shares the output's filesystem (it is made there), else a
/// kernel-side copy; synced either way, and renamed into place.
fn place_own_file(own: &Path, dst: &Path) -> Result<()> {
    let dir = dst.parent().unwrap_or(Path::new("."));
    let temp = tempfile::Builder::new()
        .prefix(&whittle_image::temp_prefix())
        .make_in(dir, |path| {
            fs::hard_link(own, path).or_else(|_| {
                let mut from = File::open(own)?;
                let mut to = File::create_new(path)?;
                io::copy(&mut from, &mut to).map(|_| ())
            })
        })
        .map_err(|e| Error::io("cannot write a blob into", dir, e))?;
    File::open(temp.path())
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io("cannot sync", temp.path(), e))?;
    temp.persist(dst)
        .map_err(|e| Error::io("cannot rename into place", dst, e.error))?;
    Ok(())
}

fn write_into(
    dir: &Path,
    tag: Option<&str>,
    top: &RawDoc,
    blobs: &[Blob<'_>],
    limits: &Limits,
) -> Result<Digest> {
    let blobs_dir = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs_dir).map_err(|e| Error::io("cannot create", &blobs_dir, e))?;
    let manifest = top;
    // Blobs are independent: one per core (each is hashed and synced).
    whittle_image::parallel::map_indexed(blobs.len(), whittle_image::parallel::cores(), |i| {
        write_blob(&blobs_dir, &blobs[i], limits)
    })?;
    let index_path = dir.join("index.json");
    let mut entries = match fs::read(&index_path) {
        Ok(bytes) => parse_json::<Index>("index.json", &bytes)?.manifests,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Error::io("cannot read", &index_path, e)),
    };
    let mut annotations = BTreeMap::new();
    if let Some(t) = tag {
        // A tag names one image: the new one replaces the old.
        entries.retain(|d| d.annotations.get(REF_NAME).map(String::as_str) != Some(t));
        annotations.insert(REF_NAME.to_string(), t.to_string());
    } else {
        // The untagged image is one slot too (`oci:DIR` reads it): the new one replaces it.
        entries.retain(|d| d.annotations.contains_key(REF_NAME));
    }
    entries.push(layout::index_entry(manifest, annotations));
    write_file_atomic(&dir.join("oci-layout"), OCI_LAYOUT)?;
    write_file_atomic(&index_path, &layout::index_json(entries))?;
    Ok(manifest.digest.clone())
}

/// Writes `image` into the layout at `dir` (created if absent), tagged `tag`.
///
/// A new layout is built in a sibling temporary directory and renamed into
/// place; an existing one gets its blobs first and its `index.json` replaced last,
/// so an interrupted write leaves it as it was.
pub fn write(dir: &Path, tag: Option<&str>, image: &Image, limits: &Limits) -> Result<Digest> {
    let manifest = image.manifest_doc();
    let blobs = layout::blobs(image, &manifest);
    write_blobs(dir, tag, &manifest, &blobs, limits)
}

/// Writes every platform of `multi` and its index, tagged `tag`.
pub fn write_all(
    dir: &Path,
    tag: Option<&str>,
    multi: &crate::multi::MultiImage,
    limits: &Limits,
) -> Result<Digest> {
    let blobs = multi.blobs();
    write_blobs(dir, tag, &multi.index, &blobs, limits)
}

/// Writes `blobs` and names `top` (a manifest or an index) in `index.json`.
fn write_blobs(
    dir: &Path,
    tag: Option<&str>,
    top: &RawDoc,
    blobs: &[Blob<'_>],
    limits: &Limits,
) -> Result<Digest> {
    if dir.exists() {
        let empty = fs::read_dir(dir)
            .map_err(|e| Error::io("cannot read", dir, e))?
            .next()
            .is_none();
        if !empty {
            check_layout(dir).map_err(|_| {
                Error::invalid(
                    dir.display(),
                    "exists and is not an OCI image layout; whittle will not write into it",
                )
            })?;
        }
        return write_into(dir, tag, top, blobs, limits);
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // Missing parents are made, as `mkdir -p` (and skopeo) would, and removed again
    // when the write fails, so that a failed write leaves nothing behind.
    let made = make_parents(parent)?;
    let staged = (|| {
        let staging = tempfile::Builder::new()
            .prefix(&format!("{}layout-", whittle_image::temp_prefix()))
            .permissions(crate::output_dir_mode())
            .tempdir_in(parent)
            .map_err(|e| Error::io("cannot create a temporary directory in", parent, e))?;
        let digest = write_into(staging.path(), tag, top, blobs, limits)?;
        Ok((staging, digest))
    })();
    let (staging, digest) = match staged {
        Ok(v) => v,
        Err(e) => {
            if let Some(top) = made {
                let _ = fs::remove_dir_all(top);
            }
            return Err(e);
        }
    };
    let staged = staging.keep();
    fs::rename(&staged, dir).map_err(|e| {
        let _ = fs::remove_dir_all(&staged);
        Error::io("cannot rename into place", dir, e)
    })?;
    if let Ok(f) = File::open(parent) {
        let _ = f.sync_all();
    }
    Ok(digest)
}

/// Makes `dir` and its missing parents; returns the topmost directory it made.
fn make_parents(dir: &Path) -> Result<Option<PathBuf>> {
    let Some(top) = dir
        .ancestors()
        .take_while(|p| !p.as_os_str().is_empty() && !p.is_dir())
        .last()
    else {
        return Ok(None);
    };
    fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
    Ok(Some(top.to_path_buf()))
}
