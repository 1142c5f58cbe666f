//! The explanation of a slimmed image: every kept path with its reason chain,
//! the totals before and after, and the warnings. Also carried in the image
//! itself (a config label) so that `whittle why` can answer later.

use std::io::{Read, Write};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::SlimError;

/// The config label holding the report (gzip + base64 of its JSON).
pub const REPORT_LABEL: &str = "dev.whittle.slim.report";

/// Files and bytes of regular files (directories and links not counted as files).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Paths that are not directories.
    pub files: u64,
    /// Bytes of regular-file data.
    pub bytes: u64,
}

/// One kept path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptPath {
    /// The absolute path.
    pub path: String,
    /// Why, in one step (`DT_NEEDED of /usr/sbin/nginx`).
    pub reason: String,
    /// The path, its reason, and the reasons of the paths that needed it, to a root reason.
    pub chain: Vec<String>,
    /// Which parts of whittle found it: `static`, `trace`, `include`.
    #[serde(default)]
    pub found_by: Vec<String>,
}

/// What slim or extract did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The source reference (only in `--report` files, not in the image, so
    /// that the output does not depend on where the input was read from).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The command line analysed.
    pub entrypoint: Vec<String>,
    /// The input's filesystem.
    pub before: Totals,
    /// The output's filesystem.
    pub after: Totals,
    /// Every kept path, sorted.
    pub kept: Vec<KeptPath>,
    /// Unresolved dependencies and other things worth a look.
    pub warnings: Vec<String>,
}

impl Report {
    /// The label value: gzip (fixed settings, no timestamp) and base64 of the JSON.
    pub fn to_label(&self) -> String {
        let mut inner = self.clone();
        inner.source = None;
        let json = serde_json::to_vec(&inner).unwrap_or_default();
        let mut gz = flate2::GzBuilder::new()
            .mtime(0)
            .operating_system(255)
            .write(Vec::new(), flate2::Compression::new(9));
        // Writing to a Vec cannot fail.
        let _ = gz.write_all(&json);
        let bytes = gz.finish().unwrap_or_default();
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    /// Reads a report back from the label value.
    pub fn from_label(value: &str) -> Result<Report, SlimError> {
        let bad =
            |why: String| SlimError::Config(format!("the {REPORT_LABEL} label is damaged: {why}"));
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .map_err(|e| bad(e.to_string()))?;
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .take(256 << 20)
            .read_to_end(&mut json)
            .map_err(|e| bad(e.to_string()))?;
        serde_json::from_slice(&json).map_err(|e| bad(e.to_string()))
    }

    /// The report for one path.
    pub fn find(&self, path: &str) -> Option<&KeptPath> {
        self.kept.iter().find(|k| k.path == path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_round_trips_without_the_source_and_is_stable() {
        let r = Report {
            source: Some("oci:/somewhere".into()),
            entrypoint: vec!["/bin/app".into()],
            before: Totals {
                files: 10,
                bytes: 1000,
            },
            after: Totals {
                files: 2,
                bytes: 100,
            },
            kept: vec![KeptPath {
                path: "/bin/app".into(),
                reason: "entrypoint".into(),
                chain: vec!["/bin/app".into(), "entrypoint".into()],
                found_by: vec!["static".into()],
            }],
            warnings: vec![],
        };
        let label = r.to_label();
        assert_eq!(label, r.to_label());
        let back = Report::from_label(&label).unwrap();
        assert_eq!(back.source, None);
        assert_eq!(back.kept, r.kept);
        assert!(Report::from_label("not base64!").is_err());
    }
}
