//! `whittle copy SRC DST`.

use anyhow::{bail, Context, Result};
use clap::Args;
use whittle_image::mutate::{compress_plain, recompress, reconfigure};
use whittle_image::Compression;
use whittle_transport::ImageRef;

use super::{mutate_options, open_options, open_source, parse_src_dst, scratch_for, write_output};
use crate::args::{ConfigFlags, Global};

/// Arguments of `copy`.
#[derive(Args, Debug)]
pub struct CopyArgs {
    /// The image to read.
    #[arg(value_name = "SRC")]
    src: String,
    /// Where to write it.
    #[arg(value_name = "DST")]
    dst: String,
    /// Re-encode layers (gzip, zstd or none). Without it, compressed layer blobs are copied
    /// byte for byte, and uncompressed ones are gzipped for oci:, oci-archive: and docker://
    /// (as skopeo does); `--compression none` keeps every layer uncompressed.
    #[arg(long, value_name = "ALGO")]
    compression: Option<Compression>,
    /// Copy every platform of a multi-platform image (the index and all its images, as they are).
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    config: ConfigFlags,
}

/// Runs `copy`.
pub fn run(a: CopyArgs, global: &Global) -> Result<()> {
    let (src, dst) = parse_src_dst(&a.src, &a.dst)?;
    if a.all {
        if a.compression.is_some() || !a.config.overrides()?.is_empty() {
            bail!("--all copies every platform as it is: it cannot be combined with --compression or config flags");
        }
        let opts = open_options(&a.config, Compression::Gzip, global)?;
        let multi = whittle_transport::multi::open(&src, &opts)
            .with_context(|| format!("cannot read {src}"))?;
        if let Some(multi) = multi {
            let write = whittle_transport::WriteOptions {
                registry: global.registry()?,
                source_date_epoch: crate::args::source_date_epoch()?,
                limits: global.limits(),
                force: global.force,
            };
            let digest = whittle_transport::write_all(&dst, &multi, &write)
                .with_context(|| format!("cannot write {dst}"))?;
            if !global.quiet {
                eprintln!("{} platforms:", multi.images.len());
                super::say_written(&dst, &digest);
            }
            crate::output::print(&format!("{digest}\n"))?;
            return Ok(());
        }
        // A single image: --all copies just it, as skopeo does.
    }
    let image = open_source(
        &src,
        &a.config,
        a.compression.unwrap_or(Compression::Gzip),
        global,
    )?;
    let out = match a.compression {
        Some(c) => {
            let opts = mutate_options(global, &a.config, c)?;
            recompress(&image, &scratch_for(&dst)?, &opts)
                .with_context(|| format!("cannot recompress {src}"))?
        }
        // A store of blobs (a layout, a registry) gets compressed layers, as skopeo, crane
        // and docker push give it; blobs that are compressed already stay as they are.
        None if keeps_blobs(&dst) => {
            let opts = mutate_options(global, &a.config, Compression::Gzip)?;
            let plain = image
                .layers
                .iter()
                .filter(|l| matches!(l.compression(), Ok(Compression::None)))
                .count();
            if plain > 0 && !global.quiet {
                eprintln!(
                    "gzipping {plain} uncompressed layer{} for {dst}, as skopeo does \
                     (--compression none keeps them plain; zstd is faster and smaller, \
                     read by Docker >= 23, containerd >= 1.5 and podman)",
                    if plain == 1 { "" } else { "s" }
                );
            }
            compress_plain(&image, &scratch_for(&dst)?, &opts)
                .with_context(|| format!("cannot compress the layers of {src}"))?
        }
        None => reconfigure(
            &image,
            &mutate_options(global, &a.config, Compression::Gzip)?,
        )?,
    };
    write_output(&dst, &out, global).map(drop)
}

/// Whether `dst` keeps layer blobs as they are given (so uncompressed ones would stay
/// uncompressed there): OCI layouts, their archives, registries. `docker save` archives
/// and the Engine hold uncompressed layers whatever they are given.
fn keeps_blobs(dst: &ImageRef) -> bool {
    matches!(
        dst,
        ImageRef::Oci { .. } | ImageRef::OciArchive { .. } | ImageRef::Docker(_)
    )
}
