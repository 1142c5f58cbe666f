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

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::io::Read;

use serde::Serialize;
use whittle_image::entries::EntryKind;
use whittle_image::flatten::{FlatView, Node};
use whittle_image::mutate::Flat;

use crate::image_root::{absolute, key, ImageRoot};
use crate::planner::{Planner, RunConfig};
use crate::report::Totals;
use crate::SlimError;

/// A kind of file a running program does not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// `/usr/share/doc`, except the copyright files.
    Docs,
    /// `/usr/share/doc/PKG/copyright`: license notices (not dropped by default).
    Copyright,
    /// `/usr/share/man` and `/usr/share/info`.
    Man,
    /// Message catalogs and compiled locales the image's environment does not name.
    Locale,
    /// Package-manager caches and lists (apt, debconf's `-old` files, apk).
    Cache,
    /// Non-empty files under `/var/log`.
    Logs,
}

impl Category {
    /// Every category, in the order reports list them.
    pub const ALL: [Category; 6] = [
        Category::Docs,
        Category::Copyright,
        Category::Man,
        Category::Locale,
        Category::Cache,
        Category::Logs,
    ];

    /// What `--drop` drops when not given: all but `copyright`.
    pub const DEFAULT: [Category; 5] = [
        Category::Docs,
        Category::Man,
        Category::Locale,
        Category::Cache,
        Category::Logs,
    ];

    /// The name `--drop` takes.
    pub fn name(self) -> &'static str {
        match self {
            Category::Docs => "docs",
            Category::Copyright => "copyright",
            Category::Man => "man",
            Category::Locale => "locale",
            Category::Cache => "cache",
            Category::Logs => "logs",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a category list could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TrimError {
    /// A name that is no category.
    #[error("unknown category {name:?}: the categories are {valid}")]
    UnknownCategory {
        /// The name given.
        name: String,
        /// The valid names, comma-separated.
        valid: String,
    },
    /// An empty list.
    #[error("no category given: name one or more of {valid}")]
    NoCategory {
        /// The valid names, comma-separated.
        valid: String,
    },
}

fn valid_names() -> String {
    Category::ALL.map(Category::name).join(", ")
}

/// Parses `docs,man,...` (names separated by commas, spaces ignored).
pub fn parse_categories(list: &str) -> Result<BTreeSet<Category>, TrimError> {
    let mut out = BTreeSet::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let c = Category::ALL
            .into_iter()
            .find(|c| c.name() == name)
            .ok_or_else(|| TrimError::UnknownCategory {
                name: name.to_string(),
                valid: valid_names(),
            })?;
        out.insert(c);
    }
    if out.is_empty() {
        return Err(TrimError::NoCategory {
            valid: valid_names(),
        });
    }
    Ok(out)
}

/// The locales the image's environment names (`LANG`, `LANGUAGE`, `LC_*`), as the names
/// gettext looks catalogs up by: `de_DE.UTF-8@euro` wants `de_DE@euro`, `de_DE`, `de@euro`, `de`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Locales {
    names: BTreeSet<String>,
}

impl Locales {
    /// From `KEY=VALUE` environment entries.
    pub fn from_env(env: &[String]) -> Locales {
        let mut names = BTreeSet::new();
        for entry in env {
            let Some((k, v)) = entry.split_once('=') else {
                continue;
            };
            if !(k == "LANG" || k == "LANGUAGE" || k.starts_with("LC_")) {
                continue;
            }
            // LANGUAGE is a priority list; the others hold one locale.
            for value in v.split(':') {
                names.extend(lookup_names(value));
            }
        }
        Locales { names }
    }

    /// Whether a `/usr/share/locale/DIR` catalog directory is wanted.
    fn wants_catalog(&self, dir: &str) -> bool {
        self.names.contains(&strip_codeset(dir))
    }

    /// Whether a `/usr/lib/locale/DIR` compiled locale is wanted (C and POSIX always are).
    fn wants_compiled(&self, dir: &str) -> bool {
        is_c_locale(dir) || self.names.contains(&strip_codeset(dir))
    }

