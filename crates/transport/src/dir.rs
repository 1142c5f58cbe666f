//! `dir:ROOTFS`: a directory read as a one-layer image (like `docker import`).
//!
//! The walk never follows symlinks, records hard links once, and keeps file
//! capabilities; entries are sorted, so the layer depends only on the tree.

use std::collections::HashMap;
use std::fs::{self, File};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::Arc;

use whittle_image::config::{new_config, ConfigOverrides};
use whittle_image::entries::{EntryKind, Meta};
use whittle_image::layer_write::LayerWriter;
use whittle_image::{Compression, Image, MediaType, RawDoc, Scratch};

use crate::{Error, Result};

/// Extended attributes whittle carries from a directory into a layer.
const KEPT_XATTRS: &[&str] = &["security.capability"];

struct Walk<'a> {
    writer: LayerWriter,
    links: HashMap<(u64, u64), String>,
    root: &'a Path,
}

impl Walk<'_> {
    fn dir(&mut self, rel: &str) -> Result<()> {
        let dir = self.root.join(rel);
        let mut names: Vec<_> = fs::read_dir(&dir)
            .map_err(|e| Error::io("cannot list", &dir, e))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()
            .map_err(|e| Error::io("cannot list", &dir, e))?;
        names.sort();
        for name in names {
            let name = name.into_string().map_err(|n| {
                Error::invalid(dir.join(&n).display(), "the file name is not UTF-8")
            })?;
            let rel = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            self.entry(&rel)?;
        }
        Ok(())
    }

    fn entry(&mut self, rel: &str) -> Result<()> {
        let path = self.root.join(rel);
        let md = fs::symlink_metadata(&path).map_err(|e| Error::io("cannot stat", &path, e))?;
        let ft = md.file_type();
        let meta = Meta {
            mode: md.mode() & 0o7777,
            uid: u64::from(md.uid()),
            gid: u64::from(md.gid()),
            mtime: u64::try_from(md.mtime()).unwrap_or(0),
            xattrs: xattrs(&path),
        };
        if !ft.is_dir() && md.nlink() > 1 {
            let key = (md.dev(), md.ino());
            if let Some(first) = self.links.get(&key) {
                let kind = EntryKind::Hardlink(first.clone());
                return Ok(self.writer.append(rel, &kind, &meta, 0, None)?);
            }
            self.links.insert(key, rel.to_string());
        }
        let rdev = md.rdev();
        let device = || (rustix::fs::major(rdev), rustix::fs::minor(rdev));
        let kind = if ft.is_dir() {
            EntryKind::Dir
        } else if ft.is_file() {
            EntryKind::File
        } else if ft.is_symlink() {
            let target =
                fs::read_link(&path).map_err(|e| Error::io("cannot read link", &path, e))?;
            let target = target
                .into_os_string()
                .into_string()
                .map_err(|_| Error::invalid(path.display(), "the link target is not UTF-8"))?;
            EntryKind::Symlink(target)
        } else if ft.is_char_device() {
            let (a, b) = device();
            EntryKind::CharDevice(a, b)
        } else if ft.is_block_device() {
            let (a, b) = device();
            EntryKind::BlockDevice(a, b)
        } else if ft.is_fifo() {
            EntryKind::Fifo
        } else {
            // Sockets cannot be archived; they are runtime objects.
            return Ok(());
        };
        match kind {
            EntryKind::File => {
                let mut f = File::open(&path).map_err(|e| Error::io("cannot open", &path, e))?;
                self.writer
                    .append(rel, &kind, &meta, md.len(), Some(&mut f))?;
            }
            EntryKind::Dir => {
                self.writer.append(rel, &kind, &meta, 0, None)?;
                self.dir(rel)?;
            }
            _ => self.writer.append(rel, &kind, &meta, 0, None)?,
        }
        Ok(())
    }
}

fn xattrs(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for name in KEPT_XATTRS {
        let mut buf = vec![0u8; 1024];
        if let Ok(n) = rustix::fs::lgetxattr(path, *name, &mut buf) {
            buf.truncate(n);
            out.push((name.to_string(), buf));
        }
    }
    out
}

/// Reads `root` into a one-layer image whose blobs live in `scratch`.
pub fn open(
    root: &Path,
    scratch: Arc<Scratch>,
    compression: Compression,
    overrides: &ConfigOverrides,
    source_date_epoch: Option<u64>,
) -> Result<Image> {
    let md = fs::metadata(root).map_err(|e| Error::io("cannot open", root, e))?;
    if !md.is_dir() {
        return Err(Error::invalid(root.display(), "is not a directory"));
    }
    let mut walk = Walk {
        writer: LayerWriter::create(scratch.new_file("dir-layer"), compression)?,
        links: HashMap::new(),
        root,
    };
    walk.dir("")?;
    let written = walk.writer.finish()?;
    scratch.adopt(&written.path, &written.descriptor.digest)?;
    let config = RawDoc::new(
        MediaType::OciConfig,
        new_config(
            std::slice::from_ref(&written.diff_id),
            source_date_epoch,
            overrides,
        ),
    );
    Ok(Image::new(None, config, vec![written.descriptor], scratch)?)
}
