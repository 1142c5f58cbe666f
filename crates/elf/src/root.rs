//! A read-only image root, and path resolution inside it the way the kernel
//! resolves paths in a chroot: `..` stops at `/`, absolute symlink targets
//! start again from the image's root, never the host's.

use std::io;

/// What a path is, without following it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// A directory.
    Dir,
    /// A regular file of this many bytes.
    File(u64),
    /// A symbolic link and its target.
    Symlink(String),
    /// A device node, fifo or socket.
    Other,
}

/// An image's root filesystem, read-only. Paths are absolute and normalised
/// (`/usr/lib/x`, no `.` or `..`, no trailing `/`; the root is `/`).
pub trait Root {
    /// What `path` is, not following a final symlink; `None` when absent.
    /// Intermediate components are taken literally (callers resolve them).
    fn lstat(&self, path: &str) -> Option<NodeKind>;

    /// Reads up to `buf.len()` bytes of the regular file `path` at `offset`.
    fn read_at(&self, path: &str, offset: u64, buf: &mut [u8]) -> io::Result<usize>;

    /// The names in the directory `path`, sorted.
    fn list(&self, path: &str) -> Vec<String>;
}

/// Why a path did not resolve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResolveError {
    /// A component is missing; `link` names the symlink that led there, if any.
    Missing {
        /// The first missing path.
        path: String,
        /// The symlink whose target led to it.
        link: Option<String>,
    },
    /// More than [`MAX_HOPS`] symlinks: a loop.
    Loop {
        /// The symlink being followed when the limit hit.
        link: String,
    },
    /// A component other than the last is not a directory.
    NotDir {
        /// That component.
        path: String,
    },
}

impl std::fmt::Display for ResolveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResolveError::Missing { path, link: None } => write!(f, "{path} does not exist"),
            ResolveError::Missing {
                path,
                link: Some(l),
            } => write!(f, "dangling symlink {l} (its target {path} does not exist)"),
            ResolveError::Loop { link } => write!(f, "symlink loop at {link}"),
            ResolveError::NotDir { path } => write!(f, "{path} is not a directory"),
        }
    }
}

/// The most symlinks followed in one resolution (Linux's limit).
pub const MAX_HOPS: usize = 40;

/// A resolved path: the real path and every symlink crossed to reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The path with no symlink left in it.
    pub path: String,
    /// What it is.
    pub kind: NodeKind,
    /// Every symlink followed on the way, in order (to keep them too).
    pub links: Vec<String>,
}