    /// Whether any locale other than C/POSIX is named (then `locale-archive` stays).
    fn any(&self) -> bool {
        !self.names.is_empty()
    }
}

fn is_c_locale(name: &str) -> bool {
    name == "C" || name == "POSIX" || name.starts_with("C.") || name.starts_with("C@")
}

/// `de_DE.UTF-8@euro` -> `de_DE@euro`.
fn strip_codeset(name: &str) -> String {
    let (main, modifier) = match name.split_once('@') {
        Some((m, r)) => (m, Some(r)),
        None => (name, None),
    };
    let main = main.split('.').next().unwrap_or(main);
    match modifier {
        Some(m) => format!("{main}@{m}"),
        None => main.to_string(),
    }
}

/// The names gettext tries for a locale value, most specific first.
fn lookup_names(value: &str) -> Vec<String> {
    let value = value.trim();
    if value.is_empty() || is_c_locale(value) || value.contains('/') {
        return Vec::new();
    }
    let (main, modifier) = match value.split_once('@') {
        Some((m, r)) => (m, Some(r)),
        None => (value, None),
    };
    let lang_territory = main.split('.').next().unwrap_or(main);
    let lang = lang_territory.split('_').next().unwrap_or(lang_territory);
    let mut out = Vec::new();
    for base in [lang_territory, lang] {
        if base.is_empty() {
            continue;
        }
        if let Some(m) = modifier {
            out.push(format!("{base}@{m}"));
        }
        out.push(base.to_string());
    }
    out.dedup();
    out
}

/// `path` strictly below `dir`, as the rest after `dir/`.
fn below<'p>(path: &'p str, dir: &str) -> Option<&'p str> {
    path.strip_prefix(dir)?
        .strip_prefix('/')
        .filter(|r| !r.is_empty())
}

/// The category of an absolute path, if it is in one (whatever is dropped).
pub fn classify(path: &str, node: &Node, locales: &Locales) -> Option<Category> {
    let is_dir = node.kind == EntryKind::Dir;
    if let Some(rest) = below(path, "/usr/share/doc") {
        let parts: Vec<&str> = rest.split('/').collect();
        let shared_dir = parts.len() == 1 && matches!(node.kind, EntryKind::Symlink(_));
        return Some(match parts.as_slice() {
            [_, "copyright"] => Category::Copyright,
            _ if shared_dir => Category::Copyright,
            _ => Category::Docs,
        });
    }
    if below(path, "/usr/share/man").is_some() || below(path, "/usr/share/info").is_some() {
        return Some(Category::Man);
    }
    if let Some(rest) = below(path, "/usr/share/locale") {
        let (first, deeper) = match rest.split_once('/') {
            Some((f, _)) => (f, true),
            None => (rest, false),
        };
        // Files beside the language directories (locale.alias) are not catalogs.
        let is_lang_dir = deeper || is_dir;
        return (is_lang_dir && !locales.wants_catalog(first)).then_some(Category::Locale);
    }
    if let Some(rest) = below(path, "/usr/lib/locale") {
        let first = rest.split('/').next().unwrap_or(rest);
        let wanted = if first == "locale-archive" {
            locales.any()
        } else {
            locales.wants_compiled(first)
        };
        return (!wanted).then_some(Category::Locale);
    }
    if !is_dir {
        let in_cache = ["/var/cache/apt", "/var/lib/apt/lists", "/var/cache/apk"]
            .iter()
            .any(|d| below(path, d).is_some());
        let debconf_old = below(path, "/var/cache/debconf")
            .is_some_and(|r| !r.contains('/') && r.ends_with("-old"));
        if in_cache || debconf_old {
            return Some(Category::Cache);
        }
        if below(path, "/var/log").is_some() && node.kind == EntryKind::File && node.size() > 0 {
            return Some(Category::Logs);
        }
    }
    None
}

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

