//! The image model: a config, an ordered list of layers, and where their blobs live.

use std::io::{self, Read};
use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use crate::blob::{open_verified, BlobStore, VerifiedReader};
use crate::compress::Decoder;
use crate::{config, Descriptor, Digest, Error, Limits, MediaType, Result};

/// A JSON document as read (or as whittle wrote it): its exact bytes and digest.
#[derive(Clone, Debug)]
pub struct RawDoc {
    /// The media type it is stored under.
    pub media_type: MediaType,
    /// Its bytes, never re-serialised unless changed.
    pub bytes: Vec<u8>,
    /// Digest of `bytes`.
    pub digest: Digest,
}

impl RawDoc {
    /// Wraps `bytes`, computing the digest.
    pub fn new(media_type: MediaType, bytes: Vec<u8>) -> Self {
        let digest = Digest::of(&bytes);
        RawDoc {
            media_type,
            bytes,
            digest,
        }
    }

    /// A descriptor for this document.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(
            self.media_type.clone(),
            self.digest.clone(),
            self.bytes.len() as u64,
        )
    }
}

/// One layer: its blob, the digest of its uncompressed tar, and where to read it.
#[derive(Clone)]
pub struct Layer {
    /// The blob as the manifest describes it.
    pub descriptor: Descriptor,
    /// sha256 of the uncompressed tar, from the config.
    pub diff_id: Digest,
    /// Where the blob's bytes are.
    pub store: Arc<dyn BlobStore>,
}

impl std::fmt::Debug for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Layer")
            .field("descriptor", &self.descriptor)
            .field("diff_id", &self.diff_id)
            .finish()
    }
}

impl Layer {
    /// How the blob is compressed.
    pub fn compression(&self) -> Result<crate::Compression> {
        self.descriptor
            .media_type
            .layer_compression()
            .ok_or_else(|| Error::UnsupportedLayer {
                digest: self.descriptor.digest.clone(),
                media_type: self.descriptor.media_type.to_string(),
            })
    }

    /// The blob's bytes, verified against its digest and size.
    pub fn open_blob(&self) -> Result<VerifiedReader<Box<dyn Read + Send + '_>>> {
        open_verified(self.store.as_ref(), &self.descriptor)
    }

    /// The blob as a file whittle wrote itself in this run, of the expected size:
    /// writers may link or copy it without reading it through a digest check.
    pub fn own_file(&self) -> Option<std::path::PathBuf> {
        let path = self.store.own_file(&self.descriptor.digest)?;
        let len = std::fs::metadata(&path).ok()?.len();
        (len == self.descriptor.size).then_some(path)
    }

    /// Whether this layer's content was proven before (see [`crate::verified`]): a fact
    /// that matches its diff_id and fits `limit`. A fact that names another diff_id, or a
    /// larger tar, refuses the layer as a full check would.
    pub(crate) fn proven(&self, limit: u64) -> Result<bool> {
        let Some(fact) = crate::verified::known(&self.descriptor.digest) else {
            return Ok(false);
        };
        if fact.diff_id != self.diff_id {
            return Err(Error::DiffIdMismatch {
                layer: self.descriptor.digest.clone(),
                expected: self.diff_id.clone(),
                found: fact.diff_id,
            });
        }
        if fact.size > limit {
            return Err(Error::LimitExceeded {
                layer: self.descriptor.digest.clone(),
                what: "uncompressed size",
                limit,
            });
        }
        Ok(true)
    }

    /// The uncompressed tar, verified against both the blob digest and the diff_id,
    /// and cut off with an error beyond `limits.max_layer_bytes`.
    pub fn open_tar(&self, limits: &Limits) -> Result<LayerTarReader<'_>> {
        let compression = self.compression()?;
        // An uncompressed blob is its tar: the blob digest check is the diff_id
        // check, so the bytes are hashed once (a second hash was a sixth of a copy's CPU).
        let hasher = if compression == crate::Compression::None {
            if self.descriptor.digest != self.diff_id {
                return Err(Error::DiffIdMismatch {
                    layer: self.descriptor.digest.clone(),
                    expected: self.diff_id.clone(),
                    found: self.descriptor.digest.clone(),
                });
            }
            None
        } else {
            // Proven before: the blob digest check (made as it streams) checks the
            // content too, and the tar need not be hashed.
            (!self.proven(limits.max_layer_bytes)?).then(Sha256::new)
        };
        let raw = self.store.open_raw(&self.descriptor.digest)?;
        let tracked = crate::progress::track(
            &self.descriptor.digest.to_string(),
            self.descriptor.size,
            raw,
        );
        let verified = VerifiedReader::new(
            tracked,
            self.descriptor.digest.clone(),
            self.descriptor.size,
        );
        let decoder = Decoder::new(verified, compression).map_err(|e| Error::BadLayer {
            layer: self.descriptor.digest.clone(),
            reason: format!("cannot start decompressing: {e}"),
        })?;
        Ok(LayerTarReader {
            decoder,
            hasher,
            count: 0,
            limit: limits.max_layer_bytes,
            layer: self.descriptor.digest.clone(),
            diff_id: self.diff_id.clone(),
            done: false,
        })
    }
}

