//! Tar archives of images: an index of members for random access while
//! reading, and a deterministic writer that lands atomically.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use whittle_image::blob::{FileRegion, OwnedRegionReader};
use whittle_image::entries::normalize;
use whittle_image::{BlobStore, Digest};

use crate::{Error, Result};

/// Members of an uncompressed tar file, by normalised name.
pub struct TarIndex {
    path: PathBuf,
    members: HashMap<String, FileRegion>,
    links: HashMap<String, String>,
}

impl TarIndex {
    /// Reads the headers of `path` (skipping data) and records where each file lies.
    pub fn open(path: &Path) -> Result<TarIndex> {
        let file = File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
        let mut magic = [0u8; 4];
        let n = (&file)
            .read(&mut magic)
            .map_err(|e| Error::io("cannot read", path, e))?;
        if n >= 2 && magic[..2] == [0x1f, 0x8b] {
            return Err(Error::invalid(
                path.display(),
                "the archive is gzip-compressed; decompress it first (gunzip)",
            ));
        }
        let bad = |e: io::Error| {
            Error::invalid(path.display(), format!("not a readable tar archive: {e}"))
        };
        let mut archive = tar::Archive::new(io::BufReader::new(
            File::open(path).map_err(|e| Error::io("cannot open", path, e))?,
        ));
        let mut members = HashMap::new();
        let mut links = HashMap::new();
        for entry in archive.entries_with_seek().map_err(bad)? {
            let entry = entry.map_err(bad)?;
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let Ok(name) = normalize(&name) else { continue };
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    members.insert(
                        name,
                        FileRegion {
                            path: path.to_path_buf(),
                            offset: entry.raw_file_position(),
                            len: entry.size(),
                        },
                    );
                }
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    if let Some(target) = entry.link_name_bytes() {
                        let target = String::from_utf8_lossy(&target).into_owned();
                        let resolved = if entry.header().entry_type() == tar::EntryType::Symlink
                            && !target.starts_with('/')
                        {
                            // Symlinks are relative to the member's directory.
                            match name.rsplit_once('/') {
                                Some((dir, _)) => format!("{dir}/{target}"),
                                None => target,
                            }
                        } else {
                            target
                        };
                        if let Ok(t) = normalize_dots(&resolved) {
                            links.insert(name, t);
                        }
                    }
                }
                _ => {}
            }
        }
        if members.is_empty() {
            return Err(Error::invalid(path.display(), "the archive holds no files"));
        }
        // A cut-off archive reads as a shorter one (the reader seeks past its end):
        // a member whose data runs beyond the file says it was truncated.
        let size = std::fs::metadata(path)
            .map_err(|e| Error::io("cannot read", path, e))?
            .len();
        if let Some((name, end)) = members
            .iter()
            .map(|(n, r)| (n, r.offset.saturating_add(r.len)))
            .filter(|(_, end)| *end > size)
            .max_by_key(|(_, end)| *end)
        {
            return Err(Error::invalid(
                path.display(),
                format!(
                    "the archive is truncated: member {name} ends at byte {end}, but the file has {size} bytes"
                ),
            ));
        }
        Ok(TarIndex {
            path: path.to_path_buf(),
            members,
            links,
        })
    }

    /// Where member `name` lies, following links between members.
    pub fn region(&self, name: &str) -> Option<&FileRegion> {
        let mut name = normalize(name).ok()?;
        for _ in 0..16 {
            if let Some(r) = self.members.get(&name) {
                return Some(r);
            }
            name = self.links.get(&name)?.clone();
        }
        None
    }

    /// Reads a small member whole (JSON documents), refusing big ones.
    pub fn read_small(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let Some(region) = self.region(name) else {
            return Ok(None);
        };
        if region.len > 16 << 20 {
            return Err(Error::invalid(
                self.path.display(),
                format!("{name} is implausibly large ({} bytes)", region.len),
            ));
        }
        let mut out = Vec::with_capacity(region.len as usize);
        OwnedRegionReader::open(region)?
            .read_to_end(&mut out)
            .map_err(|e| Error::io("cannot read", &self.path, e))?;
        Ok(Some(out))
    }

    /// The archive's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Resolves `.` and `..` lexically inside the archive (refusing escapes).
