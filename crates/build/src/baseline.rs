//! The files every container needs, generated rather than taken from a
//! distribution: users and groups (root, nobody, nonroot 65532, each with a
//! home), `nsswitch.conf`, `os-release` naming the build, and `/tmp`.

use crate::stage::{StagedEntry, StagedKind};

/// The uid/gid of the unprivileged user images run as by convention.
pub const NONROOT: u32 = 65532;
/// nobody's uid/gid.
pub const NOBODY: u32 = 65534;

fn dir(path: &str, mode: u32, owner: u32) -> StagedEntry {
    StagedEntry {
        path: path.to_string(),
        kind: StagedKind::Dir,
        mode,
        uid: owner,
        gid: owner,
    }
}

fn file(path: &str, content: String) -> StagedEntry {
    StagedEntry {
        path: path.to_string(),
        kind: StagedKind::Bytes(content.into_bytes()),
        mode: 0o644,
        uid: 0,
        gid: 0,
    }
}

/// The baseline entries; `name` is the build's name for `/etc/os-release`.
pub fn entries(name: &str) -> Vec<StagedEntry> {
    let passwd = format!(
        "root:x:0:0:root:/root:/sbin/nologin\n\
         nobody:x:{NOBODY}:{NOBODY}:nobody:/nonexistent:/sbin/nologin\n\
         nonroot:x:{NONROOT}:{NONROOT}:nonroot:/home/nonroot:/sbin/nologin\n"
    );
    let group = format!(
        "root:x:0:\n\
         tty:x:5:\n\
         staff:x:50:\n\
         nogroup:x:{NOBODY}:\n\
         nonroot:x:{NONROOT}:\n"
    );
    // Only `files` and `dns`: they need no NSS module, so a static program works too.
    let nsswitch = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n".to_string();
    let safe_name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let os_release = format!(
        "PRETTY_NAME=\"{safe_name} (built by whittle)\"\nNAME=\"{safe_name}\"\nID=whittle\nHOME_URL=\"https://github.com/whittle\"\n"
    );
    vec![
        dir("etc", 0o755, 0),
        file("etc/group", group),
        file("etc/nsswitch.conf", nsswitch),
        file("etc/os-release", os_release),
        file("etc/passwd", passwd),
        dir("home", 0o755, 0),
        dir("home/nonroot", 0o700, NONROOT),
        dir("root", 0o700, 0),
        // Run-time state (pid files, sockets): most daemons expect it to exist.
        dir("run", 0o755, 0),
        dir("tmp", 0o1777, 0),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_have_homes_and_tmp_is_sticky() {
        let e = entries("hello world");
        let get = |p: &str| e.iter().find(|x| x.path == p).unwrap();
        let StagedKind::Bytes(passwd) = &get("etc/passwd").kind else {
            panic!()
        };
        let passwd = String::from_utf8(passwd.clone()).unwrap();
        assert!(passwd.contains("nonroot:x:65532:65532:nonroot:/home/nonroot:"));
        assert!(passwd.starts_with("root:x:0:0:"));
        assert_eq!(get("home/nonroot").uid, NONROOT);
        assert_eq!(get("tmp").mode, 0o1777);
        let StagedKind::Bytes(os) = &get("etc/os-release").kind else {
            panic!()
        };
        assert!(String::from_utf8(os.clone())
            .unwrap()
            .contains("NAME=\"hello-world\""));
        // Sorted, so the layer is a function of the content alone.
        let paths: Vec<_> = e.iter().map(|x| x.path.clone()).collect();
        let mut sorted = paths.clone();
        sorted.sort();
        assert_eq!(paths, sorted);
    }
}
