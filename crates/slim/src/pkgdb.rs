//! Package databases trimmed to the packages that still have files in the output.
//!
//! Vulnerability scanners (trivy, grype, syft) do not look at files: they read the package
//! database and report every package listed there. A slimmed image that keeps the database
//! unchanged therefore reports packages whose files are gone, and one that drops it reports
//! nothing. This module rewrites the database so that it lists exactly the packages that
//! still own files in the output.
//!
//! Everything here is a pure function over text. Which packages "still have files" is the
//! caller's decision, passed in as a predicate: the caller knows the output tree, and should
//! count only paths that are not directories there (every package owns `/usr` or `/lib`, so
//! directories alone would keep every package).
//!
//! Both formats are blocks of `Key: value` (dpkg) or `K:value` (apk) lines separated by blank
//! lines. Trimming keeps each surviving block's bytes exactly as they were, in their original
//! order, so the output is a deterministic function of the input and the predicate.

/// Which package database an image has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PkgDbKind {
    /// Debian and derivatives: [`DPKG_STATUS`] plus one file list per package in
    /// [`DPKG_INFO_DIR`].
    Dpkg,
    /// Alpine: [`APK_INSTALLED`], which holds both the packages and their files.
    Apk,
}

/// Where dpkg's status database lives (absolute path inside the image).
pub const DPKG_STATUS: &str = "/var/lib/dpkg/status";

/// The directory holding dpkg's per-package `PKG.list` files (absolute path inside the image).
pub const DPKG_INFO_DIR: &str = "/var/lib/dpkg/info";

/// Where apk's installed database lives (absolute path inside the image).
pub const APK_INSTALLED: &str = "/lib/apk/db/installed";

/// One package and the paths it owns (absolute, as in the image, no trailing slash).
///
/// Like a dpkg file list, `files` holds the package's directories as well as its files, in
/// the order the database gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// The package name (`P:` in apk, `Package:` in dpkg).
    pub name: String,
    /// The package architecture, if the database records one.
    pub arch: Option<String>,
    /// The package version (`V:`), if recorded.
    pub version: Option<String>,
    /// The package it was built from (`o:`, apk's origin), if recorded.
    pub origin: Option<String>,
    /// Absolute paths the package owns, directories included.
    pub files: Vec<String>,
}

/// One stanza of a dpkg `status` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpkgStanza {
    /// The `Package:` field; empty if the stanza has none.
    pub name: String,
    /// The `Architecture:` field, if present and non-empty.
    pub arch: Option<String>,
    /// Whether the `Status:` field's last word is `installed` (`install ok installed`,
    /// `hold ok installed`), as opposed to `config-files`, `half-installed` and the like.
    pub installed: bool,
    /// The `Version:` field, if present and non-empty.
    pub version: Option<String>,
    /// The `Source:` field, if present and non-empty: `NAME` or `NAME (VERSION)` (see
    /// [`parse_dpkg_source`]).
    pub source: Option<String>,
    /// The stanza's exact text: its lines as in the file, without the line break after the
    /// last one.
    pub text: String,
}

/// dpkg: the file list file names for a status stanza's package, in preference order.
///
/// dpkg names the list `PKG:ARCH.list` for `Multi-Arch: same` packages and `PKG.list` for all
/// others; the status stanza's architecture alone does not say which, so both candidates are
/// returned, the architecture-qualified one first (it exists only for the package it names).
/// The caller takes the first that exists in [`DPKG_INFO_DIR`]. A name or architecture that
/// is empty or contains `/` or NUL (which dpkg never writes) yields no candidate for it.
pub fn dpkg_list_names(name: &str, arch: Option<&str>) -> Vec<String> {
    if !is_file_name_part(name) {
        return Vec::new();
    }
    let mut names = Vec::with_capacity(2);
    if let Some(arch) = arch.filter(|a| is_file_name_part(a)) {
        names.push(format!("{name}:{arch}.list"));
    }
    names.push(format!("{name}.list"));
    names
}

/// Whether `part` can be used inside a single file name without escaping its directory.
fn is_file_name_part(part: &str) -> bool {
    !part.is_empty() && !part.contains(['/', '\0'])
}

