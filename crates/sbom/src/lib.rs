//! SBOMs of container images: which OS packages and which files an image holds, as
//! SPDX 2.3 JSON or CycloneDX 1.5 JSON, for scanners (trivy, grype) and SBOM policies.
//!
//! Why a crate of its own: `slim`, `extract`, `build` and `sbom` all describe an image the
//! same way, and none of that is keep-set analysis or image I/O. The flow is
//! [`Contents::read`] (the image's layers streamed once, files hashed on the way, whiteouts
//! applied by the image crate's flattener) → [`Sbom::new`] (the packages of a dpkg or apk
//! database that still own a file in the image, the files, the subject) → [`Sbom::render`].
//!
//! The bytes are a function of the image alone: no wall clock (the time comes from
//! `SOURCE_DATE_EPOCH` or the image config's `created`), identifiers derived from the
//! manifest digest, packages and files sorted.
#![deny(missing_docs)]

mod contents;
mod cyclonedx;
pub mod purl;
mod spdx;
mod time;

use std::collections::BTreeSet;

use whittle_slim::pkgdb::{InstalledPackage, PackageDb, PkgDbKind};

pub use contents::{Contents, FileDigests, FileInfo};
pub use time::{created_from_config, rfc3339_normalize};

/// Why an SBOM could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SbomError {
    /// Reading the image failed.
    #[error(transparent)]
    Image(#[from] whittle_image::Error),
    /// A file of the flattened image had no digest (its layer was not hashed).
    #[error("no digest was recorded for {0} while its layer was read")]
    NoDigest(String),
    /// An unknown `--sbom-format`.
    #[error("unknown SBOM format {0:?}: use spdx or cyclonedx")]
    Format(String),
}

/// The output formats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// SPDX 2.3 JSON.
    #[default]
    Spdx,
    /// CycloneDX 1.5 JSON.
    CycloneDx,
}

impl std::str::FromStr for Format {
    type Err = SbomError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "spdx" | "spdx-json" => Ok(Format::Spdx),
            "cyclonedx" | "cyclonedx-json" | "cdx" => Ok(Format::CycloneDx),
            _ => Err(SbomError::Format(s.to_string())),
        }
    }
}

/// The image an SBOM describes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    /// A name for people (a tag, a repository, a file name).
    pub name: String,
    /// Its manifest digest (`sha256:HEX`): the document's identity.
    pub digest: String,
}

/// A package that still owns a file in the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageInfo {
    /// From the database.
    pub package: InstalledPackage,
    /// Its purl.
    pub purl: String,
    /// The regular files of the image it owns (real paths, sorted).
    pub files: Vec<String>,
}

/// Something a build read: its spec, a source tree, an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildInput {
    /// `spec`, `source` or `image`.
    pub kind: String,
    /// Its name: the spec's file name, the tree's path, the image reference.
    pub name: String,
    /// Its digest (`sha256:HEX`): the file's, the tree hash, the image config's.
    pub digest: String,
}

/// Everything an SBOM says, independent of its format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sbom {
    /// The image.
    pub subject: Subject,
    /// RFC 3339 UTC, whole seconds.
    pub created: String,
    /// Packages with files in the image, sorted by name, architecture, version.
    pub packages: Vec<PackageInfo>,
    /// Every regular file, sorted by path.
    pub files: Vec<FileInfo>,
    /// What a build read (empty but for `whittle build`).
    pub inputs: Vec<BuildInput>,
}

impl Sbom {
    /// An SBOM of the image whose files `contents` holds, listing the packages of `dbs`
    /// that own at least one path there that is not a directory (every package owns `/usr`,
    /// so directories alone would list every package). The databases may come from other
    /// images: a slimmed image usually has no package database, its source does, and a
    /// build takes files from several images.
    pub fn new(
        subject: Subject,
        created: String,
        contents: &Contents,
        dbs: &[PackageDb],
    ) -> Result<Sbom, SbomError> {
        let mut seen = BTreeSet::new();
        let mut kept = Vec::new();
        for (package, os) in dbs
            .iter()
            .flat_map(|db| db.packages.iter().map(move |p| (p.clone(), &db.os)))
        {
            let mut present = false;
            let mut files = BTreeSet::new();
            for f in &package.files {
                if let Some((real, regular)) = contents.resolve_non_dir(f) {
                    present = true;
                    if regular {
                        files.insert(real);
                    }
                }
            }
            if !present {
                continue;
            }
            let purl = purl::of_package(&package, os);
            // A database listing a package twice says nothing new the second time.
            if !seen.insert(purl.clone()) {
                continue;
            }
            kept.push(PackageInfo {
                package,
                purl,
                files: files.into_iter().collect(),
            });
        }
        kept.sort_by(|a, b| {
            let key = |p: &PackageInfo| {
                (
                    p.package.name.clone(),
                    p.package.arch.clone(),
                    p.package.version.clone(),
                    p.purl.clone(),
                )
            };
            key(a).cmp(&key(b))
        });
        Ok(Sbom {
            subject,
            created,
            packages: kept,
            files: contents.files()?,
            inputs: Vec::new(),
        })
    }

    /// The document's bytes in `format` (pretty JSON, a final newline).
    pub fn render(&self, format: Format) -> Vec<u8> {
        let doc = match format {
            Format::Spdx => spdx::document(self),
            Format::CycloneDx => cyclonedx::document(self),
        };
        let mut out = serde_json::to_vec_pretty(&doc).unwrap_or_default();
        out.push(b'\n');
        out
    }
}

/// The lowercase hex of a `sha256:HEX` digest, if it is one.
pub(crate) fn sha256_hex(digest: &str) -> Option<&str> {
    digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `deb` or `apk`.
pub(crate) fn manager(kind: PkgDbKind) -> &'static str {
    match kind {
        PkgDbKind::Dpkg => "deb",
        PkgDbKind::Apk => "apk",
    }
}

/// What made the document.
pub(crate) const TOOL: &str = concat!("whittle-", env!("CARGO_PKG_VERSION"));

#[cfg(test)]
mod tests;
