//! Where images come from and go to: one module per transport, each with a
//! source (`open`) and a sink (`write`), dispatched on a parsed [`ImageRef`].
//!
//! Why a crate of its own: transports know file formats and locations, never
//! what an image means; the image core never knows where bytes came from. A new
//! transport implements [`whittle_image::BlobStore`] for reading and writes a
//! layout for output.
#![deny(missing_docs)]

pub mod container;
pub mod daemon;
pub mod dir;
pub mod docker_archive;
pub mod engine;
mod error;
pub mod layout;
pub mod multi;
pub mod oci;
pub mod oci_archive;
pub mod reference;
pub mod registry;
pub mod tarfile;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use error::{Error, Result};
pub use reference::{ImageRef, LayoutPick};
use whittle_image::config::ConfigOverrides;
use whittle_image::{Compression, Digest, Image, Limits, RawDoc, Scratch};

/// How to read sources.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// Where sources that must be built (`dir:`) keep their blobs.
    pub scratch_parent: PathBuf,
    /// Layer compression for `dir:` sources.
    pub dir_compression: Compression,
    /// Run config for `dir:` sources.
    pub dir_config: ConfigOverrides,
    /// `SOURCE_DATE_EPOCH`.
    pub source_date_epoch: Option<u64>,
    /// Credentials and TLS for `docker://` sources.
    pub registry: registry::RegistryOptions,
    /// The platform to take from a multi-platform index (the host's when `None`).
    pub platform: Option<whittle_image::Platform>,
}

/// How to write sinks.
#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    /// `SOURCE_DATE_EPOCH`: mtime of archive members.
    pub source_date_epoch: Option<u64>,
    /// Read limits, for sinks that must decompress layers.
    pub limits: Limits,
    /// Credentials and TLS for `docker://` sinks.
    pub registry: registry::RegistryOptions,
    /// Replace an existing file at an archive destination even when it is not an
    /// image archive (without it, such a file is refused rather than clobbered).
    pub force: bool,
}

/// Refuses to replace a file that is not an image archive (a `docker save` or OCI
/// layout tar): `whittle copy IMG docker-archive:notes.txt` must not eat notes.txt.
fn check_clobber(file: &Path, force: bool) -> Result<()> {
    let Ok(md) = std::fs::symlink_metadata(file) else {
        return Ok(());
    };
    if force {
        return Ok(());
    }
    if !md.is_file() {
        return Err(Error::invalid(
            file.display(),
            "exists and is not a regular file; remove it or give --force",
        ));
    }
    let is_image_archive = tarfile::TarIndex::open(file).is_ok_and(|index| {
        index.region("manifest.json").is_some()
            || (index.region("oci-layout").is_some() && index.region("index.json").is_some())
    });
    if is_image_archive {
        return Ok(());
    }
    Err(Error::invalid(
        file.display(),
        "exists and is not an image archive; whittle will not replace it (remove it or give --force)",
    ))
}

/// Opens the image `r` names.
pub fn open(r: &ImageRef, opts: &OpenOptions) -> Result<Image> {
    open_with_base(r, opts).map(|(image, _)| image)
}

/// Opens the image `r` names, and says how many of its bottom layers are an
/// implied base (a container's image, for `docker-container:`).
pub fn open_with_base(r: &ImageRef, opts: &OpenOptions) -> Result<(Image, Option<usize>)> {
    if let ImageRef::DockerContainer { id } = r {
        return container::open(id, &opts.scratch_parent).map(|(i, n)| (i, Some(n)));
    }
    open_image(r, opts).map(|i| (i, None))
}

fn open_image(r: &ImageRef, opts: &OpenOptions) -> Result<Image> {
    let platform = opts
        .platform
        .clone()
        .unwrap_or_else(whittle_image::manifest::host_platform);
    match r {
        ImageRef::Oci { dir, pick } => oci::open(dir, pick.as_ref(), &platform),
        ImageRef::OciArchive { file, pick } => oci_archive::open(file, pick.as_ref(), &platform),
        ImageRef::DockerArchive { file, reference } => {
            docker_archive::open(file, reference.as_deref())
        }
        ImageRef::Docker(r) => registry::open(r, &opts.registry, &platform),
        ImageRef::DockerDaemon { name } => daemon::open(name, &opts.scratch_parent),
        ImageRef::DockerContainer { id } => {
            container::open(id, &opts.scratch_parent).map(|(i, _)| i)
        }
        ImageRef::Dir { root } => {
            let scratch = Arc::new(Scratch::new_in(&opts.scratch_parent)?);
            dir::open(
                root,
                scratch,
                opts.dir_compression,
                &opts.dir_config,
                opts.source_date_epoch,
            )
        }
    }
}

/// Writes `image` where `r` says; returns the manifest digest.
pub fn write(r: &ImageRef, image: &Image, opts: &WriteOptions) -> Result<Digest> {
    let mtime = opts.source_date_epoch.unwrap_or(0);
    match r {
        ImageRef::Oci { dir, pick } => oci::write(dir, tag_to_write(r, pick)?, image, &opts.limits),
        ImageRef::OciArchive { file, pick } => {
            let tag = tag_to_write(r, pick)?;
            check_clobber(file, opts.force)?;
            oci_archive::write(file, tag, image, mtime, &opts.limits)
        }
        ImageRef::DockerArchive { file, reference } => {
            check_clobber(file, opts.force)?;
            docker_archive::write(file, reference.as_deref(), image, mtime, &opts.limits)
        }
        ImageRef::Docker(reg) => registry::write(reg, image, &opts.registry, &opts.limits),
        ImageRef::DockerDaemon { name } => {
            daemon::write(name, image, &std::env::temp_dir(), mtime, &opts.limits)
        }
        ImageRef::Dir { .. } => Err(Error::Direction {
            transport: "dir",
            direction: "destination",
        }),
        ImageRef::DockerContainer { .. } => Err(Error::Direction {
            transport: "docker-container",
            direction: "destination",
        }),
    }
}

