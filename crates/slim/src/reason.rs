//! Why a path is kept: one step, pointing at the path that needed it.

use std::collections::BTreeMap;
use std::fmt;

/// One reason to keep a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The program the image runs.
    Entrypoint,
    /// A path named in the entrypoint's arguments (or its `sh -c` string).
    ArgumentOf(String),
    /// The `#!` interpreter of a script.
    InterpreterOf(String),
    /// The ELF loader of a program.
    PtInterpOf(String),
    /// A library a binary links.
    NeededBy(String),
    /// A library a binary announces it may dlopen.
    DlopenNoteOf(String),
    /// A symlink crossed on the way to a kept path.
    SymlinkTo(String),
    /// The target of a kept symlink.
    TargetOf(String),
    /// A directory above a kept path.
    ParentOf(String),
    /// A module `/etc/nsswitch.conf` names.
    NssModuleFor(String),
    /// `libgcc_s.so.1`, which glibc dlopens for thread cancellation.
    ThreadedGlibc(String),
    /// A file programs read that no linker shows.
    Implicit(&'static str),
    /// The image's working directory.
    Workdir,
    /// A directory the image declares as a volume.
    Volume,
    /// `/tmp`.
    Tmp,
    /// Asked for with `--include`.
    Include(String),
    /// Asked for with `--include-shell`.
    IncludeShell,
    /// In a file tree kept whole (an included directory).
    InTree(String),
    /// The package database (`--keep-pkgdb`).
    PackageDatabase,
    /// `extract`: written by a layer above the base.
    AddedAboveBase,
    /// `extract --base-libs all`.
    BaseLibs,
    /// `--layering packages`: the base's C library, shared by images on this base.
    BaseLayer,
    /// Named by a file syscall of this program while it ran under trace.
    Traced(String),
    /// The directory of a path the traced program created or looked for, which the image lacks.
    TracedParentOf(String),
}

/// Which part of whittle found a kept path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Finder {
    /// Static analysis of the image.
    Static,
    /// The run-time trace.
    Trace,
    /// `--include` (and `--include-shell`).
    Include,
}

impl Finder {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Finder::Static => "static",
            Finder::Trace => "trace",
            Finder::Include => "include",
        }
    }
}

impl Reason {
    /// The kept path this reason points at, if any.
    pub fn from(&self) -> Option<&str> {
        match self {
            Reason::ArgumentOf(p)
            | Reason::InterpreterOf(p)
            | Reason::PtInterpOf(p)
            | Reason::NeededBy(p)
            | Reason::DlopenNoteOf(p)
            | Reason::SymlinkTo(p)
            | Reason::TargetOf(p)
            | Reason::ParentOf(p)
            | Reason::NssModuleFor(p)
            | Reason::ThreadedGlibc(p)
            | Reason::InTree(p) => Some(p),
            _ => None,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Entrypoint => write!(f, "entrypoint"),
            Reason::ArgumentOf(p) => write!(f, "argument of {p}"),
            Reason::InterpreterOf(p) => write!(f, "interpreter of {p}"),
            Reason::PtInterpOf(p) => write!(f, "PT_INTERP of {p}"),
            Reason::NeededBy(p) => write!(f, "DT_NEEDED of {p}"),
            Reason::DlopenNoteOf(p) => write!(f, "dlopen note of {p}"),
            Reason::SymlinkTo(p) => write!(f, "symlink on the path to {p}"),
            Reason::TargetOf(p) => write!(f, "target of symlink {p}"),
            Reason::ParentOf(p) => write!(f, "parent directory of {p}"),
            Reason::NssModuleFor(p) => write!(f, "NSS module for {p}"),
            Reason::ThreadedGlibc(p) => write!(f, "needed by threaded glibc programs such as {p}"),
            Reason::Implicit(what) => write!(f, "implicit: {what}"),
            Reason::Workdir => write!(f, "WORKDIR"),
            Reason::Volume => write!(f, "VOLUME"),
            Reason::Tmp => write!(f, "/tmp"),
            Reason::Include(p) => write!(f, "--include {p}"),
            Reason::IncludeShell => write!(f, "--include-shell"),
            Reason::InTree(p) => write!(f, "in the tree of {p}"),
            Reason::PackageDatabase => write!(f, "package database"),
            Reason::AddedAboveBase => write!(f, "added above the base"),
            Reason::BaseLibs => write!(f, "--base-libs all"),
            Reason::BaseLayer => write!(f, "--layering packages (the base's C library)"),
            Reason::Traced(by) if by.is_empty() => write!(f, "used at run time"),
            Reason::Traced(by) => write!(f, "used at run time by {by}"),
            Reason::TracedParentOf(p) => {
                write!(
                    f,
                    "directory of {p}, which the program made or looked for at run time"
                )
            }
        }
    }
}

