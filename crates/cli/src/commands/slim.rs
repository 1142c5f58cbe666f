//! `whittle slim SRC DST`: keep only what the image's program needs.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use whittle_image::entries::ReadOptions;
use whittle_image::flatten::FlatView;
use whittle_image::mutate::{write_view, Flat};
use whittle_image::{Compression, Image};
use whittle_slim::trim::Category;
use whittle_slim::{Mode, Plan, SlimOptions, REPORT_LABEL};
use whittle_transport::ImageRef;

use super::probe::{require_probes_ok, traced_paths, traced_run, TraceFlags};
use super::sbom::SbomFlags;
use super::{
    mutate_options, open_source, output_run_config, parse_src_dst, scratch_for, write_output,
};
use crate::args::{ConfigFlags, Global};

/// What to keep beyond the analysis, and where to explain it.
#[derive(Args, Debug)]
pub struct KeepFlags {
    /// Keep a path or glob: a binary brings its libraries, a directory its tree (repeatable).
    #[arg(long, value_name = "PATH|GLOB")]
    include: Vec<String>,
    /// Never keep paths matching this glob, nor what is under them (repeatable).
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,
    /// Keep /bin/sh and its libraries.
    #[arg(long)]
    include_shell: bool,
    /// Keep dpkg's status / apk's installed database, trimmed to the packages still present.
    #[arg(long)]
    keep_pkgdb: bool,
    /// Split the output into layers images on one base share: `packages` = C library and
    /// base files, other shared libraries, the application (from the dpkg database).
    #[arg(long, value_name = "HOW", default_value = "none", value_parser = ["none", "packages"])]
    layering: String,
    /// Write every kept path with its reason chain to this JSON file.
    #[arg(long, value_name = "FILE.json")]
    report: Option<PathBuf>,
    /// The output layer's compression: gzip, zstd or none.
    #[arg(long, value_name = "ALGO", default_value = "gzip")]
    compression: Compression,
    #[command(flatten)]
    sbom: SbomFlags,
}

impl KeepFlags {
    fn options(&self) -> SlimOptions {
        SlimOptions {
            includes: self.include.clone(),
            excludes: self.exclude.clone(),
            include_shell: self.include_shell,
            keep_pkgdb: self.keep_pkgdb,
            layering_packages: self.layering == "packages",
            traced: Default::default(),
        }
    }
}

/// Arguments of `slim`.
#[derive(Args, Debug)]
pub struct SlimArgs {
    /// The image to slim.
    #[arg(value_name = "SRC")]
    src: String,
    /// Where to write the slimmed image.
    #[arg(value_name = "DST")]
    dst: String,
    #[command(flatten)]
    keep: KeepFlags,
    #[command(flatten)]
    config: ConfigFlags,
    #[command(flatten)]
    trace: TraceFlags,
    /// Run the original and the output under the same probes and fail (writing
    /// nothing) if they behave differently; see `whittle verify`.
    #[arg(long)]
    verify: bool,
}

/// Runs `slim`.
pub fn run(a: SlimArgs, global: &Global) -> Result<()> {
    let (src, dst) = parse_src_dst(&a.src, &a.dst)?;
    let image = open_source(&src, &a.config, a.keep.compression, global)?;
    let run = RunChecks {
        trace: a.trace,
        verify: a.verify,
    };
    write_slimmed(
        &src,
        &dst,
        &image,
        Mode::Slim,
        &a.keep,
        &a.config,
        &run,
        global,
        "whittle slim",
        None,
    )
}

/// The run-time side of slimming: tracing the original, verifying the output.
#[derive(Default)]
pub(super) struct RunChecks {
    pub trace: TraceFlags,
    pub verify: bool,
}

