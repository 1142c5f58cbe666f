//! A layer being assembled: paths (no leading `/`) mapped to where their bytes
//! come from, written sorted with fixed times and owners so that the layer is a
//! function of its contents alone (not of the host, its umask or its clock).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use whittle_image::entries::{EntryKind, Meta};
use whittle_image::flatten::{DataRef, FlatView};
use whittle_image::layer_write::{LayerWriter, WrittenLayer};
use whittle_image::mutate::Flat;

use crate::BuildError;

/// Where an entry's content comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StagedKind {
    /// A directory.
    Dir,
    /// Bytes whittle generated.
    Bytes(Vec<u8>),
    /// A regular file on the host (a source tree, a step's output).
    Host(PathBuf),
    /// A symbolic link.
    Symlink(String),
    /// A hard link to an earlier path of the same layer.
    Hardlink(String),
    /// A file of an image read for the build: index into the build's images, and where.
    Image(usize, DataRef),
}

/// One path of a layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StagedEntry {
    /// Relative path.
    pub path: String,
    /// Content.
    pub kind: StagedKind,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

/// A layer being assembled.
#[derive(Clone, Debug, Default)]
pub struct StagedLayer {
    /// By path.
    pub entries: BTreeMap<String, StagedEntry>,
}

/// `/a/b/` -> `a/b`.
pub fn rel(path: &str) -> String {
    path.trim_matches('/').to_string()
}

impl StagedLayer {
    /// Adds or replaces an entry.
    pub fn add(&mut self, e: StagedEntry) {
        self.entries.insert(e.path.clone(), e);
    }

    /// Adds a host file or tree at `to` (symlinks are not followed; owners are
    /// root unless overridden later: the host's users mean nothing in an image).
    pub fn add_host(&mut self, host: &Path, to: &str) -> Result<(), BuildError> {
        let md = fs::symlink_metadata(host).map_err(|e| BuildError::io("cannot read", host, e))?;
        let to = rel(to);
        let ft = md.file_type();
        let mode = md.permissions().mode() & 0o7777;
        let kind = if ft.is_dir() {
            StagedKind::Dir
        } else if ft.is_file() {
            StagedKind::Host(host.to_path_buf())
        } else if ft.is_symlink() {
            let target = fs::read_link(host).map_err(|e| BuildError::io("cannot read", host, e))?;
            StagedKind::Symlink(target.to_string_lossy().into_owned())
        } else {
            return Err(BuildError::Input(format!(
                "{} is neither a file, a directory nor a symlink",
                host.display()
            )));
        };
        let is_dir = kind == StagedKind::Dir;
        if !to.is_empty() {
            self.add(StagedEntry {
                path: to.clone(),
                kind,
                mode,
                uid: 0,
                gid: 0,
            });
        }
        if is_dir {
            let mut names: Vec<_> = fs::read_dir(host)
                .map_err(|e| BuildError::io("cannot list", host, e))?
                .filter_map(|e| e.ok().map(|e| e.file_name()))
                .collect();
            names.sort();
            for name in names {
                let Some(n) = name.to_str() else {
                    return Err(BuildError::Input(format!(
                        "{}: a file name in it is not UTF-8",
                        host.display()
                    )));
                };
                let child_to = if to.is_empty() {
                    n.to_string()
                } else {
                    format!("{to}/{n}")
                };
                self.add_host(&host.join(n), &child_to)?;
            }
        }
        Ok(())
    }

    /// Adds the nodes of `view` (paths of image `image`), hard links as links.
    pub fn add_view(&mut self, image: usize, view: &FlatView) {
        let mut first: BTreeMap<u64, String> = BTreeMap::new();
        for (path, node) in &view.nodes {
            if path.is_empty() {
                continue;
            }
            let kind = if node.inode != 0 && first.contains_key(&node.inode) {
                StagedKind::Hardlink(first[&node.inode].clone())
            } else {
                if node.inode != 0 {
                    first.insert(node.inode, path.clone());
                }
                match (&node.kind, node.data) {
                    (EntryKind::Dir, _) => StagedKind::Dir,
                    (EntryKind::Symlink(t), _) => StagedKind::Symlink(t.clone()),
                    (EntryKind::File, Some(d)) => StagedKind::Image(image, d),
                    (EntryKind::File, None) => StagedKind::Bytes(Vec::new()),
                    // Devices and fifos have no place in a built image.
                    _ => continue,
                }
            };
            self.add(StagedEntry {
                path: path.clone(),
                kind,
                mode: node.meta.mode & 0o7777,
                uid: node.meta.uid as u32,
                gid: node.meta.gid as u32,
            });
        }
    }

