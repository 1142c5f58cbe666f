//! `whittle sbom IMAGE`, and the `--sbom FILE` of slim, extract and build.
//!
//! The SBOM is a file (stdout or `-o`, or `--sbom FILE`), not part of the image: attaching
//! it as an OCI artifact needs a registry that serves referrers, and no label convention
//! for SBOMs exists that scanners read.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use whittle_image::{Compression, Digest, Image};
use whittle_sbom::{BuildInput, Contents, Format, Sbom, Subject};
use whittle_slim::pkgdb::PackageDb;
use whittle_transport::ImageRef;

use super::{open_source, parse_ref};
use crate::args::{self, ConfigFlags, Global};

/// `--sbom FILE` and `--sbom-format`, for commands that write an image.
#[derive(Args, Debug, Default, Clone)]
pub struct SbomFlags {
    /// Also write an SBOM of the output image to FILE: its OS packages that still own
    /// files, and every file with its SHA-256.
    #[arg(long, value_name = "FILE")]
    pub sbom: Option<PathBuf>,
    /// The SBOM format: spdx (SPDX 2.3 JSON) or cyclonedx (CycloneDX 1.5 JSON).
    #[arg(long, value_name = "FORMAT", default_value = "spdx", value_parser = parse_format)]
    pub sbom_format: Format,
}

fn parse_format(s: &str) -> Result<Format, String> {
    s.parse()
        .map_err(|e: whittle_sbom::SbomError| e.to_string())
}

/// Arguments of `sbom`.
#[derive(Args, Debug)]
pub struct SbomArgs {
    /// The image to describe.
    #[arg(value_name = "IMAGE")]
    image: String,
    /// Write the SBOM to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// The format: spdx (SPDX 2.3 JSON) or cyclonedx (CycloneDX 1.5 JSON).
    #[arg(long, value_name = "FORMAT", default_value = "spdx", value_parser = parse_format)]
    sbom_format: Format,
}

/// Runs `sbom`.
pub fn run(a: SbomArgs, global: &Global) -> Result<()> {
    let r = parse_ref(&a.image)?;
    // Sources may be downloaded to the temp directory: a signal must not leave them there.
    crate::interrupt::install(&[]);
    let image = open_source(&r, &ConfigFlags::default(), Compression::None, global)?;
    let digest = image.manifest_doc().digest;
    let bytes = render(
        &r,
        &digest,
        &image,
        Vec::new(),
        Vec::new(),
        a.sbom_format,
        global,
    )?;
    match &a.output {
        Some(path) => write_file(path, &bytes),
        None => Ok(crate::output::print(&String::from_utf8_lossy(&bytes))?),
    }
}

/// Writes the SBOM of `image`, just written to `dst` as `digest`, to `flags.sbom` if set.
/// `dbs`: package databases to report from besides the image's own (a slimmed image's
/// source's, a build's images').
pub fn write_for_output(
    flags: &SbomFlags,
    dst: &ImageRef,
    digest: &Digest,
    image: &Image,
    dbs: Vec<PackageDb>,
    inputs: Vec<BuildInput>,
    global: &Global,
) -> Result<()> {
    let Some(path) = &flags.sbom else {
        return Ok(());
    };
    let bytes = render(dst, digest, image, dbs, inputs, flags.sbom_format, global)?;
    write_file(path, &bytes)?;
    if !global.quiet {
        eprintln!("wrote the SBOM {}", path.display());
    }
    Ok(())
}

fn render(
    r: &ImageRef,
    digest: &Digest,
    image: &Image,
    dbs: Vec<PackageDb>,
    inputs: Vec<BuildInput>,
    format: Format,
    global: &Global,
) -> Result<Vec<u8>> {
    let contents = Contents::read(image, &global.limits())
        .with_context(|| format!("cannot read {r} for its SBOM"))?;
    // The image's own database first: where it lists a package, its version is the truth.
    let mut dbs = dbs;
    dbs.insert(0, contents.installed_packages());
    let created =
        whittle_sbom::created_from_config(&image.config.bytes, args::source_date_epoch()?);
    let subject = Subject {
        name: subject_name(r),
        digest: digest.to_string(),
    };
    let mut sbom = Sbom::new(subject, created, &contents, &dbs)
        .with_context(|| format!("cannot make the SBOM of {r}"))?;
    sbom.inputs = inputs;
    if sbom.packages.is_empty() && !global.quiet {
        eprintln!(
            "warning: the SBOM of {r} lists no packages: no dpkg or apk database names a file in it"
        );
    }
    Ok(sbom.render(format))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// A name for the image that does not depend on where its files are: a registry or
/// daemon reference as given, a layout's tag, an archive's file name.
fn subject_name(r: &ImageRef) -> String {
    let file_name = |p: &Path| {
        p.file_name()
            .map_or_else(|| "image".to_string(), |n| n.to_string_lossy().into_owned())
    };
    match r {
        ImageRef::Oci { dir, pick } | ImageRef::OciArchive { file: dir, pick } => match pick {
            Some(pick) => format!("{}{pick}", file_name(dir)),
            None => file_name(dir),
        },
        ImageRef::DockerArchive { file, reference } => {
            reference.clone().unwrap_or_else(|| file_name(file))
        }
        ImageRef::Docker(r) => r.to_string().trim_start_matches("docker://").to_string(),
        ImageRef::DockerDaemon { name } => name.clone(),
        ImageRef::DockerContainer { id } => id.clone(),
        ImageRef::Dir { root } => file_name(root),
    }
}
