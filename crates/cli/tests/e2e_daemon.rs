//! End-to-end tests of `docker-daemon:` against the real Docker Engine: images go in
//! through its load API and come out through its export API, and what goes in runs.
//! Uses the Debian nginx fixture ($WHITTLE_FIXTURES, see e2e_docker.rs).

#[allow(dead_code)]
mod common;

use common::docker_e2e::{
    docker, docker_archive_image, docker_ok, fixture, oci_image, require_tools, serve_and_fetch,
    whittle, whittle_ok, DockerCleanup,
};

const PAGE: &str = "whittle test page";

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("whittle-e2e-daemon-")
        .tempdir()
        .expect("temp dir")
}

/// An archive goes into the Engine through whittle, runs there, comes back out through
/// whittle with the same layers, and a slimmed copy goes back in and runs too.
#[test]
fn engine_round_trip_runs_and_keeps_diff_ids() {
    let Some(fx) = fixture() else { return };
    if !require_tools(&["docker"]) {
        return;
    }
    const TAG: &str = "whittle-e2e/daemon:copy";
    const SLIM: &str = "whittle-e2e/daemon:slim";
    let mut cleanup = DockerCleanup::default();
    for t in [TAG, SLIM] {
        docker(["rmi", t]);
        cleanup.images.push(t.to_string());
    }
    let src = docker_archive_image(&fx.join("nginx.tar"));
    let out = whittle_ok([
        "copy".to_string(),
        format!("docker-archive:{}", fx.join("nginx.tar").display()),
        format!("docker-daemon:{TAG}"),
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("sha256:"));
    let layers = docker_ok(["image", "inspect", "-f", "{{json .RootFS.Layers}}", TAG]);
    let layers: Vec<String> = serde_json::from_str(&layers).expect("RootFS.Layers JSON");
    assert_eq!(layers, src.diff_ids(), "the Engine holds other layers");
    assert_eq!(
        serve_and_fetch(TAG, &mut cleanup).as_deref().map(str::trim),
        Some(PAGE)
    );

    // Out again, into an OCI layout: same diff_ids, same config.
    let tmp = tempdir();
    let layout = tmp.path().join("oci");
    whittle_ok([
        "copy".to_string(),
        format!("docker-daemon:{TAG}"),
        format!("oci:{}:back", layout.display()),
    ]);
    let back = oci_image(&layout, "back");
    assert_eq!(back.diff_ids(), src.diff_ids());
    assert_eq!(back.config["config"]["Cmd"], src.config["config"]["Cmd"]);

    // Slim straight from the Engine into the Engine.
    let mut args = vec![
        "slim".to_string(),
        format!("docker-daemon:{TAG}"),
        format!("docker-daemon:{SLIM}"),
    ];
    for p in [
        "/etc/nginx",
        "/var/www",
        "/usr/share/nginx",
        "/var/lib/nginx",
        "/var/log/nginx",
    ] {
        args.extend(["--include".to_string(), p.to_string()]);
    }
    whittle_ok(args);
    assert_eq!(
        serve_and_fetch(SLIM, &mut cleanup)
            .as_deref()
            .map(str::trim),
        Some(PAGE)
    );
}

/// A missing image and an unsupported DOCKER_HOST are errors in words, with exit 1.
#[test]
fn engine_errors_are_clear() {
    if !require_tools(&["docker"]) {
        return;
    }
    let out = whittle()
        .args(["inspect", "docker-daemon:whittle-e2e/no-such-image:never"])
        .output()
        .expect("run whittle");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no such image"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let out = whittle()
        .env("DOCKER_HOST", "tcp://127.0.0.1:2375")
        .args(["inspect", "docker-daemon:anything"])
        .output()
        .expect("run whittle");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unix://"), "{err}");

    let tmp = tempdir();
    let out = whittle()
        .env(
            "DOCKER_HOST",
            format!("unix://{}", tmp.path().join("none.sock").display()),
        )
        .args(["inspect", "docker-daemon:anything"])
        .output()
        .expect("run whittle");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot talk to the Docker Engine"), "{err}");
}