/// Parses a dpkg `status` file into stanzas.
///
/// Stanzas are separated by one or more blank lines (lines of only spaces and tabs count as
/// blank); lines starting with a space or tab continue the previous field. Field names are
/// matched case-insensitively. Only stanzas whose `Status:` ends in ` installed` are marked
/// installed. Stanzas without a `Package:` field are returned with an empty name.
pub fn parse_dpkg_status(text: &str) -> Vec<DpkgStanza> {
    blocks(text)
        .into_iter()
        .map(|block| {
            let mut stanza = DpkgStanza {
                name: String::new(),
                arch: None,
                installed: false,
                version: None,
                source: None,
                text: block.to_owned(),
            };
            let (mut seen_name, mut seen_arch, mut seen_status) = (false, false, false);
            let non_empty = |v: &str| Some(v.to_owned()).filter(|v| !v.is_empty());
            for (key, value) in dpkg_fields(block) {
                if key.eq_ignore_ascii_case("Package") && !seen_name {
                    seen_name = true;
                    stanza.name = value.to_owned();
                } else if key.eq_ignore_ascii_case("Architecture") && !seen_arch {
                    seen_arch = true;
                    stanza.arch = Some(value.to_owned()).filter(|a| !a.is_empty());
                } else if key.eq_ignore_ascii_case("Status") && !seen_status {
                    seen_status = true;
                    stanza.installed = status_is_installed(value);
                } else if key.eq_ignore_ascii_case("Version") && stanza.version.is_none() {
                    stanza.version = non_empty(value);
                } else if key.eq_ignore_ascii_case("Source") && stanza.source.is_none() {
                    stanza.source = non_empty(value);
                }
            }
            stanza
        })
        .collect()
}

/// The first line of each field of a dpkg stanza as `(name, value)`, both trimmed.
fn dpkg_fields(block: &str) -> impl Iterator<Item = (&str, &str)> {
    block
        .split('\n')
        .filter(|line| !line.starts_with([' ', '\t', '#']))
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.trim(), value.trim()))
}

/// Whether a `Status:` value (`want flag status`) says the package is installed.
fn status_is_installed(value: &str) -> bool {
    let mut words = value.split_whitespace();
    let last = words.next_back();
    last == Some("installed") && words.next().is_some()
}

/// Parses a dpkg `info/PKG.list` file (one absolute path per line) into paths.
///
/// `/.` (how dpkg records the root) becomes `/`; trailing slashes are removed, a missing
/// leading slash is added, and empty lines are skipped. Order is kept.
pub fn parse_dpkg_list(text: &str) -> Vec<String> {
    text.split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .filter(|line| !line.is_empty())
        .map(|line| absolute(line.trim_start_matches('/')))
        .collect()
}

/// `/` followed by `rel` without its trailing slashes or a final `/.`; the root is `/`.
fn absolute(rel: &str) -> String {
    let rel = rel.trim_end_matches('/');
    let rel = if rel == "." {
        ""
    } else {
        rel.strip_suffix("/.").unwrap_or(rel)
    };
    format!("/{rel}")
}

/// The dpkg status text keeping only the stanzas of installed packages for which
/// `has_files(name, arch)` is true.
///
/// Kept stanzas appear in their original order and exact original text, separated by one
/// blank line, and the result ends with a newline; it is empty if no stanza remains.
/// Stanzas that are not installed (for example `deinstall ok config-files`) or have no
/// `Package:` field are dropped without asking the predicate. The predicate should be true
/// only if some path of the package that is not a directory survives in the output.
pub fn trim_dpkg_status(text: &str, has_files: impl Fn(&str, Option<&str>) -> bool) -> String {
    let kept = parse_dpkg_status(text).into_iter().filter(|stanza| {
        stanza.installed
            && !stanza.name.is_empty()
            && has_files(&stanza.name, stanza.arch.as_deref())
    });
    join_blocks(kept.map(|stanza| stanza.text))
}

/// Parses apk's `installed` database into packages.
///
/// Blocks are separated by blank lines. In each block `P:` is the package name, `A:` the
/// architecture, `F:` a directory (relative to `/`, no leading slash) and `R:` a file in the
/// latest `F:` directory, or in `/` if no `F:` came before it. `files` lists every `F:`
/// directory and `R:` file as an absolute path, in database order. Blocks without `P:` are
/// skipped.
pub fn parse_apk_installed(text: &str) -> Vec<Package> {
    blocks(text)
        .into_iter()
        .filter_map(|block| {
            let mut name = None;
            let mut arch = None;
            let mut version = None;
            let mut origin = None;
            let mut files = Vec::new();
            let mut dir = String::new();
            for (key, value) in apk_fields(block) {
                match key {
                    'P' if name.is_none() => name = Some(value.to_owned()),
                    'A' if arch.is_none() => arch = Some(value.to_owned()),
                    'V' if version.is_none() => version = Some(value.to_owned()),
                    'o' if origin.is_none() => origin = Some(value.to_owned()),
                    'F' => {
                        dir = absolute(value.trim_start_matches('/'));
                        files.push(dir.clone());
                    }
                    'R' if !value.is_empty() => {
                        let sep = if dir.ends_with('/') { "" } else { "/" };
                        files.push(format!("{dir}{sep}{value}"));
                    }
                    _ => {}
                }
            }
            let name = name.filter(|n| !n.is_empty())?;
            Some(Package {
                name,
                arch: arch.filter(|a| !a.is_empty()),
                version: version.filter(|v| !v.is_empty()),
                origin: origin.filter(|o| !o.is_empty()),
                files,
            })
        })
        .collect()
}

