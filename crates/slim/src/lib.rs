//! The keep-set: which files of an image its program needs at run time, and why.
//!
//! Static analysis of the image alone: the entrypoint resolved through the
//! image's `PATH`, `#!` interpreters, the ELF closure resolved inside the image
//! root (see `whittle-elf`), the files no linker shows, and what the user
//! includes. Every kept path carries a [`Reason`] pointing at the path that
//! needed it, so every decision can be explained.
//!
//! [`trim`] works the other way round, for images whose program nobody can exercise: a
//! drop-set of categories no program reads (documentation, locales, caches), guarded by the
//! same closure.
#![deny(missing_docs)]

mod dpkg;
mod image_root;
pub mod layering;
pub mod pkgdb;
mod planner;
pub mod reason;
pub mod report;
pub mod trim;

use std::collections::BTreeMap;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use whittle_image::entries::{EntryKind, Meta};
use whittle_image::flatten::{FlatView, Node};
use whittle_image::mutate::Flat;

pub use image_root::ImageRoot;
pub use planner::{RunConfig, DEFAULT_PATH};
pub use reason::{Finder, KeepSet, Reason};
pub use report::{KeptPath, Report, Totals, REPORT_LABEL};

use image_root::{absolute, key};
use planner::Planner;

/// Why a keep-set could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SlimError {
    /// Neither `Entrypoint` nor `Cmd` is set.
    #[error("the image has no entrypoint and no cmd: nothing to analyse (give --entrypoint)")]
    NoEntrypoint,
    /// The program to run is not in the image.
    #[error("the entrypoint {name} is not a program in the image: {why}")]
    EntrypointMissing {
        /// As the config names it.
        name: String,
        /// What went wrong.
        why: String,
    },
    /// A bad `--include`/`--exclude` pattern.
    #[error("bad pattern {pattern:?}: {why}")]
    Pattern {
        /// The pattern.
        pattern: String,
        /// The parser's complaint.
        why: String,
    },
    /// An `--exclude` drops what the program needs to start.
    #[error("--exclude drops {path}, without which the program cannot start:\n  {chain}\n(give --include or a narrower --exclude)")]
    ExcludesNeeded {
        /// The path.
        path: String,
        /// Why it is needed, step by step.
        chain: String,
    },
    /// The source does not sit on the base (`extract`).
    #[error("{0}")]
    NotOnBase(String),
    /// A malformed config or report.
    #[error("{0}")]
    Config(String),
}

/// What the user asked to keep or drop.
#[derive(Clone, Debug, Default)]
pub struct SlimOptions {
    /// `--include` paths or globs.
    pub includes: Vec<String>,
    /// `--exclude` globs.
    pub excludes: Vec<String>,
    /// `--include-shell`.
    pub include_shell: bool,
    /// `--keep-pkgdb`.
    pub keep_pkgdb: bool,
    /// `--layering packages`: split the output into base, libraries and application layers.
    pub layering_packages: bool,
    /// Paths a traced run named (absolute, as the program saw them) and the
    /// program that named each; those in the image are kept.
    pub traced: BTreeMap<String, String>,
}

/// Slim (everything from analysis) or extract (what sits above a base).
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// `whittle slim`.
    Slim,
    /// `whittle extract`: the first `base_layers` layers are the base.
    Extract {
        /// How many layers the base has.
        base_layers: usize,
        /// `--base-libs all`: keep every library directory of the base.
        base_libs_all: bool,
    },
}

/// The output filesystem and its explanation.
pub struct Plan {
    /// The paths to write (a subset of the input's, plus `/tmp` when it was missing).
    pub view: FlatView,
    /// Contents of files whittle wrote (the trimmed package database), by view key.
    pub generated: BTreeMap<String, Vec<u8>>,
    /// Every kept path with its reason chain, totals and warnings.
    pub report: Report,
    /// With `--layering packages`: `view` split into layers, bottom first.
    pub layers: Option<Vec<FlatView>>,
}

fn globs(patterns: &[String]) -> Result<GlobSet, SlimError> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        let g = GlobBuilder::new(p)
            .literal_separator(true)
            .build()
            .map_err(|e| SlimError::Pattern {
                pattern: p.clone(),
                why: e.to_string(),
            })?;
        b.add(g);
    }
    b.build().map_err(|e| SlimError::Pattern {
        pattern: patterns.join(" "),
        why: e.to_string(),
    })
}

