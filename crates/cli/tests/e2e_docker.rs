//! End-to-end tests of the `whittle` binary against a real image: Debian bookworm with
//! nginx-light, built by tests/fixtures/nginx-image.sh (debootstrap + docker + skopeo),
//! checked with the real consumers: dockerd (load and run), skopeo and umoci.
//!
//! Fixture directory: $WHITTLE_FIXTURES, default <workspace>/target/fixtures/nginx.
//! Built once (cached by its .done file, serialised with flock across processes).
//! Without docker or the fixture's tools the tests print `SKIP: ...` and pass, unless
//! `CI` is set, in which case they fail.

#[allow(dead_code)]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::docker_e2e::{
    docker, docker_archive_image, docker_ok, fixture, norm, oci_image, read_blob, reference,
    require_tools, serve_and_fetch, sha256_file, sha256_hex, tar_member_digests, tree_diff,
    tree_from_dir, tree_from_tar, whittle, whittle_ok, DockerCleanup, Node,
};
use serde_json::Value;

const PAGE: &str = "whittle test page";

fn tempdir() -> tempfile::TempDir {
    // Names stay free of ':' (see `reference`).
    tempfile::Builder::new()
        .prefix("whittle-e2e-")
        .tempdir()
        .expect("temp dir")
}

/// `docker image inspect REF` as JSON (the single object).
fn docker_image_inspect(r: &str) -> Option<Value> {
    let out = docker(["image", "inspect", r]);
    if !out.status.success() {
        return None;
    }
    let v: Value = serde_json::from_slice(&out.stdout).expect("docker inspect JSON");
    v.as_array().and_then(|a| a.first()).cloned()
}

/// Loads a docker archive and checks docker reports the expected tag.
fn docker_load(archive: &Path, tag: &str) {
    let out = docker_ok(["load", "-i", archive.to_str().unwrap()]);
    assert!(
        out.contains(&format!("Loaded image: {tag}")),
        "docker load -i {} did not load {tag}: {out}",
        archive.display()
    );
}

// ---------------------------------------------------------------------------------------

/// docker-archive -> OCI layout -> docker-archive, then dockerd loads and runs it.
#[test]
fn copy_docker_archive_runs_in_docker() {
    let Some(fx) = fixture() else { return };
    if !require_tools(&["docker"]) {
        return;
    }
    const TAG: &str = "whittle-e2e/nginx:copy";
    let tmp = tempdir();
    let oci = tmp.path().join("oci");
    let out_tar = tmp.path().join("out.tar");
    let src = docker_archive_image(&fx.join("nginx.tar"));

    whittle_ok([
        "copy".to_string(),
        reference("docker-archive", &fx.join("nginx.tar"), None),
        reference("oci", &oci, Some("latest")),
    ]);
    whittle_ok([
        "copy".to_string(),
        reference("oci", &oci, Some("latest")),
        reference("docker-archive", &out_tar, Some(TAG)),
    ]);

    let mut cleanup = DockerCleanup::default();
    // `docker load` skips reading a layer whose chain ID dockerd already has, so with the
    // fixture's own images present it would run the fixture's layers, not ours. Remove
    // them (the fixture script's side products; `docker load -i nginx.tar` restores
    // them) and any leftover of an earlier run, so dockerd must import and verify every
    // layer of whittle's archive.
    for old in [TAG, "whittle-test/nginx:latest", "whittle-test/base:latest"] {
        docker(["rmi", old]);
    }
    let image_id = format!("sha256:{}", sha256_hex(&src.config_bytes));
    if docker_image_inspect(&image_id).is_some() {
        // Not eprintln!: libtest would hide it when the test passes.
        let _ = writeln!(
            std::io::stderr(),
            "NOTE: dockerd still has image {image_id} (in use?); docker load will not \
             re-read the layers of whittle's archive"
        );
    }
    cleanup.images.push(TAG.to_string());
    docker_load(&out_tar, TAG);

    let inspect = docker_image_inspect(TAG).expect("loaded image is inspectable");
    let layers = common::docker_e2e::json_strings(&inspect["RootFS"]["Layers"]);
    assert_eq!(
        layers,
        src.diff_ids(),
        "diff_ids of the image dockerd loaded"
    );
    assert_eq!(
        inspect["Id"], image_id,
        "copy changed the config (docker image ID = config digest)"
    );

    let Some(body) = serve_and_fetch(TAG, &mut cleanup) else {
        return;
    };
    assert!(
        body.contains(PAGE),
        "nginx served {body:?}, expected {PAGE:?}"
    );
}

