//! `whittle trim`: drop what a running program never reads (documentation, man and info
//! pages, locales the image's environment does not name, package-manager caches, logs),
//! keep everything else as it was.
//!
//! For images no probe can exercise (toolboxes, CI runners, many entry points), the
//! keep-set of `slim` is the wrong tool: nobody knows what they run. What they certainly do
//! not run is their documentation. Trimming is therefore a drop-set over named categories,
//! with two guards: the entrypoint's static closure is never dropped, and the package
//! database loses exactly the paths that were dropped (dpkg's file lists and md5sums, so
//! `dpkg -L` and `dpkg --verify` agree with the files; apk's `installed`). Package stanzas
//! stay: the packages are still installed, only their documentation is gone.
//!
//! Decisions, and why:
//! - `/usr/share/doc/PKG/copyright` (and a `/usr/share/doc/PKG` symlink to another
//!   package's directory, which is how a package shares a copyright file) is its own
//!   category, `copyright`, not dropped unless asked for: Debian ships the license of
//!   every binary package there, and SBOM tools (syft) read licenses from it. It costs
//!   little next to the rest of the documentation.
//! - Directories of `cache` and `logs` stay (programs write there and often cannot create
//!   them); directories of the other categories go when nothing below them stays.
//! - Empty log files stay: they save nothing, and their owner and mode let a non-root
//!   program append to a file it could not create.
//! - `/usr/lib/locale/C.*` always stays, `locale-archive` only when the environment names
//!   a locale other than C/POSIX.

mod category;
mod pkgdb;
mod select;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use serde::Serialize;
use whittle_image::entries::EntryKind;
use whittle_image::flatten::{FlatView, Node};
use whittle_image::mutate::Flat;

pub use category::{classify, parse_categories, Category, Locales, TrimError};
pub use pkgdb::{filter_apk_installed, filter_dpkg_list, filter_dpkg_md5sums};
pub use select::{select, ClosureKept, Selection};

use crate::image_root::{absolute, key, ImageRoot};
use crate::planner::{Planner, RunConfig};
use crate::report::Totals;
use crate::SlimError;

/// What `trim` did, for the summary and `--report`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TrimReport {
    /// The source reference (set by the caller).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The categories dropped.
    pub dropped: Vec<Category>,
    /// The input's filesystem.
    pub before: Totals,
    /// The output's filesystem.
    pub after: Totals,
    /// Files and bytes dropped per category.
    pub saved: BTreeMap<Category, Totals>,
    /// Paths kept against their category because the entrypoint needs them.
    pub kept_for_closure: Vec<ClosureKept>,
    /// Package-database files rewritten without the dropped paths.
    pub pkgdb_rewritten: Vec<String>,
    /// Things worth a look (an entrypoint that could not be analysed).
    pub warnings: Vec<String>,
}

/// The trimmed filesystem: what to write, and the explanation.
pub struct Trimmed {
    /// What stays.
    pub view: FlatView,
    /// Contents of files rewritten (dpkg lists and md5sums; and what the caller passed in).
    pub generated: BTreeMap<String, Vec<u8>>,
    /// What was dropped and kept.
    pub report: TrimReport,
}

/// Largest package-database file rewritten; larger ones are left as they are.
const MAX_DB_FILE: u64 = 64 << 20;

