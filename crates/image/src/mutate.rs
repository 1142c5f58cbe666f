//! Transforms from image to image: squash, recompress, reconfigure.
//!
//! Each returns a new [`Image`] whose new blobs live in a [`Scratch`] store and
//! whose untouched blobs still come from the source.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::Arc;

use crate::blob::RegionReader;
use crate::config::{self, ConfigEdit, ConfigOverrides};
use crate::entries::{EntryKind, ReadOptions};
use crate::flatten::{DataRef, FlatView, Flattener};
use crate::layer_write::{LayerWriter, WrittenLayer};
use crate::layers::{read_layers, LayerContent};
use crate::{Compression, Error, Image, Layer, Limits, MediaType, RawDoc, Result, Scratch};

/// Settings shared by the transforms.
#[derive(Clone, Debug)]
pub struct MutateOptions {
    /// Layer compression for new layers.
    pub compression: Compression,
    /// `SOURCE_DATE_EPOCH`: `created` and the mtime of generated entries.
    pub source_date_epoch: Option<u64>,
    /// Read limits.
    pub limits: Limits,
    /// Config changes from the command line.
    pub overrides: ConfigOverrides,
}

fn new_image(
    image: &Image,
    layers: Vec<Layer>,
    created_by: Option<&str>,
    opts: &MutateOptions,
) -> Result<Image> {
    let diff_ids = layers.iter().map(|l| l.diff_id.clone()).collect();
    let bytes = config::edit(
        &image.config.bytes,
        &ConfigEdit {
            new_layers: created_by.map(|c| (diff_ids, c)),
            overrides: Some(&opts.overrides),
            source_date_epoch: opts.source_date_epoch,
        },
    )?;
    // A new manifest is OCI: OCI config type, and layer types mapped to OCI's.
    let layers = layers
        .into_iter()
        .map(|mut l| {
            if let Ok(c) = l.compression() {
                l.descriptor.media_type = MediaType::oci_layer(c);
            }
            l
        })
        .collect();
    Ok(Image {
        manifest: None,
        config: RawDoc::new(MediaType::OciConfig, bytes),
        layers,
    })
}

fn adopt(scratch: &Arc<Scratch>, written: WrittenLayer) -> Result<Layer> {
    scratch.adopt(&written.path, &written.descriptor.digest)?;
    Ok(Layer {
        descriptor: written.descriptor,
        diff_id: written.diff_id,
        store: scratch.clone(),
    })
}

/// Applies config overrides and `SOURCE_DATE_EPOCH`; returns the image unchanged
/// (same manifest bytes and digests) when there is nothing to apply.
pub fn reconfigure(image: &Image, opts: &MutateOptions) -> Result<Image> {
    if opts.overrides.is_empty() && opts.source_date_epoch.is_none() {
        return Ok(image.clone());
    }
    new_image(image, image.layers.clone(), None, opts)
}

/// Re-encodes every layer not already in `opts.compression` (several layers at
/// once, one per core); other layers keep their blobs. Config overrides apply too.
pub fn recompress(image: &Image, scratch: &Arc<Scratch>, opts: &MutateOptions) -> Result<Image> {
    reencode_where(image, scratch, opts, |c| c != opts.compression)
}

/// Compresses the layers stored uncompressed with `opts.compression`, as skopeo does
/// when it writes to a store of blobs; compressed layers keep their blobs byte for byte.
/// Config overrides apply too.
pub fn compress_plain(
    image: &Image,
    scratch: &Arc<Scratch>,
    opts: &MutateOptions,
) -> Result<Image> {
    reencode_where(image, scratch, opts, |c| {
        c == Compression::None && opts.compression != Compression::None
    })
}

/// Re-encodes, in `opts.compression`, the layers whose compression `wanted` picks.
fn reencode_where(
    image: &Image,
    scratch: &Arc<Scratch>,
    opts: &MutateOptions,
    wanted: impl Fn(Compression) -> bool + Sync,
) -> Result<Image> {
    let mut changed = false;
    for layer in &image.layers {
        changed |= wanted(layer.compression()?);
    }
    if !changed {
        return reconfigure(image, opts);
    }
    let layers = crate::parallel::map_indexed(image.layers.len(), crate::parallel::cores(), |i| {
        let layer = &image.layers[i];
        if !wanted(layer.compression()?) {
            return Ok(layer.clone());
        }
        adopt(scratch, reencode(layer, scratch, opts)?)
    })?;
    new_image(image, layers, None, opts)
}