// ---------------------------------------------------------------------------------------

/// Paths `docker export` adds or replaces that are not part of the image: docker's
/// init layer (moby daemon/initlayer) creates /.dockerenv, empty /etc/hostname,
/// /etc/hosts and /etc/resolv.conf (bind-mount targets), /etc/mtab -> /proc/mounts,
/// /dev/console, /dev/pts, /dev/shm, and the /proc and /sys mountpoints. They say
/// nothing about the image, so both sides ignore exactly these. (/etc/mtab is in the
/// same init-layer list; the image has none, the export does.)
fn docker_runtime_path(p: &str) -> bool {
    matches!(
        p,
        ".dockerenv"
            | "etc/hostname"
            | "etc/hosts"
            | "etc/resolv.conf"
            | "etc/mtab"
            | "proc"
            | "sys"
    ) || p.starts_with("dev/")
        || p.starts_with("proc/")
        || p.starts_with("sys/")
}

fn skopeo_layer_count(r: &str) -> usize {
    let out = common::docker_e2e::run_ok(Command::new("skopeo").args(["inspect", r]));
    let v: Value = serde_json::from_slice(&out.stdout).expect("skopeo inspect JSON");
    v["Layers"]
        .as_array()
        .unwrap_or_else(|| panic!("skopeo inspect {r}: no Layers: {v}"))
        .len()
}

