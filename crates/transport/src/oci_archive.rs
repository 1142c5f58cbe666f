//! `oci-archive:FILE[:TAG]`: a tar of an OCI image layout.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use whittle_image::manifest::REF_NAME;
use whittle_image::{Digest, Image, Limits};

use crate::layout;
use crate::tarfile::{ArchiveStore, ArchiveWriter, TarIndex};
use crate::{Error, Result};

/// Reads the image `pick` names (or the only one) from the archive at `file`.
pub fn open(
    file: &Path,
    pick: Option<&crate::LayoutPick>,
    platform: &whittle_image::Platform,
) -> Result<Image> {
    let (store, index_json, location) = open_store(file)?;
    layout::select_image(store, &index_json, pick, &location, platform)
}

/// The archive as a blob store, its `index.json`, and its name for messages.
pub fn open_store(file: &Path) -> Result<(Arc<dyn whittle_image::BlobStore>, Vec<u8>, String)> {
    let index = TarIndex::open(file)?;
    let location = format!("oci-archive:{}", file.display());
    if index.read_small("oci-layout")?.is_none() {
        return Err(Error::invalid(
            &location,
            "not an OCI layout archive (it has no oci-layout member)",
        ));
    }
    let index_json = index
        .read_small("index.json")?
        .ok_or_else(|| Error::invalid(&location, "the archive has no index.json"))?;
    Ok((Arc::new(ArchiveStore::new(index)), index_json, location))
}

/// Writes `image` as an OCI layout archive at `file`, tagged `tag`.
pub fn write(
    file: &Path,
    tag: Option<&str>,
    image: &Image,
    mtime: u64,
    limits: &Limits,
) -> Result<Digest> {
    let manifest = image.manifest_doc();
    let mut annotations = BTreeMap::new();
    if let Some(t) = tag {
        annotations.insert(REF_NAME.to_string(), t.to_string());
    }
    let mut out = ArchiveWriter::create(file, mtime)?;
    crate::write_layout_members(&mut out, image, &manifest, annotations, limits)?;
    out.commit()?;
    Ok(manifest.digest)
}

/// Writes every platform of `multi` and its index as an OCI layout archive.
pub fn write_all(
    file: &Path,
    tag: Option<&str>,
    multi: &crate::multi::MultiImage,
    mtime: u64,
    limits: &Limits,
) -> Result<Digest> {
    let mut annotations = BTreeMap::new();
    if let Some(t) = tag {
        annotations.insert(REF_NAME.to_string(), t.to_string());
    }
    let mut out = ArchiveWriter::create(file, mtime)?;
    out.dir("blobs")?;
    out.dir("blobs/sha256")?;
    for blob in multi.blobs() {
        crate::write_blob_member(&mut out, &blob, limits)?;
    }
    crate::write_layout_index(&mut out, &multi.index, annotations)?;
    out.commit()?;
    Ok(multi.index.digest.clone())
}