/// Normalises `path` lexically against `base` (for relative paths): collapses
/// `.`, `..` (never above `/`) and repeated slashes.
pub fn normalize(base: &str, path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    let start = if path.starts_with('/') { "" } else { base };
    for part in start.split('/').chain(path.split('/')) {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The directory part of an absolute path (`/` for top-level names).
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// Resolves `path` (absolute, or relative to `/`) inside `root`, following
/// every symlink (the final one too).
pub fn resolve(root: &dyn Root, path: &str) -> Result<Resolved, ResolveError> {
    let mut pending: Vec<String> = path.split('/').rev().map(String::from).collect();
    let mut current = String::from("/");
    let mut links = Vec::new();
    let mut via: Option<String> = None;
    let mut kind = NodeKind::Dir;
    while let Some(part) = pending.pop() {
        match part.as_str() {
            "" | "." => continue,
            ".." => {
                current = parent(&current).to_string();
                kind = NodeKind::Dir;
                continue;
            }
            _ => {}
        }
        if kind != NodeKind::Dir {
            return Err(ResolveError::NotDir { path: current });
        }
        let next = join(&current, &part);
        match root.lstat(&next) {
            None => {
                return Err(ResolveError::Missing {
                    path: next,
                    link: via,
                })
            }
            Some(NodeKind::Symlink(target)) => {
                if links.len() >= MAX_HOPS {
                    return Err(ResolveError::Loop { link: next });
                }
                links.push(next.clone());
                via = Some(next);
                if target.starts_with('/') {
                    current = "/".into();
                }
                kind = NodeKind::Dir;
                pending.extend(target.split('/').rev().map(String::from));
            }
            Some(k) => {
                current = next;
                kind = k;
            }
        }
    }
    Ok(Resolved {
        path: current,
        kind,
        links,
    })
}

/// Reads the whole of a small regular file (at most `max` bytes; longer files are cut).
pub fn read_small(root: &dyn Root, path: &str, max: usize) -> io::Result<Vec<u8>> {
    let mut out = vec![0u8; max];
    let mut filled = 0;
    while filled < max {
        let n = root.read_at(path, filled as u64, &mut out[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    out.truncate(filled);
    Ok(out)
}

#[cfg(test)]
pub(crate) mod testing {
    //! An in-memory root for unit tests.
    use super::*;
    use std::collections::BTreeMap;

    #[derive(Default)]
    pub struct MemRoot {
        pub nodes: BTreeMap<String, (NodeKind, Vec<u8>)>,
    }

    impl MemRoot {
        pub fn dir(&mut self, p: &str) -> &mut Self {
            self.nodes.insert(p.into(), (NodeKind::Dir, vec![]));
            self
        }
        pub fn file(&mut self, p: &str, data: &[u8]) -> &mut Self {
            self.nodes
                .insert(p.into(), (NodeKind::File(data.len() as u64), data.to_vec()));
            self
        }
        pub fn link(&mut self, p: &str, t: &str) -> &mut Self {
            self.nodes
                .insert(p.into(), (NodeKind::Symlink(t.into()), vec![]));
            self
        }
    }

    impl Root for MemRoot {
        fn lstat(&self, path: &str) -> Option<NodeKind> {
            if path == "/" {
                return Some(NodeKind::Dir);
            }
            self.nodes.get(path).map(|(k, _)| k.clone())
        }
        fn read_at(&self, path: &str, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
            let (_, data) = self
                .nodes
                .get(path)
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
            let start = (offset as usize).min(data.len());
            let n = buf.len().min(data.len() - start);
            buf[..n].copy_from_slice(&data[start..start + n]);
            Ok(n)
        }
        fn list(&self, path: &str) -> Vec<String> {
            let prefix = if path == "/" {
                "/".to_string()
            } else {
                format!("{path}/")
            };
            self.nodes
                .keys()
                .filter_map(|k| k.strip_prefix(&prefix))
                .filter(|rest| !rest.is_empty() && !rest.contains('/'))
                .map(String::from)
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::MemRoot;
    use super::*;

    fn sample() -> MemRoot {
        let mut r = MemRoot::default();
        r.dir("/usr")
            .dir("/usr/lib")
            .file("/usr/lib/libc.so.6", b"x")
            .link("/lib", "usr/lib")
            .link("/usr/lib/libc-abs.so", "/lib/libc.so.6")
            .link("/usr/lib/escape", "../../../../usr/lib/libc.so.6")
            .link("/loop1", "/loop2")
            .link("/loop2", "loop1")
            .link("/dangling", "/nowhere/x");
        r
    }

    #[test]
    fn follows_links_inside_the_root_and_records_them() {
        let r = sample();
        let got = resolve(&r, "/lib/libc-abs.so").unwrap();
        assert_eq!(got.path, "/usr/lib/libc.so.6");
        assert_eq!(got.links, ["/lib", "/usr/lib/libc-abs.so", "/lib"]);
        // `..` past the root stays at the root.
        assert_eq!(
            resolve(&r, "/usr/lib/escape").unwrap().path,
            "/usr/lib/libc.so.6"
        );
    }

    #[test]
    fn reports_loops_dangling_links_and_files_used_as_dirs() {
        let r = sample();
        assert!(matches!(
            resolve(&r, "/loop1"),
            Err(ResolveError::Loop { .. })
        ));
        assert_eq!(
            resolve(&r, "/dangling"),
            Err(ResolveError::Missing {
                path: "/nowhere".into(),
                link: Some("/dangling".into())
            })
        );
        assert!(matches!(
            resolve(&r, "/usr/lib/libc.so.6/x"),
            Err(ResolveError::NotDir { .. })
        ));
    }

    #[test]
    fn normalizes_paths() {
        assert_eq!(normalize("/app", "bin/../run"), "/app/run");
        assert_eq!(normalize("/app", "/../../etc//x/."), "/etc/x");
        assert_eq!(normalize("/", "."), "/");
        assert_eq!(parent("/a/b"), "/a");
        assert_eq!(parent("/a"), "/");
    }
}
