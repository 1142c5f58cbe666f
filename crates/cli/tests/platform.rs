//! Choosing a platform from a multi-platform image index (`--platform`), on a layout
//! built here from the nginx fixture: the same layers under an amd64 and an arm64
//! config, both listed in one index.

#[allow(dead_code)]
mod common;

use std::path::Path;

use common::docker_e2e::{fixture, whittle};
use common::multi_platform::multi_platform_layout;
use serde_json::{json, Value};

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

/// `copy --all` keeps the index and every platform, through an archive and back; a sink
/// that holds one platform says to use --platform.
#[test]
fn copy_all_keeps_every_platform() {
    let Some(fx) = fixture() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (_, arm64) = multi_platform_layout(fx, tmp.path());
    let layout = tmp.path().join("multi");
    let top: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let index_digest = top["manifests"][0]["digest"].as_str().unwrap().to_string();
    let archive = tmp.path().join("multi.tar");
    let back = tmp.path().join("back");
    for (src, dst) in [
        (
            format!("oci:{}:multi", layout.display()),
            format!("oci-archive:{}:multi", archive.display()),
        ),
        (
            format!("oci-archive:{}:multi", archive.display()),
            format!("oci:{}:multi", back.display()),
        ),
    ] {
        let out = whittle()
            .args(["copy", "--all", &src, &dst])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), index_digest);
    }
    let (code, out, err) = inspect(&back, Some("linux/arm64"));
    assert_eq!(code, Some(0), "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["manifest_digest"],
        json!(arm64),
        "the arm64 image survived the copy"
    );

    let out = whittle()
        .args(["copy", "--all", &format!("oci:{}:multi", layout.display())])
        .arg(format!(
            "docker-archive:{}",
            tmp.path().join("x.tar").display()
        ))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--platform"));
    assert!(!tmp.path().join("x.tar").exists());
}

/// Slimming a multi-platform source slims the chosen platform and says so.
#[test]
fn slim_of_an_index_says_which_platform() {
    let Some(fx) = fixture() else { return };
    let tmp = tempfile::tempdir().unwrap();
    multi_platform_layout(fx, tmp.path());
    let layout = tmp.path().join("multi");
    let out_dir = tmp.path().join("slim");
    let out = whittle()
        .args(["--platform", "linux/arm64", "slim"])
        .arg(format!("oci:{}:multi", layout.display()))
        .arg(format!("oci:{}:slim", out_dir.display()))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("has 2 platforms") && err.contains("slimming linux/arm64"),
        "{err}"
    );
    let (code, out, e) = inspect_at(&out_dir, "slim");
    assert_eq!(code, Some(0), "{e}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["architecture"], json!("arm64"));
}

fn inspect_at(layout: &std::path::Path, tag: &str) -> (Option<i32>, String, String) {
    let out = whittle()
        .args([
            "inspect",
            "--json",
            &format!("oci:{}:{tag}", layout.display()),
        ])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
