//! Reading a layer tar into a list of changes, refusing anything unsafe.
//!
//! Nothing here touches the disk: entries become [`Change`]s (adds, whiteouts,
//! opaque markers) with their data located by offset in the uncompressed tar.
//! Member paths are normalised to root-relative form; `..`, absolute paths, NUL
//! bytes and malformed whiteouts are errors that name the member.

use std::io::{self, Read};

use crate::blob::io_to_error;
use crate::{Digest, Error, Limits, Result};
use whittle_elf::ElfSummary;

/// What kind of file an entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link, with its target exactly as written.
    Symlink(String),
    /// A hard link to another member, by normalised path.
    Hardlink(String),
    /// A character device.
    CharDevice(u32, u32),
    /// A block device.
    BlockDevice(u32, u32),
    /// A named pipe.
    Fifo,
}

impl EntryKind {
    /// A one-word name for messages and reports.
    pub fn name(&self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Dir => "directory",
            EntryKind::Symlink(_) => "symlink",
            EntryKind::Hardlink(_) => "hardlink",
            EntryKind::CharDevice(..) => "character device",
            EntryKind::BlockDevice(..) => "block device",
            EntryKind::Fifo => "fifo",
        }
    }
}

/// Ownership, permissions, time and extended attributes of an entry.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Meta {
    /// Permission bits including setuid, setgid and sticky (`0o7777`).
    pub mode: u32,
    /// Numeric owner.
    pub uid: u64,
    /// Numeric group.
    pub gid: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
    /// Extended attributes (e.g. `security.capability`), sorted by name.
    pub xattrs: Vec<(String, Vec<u8>)>,
}

/// A member that adds or replaces a path.
#[derive(Clone, Debug)]
pub struct LayerEntry {
    /// Root-relative normalised path (no leading `/` or `./`, no trailing `/`).
    pub path: String,
    /// Its kind.
    pub kind: EntryKind,
    /// Its metadata.
    pub meta: Meta,
    /// Bytes of data (files only).
    pub size: u64,
    /// Where its data starts in the uncompressed tar.
    pub offset: u64,
    /// ELF facts, when asked for and the file is ELF.
    pub elf: Option<ElfSummary>,
}

/// One change a layer makes to the filesystem below it.
#[derive(Clone, Debug)]
pub enum Change {
    /// Add or replace a path.
    Add(LayerEntry),
    /// `.wh.NAME`: delete a path (and everything under it) from lower layers.
    Whiteout(String),
    /// `.wh..wh..opq`: hide every lower child of a directory.
    Opaque(String),
}

/// What to collect while reading.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadOptions {
    /// Read the start of each regular file and summarise ELF files.
    pub peek_elf: bool,
}

/// The changes in a layer, plus how many members it had.
#[derive(Debug, Default)]
pub struct LayerChanges {
    /// Changes in member order.
    pub changes: Vec<Change>,
    /// Number of tar members (excluding extension headers).
    pub members: u64,
}

/// Normalises a member path; the error says why it is refused.
pub fn normalize(raw: &str) -> std::result::Result<String, &'static str> {
    if raw.contains('\0') {
        return Err("the name contains a NUL byte");
    }
    if raw.starts_with('/') {
        return Err(
            "the name is an absolute path; layer members must be relative to the image root",
        );
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("the name climbs out of the image root with '..'"),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

fn classify(path: &str) -> std::result::Result<Option<Change>, &'static str> {
    let (parent, name) = match path.rsplit_once('/') {
        Some((p, n)) => (p, n),
        None => ("", path),
    };
    if name == OPAQUE {
        return Ok(Some(Change::Opaque(parent.to_string())));
    }
    let Some(target) = name.strip_prefix(WHITEOUT) else {
        return Ok(None);
    };
    if target.is_empty() {
        return Err("a bare '.wh.' whiteout names nothing to delete");
    }
    if target == "." || target == ".." {
        return Err("a whiteout may not name '.' or '..'");
    }
    if target.starts_with(WHITEOUT) {
        // AUFS bookkeeping (.wh..wh.plnk, .wh..wh.aufs): not content, skipped.
        return Ok(Some(Change::Whiteout(String::new())));
    }
    let full = if parent.is_empty() {
        target.to_string()
    } else {
        format!("{parent}/{target}")
    };
    Ok(Some(Change::Whiteout(full)))
}

/// Reads a layer tar stream into its changes. Reads the stream to its end, so a
/// verifying reader underneath sees every byte.
pub fn read_changes<R: Read>(
    tar: R,
    layer: &Digest,
    limits: &Limits,
    opts: ReadOptions,
) -> Result<LayerChanges> {
    read_changes_with(tar, layer, limits, opts, None)
}

/// Called with each regular file's data as the layer streams past: its normalised path, the
/// offset of its data in the uncompressed tar (as [`LayerEntry::offset`]), its size and a
/// reader over its bytes. It need not read them all; an error stops the read.
pub type FileVisitor<'v> = dyn FnMut(&str, u64, u64, &mut dyn Read) -> io::Result<()> + 'v;