/// dpkg's `info/PKG.list` without the lines naming a dropped path; `None` when none does.
pub fn filter_dpkg_list(text: &str, dropped: impl Fn(&str) -> bool) -> Option<String> {
    filter_lines(text, |line| {
        let rel = line.trim_start_matches('/').trim_end_matches('/');
        let rel = if rel == "." { "" } else { rel };
        dropped(&absolute(rel))
    })
}

/// dpkg's `info/PKG.md5sums` (`HASH  relative/path`) without the lines of dropped paths;
/// `None` when none is.
pub fn filter_dpkg_md5sums(text: &str, dropped: impl Fn(&str) -> bool) -> Option<String> {
    filter_lines(text, |line| {
        line.split_once("  ")
            .is_some_and(|(_, rel)| dropped(&absolute(rel.trim_start_matches('/'))))
    })
}

/// apk's `installed` without the `F:` directories and `R:` files that were dropped, nor
/// the attribute lines that follow them (`M:` of a directory, `a:` and `Z:` of a file);
/// `None` when nothing was. Other lines stay byte for byte.
pub fn filter_apk_installed(text: &str, dropped: impl Fn(&str) -> bool) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut removed = false;
    let mut dir = String::from("/");
    // Whether the attribute lines that follow belong to a dropped entry.
    let mut skipping = false;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches('\n').trim_end_matches('\r');
        let drop_line = match bare.split_once(':') {
            Some(("F", value)) => {
                dir = absolute(value.trim_start_matches('/').trim_end_matches('/'));
                skipping = dropped(&dir);
                skipping
            }
            Some(("R", name)) if !name.is_empty() => {
                let sep = if dir.ends_with('/') { "" } else { "/" };
                skipping = dropped(&format!("{dir}{sep}{name}"));
                skipping
            }
            Some(("M" | "a" | "Z", _)) => skipping,
            _ => {
                // A new package (or any other field) ends the entry and resets the directory.
                if bare.is_empty() {
                    dir = String::from("/");
                }
                skipping = false;
                false
            }
        };
        if drop_line {
            removed = true;
        } else {
            out.push_str(line);
        }
    }
    removed.then_some(out)
}

