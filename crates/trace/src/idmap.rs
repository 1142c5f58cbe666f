//! The user namespace's id maps: which host ids stand for the image's ids.
//!
//! - As root: the image's ids 0‥65535 map onto an unprivileged host range —
//!   the `/etc/subuid` and `/etc/subgid` entry of the user `whittle`, else of
//!   `root`, else [`DEFAULT_ROOT_RANGE`] — written straight into `uid_map`.
//! - As an ordinary user with a subordinate range and Debian's `uidmap`
//!   (`newuidmap`/`newgidmap`): the image's root is the user, ids 1‥ are the
//!   user's subordinate range.
//! - Otherwise one id: the image's user is the caller, every other id of the
//!   image is unmapped (shows as `nobody`), and supplementary groups cannot be
//!   set. [`IdMapping::note`] says so.

use std::path::Path;
use std::process::Command;

use crate::TraceError;

/// One line of a `uid_map`/`gid_map`: `inside` ‥ `inside + count` ↦ `host` ‥.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdRange {
    /// First id inside the namespace.
    pub inside: u32,
    /// First host id.
    pub host: u32,
    /// How many ids.
    pub count: u32,
}

/// How the maps are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapMethod {
    /// Written directly (whittle is root).
    Direct,
    /// Through the set-uid helpers `newuidmap`/`newgidmap`.
    Helpers,
    /// One id each, written directly by an ordinary user (`setgroups` denied).
    Single,
}

/// The id maps of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdMapping {
    /// User ids.
    pub uids: Vec<IdRange>,
    /// Group ids.
    pub gids: Vec<IdRange>,
    /// How they are written.
    pub method: MapMethod,
}

/// The host range root maps image ids onto when `/etc/subuid` names none for
/// `whittle` or `root`: far above the ranges `useradd` hands out (100000 on).
pub const DEFAULT_ROOT_RANGE: (u32, u32) = (1_000_000_000, 65_536);

/// How many image ids a mapped range covers at most.
const RANGE: u32 = 65_536;

impl IdMapping {
    /// One id each: `uid` inside is `host_uid` outside, likewise for the group.
    pub fn single(uid: u32, gid: u32, host_uid: u32, host_gid: u32) -> IdMapping {
        IdMapping {
            uids: vec![IdRange {
                inside: uid,
                host: host_uid,
                count: 1,
            }],
            gids: vec![IdRange {
                inside: gid,
                host: host_gid,
                count: 1,
            }],
            method: MapMethod::Single,
        }
    }

    /// The maps for this process, running a program as `uid:gid` inside.
    pub fn for_caller(uid: u32, gid: u32) -> IdMapping {
        let (euid, egid) = (nix::unistd::geteuid(), nix::unistd::getegid());
        let subuid = std::fs::read_to_string("/etc/subuid").unwrap_or_default();
        let subgid = std::fs::read_to_string("/etc/subgid").unwrap_or_default();
        if euid.is_root() {
            let pick = |text: &str| {
                subordinate(text, "whittle", None)
                    .or_else(|| subordinate(text, "root", Some(0)))
                    .map(|(start, count)| (start, count.min(RANGE)))
                    .unwrap_or(DEFAULT_ROOT_RANGE)
            };
            let (u, g) = (pick(&subuid), pick(&subgid));
            return IdMapping {
                uids: vec![IdRange {
                    inside: 0,
                    host: u.0,
                    count: u.1,
                }],
                gids: vec![IdRange {
                    inside: 0,
                    host: g.0,
                    count: g.1,
                }],
                method: MapMethod::Direct,
            };
        }
        let name = nix::unistd::User::from_uid(euid)
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_default();
        let ranges = (
            subordinate(&subuid, &name, Some(euid.as_raw())),
            subordinate(&subgid, &name, Some(euid.as_raw())),
        );
        let helpers = helper("newuidmap").is_some() && helper("newgidmap").is_some();
        match ranges {
            (Some(u), Some(g)) if helpers && u.1 > 0 && g.1 > 0 => IdMapping {
                uids: vec![
                    IdRange {
                        inside: 0,
                        host: euid.as_raw(),
                        count: 1,
                    },
                    IdRange {
                        inside: 1,
                        host: u.0,
                        count: u.1.min(RANGE - 1),
                    },
                ],
                gids: vec![
                    IdRange {
                        inside: 0,
                        host: egid.as_raw(),
                        count: 1,
                    },
                    IdRange {
                        inside: 1,
                        host: g.0,
                        count: g.1.min(RANGE - 1),
                    },
                ],
                method: MapMethod::Helpers,
            },
            _ => IdMapping::single(uid, gid, euid.as_raw(), egid.as_raw()),
        }
    }

    /// What this mapping cannot do, in words (`None` when it maps a full range).
    pub fn note(&self) -> Option<String> {
        (self.method == MapMethod::Single).then(|| {
            "no subordinate id range for this user (or no newuidmap/newgidmap: install Debian's \
             uidmap and add an /etc/subuid and /etc/subgid entry): the program runs with one id, \
             files of other owners in the image look owned by nobody, and supplementary groups \
             are not set"
                .to_string()
        })
    }