/// The lines of an apk block as `(key, value)`; lines not of the form `K:value` are skipped.
fn apk_fields(block: &str) -> impl Iterator<Item = (char, &str)> {
    block.split('\n').filter_map(|line| {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let mut chars = line.chars();
        let key = chars.next()?;
        let value = chars.as_str().strip_prefix(':')?;
        Some((key, value))
    })
}

/// apk's installed text keeping only the blocks of packages for which `keep(name)` is true.
///
/// Kept blocks appear in their original order with their text unchanged, separated by one
/// blank line, and the result ends with a newline; it is empty if no block remains. Blocks
/// without a `P:` line are dropped without asking the predicate.
pub fn trim_apk_installed(text: &str, keep: impl Fn(&str) -> bool) -> String {
    let kept = blocks(text).into_iter().filter(|block| {
        apk_fields(block)
            .find(|(key, _)| *key == 'P')
            .is_some_and(|(_, name)| !name.is_empty() && keep(name))
    });
    join_blocks(kept)
}

/// dpkg's `Source:` value as `(name, version)`: `glibc` or `glibc (2.36-9)`. The version is
/// there only when the binary package's version differs from its source's (binNMUs,
/// packages like `libgcc-s1` built from `gcc-12`).
pub fn parse_dpkg_source(value: &str) -> (&str, Option<&str>) {
    let value = value.trim();
    match value.split_once('(') {
        Some((name, rest)) => {
            let version = rest.split(')').next().unwrap_or("").trim();
            (name.trim(), Some(version).filter(|v| !v.is_empty()))
        }
        None => (value, None),
    }
}

/// One installed package with what an SBOM reports of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledPackage {
    /// Which database listed it.
    pub kind: PkgDbKind,
    /// The binary package name.
    pub name: String,
    /// Its version, if recorded.
    pub version: Option<String>,
    /// Its architecture, if recorded (`amd64`, `all`, `x86_64`).
    pub arch: Option<String>,
    /// The source package it was built from (dpkg `Source:`, apk `o:`); the package's own
    /// name when the database names none.
    pub source_name: String,
    /// The source package's version: the one in `Source: NAME (VERSION)`, else the package's.
    pub source_version: Option<String>,
    /// Absolute paths the package owns, directories included, in database order.
    pub files: Vec<String>,
}

/// Every installed package of an image, read with `read` (the text of a file at an absolute
/// path inside the image, symlinks followed; `None` if it is not there).
///
/// dpkg's `status` is read first (with each package's `info/NAME[:ARCH].list`; a package
/// without a list has no files), then apk's `installed`; an image with both gets both.
/// Packages come in database order.
pub fn installed_packages(read: impl Fn(&str) -> Option<String>) -> Vec<InstalledPackage> {
    let mut out = Vec::new();
    if let Some(status) = read(DPKG_STATUS) {
        for stanza in parse_dpkg_status(&status)
            .into_iter()
            .filter(|s| s.installed && !s.name.is_empty())
        {
            let files = dpkg_list_names(&stanza.name, stanza.arch.as_deref())
                .into_iter()
                .find_map(|list| read(&format!("{DPKG_INFO_DIR}/{list}")))
                .map(|text| parse_dpkg_list(&text))
                .unwrap_or_default();
            let (source_name, source_version) = match stanza.source.as_deref() {
                Some(source) => {
                    let (name, version) = parse_dpkg_source(source);
                    (
                        Some(name).filter(|n| !n.is_empty()),
                        version.map(str::to_owned),
                    )
                }
                None => (None, None),
            };
            out.push(InstalledPackage {
                kind: PkgDbKind::Dpkg,
                source_name: source_name.unwrap_or(&stanza.name).to_owned(),
                source_version: source_version.or_else(|| stanza.version.clone()),
                name: stanza.name,
                version: stanza.version,
                arch: stanza.arch,
                files,
            });
        }
    }
    if let Some(installed) = read(APK_INSTALLED) {
        for p in parse_apk_installed(&installed) {
            out.push(InstalledPackage {
                kind: PkgDbKind::Apk,
                source_name: p.origin.unwrap_or_else(|| p.name.clone()),
                source_version: p.version.clone(),
                name: p.name,
                version: p.version,
                arch: p.arch,
                files: p.files,
            });
        }
    }
    out
}

