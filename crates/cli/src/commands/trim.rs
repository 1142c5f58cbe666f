//! `whittle trim SRC DST`: drop documentation, man pages, unused locales, package caches
//! and logs; keep everything else byte for byte.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use whittle_image::entries::ReadOptions;
use whittle_image::mutate::{write_view, Flat};
use whittle_image::Compression;
use whittle_slim::trim::{Category, TrimReport};

use super::{
    mutate_options, open_source, output_run_config, parse_src_dst, scratch_for, write_output,
};
use crate::args::{ConfigFlags, Global};

/// The categories dropped when `--drop` is not given.
pub const DEFAULT_DROP: &str = "docs,man,locale,cache,logs";

/// Parses a `--drop` list for clap.
pub fn parse_drop(s: &str) -> Result<BTreeSet<Category>, String> {
    whittle_slim::trim::parse_categories(s).map_err(|e| e.to_string())
}

/// Arguments of `trim`.
#[derive(Args, Debug)]
pub struct TrimArgs {
    /// The image to trim.
    #[arg(value_name = "SRC")]
    src: String,
    /// Where to write the trimmed image (one layer).
    #[arg(value_name = "DST")]
    dst: String,
    /// What to drop, comma-separated: docs, copyright, man, locale, cache, logs
    /// (the entrypoint's closure always stays).
    #[arg(long, value_name = "CATEGORIES", default_value = DEFAULT_DROP, value_parser = parse_drop)]
    drop: BTreeSet<Category>,
    /// Write what was dropped and kept, per category, to this JSON file.
    #[arg(long, value_name = "FILE.json")]
    report: Option<PathBuf>,
    /// The output layer's compression: gzip, zstd or none.
    #[arg(long, value_name = "ALGO", default_value = "gzip")]
    compression: Compression,
    #[command(flatten)]
    config: ConfigFlags,
}

/// Runs `trim`.
pub fn run(a: TrimArgs, global: &Global) -> Result<()> {
    let (src, dst) = parse_src_dst(&a.src, &a.dst)?;
    let image = open_source(&src, &a.config, a.compression, global)?;
    let opts = mutate_options(global, &a.config, a.compression)?;
    // The program protected is the one the output will run.
    let (_, run_config) = output_run_config(&image, &opts)?;
    let scratch = scratch_for(&dst)?;
    let flat = Flat::read(&image, &scratch, &opts.limits, ReadOptions::default())
        .with_context(|| format!("cannot read {src}"))?;
    let trimmed =
        whittle_slim::trim::plan(&flat, &flat.view, &BTreeMap::new(), run_config, &a.drop);
    let out = write_view(
        &image,
        &flat,
        &trimmed.view,
        &trimmed.generated,
        &scratch,
        &opts,
        "whittle trim",
    )
    .with_context(|| format!("cannot write the trimmed image of {src}"))?;
    let mut report = trimmed.report;
    report.source = Some(src.to_string());
    write_output(&dst, &out, global)?;
    // After the image: a failed write leaves no report of an image that is not there.
    write_report(a.report.as_ref(), &report)?;
    if !global.quiet {
        print_summary("trim", &report);
    }
    Ok(())
}

/// Writes `--report FILE.json`.
pub(super) fn write_report(path: Option<&PathBuf>, report: &TrimReport) -> Result<()> {
    let Some(path) = path else {
        return Ok(());
    };
    let json = serde_json::to_vec_pretty(report).context("cannot encode the trim report")?;
    std::fs::write(path, json)
        .with_context(|| format!("cannot write the report {}", path.display()))
}

/// What was dropped, per category, and what stayed against its category, on stderr.
pub(super) fn print_summary(command: &str, report: &TrimReport) {
    use crate::output::human;
    let files = |n: u64| format!("{n} file{}", if n == 1 { "" } else { "s" });
    let removed = report.before.files.saturating_sub(report.after.files);
    eprintln!(
        "{command}: {} -> {}; {} removed, {} saved",
        human(report.before.bytes),
        human(report.after.bytes),
        files(removed),
        human(report.before.bytes.saturating_sub(report.after.bytes))
    );
    for c in &report.dropped {
        let t = report.saved.get(c).copied().unwrap_or_default();
        eprintln!(
            "  {:<10} {:>12}  {:>10}  ({} bytes)",
            c.name(),
            files(t.files),
            human(t.bytes),
            t.bytes
        );
    }
    if !report.dropped.contains(&Category::Copyright) {
        eprintln!(
            "  copyright files in /usr/share/doc kept (license notices; --drop ...,copyright drops them)"
        );
    }
    for k in &report.kept_for_closure {
        eprintln!(
            "kept {} ({}) for the entrypoint: {}",
            k.path,
            k.category,
            k.chain.join(" <- ")
        );
    }
    if !report.pkgdb_rewritten.is_empty() {
        eprintln!(
            "package database: {} files rewritten without the dropped paths",
            report.pkgdb_rewritten.len()
        );
    }
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
}