/// The uncompressed tar of a layer; see [`Layer::open_tar`]. Its errors carry an
/// [`Error`] that [`crate::blob::io_to_error`] recovers.
pub struct LayerTarReader<'a> {
    decoder: Decoder<VerifiedReader<Box<dyn Read + Send + 'a>>>,
    /// None when the blob digest check also checks the content: an uncompressed blob,
    /// or one whose content was proven before (see [`crate::verified`]).
    hasher: Option<Sha256>,
    count: u64,
    limit: u64,
    layer: Digest,
    diff_id: Digest,
    done: bool,
}

impl LayerTarReader<'_> {
    /// Uncompressed bytes read so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    fn finish(&mut self) -> io::Result<()> {
        self.done = true;
        // Drain what follows the compressed stream so the blob digest sees every byte.
        io::copy(self.decoder.source_mut(), &mut io::sink())?;
        let Some(hasher) = self.hasher.take() else {
            return Ok(());
        };
        let found = Digest::from_hasher(hasher);
        if found != self.diff_id {
            return Err(io::Error::other(Error::DiffIdMismatch {
                layer: self.layer.clone(),
                expected: self.diff_id.clone(),
                found,
            }));
        }
        if self.layer != self.diff_id {
            let fact = crate::verified::LayerFact {
                diff_id: found,
                size: self.count,
            };
            crate::verified::record(&self.layer, &fact);
        }
        Ok(())
    }
}

impl Read for LayerTarReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        let n = self.decoder.read(buf).map_err(|e| {
            // Keep our own errors (digest mismatch) intact; name decoder errors.
            if e.get_ref().is_some_and(|i| i.is::<Error>()) {
                e
            } else {
                io::Error::other(Error::BadLayer {
                    layer: self.layer.clone(),
                    reason: format!("cannot decompress: {e}"),
                })
            }
        })?;
        self.count += n as u64;
        if self.count > self.limit {
            return Err(io::Error::other(Error::LimitExceeded {
                layer: self.layer.clone(),
                what: "uncompressed size",
                limit: self.limit,
            }));
        }
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        if n == 0 {
            self.finish()?;
        }
        Ok(n)
    }
}

/// An image: config plus layers, and the manifest it came with, if any.
#[derive(Clone, Debug)]
pub struct Image {
    /// The manifest as read from the source, when the source had one and nothing changed.
    pub manifest: Option<RawDoc>,
    /// The image config.
    pub config: RawDoc,
    /// The layers, bottom first.
    pub layers: Vec<Layer>,
}

impl Image {
    /// Builds an image from a config and layer blobs, pairing layers with the config's diff_ids.
    pub fn new(
        manifest: Option<RawDoc>,
        config: RawDoc,
        layers: Vec<Descriptor>,
        store: Arc<dyn BlobStore>,
    ) -> Result<Image> {
        let diff_ids = config::diff_ids(&config.bytes)?;
        if diff_ids.len() != layers.len() {
            return Err(Error::LayerCountMismatch {
                layers: layers.len(),
                diff_ids: diff_ids.len(),
            });
        }
        let layers = layers
            .into_iter()
            .zip(diff_ids)
            .map(|(descriptor, diff_id)| Layer {
                descriptor,
                diff_id,
                store: Arc::clone(&store),
            })
            .collect();
        Ok(Image {
            manifest,
            config,
            layers,
        })
    }

    /// Parses `manifest` and builds the image it describes.
    pub fn from_manifest(
        manifest: RawDoc,
        config: RawDoc,
        store: Arc<dyn BlobStore>,
    ) -> Result<Image> {
        let parsed: crate::Manifest = crate::manifest::parse_json("manifest", &manifest.bytes)?;
        Image::new(Some(manifest), config, parsed.layers, store)
    }

    /// The manifest to write for this image: the original bytes when there are
    /// any, else a new OCI manifest.
    pub fn manifest_doc(&self) -> RawDoc {
        if let Some(m) = &self.manifest {
            return m.clone();
        }
        let manifest = crate::Manifest {
            schema_version: 2,
            media_type: Some(MediaType::OciManifest),
            config: self.config.descriptor(),
            layers: self.layers.iter().map(|l| l.descriptor.clone()).collect(),
            annotations: Default::default(),
        };
        RawDoc::new(MediaType::OciManifest, crate::manifest::to_json(&manifest))
    }
}
