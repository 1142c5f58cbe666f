//! `docker-archive:FILE[:REF]`: the `docker save` format.
//!
//! Reads both forms: the legacy one (`manifest.json`, `HEX.json` configs and
//! `HEX/layer.tar` layers) and Docker 25+'s (an OCI layout plus `manifest.json`
//! in one tar). Writes the Docker 25+ form with uncompressed layers, which every
//! Docker since 1.10 loads through `manifest.json`, and OCI tools read as a layout.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use whittle_image::blob::OwnedRegionReader;
use whittle_image::manifest::{parse_json, REF_NAME};
use whittle_image::{
    Compression, Descriptor, Digest, HashingReader, Image, Index, Limits, Manifest, MediaType,
    RawDoc,
};

use crate::layout;
use crate::reference::with_default_tag;
use crate::tarfile::{ArchiveStore, ArchiveWriter, Owner, TarIndex};
use crate::{Error, Result};

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SaveEntry {
    config: String,
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Reads the image `reference` names (or the only one) from `file`.
pub fn open(file: &Path, reference: Option<&str>) -> Result<Image> {
    open_owned(file, reference, None)
}

/// Like [`open`], keeping `owner` (what holds `file`) alive as long as the image.
pub fn open_owned(file: &Path, reference: Option<&str>, owner: Option<Owner>) -> Result<Image> {
    let index = TarIndex::open(file)?;
    let location = format!("docker-archive:{}", file.display());
    let manifest_json = index.read_small("manifest.json")?.ok_or_else(|| {
        Error::invalid(
            &location,
            "not a docker save archive (it has no manifest.json)",
        )
    })?;
    let entries: Vec<SaveEntry> = parse_json("manifest.json", &manifest_json)?;
    let tags = || {
        let all: Vec<String> = entries
            .iter()
            .flat_map(|e| e.repo_tags.clone().unwrap_or_default())
            .collect();
        if all.is_empty() {
            format!("{} untagged image(s)", entries.len())
        } else {
            format!("tags {}", all.join(", "))
        }
    };
    let entry = match reference {
        Some(r) => {
            let full = with_default_tag(r);
            entries
                .iter()
                .find(|e| {
                    e.repo_tags
                        .as_ref()
                        .is_some_and(|t| t.iter().any(|t| t == r || *t == full))
                })
                .ok_or_else(|| Error::NotFound {
                    location: location.clone(),
                    wanted: format!("tagged {r:?}"),
                    available: tags(),
                })?
        }
        None => match entries.as_slice() {
            [one] => one,
            [] => return Err(Error::invalid(&location, "manifest.json lists no images")),
            many => {
                return Err(Error::Ambiguous {
                    how: ":NAME:TAG",
                    location: location.clone(),
                    count: many.len(),
                    available: tags(),
                })
            }
        },
    };
    let config_bytes = index.read_small(&entry.config)?.ok_or_else(|| {
        Error::invalid(
            &location,
            format!(
                "manifest.json names the config {}, which is not in the archive",
                entry.config
            ),
        )
    })?;
    let config = RawDoc::new(MediaType::OciConfig, config_bytes);
    if let Some(name) = entry.config.strip_prefix("blobs/sha256/") {
        if name != config.digest.hex() {
            return Err(whittle_image::Error::DigestMismatch {
                expected: format!("sha256:{name}").parse()?,
                found: config.digest.clone(),
            }
            .into());
        }
    }
    let mut store = ArchiveStore::new(index).with_owner(owner);

    // Docker 25+: the OCI manifest for this config is in the archive; keep it (and its digest).
    if let Some(image) = oci_manifest_for(&store, &config)? {
        return Ok(image);
    }

    let diff_ids = whittle_image::config::diff_ids(&config.bytes)?;
    if diff_ids.len() != entry.layers.len() {
        return Err(whittle_image::Error::LayerCountMismatch {
            layers: entry.layers.len(),
            diff_ids: diff_ids.len(),
        }
        .into());
    }
    let mut layers = Vec::with_capacity(entry.layers.len());
    for (path, diff_id) in entry.layers.iter().zip(&diff_ids) {
        let region = store.index().region(path).cloned().ok_or_else(|| {
            Error::invalid(
                &location,
                format!("manifest.json names the layer {path}, which is not in the archive"),
            )
        })?;
        let mut magic = [0u8; 4];
        let got = OwnedRegionReader::open(&region)?
            .read(&mut magic)
            .unwrap_or(0);
        let compression = match magic {
            [0x1f, 0x8b, ..] if got >= 2 => Compression::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd] => Compression::Zstd,
            _ => Compression::None,
        };
        let digest = match (path.strip_prefix("blobs/sha256/"), compression) {
            (Some(hex), _) => format!("sha256:{hex}").parse()?,
            (None, Compression::None) => diff_id.clone(),
            (None, _) => {
                // A compressed legacy layer: its blob digest is not written anywhere.
                let (d, _, _) = HashingReader::new(OwnedRegionReader::open(&region)?)
                    .finish()
                    .map_err(|e| Error::io("cannot read", &region.path, e))?;
                d
            }
        };
        store.map(digest.clone(), path.clone());
        layers.push(Descriptor::new(
            MediaType::oci_layer(compression),
            digest,
            region.len,
        ));
    }
    Ok(Image::new(None, config, layers, Arc::new(store))?)
}