fn normalize_dots(path: &str) -> std::result::Result<String, ()> {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop().ok_or(())?;
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// Blobs inside a tar archive, by digest.
pub struct ArchiveStore {
    index: TarIndex,
    by_digest: HashMap<Digest, String>,
    owner: Option<Owner>,
}

/// Something that must outlive the store: the temporary directory holding an
/// archive whittle downloaded (from the Docker Engine, say).
pub type Owner = Arc<dyn std::any::Any + Send + Sync>;

impl ArchiveStore {
    /// A store over `index`; blobs are found as `blobs/sha256/HEX` unless mapped with [`ArchiveStore::map`].
    pub fn new(index: TarIndex) -> Self {
        ArchiveStore {
            index,
            by_digest: HashMap::new(),
            owner: None,
        }
    }

    /// Keeps `owner` alive as long as the store.
    pub fn with_owner(mut self, owner: Option<Owner>) -> Self {
        self.owner = owner;
        self
    }

    /// What the store keeps alive.
    pub fn owner(&self) -> Option<Owner> {
        self.owner.clone()
    }

    /// Declares that blob `digest` is the member `name` (legacy docker-archive layers).
    pub fn map(&mut self, digest: Digest, name: String) {
        self.by_digest.insert(digest, name);
    }

    /// The member index.
    pub fn index(&self) -> &TarIndex {
        &self.index
    }
}

impl BlobStore for ArchiveStore {
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
        let name = match self.by_digest.get(digest) {
            Some(n) => n.clone(),
            None => format!("blobs/sha256/{}", digest.hex()),
        };
        self.index.region(&name).cloned()
    }

    fn location(&self) -> String {
        format!("the archive {}", self.index.path.display())
    }
}

/// Writes a tar archive member by member with fixed metadata, into a temporary
/// file beside the destination that [`ArchiveWriter::commit`] renames into place.
pub struct ArchiveWriter {
    builder: tar::Builder<BufWriter<File>>,
    temp: tempfile::TempPath,
    dest: PathBuf,
    mtime: u64,
}

impl ArchiveWriter {
    /// Starts writing what will become `dest`.
    pub fn create(dest: &Path, mtime: u64) -> Result<ArchiveWriter> {
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if dest.is_dir() {
            return Err(Error::invalid(
                dest.display(),
                "is a directory, not an archive file",
            ));
        }
        // As cp and tar: an archive goes into a directory that exists.
        if !parent.is_dir() {
            return Err(Error::invalid(
                dest.display(),
                format!("its directory {} does not exist", parent.display()),
            ));
        }
        let temp = tempfile::Builder::new()
            .prefix(&whittle_image::temp_prefix())
            .suffix(".tar.tmp")
            .permissions(crate::output_file_mode())
            .tempfile_in(parent)
            .map_err(|e| Error::io("cannot create a temporary file in", parent, e))?;
        let (file, temp) = temp.into_parts();
        Ok(ArchiveWriter {
            builder: tar::Builder::new(BufWriter::with_capacity(1 << 20, file)),
            temp,
            dest: dest.to_path_buf(),
            mtime,
        })
    }

    fn header(&self, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(self.mtime);
        h.set_size(size);
        h
    }

    /// Adds a directory member.
    pub fn dir(&mut self, name: &str) -> Result<()> {
        let mut h = self.header(tar::EntryType::Directory, 0o755, 0);
        let temp = self.temp.to_path_buf();
        self.builder
            .append_data(&mut h, name, io::empty())
            .map_err(|e| Error::io("cannot write", temp, e))
    }

    /// Adds a file member of exactly `size` bytes from `data`.
    pub fn file(&mut self, name: &str, size: u64, data: &mut dyn Read) -> Result<()> {
        let mut h = self.header(tar::EntryType::Regular, 0o644, size);
        let temp = self.temp.to_path_buf();
        let mut counted = data.take(size);
        self.builder
            .append_data(&mut h, name, &mut counted)
            .map_err(|e| Error::io("cannot write", &temp, e))?;
        if counted.limit() != 0 {
            return Err(Error::invalid(
                name,
                "its source ended before its declared size",
            ));
        }
        Ok(())
    }

    /// Adds a file member holding the whole of `path`, a file whittle wrote in
    /// this run: copied by the kernel (`copy_file_range`), not through a hash.
    pub fn own_file(&mut self, name: &str, path: &Path, size: u64) -> Result<()> {
        let mut h = self.header(tar::EntryType::Regular, 0o644, size);
        if h.set_path(name).is_err() {
            // A name ustar cannot hold: let the tar crate add its extension header.
            let mut file = File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
            return self.file(name, size, &mut file);
        }
        h.set_cksum();
        let temp = self.temp.to_path_buf();
        let werr = |e| Error::io("cannot write", &temp, e);
        let out = self.builder.get_mut();
        out.write_all(h.as_bytes()).map_err(werr)?;
        let mut from = File::open(path)
            .map_err(|e| Error::io("cannot open", path, e))?
            .take(size);
        // Reader and writer are plain files (the BufWriter flushes first), so
        // std hands this to the kernel.
        let copied = io::copy(&mut from, out).map_err(werr)?;
        if copied != size {
            return Err(Error::invalid(
                path.display(),
                "it changed while whittle was writing it into the archive",
            ));
        }
        let pad = (512 - size % 512) % 512;
        out.write_all(&[0u8; 512][..pad as usize]).map_err(werr)?;
        Ok(())
    }

