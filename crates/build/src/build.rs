//! `whittle build`: spec -> steps -> staged layers -> image.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest as _, Sha256};
use whittle_image::config::{self, ConfigEdit, ConfigOverrides};
use whittle_image::entries::ReadOptions;
use whittle_image::layer_write::LayerWriter;
use whittle_image::mutate::Flat;
use whittle_image::{Compression, Image, Layer, Limits, MediaType, RawDoc, Scratch};
use whittle_transport::{ImageRef, OpenOptions};

use crate::spec::{Baseline, FileSource, Spec, StepNetwork};
use crate::stage::StagedLayer;
use crate::step::{self, StepResult};
use crate::BuildError;

/// How to build.
pub struct BuildOptions {
    /// How to open images the spec names.
    pub open: OpenOptions,
    /// Compression of the new layers.
    pub compression: Compression,
    /// `SOURCE_DATE_EPOCH` (0 when unset): every time in the output.
    pub source_date_epoch: Option<u64>,
    /// Read limits.
    pub limits: Limits,
    /// Say nothing.
    pub quiet: bool,
    /// Where step roots are unpacked (scratch or memory).
    pub run_dir: PathBuf,
}

/// One input of the build, for provenance.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Input {
    /// `spec`, `image` or `source`.
    pub kind: &'static str,
    /// The reference, host path or spec file.
    pub name: String,
    /// Its digest: an image's config digest, a tree hash, the spec's sha256.
    pub digest: String,
}

/// The result.
pub struct Built {
    /// The image (blobs in scratch).
    pub image: Image,
    /// Every input with its digest.
    pub inputs: Vec<Input>,
    /// Steps that ran with the host's network.
    pub host_network_steps: Vec<String>,
    /// Things worth knowing.
    pub warnings: Vec<String>,
    /// Layer names, bottom first (the new layers only).
    pub layer_names: Vec<String>,
    /// The package databases of the images files were taken from (for SBOMs).
    pub packages: Vec<whittle_slim::pkgdb::PackageDb>,
}

struct Images {
    /// The spec file's directory: relative image paths in the spec are relative to it.
    base: PathBuf,
    /// Where the spec names each image.
    places: BTreeMap<String, String>,
    opts: OpenOptions,
    limits: Limits,
    scratch: Arc<Scratch>,
    by_ref: BTreeMap<String, usize>,
    images: Vec<Image>,
    flats: Vec<Option<Flat>>,
}

impl Images {
    fn open(&mut self, reference: &str) -> Result<usize, BuildError> {
        if let Some(i) = self.by_ref.get(reference) {
            return Ok(*i);
        }
        // Where the spec names it, for messages: `FILE:LINE:COL: `.
        let at = self
            .places
            .get(reference)
            .map_or_else(String::new, |p| format!("{p}: "));
        let r: ImageRef = reference
            .parse::<ImageRef>()
            .map_err(|e| BuildError::Input(format!("{at}{reference}: {e}")))?
            .relative_to(&self.base);
        let image = whittle_transport::open(&r, &self.opts)
            .map_err(|e| BuildError::Input(format!("{at}cannot read {reference}: {e}")))?;
        self.images.push(image);
        self.flats.push(None);
        let i = self.images.len() - 1;
        self.by_ref.insert(reference.to_string(), i);
        Ok(i)
    }

    /// A step's root as an image (one uncompressed layer), to resolve closures in.
    fn open_step_root(&mut self, root: &Path, step: &str) -> Result<usize, BuildError> {
        let key = format!("step:{step}");
        if let Some(i) = self.by_ref.get(&key) {
            return Ok(*i);
        }
        let image = whittle_transport::dir::open(
            root,
            self.scratch.clone(),
            Compression::None,
            &ConfigOverrides::default(),
            Some(0),
        )
        .map_err(|e| BuildError::Input(format!("step {step}: cannot read its root: {e}")))?;
        self.images.push(image);
        self.flats.push(None);
        let i = self.images.len() - 1;
        // Not an input of the build: left out of the provenance by its prefix.
        self.by_ref.insert(key, i);
        Ok(i)
    }

    fn flat(&mut self, i: usize) -> Result<&Flat, BuildError> {
        if self.flats[i].is_none() {
            let flat = Flat::read(
                &self.images[i],
                &self.scratch,
                &self.limits,
                ReadOptions::default(),
            )?;
            self.flats[i] = Some(flat);
        }
        self.flats[i]
            .as_ref()
            .ok_or_else(|| BuildError::Input("internal: image not read".into()))
    }
}

