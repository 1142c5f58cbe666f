//! Package URLs (<https://github.com/package-url/purl-spec>) for OS packages and images.
//!
//! Scanners match vulnerabilities by purl, so the form follows what syft and trivy write:
//! `pkg:deb/debian/libc6@2.36-9%2Bdeb12u7?arch=amd64&distro=debian-12&upstream=glibc`.

use whittle_slim::pkgdb::{InstalledPackage, OsRelease, PkgDbKind};

/// Percent-encodes everything but RFC 3986's unreserved characters, so `+` in Debian
/// versions, `:` of epochs and `/` never break the purl's structure.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A purl from its parts; qualifiers with empty values are left out and the rest sorted by
/// key, as the purl spec's canonical form asks.
pub fn format(
    kind: &str,
    namespace: Option<&str>,
    name: &str,
    version: Option<&str>,
    qualifiers: &[(&str, Option<&str>)],
) -> String {
    let mut out = format!("pkg:{kind}/");
    if let Some(ns) = namespace.filter(|n| !n.is_empty()) {
        out.push_str(&encode(&ns.to_ascii_lowercase()));
        out.push('/');
    }
    out.push_str(&encode(name));
    if let Some(v) = version.filter(|v| !v.is_empty()) {
        out.push('@');
        out.push_str(&encode(v));
    }
    let mut q: Vec<(&str, &str)> = qualifiers
        .iter()
        .filter_map(|(k, v)| Some((*k, v.filter(|v| !v.is_empty())?)))
        .collect();
    q.sort();
    for (i, (k, v)) in q.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(k);
        out.push('=');
        out.push_str(&encode(v));
    }
    out
}

/// The purl of an installed OS package: `pkg:deb/ID/...` (ID from os-release, `debian` if
/// unknown) or `pkg:apk/ID/...` (`alpine`), with `arch`, `distro=ID-VERSION_ID` when
/// os-release gives a version, and `upstream` naming the source package when it differs.
pub fn of_package(p: &InstalledPackage, os: &OsRelease) -> String {
    let (kind, default_ns) = match p.kind {
        PkgDbKind::Dpkg => ("deb", "debian"),
        PkgDbKind::Apk => ("apk", "alpine"),
    };
    let ns = os.id.as_deref().unwrap_or(default_ns).to_ascii_lowercase();
    let distro = os.version_id.as_deref().map(|v| format!("{ns}-{v}"));
    let upstream = (p.source_name != p.name).then_some(p.source_name.as_str());
    format(
        kind,
        Some(&ns),
        &p.name,
        p.version.as_deref(),
        &[
            ("arch", p.arch.as_deref()),
            ("distro", distro.as_deref()),
            ("upstream", upstream),
        ],
    )
}

/// The purl of an image by manifest digest: `pkg:oci/NAME@sha256%3AHEX`, NAME being the
/// last path segment of `name` without tag or digest, lowercased.
pub fn of_image(name: &str, digest: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    let last = last.split(['@', ':']).next().unwrap_or(last);
    let last = if last.is_empty() { "image" } else { last };
    format("oci", None, &last.to_ascii_lowercase(), Some(digest), &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deb(name: &str, version: &str, source: &str) -> InstalledPackage {
        InstalledPackage {
            kind: PkgDbKind::Dpkg,
            name: name.into(),
            version: Some(version.into()),
            arch: Some("amd64".into()),
            source_name: source.into(),
            source_version: Some(version.into()),
            files: vec![],
        }
    }

    fn bookworm() -> OsRelease {
        OsRelease {
            id: Some("debian".into()),
            version_id: Some("12".into()),
        }
    }

    #[test]
    fn debian_packages() {
        assert_eq!(
            of_package(&deb("libc6", "2.36-9+deb12u7", "glibc"), &bookworm()),
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u7?arch=amd64&distro=debian-12&upstream=glibc"
        );
        assert_eq!(
            of_package(&deb("nginx-light", "1.22.1-9", "nginx-light"), &bookworm()),
            "pkg:deb/debian/nginx-light@1.22.1-9?arch=amd64&distro=debian-12"
        );
        // Epochs, '~' and '+' in names.
        assert_eq!(
            of_package(
                &deb("libstdc++6", "1:12.2.0~rc1", "gcc-12"),
                &OsRelease::default()
            ),
            "pkg:deb/debian/libstdc%2B%2B6@1%3A12.2.0~rc1?arch=amd64&upstream=gcc-12"
        );
    }

    #[test]
    fn alpine_packages() {
        let p = InstalledPackage {
            kind: PkgDbKind::Apk,
            name: "musl".into(),
            version: Some("1.2.4_git20230717-r4".into()),
            arch: Some("x86_64".into()),
            source_name: "musl".into(),
            source_version: None,
            files: vec![],
        };
        assert_eq!(
            of_package(&p, &OsRelease::default()),
            "pkg:apk/alpine/musl@1.2.4_git20230717-r4?arch=x86_64"
        );
        let os = OsRelease {
            id: Some("alpine".into()),
            version_id: Some("3.19.1".into()),
        };
        assert_eq!(
            of_package(&p, &os),
            "pkg:apk/alpine/musl@1.2.4_git20230717-r4?arch=x86_64&distro=alpine-3.19.1"
        );
    }

    #[test]
    fn escaping_and_qualifier_order() {
        assert_eq!(encode("a b/c?d&e=f#g@h"), "a%20b%2Fc%3Fd%26e%3Df%23g%40h");
        assert_eq!(encode("é"), "%C3%A9");
        assert_eq!(
            format(
                "generic",
                None,
                "x",
                None,
                &[("z", Some("1")), ("a", Some("&")), ("m", None)]
            ),
            "pkg:generic/x?a=%26&z=1"
        );
    }

    #[test]
    fn images() {
        assert_eq!(
            of_image("registry:5000/library/Nginx:1.25", "sha256:abc"),
            "pkg:oci/nginx@sha256%3Aabc"
        );
        assert_eq!(of_image("", "sha256:abc"), "pkg:oci/image@sha256%3Aabc");
    }
}
