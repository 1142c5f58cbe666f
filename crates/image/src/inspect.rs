//! What an image holds: per-layer counts, the largest files, wasted space and
//! efficiency (as dive defines them), and ELF linkage with missing loaders.

use serde::Serialize;

use crate::entries::{EntryKind, ReadOptions};
use crate::flatten::{FlatView, Flattener, LayerStats};
use crate::layers::read_layers;
use crate::{Image, Limits, Result};
use whittle_elf::Linkage;

/// One layer's line in the report.
#[derive(Debug, Serialize)]
pub struct LayerReport {
    /// Position, bottom first.
    pub index: usize,
    /// Blob digest.
    pub digest: String,
    /// sha256 of the uncompressed tar.
    pub diff_id: String,
    /// Blob media type.
    pub media_type: String,
    /// Blob size.
    pub compressed_size: u64,
    /// Uncompressed tar size.
    pub uncompressed_size: u64,
    /// Counts.
    #[serde(flatten)]
    pub stats: LayerStats,
}

/// A file of the final filesystem.
#[derive(Debug, Serialize)]
pub struct FileReport {
    /// Absolute path.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// The layer it comes from.
    pub layer: usize,
}

/// An ELF file of the final filesystem.
#[derive(Debug, Serialize)]
pub struct ElfReport {
    /// Absolute path.
    pub path: String,
    /// `dynamic`, `static`, `shared-object` or `other`.
    pub linkage: &'static str,
    /// The loader, for dynamic programs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interpreter: Option<String>,
    /// Whether the loader exists in the image (following symlinks inside it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interpreter_present: Option<bool>,
}

/// The whole report.
#[derive(Debug, Serialize)]
pub struct Inspection {
    /// Digest of the manifest whittle would write for the image.
    pub manifest_digest: String,
    /// Digest of the config.
    pub config_digest: String,
    /// From the config.
    pub architecture: String,
    /// From the config.
    pub os: String,
    /// Per layer.
    pub layers: Vec<LayerReport>,
    /// Σ blob sizes.
    pub total_compressed_size: u64,
    /// Σ uncompressed tar sizes.
    pub total_uncompressed_size: u64,
    /// Non-directory paths in the final filesystem.
    pub files: u64,
    /// The ten largest files.
    pub largest_files: Vec<FileReport>,
    /// Bytes of files overwritten or deleted by later layers.
    pub wasted_bytes: u64,
    /// Σ smallest copy of each path / Σ all its copies, 0..1.
    pub efficiency: f64,
    /// ELF files, sorted by path.
    pub elf: Vec<ElfReport>,
    /// Problems worth a look (e.g. a missing program interpreter).
    pub warnings: Vec<String>,
    /// The run configuration (`config` of the image config: Entrypoint, Cmd, Env,
    /// User, WorkingDir, ExposedPorts, Labels, ...), as the image has it.
    pub config: serde_json::Value,
    /// The image's build history (`history`), as the image has it.
    pub history: serde_json::Value,
}

/// Reads every layer (verified) and reports on the image.
pub fn inspect(image: &Image, limits: &Limits) -> Result<Inspection> {
    let read = read_layers(image, limits, ReadOptions { peek_elf: true }, None)?;
    let mut flat = Flattener::new(true);
    let mut layers = Vec::with_capacity(read.len());
    for (i, layer) in read.into_iter().enumerate() {
        let l = &image.layers[i];
        let stats = flat.apply(i, &l.descriptor.digest, layer.changes)?;
        layers.push(LayerReport {
            index: i,
            digest: l.descriptor.digest.to_string(),
            diff_id: l.diff_id.to_string(),
            media_type: l.descriptor.media_type.to_string(),
            compressed_size: l.descriptor.size,
            uncompressed_size: layer.uncompressed_size,
            stats,
        });
    }
    let view = flat.finish();
    let config: serde_json::Value = serde_json::from_slice(&image.config.bytes).unwrap_or_default();
    let field = |k: &str| {
        config
            .get(k)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    let (elf, warnings) = elf_reports(&view);
    Ok(Inspection {
        manifest_digest: image.manifest_doc().digest.to_string(),
        config_digest: image.config.digest.to_string(),
        architecture: field("architecture"),
        os: field("os"),
        total_compressed_size: layers.iter().map(|l| l.compressed_size).sum(),
        total_uncompressed_size: layers.iter().map(|l| l.uncompressed_size).sum(),
        layers,
        files: view
            .nodes
            .values()
            .filter(|n| n.kind != EntryKind::Dir)
            .count() as u64,
        largest_files: largest(&view, 10),
        wasted_bytes: view.wasted_bytes,
        efficiency: view.efficiency.unwrap_or(1.0),
        elf,
        warnings,
        config: config.get("config").cloned().unwrap_or_default(),
        history: config.get("history").cloned().unwrap_or_default(),
    })
}

fn largest(view: &FlatView, n: usize) -> Vec<FileReport> {
    let mut files: Vec<(&String, u64, usize, u64)> = view
        .nodes
        .iter()
        .filter(|(_, node)| node.kind == EntryKind::File)
        .map(|(p, node)| (p, node.size(), node.layer, node.inode))
        .collect();
    // Largest first; ties by path so the order is stable.
    files.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    // Hard links share their data: the first path of each inode stands for them all.
    let mut seen = std::collections::HashSet::new();
    files.retain(|f| f.3 == 0 || seen.insert(f.3));
    files
        .into_iter()
        .take(n)
        .map(|(p, size, layer, _)| FileReport {
            path: format!("/{p}"),
            size,
            layer,
        })
        .collect()
}

fn elf_reports(view: &FlatView) -> (Vec<ElfReport>, Vec<String>) {
    let mut reports = Vec::new();
    let mut warnings = Vec::new();
    for (path, node) in &view.nodes {
        let Some(elf) = &node.elf else { continue };
        let (linkage, interpreter) = match &elf.linkage {
            Linkage::Dynamic { interpreter } => ("dynamic", Some(interpreter.clone())),
            Linkage::Static => ("static", None),
            Linkage::SharedObject => ("shared-object", None),
            Linkage::Other => ("other", None),
        };
        let present = interpreter.as_ref().map(|i| view.resolve(i).is_some());
        if let (Some(i), Some(false)) = (&interpreter, present) {
            warnings.push(format!(
                "/{path} needs the program interpreter {i}, which is not in the image: running it fails with 'no such file or directory'"
            ));
        }
        reports.push(ElfReport {
            path: format!("/{path}"),
            linkage,
            interpreter,
            interpreter_present: present,
        });
    }
    (reports, warnings)
}
