//! Applying layers in order to get the filesystem an image presents.
//!
//! The view holds metadata only; file data stays in the layer tars and is
//! located by (layer, offset, size). Whiteouts and opaque markers of a layer
//! apply to the layers below it before its own entries; hard links share an
//! inode number, so a link keeps the content it pointed at even when the
//! original path is later replaced or deleted.

use std::collections::{BTreeMap, HashMap};

use crate::entries::{Change, EntryKind, LayerChanges, Meta};
use crate::{Digest, Error, Result};
use whittle_elf::ElfSummary;

/// Where a file's bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataRef {
    /// Index of the layer holding them.
    pub layer: usize,
    /// Offset in that layer's uncompressed tar.
    pub offset: u64,
    /// Length.
    pub size: u64,
}

/// One path of the flattened filesystem.
#[derive(Clone, Debug)]
pub struct Node {
    /// What it is (never [`EntryKind::Hardlink`]: links are resolved to their target's kind).
    pub kind: EntryKind,
    /// Metadata.
    pub meta: Meta,
    /// File data, for regular files.
    pub data: Option<DataRef>,
    /// Paths with the same inode are hard links of each other. 0 for directories.
    pub inode: u64,
    /// The layer that last wrote this path.
    pub layer: usize,
    /// True for a parent directory no layer listed (its metadata is made up).
    pub implicit: bool,
    /// ELF facts, when the layers were read with `peek_elf`.
    pub elf: Option<ElfSummary>,
}

impl Node {
    /// Bytes of file data.
    pub fn size(&self) -> u64 {
        self.data.map_or(0, |d| d.size)
    }
}

/// Per-layer counts, as `inspect` shows them.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LayerStats {
    /// Tar members, including whiteouts.
    pub entries: u64,
    /// Paths that did not exist below.
    pub added: u64,
    /// Paths that replaced one below.
    pub changed: u64,
    /// Paths deleted from below (whiteouts and opaque directories, counting everything under them).
    pub deleted: u64,
}

#[derive(Default, Clone, Copy)]
struct Copies {
    min: u64,
    total: u64,
}

/// Builds a [`FlatView`] one layer at a time.
#[derive(Default)]
pub struct Flattener {
    nodes: BTreeMap<String, Node>,
    next_inode: u64,
    copies: Option<HashMap<String, Copies>>,
    wasted: u64,
}

/// The result of flattening.
#[derive(Debug, Default)]
pub struct FlatView {
    /// Every path, sorted.
    pub nodes: BTreeMap<String, Node>,
    /// Bytes of file data overwritten or deleted by later layers.
    pub wasted_bytes: u64,
    /// Σ smallest copy of each path / Σ all copies (dive's efficiency score), when tracked.
    pub efficiency: Option<f64>,
}

impl Flattener {
    /// A flattener; `track_efficiency` keeps per-path copy sizes for the dive score.
    pub fn new(track_efficiency: bool) -> Self {
        Flattener {
            copies: track_efficiency.then(HashMap::new),
            next_inode: 1,
            ..Default::default()
        }
    }

    fn record_copy(&mut self, path: &str, size: u64) {
        if let Some(copies) = &mut self.copies {
            let c = copies.entry(path.to_string()).or_insert(Copies {
                min: size,
                total: 0,
            });
            c.min = c.min.min(size);
            c.total += size;
        }
    }

    /// Removes `path` and everything under it (or only what is under it), counting them.
    fn remove_tree(&mut self, path: &str, keep_root: bool) -> u64 {
        let prefix = if path.is_empty() {
            String::new()
        } else {
            format!("{path}/")
        };
        let mut doomed: Vec<String> = self
            .nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        if !keep_root && !path.is_empty() && self.nodes.contains_key(path) {
            doomed.push(path.to_string());
        }
        let count = doomed.len() as u64;
        for key in doomed {
            if let Some(node) = self.nodes.remove(&key) {
                if node.kind != EntryKind::Dir {
                    self.wasted += node.size();
                    self.record_copy(&key, 0);
                }
            }
        }
        count
    }

    /// Ensures every ancestor of `path` is a directory, creating implicit ones.
    fn make_parents(&mut self, path: &str, layer: usize, digest: &Digest) -> Result<()> {
        let mut end = 0;
        while let Some(pos) = path[end..].find('/') {
            let parent = &path[..end + pos];
            match self.nodes.get(parent) {
                Some(n) if n.kind == EntryKind::Dir => {}
                Some(n) => {
                    return Err(Error::BadEntry {
                        layer: digest.clone(),
                        path: path.to_string(),
                        reason: format!(
                            "it lies beneath {parent}, which is a {}, not a directory; whittle does not write through links",
                            n.kind.name()
                        ),
                    })
                }
                None => {
                    self.nodes.insert(
                        parent.to_string(),
                        Node {
                            kind: EntryKind::Dir,
                            meta: Meta {
                                mode: 0o755,
                                ..Default::default()
                            },
                            data: None,
                            inode: 0,
                            layer,
                            implicit: true,
                            elf: None,
                        },
                    );
                }
            }
            end += pos + 1;
        }
        Ok(())
    }

