//! Reading every layer of an image once, in parallel, into change lists, and
//! keeping a seekable copy of each uncompressed tar when file data is needed later.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use crate::blob::{io_to_error, RegionReader};
use crate::entries::{read_changes, LayerChanges, ReadOptions};
use crate::{Compression, Error, Image, Layer, Limits, Result};

/// The uncompressed tar of a layer, seekable: a region of the source blob when
/// it is stored uncompressed, else a private temporary file.
pub struct LayerContent {
    file: File,
    base: u64,
    _temp: Option<tempfile::TempPath>,
}

impl LayerContent {
    /// Reads `size` bytes at `offset` of the uncompressed tar.
    pub fn reader(&self, offset: u64, size: u64) -> RegionReader<'_> {
        RegionReader::new(&self.file, self.base + offset, size)
    }

    /// Reads bytes at `offset` of the uncompressed tar (the caller bounds the length).
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        self.file.read_at(buf, self.base + offset)
    }
}

/// One layer after reading.
pub struct ReadLayer {
    /// Its changes.
    pub changes: LayerChanges,
    /// Bytes of uncompressed tar.
    pub uncompressed_size: u64,
    /// Its seekable content, when asked for.
    pub content: Option<LayerContent>,
}

/// Copies what is read into a file as well.
struct Tee<R, W> {
    inner: R,
    copy: W,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy.write_all(&buf[..n])?;
        Ok(n)
    }
}

fn read_one(
    layer: &Layer,
    limits: &Limits,
    opts: ReadOptions,
    stage: Option<&Path>,
) -> Result<ReadLayer> {
    let digest = &layer.descriptor.digest;
    let mut tar = layer.open_tar(limits)?;
    let direct = match (stage, layer.compression()?) {
        (Some(_), Compression::None) => layer.store.locate(digest),
        _ => None,
    };
    let (changes, content) = match (stage, direct) {
        (None, _) => (read_changes(&mut tar, digest, limits, opts)?, None),
        (Some(_), Some(region)) => {
            let changes = read_changes(&mut tar, digest, limits, opts)?;
            let file =
                File::open(&region.path).map_err(|e| Error::io("cannot open", &region.path, e))?;
            (
                changes,
                Some(LayerContent {
                    file,
                    base: region.offset,
                    _temp: None,
                }),
            )
        }
        (Some(dir), None) => {
            let temp = tempfile::NamedTempFile::new_in(dir)
                .map_err(|e| Error::io("cannot create a temporary file in", dir, e))?;
            let (file, path) = temp.into_parts();
            let writer = BufWriter::with_capacity(
                1 << 20,
                file.try_clone()
                    .map_err(|e| Error::io("cannot reopen", &*path, e))?,
            );
            let mut tee = Tee {
                inner: &mut tar,
                copy: writer,
            };
            let changes = read_changes(&mut tee, digest, limits, opts)?;
            tee.copy
                .flush()
                .map_err(|e| Error::io("cannot write", &*path, e))?;
            (
                changes,
                Some(LayerContent {
                    file,
                    base: 0,
                    _temp: Some(path),
                }),
            )
        }
    };
    // read_changes drained the stream, so digest and diff_id are already checked.
    let uncompressed_size = tar.count();
    let mut rest = [0u8; 1];
    tar.read(&mut rest).map_err(|e| io_to_error(digest, e))?;
    Ok(ReadLayer {
        changes,
        uncompressed_size,
        content,
    })
}

/// Reads every layer of `image` on all cores. With `stage`, keeps a seekable
/// copy of each uncompressed tar (in that directory unless the blob already is one).
pub fn read_layers(
    image: &Image,
    limits: &Limits,
    opts: ReadOptions,
    stage: Option<&Path>,
) -> Result<Vec<ReadLayer>> {
    crate::parallel::map_indexed(image.layers.len(), crate::parallel::cores(), |i| {
        read_one(&image.layers[i], limits, opts, stage)
    })
}