fn is_glob(p: &str) -> bool {
    p.contains(['*', '?', '[', '{'])
}

/// Paths that are not directories, and their data bytes (hard links counted once).
fn totals<'n>(nodes: impl Iterator<Item = &'n Node>) -> Totals {
    let mut t = Totals::default();
    let mut inodes = std::collections::HashSet::new();
    for n in nodes {
        if n.kind != EntryKind::Dir {
            t.files += 1;
            if n.inode == 0 || inodes.insert(n.inode) {
                t.bytes += n.size();
            }
        }
    }
    t
}

/// Library directories for `--base-libs all`.
const LIB_DIRS: &[&str] = &["/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib"];

/// Computes what to keep of `flat` for the program `config` runs.
pub fn plan(
    flat: &Flat,
    config: RunConfig,
    opts: &SlimOptions,
    mode: Mode,
) -> Result<Plan, SlimError> {
    let excludes = globs(&opts.excludes)?;
    let include_globs: Vec<(String, GlobSet)> = opts
        .includes
        .iter()
        .filter(|p| is_glob(p))
        .map(|p| Ok((p.clone(), globs(std::slice::from_ref(p))?)))
        .collect::<Result<_, SlimError>>()?;
    let root = ImageRoot::new(flat);
    let mut planner = Planner::new(&root, config);

    let argv = planner.entrypoint()?;
    if let Mode::Extract {
        base_layers,
        base_libs_all,
    } = mode
    {
        let added: Vec<String> = flat
            .view
            .nodes
            .iter()
            .filter(|(_, n)| n.layer >= base_layers && !n.implicit)
            .map(|(k, _)| absolute(k))
            .collect();
        for path in added {
            planner.keep_added(&path, Reason::AddedAboveBase);
        }
        planner.drain();
        if base_libs_all {
            for dir in LIB_DIRS {
                if let Ok(r) = planner.resolve(dir) {
                    if r.kind == whittle_elf::NodeKind::Dir {
                        planner.include(dir, Reason::BaseLibs);
                    }
                }
            }
        }
    }
    for pattern in &opts.includes {
        if is_glob(pattern) {
            continue;
        }
        let path = whittle_elf::root::normalize("/", pattern);
        planner.include(&path, Reason::Include(pattern.clone()));
    }
    for (pattern, set) in &include_globs {
        let matched: Vec<String> = flat
            .view
            .nodes
            .keys()
            .map(|k| absolute(k))
            .filter(|p| set.is_match(p))
            .collect();
        if matched.is_empty() {
            planner
                .warnings
                .push(format!("--include {pattern} matched nothing"));
        }
        for path in matched {
            planner.include(&path, Reason::Include(pattern.clone()));
        }
    }
    if opts.include_shell {
        if planner.exists("/bin/sh") {
            planner.include("/bin/sh", Reason::IncludeShell);
        } else {
            planner
                .warnings
                .push("--include-shell: the image has no /bin/sh".into());
        }
    }
    // After the programs: NSS modules depend on which C library they use.
    planner.implicit();
    for (path, by) in &opts.traced {
        planner.keep_traced(path, by);
    }
    planner.drain();
    let traced_hits = std::mem::take(&mut planner.traced_hits);

    let mut keep = std::mem::take(&mut planner.keep);
    let mut warnings = std::mem::take(&mut planner.warnings);
    if !opts.excludes.is_empty() {
        let dropped: Vec<String> = keep
            .iter()
            .map(|(p, _)| p.clone())
            .filter(|p| excluded(&excludes, p))
            .collect();
        // The program cannot start without these: refuse rather than write an image that dies.
        if let Some(p) = dropped.iter().find(|p| {
            keep.iter().any(|(k, r)| {
                k == *p
                    && matches!(
                        r,
                        Reason::Entrypoint
                            | Reason::InterpreterOf(_)
                            | Reason::PtInterpOf(_)
                            | Reason::NeededBy(_)
                    )
            })
        }) {
            return Err(SlimError::ExcludesNeeded {
                path: p.clone(),
                chain: keep.chain(p).join("\n  <- "),
            });
        }
        for p in dropped {
            keep.remove(&p);
        }
    }
    let mut generated = BTreeMap::new();
    if opts.keep_pkgdb {
        pkgdb_keep(&root, &mut keep, &mut generated, &mut warnings);
    }
    if opts.layering_packages {
        layering::keep_base_libraries(&root, &mut keep)?;
    }
    let mut tmp_missing = false;
    if !keep.contains("/tmp") && !excluded(&excludes, "/tmp") {
        tmp_missing = root.node("/tmp").is_none();
        keep.insert("/tmp", Reason::Tmp);
    }
    // Every kept path needs its directories.
    keep_parents(&mut keep);

    let mut view = FlatView::default();
    for (path, _) in keep.iter() {
        let k = key(path).to_string();
        if let Some(node) = flat.view.nodes.get(&k) {
            let mut node = node.clone();
            if generated.contains_key(&k) {
                node.data = None;
                node.inode = 0;
            }
            view.nodes.insert(k, node);
        } else if path == "/tmp" && tmp_missing {
            view.nodes.insert(k, tmp_node());
        }
    }
    let before = totals(flat.view.nodes.values());
    let mut after = totals(view.nodes.values());
    for (k, bytes) in &generated {
        if view.nodes.contains_key(k) {
            after.bytes += bytes.len() as u64;
        }
    }
    let kept = keep
        .iter()
        .filter(|(p, _)| view.nodes.contains_key(key(p)))
        .map(|(p, r)| {
            let mut found_by = vec![keep.finder(p)];
            if traced_hits.contains(p.as_str()) && !found_by.contains(&Finder::Trace) {
                found_by.push(Finder::Trace);
            }
            found_by.sort();
            KeptPath {
                path: p.clone(),
                reason: r.to_string(),
                chain: keep.chain(p),
                found_by: found_by.iter().map(|f| f.name().to_string()).collect(),
            }
        })
        .collect();
    let layers = if opts.layering_packages {
        Some(layering::split_by_packages(&root, &view)?)
    } else {
        None
    };
    Ok(Plan {
        view,
        layers,
        generated,
        report: Report {
            source: None,
            entrypoint: argv,
            before,
            after,
            kept,
            warnings,
        },
    })
}

