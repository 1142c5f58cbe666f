//! The OCI image layout, shared by `oci:` (a directory) and `oci-archive:`
//! (a tar of one): choosing an image from `index.json`, and listing the blobs
//! and documents that make up a layout for writing.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use whittle_image::blob::read_small;
use whittle_image::manifest::{parse_json, to_json, REF_NAME};
use whittle_image::{
    BlobStore, Descriptor, Digest, Image, Index, Layer, Limits, MediaType, Platform, RawDoc,
};

use crate::{Error, LayoutPick, Result};

/// `oci-layout` file content.
pub const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

const MAX_NESTING: usize = 8;

/// The names that can pick each image of `index`: `:TAG` when it has one, else
/// `@DIGEST`.
fn tags(index: &Index) -> String {
    let names: Vec<String> = index
        .manifests
        .iter()
        .map(|d| match d.annotations.get(REF_NAME) {
            Some(t) => format!(":{t}"),
            None => format!("@{}", d.digest),
        })
        .collect();
    names.join(", ")
}

/// Picks the image `pick` names (or the only one) from `index_json` and reads it.
pub fn select_image(
    store: Arc<dyn BlobStore>,
    index_json: &[u8],
    pick: Option<&LayoutPick>,
    location: &str,
    platform: &Platform,
) -> Result<Image> {
    let chosen = choose(index_json, pick, location)?;
    let mut seen = HashSet::new();
    resolve(store, chosen, location, &mut seen, platform)
}

/// The descriptor `pick` names (or the only one) in a layout's `index.json`.
pub fn choose(index_json: &[u8], pick: Option<&LayoutPick>, location: &str) -> Result<Descriptor> {
    let index: Index = parse_json("index.json", index_json)?;
    let chosen =
        match pick {
            Some(LayoutPick::Digest(d)) => index
                .manifests
                .iter()
                .find(|m| &m.digest == d)
                .ok_or_else(|| Error::NotFound {
                    location: location.into(),
                    wanted: format!("with digest {d}"),
                    available: tags(&index),
                })?,
            Some(LayoutPick::Tag(t)) => index
                .manifests
                .iter()
                .find(|d| d.annotations.get(REF_NAME).map(String::as_str) == Some(t))
                .ok_or_else(|| Error::NotFound {
                    location: location.into(),
                    wanted: format!("tagged {t:?}"),
                    available: tags(&index),
                })?,
            None => {
                let untagged: Vec<&Descriptor> = index
                    .manifests
                    .iter()
                    .filter(|d| !d.annotations.contains_key(REF_NAME))
                    .collect();
                match (index.manifests.as_slice(), untagged.as_slice()) {
                    ([one], _) => one,
                    ([], _) => return Err(Error::invalid(location, "index.json lists no images")),
                    // Tagged images beside one untagged image: no tag means the untagged one.
                    (_, [only]) => only,
                    (many, _) => {
                        return Err(Error::Ambiguous {
                            how: ":TAG or @DIGEST",
                            location: location.into(),
                            count: many.len(),
                            available: tags(&index),
                        })
                    }
                }
            }
        };
    Ok(chosen.clone())
}

/// Follows indexes down to one image manifest (for `platform`) and reads it.
pub fn resolve(
    store: Arc<dyn BlobStore>,
    desc: Descriptor,
    location: &str,
    seen: &mut HashSet<Digest>,
    platform: &Platform,
) -> Result<Image> {
    let mut desc = desc;
    loop {
        if !seen.insert(desc.digest.clone()) {
            return Err(Error::invalid(
                location,
                format!("the index {} refers back to itself (a cycle)", desc.digest),
            ));
        }
        if seen.len() > MAX_NESTING {
            return Err(Error::invalid(
                location,
                format!("indexes nest more than {MAX_NESTING} deep"),
            ));
        }
        match desc.media_type {
            MediaType::OciIndex | MediaType::DockerManifestList => {
                let bytes = read_small(store.as_ref(), &desc, "image index")?;
                let index: Index = parse_json("image index", &bytes)?;
                let pick = index
                    .manifests
                    .iter()
                    .find(|d| d.platform.as_ref().is_some_and(|p| platform.matches(p)))
                    .or_else(|| match index.manifests.as_slice() {
                        [only] if only.platform.is_none() => Some(only),
                        _ => None,
                    })
                    .ok_or_else(|| {
                        let have: Vec<String> = index
                            .manifests
                            .iter()
                            .filter_map(|d| {
                                d.platform
                                    .as_ref()
                                    .map(|p| p.to_string())
                            })
                            .collect();
                        Error::invalid(
                            location,
                            format!(
                                "the index {} has no image for {platform} (choose one with --platform); it has: {}",
                                desc.digest,
                                if have.is_empty() {
                                    "none".into()
                                } else {
                                    have.join(", ")
                                }
                            ),
                        )
                    })?;
                desc = pick.clone();
            }
            MediaType::OciManifest | MediaType::DockerManifest => return read_image(store, &desc),
            ref other => {
                return Err(Error::invalid(
                    location,
                    format!(
                        "{} has media type {other}, which is not an image or index",
                        desc.digest
                    ),
                ))
            }
        }
    }
}