/// Where `os-release` may be (absolute paths inside the image), in the order to try them.
pub const OS_RELEASE: [&str; 2] = ["/etc/os-release", "/usr/lib/os-release"];

/// The fields of `os-release` that name the distribution.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OsRelease {
    /// `ID` (`debian`, `ubuntu`, `alpine`).
    pub id: Option<String>,
    /// `VERSION_ID` (`12`, `3.19.1`).
    pub version_id: Option<String>,
}

/// Parses `os-release` (shell-style `KEY=value` lines, values optionally quoted).
pub fn parse_os_release(text: &str) -> OsRelease {
    let mut out = OsRelease::default();
    for line in text.lines() {
        let Some((key, value)) = line.trim().split_once('=') else {
            continue;
        };
        let value = value.trim();
        let value = ['"', '\'']
            .iter()
            .find_map(|q| value.strip_prefix(*q)?.strip_suffix(*q))
            .unwrap_or(value);
        let value = Some(value.to_owned()).filter(|v| !v.is_empty());
        match key.trim() {
            "ID" => out.id = value,
            "VERSION_ID" => out.version_id = value,
            _ => {}
        }
    }
    out
}

/// An image's installed packages and the distribution they belong to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackageDb {
    /// Every installed package, in database order.
    pub packages: Vec<InstalledPackage>,
    /// The image's os-release (empty if it has none).
    pub os: OsRelease,
}

/// [`installed_packages`] and the first [`OS_RELEASE`] file `read` finds.
pub fn read_package_db(read: impl Fn(&str) -> Option<String>) -> PackageDb {
    let os = OS_RELEASE
        .iter()
        .find_map(|path| read(path))
        .map(|text| parse_os_release(&text))
        .unwrap_or_default();
    PackageDb {
        packages: installed_packages(read),
        os,
    }
}

/// Splits `text` into blank-line-separated blocks, each the exact slice from the start of its
/// first line to the end of its last line (without that line's `\n`).
fn blocks(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = None;
    let mut end = 0;
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        let body = line.strip_suffix('\n').unwrap_or(line);
        if body.trim_matches([' ', '\t', '\r']).is_empty() {
            if let Some(s) = start.take() {
                out.push(&text[s..end]);
            }
        } else {
            start.get_or_insert(pos);
            end = pos + body.len();
        }
        pos += line.len();
    }
    if let Some(s) = start {
        out.push(&text[s..end]);
    }
    out
}

