//! `whittle squash SRC DST`.

use anyhow::{Context, Result};
use clap::Args;
use whittle_image::Compression;

use super::{mutate_options, open_source, parse_src_dst, scratch_for, write_output};
use crate::args::{ConfigFlags, Global};

/// Arguments of `squash`.
#[derive(Args, Debug)]
pub struct SquashArgs {
    /// The image to read.
    #[arg(value_name = "SRC")]
    src: String,
    /// Where to write the one-layer image.
    #[arg(value_name = "DST")]
    dst: String,
    /// Layer compression: gzip, zstd or none.
    #[arg(long, value_name = "ALGO", default_value = "gzip")]
    compression: Compression,
    #[command(flatten)]
    config: ConfigFlags,
}

/// Runs `squash`.
pub fn run(a: SquashArgs, global: &Global) -> Result<()> {
    let (src, dst) = parse_src_dst(&a.src, &a.dst)?;
    let image = open_source(&src, &a.config, a.compression, global)?;
    let opts = mutate_options(global, &a.config, a.compression)?;
    let squashed = whittle_image::mutate::squash(&image, &scratch_for(&dst)?, &opts)
        .with_context(|| format!("cannot squash {src}"))?;
    write_output(&dst, &squashed, global).map(drop)
}
