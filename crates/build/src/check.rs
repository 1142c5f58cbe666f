//! Checks on the image about to be written, so that mistakes that would only
//! show at `docker run` fail the build instead: the entrypoint (present,
//! executable, its ELF loader or `#!` interpreter present), the user (in the
//! image's passwd), and statically linked glibc programs that use NSS.

use std::io::Read;

use whittle_elf::NodeKind;
use whittle_image::entries::EntryKind;
use whittle_image::flatten::Node;
use whittle_image::mutate::Flat;

use crate::spec::Spec;
use crate::stage::{rel, StagedEntry, StagedKind, StagedLayer};
use crate::BuildError;

/// The filesystem the image will present: the staged layers over the base.
pub struct Merged<'a> {
    /// The base image, flattened.
    pub base: Option<&'a Flat>,
    /// The new layers, bottom first.
    pub staged: &'a [(String, StagedLayer)],
    /// Every image read for the build (staged entries point into them).
    pub flats: &'a [Option<&'a Flat>],
}

/// A path of the merged filesystem.
enum Found<'a> {
    Staged(&'a StagedEntry),
    Base(&'a Node),
}

impl Found<'_> {
    fn is_file(&self) -> bool {
        match self {
            Found::Staged(e) => matches!(
                e.kind,
                StagedKind::Host(_)
                    | StagedKind::Bytes(_)
                    | StagedKind::Image(..)
                    | StagedKind::Hardlink(_)
            ),
            Found::Base(n) => n.kind == EntryKind::File,
        }
    }

    fn mode(&self) -> u32 {
        match self {
            Found::Staged(e) => e.mode,
            Found::Base(n) => n.meta.mode,
        }
    }
}

impl<'a> Merged<'a> {
    fn lookup(&self, key: &str) -> Option<Found<'a>> {
        for (_, layer) in self.staged.iter().rev() {
            if let Some(e) = layer.entries.get(key) {
                return Some(Found::Staged(e));
            }
        }
        self.base
            .and_then(|f| f.view.nodes.get(key))
            .map(Found::Base)
    }

    /// Resolves `path` inside the image with the resolver slim uses (symlinks
    /// followed, `..` clamped at `/`): its key and what is there.
    fn resolve(&self, path: &str) -> Option<(String, Found<'a>)> {
        let resolved = whittle_elf::root::resolve(self, path).ok()?;
        let key = rel(&resolved.path);
        let found = self.lookup(&key)?;
        Some((key, found))
    }

    /// Up to `max` bytes of a file.
    fn read(&self, found: &Found<'_>, max: u64) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = match found {
            Found::Staged(e) => match &e.kind {
                StagedKind::Bytes(b) => {
                    out.extend_from_slice(&b[..b.len().min(max as usize)]);
                    Ok(0)
                }
                StagedKind::Host(p) => {
                    std::fs::File::open(p).and_then(|f| f.take(max).read_to_end(&mut out))
                }
                StagedKind::Image(i, d) => {
                    match self.flats.get(*i).copied().flatten().map(|f| f.reader(*d)) {
                        Some(Ok(r)) => r.take(max).read_to_end(&mut out),
                        _ => Ok(0),
                    }
                }
                _ => Ok(0),
            },
            Found::Base(n) => match (n.data, self.base) {
                (Some(d), Some(f)) => match f.reader(d) {
                    Ok(r) => r.take(max).read_to_end(&mut out),
                    Err(_) => Ok(0),
                },
                _ => Ok(0),
            },
        };
        out
    }
}