/// Analyses `image`, writes what it keeps to `dst`, and explains it.
#[allow(clippy::too_many_arguments)]
pub(super) fn write_slimmed(
    src: &ImageRef,
    dst: &ImageRef,
    image: &Image,
    mode: Mode,
    keep: &KeepFlags,
    config_flags: &ConfigFlags,
    checks: &RunChecks,
    global: &Global,
    created_by: &str,
    trim: Option<&BTreeSet<Category>>,
) -> Result<()> {
    if !global.quiet {
        say_platform(src, config_flags, global);
    }
    let mut opts = mutate_options(global, config_flags, keep.compression)?;
    // The program analysed is the one the output will run.
    let (edited, run_config) = output_run_config(image, &opts)?;
    let trim_config = run_config.clone();
    let scratch = scratch_for(dst)?;
    let flat = Flat::read(image, &scratch, &opts.limits, ReadOptions::default())
        .with_context(|| format!("cannot read {src}"))?;
    let mut trace_flags = checks.trace.clone();
    // Verifying needs a run of the original under the same probes anyway.
    trace_flags.trace |= checks.verify;
    super::probe::check_profile_path(&trace_flags)?;
    let original_run = if trace_flags.enabled() {
        let run = traced_run(
            "original",
            &flat,
            &edited,
            &scratch,
            &trace_flags,
            global.quiet,
        )?;
        require_probes_ok("original", &run, &trace_flags)
            .with_context(|| format!("nothing written to {dst}"))?;
        Some(run)
    } else {
        None
    };
    let mut slim_options = keep.options();
    if let Some(run) = &original_run {
        slim_options.traced = traced_paths(run);
    }
    let Plan {
        view,
        generated,
        mut report,
        layers,
    } = whittle_slim::plan(&flat, run_config, &slim_options, mode)
        .with_context(|| format!("cannot slim {src}"))?;
    let (view, generated, layers, trim_report) = match trim {
        Some(drop) => {
            let t = whittle_slim::trim::plan(&flat, &view, &generated, trim_config, drop);
            // The report (and `why`) speaks only of what the output has.
            report.kept.retain(|k| {
                k.path == "/" || t.view.nodes.contains_key(k.path.trim_start_matches('/'))
            });
            report.after = t.report.after;
            let layers = layers.map(|ls| ls.iter().map(|l| restrict(l, &t.view)).collect());
            (t.view, t.generated, layers, Some(t.report))
        }
        None => (view, generated, layers, None),
    };
    opts.overrides
        .labels
        .push((REPORT_LABEL.to_string(), report.to_label()));
    let out = match &layers {
        Some(layers) => whittle_image::mutate::write_layers(
            image, &flat, layers, &generated, &scratch, &opts, created_by,
        ),
        None => write_view(image, &flat, &view, &generated, &scratch, &opts, created_by),
    }
    .with_context(|| format!("cannot write the slimmed image of {src}"))?;
    if let (Some(layers), false) = (&layers, global.quiet) {
        let counts: Vec<String> = whittle_slim::layering::describe(layers)
            .values()
            .map(|n| n.to_string())
            .collect();
        eprintln!("layers (files, bottom first): {}", counts.join(", "));
    }
    if let (true, Some(original_run)) = (checks.verify, &original_run) {
        let out_flat = Flat::read(&out, &scratch, &opts.limits, ReadOptions::default())
            .context("cannot read the slimmed image back")?;
        let slim_run = traced_run(
            "slimmed",
            &out_flat,
            &out.config.bytes,
            &scratch,
            &trace_flags,
            global.quiet,
        )?;
        let differences = super::verify::compare(original_run, &slim_run, &flat, &out_flat);
        if !differences.is_empty() {
            super::verify::print_differences(&differences);
            anyhow::bail!(
                "--verify: the slimmed image behaves differently from {src}; nothing written to {dst}"
            );
        }
        if !global.quiet {
            eprintln!("verify: the slimmed image behaves like the original");
        }
        if let Some(path) = &trace_flags.seccomp_profile {
            // The output runs under it: the calls of both runs.
            super::probe::write_seccomp_profile(path, &[original_run, &slim_run], global.quiet)?;
        }
    }
    if let (Some(path), Some(run), false) =
        (&trace_flags.seccomp_profile, &original_run, checks.verify)
    {
        super::probe::write_seccomp_profile(path, &[run], global.quiet)?;
    }
    report.source = Some(src.to_string());
    if let Some(path) = &keep.report {
        let json = serde_json::to_vec_pretty(&report).unwrap_or_default();
        std::fs::write(path, json)
            .with_context(|| format!("cannot write the report {}", path.display()))?;
    }
    let digest = write_output(dst, &out, global)?;
    // The output rarely keeps the package database (--keep-pkgdb): the source's says
    // which packages the kept files belong to.
    let dbs = match keep.sbom.sbom {
        Some(_) => vec![whittle_slim::installed_packages(&flat)],
        None => Vec::new(),
    };
    super::sbom::write_for_output(&keep.sbom, dst, &digest, &out, dbs, Vec::new(), global)?;
    if !global.quiet {
        let command = match mode {
            Mode::Slim => "slim",
            Mode::Extract { .. } => "extract",
        };
        print_summary(command, &report, &view);
        if let Some(mut t) = trim_report {
            t.source = Some(src.to_string());
            super::trim::print_summary(&format!("{command} --trim"), &t);
        }
        if original_run.is_none() {
            // Static analysis cannot see configuration and data files a program opens.
            eprintln!(
                "{command}: made without running the program: files it opens that no linker \
                 shows (its configuration, data) are missing unless --include names them; \
                 run it with --http-probe/--exec-probe (or --trace) and check with --verify"
            );
        }
    }
    Ok(())
}

