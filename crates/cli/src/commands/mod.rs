//! One module per subcommand.

mod build;
mod copy;
mod extract;
mod fleet;
mod inspect;
mod probe;
mod sbom;
mod slim;
mod squash;
mod trim;
mod verify;
mod why;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use whittle_image::mutate::MutateOptions;
use whittle_image::{Compression, Image};
use whittle_transport::{ImageRef, OpenOptions};

use crate::args::{self, ConfigFlags, Global};
pub use probe::MEMORY_DIR;

/// The subcommands.
#[derive(Subcommand)]
pub enum Command {
    /// Copy an image between transports, keeping its config and layers.
    Copy(copy::CopyArgs),
    /// Build an image from one TOML definition: hermetic steps, layers, baseline files, config.
    Build(build::BuildArgs),
    /// Write an image as one layer: the flattened filesystem.
    Squash(squash::SquashArgs),
    /// Report an image's layers, sizes, wasted space and ELF programs.
    Inspect(inspect::InspectArgs),
    /// Keep only what the image's program needs (its ELF closure, implicit files, includes).
    Slim(slim::SlimArgs),
    /// Drop documentation, man pages, unused locales, package caches and logs; keep the rest.
    Trim(trim::TrimArgs),
    /// Keep what an image added above its base, and only the parts of the base it needs.
    Extract(extract::ExtractArgs),
    /// Explain why a slimmed image kept a path.
    Why(why::WhyArgs),
    /// Write an SBOM of an image (SPDX 2.3 or CycloneDX 1.5 JSON): its OS packages and files.
    Sbom(sbom::SbomArgs),
    /// Run two images (an original and its slimmed form) under the same probes and compare.
    Verify(verify::VerifyArgs),
    /// Slim many images from a plan (or one shard of it), skipping outputs already made.
    Fleet(fleet::FleetArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Print whittle's man page (roff), made from the same definitions as --help.
    Man,
}

/// Runs a subcommand.
pub fn run(command: Command, global: &Global) -> Result<()> {
    match command {
        Command::Copy(a) => copy::run(a, global),
        Command::Build(a) => build::run(a, global),
        Command::Squash(a) => squash::run(a, global),
        Command::Inspect(a) => inspect::run(a, global),
        Command::Slim(a) => slim::run(a, global),
        Command::Trim(a) => trim::run(a, global),
        Command::Extract(a) => extract::run(a, global),
        Command::Why(a) => why::run(a, global),
        Command::Sbom(a) => sbom::run(a, global),
        Command::Verify(a) => verify::run(a, global),
        Command::Fleet(a) => fleet::run(a, global),
        // main answers these: they need the whole command line's definition.
        Command::Completions { .. } | Command::Man => Ok(()),
    }
}

/// Parses a reference argument.
pub fn parse_ref(s: &str) -> Result<ImageRef> {
    Ok(s.parse::<ImageRef>()?)
}

/// Parses a source and a destination, and arranges for a signal to clean up
/// what writing the destination leaves half-done.
pub fn parse_src_dst(src: &str, dst: &str) -> Result<(ImageRef, ImageRef)> {
    let (src, dst) = (parse_ref(src)?, parse_ref(dst)?);
    crate::interrupt::install(&[&dst]);
    Ok((src, dst))
}

/// Opens a source image, with the config flags applying to `dir:` sources.
pub fn open_source(
    src: &ImageRef,
    config: &ConfigFlags,
    dir_compression: Compression,
    global: &Global,
) -> Result<Image> {
    let image = whittle_transport::open(src, &open_options(config, dir_compression, global)?)
        .with_context(|| format!("cannot read {src}"))?;
    check_platform(src, &image, global)?;
    Ok(image)
}

/// An explicit `--platform` that a single-platform image does not match is an
/// error naming what the image is (an index already refuses to pick nothing).
fn check_platform(src: &ImageRef, image: &Image, global: &Global) -> Result<()> {
    let Some(wanted) = &global.platform else {
        return Ok(());
    };
    let config: serde_json::Value = serde_json::from_slice(&image.config.bytes)
        .with_context(|| format!("the config of {src} is not JSON"))?;
    let field = |k: &str| config[k].as_str().map(String::from);
    let (Some(os), Some(architecture)) = (field("os"), field("architecture")) else {
        return Ok(());
    };
    let have = whittle_image::manifest::Platform {
        os,
        architecture,
        variant: field("variant"),
    };
    if !wanted.matches(&have) {
        anyhow::bail!("--platform {wanted} matches nothing in {src}: it is {have} only");
    }
    Ok(())
}

/// Opens a source image and the number of its layers that are an implied base.
pub fn open_source_with_base(
    src: &ImageRef,
    config: &ConfigFlags,
    global: &Global,
) -> Result<(Image, Option<usize>)> {
    let (image, base) =
        whittle_transport::open_with_base(src, &open_options(config, Compression::Gzip, global)?)
            .with_context(|| format!("cannot read {src}"))?;
    check_platform(src, &image, global)?;
    Ok((image, base))
}

pub fn open_options(
    config: &ConfigFlags,
    dir_compression: Compression,
    global: &Global,
) -> Result<OpenOptions> {
    Ok(OpenOptions {
        registry: global.registry()?,
        platform: global.platform.clone(),
        scratch_parent: std::env::temp_dir(),
        dir_compression,
        dir_config: config.overrides()?,
        source_date_epoch: args::source_date_epoch()?,
    })
}

/// Options for transforms from the flags.
pub fn mutate_options(
    global: &Global,
    config: &ConfigFlags,
    compression: Compression,
) -> Result<MutateOptions> {
    Ok(MutateOptions {
        compression,
        source_date_epoch: args::source_date_epoch()?,
        limits: global.limits(),
        overrides: config.overrides()?,
    })
}

/// The config the output will have (the image's with the flags' overrides) and the run it
/// describes: what slim and trim analyse is the program the output will run.
pub fn output_run_config(
    image: &Image,
    opts: &MutateOptions,
) -> Result<(Vec<u8>, whittle_slim::RunConfig)> {
    let edited = whittle_image::config::edit(
        &image.config.bytes,
        &whittle_image::config::ConfigEdit {
            overrides: Some(&opts.overrides),
            ..Default::default()
        },
    )?;
    let run = whittle_slim::RunConfig::from_config(&edited)?;
    Ok((edited, run))
}

/// Writes the result and reports it; returns the written manifest's digest.
pub fn write_output(
    dst: &ImageRef,
    image: &Image,
    global: &Global,
) -> Result<whittle_image::Digest> {
    let opts = whittle_transport::WriteOptions {
        registry: global.registry()?,
        source_date_epoch: args::source_date_epoch()?,
        limits: global.limits(),
        force: global.force,
    };
    let digest = whittle_transport::write(dst, image, &opts)
        .with_context(|| format!("cannot write {dst}"))?;
    if !global.quiet {
        say_written(dst, &digest);
    }
    crate::output::print(&format!("{digest}\n"))?;
    Ok(digest)
}

/// `wrote DST`; for a registry, the reference by digest that pulls exactly this image.
pub fn say_written(dst: &ImageRef, digest: &whittle_image::Digest) {
    match dst {
        ImageRef::Docker(r) => eprintln!("wrote {dst} (docker://{}/{}@{digest})", r.host, r.repo),
        _ => eprintln!("wrote {dst}"),
    }
}

/// Scratch space on the output's filesystem.
pub fn scratch_for(dst: &ImageRef) -> Result<std::sync::Arc<whittle_image::Scratch>> {
    let parent: PathBuf = whittle_transport::output_parent(dst);
    Ok(std::sync::Arc::new(whittle_image::Scratch::new_in(
        &parent,
    )?))
}