/// [`read_changes`], also handing every regular file's data to `visit` while the stream
/// passes (so a caller can hash file contents without a second read or a staged copy).
pub fn read_changes_with<R: Read>(
    tar: R,
    layer: &Digest,
    limits: &Limits,
    opts: ReadOptions,
    mut visit: Option<&mut FileVisitor<'_>>,
) -> Result<LayerChanges> {
    let mut archive = tar::Archive::new(tar);
    let mut out = LayerChanges::default();
    let bad = |path: &str, reason: String| Error::BadEntry {
        layer: layer.clone(),
        path: path.to_string(),
        reason,
    };
    let read_err = |e: io::Error| match io_to_error(layer, e) {
        Error::BlobIo { source, .. } => Error::BadLayer {
            layer: layer.clone(),
            reason: format!("the tar stream is unreadable: {source}"),
        },
        other => other,
    };
    {
        let entries = archive.entries().map_err(read_err)?;
        for entry in entries {
            let mut entry = entry.map_err(read_err)?;
            out.members += 1;
            if out.members > limits.max_entries {
                return Err(Error::LimitExceeded {
                    layer: layer.clone(),
                    what: "number of entries",
                    limit: limits.max_entries,
                });
            }
            let raw_path = String::from_utf8(entry.path_bytes().into_owned()).map_err(|e| {
                bad(
                    &String::from_utf8_lossy(e.as_bytes()),
                    "the name is not UTF-8".into(),
                )
            })?;
            if raw_path.len() > limits.max_path_bytes {
                return Err(bad(
                    &raw_path[..64],
                    format!("the name is longer than {} bytes", limits.max_path_bytes),
                ));
            }
            let path = normalize(&raw_path).map_err(|r| bad(&raw_path, r.into()))?;
            let header = entry.header();
            let etype = header.entry_type();
            if etype.is_pax_global_extensions() {
                continue;
            }
            if let Some(change) = classify(&path).map_err(|r| bad(&raw_path, r.into()))? {
                if !matches!(&change, Change::Whiteout(p) if p.is_empty()) {
                    out.changes.push(change);
                }
                continue;
            }
            if path.is_empty() {
                // The root directory itself ("./"): the image root is not an entry.
                continue;
            }
            let mut meta = Meta {
                mode: header
                    .mode()
                    .map_err(|e| bad(&raw_path, format!("bad mode field: {e}")))?
                    & 0o7777,
                uid: header
                    .uid()
                    .map_err(|e| bad(&raw_path, format!("bad uid field: {e}")))?,
                gid: header
                    .gid()
                    .map_err(|e| bad(&raw_path, format!("bad gid field: {e}")))?,
                mtime: header
                    .mtime()
                    .map_err(|e| bad(&raw_path, format!("bad mtime field: {e}")))?,
                xattrs: Vec::new(),
            };
            let device = |h: &tar::Header| -> Result<(u32, u32)> {
                let major = h.device_major().ok().flatten().unwrap_or(0);
                let minor = h.device_minor().ok().flatten().unwrap_or(0);
                Ok((major, minor))
            };
            let link = |e: &tar::Entry<'_, R>| -> Result<String> {
                let raw = e
                    .link_name_bytes()
                    .ok_or_else(|| bad(&raw_path, "a link without a target".into()))?;
                String::from_utf8(raw.into_owned())
                    .map_err(|_| bad(&raw_path, "the link target is not UTF-8".into()))
            };
            let kind = match etype {
                tar::EntryType::Regular | tar::EntryType::Continuous => EntryKind::File,
                tar::EntryType::Directory => EntryKind::Dir,
                tar::EntryType::Symlink => {
                    let target = link(&entry)?;
                    if target.contains('\0') || target.is_empty() {
                        return Err(bad(
                            &raw_path,
                            "the symlink target is empty or contains NUL".into(),
                        ));
                    }
                    EntryKind::Symlink(target)
                }
                tar::EntryType::Link => {
                    let target = link(&entry)?;
                    let target = normalize(&target)
                        .map_err(|r| bad(&raw_path, format!("hardlink target {target:?}: {r}")))?;
                    if target.is_empty() {
                        return Err(bad(&raw_path, "a hardlink to the image root".into()));
                    }
                    EntryKind::Hardlink(target)
                }
                tar::EntryType::Char => {
                    let (a, b) = device(header)?;
                    EntryKind::CharDevice(a, b)
                }
                tar::EntryType::Block => {
                    let (a, b) = device(header)?;
                    EntryKind::BlockDevice(a, b)
                }
                tar::EntryType::Fifo => EntryKind::Fifo,
                tar::EntryType::GNUSparse => {
                    return Err(bad(&raw_path, "sparse files are not supported".into()))
                }
                other => {
                    return Err(bad(
                        &raw_path,
                        format!("unsupported tar entry type {:?}", other.as_byte() as char),
                    ))
                }
            };
            if let Ok(Some(exts)) = entry.pax_extensions() {
                for ext in exts {
                    let ext = ext.map_err(|e| bad(&raw_path, format!("bad PAX record: {e}")))?;
                    let Ok(key) = ext.key() else { continue };
                    if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                        meta.xattrs
                            .push((name.to_string(), ext.value_bytes().to_vec()));
                    } else if key == "uid" || key == "gid" {
                        let v = ext.value().ok().and_then(|v| v.parse::<u64>().ok());
                        let v = v.ok_or_else(|| bad(&raw_path, format!("bad PAX {key} record")))?;
                        if key == "uid" {
                            meta.uid = v;
                        } else {
                            meta.gid = v;
                        }
                    } else if key == "mtime" {
                        // Fractions of a second are dropped: whittle writes whole seconds.
                        if let Some(secs) = ext
                            .value()
                            .ok()
                            .and_then(|v| v.split('.').next()?.parse::<u64>().ok())
                        {
                            meta.mtime = secs;
                        }
                    }
                }
            }
            meta.xattrs.sort();
            meta.xattrs.dedup_by(|a, b| a.0 == b.0);
            let size = if kind == EntryKind::File {
                entry.size()
            } else {
                0
            };
            let offset = entry.raw_file_position();
            let mut prefix = Vec::new();
            let elf = if opts.peek_elf && kind == EntryKind::File && size >= 16 {
                prefix.reserve(size.min(whittle_elf::PREFIX as u64) as usize);
                (&mut entry)
                    .take(whittle_elf::PREFIX as u64)
                    .read_to_end(&mut prefix)
                    .map_err(read_err)?;
                whittle_elf::summarize(&prefix, size)
            } else {
                None
            };
            if let (Some(visit), EntryKind::File) = (visit.as_mut(), &kind) {
                // The bytes the ELF peek took come first, then the rest of the member.
                let mut data = (&prefix[..]).chain(&mut entry);
                visit(&path, offset, size, &mut data).map_err(read_err)?;
            }
            out.changes.push(Change::Add(LayerEntry {
                path,
                kind,
                meta,
                size,
                offset,
                elf,
            }));
        }
    }
    // Read past the end-of-archive blocks so the digest checks below us see every byte.
    io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(read_err)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_member_names() {
        assert_eq!(normalize("./etc/passwd").unwrap(), "etc/passwd");
        assert_eq!(normalize("etc//nginx/").unwrap(), "etc/nginx");
        assert_eq!(normalize("./").unwrap(), "");
        assert!(normalize("../etc/passwd").is_err());
        assert!(normalize("a/../../b").is_err());
        assert!(normalize("/etc/passwd").is_err());
        assert!(normalize("a\0b").is_err());
    }

    #[test]
    fn visitor_sees_every_file_with_its_offset() {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in [
            ("etc/a", &b"alpha"[..]),
            ("bin/elf", b"\x7fELF-and-more-bytes"),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_cksum();
            b.append_data(&mut h, name, data).unwrap();
        }
        let tar = b.into_inner().unwrap();
        // With the ELF peek on too: the visitor still gets every byte.
        for peek_elf in [false, true] {
            let mut seen = Vec::new();
            let mut visit = |path: &str, offset: u64, size: u64, r: &mut dyn Read| {
                let mut bytes = Vec::new();
                r.read_to_end(&mut bytes)?;
                seen.push((path.to_string(), offset, size, bytes));
                Ok(())
            };
            let changes = read_changes_with(
                &tar[..],
                &Digest::of(b"layer"),
                &Limits::default(),
                ReadOptions { peek_elf },
                Some(&mut visit),
            )
            .unwrap();
            assert_eq!(seen.len(), 2);
            assert_eq!(seen[0].0, "etc/a");
            assert_eq!(seen[0].3, b"alpha");
            assert_eq!(seen[1].3, b"\x7fELF-and-more-bytes");
            for (change, (_, offset, size, bytes)) in changes.changes.iter().zip(&seen) {
                let Change::Add(e) = change else { panic!() };
                assert_eq!((e.offset, e.size), (*offset, *size));
                assert_eq!(&tar[*offset as usize..][..bytes.len()], &bytes[..]);
            }
        }
    }

    #[test]
    fn classifies_whiteouts() {
        assert!(
            matches!(classify("etc/.wh.foo").unwrap(), Some(Change::Whiteout(p)) if p == "etc/foo")
        );
        assert!(matches!(classify(".wh.foo").unwrap(), Some(Change::Whiteout(p)) if p == "foo"));
        assert!(
            matches!(classify("etc/.wh..wh..opq").unwrap(), Some(Change::Opaque(p)) if p == "etc")
        );
        assert!(classify("etc/.wh.").is_err());
        assert!(classify("etc/.wh...").is_err());
        assert!(classify("etc/foo.wh.bar").unwrap().is_none());
    }
}