/// The tag a layout write gives its image: a digest names what was written, so it
/// cannot say where to write.
fn tag_to_write<'a>(r: &ImageRef, pick: &'a Option<LayoutPick>) -> Result<Option<&'a str>> {
    match pick {
        Some(LayoutPick::Digest(_)) => Err(Error::invalid(
            r.to_string(),
            "a digest selects an image to read; to write, give :TAG or no name",
        )),
        Some(LayoutPick::Tag(t)) => Ok(Some(t)),
        None => Ok(None),
    }
}

/// Writes every platform of `multi` where `r` says; returns the index digest.
pub fn write_all(r: &ImageRef, multi: &multi::MultiImage, opts: &WriteOptions) -> Result<Digest> {
    let mtime = opts.source_date_epoch.unwrap_or(0);
    match r {
        ImageRef::Oci { dir, pick } => {
            oci::write_all(dir, tag_to_write(r, pick)?, multi, &opts.limits)
        }
        ImageRef::OciArchive { file, pick } => {
            let tag = tag_to_write(r, pick)?;
            check_clobber(file, opts.force)?;
            oci_archive::write_all(file, tag, multi, mtime, &opts.limits)
        }
        ImageRef::Docker(reg) => registry::write_all(reg, multi, &opts.registry, &opts.limits),
        other => Err(Error::invalid(
            other.to_string(),
            "holds one platform only: copy one with --platform instead of --all",
        )),
    }
}

/// The directory where output for `r` is written: scratch space for it belongs there,
/// so that finished files are renamed rather than copied.
pub fn output_parent(r: &ImageRef) -> PathBuf {
    let path = match r {
        // The archive to load is made in the temporary directory.
        ImageRef::DockerDaemon { .. } | ImageRef::Docker(_) | ImageRef::DockerContainer { .. } => {
            return std::env::temp_dir()
        }
        ImageRef::Oci { dir, .. } => dir,
        ImageRef::OciArchive { file, .. } | ImageRef::DockerArchive { file, .. } => file,
        ImageRef::Dir { root } => root,
    };
    // The nearest directory that exists: a layout's missing parents are made only when
    // it is written, and an archive's missing directory is reported by its writer.
    path.ancestors()
        .skip(1)
        .find(|p| !p.as_os_str().is_empty() && p.is_dir())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Percent-encodes a URL query value (registry and Engine API requests).
pub(crate) fn encode_query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Writes the members of an OCI layout (blobs, `index.json`, `oci-layout`) into an archive.
pub(crate) fn write_layout_members(
    out: &mut tarfile::ArchiveWriter,
    image: &Image,
    manifest: &RawDoc,
    annotations: BTreeMap<String, String>,
    limits: &Limits,
) -> Result<()> {
    out.dir("blobs")?;
    out.dir("blobs/sha256")?;
    for blob in layout::blobs(image, manifest) {
        write_blob_member(out, &blob, limits)?;
    }
    write_layout_index(out, manifest, annotations)
}

/// Adds `blob` as `blobs/sha256/HEX`: checked as it streams, unless whittle wrote it.
pub(crate) fn write_blob_member(
    out: &mut tarfile::ArchiveWriter,
    blob: &layout::Blob<'_>,
    limits: &Limits,
) -> Result<()> {
    let name = format!("blobs/sha256/{}", blob.digest().hex());
    if let Some(own) = blob.own_file() {
        return out.own_file(&name, &own, blob.size());
    }
    let mut src = blob.open(limits)?;
    out.file(&name, blob.size(), &mut src)
        .map_err(lift_image_error)
}

/// Adds `index.json` (naming `manifest`) and `oci-layout`.
pub(crate) fn write_layout_index(
    out: &mut tarfile::ArchiveWriter,
    manifest: &RawDoc,
    annotations: BTreeMap<String, String>,
) -> Result<()> {
    let index = layout::index_json(vec![layout::index_entry(manifest, annotations)]);
    out.file("index.json", index.len() as u64, &mut &index[..])?;
    out.file(
        "oci-layout",
        layout::OCI_LAYOUT.len() as u64,
        &mut &layout::OCI_LAYOUT[..],
    )?;
    Ok(())
}

/// An I/O error while copying a blob: the blob's own error (a digest mismatch,
/// say) when that is the cause, else a write error naming the file.
pub(crate) fn copy_error(path: &Path, e: std::io::Error) -> Error {
    match whittle_image::blob::find_error(&e) {
        Some(inner) => Error::Image(inner),
        None => Error::io("cannot write", path, e),
    }
}

fn lift_image_error(e: Error) -> Error {
    match e {
        Error::Io { source, path, .. } => copy_error(&path, source),
        other => other,
    }
}

/// The mode of a file whittle writes as output: 0644 as the umask filters it (as
/// skopeo and tar write), not the 0600 of a temporary file renamed into place.
pub(crate) fn output_file_mode() -> std::fs::Permissions {
    std::os::unix::fs::PermissionsExt::from_mode(0o644)
}

/// The mode of a directory whittle writes as output (an OCI layout): 0755 as the umask filters it.
pub(crate) fn output_dir_mode() -> std::fs::Permissions {
    std::os::unix::fs::PermissionsExt::from_mode(0o755)
}