impl whittle_elf::root::Root for Merged<'_> {
    fn lstat(&self, path: &str) -> Option<NodeKind> {
        let key = rel(path);
        if key.is_empty() {
            return Some(NodeKind::Dir);
        }
        Some(match self.lookup(&key)? {
            Found::Staged(e) => match &e.kind {
                StagedKind::Dir => NodeKind::Dir,
                StagedKind::Symlink(t) => NodeKind::Symlink(t.clone()),
                StagedKind::Bytes(b) => NodeKind::File(b.len() as u64),
                StagedKind::Image(_, d) => NodeKind::File(d.size),
                StagedKind::Host(_) | StagedKind::Hardlink(_) => NodeKind::File(0),
            },
            Found::Base(n) => match &n.kind {
                EntryKind::Dir => NodeKind::Dir,
                EntryKind::Symlink(t) => NodeKind::Symlink(t.clone()),
                EntryKind::File => NodeKind::File(n.size()),
                _ => NodeKind::Other,
            },
        })
    }

    fn read_at(&self, path: &str, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some(found) = self.lookup(&rel(path)) else {
            return Ok(0);
        };
        let data = self.read(&found, offset + buf.len() as u64);
        let start = (offset as usize).min(data.len());
        let n = (data.len() - start).min(buf.len());
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }

    fn list(&self, path: &str) -> Vec<String> {
        let key = rel(path);
        let prefix = if key.is_empty() {
            String::new()
        } else {
            format!("{key}/")
        };
        let child = |k: &String| {
            k.strip_prefix(&prefix)
                .filter(|rest| !rest.is_empty() && !rest.contains('/'))
                .map(String::from)
        };
        let mut names: Vec<String> = self
            .staged
            .iter()
            .flat_map(|(_, l)| l.entries.keys().filter_map(child))
            .chain(
                self.base
                    .into_iter()
                    .flat_map(|f| f.view.nodes.keys().filter_map(child)),
            )
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// The entrypoint (or the first word of cmd) must be a program the image can start.
pub fn entrypoint(fs: &Merged<'_>, spec: &Spec) -> Result<(), BuildError> {
    let c = &spec.config;
    let argv: Vec<&String> = c
        .entrypoint
        .iter()
        .flatten()
        .chain(c.cmd.iter().flatten())
        .collect();
    let Some(argv0) = argv.first() else {
        if spec.from.is_none() {
            return Err(BuildError::Entrypoint(
                "[config] sets neither entrypoint nor cmd: the image would have nothing to run"
                    .into(),
            ));
        }
        return Ok(());
    };
    let candidates: Vec<String> = if argv0.contains('/') {
        vec![argv0.to_string()]
    } else {
        let path = c
            .env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| {
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()
            });
        path.split(':')
            .filter(|d| !d.is_empty())
            .map(|d| format!("{d}/{argv0}"))
            .collect()
    };
    let Some((key, found)) = candidates
        .iter()
        .find_map(|p| fs.resolve(p).filter(|(_, f)| f.is_file()))
    else {
        return Err(BuildError::Entrypoint(format!(
            "the entrypoint {argv0} is not a file in the image"
        )));
    };
    if found.mode() & 0o111 == 0 {
        return Err(BuildError::Entrypoint(format!(
            "the entrypoint /{key} is not executable (mode {:o})",
            found.mode()
        )));
    }
    let head = fs.read(&found, 4096);
    if head.starts_with(b"#!") {
        let line = head[2..].split(|b| *b == b'\n').next().unwrap_or_default();
        let line = String::from_utf8_lossy(line);
        let interp = line.split_whitespace().next().unwrap_or("");
        if fs.resolve(interp).filter(|(_, f)| f.is_file()).is_none() {
            return Err(BuildError::Entrypoint(format!(
                "the entrypoint /{key} is a script for {interp}, which is not in the image"
            )));
        }
    } else if let Some(summary) = whittle_elf::summarize(&head, head.len() as u64) {
        if let whittle_elf::Linkage::Dynamic { interpreter } = summary.linkage {
            if fs
                .resolve(&interpreter)
                .filter(|(_, f)| f.is_file())
                .is_none()
            {
                return Err(BuildError::Entrypoint(format!(
                    "the entrypoint /{key} is dynamically linked, but its loader {interpreter} is not in the image (add closure = true, or link it statically)"
                )));
            }
        }
    }
    Ok(())
}

/// A user name becomes `uid:gid` from the image's own /etc/passwd and
/// /etc/group, resolved as the sandbox resolves it (numeric users are kept:
/// they run everywhere, also where a name cannot be looked up).
pub fn resolve_user(fs: &Merged<'_>, user: &str) -> Result<String, BuildError> {
    let (name, group) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    if name.parse::<u32>().is_ok() && group.is_none_or(|g| g.parse::<u32>().is_ok()) {
        return Ok(user.to_string());
    }
    let passwd = fs
        .resolve("/etc/passwd")
        .map(|(_, f)| fs.read(&f, 1 << 20))
        .ok_or_else(|| BuildError::Entrypoint(format!("user {user:?}: the image has no /etc/passwd (use baseline = \"static\" or a numeric uid)")))?;
    let groups = fs
        .resolve("/etc/group")
        .map(|(_, f)| fs.read(&f, 1 << 20))
        .unwrap_or_default();
    let id = whittle_trace::user::resolve_in(
        &String::from_utf8_lossy(&passwd),
        &String::from_utf8_lossy(&groups),
        user,
    )
    .map_err(|e| BuildError::Entrypoint(e.to_string()))?;
    Ok(format!("{}:{}", id.uid, id.gid))
}

/// Statically linked glibc programs still dlopen `libnss_*.so` for getpwnam
/// and getaddrinfo: warn for each one in the new layers.
pub fn static_nss(fs: &Merged<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for (_, layer) in fs.staged {
        for e in layer.files() {
            let found = Found::Staged(e);
            let head = fs.read(&found, 4096);
            let Some(summary) = whittle_elf::summarize(&head, head.len() as u64) else {
                continue;
            };
            if summary.linkage != whittle_elf::Linkage::Static {
                continue;
            }
            let all = fs.read(&found, 256 << 20);
            let has = |needle: &[u8]| all.windows(needle.len()).any(|w| w == needle);
            if has(b"libnss_") && (has(b"getpwnam") || has(b"getaddrinfo") || has(b"getgrnam")) {
                out.push(format!(
                    "/{}: statically linked with glibc and uses NSS (getpwnam/getaddrinfo): glibc still loads libnss_*.so at run time, which a static image lacks — link with musl, or take the NSS modules and their libc too",
                    rel(&e.path)
                ));
            }
        }
    }
    out
}
