//! Checks on the image about to be written, so that mistakes that would only
//! show at `docker run` fail the build instead: the entrypoint (present,
//! executable, its ELF loader or `#!` interpreter present), the user (in the
//! image's passwd), and statically linked glibc programs that use NSS.

use std::io::Read;

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
    fn symlink(&self) -> Option<&str> {
        match self {
            Found::Staged(e) => match &e.kind {
                StagedKind::Symlink(t) => Some(t),
                _ => None,
            },
            Found::Base(n) => match &n.kind {
                EntryKind::Symlink(t) => Some(t),
                _ => None,
            },
        }
    }

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

const MAX_LINKS: usize = 40;

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

    /// Resolves `path` inside the image (symlinks followed, `..` clamped at `/`).
    fn resolve(&self, path: &str) -> Option<(String, Found<'a>)> {
        let mut todo: Vec<String> = path
            .split('/')
            .filter(|c| !c.is_empty())
            .map(String::from)
            .rev()
            .collect();
        let mut done: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(c) = todo.pop() {
            match c.as_str() {
                "." => continue,
                ".." => {
                    done.pop();
                    continue;
                }
                _ => {}
            }
            done.push(c);
            let key = done.join("/");
            let found = self.lookup(&key)?;
            if let Some(target) = found.symlink() {
                hops += 1;
                if hops > MAX_LINKS {
                    return None;
                }
                done.pop();
                if target.starts_with('/') {
                    done.clear();
                }
                todo.extend(
                    target
                        .split('/')
                        .filter(|c| !c.is_empty())
                        .map(String::from)
                        .rev(),
                );
            }
        }
        let key = done.join("/");
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

/// A user name becomes `uid:gid` from the image's own /etc/passwd (numeric
/// users run everywhere, also where a name cannot be looked up).
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
    let text = String::from_utf8_lossy(&passwd);
    let entry = text
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 4 && (f[0] == name || f[2] == name))
        .ok_or_else(|| {
            BuildError::Entrypoint(format!("user {name:?} is not in the image's /etc/passwd"))
        })?;
    let gid = match group {
        None => entry[3].to_string(),
        Some(g) if g.parse::<u32>().is_ok() => g.to_string(),
        Some(g) => {
            let groups = fs
                .resolve("/etc/group")
                .map(|(_, f)| fs.read(&f, 1 << 20))
                .unwrap_or_default();
            let text = String::from_utf8_lossy(&groups);
            text.lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 3 && f[0] == g)
                .map(|f| f[2].to_string())
                .ok_or_else(|| {
                    BuildError::Entrypoint(format!("group {g:?} is not in the image's /etc/group"))
                })?
        }
    };
    Ok(format!("{}:{gid}", entry[2]))
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