fn oci_manifest_for(store: &ArchiveStore, config: &RawDoc) -> Result<Option<Image>> {
    let Some(index_json) = store.index().read_small("index.json")? else {
        return Ok(None);
    };
    let Ok(index) = parse_json::<Index>("index.json", &index_json) else {
        return Ok(None);
    };
    for desc in index.manifests {
        if !matches!(
            desc.media_type,
            MediaType::OciManifest | MediaType::DockerManifest
        ) {
            continue;
        }
        let Ok(bytes) = whittle_image::blob::read_small(store, &desc, "manifest") else {
            continue;
        };
        let Ok(m) = parse_json::<Manifest>("manifest", &bytes) else {
            continue;
        };
        if m.config.digest == config.digest {
            let config = RawDoc::new(m.config.media_type.clone(), config.bytes.clone());
            let doc = RawDoc {
                media_type: desc.media_type.clone(),
                digest: desc.digest.clone(),
                bytes,
            };
            // The store is rebuilt: the image keeps its own handle on the archive.
            let store =
                ArchiveStore::new(TarIndex::open(store.index().path())?).with_owner(store.owner());
            return Ok(Some(Image::from_manifest(doc, config, Arc::new(store))?));
        }
    }
    Ok(None)
}

/// Writes `image` as a `docker save` archive at `file`, tagged `reference`.
///
/// `docker load` wants plain tars, so compressed layers are decompressed
/// straight into the archive (checked against their digest and diff_id on the
/// way), with no intermediate copy; plain layers are copied as they are.
pub fn write(
    file: &Path,
    reference: Option<&str>,
    image: &Image,
    mtime: u64,
    limits: &Limits,
) -> Result<Digest> {
    let mut out = ArchiveWriter::create(file, mtime)?;
    out.dir("blobs")?;
    out.dir("blobs/sha256")?;
    let mut layers: Vec<Descriptor> = Vec::with_capacity(image.layers.len());
    let mut decompressed = false;
    for layer in &image.layers {
        if let Some(done) = layers.iter().find(|d| d.digest == layer.diff_id) {
            layers.push(done.clone());
            continue;
        }
        let name = format!("blobs/sha256/{}", layer.diff_id.hex());
        let size = if layer.compression()? == Compression::None {
            let blob = layout::Blob::Layer(layer);
            crate::write_blob_member(&mut out, &blob, limits)?;
            layer.descriptor.size
        } else {
            decompressed = true;
            let mut tar = layer.open_tar(limits)?;
            out.stream_file(&name, &mut tar)?
        };
        layers.push(Descriptor::new(
            MediaType::oci_layer(Compression::None),
            layer.diff_id.clone(),
            size,
        ));
    }
    // Unchanged layers keep the image's own manifest (and digest).
    let (config, manifest) = if decompressed {
        let config = RawDoc::new(MediaType::OciConfig, image.config.bytes.clone());
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(MediaType::OciManifest),
            config: config.descriptor(),
            layers: layers.clone(),
            annotations: Default::default(),
        };
        let bytes = whittle_image::manifest::to_json(&manifest);
        (config, RawDoc::new(MediaType::OciManifest, bytes))
    } else {
        (image.config.clone(), image.manifest_doc())
    };
    for doc in [&config, &manifest] {
        let name = format!("blobs/sha256/{}", doc.digest.hex());
        out.file(&name, doc.bytes.len() as u64, &mut &doc.bytes[..])?;
    }

    let repo_tag = reference.map(with_default_tag);
    let mut annotations = BTreeMap::new();
    if let Some(r) = &repo_tag {
        annotations.insert("io.containerd.image.name".to_string(), r.clone());
        if let Some((_, tag)) = r.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
            annotations.insert(REF_NAME.to_string(), tag.to_string());
        }
    }
    crate::write_layout_index(&mut out, &manifest, annotations)?;
    let save = vec![SaveEntry {
        config: format!("blobs/sha256/{}", config.digest.hex()),
        repo_tags: repo_tag.map(|r| vec![r]),
        layers: layers
            .iter()
            .map(|d| format!("blobs/sha256/{}", d.digest.hex()))
            .collect(),
    }];
    let save_json = serde_json::to_vec(&save).unwrap_or_default();
    out.file("manifest.json", save_json.len() as u64, &mut &save_json[..])?;
    out.commit()?;
    Ok(manifest.digest)
}
