//! The package database without the dropped paths: dpkg's file lists and md5sums, apk's
//! `installed`. Pure functions over text; lines that stay keep their bytes.

use crate::image_root::absolute;

/// dpkg's `info/PKG.list` without the lines naming a dropped path; `None` when none does.
pub fn filter_dpkg_list(text: &str, dropped: impl Fn(&str) -> bool) -> Option<String> {
    filter_lines(text, |line| {
        let rel = line.trim_start_matches('/').trim_end_matches('/');
        let rel = if rel == "." { "" } else { rel };
        dropped(&absolute(rel))
    })
}

/// dpkg's `info/PKG.md5sums` (`HASH  relative/path`) without the lines of dropped paths;
/// `None` when none is.
pub fn filter_dpkg_md5sums(text: &str, dropped: impl Fn(&str) -> bool) -> Option<String> {
    filter_lines(text, |line| {
        line.split_once("  ")
            .is_some_and(|(_, rel)| dropped(&absolute(rel.trim_start_matches('/'))))
    })
}

/// apk's `installed` without the `F:` directories and `R:` files that were dropped, nor
/// the attribute lines that follow them (`M:` of a directory, `a:` and `Z:` of a file);
/// `None` when nothing was. Other lines stay byte for byte.
pub fn filter_apk_installed(text: &str, dropped: impl Fn(&str) -> bool) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut removed = false;
    let mut dir = String::from("/");
    // Whether the attribute lines that follow belong to a dropped entry.
    let mut skipping = false;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches('\n').trim_end_matches('\r');
        let drop_line = match bare.split_once(':') {
            Some(("F", value)) => {
                dir = absolute(value.trim_start_matches('/').trim_end_matches('/'));
                skipping = dropped(&dir);
                skipping
            }
            Some(("R", name)) if !name.is_empty() => {
                let sep = if dir.ends_with('/') { "" } else { "/" };
                skipping = dropped(&format!("{dir}{sep}{name}"));
                skipping
            }
            Some(("M" | "a" | "Z", _)) => skipping,
            _ => {
                // A new package (or any other field) ends the entry and resets the directory.
                if bare.is_empty() {
                    dir = String::from("/");
                }
                skipping = false;
                false
            }
        };
        if drop_line {
            removed = true;
        } else {
            out.push_str(line);
        }
    }
    removed.then_some(out)
}

/// `text` without the lines `drop_line` is true for, other lines byte for byte.
fn filter_lines(text: &str, drop_line: impl Fn(&str) -> bool) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut removed = false;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches('\n').trim_end_matches('\r');
        if !bare.is_empty() && drop_line(bare) {
            removed = true;
        } else {
            out.push_str(line);
        }
    }
    removed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_files_lose_exactly_the_dropped_lines() {
        let dropped = |p: &str| {
            p.starts_with("/usr/share/doc/gzip/") && !p.ends_with("copyright")
                || p == "/usr/share/doc/gzip"
        };
        let list = "/.\n/usr\n/usr/share/doc\n/usr/share/doc/gzip\n/usr/share/doc/gzip/NEWS.gz\n/usr/share/doc/gzip/copyright\n/usr/bin/gzip\n";
        assert_eq!(
            filter_dpkg_list(list, dropped).unwrap(),
            "/.\n/usr\n/usr/share/doc\n/usr/share/doc/gzip/copyright\n/usr/bin/gzip\n"
        );
        let sums = "0123  usr/bin/gzip\nabcd  usr/share/doc/gzip/NEWS.gz\n";
        assert_eq!(
            filter_dpkg_md5sums(sums, dropped).unwrap(),
            "0123  usr/bin/gzip\n"
        );
        assert_eq!(filter_dpkg_md5sums("0123  usr/bin/gzip", dropped), None);
    }

    #[test]
    fn apk_database_loses_dropped_entries_and_their_attributes() {
        let db = "C:Q1abc=\nP:busybox\nV:1.36\nF:bin\nR:busybox\na:0:0:755\nZ:Q1x=\n\
                  F:usr/share/man\nM:0:0:755\nF:usr/share/man/man1\nR:busybox.1.gz\nZ:Q1y=\n\
                  \nC:Q1def=\nP:zlib\nR:copyright\nZ:Q1z=\n";
        let dropped = |p: &str| p.starts_with("/usr/share/man/") || p == "/copyright";
        assert_eq!(
            filter_apk_installed(db, dropped).unwrap(),
            "C:Q1abc=\nP:busybox\nV:1.36\nF:bin\nR:busybox\na:0:0:755\nZ:Q1x=\n\
             F:usr/share/man\nM:0:0:755\n\nC:Q1def=\nP:zlib\n"
        );
        assert_eq!(filter_apk_installed(db, |_: &str| false), None);
    }
}