/// Writes `layer`'s tar, verified on the way in, to a scratch file in `opts.compression`.
/// Scratch files are not synced: whoever places a blob in the output syncs it there.
fn reencode(layer: &Layer, scratch: &Scratch, opts: &MutateOptions) -> Result<WrittenLayer> {
    let path = scratch.new_file("layer");
    let write_err = |e| Error::io("cannot write", &path, e);
    let mut src = layer.open_tar(&opts.limits)?;
    let file = io::BufWriter::with_capacity(1 << 20, create(&path)?);
    let (digest, size, file) = if opts.compression == Compression::None {
        // The copy is the tar itself, and open_tar has checked it against the
        // diff_id by the end of the copy: no second hash needed.
        let mut file = file;
        let size = io::copy(&mut src, &mut file)
            .map_err(|e| crate::blob::io_to_error(&layer.descriptor.digest, e))?;
        (layer.diff_id.clone(), size, file)
    } else {
        let mut out = crate::compress::Encoder::new(
            crate::digest::HashingWriter::new(file),
            opts.compression,
        )
        .map_err(write_err)?;
        io::copy(&mut src, &mut out)
            .map_err(|e| crate::blob::io_to_error(&layer.descriptor.digest, e))?;
        let (digest, size, file) = out.finish().map_err(write_err)?.finish();
        let fact = crate::verified::LayerFact {
            diff_id: layer.diff_id.clone(),
            size: src.count(),
        };
        crate::verified::record(&digest, &fact);
        (digest, size, file)
    };
    file.into_inner().map_err(|e| write_err(e.into_error()))?;
    Ok(WrittenLayer {
        path: path.clone(),
        descriptor: crate::Descriptor::new(MediaType::oci_layer(opts.compression), digest, size),
        diff_id: layer.diff_id.clone(),
        uncompressed_size: src.count(),
    })
}

fn create(path: &std::path::Path) -> Result<std::fs::File> {
    std::fs::File::create(path).map_err(|e| Error::io("cannot create", path, e))
}

/// An image's flattened filesystem, with every layer's tar kept seekable so
/// that file data can be read in any order.
pub struct Flat {
    /// The filesystem.
    pub view: FlatView,
    /// Each layer's seekable tar.
    pub contents: Vec<Option<LayerContent>>,
    layer_digests: Vec<crate::Digest>,
}

impl Flat {
    /// Reads and flattens every layer of `image` (one read; compressed layers
    /// are staged uncompressed in `scratch`).
    pub fn read(
        image: &Image,
        scratch: &Scratch,
        limits: &Limits,
        opts: ReadOptions,
    ) -> Result<Flat> {
        let read = read_layers(image, limits, opts, Some(scratch.path()))?;
        let mut flat = Flattener::new(false);
        let mut contents = Vec::with_capacity(read.len());
        for (i, layer) in read.into_iter().enumerate() {
            flat.apply(i, &image.layers[i].descriptor.digest, layer.changes)?;
            contents.push(layer.content);
        }
        Ok(Flat {
            view: flat.finish(),
            contents,
            layer_digests: image
                .layers
                .iter()
                .map(|l| l.descriptor.digest.clone())
                .collect(),
        })
    }

    fn content(&self, layer: usize) -> Result<&LayerContent> {
        match (self.contents.get(layer), self.layer_digests.get(layer)) {
            (Some(Some(c)), _) => Ok(c),
            (_, Some(digest)) => Err(Error::BadLayer {
                layer: digest.clone(),
                reason: "its content was not kept".into(),
            }),
            (_, None) => Err(Error::LayerCountMismatch {
                layers: self.layer_digests.len(),
                diff_ids: layer + 1,
            }),
        }
    }

    /// The bytes of a file's data.
    pub fn reader(&self, data: DataRef) -> Result<RegionReader<'_>> {
        Ok(self.content(data.layer)?.reader(data.offset, data.size))
    }

    /// Reads file data at `offset` within it.
    pub fn read_at(&self, data: DataRef, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        if offset >= data.size {
            return Ok(0);
        }
        let content = self.content(data.layer).map_err(io::Error::other)?;
        let len = buf.len().min((data.size - offset) as usize);
        content.read_at(data.offset + offset, &mut buf[..len])
    }
}

