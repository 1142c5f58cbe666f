//! Choosing a platform from a multi-platform image index (`--platform`), on a layout
//! built here from the nginx fixture: the same layers under an amd64 and an arm64
//! config, both listed in one index.

#[allow(dead_code)]
mod common;

use std::fs;
use std::path::Path;

use common::docker_e2e::{fixture, oci_image, sha256_hex, whittle};
use serde_json::{json, Value};

fn put_blob(layout: &Path, bytes: &[u8]) -> (String, usize) {
    let hex = sha256_hex(bytes);
    fs::write(layout.join("blobs/sha256").join(&hex), bytes).unwrap();
    (format!("sha256:{hex}"), bytes.len())
}

/// Copies the fixture layout and adds tag `multi`: an index of two platforms.
fn multi_platform_layout(fx: &Path, dir: &Path) -> (String, String) {
    let src = fx.join("nginx-oci");
    let layout = dir.join("multi");
    fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    for e in fs::read_dir(src.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), layout.join("blobs/sha256").join(e.file_name())).unwrap();
    }
    fs::copy(src.join("oci-layout"), layout.join("oci-layout")).unwrap();
    let img = oci_image(&src, "latest");
    let mut manifests = Vec::new();
    let mut digests = Vec::new();
    for arch in ["amd64", "arm64"] {
        let mut config: Value = img.config.clone();
        config["architecture"] = json!(arch);
        let (cd, cs) = put_blob(&layout, &serde_json::to_vec(&config).unwrap());
        let mut manifest = img.manifest.clone();
        manifest["config"]["digest"] = json!(cd);
        manifest["config"]["size"] = json!(cs);
        let (md, ms) = put_blob(&layout, &serde_json::to_vec(&manifest).unwrap());
        manifests.push(json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": md, "size": ms,
            "platform": {"os": "linux", "architecture": arch}
        }));
        digests.push(md);
    }
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests});
    let (id, is) = put_blob(&layout, &serde_json::to_vec(&index).unwrap());
    let top = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": id, "size": is,
        "annotations": {"org.opencontainers.image.ref.name": "multi"}}]});
    fs::write(layout.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    (digests[0].clone(), digests[1].clone())
}

fn inspect(layout: &Path, platform: Option<&str>) -> (Option<i32>, String, String) {
    let mut cmd = whittle();
    if let Some(p) = platform {
        cmd.args(["--platform", p]);
    }
    let out = cmd
        .args([
            "inspect",
            "--json",
            &format!("oci:{}:multi", layout.display()),
        ])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn platform_flag_picks_from_an_index() {
    let Some(fx) = fixture() else { return };
    if std::env::consts::ARCH != "x86_64" {
        eprintln!("SKIP: the default-platform check assumes an amd64 host");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (amd64, arm64) = multi_platform_layout(fx, tmp.path());
    let layout = tmp.path().join("multi");

    let (code, out, err) = inspect(&layout, None);
    assert_eq!(code, Some(0), "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["manifest_digest"],
        json!(amd64),
        "the host's platform by default"
    );

    let (code, out, err) = inspect(&layout, Some("linux/arm64"));
    assert_eq!(code, Some(0), "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["manifest_digest"], json!(arm64));
    assert_eq!(v["architecture"], json!("arm64"));

    let (code, _, err) = inspect(&layout, Some("linux/s390x"));
    assert_eq!(code, Some(1));
    assert!(
        err.contains("linux/s390x") && err.contains("linux/amd64") && err.contains("linux/arm64"),
        "the error should list what the index has: {err}"
    );
    let (code, _, err) = inspect(&layout, Some("nonsense"));
    assert_eq!(
        code,
        Some(2),
        "a malformed --platform is a usage error: {err}"
    );
}