/// `layer` with only the paths `view` has, as `view` has them (rewritten files included).
fn restrict(layer: &FlatView, view: &FlatView) -> FlatView {
    let mut out = FlatView::default();
    for k in layer.nodes.keys() {
        if let Some(node) = view.nodes.get(k) {
            out.nodes.insert(k.clone(), node.clone());
        }
    }
    out
}

/// Says which platform of a multi-platform source is being slimmed.
fn say_platform(src: &ImageRef, config_flags: &ConfigFlags, global: &Global) {
    let Ok(opts) = super::open_options(config_flags, Compression::Gzip, global) else {
        return;
    };
    if let Ok(Some(multi)) = whittle_transport::multi::open(src, &opts) {
        let platform = global
            .platform
            .clone()
            .unwrap_or_else(whittle_image::manifest::host_platform);
        let all: Vec<String> = multi
            .images
            .iter()
            .filter_map(|i| serde_json::from_slice::<serde_json::Value>(&i.config.bytes).ok())
            .map(|c| {
                format!(
                    "{}/{}",
                    c["os"].as_str().unwrap_or("?"),
                    c["architecture"].as_str().unwrap_or("?")
                )
            })
            .collect();
        eprintln!(
            "{src} has {} platforms ({}); slimming {platform} (choose with --platform)",
            all.len(),
            all.join(", ")
        );
    }
}

fn print_summary(
    command: &str,
    report: &whittle_slim::Report,
    view: &whittle_image::flatten::FlatView,
) {
    use crate::output::human as human_size;
    let files = |n: u64| format!("{n} file{}", if n == 1 { "" } else { "s" });
    eprintln!(
        "{command}: {} -> {}; {} kept, {} removed",
        human_size(report.before.bytes),
        human_size(report.after.bytes),
        files(report.after.files),
        report.before.files.saturating_sub(report.after.files)
    );
    let mut largest: Vec<(&String, u64)> = view
        .nodes
        .iter()
        .map(|(k, n)| (k, n.size()))
        .filter(|(_, s)| *s > 0)
        .collect();
    largest.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    if !largest.is_empty() {
        eprintln!("largest kept files:");
    }
    for (k, size) in largest.iter().take(10) {
        let path = format!("/{k}");
        let why = report.find(&path).map(|k| k.reason.as_str()).unwrap_or("");
        eprintln!("  {:>9}  {path}  ({why})", human_size(*size));
    }
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
}
