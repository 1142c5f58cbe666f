//! Writing layer tars whose bytes depend only on what goes in.
//!
//! Every header field is set here (nothing from the host: no user names, no
//! clock), long names use GNU extension records, extended attributes become
//! `SCHILY.xattr.*` PAX records, and the stream is hashed twice on its way to
//! disk: the uncompressed tar (diff_id) and the compressed blob (digest).

use std::fs::File;
use std::io::{self, BufWriter, Read};
use std::path::{Path, PathBuf};

use crate::compress::Encoder;
use crate::digest::HashingWriter;
use crate::entries::{EntryKind, Meta};
use crate::{Compression, Descriptor, Digest, Error, MediaType, Result};

type Sink = HashingWriter<Encoder<HashingWriter<BufWriter<File>>>>;

/// A finished layer blob in a file.
#[derive(Clone, Debug)]
pub struct WrittenLayer {
    /// The blob's file.
    pub path: PathBuf,
    /// Its OCI descriptor.
    pub descriptor: Descriptor,
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// Size of the uncompressed tar.
    pub uncompressed_size: u64,
}

/// Streams entries into a deterministic, compressed layer blob.
pub struct LayerWriter {
    builder: tar::Builder<Sink>,
    path: PathBuf,
    compression: Compression,
}

fn write_err(path: &Path) -> impl Fn(io::Error) -> Error + '_ {
    move |e| Error::io("cannot write layer", path, e)
}

impl LayerWriter {
    /// Creates the blob file at `path`.
    pub fn create(path: PathBuf, compression: Compression) -> Result<Self> {
        let file = File::create(&path).map_err(|e| Error::io("cannot create", &path, e))?;
        let encoder = Encoder::new(
            HashingWriter::new(BufWriter::with_capacity(1 << 20, file)),
            compression,
        )
        .map_err(write_err(&path))?;
        let mut builder = tar::Builder::new(HashingWriter::new(encoder));
        builder.follow_symlinks(false);
        Ok(LayerWriter {
            builder,
            path,
            compression,
        })
    }

    /// Appends one entry. `data` must yield exactly `size` bytes for files.
    pub fn append(
        &mut self,
        path: &str,
        kind: &EntryKind,
        meta: &Meta,
        size: u64,
        data: Option<&mut dyn Read>,
    ) -> Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_mode(meta.mode & 0o7777);
        h.set_uid(meta.uid);
        h.set_gid(meta.gid);
        h.set_mtime(meta.mtime);
        h.set_size(if *kind == EntryKind::File { size } else { 0 });
        let (etype, device) = match kind {
            EntryKind::File => (tar::EntryType::Regular, None),
            EntryKind::Dir => (tar::EntryType::Directory, None),
            EntryKind::Symlink(_) => (tar::EntryType::Symlink, None),
            EntryKind::Hardlink(_) => (tar::EntryType::Link, None),
            EntryKind::CharDevice(a, b) => (tar::EntryType::Char, Some((*a, *b))),
            EntryKind::BlockDevice(a, b) => (tar::EntryType::Block, Some((*a, *b))),
            EntryKind::Fifo => (tar::EntryType::Fifo, None),
        };
        h.set_entry_type(etype);
        let err = write_err(&self.path);
        if let Some((major, minor)) = device {
            h.set_device_major(major).map_err(&err)?;
            h.set_device_minor(minor).map_err(&err)?;
        }
        if !meta.xattrs.is_empty() {
            let keys: Vec<(String, &[u8])> = meta
                .xattrs
                .iter()
                .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.as_slice()))
                .collect();
            self.builder
                .append_pax_extensions(keys.iter().map(|(k, v)| (k.as_str(), *v)))
                .map_err(&err)?;
        }
        match kind {
            EntryKind::Symlink(target) | EntryKind::Hardlink(target) => {
                self.builder
                    .append_link(&mut h, path, target)
                    .map_err(&err)?;
            }
            EntryKind::File => {
                let data = data.ok_or_else(|| {
                    Error::io(
                        "no data for file",
                        &self.path,
                        io::ErrorKind::InvalidInput.into(),
                    )
                })?;
                let mut exact = ExactReader {
                    inner: data.take(size),
                    left: size,
                };
                self.builder
                    .append_data(&mut h, path, &mut exact)
                    .map_err(&err)?;
            }
            _ => self
                .builder
                .append_data(&mut h, path, io::empty())
                .map_err(&err)?,
        }
        Ok(())
    }

    /// Ends the tar, flushes the blob and returns its descriptor.
    pub fn finish(self) -> Result<WrittenLayer> {
        let path = self.path;
        let err = write_err(&path);
        let hashing = self.builder.into_inner().map_err(&err)?;
        let (diff_id, uncompressed_size, encoder) = hashing.finish();
        let (digest, size, file) = encoder.finish().map_err(&err)?.finish();
        // Not synced: whoever places the blob in the output syncs it there.
        file.into_inner().map_err(|e| err(e.into_error()))?;
        if self.compression != crate::Compression::None {
            let fact = crate::verified::LayerFact {
                diff_id: diff_id.clone(),
                size: uncompressed_size,
            };
            crate::verified::record(&digest, &fact);
        }
        Ok(WrittenLayer {
            descriptor: Descriptor::new(MediaType::oci_layer(self.compression), digest, size),
            diff_id,
            uncompressed_size,
            path: path.clone(),
        })
    }
}

/// Fails instead of writing a short file when its source ends early.
struct ExactReader<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file data ends early",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}