/// Blocks separated by one blank line, ending with a newline; empty for no blocks.
fn join_blocks<S: AsRef<str>>(blocks: impl Iterator<Item = S>) -> String {
    let mut out = String::new();
    for block in blocks {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(block.as_ref());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    const BASE_FILES: &str = "\
Package: base-files
Essential: yes
Status: install ok installed
Priority: required
Section: admin
Installed-Size: 347
Maintainer: Santiago Vila <sanvila@debian.org>
Architecture: amd64
Multi-Arch: foreign
Version: 12.4+deb12u5
Replaces: base, dpkg (<= 1.15.0), miscutils
Provides: base
Conffiles:
 /etc/debian_version 7ae9bd3c8e8ae2e4b22c1e3a7c5e5a80
 /etc/host.conf 4eb63731c9f5e30903ac4fc07a7fe3d6
 /etc/issue 1b6ba9c8e1ed1f8bd4f42b9bc11f0c1b
Description: Debian base system miscellaneous files
 This package contains the basic filesystem hierarchy of a Debian system, and
 several important miscellaneous files, such as /etc/debian_version.
Homepage: https://tracker.debian.org/pkg/base-files";

    const LIBC6: &str = "\
Package: libc6
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 12986
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u7
Depends: libgcc-s1
Recommends: libidn2-0 (>= 2.0.5~)
Suggests: glibc-doc, debconf | debconf-2.0, libc-l10n, locales
Breaks: busybox (<< 1.30.1-6), fakeroot (<< 1.25.3-1.1~)
Conffiles:
 /etc/ld.so.conf.d/x86_64-linux-gnu.conf d4e7a7b88a71b5ffd9e2644e71a0cfab
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system. This package includes shared versions of the standard C library
 and the standard math library, as well as many others.
Homepage: https://www.gnu.org/software/libc/libc.html";

    const RSYSLOG_GONE: &str = "\
Package: rsyslog
Status: deinstall ok config-files
Priority: optional
Section: admin
Installed-Size: 1988
Maintainer: Michael Biebl <biebl@debian.org>
Architecture: amd64
Version: 8.2302.0-1
Conffiles:
 /etc/logrotate.d/rsyslog 6fd4d3de3e4da0c7e8ac5b8f2b2e8e7e
 /etc/rsyslog.conf 3f1b8c0e0bd9cd51c1ff5c6b2b7e8f2e
Description: reliable system and kernel logging daemon
 Rsyslog is a multi-threaded implementation of syslogd.";

    const NGINX_LIGHT: &str = "\
Package: nginx-light
Status: install ok installed
Priority: optional
Section: httpd
Installed-Size: 1224
Maintainer: Debian Nginx Maintainers <pkg-nginx-maintainers@alioth-lists.debian.net>
Architecture: amd64
Source: nginx
Version: 1.22.1-9
Provides: httpd, httpd-cgi, nginx
Depends: libc6 (>= 2.34), libcrypt1 (>= 1:4.1.0), libpcre2-8-0 (>= 10.22), libssl3 (>= 3.0.0), zlib1g (>= 1:1.1.4), nginx-common (= 1.22.1-9), iproute2
Description: nginx web/proxy server (basic version)
 Package: this continuation line mentions a field but is not one.
 .
 This package provides a very light version of nginx with only the
 minimal set of features and modules.
Homepage: https://nginx.org";

    /// A bookworm-like status file: the stanzas above, dpkg's one blank line between them and
    /// one after the last.
    fn status() -> String {
        format!("{BASE_FILES}\n\n{LIBC6}\n\n{RSYSLOG_GONE}\n\n{NGINX_LIGHT}\n\n")
    }

    #[test]
    fn parses_stanzas_with_name_arch_and_status() {
        let stanzas = parse_dpkg_status(&status());
        let summary: Vec<_> = stanzas
            .iter()
            .map(|s| (s.name.as_str(), s.arch.as_deref(), s.installed))
            .collect();
        assert_eq!(
            summary,
            [
                ("base-files", Some("amd64"), true),
                ("libc6", Some("amd64"), true),
                ("rsyslog", Some("amd64"), false),
                ("nginx-light", Some("amd64"), true),
            ]
        );
        assert_eq!(stanzas[1].text, LIBC6);
        assert_eq!(stanzas[3].text, NGINX_LIGHT);
    }

    #[test]
    fn status_words_decide_installed() {
        let text = "Package: a\nStatus: hold ok installed\n\n\
                    Package: b\nStatus: install reinstreq half-installed\n\n\
                    Package: c\nStatus: install ok unpacked\n\n\
                    Package: d\nStatus: installed\n\n\
                    Package: e\nstatus:   install ok installed  \n\n\
                    Package: f\n";
        let installed: Vec<_> = parse_dpkg_status(text)
            .into_iter()
            .map(|s| (s.name, s.installed))
            .collect();
        let expected = [
            ("a", true),
            ("b", false),
            ("c", false),
            ("d", false),
            ("e", true),
            ("f", false),
        ];
        let expected: Vec<_> = expected.iter().map(|(n, i)| (n.to_string(), *i)).collect();
        assert_eq!(installed, expected);
    }

    #[test]
    fn trim_keeps_exact_text_in_original_order() {
        // The predicate's own order (nginx first) must not matter.
        let keep = ["nginx-light", "libc6"];
        let out = trim_dpkg_status(&status(), |name, _| keep.contains(&name));
        assert_eq!(out, format!("{LIBC6}\n\n{NGINX_LIGHT}\n"));
        // Trimming its own output with the same predicate changes nothing.
        assert_eq!(trim_dpkg_status(&out, |name, _| keep.contains(&name)), out);
    }

    #[test]
    fn trim_drops_deinstalled_without_asking() {
        let asked = RefCell::new(Vec::new());
        let out = trim_dpkg_status(&status(), |name, arch| {
            asked
                .borrow_mut()
                .push((name.to_owned(), arch.map(str::to_owned)));
            true
        });
        assert_eq!(out, format!("{BASE_FILES}\n\n{LIBC6}\n\n{NGINX_LIGHT}\n"));
        let asked = asked.into_inner();
        let names: Vec<_> = asked.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["base-files", "libc6", "nginx-light"]);
        assert_eq!(asked[1].1.as_deref(), Some("amd64"));
    }

    #[test]
    fn trim_to_nothing_is_empty() {
        assert_eq!(trim_dpkg_status(&status(), |_, _| false), "");
        assert_eq!(trim_dpkg_status("", |_, _| true), "");
        assert_eq!(trim_dpkg_status("\n\n \n", |_, _| true), "");
    }

    #[test]
    fn irregular_separators_and_missing_final_newline() {
        let text = format!("\n\n{BASE_FILES}\n\n\n\n{LIBC6}\n \n\t\n{NGINX_LIGHT}");
        let names: Vec<_> = parse_dpkg_status(&text)
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names, ["base-files", "libc6", "nginx-light"]);
        let out = trim_dpkg_status(&text, |name, _| name != "libc6");
        assert_eq!(out, format!("{BASE_FILES}\n\n{NGINX_LIGHT}\n"));
    }

    #[test]
    fn continuation_lines_are_not_fields() {
        let stanzas = parse_dpkg_status(NGINX_LIGHT);
        assert_eq!(stanzas.len(), 1);
        assert_eq!(stanzas[0].name, "nginx-light");
    }

    #[test]
    fn stanza_without_package_is_dropped() {
        let text = "Status: install ok installed\nArchitecture: all\n\nPackage: zlib1g\nStatus: install ok installed\n";
        let stanzas = parse_dpkg_status(text);
        assert_eq!(stanzas.len(), 2);
        assert_eq!(stanzas[0].name, "");
        assert_eq!(stanzas[0].arch.as_deref(), Some("all"));
        assert_eq!(stanzas[1].arch, None);
        let out = trim_dpkg_status(text, |_, _| true);
        assert_eq!(out, "Package: zlib1g\nStatus: install ok installed\n");
    }

    #[test]
    fn crlf_does_not_panic() {
        let text = "Package: a\r\nStatus: install ok installed\r\nArchitecture: amd64\r\n\r\n\
                    Package: b\r\nStatus: deinstall ok config-files\r\n";
        let stanzas = parse_dpkg_status(text);
        assert_eq!(stanzas.len(), 2);
        assert_eq!(stanzas[0].name, "a");
        assert_eq!(stanzas[0].arch.as_deref(), Some("amd64"));
        assert!(stanzas[0].installed);
        assert!(!stanzas[1].installed);
        let out = trim_dpkg_status(text, |_, _| true);
        assert_eq!(
            out,
            "Package: a\r\nStatus: install ok installed\r\nArchitecture: amd64\r\n"
        );
        assert_eq!(parse_dpkg_list("/.\r\n/bin/sh\r\n"), ["/", "/bin/sh"]);
        let apk = parse_apk_installed("P:x\r\nF:bin\r\nR:x\r\n\r\nP:y\r\n");
        assert_eq!(apk[0].files, ["/bin", "/bin/x"]);
        assert_eq!(
            trim_apk_installed("P:x\r\nF:bin\r\n\r\nP:y\r\n", |n| n == "y"),
            "P:y\r\n"
        );
    }

    #[test]
    fn versions_and_sources() {
        let stanzas = parse_dpkg_status(&status());
        let fields: Vec<_> = stanzas
            .iter()
            .map(|s| (s.version.as_deref(), s.source.as_deref()))
            .collect();
        assert_eq!(
            fields,
            [
                (Some("12.4+deb12u5"), None),
                (Some("2.36-9+deb12u7"), Some("glibc")),
                (Some("8.2302.0-1"), None),
                (Some("1.22.1-9"), Some("nginx")),
            ]
        );
        assert_eq!(parse_dpkg_source("glibc"), ("glibc", None));
        assert_eq!(
            parse_dpkg_source(" gcc-12 (12.2.0-14) "),
            ("gcc-12", Some("12.2.0-14"))
        );
        assert_eq!(parse_dpkg_source("odd ()"), ("odd", None));
        assert_eq!(parse_dpkg_source("odd (1.0"), ("odd", Some("1.0")));
    }

    #[test]
    fn installed_packages_from_both_databases() {
        let gcc = "Package: libgcc-s1\nStatus: install ok installed\nArchitecture: amd64\n\
                   Multi-Arch: same\nSource: gcc-12 (12.2.0-14)\nVersion: 12.2.0-14\n";
        let text = format!("{LIBC6}\n\n{RSYSLOG_GONE}\n\n{gcc}\n{NGINX_LIGHT}\n");
        let read = |path: &str| -> Option<String> {
            match path {
                DPKG_STATUS => Some(text.clone()),
                "/var/lib/dpkg/info/libc6:amd64.list" => Some("/.\n/lib\n/lib/libc.so.6\n".into()),
                "/var/lib/dpkg/info/nginx-light.list" => Some("/usr/sbin/nginx\n".into()),
                APK_INSTALLED => Some(APK_MUSL.into()),
                _ => None,
            }
        };
        let packages = installed_packages(read);
        let summary: Vec<_> = packages
            .iter()
            .map(|p| {
                (
                    p.kind,
                    p.name.as_str(),
                    p.version.as_deref(),
                    p.source_name.as_str(),
                    p.source_version.as_deref(),
                    p.files.len(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    PkgDbKind::Dpkg,
                    "libc6",
                    Some("2.36-9+deb12u7"),
                    "glibc",
                    Some("2.36-9+deb12u7"),
                    3
                ),
                (
                    PkgDbKind::Dpkg,
                    "libgcc-s1",
                    Some("12.2.0-14"),
                    "gcc-12",
                    Some("12.2.0-14"),
                    0
                ),
                (
                    PkgDbKind::Dpkg,
                    "nginx-light",
                    Some("1.22.1-9"),
                    "nginx",
                    Some("1.22.1-9"),
                    1
                ),
                (
                    PkgDbKind::Apk,
                    "musl",
                    Some("1.2.4_git20230717-r4"),
                    "musl",
                    Some("1.2.4_git20230717-r4"),
                    3
                ),
            ]
        );
        assert_eq!(packages[0].arch.as_deref(), Some("amd64"));
        assert_eq!(packages[3].arch.as_deref(), Some("x86_64"));
        assert!(installed_packages(|_| None).is_empty());
    }

    #[test]
    fn os_release_fields() {
        let debian = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n\
                      VERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nID=debian\n";
        assert_eq!(
            parse_os_release(debian),
            OsRelease {
                id: Some("debian".into()),
                version_id: Some("12".into())
            }
        );
        let alpine = "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.19.1\n";
        assert_eq!(
            parse_os_release(alpine).version_id.as_deref(),
            Some("3.19.1")
        );
        // Debian testing has no VERSION_ID.
        let sid = "ID=debian\nVERSION_ID=''\n# comment\n";
        assert_eq!(parse_os_release(sid).version_id, None);
        assert_eq!(parse_os_release(""), OsRelease::default());
    }

    #[test]
    fn list_names() {
        assert_eq!(
            dpkg_list_names("libc6", Some("amd64")),
            ["libc6:amd64.list", "libc6.list"]
        );
        assert_eq!(dpkg_list_names("base-files", None), ["base-files.list"]);
        assert_eq!(dpkg_list_names("libstdc++6", Some("")), ["libstdc++6.list"]);
        assert_eq!(dpkg_list_names("x", Some("../y")), ["x.list"]);
        assert!(dpkg_list_names("../../etc/passwd", Some("amd64")).is_empty());
        assert!(dpkg_list_names("", Some("amd64")).is_empty());
    }

    #[test]
    fn list_file_paths() {
        let list = "/.\n/etc\n/etc/nginx/\n/usr/sbin/nginx\n\n/usr/share/doc/nginx-light/copyright";
        assert_eq!(
            parse_dpkg_list(list),
            [
                "/",
                "/etc",
                "/etc/nginx",
                "/usr/sbin/nginx",
                "/usr/share/doc/nginx-light/copyright"
            ]
        );
        assert!(parse_dpkg_list("").is_empty());
    }

    const APK_MUSL: &str = "\
C:Q1Nq4y8Xw0d1gGm3nS0J3xXbVJ8lQ=
P:musl
V:1.2.4_git20230717-r4
A:x86_64
S:407497
I:667648
T:the musl c library (libc) implementation
U:https://musl.libc.org/
L:MIT
o:musl
m:Timo Teräs <timo.teras@iki.fi>
t:1709000000
c:7c7a8e8b0e4b3d2a1f0e9d8c7b6a5f4e3d2c1b0a
p:so:libc.musl-x86_64.so.1=1
F:lib
R:ld-musl-x86_64.so.1
a:0:0:755
Z:Q1lJ4i5v0yEeJ0tXW7qSG+uRwK7eQ=
R:libc.musl-x86_64.so.1
a:0:0:777
Z:Q17yJ3JFNypA4mxhJJr0ou6CzsJVI=";

    const APK_BUSYBOX: &str = "\
C:Q1Xb7m1b2aN0k5y9x6z3w4v8u7t6s=
P:busybox
V:1.36.1-r15
A:x86_64
S:518563
I:950272
T:Size optimized toolbox of many common UNIX utilities
U:https://busybox.net/
L:GPL-2.0-only
o:busybox
D:so:libc.musl-x86_64.so.1
r:busybox-initscripts
F:bin
R:busybox
a:0:0:755
Z:Q1WUwBY0eOGgzhOZv8vOAhG7lW1i0=
F:etc
R:securetty
Z:Q1mB95Hq2NUTZ599RDiSsj9w5FrOU=
R:udhcpd.conf
Z:Q1EgLFjj67ou3eMqp4m3r2ZjnQ7QU=
F:etc/logrotate.d
R:acpid
Z:Q1TylyCINVmnS+A/Tead4vZhE7Bks=
F:tmp
M:0:0:1777";

    const APK_TOOLS: &str = "\
C:Q1i0hJ5mKzq4n5p6r7s8t9u0v1w2x=
P:apk-tools
V:2.14.4-r0
A:x86_64
S:120973
I:307200
T:Alpine Package Keeper - package manager for alpine
U:https://gitlab.alpinelinux.org/alpine/apk-tools
L:GPL-2.0-only
o:apk-tools
D:musl>=1.2.3_git20230424 ca-certificates-bundle so:libc.musl-x86_64.so.1
R:.apk-root-marker
F:etc
F:etc/apk
F:etc/apk/keys
F:lib
F:lib/apk
F:lib/apk/db
F:lib/apk/exec
F:sbin
R:apk
a:0:0:755
Z:Q1p6xS6uYtDXe0rEPRGyoRQzf4dvY=";

    fn installed() -> String {
        format!("{APK_MUSL}\n\n{APK_BUSYBOX}\n\n{APK_TOOLS}\n\n")
    }

    #[test]
    fn apk_pairs_dirs_and_files() {
        let packages = parse_apk_installed(&installed());
        let names: Vec<_> = packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["musl", "busybox", "apk-tools"]);
        assert!(packages.iter().all(|p| p.arch.as_deref() == Some("x86_64")));
        assert_eq!(
            packages[0].files,
            [
                "/lib",
                "/lib/ld-musl-x86_64.so.1",
                "/lib/libc.musl-x86_64.so.1"
            ]
        );
        assert_eq!(
            packages[1].files,
            [
                "/bin",
                "/bin/busybox",
                "/etc",
                "/etc/securetty",
                "/etc/udhcpd.conf",
                "/etc/logrotate.d",
                "/etc/logrotate.d/acpid",
                "/tmp",
            ]
        );
        // An R: before any F: is a file at the root.
        assert_eq!(packages[2].files[0], "/.apk-root-marker");
        assert_eq!(
            packages[2].files.last().map(String::as_str),
            Some("/sbin/apk")
        );
    }

    #[test]
    fn apk_odd_lines() {
        let text =
            "P:odd\nF:/usr/lib/\nR:libodd.so\nF:\nR:rootfile\nR:\nnot a field\n\nV:1.0\nR:orphan\n";
        let packages = parse_apk_installed(text);
        assert_eq!(packages.len(), 1);
        assert_eq!(packages[0].arch, None);
        assert_eq!(
            packages[0].files,
            ["/usr/lib", "/usr/lib/libodd.so", "/", "/rootfile"]
        );
    }

    #[test]
    fn apk_trim_keeps_blocks_verbatim_in_order() {
        let keep = ["busybox", "musl"];
        let out = trim_apk_installed(&installed(), |name| keep.contains(&name));
        assert_eq!(out, format!("{APK_MUSL}\n\n{APK_BUSYBOX}\n"));
        let out = trim_apk_installed(&installed(), |name| name == "apk-tools");
        assert_eq!(out, format!("{APK_TOOLS}\n"));
        assert_eq!(trim_apk_installed(&installed(), |_| false), "");
        // Extra blank lines and no final newline.
        let text = format!("{APK_MUSL}\n\n\n{APK_TOOLS}");
        assert_eq!(
            trim_apk_installed(&text, |_| true),
            format!("{APK_MUSL}\n\n{APK_TOOLS}\n")
        );
    }

    #[test]
    fn apk_trim_asks_once_per_named_block() {
        let asked = RefCell::new(Vec::new());
        let text = format!("{APK_MUSL}\n\nV:1.0\nR:orphan\n\n{APK_BUSYBOX}\n");
        let out = trim_apk_installed(&text, |name| {
            asked.borrow_mut().push(name.to_owned());
            true
        });
        assert_eq!(asked.into_inner(), ["musl", "busybox"]);
        assert_eq!(out, format!("{APK_MUSL}\n\n{APK_BUSYBOX}\n"));
    }
}
