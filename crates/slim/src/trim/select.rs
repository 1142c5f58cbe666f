//! Which paths of a view go: the categories dropped, minus the entrypoint's closure and
//! the directories above what stays; and what that saves.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::Serialize;
use whittle_image::entries::EntryKind;
use whittle_image::flatten::FlatView;

use super::category::{classify, Category, Locales};
use crate::image_root::absolute;
use crate::report::Totals;

/// A path in a dropped category that stayed because the entrypoint needs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClosureKept {
    /// The absolute path.
    pub path: String,
    /// Its category.
    pub category: Category,
    /// Why the entrypoint needs it: the path, its reason, the reason of what needed it...
    pub chain: Vec<String>,
}

/// Which paths of a view go, and what that saves.
#[derive(Debug, Default)]
pub struct Selection {
    /// What stays.
    pub view: FlatView,
    /// The absolute paths dropped.
    pub dropped: BTreeSet<String>,
    /// Files and bytes dropped, per category (a hard-linked file's bytes count only when
    /// no link to it stays).
    pub saved: BTreeMap<Category, Totals>,
    /// Paths kept against their category for the entrypoint.
    pub kept_for_closure: Vec<ClosureKept>,
}

/// Drops from `view` the paths in the `drop` categories, except those in `protected`
/// (absolute path -> reason chain) and directories above anything that stays.
pub fn select(
    view: &FlatView,
    drop: &BTreeSet<Category>,
    locales: &Locales,
    protected: &BTreeMap<String, Vec<String>>,
) -> Selection {
    let mut out = Selection::default();
    let mut candidates: BTreeMap<&str, Category> = BTreeMap::new();
    for (k, node) in &view.nodes {
        let path = absolute(k);
        let Some(c) = classify(&path, node, locales).filter(|c| drop.contains(c)) else {
            continue;
        };
        match protected.get(&path) {
            Some(chain) => out.kept_for_closure.push(ClosureKept {
                path,
                category: c,
                chain: chain.clone(),
            }),
            None => {
                candidates.insert(k.as_str(), c);
            }
        }
    }
    // A directory stays while anything below it stays.
    for k in view.nodes.keys() {
        if candidates.contains_key(k.as_str()) {
            continue;
        }
        let mut at = k.as_str();
        while let Some((parent, _)) = at.rsplit_once('/') {
            candidates.remove(parent);
            at = parent;
        }
    }
    let kept_inodes: HashSet<u64> = view
        .nodes
        .iter()
        .filter(|(k, n)| n.inode != 0 && !candidates.contains_key(k.as_str()))
        .map(|(_, n)| n.inode)
        .collect();
    let mut counted = HashSet::new();
    for (k, node) in &view.nodes {
        let Some(&c) = candidates.get(k.as_str()) else {
            out.view.nodes.insert(k.clone(), node.clone());
            continue;
        };
        out.dropped.insert(absolute(k));
        if node.kind == EntryKind::Dir {
            continue;
        }
        let saved = out.saved.entry(c).or_default();
        saved.files += 1;
        let unique =
            node.inode == 0 || (!kept_inodes.contains(&node.inode) && counted.insert(node.inode));
        if unique {
            saved.bytes += node.size();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trim::{test_dir as dir, test_file as file, test_node as node};
    use whittle_image::flatten::Node;

    fn view(entries: &[(&str, Node)]) -> FlatView {
        let mut v = FlatView::default();
        for (k, n) in entries {
            v.nodes.insert(k.to_string(), n.clone());
        }
        v
    }

    #[test]
    fn closure_paths_stay_with_their_directories() {
        let v = view(&[
            ("usr", dir()),
            ("usr/share", dir()),
            ("usr/share/doc", dir()),
            ("usr/share/doc/tool", dir()),
            ("usr/share/doc/tool/run", file(1000)),
            ("usr/share/doc/tool/README", file(50)),
            ("usr/share/doc/gzip", dir()),
            ("usr/share/doc/gzip/NEWS.gz", file(300)),
            ("usr/share/doc/gzip/copyright", file(20)),
            ("usr/share/doc/zlib", dir()),
            ("usr/share/doc/zlib/README", file(70)),
        ]);
        let protected: BTreeMap<String, Vec<String>> = [(
            "/usr/share/doc/tool/run".to_string(),
            vec!["/usr/share/doc/tool/run".into(), "the entrypoint".into()],
        )]
        .into();
        let drop: BTreeSet<Category> = Category::DEFAULT.into_iter().collect();
        let s = select(&v, &drop, &Locales::default(), &protected);
        let kept: Vec<&str> = s.view.nodes.keys().map(String::as_str).collect();
        assert_eq!(
            kept,
            [
                "usr",
                "usr/share",
                "usr/share/doc",
                "usr/share/doc/gzip",
                "usr/share/doc/gzip/copyright",
                "usr/share/doc/tool",
                "usr/share/doc/tool/run",
            ]
        );
        assert_eq!(s.kept_for_closure.len(), 1);
        assert_eq!(s.kept_for_closure[0].path, "/usr/share/doc/tool/run");
        assert_eq!(s.kept_for_closure[0].category, Category::Docs);
        assert_eq!(
            s.saved[&Category::Docs],
            Totals {
                files: 3,
                bytes: 420
            }
        );
        assert!(s.dropped.contains("/usr/share/doc/zlib"));
        // With copyright dropped too, gzip's directory goes.
        let mut all = drop.clone();
        all.insert(Category::Copyright);
        let s = select(&v, &all, &Locales::default(), &protected);
        assert!(!s.view.nodes.contains_key("usr/share/doc/gzip"));
        assert_eq!(s.saved[&Category::Copyright].bytes, 20);
    }

    #[test]
    fn hard_linked_bytes_count_only_when_no_link_stays() {
        let v = view(&[
            ("usr/bin/tool", node(EntryKind::File, 500, 1)),
            ("usr/share/doc/tool/copy", node(EntryKind::File, 500, 1)),
            ("usr/share/doc/a", node(EntryKind::File, 40, 2)),
            ("usr/share/doc/b", node(EntryKind::File, 40, 2)),
        ]);
        let drop: BTreeSet<Category> = [Category::Docs].into();
        let s = select(&v, &drop, &Locales::default(), &BTreeMap::new());
        assert_eq!(
            s.saved[&Category::Docs],
            Totals {
                files: 3,
                bytes: 40
            }
        );
    }
}
