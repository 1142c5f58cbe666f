//! `whittle extract --base BASE SRC DST`: what SRC installed on top of BASE,
//! plus only the parts of BASE that it needs.

use std::collections::BTreeSet;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use whittle_slim::trim::Category;
use whittle_slim::Mode;

use super::probe::TraceFlags;
use super::slim::{write_slimmed, KeepFlags, RunChecks};
use super::trim::{parse_drop, DEFAULT_DROP};
use super::{open_source, open_source_with_base, parse_ref, parse_src_dst};
use crate::args::{ConfigFlags, Global};
use whittle_image::Image;
use whittle_transport::ImageRef;

/// What to take from the base.
#[derive(Clone, Copy, Debug, Default, ValueEnum)]
pub enum BaseLibs {
    /// Only the libraries (and implicit files) that the added programs need.
    #[default]
    Closure,
    /// Every library directory of the base (for programs whose dlopen use defeats analysis).
    All,
}

/// Arguments of `extract`.
#[derive(Args, Debug)]
pub struct ExtractArgs {
    /// The base image SRC was built on (implied for docker-container: sources: the container's image).
    #[arg(long, value_name = "BASE")]
    base: Option<String>,
    /// The image built on the base.
    #[arg(value_name = "SRC")]
    src: String,
    /// Where to write the result.
    #[arg(value_name = "DST")]
    dst: String,
    /// What to take from the base: its libraries that the added files link (closure) or all of them.
    #[arg(long, value_name = "WHICH", default_value = "closure")]
    base_libs: BaseLibs,
    #[command(flatten)]
    keep: KeepFlags,
    #[command(flatten)]
    config: ConfigFlags,
    #[command(flatten)]
    trace: TraceFlags,
    /// Run the source and the output under the same probes and fail (writing nothing) if they differ.
    #[arg(long)]
    verify: bool,
    /// Also drop documentation, man pages, unused locales, package caches and logs from
    /// the output, as `trim` does (`--trim=CATEGORIES` chooses them, as `trim --drop`).
    #[arg(long, value_name = "CATEGORIES", num_args = 0..=1, require_equals = true,
          default_missing_value = DEFAULT_DROP, value_parser = parse_drop)]
    trim: Option<BTreeSet<Category>>,
}

/// Runs `extract`.
pub fn run(a: ExtractArgs, global: &Global) -> Result<()> {
    let (src, dst) = parse_src_dst(&a.src, &a.dst)?;
    let (image, implied) = open_source_with_base(&src, &a.config, global)?;
    let base_layers = match (&a.base, implied) {
        (Some(base), _) => {
            let base_ref = parse_ref(base)?;
            let base = open_source(
                &base_ref,
                &ConfigFlags::default(),
                whittle_image::Compression::Gzip,
                global,
            )
            .with_context(|| format!("cannot read the base {base_ref}"))?;
            check_on_base(&src, &image, &base_ref, &base)?
        }
        (None, Some(n)) => n,
        (None, None) => bail!(
            "extract needs --base BASE (the image {src} was built on); only docker-container: sources imply one"
        ),
    };
    let mode = Mode::Extract {
        base_layers,
        base_libs_all: matches!(a.base_libs, BaseLibs::All),
    };
    write_slimmed(
        &src,
        &dst,
        &image,
        mode,
        &a.keep,
        &a.config,
        &RunChecks {
            trace: a.trace,
            verify: a.verify,
        },
        global,
        "whittle extract",
        a.trim.as_ref(),
    )
}

fn check_on_base(
    src: &ImageRef,
    image: &Image,
    base_ref: &ImageRef,
    base: &Image,
) -> Result<usize> {
    let base_ids: Vec<_> = base.layers.iter().map(|l| &l.diff_id).collect();
    let src_ids: Vec<_> = image.layers.iter().map(|l| &l.diff_id).collect();
    if base_ids.len() > src_ids.len() || src_ids[..base_ids.len()] != base_ids[..] {
        let first = base_ids
            .iter()
            .zip(&src_ids)
            .position(|(a, b)| a != b)
            .unwrap_or(src_ids.len().min(base_ids.len()));
        bail!(
            "{src} is not built on {base_ref}: the base has {} layers, {src} has {}, and they differ from layer {}",
            base_ids.len(),
            src_ids.len(),
            first + 1
        );
    }
    if base_ids.len() == src_ids.len() {
        bail!("{src} has no layers above {base_ref}: nothing was added to extract");
    }
    Ok(base_ids.len())
}
