//! `whittle build SPEC DST`: an image from one TOML definition (docs/BUILD.md).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;
use whittle_build::build::{build, BuildOptions, Built};
use whittle_image::mutate::MutateOptions;
use whittle_image::{Compression, Image};

use super::{open_options, parse_ref, scratch_for, write_output};
use crate::args::{self, ConfigFlags, Global};

/// Arguments of `build`.
#[derive(Args, Debug)]
#[command(after_help = SPEC_KEYS)]
pub struct BuildArgs {
    /// The build definition (TOML; see docs/BUILD.md and examples/).
    #[arg(value_name = "SPEC")]
    spec: PathBuf,
    /// Where to write the image (not with --emit-context).
    #[arg(value_name = "DST", required_unless_present = "emit_context")]
    dst: Option<String>,
    /// The new layers' compression: gzip, zstd or none.
    #[arg(long, value_name = "ALGO", default_value = "gzip")]
    compression: Compression,
    /// Also write an in-toto statement with an SLSA provenance predicate: every input's digest.
    #[arg(long, value_name = "FILE.json")]
    provenance: Option<PathBuf>,
    /// Instead of an image, write DIR/Dockerfile (FROM scratch, ADD rootfs.tar /, the config)
    /// and DIR/rootfs.tar, for pipelines that must end in `docker build`.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["dst", "sbom"])]
    emit_context: Option<PathBuf>,
    #[command(flatten)]
    sbom: super::sbom::SbomFlags,
}

/// Every key of a spec, for `--help` (docs/BUILD.md has the details).
const SPEC_KEYS: &str = "\
SPEC keys (TOML; host paths relative to the spec's directory; details: docs/BUILD.md):
  from = \"scratch\" | IMAGE        baseline = \"static\" | \"base\" | \"none\"
  ca_certs_from = IMAGE             tzdata_from = IMAGE
  [[step]]   name, image, run, inputs = { \"/in/step\" = \"host/path\" }, outputs = [paths],
             network = \"none\" | \"host\", env = { K = \"V\" }, workdir
  [[layer]]  name, files = [{ step, path, to } | { host, to }], image, paths = [...],
             closure = true|false, mode = \"0755\", uid, gid
  [config]   entrypoint, cmd, env, user, workdir, ports, volumes, labels, stop_signal";

/// Runs `build`.
pub fn run(a: BuildArgs, global: &Global) -> Result<()> {
    let spec = whittle_build::spec::load(&a.spec)?;
    let dst = a.dst.as_deref().map(parse_ref).transpose()?;
    let outputs: Vec<&whittle_transport::ImageRef> = dst.iter().collect();
    crate::interrupt::install(&outputs);
    let scratch = match &dst {
        Some(d) => scratch_for(d)?,
        None => std::sync::Arc::new(whittle_image::Scratch::new_in(&std::env::temp_dir())?),
    };
    // Builder roots are not sized before they are unpacked: only a roomy /dev/shm.
    let memory = super::probe::memory_scratch(1 << 30);
    let run_dir = memory
        .as_ref()
        .map_or_else(|| scratch.path().to_path_buf(), |m| m.path().to_path_buf());
    let epoch = args::source_date_epoch()?;
    let opts = BuildOptions {
        open: open_options(&ConfigFlags::default(), Compression::Gzip, global)?,
        compression: a.compression,
        source_date_epoch: epoch,
        limits: global.limits(),
        quiet: global.quiet,
        run_dir,
    };
    let built = build(&spec, &a.spec, &opts, &scratch)
        .with_context(|| format!("cannot build {}", a.spec.display()))?;
    for w in &built.warnings {
        eprintln!("warning: {w}");
    }
    if let Some(dir) = &a.emit_context {
        let mutate = MutateOptions {
            compression: Compression::None,
            source_date_epoch: Some(epoch.unwrap_or(0)),
            limits: global.limits(),
            overrides: Default::default(),
        };
        return emit_context(&built.image, dir, &scratch, &mutate, global.quiet);
    }
    let Some(dst) = dst else {
        bail!("give DST or --emit-context DIR");
    };
    let digest = write_output(&dst, &built.image, global)?;
    if let Some(path) = &a.provenance {
        let statement = provenance(&built, &dst.to_string(), &digest.to_string());
        let text = serde_json::to_vec_pretty(&statement).unwrap_or_default();
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let inputs = built
        .inputs
        .iter()
        .map(|i| whittle_sbom::BuildInput {
            kind: i.kind.to_string(),
            name: i.name.clone(),
            digest: i.digest.clone(),
        })
        .collect();
    // Files taken from images keep their packages: the images' databases say which.
    let dbs = built.packages.clone();
    super::sbom::write_for_output(&a.sbom, &dst, &digest, &built.image, dbs, inputs, global)?;
    Ok(())
}

/// The in-toto statement (SLSA provenance v1) for a build.
fn provenance(built: &Built, name: &str, digest: &str) -> serde_json::Value {
    let hex_of = |d: &str| d.strip_prefix("sha256:").unwrap_or(d).to_string();
    let deps: Vec<serde_json::Value> = built
        .inputs
        .iter()
        .map(|i| {
            json!({
                "uri": i.name,
                "digest": {"sha256": hex_of(&i.digest)},
                "annotations": {"kind": i.kind},
            })
        })
        .collect();
    json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": name, "digest": {"sha256": hex_of(digest)}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": "https://github.com/whittle/whittle/build/v1",
                "externalParameters": {
                    "spec": built.inputs.first().map(|i| i.name.clone()),
                    "layers": built.layer_names,
                    "hostNetworkSteps": built.host_network_steps,
                },
                "resolvedDependencies": deps,
            },
            "runDetails": {
                "builder": {"id": "whittle", "version": {"whittle": env!("CARGO_PKG_VERSION")}},
                "metadata": {"hermetic": built.host_network_steps.is_empty()},
            },
        },
    })
}