    /// Applies a layer block's `mode` (to files), `uid` and `gid` (to everything).
    pub fn apply_overrides(&mut self, mode: Option<u32>, uid: Option<u32>, gid: Option<u32>) {
        for e in self.entries.values_mut() {
            if let Some(m) = mode {
                if matches!(
                    e.kind,
                    StagedKind::Host(_) | StagedKind::Bytes(_) | StagedKind::Image(..)
                ) {
                    e.mode = m;
                }
            }
            if let Some(u) = uid {
                e.uid = u;
            }
            if let Some(g) = gid {
                e.gid = g;
            }
        }
    }

    /// Adds missing parent directories (0755, root).
    pub fn add_parents(&mut self) {
        let paths: Vec<String> = self.entries.keys().cloned().collect();
        for p in paths {
            let mut dir = p.as_str();
            while let Some(i) = dir.rfind('/') {
                dir = &dir[..i];
                if self.entries.contains_key(dir) {
                    break;
                }
                self.add(StagedEntry {
                    path: dir.to_string(),
                    kind: StagedKind::Dir,
                    mode: 0o755,
                    uid: 0,
                    gid: 0,
                });
            }
        }
    }

    /// Writes the layer: sorted, every header field set, times = `mtime`.
    pub fn write(
        &self,
        flats: &[Option<&Flat>],
        mut writer: LayerWriter,
        mtime: u64,
    ) -> Result<WrittenLayer, BuildError> {
        for e in self.entries.values() {
            let meta = Meta {
                mode: e.mode,
                uid: u64::from(e.uid),
                gid: u64::from(e.gid),
                mtime,
                xattrs: Vec::new(),
            };
            match &e.kind {
                StagedKind::Dir => writer.append(&e.path, &EntryKind::Dir, &meta, 0, None)?,
                StagedKind::Symlink(t) => {
                    writer.append(&e.path, &EntryKind::Symlink(t.clone()), &meta, 0, None)?
                }
                StagedKind::Hardlink(t) => {
                    writer.append(&e.path, &EntryKind::Hardlink(t.clone()), &meta, 0, None)?
                }
                StagedKind::Bytes(b) => {
                    let mut r = &b[..];
                    writer.append(
                        &e.path,
                        &EntryKind::File,
                        &meta,
                        b.len() as u64,
                        Some(&mut r),
                    )?;
                }
                StagedKind::Host(p) => {
                    let mut f =
                        fs::File::open(p).map_err(|err| BuildError::io("cannot open", p, err))?;
                    let size = f
                        .metadata()
                        .map_err(|err| BuildError::io("cannot stat", p, err))?
                        .size();
                    writer.append(&e.path, &EntryKind::File, &meta, size, Some(&mut f))?;
                }
                StagedKind::Image(i, d) => {
                    let flat = flats
                        .get(*i)
                        .copied()
                        .flatten()
                        .ok_or_else(|| BuildError::Input("internal: image not read".into()))?;
                    let mut r = flat.reader(*d)?;
                    writer.append(&e.path, &EntryKind::File, &meta, d.size, Some(&mut r))?;
                }
            }
        }
        Ok(writer.finish()?)
    }

    /// The regular files of this layer, for checks (path, where to read them).
    pub fn files(&self) -> impl Iterator<Item = &StagedEntry> {
        self.entries.values().filter(|e| {
            matches!(
                e.kind,
                StagedKind::Host(_) | StagedKind::Bytes(_) | StagedKind::Image(..)
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_trees_are_staged_with_root_owners_and_parents() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("src/sub")).unwrap();
        fs::write(dir.path().join("src/sub/a.txt"), "a").unwrap();
        fs::set_permissions(
            dir.path().join("src/sub/a.txt"),
            fs::Permissions::from_mode(0o640),
        )
        .unwrap();
        std::os::unix::fs::symlink("sub/a.txt", dir.path().join("src/link")).unwrap();
        let mut l = StagedLayer::default();
        l.add_host(&dir.path().join("src"), "/opt/app").unwrap();
        l.add_parents();
        let keys: Vec<_> = l.entries.keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "opt",
                "opt/app",
                "opt/app/link",
                "opt/app/sub",
                "opt/app/sub/a.txt"
            ]
        );
        assert_eq!(l.entries["opt/app/sub/a.txt"].mode, 0o640);
        assert_eq!(
            l.entries["opt/app/link"].kind,
            StagedKind::Symlink("sub/a.txt".into())
        );
        l.apply_overrides(Some(0o755), Some(65532), None);
        assert_eq!(l.entries["opt/app/sub/a.txt"].mode, 0o755);
        assert_eq!(
            l.entries["opt/app/sub"].mode & 0o777,
            fs::metadata(dir.path().join("src/sub"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        );
        assert_eq!(l.entries["opt"].uid, 65532);
    }
}