/// `text` without the lines `drop_line` is true for, other lines byte for byte.
fn filter_lines(text: &str, drop_line: impl Fn(&str) -> bool) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut removed = false;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches('\n').trim_end_matches('\r');
        if !bare.is_empty() && drop_line(bare) {
            removed = true;
        } else {
            out.push_str(line);
        }
    }
    removed.then_some(out)
}

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
            let text = match out_generated.get(&k) {
                Some(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                None => match read_node(flat, &out_view.nodes[&k]) {
                    Some(text) => text,
                    None => continue,
                },
            };
            let filtered = if k.ends_with(".list") {
                filter_dpkg_list(&text, dropped)
            } else {
                filter_dpkg_md5sums(&text, dropped)
            };
            if let Some(new) = filtered {
                if let Some(node) = out_view.nodes.get_mut(&k) {
                    node.data = None;
                    node.inode = 0;
                }
                out_generated.insert(k.clone(), new.into_bytes());
                rewritten.push(absolute(&k));
            }
        }
    }
    if !selection.dropped.is_empty() {
        let k = key(crate::pkgdb::APK_INSTALLED).to_string();
        let text = match (out_generated.get(&k), out_view.nodes.get(&k)) {
            (Some(bytes), _) => Some(String::from_utf8_lossy(bytes).into_owned()),
            (None, Some(node)) if node.kind == EntryKind::File => read_node(flat, node),
            _ => None,
        };
        let filtered =
            text.and_then(|t| filter_apk_installed(&t, |p: &str| selection.dropped.contains(p)));
        if let Some(new) = filtered {
            if let Some(node) = out_view.nodes.get_mut(&k) {
                node.data = None;
                node.inode = 0;
            }
            out_generated.insert(k.clone(), new.into_bytes());
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

#[cfg(test)]
mod tests {
    use super::*;
    use whittle_image::entries::Meta;
    use whittle_image::flatten::DataRef;

    fn node(kind: EntryKind, size: u64, inode: u64) -> Node {
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

    fn file(size: u64) -> Node {
        node(EntryKind::File, size, 0)
    }

    fn dir() -> Node {
        node(EntryKind::Dir, 0, 0)
    }

    fn env(vars: &[&str]) -> Locales {
        Locales::from_env(&vars.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    fn class(path: &str, n: &Node, l: &Locales) -> Option<Category> {
        classify(path, n, l)
    }

    #[test]
    fn parses_categories_and_names_the_valid_ones() {
        let all = parse_categories("docs, man,locale,cache,logs").unwrap();
        assert_eq!(all, Category::DEFAULT.into_iter().collect());
        let err = parse_categories("docs,manuals").unwrap_err().to_string();
        assert!(err.contains("\"manuals\""), "{err}");
        assert!(
            err.contains("docs, copyright, man, locale, cache, logs"),
            "{err}"
        );
        assert!(parse_categories(" , ").is_err());
    }

    #[test]
    fn locale_names_follow_gettext_lookup() {
        assert_eq!(lookup_names("de_DE.UTF-8"), ["de_DE", "de"]);
        assert_eq!(
            lookup_names("sr_RS.UTF-8@latin"),
            ["sr_RS@latin", "sr_RS", "sr@latin", "sr"]
        );
        assert!(lookup_names("C.UTF-8").is_empty());
        assert!(lookup_names("POSIX").is_empty());
        let l = env(&["PATH=/bin", "LANG=de_DE.UTF-8", "LANGUAGE=fr:pt_BR"]);
        for yes in ["de", "de_DE", "fr", "pt_BR", "pt"] {
            assert!(l.wants_catalog(yes), "{yes}");
        }
        for no in ["de_CH", "en", "es", "fr_CA"] {
            assert!(!l.wants_catalog(no), "{no}");
        }
        assert!(l.wants_compiled("de_DE.utf8"));
        assert!(l.wants_compiled("C.utf8") && l.wants_compiled("C.UTF-8"));
        assert!(!l.wants_compiled("en_US.utf8"));
    }

    #[test]
    fn classifies_locales_against_the_environment() {
        let none = env(&[]);
        let de = env(&["LC_ALL=de_DE.UTF-8"]);
        let f = file(10);
        let d = dir();
        let p = "/usr/share/locale/de/LC_MESSAGES/dpkg.mo";
        assert_eq!(class(p, &f, &none), Some(Category::Locale));
        assert_eq!(class(p, &f, &de), None);
        assert_eq!(
            class("/usr/share/locale/de", &d, &none),
            Some(Category::Locale)
        );
        // Files beside the language directories, and the root, are not catalogs.
        assert_eq!(class("/usr/share/locale/locale.alias", &f, &none), None);
        assert_eq!(class("/usr/share/locale", &d, &none), None);
        assert_eq!(class("/usr/lib/locale/C.utf8/LC_CTYPE", &f, &none), None);
        assert_eq!(
            class("/usr/lib/locale/de_DE.utf8/LC_CTYPE", &f, &none),
            Some(Category::Locale)
        );
        assert_eq!(class("/usr/lib/locale/de_DE.utf8/LC_CTYPE", &f, &de), None);
        assert_eq!(
            class("/usr/lib/locale/locale-archive", &f, &none),
            Some(Category::Locale)
        );
        assert_eq!(class("/usr/lib/locale/locale-archive", &f, &de), None);
    }

    #[test]
    fn copyright_files_are_their_own_category() {
        let l = Locales::default();
        let f = file(100);
        assert_eq!(
            class("/usr/share/doc/gzip/copyright", &f, &l),
            Some(Category::Copyright)
        );
        assert_eq!(
            class("/usr/share/doc/gzip/changelog.gz", &f, &l),
            Some(Category::Docs)
        );
        // A copyright deeper down is just a document.
        assert_eq!(
            class("/usr/share/doc/gzip/examples/copyright", &f, &l),
            Some(Category::Docs)
        );
        let link = node(EntryKind::Symlink("gcc-12-base".into()), 0, 0);
        assert_eq!(
            class("/usr/share/doc/libgcc-s1", &link, &l),
            Some(Category::Copyright)
        );
        assert_eq!(class("/usr/share/doc", &dir(), &l), None);
    }

    #[test]
    fn caches_and_logs_keep_their_directories_and_empty_logs() {
        let l = Locales::default();
        assert_eq!(
            class("/var/lib/apt/lists/deb.debian.org_Packages", &file(9), &l),
            Some(Category::Cache)
        );
        assert_eq!(class("/var/lib/apt/lists/partial", &dir(), &l), None);
        assert_eq!(
            class("/var/cache/debconf/templates.dat-old", &file(9), &l),
            Some(Category::Cache)
        );
        assert_eq!(
            class("/var/cache/debconf/templates.dat", &file(9), &l),
            None
        );
        assert_eq!(
            class("/var/log/dpkg.log", &file(9), &l),
            Some(Category::Logs)
        );
        assert_eq!(class("/var/log/nginx/error.log", &file(0), &l), None);
        assert_eq!(class("/var/log/nginx", &dir(), &l), None);
        assert_eq!(
            class("/usr/share/man/man1/ls.1.gz", &file(9), &l),
            Some(Category::Man)
        );
        assert_eq!(
            class("/usr/share/info/dir", &file(9), &l),
            Some(Category::Man)
        );
        assert_eq!(class("/usr/share/zoneinfo/UTC", &file(9), &l), None);
    }

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

    #[test]
    fn dpkg_files_lose_exactly_the_dropped_lines() {
        let dropped = |p: &str| {
            p.starts_with("/usr/share/doc/gzip/") && !p.ends_with("copyright")
                || p == "/usr/share/doc/gzip"
        };
        let list = "/.\n/usr\n/usr/share/doc\n/usr/share/doc/gzip\n/usr/share/doc/gzip/NEWS.gz\n/usr/share/doc/gzip/copyright\n/usr/bin/gzip\n";
        assert_eq!(
            filter_dpkg_list(list, dropped).unwrap(),
            "/.\n/usr\n/usr/share/doc\n/usr/share/doc/gzip/copyright\n/usr/bin/gzip\n"
        );
        let sums = "0123  usr/bin/gzip\nabcd  usr/share/doc/gzip/NEWS.gz\n";
        assert_eq!(
            filter_dpkg_md5sums(sums, dropped).unwrap(),
            "0123  usr/bin/gzip\n"
        );
        assert_eq!(filter_dpkg_md5sums("0123  usr/bin/gzip", dropped), None);
    }

    #[test]
    fn apk_database_loses_dropped_entries_and_their_attributes() {
        let db = "C:Q1abc=\nP:busybox\nV:1.36\nF:bin\nR:busybox\na:0:0:755\nZ:Q1x=\n\
                  F:usr/share/man\nM:0:0:755\nF:usr/share/man/man1\nR:busybox.1.gz\nZ:Q1y=\n\
                  \nC:Q1def=\nP:zlib\nR:copyright\nZ:Q1z=\n";
        let dropped = |p: &str| p.starts_with("/usr/share/man/") || p == "/copyright";
        assert_eq!(
            filter_apk_installed(db, dropped).unwrap(),
            "C:Q1abc=\nP:busybox\nV:1.36\nF:bin\nR:busybox\na:0:0:755\nZ:Q1x=\n\
             F:usr/share/man\nM:0:0:755\n\nC:Q1def=\nP:zlib\n"
        );
        assert_eq!(filter_apk_installed(db, |_: &str| false), None);
    }
}
