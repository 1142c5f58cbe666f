//! `--layering packages`: the slimmed filesystem as three layers that images
//! built on one base share — the C library and base files, other shared
//! libraries, then the application — using the image's dpkg database to say
//! which package each file comes from.

use std::collections::{BTreeMap, HashMap};

use whittle_elf::root::resolve;
use whittle_elf::NodeKind;
use whittle_image::entries::EntryKind;
use whittle_image::flatten::FlatView;

use crate::image_root::{absolute, ImageRoot};
use crate::reason::{KeepSet, Reason};
use crate::{dpkg, pkgdb, SlimError};

/// Packages of the bottom layer: what every program on the base shares.
fn is_base_package(name: &str) -> bool {
    matches!(
        name,
        "libc6" | "libgcc-s1" | "base-files" | "libcrypt1" | "tzdata" | "netbase"
    ) || (name.starts_with("gcc-") && name.ends_with("-base"))
}

fn is_shared_library(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.contains(".so")
}

/// Every path the dpkg database lists, with its package.
fn listed(root: &ImageRoot<'_>) -> Option<Vec<(String, String)>> {
    let status = dpkg::read_text(root, pkgdb::DPKG_STATUS)?;
    Some(
        dpkg::installed(root, &status)
            .into_iter()
            .flat_map(|p| {
                let name = p.name;
                p.files.into_iter().map(move |f| (f, name.clone()))
            })
            .collect(),
    )
}

fn no_database() -> SlimError {
    SlimError::Config(
        "--layering packages needs the image's dpkg database (/var/lib/dpkg/status)".into(),
    )
}

/// The real path of every file the dpkg database lists, and its package.
fn owners(root: &ImageRoot<'_>) -> Option<HashMap<String, String>> {
    let mut out = HashMap::new();
    for (f, pkg) in listed(root)? {
        if let Ok(r) = resolve(root, &f) {
            if r.kind != NodeKind::Dir {
                out.entry(r.path).or_insert(pkg);
            }
        }
    }
    Some(out)
}

/// Keeps every shared library of the base packages (the C library, libgcc,
/// libcrypt; not iconv's gconv modules), whatever the program uses, so that
/// the bottom layer is the same for every image slimmed from this base.
pub fn keep_base_libraries(root: &ImageRoot<'_>, keep: &mut KeepSet) -> Result<(), SlimError> {
    for (f, pkg) in listed(root).ok_or_else(no_database)? {
        if !is_base_package(&pkg) || !is_shared_library(&f) || f.contains("/gconv/") {
            continue;
        }
        let Ok(r) = resolve(root, &f) else { continue };
        if !matches!(r.kind, NodeKind::File(_)) {
            continue;
        }
        for link in &r.links {
            keep.insert(link, Reason::SymlinkTo(r.path.clone()));
        }
        keep.insert(&r.path, Reason::BaseLayer);
    }
    Ok(())
}

/// Splits `view` into up to three layer views, bottom first; empty ones are left out.
pub fn split_by_packages(
    root: &ImageRoot<'_>,
    view: &FlatView,
) -> Result<Vec<FlatView>, SlimError> {
    let owners = owners(root).ok_or_else(no_database)?;
    let mut tiers: [FlatView; 3] = Default::default();
    for (key, node) in &view.nodes {
        if node.kind == EntryKind::Dir {
            continue;
        }
        let path = absolute(key);
        let tier = match owners.get(&path) {
            Some(pkg) if is_base_package(pkg) => 0,
            Some(_) if is_shared_library(&path) => 1,
            _ => 2,
        };
        add_with_parents(&mut tiers[tier], view, key);
    }
    // Directories kept for their own sake (WORKDIR, /tmp, ...) go with the application.
    for (key, node) in &view.nodes {
        if node.kind == EntryKind::Dir && !tiers.iter().any(|t| t.nodes.contains_key(key)) {
            add_with_parents(&mut tiers[2], view, key);
        }
    }
    Ok(tiers
        .into_iter()
        .filter(|t| !t.nodes.is_empty())
        .collect::<Vec<_>>())
}

/// Puts `key` into `layer` with its directories, each with its own metadata from `view`.
fn add_with_parents(layer: &mut FlatView, view: &FlatView, key: &str) {
    let mut at = key;
    loop {
        if let Some(node) = view.nodes.get(at) {
            layer.nodes.insert(at.to_string(), node.clone());
        }
        match at.rsplit_once('/') {
            Some((parent, _)) => at = parent,
            None => break,
        }
    }
}

/// How many files each layer of a split holds, for the summary.
pub fn describe(layers: &[FlatView]) -> BTreeMap<usize, usize> {
    layers
        .iter()
        .enumerate()
        .map(|(i, v)| {
            (
                i,
                v.nodes
                    .values()
                    .filter(|n| n.kind != EntryKind::Dir)
                    .count(),
            )
        })
        .collect()
}
