//! The image's `User` resolved against its own `/etc/passwd` and `/etc/group`,
//! as container runtimes do (never the host's).

use std::io::Read;
use std::path::Path;

use rustix::fs::OFlags;

use crate::rootfs::RootDir;
use crate::TraceError;

/// Who the program runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups (from `/etc/group` membership).
    pub groups: Vec<u32>,
    /// The home directory (for `HOME`), `/` when unknown.
    pub home: String,
}

/// Reads a file of the unpacked image, resolving symlinks as if `root` were `/`.
fn read_in_root(root: &Path, inside: &str) -> Option<String> {
    let fd = RootDir::open(root, None)
        .ok()?
        .resolve(inside, OFlags::RDONLY)
        .ok()?;
    let mut text = String::new();
    std::fs::File::from(fd)
        .take(16 << 20)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

fn fields(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| l.split(':').collect::<Vec<_>>())
}

/// Resolves `user` (`""`, `name`, `uid`, `name:group`, `uid:gid`) inside `root`.
pub fn resolve(root: &Path, user: &str) -> Result<Identity, TraceError> {
    let passwd = read_in_root(root, "/etc/passwd").unwrap_or_default();
    let group = read_in_root(root, "/etc/group").unwrap_or_default();
    resolve_in(&passwd, &group, user)
}

/// Resolves `user` against the text of an image's `/etc/passwd` and `/etc/group`.
pub fn resolve_in(passwd: &str, group: &str, user: &str) -> Result<Identity, TraceError> {
    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    let entry = fields(passwd).find(|f| {
        f.len() >= 7
            && (f[0] == user_part || (user_part.parse::<u32>().is_ok() && f[2] == user_part))
    });
    let (uid, mut gid, name, home) = match (&entry, user_part.parse::<u32>()) {
        (Some(f), _) => (
            f[2].parse::<u32>().map_err(|_| {
                TraceError::Config(format!(
                    "/etc/passwd of the image has a bad uid for {}",
                    f[0]
                ))
            })?,
            f[3].parse::<u32>().unwrap_or(0),
            Some(f[0].to_string()),
            f[5].to_string(),
        ),
        (None, Ok(uid)) => (uid, 0, None, "/".to_string()),
        (None, Err(_)) => {
            return Err(TraceError::Config(format!(
                "the image's user {user_part:?} is not in its /etc/passwd"
            )))
        }
    };
    if let Some(g) = group_part {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => fields(group)
                .find(|f| f.len() >= 3 && f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| {
                    TraceError::Config(format!("the image's group {g:?} is not in its /etc/group"))
                })?,
        };
    }
    let mut groups = vec![gid];
    if let Some(name) = &name {
        for f in fields(group) {
            if f.len() >= 4 && f[3].split(',').any(|m| m == name) {
                if let Ok(g) = f[2].parse::<u32>() {
                    if !groups.contains(&g) {
                        groups.push(g);
                    }
                }
            }
        }
    }
    Ok(Identity {
        uid,
        gid,
        groups,
        home: if home.is_empty() { "/".into() } else { home },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www:/var/www:/usr/sbin/nologin\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\nwww-data:x:33:\nadm:x:4:www-data,other\n",
        )
        .unwrap();
        dir
    }

    #[test]
    fn resolves_names_ids_and_groups() {
        let r = root();
        assert_eq!(resolve(r.path(), "").unwrap().uid, 0);
        let www = resolve(r.path(), "www-data").unwrap();
        assert_eq!(
            (www.uid, www.gid, www.groups.clone(), www.home.as_str()),
            (33, 33, vec![33, 4], "/var/www")
        );
        assert_eq!(
            resolve(r.path(), "1234:5").unwrap(),
            Identity {
                uid: 1234,
                gid: 5,
                groups: vec![5],
                home: "/".into()
            }
        );
        assert_eq!(resolve(r.path(), "www-data:adm").unwrap().gid, 4);
        assert!(resolve(r.path(), "nobody")
            .unwrap_err()
            .to_string()
            .contains("not in its /etc/passwd"));
        assert!(resolve(r.path(), "root:wheel").is_err());
    }

    #[test]
    fn a_passwd_symlink_stays_in_the_root() {
        let r = root();
        std::fs::remove_file(r.path().join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink("/etc/shadow-of-host", r.path().join("etc/passwd")).unwrap();
        // Resolved inside the root, the link leads nowhere: the user is unknown.
        assert!(resolve(r.path(), "www-data").is_err());
    }
}