/// One layer holding the flattened filesystem, entries sorted by path.
pub fn squash(image: &Image, scratch: &Arc<Scratch>, opts: &MutateOptions) -> Result<Image> {
    let flat = Flat::read(image, scratch, &opts.limits, ReadOptions::default())?;
    write_view(
        image,
        &flat,
        &flat.view,
        &BTreeMap::new(),
        scratch,
        opts,
        "whittle squash",
    )
}

/// Writes `view` (all or part of `flat`'s filesystem) as the one layer of a
/// new image with `image`'s config. Regular files without data take their
/// bytes from `generated` (files whittle makes, such as a trimmed package database).
pub fn write_view(
    image: &Image,
    flat: &Flat,
    view: &FlatView,
    generated: &BTreeMap<String, Vec<u8>>,
    scratch: &Arc<Scratch>,
    opts: &MutateOptions,
    created_by: &str,
) -> Result<Image> {
    write_layers(
        image,
        flat,
        std::slice::from_ref(view),
        generated,
        scratch,
        opts,
        created_by,
    )
}

/// Like [`write_view`], one layer per view, bottom first.
pub fn write_layers(
    image: &Image,
    flat: &Flat,
    views: &[FlatView],
    generated: &BTreeMap<String, Vec<u8>>,
    scratch: &Arc<Scratch>,
    opts: &MutateOptions,
    created_by: &str,
) -> Result<Image> {
    let mut layers = Vec::with_capacity(views.len());
    for view in views {
        // A directory's time says when something was installed, not what the layer
        // holds: two bases installed apart with the same packages differ only there. A
        // time that depends on the layer's files alone lets their layers be one blob.
        let dir_mtime = opts
            .source_date_epoch
            .unwrap_or_else(|| newest_file_mtime(view));
        layers.push(write_layer(
            flat,
            view,
            generated,
            scratch,
            opts,
            Some(dir_mtime),
        )?);
    }
    new_image(image, layers, Some(created_by), opts)
}

/// The newest time of a layer's non-directory entries (0 when it has none).
fn newest_file_mtime(view: &FlatView) -> u64 {
    view.nodes
        .values()
        .filter(|n| n.kind != EntryKind::Dir && !n.implicit)
        .map(|n| n.meta.mtime)
        .max()
        .unwrap_or(0)
}

/// Writes one layer of `view`; `dir_mtime` replaces every directory's time when given.
fn write_layer(
    flat: &Flat,
    view: &FlatView,
    generated: &BTreeMap<String, Vec<u8>>,
    scratch: &Arc<Scratch>,
    opts: &MutateOptions,
    dir_mtime: Option<u64>,
) -> Result<Layer> {
    let generated_mtime = opts.source_date_epoch.unwrap_or(0);
    // The first path of each hard-link group (in output order) carries the data.
    let mut primary: HashMap<u64, &str> = HashMap::new();
    for (path, node) in &view.nodes {
        if node.inode != 0 {
            primary.entry(node.inode).or_insert(path.as_str());
        }
    }
    let path = scratch.new_file("layer");
    let mut writer = LayerWriter::create(path, opts.compression)?;
    for (path, node) in &view.nodes {
        let mut meta = node.meta.clone();
        if node.implicit {
            meta.mtime = generated_mtime;
        }
        if let (EntryKind::Dir, Some(t)) = (&node.kind, dir_mtime) {
            meta.mtime = t;
        }
        if node.inode != 0 {
            if let Some(first) = primary.get(&node.inode).filter(|p| **p != path.as_str()) {
                writer.append(
                    path,
                    &EntryKind::Hardlink((*first).to_string()),
                    &meta,
                    0,
                    None,
                )?;
                continue;
            }
        }
        match (&node.kind, node.data) {
            (EntryKind::File, Some(data)) => {
                let mut reader = flat.reader(data)?;
                writer.append(path, &node.kind, &meta, data.size, Some(&mut reader))?;
            }
            (EntryKind::File, None) if generated.contains_key(path) => {
                let bytes = &generated[path];
                let mut reader = &bytes[..];
                writer.append(
                    path,
                    &node.kind,
                    &meta,
                    bytes.len() as u64,
                    Some(&mut reader),
                )?;
            }
            (kind, _) => writer.append(path, kind, &meta, 0, None)?,
        }
    }
    let written = writer.finish()?;
    adopt(scratch, written)
}
