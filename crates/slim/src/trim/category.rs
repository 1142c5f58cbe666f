//! The categories and what belongs to each: path rules, and the locales an image's
//! environment names.

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;
use whittle_image::entries::EntryKind;
use whittle_image::flatten::Node;

/// A kind of file a running program does not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// `/usr/share/doc`, except the copyright files.
    Docs,
    /// `/usr/share/doc/PKG/copyright`: license notices (not dropped by default).
    Copyright,
    /// `/usr/share/man` and `/usr/share/info`.
    Man,
    /// Message catalogs and compiled locales the image's environment does not name.
    Locale,
    /// Package-manager caches and lists (apt, debconf's `-old` files, apk).
    Cache,
    /// Non-empty files under `/var/log`.
    Logs,
}

impl Category {
    /// Every category, in the order reports list them.
    pub const ALL: [Category; 6] = [
        Category::Docs,
        Category::Copyright,
        Category::Man,
        Category::Locale,
        Category::Cache,
        Category::Logs,
    ];

    /// What `--drop` drops when not given: all but `copyright`.
    pub const DEFAULT: [Category; 5] = [
        Category::Docs,
        Category::Man,
        Category::Locale,
        Category::Cache,
        Category::Logs,
    ];

    /// The name `--drop` takes.
    pub fn name(self) -> &'static str {
        match self {
            Category::Docs => "docs",
            Category::Copyright => "copyright",
            Category::Man => "man",
            Category::Locale => "locale",
            Category::Cache => "cache",
            Category::Logs => "logs",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a category list could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TrimError {
    /// A name that is no category.
    #[error("unknown category {name:?}: the categories are {valid}")]
    UnknownCategory {
        /// The name given.
        name: String,
        /// The valid names, comma-separated.
        valid: String,
    },
    /// An empty list.
    #[error("no category given: name one or more of {valid}")]
    NoCategory {
        /// The valid names, comma-separated.
        valid: String,
    },
}

fn valid_names() -> String {
    Category::ALL.map(Category::name).join(", ")
}

/// Parses `docs,man,...` (names separated by commas, spaces ignored).
pub fn parse_categories(list: &str) -> Result<BTreeSet<Category>, TrimError> {
    let mut out = BTreeSet::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let c = Category::ALL
            .into_iter()
            .find(|c| c.name() == name)
            .ok_or_else(|| TrimError::UnknownCategory {
                name: name.to_string(),
                valid: valid_names(),
            })?;
        out.insert(c);
    }
    if out.is_empty() {
        return Err(TrimError::NoCategory {
            valid: valid_names(),
        });
    }
    Ok(out)
}

/// The locales the image's environment names (`LANG`, `LANGUAGE`, `LC_*`), as the names
/// gettext looks catalogs up by: `de_DE.UTF-8@euro` wants `de_DE@euro`, `de_DE`, `de@euro`, `de`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Locales {
    names: BTreeSet<String>,
}

impl Locales {
    /// From `KEY=VALUE` environment entries.
    pub fn from_env(env: &[String]) -> Locales {
        let mut names = BTreeSet::new();
        for entry in env {
            let Some((k, v)) = entry.split_once('=') else {
                continue;
            };
            if !(k == "LANG" || k == "LANGUAGE" || k.starts_with("LC_")) {
                continue;
            }
            // LANGUAGE is a priority list; the others hold one locale.
            for value in v.split(':') {
                names.extend(lookup_names(value));
            }
        }
        Locales { names }
    }

    /// Whether a `/usr/share/locale/DIR` catalog directory is wanted.
    fn wants_catalog(&self, dir: &str) -> bool {
        self.names.contains(&strip_codeset(dir))
    }

    /// Whether a `/usr/lib/locale/DIR` compiled locale is wanted (C and POSIX always are).
    fn wants_compiled(&self, dir: &str) -> bool {
        is_c_locale(dir) || self.names.contains(&strip_codeset(dir))
    }

    /// Whether any locale other than C/POSIX is named (then `locale-archive` stays).
    fn any(&self) -> bool {
        !self.names.is_empty()
    }
}

fn is_c_locale(name: &str) -> bool {
    name == "C" || name == "POSIX" || name.starts_with("C.") || name.starts_with("C@")
}