    /// Applies one layer's changes on top of what is there.
    pub fn apply(
        &mut self,
        layer: usize,
        digest: &Digest,
        changes: LayerChanges,
    ) -> Result<LayerStats> {
        let mut stats = LayerStats {
            entries: changes.members,
            ..Default::default()
        };
        // Whiteouts and opaque markers hide lower content only, so they go first.
        for change in &changes.changes {
            match change {
                Change::Opaque(dir) => stats.deleted += self.remove_tree(dir, true),
                Change::Whiteout(path) => stats.deleted += self.remove_tree(path, false),
                Change::Add(_) => {}
            }
        }
        for change in changes.changes {
            let Change::Add(entry) = change else { continue };
            self.make_parents(&entry.path, layer, digest)?;
            let (kind, meta, data, inode, elf) = match entry.kind {
                EntryKind::Hardlink(target) => {
                    let t = self.nodes.get(&target).ok_or_else(|| Error::BadEntry {
                        layer: digest.clone(),
                        path: entry.path.clone(),
                        reason: format!("it is a hard link to {target}, which is not in the image at this point"),
                    })?;
                    if t.kind == EntryKind::Dir {
                        return Err(Error::BadEntry {
                            layer: digest.clone(),
                            path: entry.path.clone(),
                            reason: format!("it is a hard link to the directory {target}"),
                        });
                    }
                    (
                        t.kind.clone(),
                        t.meta.clone(),
                        t.data,
                        t.inode,
                        t.elf.clone(),
                    )
                }
                EntryKind::Dir => (EntryKind::Dir, entry.meta, None, 0, None),
                kind => {
                    let data = (kind == EntryKind::File).then_some(DataRef {
                        layer,
                        offset: entry.offset,
                        size: entry.size,
                    });
                    self.next_inode += 1;
                    (kind, entry.meta, data, self.next_inode, entry.elf)
                }
            };
            let is_dir = kind == EntryKind::Dir;
            match self.nodes.get(&entry.path) {
                Some(old) => {
                    stats.changed += 1;
                    if old.kind == EntryKind::Dir && !is_dir {
                        self.remove_tree(&entry.path, true);
                    } else if old.kind != EntryKind::Dir {
                        self.wasted += old.size();
                    }
                }
                None => stats.added += 1,
            }
            if !is_dir {
                self.record_copy(&entry.path, entry.size);
            }
            self.nodes.insert(
                entry.path,
                Node {
                    kind,
                    meta,
                    data,
                    inode,
                    layer,
                    implicit: false,
                    elf,
                },
            );
        }
        Ok(stats)
    }

    /// The flattened filesystem.
    pub fn finish(self) -> FlatView {
        let efficiency = self.copies.map(|copies| {
            let (min, total) = copies
                .values()
                .fold((0u64, 0u64), |(m, t), c| (m + c.min, t + c.total));
            if total == 0 {
                1.0
            } else {
                min as f64 / total as f64
            }
        });
        FlatView {
            nodes: self.nodes,
            wasted_bytes: self.wasted,
            efficiency,
        }
    }
}