/// Trims `view` (all or part of `flat`'s filesystem; `generated` holds files the caller
/// already rewrote) for the program `config` runs: `drop`'s categories go, except the
/// entrypoint's static closure.
pub fn plan(
    flat: &Flat,
    view: &FlatView,
    generated: &BTreeMap<String, Vec<u8>>,
    config: RunConfig,
    drop: &BTreeSet<Category>,
) -> Trimmed {
    let locales = Locales::from_env(&config.env);
    let mut warnings = Vec::new();
    let root = ImageRoot::new(flat);
    let mut planner = Planner::new(&root, config);
    match planner.entrypoint() {
        Ok(_) => planner.implicit(),
        Err(SlimError::NoEntrypoint) => {
            warnings.push("the image has no entrypoint and no cmd: no closure to protect".into())
        }
        Err(e) => warnings.push(format!("{e}: its closure is not protected")),
    }
    let keep = std::mem::take(&mut planner.keep);
    let protected: BTreeMap<String, Vec<String>> = keep
        .iter()
        .map(|(p, _)| (p.clone(), keep.chain(p)))
        .collect();
    let selection = select(view, drop, &locales, &protected);
    let mut out_view = selection.view;
    let mut out_generated: BTreeMap<String, Vec<u8>> = generated
        .iter()
        .filter(|(k, _)| out_view.nodes.contains_key(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut rewritten = Vec::new();
    if !selection.dropped.is_empty() {
        let dropped = |p: &str| selection.dropped.contains(p);
        let info = format!("{}/", key(crate::pkgdb::DPKG_INFO_DIR));
        let db_files: Vec<String> = out_view
            .nodes
            .range(info.clone()..)
            .take_while(|(k, _)| k.starts_with(&info))
            .filter(|(k, n)| {
                n.kind == EntryKind::File && (k.ends_with(".list") || k.ends_with(".md5sums"))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in db_files {
            let Some(text) = db_text(flat, &out_view, &out_generated, &k) else {
                continue;
            };
            let filtered = if k.ends_with(".list") {
                filter_dpkg_list(&text, dropped)
            } else {
                filter_dpkg_md5sums(&text, dropped)
            };
            if let Some(new) = filtered {
                replace_db_file(&mut out_view, &mut out_generated, &k, new);
                rewritten.push(absolute(&k));
            }
        }
        let k = key(crate::pkgdb::APK_INSTALLED).to_string();
        let filtered = db_text(flat, &out_view, &out_generated, &k)
            .and_then(|t| filter_apk_installed(&t, dropped));
        if let Some(new) = filtered {
            replace_db_file(&mut out_view, &mut out_generated, &k, new);
            rewritten.push(absolute(&k));
        }
    }
    let measure = |v: &FlatView, g: &BTreeMap<String, Vec<u8>>| {
        let mut t = crate::totals(v.nodes.values());
        t.bytes += g
            .iter()
            .filter(|(k, _)| v.nodes.contains_key(*k))
            .map(|(_, b)| b.len() as u64)
            .sum::<u64>();
        t
    };
    let report = TrimReport {
        source: None,
        dropped: drop.iter().copied().collect(),
        before: measure(view, generated),
        after: measure(&out_view, &out_generated),
        saved: selection.saved,
        kept_for_closure: selection.kept_for_closure,
        pkgdb_rewritten: rewritten,
        warnings,
    };
    Trimmed {
        view: out_view,
        generated: out_generated,
        report,
    }
}

/// The current text of the database file `k`: as already rewritten, else as the image
/// has it (`None` when it is missing, not a regular file, large or unreadable).
fn db_text(
    flat: &Flat,
    view: &FlatView,
    generated: &BTreeMap<String, Vec<u8>>,
    k: &str,
) -> Option<String> {
    match (generated.get(k), view.nodes.get(k)) {
        (Some(bytes), _) => Some(String::from_utf8_lossy(bytes).into_owned()),
        (None, Some(node)) if node.kind == EntryKind::File => read_node(flat, node),
        _ => None,
    }
}

/// Makes `k` a generated file holding `text` (its node keeps the metadata, loses the
/// image's data and any hard-link group).
fn replace_db_file(
    view: &mut FlatView,
    generated: &mut BTreeMap<String, Vec<u8>>,
    k: &str,
    text: String,
) {
    if let Some(node) = view.nodes.get_mut(k) {
        node.data = None;
        node.inode = 0;
    }
    generated.insert(k.to_string(), text.into_bytes());
}

/// A small text file's contents (`None` for a large or unreadable one: left as it is).
fn read_node(flat: &Flat, node: &Node) -> Option<String> {
    let data = node.data?;
    if data.size > MAX_DB_FILE {
        return None;
    }
    let mut bytes = Vec::with_capacity(data.size as usize);
    flat.reader(data).ok()?.read_to_end(&mut bytes).ok()?;
    String::from_utf8(bytes).ok()
}

/// A regular file of `size` bytes, for the unit tests of this module's parts.
#[cfg(test)]
pub(crate) fn test_file(size: u64) -> Node {
    test_node(EntryKind::File, size, 0)
}

/// A directory, for the unit tests of this module's parts.
#[cfg(test)]
pub(crate) fn test_dir() -> Node {
    test_node(EntryKind::Dir, 0, 0)
}

/// A node for the unit tests of this module's parts.
#[cfg(test)]
pub(crate) fn test_node(kind: EntryKind, size: u64, inode: u64) -> Node {
    use whittle_image::entries::Meta;
    use whittle_image::flatten::DataRef;
    Node {
        kind,
        meta: Meta {
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 7,
            xattrs: Vec::new(),
        },
        data: (size > 0).then_some(DataRef {
            layer: 0,
            offset: 0,
            size,
        }),
        inode,
        layer: 0,
        implicit: false,
        elf: None,
    }
}