    /// Adds a file member holding everything `data` yields, however much that
    /// is: the header is written with the size once the data is in. Returns the size.
    pub fn stream_file(&mut self, name: &str, data: &mut dyn Read) -> Result<u64> {
        let mut h = self.header(tar::EntryType::Regular, 0o644, 0);
        h.set_path(name)
            .map_err(|e| Error::invalid(name, format!("cannot be a tar member name: {e}")))?;
        h.set_cksum();
        let temp = self.temp.to_path_buf();
        let werr = |e| Error::io("cannot write", &temp, e);
        let out = self.builder.get_mut();
        let start = out.stream_position().map_err(werr)?;
        out.write_all(h.as_bytes()).map_err(werr)?;
        let size = io::copy(data, out).map_err(|e| crate::copy_error(&temp, e))?;
        let pad = (512 - size % 512) % 512;
        out.write_all(&[0u8; 512][..pad as usize]).map_err(werr)?;
        let end = out.stream_position().map_err(werr)?;
        h.set_size(size);
        h.set_cksum();
        out.seek(SeekFrom::Start(start)).map_err(werr)?;
        out.write_all(h.as_bytes()).map_err(werr)?;
        out.seek(SeekFrom::Start(end)).map_err(werr)?;
        Ok(size)
    }

    /// Finishes the archive, syncs it and renames it over the destination.
    pub fn commit(self) -> Result<()> {
        let temp_path = self.temp.to_path_buf();
        let writer = self
            .builder
            .into_inner()
            .map_err(|e| Error::io("cannot write", &temp_path, e))?;
        let file = writer
            .into_inner()
            .map_err(|e| Error::io("cannot write", &temp_path, e.into_error()))?;
        file.sync_all()
            .map_err(|e| Error::io("cannot sync", &temp_path, e))?;
        self.temp
            .persist(&self.dest)
            .map_err(|e| Error::io("cannot rename into place", &self.dest, e.error))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_and_own_file_members_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let own = dir.path().join("own");
        let own_bytes: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&own, &own_bytes).unwrap();
        let streamed: Vec<u8> = (0..1_000_003u32).map(|i| (i % 241) as u8).collect();

        let dest = dir.path().join("out.tar");
        let mut w = ArchiveWriter::create(&dest, 1_700_000_000).unwrap();
        w.dir("blobs").unwrap();
        let size = w.stream_file("blobs/streamed", &mut &streamed[..]).unwrap();
        assert_eq!(size, streamed.len() as u64);
        w.own_file("blobs/own", &own, own_bytes.len() as u64)
            .unwrap();
        w.file("after", 2, &mut &b"ok"[..]).unwrap();
        w.commit().unwrap();

        // An independent reader sees the sizes patched in and every byte in place.
        let index = TarIndex::open(&dest).unwrap();
        assert_eq!(index.read_small("after").unwrap().unwrap(), b"ok");
        let mut archive = tar::Archive::new(File::open(&dest).unwrap());
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            assert_eq!(entry.header().mtime().unwrap(), 1_700_000_000);
            let mut body = Vec::new();
            entry.read_to_end(&mut body).unwrap();
            match name.as_str() {
                "blobs/streamed" => assert!(body == streamed, "streamed member differs"),
                "blobs/own" => assert!(body == own_bytes, "own-file member differs"),
                "after" => assert_eq!(body, b"ok"),
                _ => {}
            }
            seen.push(name);
        }
        assert_eq!(seen, ["blobs", "blobs/streamed", "blobs/own", "after"]);
    }

    #[test]
    fn own_file_that_shrank_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let own = dir.path().join("own");
        std::fs::write(&own, b"short").unwrap();
        let dest = dir.path().join("out.tar");
        let mut w = ArchiveWriter::create(&dest, 0).unwrap();
        assert!(w.own_file("x", &own, 10).is_err());
        drop(w);
        assert!(!dest.exists(), "a failed archive must not appear");
    }
}
