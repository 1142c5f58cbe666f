//! `whittle copy SRC DST`.

use anyhow::{Context, Result};
use clap::Args;
use whittle_image::mutate::{recompress, reconfigure};
use whittle_image::Compression;

use super::{mutate_options, open_source, parse_src_dst, scratch_for, write_output};
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
    /// Re-encode layers (gzip, zstd or none); without it, layer blobs are copied byte for byte.
    #[arg(long, value_name = "ALGO")]
    compression: Option<Compression>,
    #[command(flatten)]
    config: ConfigFlags,
}

/// Runs `copy`.
pub fn run(a: CopyArgs, global: &Global) -> Result<()> {
    let (src, dst) = parse_src_dst(&a.src, &a.dst)?;
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
        None => reconfigure(
            &image,
            &mutate_options(global, &a.config, Compression::Gzip)?,
        )?,
    };
    write_output(&dst, &out, global)
}