/// `de_DE.UTF-8@euro` -> `de_DE@euro`.
fn strip_codeset(name: &str) -> String {
    let (main, modifier) = match name.split_once('@') {
        Some((m, r)) => (m, Some(r)),
        None => (name, None),
    };
    let main = main.split('.').next().unwrap_or(main);
    match modifier {
        Some(m) => format!("{main}@{m}"),
        None => main.to_string(),
    }
}

/// The names gettext tries for a locale value, most specific first.
fn lookup_names(value: &str) -> Vec<String> {
    let value = value.trim();
    if value.is_empty() || is_c_locale(value) || value.contains('/') {
        return Vec::new();
    }
    let (main, modifier) = match value.split_once('@') {
        Some((m, r)) => (m, Some(r)),
        None => (value, None),
    };
    let lang_territory = main.split('.').next().unwrap_or(main);
    let lang = lang_territory.split('_').next().unwrap_or(lang_territory);
    let mut out = Vec::new();
    for base in [lang_territory, lang] {
        if base.is_empty() {
            continue;
        }
        if let Some(m) = modifier {
            out.push(format!("{base}@{m}"));
        }
        out.push(base.to_string());
    }
    out.dedup();
    out
}

/// `path` strictly below `dir`, as the rest after `dir/`.
fn below<'p>(path: &'p str, dir: &str) -> Option<&'p str> {
    path.strip_prefix(dir)?
        .strip_prefix('/')
        .filter(|r| !r.is_empty())
}