#[test]
fn oci_output_readable_by_skopeo_and_umoci_and_equal_to_docker_export() {
    let Some(fx) = fixture() else { return };
    if !require_tools(&["skopeo", "umoci"]) {
        return;
    }
    let tmp = tempdir();
    let oci = tmp.path().join("oci");
    let src_ref = reference("docker-archive", &fx.join("nginx.tar"), None);
    whittle_ok([
        "copy".to_string(),
        src_ref.clone(),
        reference("oci", &oci, Some("latest")),
    ]);

    let out_ref = reference("oci", &oci, Some("latest"));
    let n_out = skopeo_layer_count(&out_ref);
    let n_src = skopeo_layer_count(&src_ref);
    assert_eq!(
        n_out, n_src,
        "skopeo sees {n_out} layers in whittle's output, {n_src} in the source"
    );

    let bundle = tmp.path().join("bundle");
    let image_arg = format!("{}:latest", oci.to_str().unwrap());
    common::docker_e2e::run_ok(
        Command::new("umoci")
            .args(["unpack", "--image", &image_arg])
            .arg(&bundle),
    );

    let keep = |t: BTreeMap<String, Node>| -> BTreeMap<String, Node> {
        t.into_iter()
            .filter(|(p, _)| !docker_runtime_path(p))
            .collect()
    };
    let unpacked = keep(tree_from_dir(&bundle.join("rootfs")));
    let exported = keep(tree_from_tar(&fx.join("export.tar")));
    assert!(
        unpacked.len() > 1000,
        "umoci unpacked only {} paths",
        unpacked.len()
    );
    let diffs = tree_diff(
        "umoci-unpacked whittle output",
        &unpacked,
        "docker export",
        &exported,
    );
    assert!(
        diffs.is_empty(),
        "{} differences between the unpacked whittle output and docker export; first 40:\n{}",
        diffs.len(),
        diffs
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

// ---------------------------------------------------------------------------------------

/// JSON values docker and configs spell differently for "nothing".
fn normalize_empty(v: Option<&Value>) -> Value {
    match v {
        None | Some(Value::Null) => Value::Null,
        Some(Value::Array(a)) if a.is_empty() => Value::Null,
        Some(Value::Object(o)) if o.is_empty() => Value::Null,
        Some(Value::String(s)) if s.is_empty() => Value::Null,
        Some(v) => v.clone(),
    }
}

const RUN_CONFIG_KEYS: [&str; 8] = [
    "Cmd",
    "Entrypoint",
    "Env",
    "ExposedPorts",
    "WorkingDir",
    "Labels",
    "StopSignal",
    "User",
];

#[test]
fn squash_runs_the_same() {
    let Some(fx) = fixture() else { return };
    if !require_tools(&["docker"]) {
        return;
    }
    const TAG: &str = "whittle-e2e/nginx:squash";
    let tmp = tempdir();
    let sq = tmp.path().join("sq.tar");
    whittle_ok([
        "squash".to_string(),
        reference("docker-archive", &fx.join("nginx.tar"), None),
        reference("docker-archive", &sq, Some(TAG)),
    ]);

    let mut cleanup = DockerCleanup::default();
    docker(["rmi", TAG]); // a leftover would make docker load skip our layer
    cleanup.images.push(TAG.to_string());
    docker_load(&sq, TAG);
    let inspect = docker_image_inspect(TAG).expect("loaded image is inspectable");
    let layers = inspect["RootFS"]["Layers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        layers.len(),
        1,
        "squashed image should have 1 layer: {}",
        inspect["RootFS"]
    );

    let src = docker_archive_image(&fx.join("nginx.tar"));
    let mut references = vec![("source config", src.config["config"].clone())];
    if let Some(orig) = docker_image_inspect("whittle-test/nginx:latest") {
        references.push((
            "docker image inspect whittle-test/nginx:latest",
            orig["Config"].clone(),
        ));
    }
    for (what, want) in &references {
        for key in RUN_CONFIG_KEYS {
            assert_eq!(
                normalize_empty(inspect["Config"].get(key)),
                normalize_empty(want.get(key)),
                "squashed image's Config.{key} differs from the {what}"
            );
        }
    }
    assert_eq!(
        inspect["Config"]["Labels"],
        serde_json::json!({"org.whittle.test": "nginx"}),
        "squashed image's labels"
    );

    let Some(body) = serve_and_fetch(TAG, &mut cleanup) else {
        return;
    };
    assert!(
        body.contains(PAGE),
        "nginx served {body:?}, expected {PAGE:?}"
    );
}

// ---------------------------------------------------------------------------------------

/// Squashes nginx-oci into DIR/A; `hostile` runs under umask 077 and TZ=Asia/Tokyo.
fn squash_to_oci(fx: &Path, dir: &Path, hostile: bool, epoch: Option<&str>) -> PathBuf {
    let dst = dir.join("A");
    let bin = env!("CARGO_BIN_EXE_whittle");
    let mut cmd = if hostile {
        let mut c = Command::new("sh");
        c.args(["-c", "umask 077; exec \"$@\"", "sh", bin]);
        c.env("TZ", "Asia/Tokyo");
        c
    } else {
        let mut c = whittle();
        c.env_remove("TZ");
        c
    };
    cmd.args([
        "squash".to_string(),
        reference("oci", &fx.join("nginx-oci"), Some("latest")),
        reference("oci", &dst, Some("latest")),
    ]);
    match epoch {
        Some(e) => cmd.env("SOURCE_DATE_EPOCH", e),
        None => cmd.env_remove("SOURCE_DATE_EPOCH"),
    };
    common::docker_e2e::run_ok(&mut cmd);
    dst
}

#[test]
fn squash_is_reproducible() {
    let Some(fx) = fixture() else { return };
    let (t1, t2, t3, t4) = (tempdir(), tempdir(), tempdir(), tempdir());

    let a = oci_image(&squash_to_oci(fx, t1.path(), false, None), "latest");
    let b = oci_image(&squash_to_oci(fx, t2.path(), true, None), "latest");
    assert_eq!(
        a.layers().len(),
        1,
        "squash output has {} layers",
        a.layers().len()
    );
    assert_eq!(
        a.layers()[0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "squash compresses with gzip by default"
    );
    assert_eq!(
        a.manifest_digest,
        b.manifest_digest,
        "squash without SOURCE_DATE_EPOCH is not reproducible (umask 077 + TZ=Asia/Tokyo \
         on the 2nd run):\nlayers {} vs {}\nconfig created {} vs {}\ndiff_ids {:?} vs {:?}",
        a.manifest["layers"],
        b.manifest["layers"],
        a.config["created"],
        b.config["created"],
        a.diff_ids(),
        b.diff_ids()
    );

    let c = oci_image(
        &squash_to_oci(fx, t3.path(), false, Some("1700000000")),
        "latest",
    );
    let d = oci_image(
        &squash_to_oci(fx, t4.path(), true, Some("1700000000")),
        "latest",
    );
    assert_eq!(
        c.manifest_digest, d.manifest_digest,
        "squash with SOURCE_DATE_EPOCH=1700000000 is not reproducible:\nlayers {} vs {}\n\
         config created {} vs {}",
        c.manifest["layers"], d.manifest["layers"], c.config["created"], d.config["created"]
    );
    assert_eq!(
        c.config["created"], "2023-11-14T22:13:20Z",
        "config created with SOURCE_DATE_EPOCH"
    );
}

// ---------------------------------------------------------------------------------------

/// Where two byte strings first differ, with some context from each.
fn first_difference(got: &[u8], want: &[u8]) -> String {
    let Some(i) = (0..got.len().max(want.len())).find(|&i| got.get(i) != want.get(i)) else {
        return "identical bytes".to_string();
    };
    let around = |b: &[u8]| {
        String::from_utf8_lossy(&b[i.saturating_sub(40)..(i + 40).min(b.len())]).into_owned()
    };
    format!(
        "first difference at byte {i} (lengths {} vs {}): got ...{:?}... want ...{:?}...",
        got.len(),
        want.len(),
        around(got),
        around(want)
    )
}

#[test]
fn diff_ids_survive_round_trip() {
    let Some(fx) = fixture() else { return };
    let tmp = tempdir();
    let src = oci_image(&fx.join("nginx-oci"), "latest");
    let want = src.diff_ids();
    assert_eq!(want.len(), 2, "fixture nginx-oci should have 2 layers");

    // OCI layout -> docker-archive
    let tar_path = tmp.path().join("rt.tar");
    whittle_ok([
        "copy".to_string(),
        reference("oci", &fx.join("nginx-oci"), Some("latest")),
        reference("docker-archive", &tar_path, Some("whittle-e2e/nginx:rt")),
    ]);
    let da = docker_archive_image(&tar_path);
    assert_eq!(
        da.diff_ids(),
        want,
        "diff_ids in the docker-archive's config"
    );
    assert_eq!(
        format!("sha256:{}", sha256_hex(&da.config_bytes)),
        src.config_digest,
        "the docker-archive's config blob is not the source's (bytes re-serialised?): {}",
        first_difference(&da.config_bytes, &src.config_bytes)
    );
    assert_eq!(
        da.entry["RepoTags"],
        serde_json::json!(["whittle-e2e/nginx:rt"])
    );
    // docker-archive sinks hold uncompressed layers: each layer file IS its diff_id.
    let digests = tar_member_digests(&tar_path);
    let layer_paths = da.layer_paths();
    assert_eq!(layer_paths.len(), want.len());
    for (i, (p, diff_id)) in layer_paths.iter().zip(&want).enumerate() {
        let got = digests.get(p.trim_start_matches("./")).unwrap_or_else(|| {
            panic!("manifest.json names layer {p}, which is not in the archive")
        });
        assert_eq!(
            &format!("sha256:{got}"),
            diff_id,
            "docker-archive layer {i} ({p})"
        );
    }

    // docker-archive -> OCI layout
    let oci = tmp.path().join("oci");
    whittle_ok([
        "copy".to_string(),
        reference("docker-archive", &tar_path, None),
        reference("oci", &oci, Some("latest")),
    ]);
    let back = oci_image(&oci, "latest");
    assert_eq!(
        back.diff_ids(),
        want,
        "diff_ids after docker-archive -> oci"
    );
    assert_eq!(
        back.config_digest,
        src.config_digest,
        "config digest after the round trip: {}",
        first_difference(&back.config_bytes, &src.config_bytes)
    );
    // An OCI layout keeps blobs as given, so copy gzips the archive's plain layers...
    for layer in back.layers() {
        assert_eq!(
            layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip",
            "{layer}"
        );
    }
    // ...and with --compression none keeps them byte for byte.
    let oci = tmp.path().join("oci-plain");
    whittle_ok([
        "copy".to_string(),
        reference("docker-archive", &tar_path, None),
        reference("oci", &oci, Some("latest")),
        "--compression".to_string(),
        "none".to_string(),
    ]);
    let back = oci_image(&oci, "latest");
    assert_eq!(back.diff_ids(), want);
    let blob_digests: Vec<String> = back
        .layers()
        .iter()
        .map(|l| l["digest"].as_str().expect("layer digest").to_string())
        .collect();
    assert_eq!(
        blob_digests, want,
        "layer blobs copied from a docker-archive"
    );
    for d in &blob_digests {
        read_blob(&oci, d); // present and matching its digest
    }
}

// ---------------------------------------------------------------------------------------

struct Member {
    kind: tar::EntryType,
    mode: u32,
    link: Option<String>,
    content: Vec<u8>,
}

#[test]
fn squash_preserves_special_files() {
    let Some(fx) = fixture() else { return };
    let tmp = tempdir();
    let oci = tmp.path().join("sq");
    whittle_ok([
        "squash".to_string(),
        reference("oci", &fx.join("nginx-oci"), Some("latest")),
        reference("oci", &oci, Some("latest")),
        "--compression".to_string(),
        "none".to_string(),
    ]);
    let img = oci_image(&oci, "latest");
    let layers = img.layers();
    assert_eq!(
        layers.len(),
        1,
        "squash output layers: {}",
        img.manifest["layers"]
    );
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar"
    );
    let digest = layers[0]["digest"].as_str().unwrap();
    let blob = common::docker_e2e::blob_path(&oci, digest);
    assert_eq!(
        format!("sha256:{}", sha256_file(&blob)),
        img.diff_ids()[0],
        "an uncompressed layer's digest must equal its diff_id"
    );

    let mut members: BTreeMap<String, Member> = BTreeMap::new();
    let mut names = Vec::new();
    let mut ar = tar::Archive::new(fs::File::open(&blob).unwrap());
    for e in ar.entries().expect("squashed layer is a tar") {
        let mut e = e.expect("tar entry");
        let name = norm(&e.path().unwrap());
        let kind = e.header().entry_type();
        let mode = e.header().mode().unwrap() & 0o7777;
        // Hardlink names are member names (normalised); symlink targets stay verbatim.
        let link = e.link_name().unwrap().map(|p| match kind {
            tar::EntryType::Link => norm(&p),
            _ => p.to_string_lossy().into_owned(),
        });
        let mut content = Vec::new();
        if name.starts_with("var/www/html/") {
            e.read_to_end(&mut content).unwrap();
        }
        names.push(name.clone());
        members.insert(
            name,
            Member {
                kind,
                mode,
                link,
                content,
            },
        );
    }
    let unique: BTreeSet<&String> = names.iter().collect();
    assert_eq!(
        unique.len(),
        names.len(),
        "duplicate members in the squashed layer"
    );
    let whiteouts: Vec<&String> = names
        .iter()
        .filter(|n| n.rsplit('/').next().unwrap_or("").starts_with(".wh."))
        .collect();
    assert!(
        whiteouts.is_empty(),
        "whiteouts in a squashed layer: {whiteouts:?}"
    );

    let get = |p: &str| -> &Member {
        members
            .get(p)
            .unwrap_or_else(|| panic!("{p} missing from the squashed layer"))
    };

    assert_eq!(
        get("run/whittle-fifo").kind,
        tar::EntryType::Fifo,
        "run/whittle-fifo"
    );

    let (a, b) = ("usr/local/bin/nginx-hardlink", "usr/sbin/nginx");
    let (ma, mb) = (get(a), get(b));
    let (primary, primary_m, other, other_m) = if ma.kind == tar::EntryType::Link {
        (b, mb, a, ma)
    } else {
        (a, ma, b, mb)
    };
    assert!(
        primary_m.kind.is_file(),
        "{primary} should be the regular file of the hardlink group, is {:?}",
        primary_m.kind
    );
    assert_eq!(
        other_m.kind,
        tar::EntryType::Link,
        "{other} should be a hardlink to {primary}"
    );
    assert_eq!(
        other_m.link.as_deref(),
        Some(primary),
        "{other} hardlink target"
    );
    assert_eq!(
        primary_m.mode, 0o4755,
        "{primary} mode {:o}",
        primary_m.mode
    );

    let site = get("etc/nginx/sites-enabled/default");
    assert_eq!(
        site.kind,
        tar::EntryType::Symlink,
        "etc/nginx/sites-enabled/default"
    );
    assert_eq!(
        site.link.as_deref(),
        Some("/etc/nginx/sites-available/default")
    );

    for gone in ["usr/share/doc", "usr/share/man", "usr/share/info"] {
        let left: Vec<&String> = names
            .iter()
            .filter(|n| *n == gone || n.starts_with(&format!("{gone}/")))
            .take(5)
            .collect();
        assert!(
            left.is_empty(),
            "{gone} was deleted in layer 2 but the squash has {left:?}"
        );
    }
    assert_eq!(
        get("var/www/html/index.html").content,
        format!("{PAGE}\n").as_bytes()
    );
    assert_eq!(get("var/www/html/two.txt").content, b"layer two\n");
}

// ---------------------------------------------------------------------------------------

#[test]
fn inspect_reports_layers_and_elf() {
    let Some(fx) = fixture() else { return };
    let out = whittle_ok([
        "inspect".to_string(),
        "--json".to_string(),
        reference("docker-archive", &fx.join("nginx.tar"), None),
    ]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "inspect --json printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let src = docker_archive_image(&fx.join("nginx.tar"));

    let layers = v["layers"]
        .as_array()
        .unwrap_or_else(|| panic!("no layers: {v}"));
    assert_eq!(layers.len(), 2, "layers: {}", v["layers"]);
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| l["diff_id"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(diff_ids, src.diff_ids(), "layer diff_ids");
    assert_eq!(
        v["config_digest"],
        format!("sha256:{}", sha256_hex(&src.config_bytes))
    );
    assert!(
        layers[1]["deleted"].as_u64().unwrap_or(0) > 0,
        "layer 2 deletes /usr/share/{{doc,man,info}}: {}",
        layers[1]
    );
    let wasted = v["wasted_bytes"]
        .as_u64()
        .unwrap_or_else(|| panic!("wasted_bytes: {v}"));
    assert!(wasted > 0, "wasted_bytes = {wasted}");
    let eff = v["efficiency"]
        .as_f64()
        .unwrap_or_else(|| panic!("efficiency: {}", v["efficiency"]));
    assert!(eff > 0.0 && eff < 1.0, "efficiency = {eff}");

    let elf = v["elf"]
        .as_array()
        .unwrap_or_else(|| panic!("elf: {}", v["elf"]));
    let nginx = elf
        .iter()
        .find(|e| e["path"].as_str().map(|p| p.trim_start_matches('/')) == Some("usr/sbin/nginx"))
        .unwrap_or_else(|| panic!("usr/sbin/nginx not in the elf list ({} entries)", elf.len()));
    assert_eq!(nginx["linkage"], "dynamic", "{nginx}");
    assert!(
        nginx["interpreter"]
            .as_str()
            .is_some_and(|s| s.contains("ld-linux")),
        "{nginx}"
    );
    assert_eq!(nginx["interpreter_present"], true, "{nginx}");

    let warnings = v["warnings"].as_array().cloned().unwrap_or_default();
    let bad: Vec<&Value> = warnings
        .iter()
        .filter(|w| w.as_str().unwrap_or("").contains("interpreter"))
        .collect();
    assert!(
        bad.is_empty(),
        "interpreter warnings for a working image: {bad:?}"
    );
}
