//! Every platform of a multi-platform image (`copy --all`): the index and the
//! images it lists, copied as they are, so the index digest survives.

use std::collections::HashSet;
use std::sync::Arc;

use whittle_image::blob::read_small;
use whittle_image::manifest::parse_json;
use whittle_image::{BlobStore, Image, Index, RawDoc};

use crate::layout::{self, Blob};
use crate::{Error, ImageRef, OpenOptions, Result};

/// An image index and its images, in the index's order.
pub struct MultiImage {
    /// The index document.
    pub index: RawDoc,
    /// The images, each with its own manifest.
    pub images: Vec<Image>,
    manifests: Vec<RawDoc>,
}

impl MultiImage {
    /// Every blob to write, each once: layers, configs, manifests, then the index.
    pub fn blobs(&self) -> Vec<Blob<'_>> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (image, manifest) in self.images.iter().zip(&self.manifests) {
            for b in layout::blobs(image, manifest) {
                if seen.insert(b.digest().clone()) {
                    out.push(b);
                }
            }
        }
        if seen.insert(self.index.digest.clone()) {
            out.push(Blob::Doc(&self.index));
        }
        out
    }
}

/// Reads the index `desc` names from `store` and every image it lists.
pub fn read(
    store: Arc<dyn BlobStore>,
    desc: &whittle_image::Descriptor,
    location: &str,
) -> Result<MultiImage> {
    let bytes = read_small(store.as_ref(), desc, "image index")?;
    let index: Index = parse_json("image index", &bytes)?;
    let mut images = Vec::new();
    let mut manifests = Vec::new();
    for m in &index.manifests {
        if m.media_type.is_index() {
            return Err(Error::invalid(
                location,
                format!(
                    "the index nests another index ({}); --all copies one level",
                    m.digest
                ),
            ));
        }
        let image = layout::read_image(store.clone(), m)?;
        manifests.push(image.manifest_doc());
        images.push(image);
    }
    Ok(MultiImage {
        index: RawDoc {
            media_type: desc.media_type.clone(),
            digest: desc.digest.clone(),
            bytes,
        },
        images,
        manifests,
    })
}

/// The whole index `r` names, or `None` when it names a single image (or a
/// transport that holds one platform only).
pub fn open(r: &ImageRef, opts: &OpenOptions) -> Result<Option<MultiImage>> {
    let (store, top, location): (Arc<dyn BlobStore>, whittle_image::Descriptor, String) = match r {
        ImageRef::Oci { dir, pick } => {
            let (store, index, location) = crate::oci::open_store(dir)?;
            let top = layout::choose(&index, pick.as_ref(), &location)?;
            (store, top, location)
        }
        ImageRef::OciArchive { file, pick } => {
            let (store, index, location) = crate::oci_archive::open_store(file)?;
            let top = layout::choose(&index, pick.as_ref(), &location)?;
            (store, top, location)
        }
        ImageRef::Docker(reg) => {
            let (store, top) = crate::registry::open_top(reg, &opts.registry)?;
            (store, top, reg.to_string())
        }
        _ => return Ok(None),
    };
    if !top.media_type.is_index() {
        return Ok(None);
    }
    read(store, &top, &location).map(Some)
}