/// The category of an absolute path, if it is in one (whatever is dropped).
pub fn classify(path: &str, node: &Node, locales: &Locales) -> Option<Category> {
    let is_dir = node.kind == EntryKind::Dir;
    if let Some(rest) = below(path, "/usr/share/doc") {
        let parts: Vec<&str> = rest.split('/').collect();
        let shared_dir = parts.len() == 1 && matches!(node.kind, EntryKind::Symlink(_));
        return Some(match parts.as_slice() {
            [_, "copyright"] => Category::Copyright,
            _ if shared_dir => Category::Copyright,
            _ => Category::Docs,
        });
    }
    if below(path, "/usr/share/man").is_some() || below(path, "/usr/share/info").is_some() {
        return Some(Category::Man);
    }
    if let Some(rest) = below(path, "/usr/share/locale") {
        let (first, deeper) = match rest.split_once('/') {
            Some((f, _)) => (f, true),
            None => (rest, false),
        };
        // Files beside the language directories (locale.alias) are not catalogs.
        let is_lang_dir = deeper || is_dir;
        return (is_lang_dir && !locales.wants_catalog(first)).then_some(Category::Locale);
    }
    if let Some(rest) = below(path, "/usr/lib/locale") {
        let first = rest.split('/').next().unwrap_or(rest);
        let wanted = if first == "locale-archive" {
            locales.any()
        } else {
            locales.wants_compiled(first)
        };
        return (!wanted).then_some(Category::Locale);
    }
    if !is_dir {
        let in_cache = ["/var/cache/apt", "/var/lib/apt/lists", "/var/cache/apk"]
            .iter()
            .any(|d| below(path, d).is_some());
        let debconf_old = below(path, "/var/cache/debconf")
            .is_some_and(|r| !r.contains('/') && r.ends_with("-old"));
        if in_cache || debconf_old {
            return Some(Category::Cache);
        }
        if below(path, "/var/log").is_some() && node.kind == EntryKind::File && node.size() > 0 {
            return Some(Category::Logs);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trim::{test_dir as dir, test_file as file, test_node as node};

    fn env(vars: &[&str]) -> Locales {
        Locales::from_env(&vars.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    fn class(path: &str, n: &Node, l: &Locales) -> Option<Category> {
        classify(path, n, l)
    }

    #[test]
    fn parses_categories_and_names_the_valid_ones() {
        let all = parse_categories("docs, man,locale,cache,logs").unwrap();
        assert_eq!(all, Category::DEFAULT.into_iter().collect());
        let err = parse_categories("docs,manuals").unwrap_err().to_string();
        assert!(err.contains("\"manuals\""), "{err}");
        assert!(
            err.contains("docs, copyright, man, locale, cache, logs"),
            "{err}"
        );
        assert!(parse_categories(" , ").is_err());
    }

    #[test]
    fn locale_names_follow_gettext_lookup() {
        assert_eq!(lookup_names("de_DE.UTF-8"), ["de_DE", "de"]);
        assert_eq!(
            lookup_names("sr_RS.UTF-8@latin"),
            ["sr_RS@latin", "sr_RS", "sr@latin", "sr"]
        );
        assert!(lookup_names("C.UTF-8").is_empty());
        assert!(lookup_names("POSIX").is_empty());
        let l = env(&["PATH=/bin", "LANG=de_DE.UTF-8", "LANGUAGE=fr:pt_BR"]);
        for yes in ["de", "de_DE", "fr", "pt_BR", "pt"] {
            assert!(l.wants_catalog(yes), "{yes}");
        }
        for no in ["de_CH", "en", "es", "fr_CA"] {
            assert!(!l.wants_catalog(no), "{no}");
        }
        assert!(l.wants_compiled("de_DE.utf8"));
        assert!(l.wants_compiled("C.utf8") && l.wants_compiled("C.UTF-8"));
        assert!(!l.wants_compiled("en_US.utf8"));
    }

    #[test]
    fn classifies_locales_against_the_environment() {
        let none = env(&[]);
        let de = env(&["LC_ALL=de_DE.UTF-8"]);
        let f = file(10);
        let d = dir();
        let p = "/usr/share/locale/de/LC_MESSAGES/dpkg.mo";
        assert_eq!(class(p, &f, &none), Some(Category::Locale));
        assert_eq!(class(p, &f, &de), None);
        assert_eq!(
            class("/usr/share/locale/de", &d, &none),
            Some(Category::Locale)
        );
        // Files beside the language directories, and the root, are not catalogs.
        assert_eq!(class("/usr/share/locale/locale.alias", &f, &none), None);
        assert_eq!(class("/usr/share/locale", &d, &none), None);
        assert_eq!(class("/usr/lib/locale/C.utf8/LC_CTYPE", &f, &none), None);
        assert_eq!(
            class("/usr/lib/locale/de_DE.utf8/LC_CTYPE", &f, &none),
            Some(Category::Locale)
        );
        assert_eq!(class("/usr/lib/locale/de_DE.utf8/LC_CTYPE", &f, &de), None);
        assert_eq!(
            class("/usr/lib/locale/locale-archive", &f, &none),
            Some(Category::Locale)
        );
        assert_eq!(class("/usr/lib/locale/locale-archive", &f, &de), None);
    }

    #[test]
    fn copyright_files_are_their_own_category() {
        let l = Locales::default();
        let f = file(100);
        assert_eq!(
            class("/usr/share/doc/gzip/copyright", &f, &l),
            Some(Category::Copyright)
        );
        assert_eq!(
            class("/usr/share/doc/gzip/changelog.gz", &f, &l),
            Some(Category::Docs)
        );
        // A copyright deeper down is just a document.
        assert_eq!(
            class("/usr/share/doc/gzip/examples/copyright", &f, &l),
            Some(Category::Docs)
        );
        let link = node(EntryKind::Symlink("gcc-12-base".into()), 0, 0);
        assert_eq!(
            class("/usr/share/doc/libgcc-s1", &link, &l),
            Some(Category::Copyright)
        );
        assert_eq!(class("/usr/share/doc", &dir(), &l), None);
    }

    #[test]
    fn caches_and_logs_keep_their_directories_and_empty_logs() {
        let l = Locales::default();
        assert_eq!(
            class("/var/lib/apt/lists/deb.debian.org_Packages", &file(9), &l),
            Some(Category::Cache)
        );
        assert_eq!(class("/var/lib/apt/lists/partial", &dir(), &l), None);
        assert_eq!(
            class("/var/cache/debconf/templates.dat-old", &file(9), &l),
            Some(Category::Cache)
        );
        assert_eq!(
            class("/var/cache/debconf/templates.dat", &file(9), &l),
            None
        );
        assert_eq!(
            class("/var/log/dpkg.log", &file(9), &l),
            Some(Category::Logs)
        );
        assert_eq!(class("/var/log/nginx/error.log", &file(0), &l), None);
        assert_eq!(class("/var/log/nginx", &dir(), &l), None);
        assert_eq!(
            class("/usr/share/man/man1/ls.1.gz", &file(9), &l),
            Some(Category::Man)
        );
        assert_eq!(
            class("/usr/share/info/dir", &file(9), &l),
            Some(Category::Man)
        );
        assert_eq!(class("/usr/share/zoneinfo/UTC", &file(9), &l), None);
    }
}