/// Reads the image manifest `desc` names, and its config.
pub fn read_image(store: Arc<dyn BlobStore>, desc: &Descriptor) -> Result<Image> {
    let bytes = read_small(store.as_ref(), desc, "manifest")?;
    let manifest: whittle_image::Manifest = parse_json("manifest", &bytes)?;
    let config_bytes = read_small(store.as_ref(), &manifest.config, "image config")?;
    let config = RawDoc::new(manifest.config.media_type.clone(), config_bytes);
    let doc = RawDoc {
        media_type: desc.media_type.clone(),
        digest: desc.digest.clone(),
        bytes,
    };
    Ok(Image::from_manifest(doc, config, store)?)
}

/// A blob to write: a layer (streamed from its store) or a small document.
pub enum Blob<'a> {
    /// A layer blob.
    Layer(&'a Layer),
    /// A JSON document.
    Doc(&'a RawDoc),
}

impl Blob<'_> {
    /// Its digest.
    pub fn digest(&self) -> &Digest {
        match self {
            Blob::Layer(l) => &l.descriptor.digest,
            Blob::Doc(d) => &d.digest,
        }
    }

    /// Its size.
    pub fn size(&self) -> u64 {
        match self {
            Blob::Layer(l) => l.descriptor.size,
            Blob::Doc(d) => d.bytes.len() as u64,
        }
    }

    /// The blob as a file whittle wrote itself in this run (see [`Layer::own_file`]).
    pub fn own_file(&self) -> Option<std::path::PathBuf> {
        match self {
            Blob::Layer(l) => l.own_file(),
            Blob::Doc(_) => None,
        }
    }

    /// Its bytes, verified as they stream (layers also against diff_id and `limits`).
    pub fn open(&self, limits: &Limits) -> Result<Box<dyn std::io::Read + Send + '_>> {
        Ok(match self {
            Blob::Layer(l) => whittle_image::progress::track(
                &l.descriptor.digest.to_string(),
                l.descriptor.size,
                l.open_blob_checked(limits)?,
            ),
            Blob::Doc(d) => Box::new(&d.bytes[..]),
        })
    }
}

/// The blobs of `image` with `manifest`, each once: layers, config, manifest.
pub fn blobs<'a>(image: &'a Image, manifest: &'a RawDoc) -> Vec<Blob<'a>> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for l in &image.layers {
        if seen.insert(l.descriptor.digest.clone()) {
            out.push(Blob::Layer(l));
        }
    }
    for doc in [&image.config, manifest] {
        if seen.insert(doc.digest.clone()) {
            out.push(Blob::Doc(doc));
        }
    }
    out
}

/// The descriptor of `manifest` in an index, tagged when `tag` is given.
pub fn index_entry(manifest: &RawDoc, annotations: BTreeMap<String, String>) -> Descriptor {
    let mut d = manifest.descriptor();
    d.annotations = annotations;
    d
}

/// `index.json` bytes for `entries`.
pub fn index_json(entries: Vec<Descriptor>) -> Vec<u8> {
    to_json(&Index {
        schema_version: 2,
        media_type: Some(MediaType::OciIndex),
        manifests: entries,
        annotations: BTreeMap::new(),
    })
}