/// Keeps the directories above every kept path.
fn keep_parents(keep: &mut KeepSet) {
    let children: Vec<String> = keep.iter().map(|(p, _)| p.clone()).collect();
    for child in children {
        let mut dir = whittle_elf::root::parent(&child).to_string();
        while dir != "/" {
            if !keep.insert(&dir, Reason::ParentOf(child.clone())) {
                break;
            }
            dir = whittle_elf::root::parent(&dir).to_string();
        }
    }
}

fn excluded(set: &GlobSet, path: &str) -> bool {
    if set.is_empty() {
        return false;
    }
    let mut p = path;
    loop {
        if set.is_match(p) {
            return true;
        }
        if p == "/" || p.is_empty() {
            return false;
        }
        p = whittle_elf::root::parent(p);
    }
}

fn tmp_node() -> Node {
    Node {
        kind: EntryKind::Dir,
        meta: Meta {
            mode: 0o1777,
            uid: 0,
            gid: 0,
            mtime: 0,
            xattrs: Vec::new(),
        },
        data: None,
        inode: 0,
        layer: 0,
        implicit: true,
        elf: None,
    }
}

/// Keeps the package database, trimmed to packages that still have a
/// non-directory path in `keep`.
fn pkgdb_keep(
    root: &ImageRoot<'_>,
    keep: &mut KeepSet,
    generated: &mut BTreeMap<String, Vec<u8>>,
    warnings: &mut Vec<String>,
) {
    use whittle_elf::root::resolve;
    use whittle_elf::NodeKind;
    let kept_file = |keep: &KeepSet, path: &str| -> bool {
        match resolve(root, path) {
            Ok(r) => r.kind != NodeKind::Dir && keep.contains(&r.path),
            Err(_) => false,
        }
    };
    let read = |path: &str| dpkg::read_text(root, path);
    let mut found = false;
    if let Some(status) = read(pkgdb::DPKG_STATUS) {
        found = true;
        let lists: BTreeMap<(String, Option<String>), (String, Vec<String>)> =
            dpkg::installed(root, &status)
                .into_iter()
                .map(|p| ((p.name, p.arch), (p.list_path, p.files)))
                .collect();
        let has_files = |name: &str, arch: Option<&str>| {
            lists
                .get(&(name.to_string(), arch.map(String::from)))
                .is_some_and(|(_, files)| files.iter().any(|f| kept_file(keep, f)))
        };
        let trimmed = pkgdb::trim_dpkg_status(&status, has_files);
        let kept_lists: Vec<String> = lists
            .iter()
            .filter(|((name, arch), _)| has_files(name, arch.as_deref()))
            .map(|(_, (path, _))| path.clone())
            .collect();
        for list in kept_lists {
            keep.insert(&list, Reason::PackageDatabase);
            let md5 = format!("{}.md5sums", list.trim_end_matches(".list"));
            if root.node(&md5).is_some() {
                keep.insert(&md5, Reason::PackageDatabase);
            }
        }
        keep.insert(pkgdb::DPKG_STATUS, Reason::PackageDatabase);
        generated.insert(key(pkgdb::DPKG_STATUS).to_string(), trimmed.into_bytes());
    }
    if let Some(installed) = read(pkgdb::APK_INSTALLED) {
        found = true;
        let packages = pkgdb::parse_apk_installed(&installed);
        let keep_names: Vec<String> = packages
            .iter()
            .filter(|p| p.files.iter().any(|f| kept_file(keep, f)))
            .map(|p| p.name.clone())
            .collect();
        let trimmed = pkgdb::trim_apk_installed(&installed, |n| keep_names.iter().any(|k| k == n));
        keep.insert(pkgdb::APK_INSTALLED, Reason::PackageDatabase);
        generated.insert(key(pkgdb::APK_INSTALLED).to_string(), trimmed.into_bytes());
    }
    if !found {
        warnings.push("--keep-pkgdb: the image has no dpkg or apk database".into());
        return;
    }
    // Scanners identify the distribution from os-release.
    for p in [
        "/etc/os-release",
        "/etc/debian_version",
        "/etc/alpine-release",
    ] {
        if let Ok(r) = resolve(root, p) {
            for link in &r.links {
                keep.insert(link, Reason::SymlinkTo(r.path.clone()));
            }
            keep.insert(&r.path, Reason::PackageDatabase);
        }
    }
}

