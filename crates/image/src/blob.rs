//! Where blobs live, and the reader that verifies them while they stream.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use crate::digest::HashingReader;
use crate::{Descriptor, Digest, Error, Result};

/// A region of a file that holds a blob's bytes (a blob file, or a member of a tar archive).
#[derive(Clone, Debug)]
pub struct FileRegion {
    /// The file.
    pub path: PathBuf,
    /// Where the blob starts.
    pub offset: u64,
    /// How long it is.
    pub len: u64,
}

/// The one thing a transport must provide to read images: raw blob bytes by digest.
pub trait BlobStore: Send + Sync {
    /// Opens a blob's bytes, unverified; callers go through [`open_verified`].
    fn open_raw(&self, digest: &Digest) -> Result<Box<dyn Read + Send + '_>>;

    /// Where the blob lies on disk, when it lies in one piece in a local file.
    /// Lets readers seek instead of copying. Optional.
    fn locate(&self, _digest: &Digest) -> Option<FileRegion> {
        None
    }

    /// The blob as a whole local file that this process wrote and hashed
    /// itself (never an input), so that a writer may link or copy it into an
    /// output without hashing it again. Optional.
    fn own_file(&self, _digest: &Digest) -> Option<std::path::PathBuf> {
        None
    }

    /// Where the blobs come from, for messages.
    fn location(&self) -> String;
}

/// A reader that checks a blob's size as it goes and its digest at the end;
/// it yields an error (never silently wrong bytes) as soon as either is off.
pub struct VerifiedReader<R> {
    inner: HashingReaderState<R>,
    expected: Digest,
    size: u64,
}

enum HashingReaderState<R> {
    Reading(HashingReader<R>),
    Done,
}

impl<R: Read> VerifiedReader<R> {
    /// Wraps `inner`, which should yield exactly the blob `desc`.
    pub fn new(inner: R, expected: Digest, size: u64) -> Self {
        VerifiedReader {
            inner: HashingReaderState::Reading(HashingReader::new(inner)),
            expected,
            size,
        }
    }
}

impl<R: Read> Read for VerifiedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let HashingReaderState::Reading(r) = &mut self.inner else {
            return Ok(0);
        };
        let n = r.read(buf)?;
        let count = r.count();
        if count > self.size {
            return Err(io::Error::other(Error::SizeMismatch {
                digest: self.expected.clone(),
                expected: self.size,
                found: count,
            }));
        }
        if n == 0 && !buf.is_empty() {
            let HashingReaderState::Reading(r) =
                std::mem::replace(&mut self.inner, HashingReaderState::Done)
            else {
                return Ok(0);
            };
            let (found, count, _) = r.finish()?;
            if count != self.size {
                return Err(io::Error::other(Error::SizeMismatch {
                    digest: self.expected.clone(),
                    expected: self.size,
                    found: count,
                }));
            }
            if found != self.expected {
                return Err(io::Error::other(Error::DigestMismatch {
                    expected: self.expected.clone(),
                    found,
                }));
            }
        }
        Ok(n)
    }
}

/// Opens a blob of `store` so that every byte is checked against `desc`.
pub fn open_verified<'a>(
    store: &'a dyn BlobStore,
    desc: &Descriptor,
) -> Result<VerifiedReader<Box<dyn Read + Send + 'a>>> {
    let raw = store.open_raw(&desc.digest)?;
    Ok(VerifiedReader::new(raw, desc.digest.clone(), desc.size))
}

/// Reads a small blob (a manifest or config) whole, verified. Refuses blobs over 16 MiB.
pub fn read_small(store: &dyn BlobStore, desc: &Descriptor, what: &'static str) -> Result<Vec<u8>> {
    const MAX: u64 = 16 << 20;
    if desc.size > MAX {
        return Err(Error::InvalidJson {
            what,
            reason: format!(
                "{} is {} bytes, more than the {MAX} allowed for a JSON document",
                desc.digest, desc.size
            ),
        });
    }
    let mut out = Vec::with_capacity(desc.size as usize);
    open_verified(store, desc)?
        .read_to_end(&mut out)
        .map_err(|e| io_to_error(&desc.digest, e))?;
    Ok(out)
}

/// Finds the [`Error`] inside an I/O error from a blob stream, also when other
/// libraries (tar) wrapped it on the way up; else names the blob and the I/O cause.
pub fn io_to_error(digest: &Digest, e: io::Error) -> Error {
    if let Some(found) = find_error(&e) {
        return found;
    }
    Error::BlobIo {
        digest: digest.clone(),
        source: e,
    }
}

/// The [`Error`] carried anywhere in `e`'s chain of causes, if any.
pub fn find_error(e: &io::Error) -> Option<Error> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = e.get_ref().map(|r| r as _);
    while let Some(err) = current {
        if let Some(ours) = err.downcast_ref::<Error>() {
            return ours.clone_data();
        }
        current = match err.downcast_ref::<io::Error>() {
            Some(io) => io.get_ref().map(|r| r as _),
            None => err.source(),
        };
    }
    None
}

/// Reads a region of a shared file with positioned reads, so that many readers
/// can share one open file without seeking each other's position.
pub struct RegionReader<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl<'a> RegionReader<'a> {
    /// Reads `len` bytes of `file` from `offset`.
    pub fn new(file: &'a File, offset: u64, len: u64) -> Self {
        RegionReader {
            file,
            pos: offset,
            end: offset.saturating_add(len),
        }
    }
}

impl Read for RegionReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf.len().min((self.end - self.pos) as usize);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file ends inside a blob",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// An owned variant of [`RegionReader`] for stores that open the file per blob.
pub struct OwnedRegionReader {
    file: File,
    pos: u64,
    end: u64,
}

impl OwnedRegionReader {
    /// Opens `region`.
    pub fn open(region: &FileRegion) -> Result<Self> {
        let file =
            File::open(&region.path).map_err(|e| Error::io("cannot open", &region.path, e))?;
        Ok(OwnedRegionReader {
            file,
            pos: region.offset,
            end: region.offset.saturating_add(region.len),
        })
    }
}

impl Read for OwnedRegionReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        RegionReader {
            file: &self.file,
            pos: self.pos,
            end: self.end,
        }
        .read(buf)
        .inspect(|n| self.pos += *n as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(r: impl Read) -> io::Result<Vec<u8>> {
        let mut r = r;
        let mut v = Vec::new();
        r.read_to_end(&mut v)?;
        Ok(v)
    }

    #[test]
    fn accepts_the_right_bytes() {
        let d = Digest::of(b"abc");
        assert_eq!(
            read_all(VerifiedReader::new(&b"abc"[..], d, 3)).unwrap(),
            b"abc"
        );
    }

    #[test]
    fn refuses_wrong_content_size_and_overlong_streams() {
        let d = Digest::of(b"abc");
        let e = read_all(VerifiedReader::new(&b"abd"[..], d.clone(), 3)).unwrap_err();
        assert!(matches!(io_to_error(&d, e), Error::DigestMismatch { .. }));
        let e = read_all(VerifiedReader::new(&b"ab"[..], d.clone(), 3)).unwrap_err();
        assert!(matches!(
            io_to_error(&d, e),
            Error::SizeMismatch { found: 2, .. }
        ));
        let e = read_all(VerifiedReader::new(&b"abcd"[..], d.clone(), 3)).unwrap_err();
        assert!(matches!(
            io_to_error(&d, e),
            Error::SizeMismatch { found: 4, .. }
        ));
    }
}