    /// The host ids standing for the image's `uid:gid`, when both are mapped.
    pub fn to_host(&self, uid: u32, gid: u32) -> Option<(u32, u32)> {
        Some((lookup(&self.uids, uid)?, lookup(&self.gids, gid)?))
    }

    /// Whether `setgroups` works inside (it is denied with a single-id map).
    pub fn can_set_groups(&self) -> bool {
        self.method != MapMethod::Single
    }

    /// Writes the maps of the new user namespace of `pid` (which waits for them).
    pub fn apply(&self, pid: libc::pid_t) -> Result<(), TraceError> {
        match self.method {
            MapMethod::Direct | MapMethod::Single => {
                if self.method == MapMethod::Single {
                    write_proc(pid, "setgroups", "deny")?;
                }
                write_proc(pid, "uid_map", &map_text(&self.uids))?;
                write_proc(pid, "gid_map", &map_text(&self.gids))
            }
            MapMethod::Helpers => {
                run_helper("newuidmap", pid, &self.uids)?;
                run_helper("newgidmap", pid, &self.gids)
            }
        }
    }
}

fn lookup(ranges: &[IdRange], id: u32) -> Option<u32> {
    ranges
        .iter()
        .find(|r| id >= r.inside && id - r.inside < r.count)
        .map(|r| r.host + (id - r.inside))
}

fn map_text(ranges: &[IdRange]) -> String {
    ranges
        .iter()
        .map(|r| format!("{} {} {}\n", r.inside, r.host, r.count))
        .collect()
}

fn write_proc(pid: libc::pid_t, file: &str, text: &str) -> Result<(), TraceError> {
    let path = format!("/proc/{pid}/{file}");
    std::fs::write(&path, text)
        .map_err(|e| TraceError::io("cannot write the user namespace's map", Path::new(&path), e))
}

/// `/usr/bin/NAME` or `/bin/NAME` (never a PATH lookup: these are set-uid helpers).
fn helper(name: &str) -> Option<&'static str> {
    [
        "/usr/bin/newuidmap",
        "/bin/newuidmap",
        "/usr/bin/newgidmap",
        "/bin/newgidmap",
    ]
    .into_iter()
    .find(|p| p.ends_with(name) && Path::new(p).exists())
}

fn run_helper(name: &str, pid: libc::pid_t, ranges: &[IdRange]) -> Result<(), TraceError> {
    let Some(path) = helper(name) else {
        return Err(TraceError::Unsupported(format!(
            "{name} is missing (install uidmap)"
        )));
    };
    let mut cmd = Command::new(path);
    cmd.arg(pid.to_string());
    for r in ranges {
        cmd.args([
            r.inside.to_string(),
            r.host.to_string(),
            r.count.to_string(),
        ]);
    }
    let out = cmd
        .output()
        .map_err(|e| TraceError::io("cannot run", Path::new(path), e))?;
    if !out.status.success() {
        return Err(TraceError::Start(format!(
            "{name} refused the id map ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// The first `/etc/subuid`-style entry for `name` (or, when given, the numeric `id`).
fn subordinate(text: &str, name: &str, id: Option<u32>) -> Option<(u32, u32)> {
    text.lines().find_map(|line| {
        let mut f = line.trim().split(':');
        let (who, start, count) = (f.next()?, f.next()?, f.next()?);
        let matches = (!name.is_empty() && who == name)
            || id.is_some_and(|id| who.parse::<u32>().ok() == Some(id));
        if !matches {
            return None;
        }
        let (start, count) = (start.parse::<u32>().ok()?, count.parse::<u32>().ok()?);
        (count > 0 && start.checked_add(count).is_some()).then_some((start, count))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_subordinate_ranges() {
        let text = "# comment\nalice:100000:65536\n1001:165536:65536\nbad:x:1\n";
        assert_eq!(subordinate(text, "alice", None), Some((100000, 65536)));
        assert_eq!(subordinate(text, "bob", Some(1001)), Some((165536, 65536)));
        assert_eq!(subordinate(text, "bad", None), None);
        assert_eq!(subordinate(text, "carol", Some(7)), None);
        assert_eq!(subordinate("", "", None), None);
    }

    #[test]
    fn maps_image_ids_to_host_ids() {
        let m = IdMapping {
            uids: vec![
                IdRange {
                    inside: 0,
                    host: 1000,
                    count: 1,
                },
                IdRange {
                    inside: 1,
                    host: 100000,
                    count: 65535,
                },
            ],
            gids: vec![IdRange {
                inside: 0,
                host: 5000,
                count: 10,
            }],
            method: MapMethod::Helpers,
        };
        assert_eq!(m.to_host(0, 0), Some((1000, 5000)));
        assert_eq!(m.to_host(33, 9), Some((100032, 5009)));
        assert_eq!(m.to_host(33, 10), None);
        assert_eq!(m.to_host(65536, 0), None);
        assert_eq!(map_text(&m.uids), "0 1000 1\n1 100000 65535\n");
        assert!(m.note().is_none() && m.can_set_groups());
        let single = IdMapping::single(33, 33, 1000, 1000);
        assert_eq!(single.to_host(33, 33), Some((1000, 1000)));
        assert_eq!(single.to_host(0, 0), None);
        assert!(single.note().is_some() && !single.can_set_groups());
    }
}