/// A stable hash of a host file or tree: sorted paths, kinds, executable bits,
/// link targets and contents (not owners or times, which differ between checkouts).
pub fn tree_hash(path: &Path) -> Result<String, BuildError> {
    fn walk(h: &mut Sha256, path: &Path, rel: &str) -> Result<(), BuildError> {
        use std::os::unix::fs::PermissionsExt;
        let md =
            std::fs::symlink_metadata(path).map_err(|e| BuildError::io("cannot read", path, e))?;
        let exec = md.permissions().mode() & 0o111 != 0;
        if md.is_dir() {
            h.update(format!("d {rel}\0").as_bytes());
            let mut names: Vec<_> = std::fs::read_dir(path)
                .map_err(|e| BuildError::io("cannot list", path, e))?
                .filter_map(|e| e.ok().map(|e| e.file_name()))
                .collect();
            names.sort();
            for n in names {
                let name = n.to_string_lossy().into_owned();
                walk(h, &path.join(&n), &format!("{rel}/{name}"))?;
            }
        } else if md.file_type().is_symlink() {
            let t = std::fs::read_link(path).map_err(|e| BuildError::io("cannot read", path, e))?;
            h.update(format!("l {rel} {}\0", t.display()).as_bytes());
        } else {
            let mut f =
                std::fs::File::open(path).map_err(|e| BuildError::io("cannot open", path, e))?;
            let mut inner = Sha256::new();
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = std::io::Read::read(&mut f, &mut buf)
                    .map_err(|e| BuildError::io("cannot read", path, e))?;
                if n == 0 {
                    break;
                }
                inner.update(&buf[..n]);
            }
            h.update(
                format!(
                    "f {rel} {} {}\0",
                    u8::from(exec),
                    hex::encode(inner.finalize())
                )
                .as_bytes(),
            );
        }
        Ok(())
    }
    let mut h = Sha256::new();
    walk(&mut h, path, "")?;
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}

/// The paths `whittle build` takes for CA certificates and time zones.
const CA_PATHS: &[&str] = &["/etc/ssl/certs/ca-certificates.crt"];
const TZ_PATHS: &[&str] = &["/usr/share/zoneinfo"];

fn config_overrides(
    spec: &Spec,
    user: Option<String>,
    labels: Vec<(String, String)>,
) -> ConfigOverrides {
    let c = &spec.config;
    ConfigOverrides {
        entrypoint: c.entrypoint.clone(),
        cmd: c.cmd.clone(),
        env: c.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        workdir: c.workdir.clone(),
        user,
        expose: c.ports.clone(),
        labels,
        volumes: c.volumes.clone(),
        stop_signal: c.stop_signal.clone(),
    }
}

