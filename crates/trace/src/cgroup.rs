//! A memory cgroup for one run, where whittle may make one: as root, a child of
//! its own cgroup in the v1 `memory` hierarchy, or in the v2 hierarchy when its
//! own cgroup already delegates the `memory` controller. (An ordinary user on
//! cgroup v1 gets no delegation: the memory limit is then not enforced, and
//! docs/SECURITY.md says so.)

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::TraceError;

/// Which hierarchy the group lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

/// One run's memory cgroup, removed when dropped (after its processes are gone).
#[derive(Debug)]
pub(crate) struct MemoryCgroup {
    dir: PathBuf,
    version: Version,
}

/// `(mount point, own path)` of the hierarchy holding `memory`.
fn locate() -> Option<(PathBuf, String, Version)> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    for line in mounts.lines() {
        // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS ... - FSTYPE SOURCE SUPEROPTS
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mut fields = left.split_whitespace();
        // ROOT: the part of the hierarchy mounted there (in a container without its own
        // cgroup namespace, its own group: /proc/self/cgroup's path then starts with it).
        let root = fields.nth(3)?;
        let point = fields.next()?;
        let below_root = |path: &str| -> String {
            match path.strip_prefix(root) {
                Some(rest) if root != "/" && (rest.is_empty() || rest.starts_with('/')) => {
                    rest.to_string()
                }
                _ => path.to_string(),
            }
        };
        let mut r = right.split_whitespace();
        let (fstype, super_opts) = (r.next()?, r.nth(1).unwrap_or(""));
        match fstype {
            "cgroup" if super_opts.split(',').any(|o| o == "memory") => {
                let path = own.lines().find_map(|l| {
                    let mut f = l.splitn(3, ':');
                    let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
                    controllers
                        .split(',')
                        .any(|c| c == "memory")
                        .then(|| below_root(path))
                })?;
                return Some((PathBuf::from(point), path, Version::V1));
            }
            "cgroup2" => {
                let path = own
                    .lines()
                    .find_map(|l| l.strip_prefix("0::"))
                    .map(below_root);
                if let Some(path) = path {
                    let base = Path::new(point).join(path.trim_start_matches('/'));
                    let delegated = std::fs::read_to_string(base.join("cgroup.subtree_control"))
                        .is_ok_and(|c| c.split_whitespace().any(|w| w == "memory"));
                    if delegated {
                        return Some((PathBuf::from(point), path, Version::V2));
                    }
                }
            }
            _ => {}
        }
    }
    None
}

impl MemoryCgroup {
    /// A new group limited to `bytes`, or `None` where whittle cannot make one.
    pub(crate) fn create(bytes: u64) -> Result<Option<MemoryCgroup>, TraceError> {
        let Some((mount, own, version)) = locate() else {
            return Ok(None);
        };
        static COUNT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "whittle-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
        let dir = mount.join(own.trim_start_matches('/')).join(name);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            // Not ours to divide (an ordinary user, a read-only hierarchy, a group this
            // mount namespace does not show).
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::PermissionDenied
                        | std::io::ErrorKind::ReadOnlyFilesystem
                        | std::io::ErrorKind::NotFound
                ) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(TraceError::io("cannot create the cgroup", &dir, e)),
        }
        let group = MemoryCgroup { dir, version };
        let file = match version {
            Version::V1 => "memory.limit_in_bytes",
            Version::V2 => "memory.max",
        };
        group.write(file, &bytes.to_string())?;
        if version == Version::V2 {
            // No swap beyond the limit, as with Docker's --memory alone.
            let _ = group.write("memory.swap.max", "0");
        }
        Ok(Some(group))
    }

    fn write(&self, file: &str, text: &str) -> Result<(), TraceError> {
        let path = self.dir.join(file);
        std::fs::write(&path, text).map_err(|e| TraceError::io("cannot write", &path, e))
    }

    /// Moves `pid` (and so what it forks from now on) into the group.
    pub(crate) fn add(&self, pid: libc::pid_t) -> Result<(), TraceError> {
        self.write("cgroup.procs", &pid.to_string())
    }

    /// Whether the kernel killed a process of the group for exceeding the limit.
    pub(crate) fn oom_killed(&self) -> bool {
        let (file, key) = match self.version {
            Version::V1 => ("memory.oom_control", "oom_kill"),
            Version::V2 => ("memory.events", "oom_kill"),
        };
        std::fs::read_to_string(self.dir.join(file))
            .ok()
            .and_then(|t| {
                t.lines().find_map(|l| {
                    let (k, v) = l.split_once(' ')?;
                    (k == key).then(|| v.trim().parse::<u64>().ok()).flatten()
                })
            })
            .is_some_and(|n| n > 0)
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        // The group can be removed once its last process is reaped, which may lag a moment.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

/// Parses a memory size: bytes, or with a `k`, `m`, `g` suffix (`512m`, `2g`, `1.5G`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    num.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|v| (v * mult as f64) as u64)
        .filter(|b| *b == 0 || *b >= 6 << 20)
        .ok_or_else(|| {
            format!("{s:?} is not a memory size of at least 6m (like 512m or 2g; 0 for no limit)")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_size("512m").unwrap(), 512 << 20);
        assert_eq!(parse_size("2G").unwrap(), 2 << 30);
        assert_eq!(parse_size("1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_size("0").unwrap(), 0);
        assert_eq!(parse_size("8388608").unwrap(), 8 << 20);
        assert!(parse_size("1k").is_err());
        assert!(parse_size("lots").is_err());
        assert!(parse_size("-1g").is_err());
    }
}
