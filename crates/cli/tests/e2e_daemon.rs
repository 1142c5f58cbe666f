//! End-to-end tests of `docker-daemon:` against the real Docker Engine: images go in
//! through its load API and come out through its export API, and what goes in runs.
//! Uses the Debian nginx fixture ($WHITTLE_FIXTURES, see e2e_docker.rs).

#[allow(dead_code)]
mod common;

use common::docker_e2e::{
    docker, docker_archive_image, docker_ok, fixture, oci_image, require_tools, serve_and_fetch,
    sha256_hex, whittle, whittle_ok, DockerCleanup,
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

/// The Skinnywhale flow: run a container from a Debian base, install a package in it
/// (a .deb made here, no network), exit without committing. `extract` of the
/// container keeps what was installed plus its closure from the base, and runs;
/// `copy` of it is the container's state, deletions included.
#[test]
fn container_extract_keeps_what_was_installed() {
    let Some(fx) = fixture() else { return };
    if !require_tools(&["docker", "gcc", "dpkg-deb"]) {
        return;
    }
    const NAME: &str = "whittle-e2e-install";
    const OUT: &str = "whittle-e2e/container:extract";
    const FULL: &str = "whittle-e2e/container:copy";
    let tmp = tempdir();
    // A package with one dynamic program.
    let pkg = tmp.path().join("pkg");
    std::fs::create_dir_all(pkg.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(pkg.join("usr/local/bin")).unwrap();
    std::fs::write(
        tmp.path().join("hello.c"),
        "#include <stdio.h>\n#include <math.h>\nint main(int c, char **v) { printf(\"hello whittle %.0f\\n\", sqrt(1764.0 + c - 1)); return 0; }\n",
    )
    .unwrap();
    let gcc = std::process::Command::new("gcc")
        .args(["-O2", "-o"])
        .arg(pkg.join("usr/local/bin/hello-whittle"))
        .arg(tmp.path().join("hello.c"))
        .arg("-lm")
        .output()
        .unwrap();
    assert!(
        gcc.status.success(),
        "{}",
        String::from_utf8_lossy(&gcc.stderr)
    );
    // Scripts: one that runs (executable, on the PATH), and three that never run and
    // must not pull perl in: a sample in the docs, a maintainer script, a 0644 helper.
    use std::os::unix::fs::PermissionsExt;
    let script = |rel: &str, text: &str, mode: u32| {
        let path = pkg.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    script("usr/local/bin/hello-tool", "#!/bin/sh\necho tool\n", 0o755);
    let perl = "#!/usr/bin/perl\nexit 0;\n";
    script("usr/share/doc/hello-whittle/examples/rules", perl, 0o755);
    script("DEBIAN/postinst", perl, 0o755);
    script("usr/local/share/hello/helper.pl", perl, 0o644);
    std::fs::write(
        pkg.join("DEBIAN/control"),
        "Package: hello-whittle\nVersion: 1.0\nArchitecture: amd64\nMaintainer: whittle tests <tests@whittle.invalid>\nDescription: a test program\n",
    )
    .unwrap();
    let deb = tmp.path().join("hello.deb");
    let built = std::process::Command::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(&pkg)
        .arg(&deb)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );

    let mut cleanup = DockerCleanup::default();
    docker(["rm", "-f", NAME]);
    cleanup.containers.push(NAME.into());
    for t in [OUT, FULL] {
        docker(["rmi", t]);
        cleanup.images.push(t.into());
    }
    // The fixture's base image, by the ID its archive names (other tests untag it).
    docker_ok(["load", "-q", "-i", fx.join("base.tar").to_str().unwrap()]);
    let base = format!(
        "sha256:{}",
        sha256_hex(&docker_archive_image(&fx.join("base.tar")).config_bytes)
    );
    docker_ok([
        "create",
        "--name",
        NAME,
        "--network",
        "none",
        &base,
        "sh",
        "-c",
        "dpkg -i /tmp/hello.deb && rm /tmp/hello.deb /etc/issue.net",
    ]);
    docker_ok([
        "cp",
        deb.to_str().unwrap(),
        &format!("{NAME}:/tmp/hello.deb"),
    ]);
    docker_ok(["start", "-a", NAME]);

    let report = tmp.path().join("r.json");
    whittle_ok([
        "extract".to_string(),
        format!("docker-container:{NAME}"),
        format!("docker-daemon:{OUT}"),
        "--entrypoint".into(),
        "/usr/local/bin/hello-whittle".into(),
        "--report".into(),
        report.display().to_string(),
    ]);
    let run = docker_ok(["run", "--rm", "--network", "none", OUT]);
    assert_eq!(run.trim(), "hello whittle 42");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let reason = |p: &str| {
        r["kept"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["path"] == p)
            .map(|k| k["reason"].as_str().unwrap_or("").to_string())
    };
    assert_eq!(
        reason("/usr/local/bin/hello-whittle").as_deref(),
        Some("entrypoint")
    );
    assert!(
        reason("/var/lib/dpkg/info/hello-whittle.list").as_deref() == Some("added above the base"),
        "the package's file list was installed in the container"
    );
    let libm = r["kept"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["path"].as_str().is_some_and(|p| p.contains("/libm.so")))
        .map(|k| k["reason"].as_str().unwrap_or("").to_string());
    assert!(
        libm.as_deref().is_some_and(
            |r| r.starts_with("DT_NEEDED of") || r.starts_with("symlink on the path to")
        ),
        "libm comes from the base because the program links it: {libm:?}"
    );
    assert!(r["kept"]
        .as_array()
        .unwrap()
        .iter()
        .all(|k| k["path"] != "/usr/bin/apt"));
    // An executable script brings its interpreter; scripts that never run do not.
    assert!(
        r["kept"].as_array().unwrap().iter().any(|k| k["reason"]
            .as_str()
            .is_some_and(|r| r.contains("interpreter of /usr/local/bin/hello-tool"))),
        "the tool's /bin/sh"
    );
    let perl: Vec<_> = r["kept"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["path"].as_str().is_some_and(|p| p.ends_with("/perl")))
        .collect();
    assert!(
        perl.is_empty(),
        "perl kept for scripts that never run: {perl:?}"
    );
    assert_eq!(
        reason("/var/lib/dpkg/info/hello-whittle.postinst").as_deref(),
        Some("added above the base")
    );

    // The whole container state: the deletion is a whiteout.
    whittle_ok([
        "copy".to_string(),
        format!("docker-container:{NAME}"),
        format!("docker-daemon:{FULL}"),
    ]);
    let probe = docker_ok([
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "sh",
        FULL,
        "-c",
        "test -e /etc/issue.net && echo present || echo deleted; /usr/local/bin/hello-whittle",
    ]);
    assert_eq!(probe.trim(), "deleted\nhello whittle 42");
}