/// Builds the image `spec` defines.
pub fn build(
    spec: &Spec,
    spec_file: &Path,
    opts: &BuildOptions,
    scratch: &Arc<Scratch>,
) -> Result<Built, BuildError> {
    let epoch = opts.source_date_epoch.unwrap_or(0);
    let mut images = Images {
        base: spec_file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
        places: spec.image_places.clone(),
        opts: opts.open.clone(),
        limits: opts.limits.clone(),
        scratch: scratch.clone(),
        by_ref: BTreeMap::new(),
        images: Vec::new(),
        flats: Vec::new(),
    };
    let mut inputs = vec![Input {
        kind: "spec",
        // The file name only, so that two checkouts record the same inputs.
        name: spec_file.file_name().map_or_else(
            || spec_file.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
        digest: format!(
            "sha256:{}",
            hex::encode(Sha256::digest(spec.source.as_bytes()))
        ),
    }];
    let mut warnings = Vec::new();
    let mut sources: BTreeMap<PathBuf, ()> = BTreeMap::new();

    // Steps first: layers take their outputs.
    let mut steps: Vec<StepResult> = Vec::new();
    let mut host_network_steps = Vec::new();
    for (n, s) in spec.steps.iter().enumerate() {
        let i = images.open(&s.image)?;
        for (_, host) in &s.inputs {
            sources.insert(host.clone(), ());
        }
        if s.network == StepNetwork::Host {
            host_network_steps.push(s.name.clone());
        }
        let root = opts.run_dir.join(format!("step-{n}"));
        let log = opts.run_dir.join(format!("step-{n}-log"));
        let flat = images.flat(i)?;
        steps.push(step::run(s, flat, &root, &log, epoch, opts.quiet)?);
    }

    let mut staged: Vec<(String, StagedLayer)> = Vec::new();
    if spec.baseline != Baseline::None {
        let name = spec_file
            .file_stem()
            .map_or_else(|| "image".to_string(), |s| s.to_string_lossy().into_owned());
        let mut layer = StagedLayer::default();
        for e in crate::baseline::entries(&name) {
            layer.add(e);
        }
        if spec.baseline == Baseline::Base {
            for (from, paths, what) in [
                (&spec.ca_certs_from, CA_PATHS, "ca_certs_from"),
                (&spec.tzdata_from, TZ_PATHS, "tzdata_from"),
            ] {
                match from {
                    Some(r) => {
                        let i = images.open(r)?;
                        let flat = images.flat(i)?;
                        let wanted: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
                        let (view, _) = whittle_slim::select(flat, &wanted, false)
                            .map_err(|e| BuildError::Input(format!("{what} = {r}: {e}")))?;
                        layer.add_view(i, &view);
                    }
                    None => warnings.push(format!(
                        "baseline = \"base\" without {what}: the image has no {}",
                        if what == "ca_certs_from" {
                            "CA certificates"
                        } else {
                            "time zone data"
                        }
                    )),
                }
            }
        }
        layer.add_parents();
        staged.push(("baseline".into(), layer));
    }
    for l in &spec.layers {
        let mut layer = StagedLayer::default();
        if let Some(r) = &l.image {
            let i = images.open(r)?;
            let flat = images.flat(i)?;
            let (view, w) = whittle_slim::select(flat, &l.paths, l.closure)
                .map_err(|e| BuildError::Input(format!("layer {}: {r}: {e}", l.name)))?;
            warnings.extend(w.into_iter().map(|w| format!("layer {}: {w}", l.name)));
            layer.add_view(i, &view);
        }
        for f in &l.files {
            match f {
                FileSource::Host { host, to } => {
                    sources.insert(host.clone(), ());
                    layer.add_host(host, to)?;
                }
                FileSource::Step {
                    step: name,
                    path,
                    to,
                } => {
                    let s = steps.iter().find(|s| &s.name == name).ok_or_else(|| {
                        BuildError::Input(format!("layer {}: no step named {name}", l.name))
                    })?;
                    let real = step::resolve_in_root(&s.root, path)?;
                    layer.add_host(&real, to)?;
                }
            }
        }
        if l.closure {
            // Programs a step built link what its builder has: resolve their
            // closure inside the step's root as it was when the step ended.
            for s in &steps {
                let wanted: Vec<String> = l
                    .files
                    .iter()
                    .filter_map(|f| match f {
                        FileSource::Step { step, path, .. } if *step == s.name => {
                            Some(path.clone())
                        }
                        _ => None,
                    })
                    .collect();
                if wanted.is_empty() {
                    continue;
                }
                let i = images.open_step_root(&s.root, &s.name)?;
                let flat = images.flat(i)?;
                let (mut view, w) = whittle_slim::select(flat, &wanted, true).map_err(|e| {
                    BuildError::Input(format!("layer {}: step {}: {e}", l.name, s.name))
                })?;
                warnings.extend(w.into_iter().map(|w| format!("layer {}: {w}", l.name)));
                // The outputs themselves are placed at their `to` above; only their closure comes here.
                let outputs: Vec<String> = wanted.iter().map(|p| crate::stage::rel(p)).collect();
                view.nodes.retain(|k, n| {
                    let is_output = outputs
                        .iter()
                        .any(|o| k == o || k.starts_with(&format!("{o}/")));
                    let above_output = n.kind == whittle_image::entries::EntryKind::Dir
                        && outputs.iter().any(|o| o.starts_with(&format!("{k}/")));
                    !is_output && !above_output
                });
                layer.add_view(i, &view);
            }
            if l.files.iter().any(|f| matches!(f, FileSource::Host { .. })) {
                warnings.push(format!(
                    "layer {}: closure is resolved for paths from an image or a step; host files are taken as they are",
                    l.name
                ));
            }
        }
        layer.apply_overrides(l.mode, l.uid, l.gid);
        layer.add_parents();
        staged.push((l.name.clone(), layer));
    }
    for path in sources.keys() {
        // Named relative to the spec, so that two checkouts record the same inputs.
        let name = path
            .strip_prefix(&spec.dir)
            .map_or_else(|_| path.display().to_string(), |p| p.display().to_string());
        inputs.push(Input {
            kind: "source",
            name,
            digest: tree_hash(path)?,
        });
    }

    // The base.
    let base = match &spec.from {
        Some(r) => Some(images.open(r)?),
        None => None,
    };
    for (r, i) in images
        .by_ref
        .iter()
        .filter(|(r, _)| !r.starts_with("step:"))
    {
        inputs.push(Input {
            kind: "image",
            name: r.clone(),
            digest: images.images[*i].config.descriptor().digest.to_string(),
        });
    }

    // Checks before anything is written.
    if let Some(i) = base {
        images.flat(i)?;
    }
    let all_flats = images_flats(&images);
    let merged = crate::check::Merged {
        base: base.and_then(|i| all_flats[i]),
        staged: &staged,
        flats: &all_flats,
    };
    crate::check::entrypoint(&merged, spec)?;
    let user = match &spec.config.user {
        Some(u) => Some(crate::check::resolve_user(&merged, u)?),
        None => None,
    };
    warnings.extend(crate::check::static_nss(&merged));

    // Layers.
    let mut layers: Vec<Layer> = Vec::new();
    let mut diff_ids = Vec::new();
    if let Some(i) = base {
        for l in &images.images[i].layers {
            let mut l = l.clone();
            if let Ok(c) = l.compression() {
                l.descriptor.media_type = MediaType::oci_layer(c);
            }
            diff_ids.push(l.diff_id.clone());
            layers.push(l);
        }
    }
    for (_, layer) in &staged {
        let writer = LayerWriter::create(scratch.new_file("layer"), opts.compression)?;
        let written = layer.write(&all_flats, writer, epoch)?;
        scratch.adopt(&written.path, &written.descriptor.digest)?;
        diff_ids.push(written.diff_id.clone());
        layers.push(Layer {
            descriptor: written.descriptor,
            diff_id: written.diff_id,
            store: scratch.clone(),
        });
    }
    let mut labels = vec![
        (
            "dev.whittle.build.spec".to_string(),
            inputs[0].digest.clone(),
        ),
        (
            "dev.whittle.build.version".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
    ];
    labels.extend(spec.config.labels.iter().cloned());
    let overrides = config_overrides(spec, user, labels);
    let config_bytes = match base {
        Some(i) => config::edit(
            &images.images[i].config.bytes,
            &ConfigEdit {
                new_layers: Some((diff_ids.clone(), "whittle build")),
                overrides: Some(&overrides),
                source_date_epoch: Some(epoch),
            },
        )?,
        None => config::new_config(&diff_ids, Some(epoch), &overrides),
    };
    let config = RawDoc::new(MediaType::OciConfig, config_bytes);
    // The provenance in the manifest too, as OCI annotations (digests only, no host paths).
    let mut annotations = BTreeMap::new();
    annotations.insert(
        "dev.whittle.build.hermetic".to_string(),
        host_network_steps.is_empty().to_string(),
    );
    for (n, input) in inputs.iter().enumerate() {
        annotations.insert(
            format!("dev.whittle.build.input.{n}"),
            format!("{} {} {}", input.kind, input.name, input.digest),
        );
    }
    annotations.insert(
        "dev.whittle.build.version".to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    );
    let manifest = whittle_image::Manifest {
        schema_version: 2,
        media_type: Some(MediaType::OciManifest),
        config: config.descriptor(),
        layers: layers.iter().map(|l| l.descriptor.clone()).collect(),
        annotations,
    };
    let image = Image {
        manifest: Some(RawDoc::new(
            MediaType::OciManifest,
            whittle_image::manifest::to_json(&manifest),
        )),
        config,
        layers,
    };
    // In reference order, so the SBOM does not depend on the order images were opened in.
    let packages = images
        .by_ref
        .iter()
        .filter(|(r, _)| !r.starts_with("step:"))
        .filter_map(|(_, i)| images.flats[*i].as_ref())
        .map(whittle_slim::installed_packages)
        .filter(|db| !db.packages.is_empty())
        .collect();
    Ok(Built {
        image,
        inputs,
        host_network_steps,
        warnings,
        layer_names: staged.into_iter().map(|(n, _)| n).collect(),
        packages,
    })
}

fn images_flats(images: &Images) -> Vec<Option<&Flat>> {
    images.flats.iter().map(Option::as_ref).collect()
}