/// Writes DIR/rootfs.tar (every layer flattened) and DIR/Dockerfile.
fn emit_context(
    image: &Image,
    dir: &Path,
    scratch: &std::sync::Arc<whittle_image::Scratch>,
    opts: &MutateOptions,
    quiet: bool,
) -> Result<()> {
    let flat = whittle_image::mutate::squash(image, scratch, opts)?;
    let layer = flat.layers.first().context("the image has no layer")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tar = dir.join("rootfs.tar");
    let mut from = layer.store.open_raw(&layer.descriptor.digest)?;
    let tmp = dir.join(format!("{}rootfs.tar", whittle_image::temp_prefix()));
    let mut out =
        std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    std::io::copy(&mut from, &mut out)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &tar).with_context(|| format!("cannot write {}", tar.display()))?;
    let doc: serde_json::Value = serde_json::from_slice(&image.config.bytes)?;
    let c = &doc["config"];
    let mut lines = vec!["FROM scratch".to_string(), "ADD rootfs.tar /".to_string()];
    let json_list =
        |v: &serde_json::Value| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
    for e in c["Env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e.as_str())
    {
        if let Some((k, v)) = e.split_once('=') {
            lines.push(format!(
                "ENV {k}={}",
                serde_json::to_string(v).unwrap_or_default()
            ));
        }
    }
    if let Some(w) = c["WorkingDir"].as_str().filter(|w| !w.is_empty()) {
        lines.push(format!("WORKDIR {w}"));
    }
    if let Some(u) = c["User"].as_str().filter(|u| !u.is_empty()) {
        lines.push(format!("USER {u}"));
    }
    for p in c["ExposedPorts"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.keys())
    {
        lines.push(format!("EXPOSE {p}"));
    }
    for v in c["Volumes"].as_object().into_iter().flat_map(|m| m.keys()) {
        lines.push(format!("VOLUME {}", json_list(&json!([v]))));
    }
    for (k, v) in c["Labels"].as_object().into_iter().flatten() {
        lines.push(format!(
            "LABEL {}={}",
            serde_json::to_string(k).unwrap_or_default(),
            serde_json::to_string(v).unwrap_or_default()
        ));
    }
    if let Some(s) = c["StopSignal"].as_str() {
        lines.push(format!("STOPSIGNAL {s}"));
    }
    if c["Entrypoint"].is_array() {
        lines.push(format!("ENTRYPOINT {}", json_list(&c["Entrypoint"])));
    }
    if c["Cmd"].is_array() {
        lines.push(format!("CMD {}", json_list(&c["Cmd"])));
    }
    let dockerfile = dir.join("Dockerfile");
    std::fs::write(&dockerfile, lines.join("\n") + "\n")
        .with_context(|| format!("cannot write {}", dockerfile.display()))?;
    if !quiet {
        eprintln!(
            "wrote {} and {}: docker build {}",
            dockerfile.display(),
            tar.display(),
            dir.display()
        );
    }
    Ok(())
}