/// Whether `path` lies in /proc, /sys or /dev: what a running program sees
/// there is the kernel's, not the image's.
pub fn is_run_time_path(path: &str) -> bool {
    ["/proc", "/sys", "/dev"]
        .iter()
        .any(|d| path == *d || path.strip_prefix(d).is_some_and(|r| r.starts_with('/')))
}

/// Whether `path` exists in the image (resolved through its symlinks, inside it).
pub fn resolves(flat: &Flat, path: &str) -> bool {
    let root = ImageRoot::new(flat);
    whittle_elf::root::resolve(&root, path).is_ok()
}

/// The paths of `flat` that `whittle build` takes from an image: each of `paths`
/// (a directory with its tree, symlinks on the way and their targets), their
/// parent directories, and with `closure` the ELF closure of every program and
/// library among them, resolved inside the image.
pub fn select(
    flat: &Flat,
    paths: &[String],
    closure: bool,
) -> Result<(FlatView, Vec<String>), SlimError> {
    let root = ImageRoot::new(flat);
    let config = RunConfig {
        entrypoint: vec![],
        cmd: vec![],
        env: vec![],
        workdir: "/".into(),
        volumes: vec![],
    };
    let mut planner = Planner::new(&root, config);
    for p in paths {
        let path = whittle_elf::root::normalize("/", p);
        if !planner.exists(&path) && whittle_elf::root::Root::lstat(&root, &path).is_none() {
            return Err(SlimError::Config(format!("{path} is not in the image")));
        }
        planner.include_without_closure(&path, Reason::Include(path.clone()), closure);
    }
    if closure {
        planner.drain();
    }
    let mut keep = std::mem::take(&mut planner.keep);
    let warnings = std::mem::take(&mut planner.warnings);
    keep_parents(&mut keep);
    let mut view = FlatView::default();
    for (path, _) in keep.iter() {
        let k = key(path).to_string();
        if let Some(node) = flat.view.nodes.get(&k) {
            view.nodes.insert(k, node.clone());
        }
    }
    Ok((view, warnings))
}

/// The installed packages of `flat`'s dpkg or apk database (with their file lists) and the
/// distribution its `os-release` names: what an SBOM of an image made from `flat` reports.
pub fn installed_packages(flat: &Flat) -> pkgdb::PackageDb {
    let root = ImageRoot::new(flat);
    pkgdb::read_package_db(|path| dpkg::read_text(&root, path))
}