impl FlatView {
    /// Resolves `path` (absolute or root-relative) to a node key, following
    /// symlinks inside the image the way the kernel would in a chroot: `..`
    /// stops at the root and absolute targets start again from it.
    pub fn resolve(&self, path: &str) -> Option<&str> {
        let mut pending: Vec<String> = path.split('/').rev().map(String::from).collect();
        let mut current: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(part) = pending.pop() {
            match part.as_str() {
                "" | "." => continue,
                ".." => {
                    current.pop();
                    continue;
                }
                _ => {}
            }
            current.push(part);
            let key = current.join("/");
            let node = self.nodes.get(&key)?;
            match &node.kind {
                EntryKind::Symlink(target) => {
                    hops += 1;
                    if hops > 40 {
                        return None;
                    }
                    current.pop();
                    if target.starts_with('/') {
                        current.clear();
                    }
                    pending.extend(target.split('/').rev().map(String::from));
                }
                EntryKind::Dir => {}
                _ if pending.iter().any(|p| !p.is_empty() && p != ".") => return None,
                _ => {}
            }
        }
        let key = current.join("/");
        self.nodes.get_key_value(&key).map(|(k, _)| k.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entries::LayerEntry;

    fn add(path: &str, kind: EntryKind, size: u64) -> Change {
        Change::Add(LayerEntry {
            path: path.into(),
            kind,
            meta: Meta::default(),
            size,
            offset: 0,
            elf: None,
        })
    }

    fn layer(changes: Vec<Change>) -> LayerChanges {
        LayerChanges {
            members: changes.len() as u64,
            changes,
        }
    }

    fn d() -> Digest {
        Digest::of(b"layer")
    }

    #[test]
    fn whiteouts_opaque_dirs_and_links() {
        let mut f = Flattener::new(true);
        f.apply(
            0,
            &d(),
            layer(vec![
                add("etc", EntryKind::Dir, 0),
                add("etc/a", EntryKind::File, 10),
                add("etc/b", EntryKind::File, 20),
                add("bin/sh", EntryKind::File, 100),
                add("opt/x/y", EntryKind::File, 5),
            ]),
        )
        .unwrap();
        let stats = f
            .apply(
                1,
                &d(),
                layer(vec![
                    add("etc/a", EntryKind::File, 1),
                    Change::Whiteout("etc/b".into()),
                    Change::Opaque("opt".into()),
                    add("opt/new", EntryKind::File, 2),
                    add("usr/bin/sh", EntryKind::Hardlink("bin/sh".into()), 0),
                ]),
            )
            .unwrap();
        assert_eq!(
            stats,
            LayerStats {
                entries: 5,
                added: 2,
                changed: 1,
                deleted: 3
            }
        );
        let stats = f
            .apply(2, &d(), layer(vec![Change::Whiteout("bin/sh".into())]))
            .unwrap();
        assert_eq!(
            stats,
            LayerStats {
                entries: 1,
                added: 0,
                changed: 0,
                deleted: 1
            }
        );
        let v = f.finish();
        let keys: Vec<&str> = v.nodes.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "bin",
                "etc",
                "etc/a",
                "opt",
                "opt/new",
                "usr",
                "usr/bin",
                "usr/bin/sh"
            ]
        );
        // The link kept the deleted original's data.
        assert_eq!(v.nodes["usr/bin/sh"].size(), 100);
        assert!(v.nodes["usr"].implicit);
        // Overwritten etc/a (10) + deleted etc/b (20), bin/sh (100), opt/x/y (5).
        assert_eq!(v.wasted_bytes, 135);
        // min per path: etc/a 1, etc/b 0, bin/sh 0, opt/x/y 0, opt/new 2, usr/bin/sh 0.
        let e = v.efficiency.unwrap();
        assert!((e - 3.0 / 138.0).abs() < 1e-9, "{e}");
    }

    #[test]
    fn refuses_writing_through_a_symlink_and_dangling_hardlinks() {
        let mut f = Flattener::new(false);
        let err = f
            .apply(
                0,
                &d(),
                layer(vec![
                    add("evil", EntryKind::Symlink("/etc".into()), 0),
                    add("evil/passwd", EntryKind::File, 1),
                ]),
            )
            .unwrap_err();
        assert!(
            err.to_string().contains("beneath evil, which is a symlink"),
            "{err}"
        );
        let mut f = Flattener::new(false);
        let err = f
            .apply(
                0,
                &d(),
                layer(vec![add("x", EntryKind::Hardlink("nowhere".into()), 0)]),
            )
            .unwrap_err();
        assert!(err.to_string().contains("not in the image"), "{err}");
    }

    #[test]
    fn resolves_symlinks_inside_the_root() {
        let mut f = Flattener::new(false);
        f.apply(
            0,
            &d(),
            layer(vec![
                add("lib", EntryKind::Symlink("usr/lib".into()), 0),
                add("lib64", EntryKind::Symlink("/usr/lib64".into()), 0),
                add("usr/lib/ld.so", EntryKind::File, 1),
                add(
                    "usr/lib64/ld-linux.so",
                    EntryKind::Symlink("../lib/ld.so".into()),
                    0,
                ),
                add("loop", EntryKind::Symlink("loop".into()), 0),
                add("up", EntryKind::Symlink("../../../usr".into()), 0),
            ]),
        )
        .unwrap();
        let v = f.finish();
        assert_eq!(v.resolve("/lib/ld.so"), Some("usr/lib/ld.so"));
        assert_eq!(v.resolve("/lib64/ld-linux.so"), Some("usr/lib/ld.so"));
        assert_eq!(v.resolve("/up/lib/ld.so"), Some("usr/lib/ld.so"));
        assert_eq!(v.resolve("/loop"), None);
        assert_eq!(v.resolve("/lib/missing.so"), None);
        assert_eq!(v.resolve("/usr/lib/ld.so/x"), None);
    }
}