/// Kept paths (absolute) and the first reason each was kept for.
#[derive(Debug, Default)]
pub struct KeepSet {
    paths: BTreeMap<String, Reason>,
}

impl KeepSet {
    /// Keeps `path`; returns false when it was already kept (the first reason stays).
    pub fn insert(&mut self, path: &str, reason: Reason) -> bool {
        if self.paths.contains_key(path) {
            return false;
        }
        self.paths.insert(path.to_string(), reason);
        true
    }

    /// True when `path` is kept.
    pub fn contains(&self, path: &str) -> bool {
        self.paths.contains_key(path)
    }

    /// Drops `path`.
    pub fn remove(&mut self, path: &str) {
        self.paths.remove(path);
    }

    /// Every kept path and its reason, sorted.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Reason)> {
        self.paths.iter()
    }

    /// How many paths are kept.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// True when nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// The reason at the end of `path`'s chain: what started it.
    pub fn root(&self, path: &str) -> Option<&Reason> {
        let mut seen = vec![path];
        let mut reason = self.paths.get(path)?;
        while let Some(next) = reason.from() {
            if seen.contains(&next) {
                break;
            }
            seen.push(next);
            match self.paths.get(next) {
                Some(r) => reason = r,
                None => break,
            }
        }
        Some(reason)
    }

    /// Which part of whittle found `path` (by the root of its chain).
    pub fn finder(&self, path: &str) -> Finder {
        match self.root(path) {
            Some(Reason::Traced(_) | Reason::TracedParentOf(_)) => Finder::Trace,
            Some(Reason::Include(_) | Reason::IncludeShell) => Finder::Include,
            _ => Finder::Static,
        }
    }

    /// The reason chain of `path`: its reason, the reason of the path that
    /// needed it, and so on to a root reason (cycles cut).
    pub fn chain(&self, path: &str) -> Vec<String> {
        let mut out = vec![path.to_string()];
        let mut seen = vec![path.to_string()];
        let mut at = path.to_string();
        while let Some(reason) = self.paths.get(&at) {
            out.push(reason.to_string());
            match reason.from() {
                Some(next) if !seen.iter().any(|s| s == next) => {
                    seen.push(next.to_string());
                    at = next.to_string();
                }
                _ => break,
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_walk_back_to_a_root_reason() {
        let mut k = KeepSet::default();
        k.insert("/usr/sbin/nginx", Reason::Entrypoint);
        k.insert(
            "/lib/libssl.so.3",
            Reason::NeededBy("/usr/sbin/nginx".into()),
        );
        assert!(
            !k.insert("/lib/libssl.so.3", Reason::Tmp),
            "first reason wins"
        );
        assert_eq!(
            k.chain("/lib/libssl.so.3"),
            [
                "/lib/libssl.so.3",
                "DT_NEEDED of /usr/sbin/nginx",
                "entrypoint"
            ]
        );
        assert_eq!(k.root("/lib/libssl.so.3"), Some(&Reason::Entrypoint));
        k.insert("/lib/libz.so.1", Reason::Traced("/app".into()));
        k.insert(
            "/lib/libz.so.1.3",
            Reason::TargetOf("/lib/libz.so.1".into()),
        );
        assert_eq!(k.finder("/lib/libz.so.1.3"), Finder::Trace);
        assert_eq!(k.finder("/lib/libssl.so.3"), Finder::Static);
        // A cycle ends instead of looping.
        k.insert("/a", Reason::SymlinkTo("/b".into()));
        k.insert("/b", Reason::TargetOf("/a".into()));
        assert_eq!(k.chain("/a").len(), 3);
    }
}
