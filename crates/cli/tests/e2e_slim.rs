//! End-to-end tests of `whittle slim`, `whittle extract` and `whittle why` (docs/CLI.md,
//! "slim, extract, why") on real images, each output loaded into dockerd and run:
//! - the Debian nginx fixture (tests/fixtures/nginx-image.sh, $WHITTLE_FIXTURES, default
//!   <workspace>/target/fixtures/nginx), slimmed with --include for its data files, must
//!   serve the same page, be at most 15 MB, and explain every kept file in its report;
//! - tests/fixtures/slim-images.sh ($WHITTLE_SLIM_FIXTURES, default
//!   <workspace>/target/fixtures/slim): a dynamic C++ program (libstdc++, threads,
//!   getpwnam) and a static musl program on the Debian base, and a #!/bin/sh script on a
//!   busybox-static root: each slimmed image must print what the original prints;
//!   slim-images.sh also splits the nginx base into minbase.tar + nginx-layered.tar
//!   (the nginx files as a layer of their own) for `extract --base`;
//! - bad input: missing entrypoints are errors that write nothing; dangling symlinks,
//!   symlink loops and broken ELF files are warnings (or clear errors), never panics.
//!
//! Fixtures are built once (cached by their .done files, serialised with flock). Without
//! docker or the fixtures' tools the tests print `SKIP: ...` and pass, unless `CI` is
//! set, in which case they fail.

#[allow(dead_code)]
mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use common::docker_e2e::{
    fresh_tag, read_json, reference, serve_and_fetch, whittle_ok, DockerCleanup,
};
use common::slim_e2e::{
    archive_has_blob, archive_layers, dir_entries, docker_image_inspect, docker_load,
    docker_run_offline, expected_output, first_lines, fixtures, nginx_include_args,
    report_chain_problems, report_kept, report_undocumented_reasons, run_whittle, tar_names,
    tempdir, unpack_single_layer, Fixtures, Kept, Run, PAGE,
};

const MB: u64 = 1_000_000;

/// The label slim puts the report in.
const REPORT_LABEL: &str = "dev.whittle.slim.report";

/// `whittle slim SRC docker-archive:OUT:TAG [--report REPORT] EXTRA...`, which must
/// succeed.
fn slim_ok(src: &str, out: &Path, tag: &str, report: Option<&Path>, extra: &[String]) -> Run {
    let mut args = vec![
        "slim".to_string(),
        src.to_string(),
        reference("docker-archive", out, Some(tag)),
    ];
    if let Some(r) = report {
        args.push("--report".into());
        args.push(r.to_str().unwrap().to_string());
    }
    args.extend(extra.iter().cloned());
    let run = run_whittle(&args).ok();
    assert!(
        out.is_file(),
        "{} was not written; {}",
        out.display(),
        run.describe()
    );
    run
}

/// The nginx source reference.
fn nginx_src(fx: &Fixtures) -> String {
    reference("docker-archive", &fx.nginx.join("nginx.tar"), None)
}

/// Slims the nginx fixture with the data-file includes into `dir/out.tar`.
fn slim_nginx(fx: &Fixtures, dir: &Path, tag: &str) -> (PathBuf, PathBuf, Run) {
    let out = dir.join("out.tar");
    let report = dir.join("r.json");
    let run = slim_ok(
        &nginx_src(fx),
        &out,
        tag,
        Some(&report),
        &nginx_include_args(),
    );
    (out, report, run)
}

/// A kept path whose file name starts with `prefix` (e.g. the C library).
fn kept_named<'a>(kept: &'a BTreeMap<String, Kept>, prefix: &str) -> Vec<(&'a String, &'a Kept)> {
    kept.iter()
        .filter(|(p, _)| {
            Path::new(p.as_str())
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .collect()
}

/// Output members vs. report: every member has a kept entry and every kept path is in
/// the output. Returns the problems.
fn members_vs_report(
    members: &BTreeMap<String, common::slim_e2e::Member>,
    kept: &BTreeMap<String, Kept>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for m in members.keys() {
        if m != "/" && !kept.contains_key(m) {
            problems.push(format!(
                "{m}: in the output, but the report gives no reason"
            ));
        }
    }
    for k in kept.keys() {
        if k != "/" && !members.contains_key(k) {
            problems.push(format!("{k}: in the report's kept list, not in the output"));
        }
    }
    problems
}

// ------------------------------------------------------------------------------- nginx

#[test]
fn nginx_slim_serves_the_page_is_small_and_explained() {
    let Some(fx) = fixtures() else { return };
    const TAG: &str = "whittle-e2e/slim:nginx";
    let tmp = tempdir();
    let (out, report_path, run) = slim_nginx(&fx, tmp.path(), TAG);
    let digest = run.digest();
    assert!(
        archive_has_blob(&out, &digest),
        "the digest whittle printed ({digest}) is not a blob of {}",
        out.display()
    );

    // Size: the layers as stored (docker archives hold plain tars) and the report.
    let layers = archive_layers(&out);
    assert_eq!(
        layers.sizes.len(),
        1,
        "slim output should have one layer, has {:?}",
        layers.sizes
    );
    let total = layers.total_size();
    assert!(
        total <= 15 * MB,
        "slimmed nginx is {total} bytes uncompressed, more than 15 MB; its largest files:\n{}",
        {
            let mut big: Vec<_> = layers.members.iter().collect();
            big.sort_by_key(|(_, m)| std::cmp::Reverse(m.size));
            first_lines(big.iter().map(|(p, m)| format!("{p} {}", m.size)), 15)
        }
    );
    let report = read_json(&report_path);
    let after = report["after"]["bytes"]
        .as_u64()
        .unwrap_or_else(|| panic!("report has no after.bytes: {}", report["after"]));
    let before = report["before"]["bytes"]
        .as_u64()
        .unwrap_or_else(|| panic!("report has no before.bytes: {}", report["before"]));
    assert!(
        after > 0 && after <= 15 * MB,
        "report after.bytes = {after}, expected 0 < bytes <= 15 MB"
    );
    assert!(
        before > 100 * MB,
        "report before.bytes = {before}, but the nginx fixture holds well over 100 MB"
    );
    let (bf, af) = (
        report["before"]["files"].as_u64().unwrap_or(0),
        report["after"]["files"].as_u64().unwrap_or(0),
    );
    assert!(
        af > 0 && af < bf,
        "report files: before {bf}, after {af} (expected 0 < after < before)"
    );

    // The report: a reason and a well-formed chain for every kept path, and it lists
    // exactly what the output holds.
    let kept = report_kept(&report);
    let problems = report_chain_problems(&kept);
    assert!(
        problems.is_empty(),
        "{} kept entries with a bad reason/chain; first 30:\n{}",
        problems.len(),
        first_lines(&problems, 30)
    );
    let problems = members_vs_report(&layers.members, &kept);
    assert!(
        problems.is_empty(),
        "output and report disagree on {} paths; first 30:\n{}",
        problems.len(),
        first_lines(&problems, 30)
    );
    let nginx = kept
        .get("/usr/sbin/nginx")
        .unwrap_or_else(|| panic!("/usr/sbin/nginx is not kept"));
    assert_eq!(nginx.reason, "entrypoint", "reason /usr/sbin/nginx is kept");
    let libc: Vec<_> = kept_named(&kept, "libc.so")
        .into_iter()
        .chain(kept_named(&kept, "ld-linux"))
        .collect();
    assert!(
        libc.iter()
            .any(|(_, k)| k.reason.starts_with("DT_NEEDED of")
                || k.reason.starts_with("PT_INTERP of")),
        "no libc.so*/ld-linux* path kept as DT_NEEDED of / PT_INTERP of: {libc:?}"
    );
    // In the source, /usr/sbin/nginx is a hardlink to /usr/local/bin/nginx-hardlink
    // (setuid), which slim drops: the output must hold nginx itself, mode kept.
    let ngx = layers
        .members
        .get("/usr/sbin/nginx")
        .unwrap_or_else(|| panic!("/usr/sbin/nginx is not in the output"));
    assert!(
        ngx.kind == 'f' && ngx.size > 500_000,
        "/usr/sbin/nginx in the output is {ngx:?}, expected the regular file"
    );
    assert_eq!(
        ngx.mode & 0o7777,
        0o4755,
        "/usr/sbin/nginx mode (setuid in the source)"
    );
    assert!(kept.contains_key("/etc/passwd"), "/etc/passwd is not kept");
    assert!(
        layers.members.contains_key("/etc/passwd"),
        "/etc/passwd is not in the output"
    );
    for p in ["/etc/nginx/nginx.conf", "/var/www/html/index.html"] {
        assert!(
            layers.members.contains_key(p),
            "{p} (under an --include) is not in the output"
        );
    }

    // Things nginx does not need are gone (and were there before).
    let input = tar_names(&fx.nginx.join("export.tar"));
    for gone in [
        "/usr/bin/apt",
        "/usr/bin/perl",
        "/usr/bin/dpkg",
        "/usr/bin/bash",
        "/usr/lib/x86_64-linux-gnu/libapt-pkg.so.6.0",
    ] {
        assert!(
            input.contains(gone),
            "{gone} is not in the source image; fix this test's list"
        );
        assert!(
            !layers
                .members
                .keys()
                .any(|m| m == gone || m.starts_with(&format!("{gone}."))),
            "{gone} should have been removed by slim"
        );
        assert!(!kept.contains_key(gone), "report keeps {gone}");
    }

    // The config is the source's plus the report label.
    let mut cleanup = DockerCleanup::default();
    fresh_tag(TAG, &mut cleanup);
    docker_load(&out, TAG);
    let inspect = docker_image_inspect(TAG).expect("loaded image is inspectable");
    let labels = &inspect["Config"]["Labels"];
    assert_eq!(
        labels["org.whittle.test"], "nginx",
        "the source's label is lost: {labels}"
    );
    assert!(
        labels[REPORT_LABEL].as_str().is_some_and(|s| !s.is_empty()),
        "no {REPORT_LABEL} label: {labels}"
    );
    assert_eq!(
        inspect["Config"]["Cmd"],
        serde_json::json!(["nginx", "-g", "daemon off;"]),
        "slim changed CMD"
    );

    let Some(body) = serve_and_fetch(TAG, &mut cleanup) else {
        return;
    };
    assert!(
        body.contains(PAGE),
        "slimmed nginx served {body:?}, expected {PAGE:?}"
    );
}

/// docs/CLI.md lists the reasons a report may give; new wording must be documented.
#[test]
fn report_reasons_are_the_documented_ones() {
    let Some(fx) = fixtures() else { return };
    let tmp = tempdir();
    let (_, report_path, _) = slim_nginx(&fx, tmp.path(), "whittle-e2e/slim:reasons");
    let kept = report_kept(&read_json(&report_path));
    let odd = report_undocumented_reasons(&kept);
    assert!(
        odd.is_empty(),
        "the report uses {} reason forms docs/CLI.md does not list (form => example):\n{}",
        odd.len(),
        first_lines(odd.iter().map(|(f, e)| format!("{f} => {e}")), 40)
    );
}

/// `whittle slim` of the nginx fixture (with the includes) into `dst`; `hostile` runs it
/// under umask 077 and TZ=Asia/Tokyo. Returns the digest printed on stdout.
fn slim_nginx_to(fx: &Fixtures, dst: &str, report: &Path, hostile: bool) -> String {
    let bin = env!("CARGO_BIN_EXE_whittle");
    let mut cmd = if hostile {
        let mut c = std::process::Command::new("sh");
        c.args(["-c", "umask 077; exec \"$@\"", "sh", bin]);
        c.env("TZ", "Asia/Tokyo");
        c
    } else {
        let mut c = std::process::Command::new(bin);
        c.env_remove("TZ");
        c
    };
    cmd.env_remove("SOURCE_DATE_EPOCH")
        .arg("slim")
        .arg(nginx_src(fx))
        .arg(dst)
        .arg("--report")
        .arg(report)
        .args(nginx_include_args());
    let out = common::docker_e2e::run_ok(&mut cmd);
    let d = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        d.starts_with("sha256:") && d.len() == 71,
        "slim into {dst} printed {d:?}, not a digest"
    );
    d
}

#[test]
fn nginx_slim_twice_gives_the_same_digest() {
    let Some(fx) = fixtures() else { return };
    let (t1, t2) = (tempdir(), tempdir());
    const TAG: &str = "whittle-e2e/slim:twice";
    // docker-archive (plain layer), the second run in another directory, umask, TZ.
    let (out1, out2) = (t1.path().join("out.tar"), t2.path().join("out.tar"));
    let d1 = slim_nginx_to(
        &fx,
        &reference("docker-archive", &out1, Some(TAG)),
        &t1.path().join("r.json"),
        false,
    );
    let d2 = slim_nginx_to(
        &fx,
        &reference("docker-archive", &out2, Some(TAG)),
        &t2.path().join("r.json"),
        true,
    );
    assert_eq!(
        d1,
        d2,
        "slimming twice gave different manifest digests; layer sizes {:?} vs {:?}",
        archive_layers(&out1).sizes,
        archive_layers(&out2).sizes
    );
    let r1 = read_json(&t1.path().join("r.json"));
    let r2 = read_json(&t2.path().join("r.json"));
    assert_eq!(r1["kept"], r2["kept"], "the reports' kept lists differ");

    // OCI layouts (gzip layer by default): the compressed bytes must be stable too.
    let (o1, o2) = (t1.path().join("oci"), t2.path().join("oci"));
    let g1 = slim_nginx_to(
        &fx,
        &reference("oci", &o1, Some("latest")),
        &t1.path().join("r2.json"),
        true,
    );
    let g2 = slim_nginx_to(
        &fx,
        &reference("oci", &o2, Some("latest")),
        &t2.path().join("r2.json"),
        false,
    );
    let (m1, m2) = (
        common::docker_e2e::oci_image(&o1, "latest"),
        common::docker_e2e::oci_image(&o2, "latest"),
    );
    assert_eq!(
        m1.manifest_digest, g1,
        "stdout digest vs the layout's manifest"
    );
    assert_eq!(
        m1.layers()[0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "slim compresses with gzip by default"
    );
    assert_eq!(
        g1, g2,
        "two gzip slims differ: layers {} vs {}",
        m1.manifest["layers"], m2.manifest["layers"]
    );
    assert_eq!(
        m1.diff_ids(),
        archive_layers_diff_ids(&out1),
        "the OCI output's layer differs from the docker-archive output's (same flags)"
    );
}

/// diff_ids of a docker-archive's config.
fn archive_layers_diff_ids(archive: &Path) -> Vec<String> {
    common::docker_e2e::docker_archive_image(archive).diff_ids()
}

#[test]
fn why_explains_kept_paths_and_refuses_others() {
    let Some(fx) = fixtures() else { return };
    let tmp = tempdir();
    let (out, report_path, _) = slim_nginx(&fx, tmp.path(), "whittle-e2e/slim:why");
    let image = reference("docker-archive", &out, None);
    let kept = report_kept(&read_json(&report_path));

    let run = run_whittle(["why", image.as_str(), "/usr/sbin/nginx"]).ok();
    let lines: Vec<String> = run
        .stdout()
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(
        lines.first().map(String::as_str),
        Some("/usr/sbin/nginx"),
        "why should start with the path; {}",
        run.describe()
    );
    assert!(
        lines.iter().skip(1).any(|l| l.contains("entrypoint")),
        "why /usr/sbin/nginx should say `entrypoint`; {}",
        run.describe()
    );

    // Regression (issue 15): the path as `ldd` prints it, through /lib -> usr/lib.
    let run = run_whittle(["why", image.as_str(), "/lib/x86_64-linux-gnu/libc.so.6"]).ok();
    assert!(
        run.stdout()
            .contains("is /usr/lib/x86_64-linux-gnu/libc.so.6 in this image")
            && run.stdout().contains("DT_NEEDED of"),
        "{}",
        run.describe()
    );

    // For a library, why prints the report's chain, one step per line.
    let (lib, lib_kept) = kept
        .iter()
        .find(|(p, k)| {
            p.contains("libc.so") && k.reason.starts_with("DT_NEEDED of") && k.chain.len() >= 3
        })
        .unwrap_or_else(|| panic!("report keeps no libc.so* as DT_NEEDED"));
    let run = run_whittle(["why", image.as_str(), lib.as_str()]).ok();
    let steps: Vec<String> = run
        .stdout()
        .lines()
        .map(|l| l.trim().trim_start_matches("<-").trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(
        steps,
        lib_kept.chain,
        "why {lib} should print the report's chain; {}",
        run.describe()
    );

    // Not kept: exit 1 with a message naming the path.
    let run = run_whittle(["why", image.as_str(), "/usr/bin/apt"]);
    assert_eq!(
        run.code(),
        Some(1),
        "why of a removed path; {}",
        run.describe()
    );
    assert!(
        run.stderr().contains("/usr/bin/apt"),
        "why of a removed path should name it; {}",
        run.describe()
    );
    // Not made by slim: exit 1.
    let run = run_whittle(["why", nginx_src(&fx).as_str(), "/usr/sbin/nginx"]);
    assert_eq!(
        run.code(),
        Some(1),
        "why on an image not made by slim; {}",
        run.describe()
    );
    assert!(
        !run.stderr().trim().is_empty(),
        "why on an image not made by slim should say why; {}",
        run.describe()
    );
}

#[test]
fn extract_nginx_over_the_base_serves_the_page() {
    let Some(fx) = fixtures() else { return };
    const TAG: &str = "whittle-e2e/slim:extract";
    let tmp = tempdir();
    let out = tmp.path().join("out.tar");
    let report_path = tmp.path().join("r.json");
    let mut args = vec![
        "extract".to_string(),
        "--base".into(),
        reference("docker-archive", &fx.nginx.join("base.tar"), None),
        nginx_src(&fx),
        reference("docker-archive", &out, Some(TAG)),
        "--report".into(),
        report_path.to_str().unwrap().into(),
    ];
    args.extend(nginx_include_args());
    let run = run_whittle(&args).ok();
    run.digest();
    assert!(out.is_file(), "no output; {}", run.describe());

    let report = read_json(&report_path);
    let kept = report_kept(&report);
    let problems = report_chain_problems(&kept);
    assert!(
        problems.is_empty(),
        "{} kept entries with a bad reason/chain; first 30:\n{}",
        problems.len(),
        first_lines(&problems, 30)
    );
    // two.txt is the fixture's second layer's own file: above the base.
    let two = kept
        .get("/var/www/html/two.txt")
        .unwrap_or_else(|| panic!("/var/www/html/two.txt (added above the base) is not kept"));
    assert!(
        two.chain.iter().any(|s| s == "added above the base")
            || two.chain.iter().any(|s| s.starts_with("--include")),
        "/var/www/html/two.txt kept for {:?}",
        two.chain
    );
    assert!(
        kept.values().any(|k| k.reason == "added above the base"),
        "no path is kept as `added above the base`"
    );

    let mut cleanup = DockerCleanup::default();
    fresh_tag(TAG, &mut cleanup);
    docker_load(&out, TAG);
    let Some(body) = serve_and_fetch(TAG, &mut cleanup) else {
        return;
    };
    assert!(
        body.contains(PAGE),
        "extracted nginx served {body:?}, expected {PAGE:?}"
    );
}

/// The issue's shape: the nginx layer (slim-images.sh's nginx-layered.tar) extracted
/// over the minbase layer it was built on, with no --include: what the layer adds is
/// kept, plus the base files nginx needs; it serves the page like the original does.
#[test]
fn extract_nginx_layer_over_minbase_serves_the_page() {
    let Some(fx) = fixtures() else { return };
    const ORIG: &str = "whittle-test/slim-nginx-layered:latest";
    const TAG: &str = "whittle-e2e/slim:extract-layer";
    let input = fx.slim.join("nginx-layered.tar");
    let tmp = tempdir();
    let out = tmp.path().join("out.tar");
    let report_path = tmp.path().join("r.json");
    let run = run_whittle([
        "extract".to_string(),
        "--base".into(),
        reference("docker-archive", &fx.slim.join("minbase.tar"), None),
        reference("docker-archive", &input, None),
        reference("docker-archive", &out, Some(TAG)),
        "--report".into(),
        report_path.to_str().unwrap().into(),
    ])
    .ok();
    run.digest();

    let layers = archive_layers(&out);
    let total = layers.total_size();
    assert!(
        total <= 15 * MB,
        "extract output is {total} bytes, more than 15 MB"
    );
    let kept = report_kept(&read_json(&report_path));
    let problems = report_chain_problems(&kept);
    assert!(
        problems.is_empty(),
        "{} kept entries with a bad reason/chain; first 30:\n{}",
        problems.len(),
        first_lines(&problems, 30)
    );
    let problems = members_vs_report(&layers.members, &kept);
    assert!(
        problems.is_empty(),
        "output and report disagree on {} paths; first 30:\n{}",
        problems.len(),
        first_lines(&problems, 30)
    );
    assert_eq!(
        kept.get("/usr/sbin/nginx").map(|k| k.reason.as_str()),
        Some("entrypoint"),
        "/usr/sbin/nginx should be kept as the entrypoint"
    );
    // The layer's files, also those no analysis could find, are kept as added.
    for p in [
        "/etc/nginx/nginx.conf",
        "/var/www/html/index.html",
        "/usr/share/nginx/html/index.html",
    ] {
        let k = kept
            .get(p)
            .unwrap_or_else(|| panic!("{p} (in the nginx layer) is not kept"));
        assert!(
            k.chain.iter().any(|s| s == "added above the base"),
            "{p} kept for {:?}, expected `added above the base`",
            k.chain
        );
    }
    // From the base: the libraries nginx needs, not the rest of the OS.
    assert!(
        kept_named(&kept, "libc.so")
            .iter()
            .any(|(_, k)| k.reason.starts_with("DT_NEEDED of")),
        "libc is not kept as DT_NEEDED"
    );
    for gone in ["/usr/bin/apt", "/usr/bin/perl", "/usr/bin/dpkg"] {
        assert!(
            !layers.members.contains_key(gone),
            "{gone} (base, not needed) is in the extract output"
        );
    }

    let mut cleanup = DockerCleanup::default();
    fresh_tag(ORIG, &mut cleanup);
    fresh_tag(TAG, &mut cleanup);
    docker_load(&input, ORIG);
    docker_load(&out, TAG);
    let Some(body) = serve_and_fetch(ORIG, &mut cleanup) else {
        return;
    };
    assert!(
        body.contains(PAGE),
        "the original {ORIG} served {body:?} (fixture problem)"
    );
    let Some(body) = serve_and_fetch(TAG, &mut cleanup) else {
        return;
    };
    assert!(
        body.contains(PAGE),
        "extracted nginx served {body:?}, expected {PAGE:?}"
    );
}

// ---------------------------------------------------------------- small programs

/// Slims slim-fixture image NAME (no includes), runs original and output offline and
/// compares their stdout; the output must be smaller than `max_fraction` of the input.
/// Returns the report's kept entries and the output's layers for further checks.
fn slim_runs_the_same(
    name: &str,
    max_fraction: f64,
) -> Option<(BTreeMap<String, Kept>, common::slim_e2e::ArchiveLayers)> {
    let fx = fixtures()?;
    let original_tag = format!("whittle-test/{name}:latest");
    let tag = format!("whittle-e2e/slim:{name}");
    let input = fx.slim.join(format!("{name}.tar"));
    let tmp = tempdir();
    let out = tmp.path().join("out.tar");
    let report_path = tmp.path().join("r.json");
    let run = slim_ok(
        &reference("docker-archive", &input, None),
        &out,
        &tag,
        Some(&report_path),
        &[],
    );
    run.digest();

    let in_size = archive_layers(&input).total_size();
    let layers = archive_layers(&out);
    let out_size = layers.total_size();
    assert!(
        (out_size as f64) < (in_size as f64) * max_fraction,
        "slimmed {name} is {out_size} bytes, input {in_size}: expected less than {max_fraction} \
         of the input; output members:\n{}",
        first_lines(
            layers
                .members
                .iter()
                .map(|(p, m)| format!("{p} {} {}", m.kind, m.size)),
            60
        )
    );
    let kept = report_kept(&read_json(&report_path));
    let problems = report_chain_problems(&kept);
    assert!(
        problems.is_empty(),
        "{name}: {} kept entries with a bad reason/chain:\n{}",
        problems.len(),
        first_lines(&problems, 30)
    );
    let problems = members_vs_report(&layers.members, &kept);
    assert!(
        problems.is_empty(),
        "{name}: output and report disagree:\n{}",
        first_lines(&problems, 30)
    );

    let mut cleanup = DockerCleanup::default();
    fresh_tag(&original_tag, &mut cleanup);
    fresh_tag(&tag, &mut cleanup);
    docker_load(&input, &original_tag);
    docker_load(&out, &tag);
    let (ok, want, err) = docker_run_offline(&original_tag);
    assert!(ok, "the original {original_tag} failed: {err}");
    assert_eq!(
        want,
        expected_output(fx.slim, name),
        "the original {original_tag} prints something else than when the fixture was built"
    );
    let (ok, got, err) = docker_run_offline(&tag);
    assert!(
        ok,
        "the slimmed {name} image failed to run:\nstdout: {got}\nstderr: {err}\nkept:\n{}",
        first_lines(
            kept.iter().map(|(p, k)| format!("{p}  <- {}", k.reason)),
            80
        )
    );
    assert_eq!(
        got, want,
        "the slimmed {name} image prints something else than the original (stderr: {err})"
    );
    Some((kept, layers))
}

#[test]
fn cxx_slim_runs_the_same() {
    let Some((kept, layers)) = slim_runs_the_same("cxx", 1.0 / 3.0) else {
        return;
    };
    let demo = kept
        .get("/usr/local/bin/cxx-demo")
        .expect("/usr/local/bin/cxx-demo is not kept");
    assert_eq!(demo.reason, "entrypoint");
    // The library (the soname symlink or the file it names) is there because
    // cxx-demo needs it.
    let stdcxx = kept_named(&kept, "libstdc++.so");
    assert!(
        stdcxx.iter().any(|(_, k)| k
            .chain
            .iter()
            .any(|s| s == "DT_NEEDED of /usr/local/bin/cxx-demo")),
        "libstdc++ not kept as DT_NEEDED of /usr/local/bin/cxx-demo: {stdcxx:?}"
    );
    assert!(
        layers.members.contains_key("/etc/passwd"),
        "getpwnam needs /etc/passwd"
    );
    assert!(
        !layers.members.contains_key("/usr/bin/apt"),
        "/usr/bin/apt kept for a C++ program"
    );
}

#[test]
fn musl_static_slim_runs_the_same() {
    let Some((kept, layers)) = slim_runs_the_same("musl", 1.0 / 3.0) else {
        return;
    };
    let demo = kept
        .get("/usr/local/bin/musl-demo")
        .expect("/usr/local/bin/musl-demo is not kept");
    assert_eq!(demo.reason, "entrypoint");
    // A static program needs no dynamic libraries from the image.
    let libs: Vec<&String> = layers
        .members
        .keys()
        .filter(|p| p.contains("libc.so") || p.contains("ld-linux") || p.contains("libstdc++"))
        .collect();
    assert!(
        libs.is_empty(),
        "a static musl program brought glibc files: {libs:?}"
    );
}

/// Libraries only the image's own rules find: libgreet through DT_RUNPATH
/// `$ORIGIN/../lib` (via its soname symlink), libplugin dlopened at run time and
/// announced in a `.note.dlopen` note, in `$ORIGIN/../plugins`.
#[test]
fn loader_slim_follows_runpath_and_dlopen_notes() {
    let Some((kept, layers)) = slim_runs_the_same("loader", 1.0 / 3.0) else {
        return;
    };
    const DEMO: &str = "/opt/app/bin/loader-demo";
    assert_eq!(
        kept.get(DEMO).map(|k| k.reason.as_str()),
        Some("entrypoint")
    );
    let greet = kept
        .get("/opt/app/lib/libgreet.so.1.0")
        .expect("libgreet (DT_NEEDED through $ORIGIN/../lib) is not kept");
    assert_eq!(greet.reason, format!("DT_NEEDED of {DEMO}"));
    let link = kept
        .get("/opt/app/lib/libgreet.so.1")
        .expect("the soname symlink libgreet.so.1 is not kept");
    assert_eq!(
        link.reason,
        "symlink on the path to /opt/app/lib/libgreet.so.1.0"
    );
    let plugin = kept
        .get("/opt/app/plugins/libplugin.so.1")
        .expect("libplugin (.note.dlopen) is not kept");
    assert_eq!(plugin.reason, format!("dlopen note of {DEMO}"));
    assert!(
        !layers.members.contains_key("/usr/bin/apt"),
        "/usr/bin/apt kept for a C program"
    );
}

#[test]
fn busybox_script_slim_runs_the_same() {
    let Some((kept, layers)) = slim_runs_the_same("busybox", 1.0) else {
        return;
    };
    let entry = kept.get("/entry.sh").expect("/entry.sh is not kept");
    assert_eq!(entry.reason, "entrypoint");
    // The #! interpreter /bin/sh -> busybox: both kept, for /entry.sh.
    for p in ["/bin/sh", "/bin/busybox"] {
        let k = kept
            .get(p)
            .unwrap_or_else(|| panic!("{p} (the #! interpreter of /entry.sh) is not kept"));
        assert!(
            k.chain.iter().any(|s| s == "interpreter of /entry.sh"),
            "{p} kept for {:?}, expected a chain through `interpreter of /entry.sh`",
            k.chain
        );
    }
    for gone in [
        "/usr/share/filler/unused.bin",
        "/etc/unused.conf",
        "/bin/wget",
    ] {
        assert!(
            !layers.members.contains_key(gone),
            "{gone} is not needed by the script but was kept"
        );
    }
}

// ------------------------------------------------------------------------ bad input

/// A `dir:` root: the busybox fixture's files (busybox, /bin/sh, /entry.sh, ...).
fn busybox_root(fx: &Fixtures, dir: &Path) -> PathBuf {
    let root = dir.join("root");
    fs::create_dir(&root).unwrap();
    unpack_single_layer(&fx.slim.join("busybox.tar"), &root);
    assert!(root.join("bin/busybox").is_file() && root.join("entry.sh").is_file());
    root
}

/// A fresh empty directory for an output; returns (dir, dir/out.tar).
fn out_dir(tmp: &Path) -> (PathBuf, PathBuf) {
    let dir = tmp.join("out");
    fs::create_dir(&dir).unwrap();
    let out = dir.join("out.tar");
    (dir, out)
}

/// An error run: exit 1, `whittle: error:` naming `needle`, nothing written in `dir`.
fn assert_error_writes_nothing(run: &Run, needle: &str, dir: &Path) {
    assert_eq!(run.code(), Some(1), "expected exit 1; {}", run.describe());
    let err = run.stderr();
    assert!(
        err.contains("whittle: error:"),
        "no `whittle: error:` message; {}",
        run.describe()
    );
    assert!(
        err.to_lowercase().contains(&needle.to_lowercase()),
        "the error should mention {needle:?}; {}",
        run.describe()
    );
    let left = dir_entries(dir);
    assert!(
        left.is_empty(),
        "an error run left files in the output directory: {left:?}; {}",
        run.describe()
    );
}

#[test]
fn dir_source_without_entrypoint_is_an_error() {
    let Some(fx) = fixtures() else { return };
    let tmp = tempdir();
    let root = busybox_root(&fx, tmp.path());
    let (dir, out) = out_dir(tmp.path());
    let run = run_whittle([
        "slim".to_string(),
        reference("dir", &root, None),
        reference("docker-archive", &out, Some("whittle-e2e/slim:noentry")),
    ]);
    assert_error_writes_nothing(&run, "entrypoint", &dir);
}

#[test]
fn missing_entrypoint_is_an_error() {
    let Some(fx) = fixtures() else { return };
    let tmp = tempdir();
    let (dir, out) = out_dir(tmp.path());
    let run = run_whittle([
        "slim".to_string(),
        nginx_src(&fx),
        reference("docker-archive", &out, Some("whittle-e2e/slim:nope")),
        "--entrypoint".into(),
        "/nope".into(),
    ]);
    assert_error_writes_nothing(&run, "/nope", &dir);
    // The same as a JSON array, and an oci sink.
    let layout = dir.join("layout");
    let run = run_whittle([
        "slim".to_string(),
        nginx_src(&fx),
        reference("oci", &layout, Some("latest")),
        "--entrypoint".into(),
        r#"["/nope", "-x"]"#.into(),
    ]);
    assert_error_writes_nothing(&run, "/nope", &dir);
    // An entrypoint that is a directory.
    let run = run_whittle([
        "slim".to_string(),
        nginx_src(&fx),
        reference("docker-archive", &out, Some("whittle-e2e/slim:nope")),
        "--entrypoint".into(),
        "/etc".into(),
    ]);
    assert_error_writes_nothing(&run, "/etc", &dir);
    // A command name not found on the image's PATH.
    let run = run_whittle([
        "slim".to_string(),
        nginx_src(&fx),
        reference("docker-archive", &out, Some("whittle-e2e/slim:nope")),
        "--cmd".into(),
        r#"["nosuchprog", "-x"]"#.into(),
    ]);
    assert_error_writes_nothing(&run, "nosuchprog", &dir);
}

/// docs/CLI.md: "the entrypoint (or a path it names) is missing from the image" is an
/// error. slim keeps a script named as an argument (`["/bin/sh", "/app/start.sh"]`), so
/// a missing one must not pass silently: an error that writes nothing, or at least a
/// warning naming it.
#[test]
fn missing_script_argument_of_the_entrypoint_is_reported() {
    let Some(fx) = fixtures() else { return };
    let tmp = tempdir();
    let root = busybox_root(&fx, tmp.path());
    // The positive case first: an existing script argument is kept and runs.
    fs::create_dir(root.join("app")).unwrap();
    fs::copy(root.join("entry.sh"), root.join("app/start.sh")).unwrap();
    let ok_out = tmp.path().join("ok.tar");
    const TAG: &str = "whittle-e2e/slim:script-arg";
    slim_ok(
        &reference("dir", &root, None),
        &ok_out,
        TAG,
        None,
        &[
            "--entrypoint".into(),
            r#"["/bin/sh", "/app/start.sh"]"#.into(),
        ],
    );
    let mut cleanup = DockerCleanup::default();
    fresh_tag(TAG, &mut cleanup);
    docker_load(&ok_out, TAG);
    let (ok, got, err) = docker_run_offline(TAG);
    assert!(
        ok,
        "sh /app/start.sh in the slimmed image failed: {got} {err}"
    );
    assert_eq!(got, expected_output(fx.slim, "busybox"));

    let (dir, out) = out_dir(tmp.path());
    let run = run_whittle([
        "slim".to_string(),
        reference("dir", &root, None),
        reference("docker-archive", &out, Some("whittle-e2e/slim:noscript")),
        "--entrypoint".into(),
        r#"["/bin/sh", "/nope.sh"]"#.into(),
    ]);
    match run.code() {
        Some(1) => assert_error_writes_nothing(&run, "/nope.sh", &dir),
        Some(0) => assert!(
            run.stderr()
                .lines()
                .any(|l| l.to_lowercase().contains("warning") && l.contains("/nope.sh")),
            "the entrypoint names /nope.sh, which is not in the image: expected an error \
             (docs/CLI.md) or at least a warning; {}",
            run.describe()
        ),
        _ => panic!("unexpected status; {}", run.describe()),
    }
}

/// Slims a crafted busybox `dir:` root with the entrypoint /entry.sh and `includes`;
/// must succeed with a `warning` line mentioning one of `mentions`; the output must
/// still run like the original.
fn crafted_root_warns_and_runs(
    name: &str,
    craft: impl FnOnce(&Path),
    includes: &[&str],
    mentions: &[&str],
) {
    let Some(fx) = fixtures() else { return };
    let tmp = tempdir();
    let root = busybox_root(&fx, tmp.path());
    craft(&root);
    let tag = format!("whittle-e2e/slim:{name}");
    let out = tmp.path().join("out.tar");
    let mut extra = vec!["--entrypoint".to_string(), r#"["/entry.sh"]"#.to_string()];
    for i in includes {
        extra.push("--include".into());
        extra.push(i.to_string());
    }
    let run = slim_ok(&reference("dir", &root, None), &out, &tag, None, &extra);
    let err = run.stderr();
    let warnings: Vec<&str> = err
        .lines()
        .filter(|l| l.to_lowercase().contains("warning"))
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| mentions.iter().any(|m| w.contains(m))),
        "{name}: expected a warning mentioning one of {mentions:?}; {}",
        run.describe()
    );

    let mut cleanup = DockerCleanup::default();
    fresh_tag(&tag, &mut cleanup);
    docker_load(&out, &tag);
    let (ok, got, err) = docker_run_offline(&tag);
    assert!(ok, "{name}: the slimmed image failed: {got} {err}");
    assert_eq!(
        got,
        expected_output(fx.slim, "busybox"),
        "{name}: output differs"
    );
}

#[test]
fn dangling_symlink_in_closure_warns() {
    crafted_root_warns_and_runs(
        "dangling",
        |root| {
            fs::create_dir_all(root.join("lib")).unwrap();
            symlink("/nowhere", root.join("lib/libbroken.so")).unwrap();
        },
        &["/lib/libbroken.so"],
        &["libbroken.so", "/nowhere"],
    );
}

#[test]
fn symlink_loop_in_closure_warns() {
    crafted_root_warns_and_runs(
        "loop",
        |root| {
            fs::create_dir_all(root.join("lib")).unwrap();
            symlink("loop-b", root.join("lib/loop-a")).unwrap();
            symlink("loop-a", root.join("lib/loop-b")).unwrap();
            symlink("self", root.join("lib/self")).unwrap();
        },
        &["/lib/loop-a", "/lib/self"],
        &["loop-a", "loop-b", "/lib/self"],
    );
}

/// ELF headers that lie: huge offsets and counts.
fn hostile_elf_header() -> Vec<u8> {
    let mut h = vec![0u8; 64];
    h[..8].copy_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
    h[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    h[18..20].copy_from_slice(&0x3eu16.to_le_bytes()); // x86-64
    h[20..24].copy_from_slice(&1u32.to_le_bytes());
    h[24..32].copy_from_slice(&0x401000u64.to_le_bytes());
    h[32..40].copy_from_slice(&0xffff_ffff_ffff_0000u64.to_le_bytes()); // e_phoff
    h[40..48].copy_from_slice(&0x7fff_ffff_ffffu64.to_le_bytes()); // e_shoff
    h[52..54].copy_from_slice(&64u16.to_le_bytes());
    h[54..56].copy_from_slice(&56u16.to_le_bytes());
    h[56..58].copy_from_slice(&0xffffu16.to_le_bytes()); // e_phnum
    h[58..60].copy_from_slice(&64u16.to_le_bytes());
    h[60..62].copy_from_slice(&0xffffu16.to_le_bytes()); // e_shnum
    h[62..64].copy_from_slice(&0xfffeu16.to_le_bytes());
    h
}

/// File offset of the PT_DYNAMIC segment of a little-endian ELF64 file.
fn pt_dynamic_offset(elf: &[u8]) -> Option<usize> {
    let u16_at = |o: usize| u16::from_le_bytes(elf[o..o + 2].try_into().unwrap()) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap()) as usize;
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" || elf[4] != 2 || elf[5] != 1 {
        return None;
    }
    let (phoff, phentsize, phnum) = (u64_at(32), u16_at(54), u16_at(56));
    (0..phnum)
        .map(|i| phoff + i * phentsize)
        .find(|&ph| u32_at(ph) == 2)
        .map(|ph| u64_at(ph + 8))
}

#[test]
fn broken_elf_entrypoint_is_reported_not_a_panic() {
    let Some(fx) = fixtures() else { return };
    let tmp = tempdir();
    let root = busybox_root(&fx, tmp.path());
    let busybox = fs::read(root.join("bin/busybox")).unwrap();
    let mut variants: Vec<(&str, Vec<u8>)> = vec![
        ("magic-only", b"\x7fELF".to_vec()),
        ("truncated-header", busybox[..40].to_vec()),
        ("truncated-phdrs", busybox[..200].to_vec()),
        ("hostile-header", hostile_elf_header()),
    ];
    // A dynamic program cut where its dynamic section starts: PT_INTERP is readable,
    // DT_NEEDED is not.
    let host_true = fs::read("/usr/bin/true").expect("read /usr/bin/true");
    let dyn_off = pt_dynamic_offset(&host_true).expect("/usr/bin/true has PT_DYNAMIC");
    variants.push(("truncated-dynamic", host_true[..dyn_off].to_vec()));
    for (name, bytes) in &variants {
        let p = root.join(format!("bin/bad-{name}"));
        fs::write(&p, bytes).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    for (name, _) in &variants {
        let dir = tmp.path().join(format!("out-{name}"));
        fs::create_dir(&dir).unwrap();
        let out = dir.join("out.tar");
        let path = format!("/bin/bad-{name}");
        // run_whittle itself fails the test on a panic or a signal.
        let run = run_whittle([
            "slim".to_string(),
            reference("dir", &root, None),
            reference("docker-archive", &out, Some("whittle-e2e/slim:badelf")),
            "--entrypoint".into(),
            path.clone(),
        ]);
        match run.code() {
            Some(0) => {
                assert!(
                    out.is_file(),
                    "{name}: exit 0 but no output; {}",
                    run.describe()
                );
                assert!(
                    run.stderr()
                        .lines()
                        .any(|l| l.to_lowercase().contains("warning") && l.contains(&path)),
                    "{name}: exit 0, so a warning naming {path} was expected; {}",
                    run.describe()
                );
            }
            Some(1) => assert_error_writes_nothing(&run, &path, &dir),
            _ => panic!("{name}: unexpected status; {}", run.describe()),
        }
    }

    // A truncated library in the closure (via --include): a warning, output written.
    let lib = root.join("lib/libtrunc.so.1");
    fs::create_dir_all(lib.parent().unwrap()).unwrap();
    fs::write(&lib, &busybox[..200]).unwrap();
    let dir = tmp.path().join("out-lib");
    fs::create_dir(&dir).unwrap();
    let out = dir.join("out.tar");
    let run = run_whittle([
        "slim".to_string(),
        reference("dir", &root, None),
        reference("docker-archive", &out, Some("whittle-e2e/slim:badelf")),
        "--entrypoint".into(),
        r#"["/entry.sh"]"#.into(),
        "--include".into(),
        "/lib/libtrunc.so.1".into(),
    ]);
    assert_eq!(
        run.code(),
        Some(0),
        "a truncated ELF under --include is a warning, not an error; {}",
        run.describe()
    );
    assert!(
        run.stderr()
            .lines()
            .any(|l| l.to_lowercase().contains("warning") && l.contains("libtrunc.so.1")),
        "expected a warning naming /lib/libtrunc.so.1; {}",
        run.describe()
    );
    assert!(out.is_file(), "no output; {}", run.describe());
    let members = archive_layers(&out).members;
    assert!(
        members.contains_key("/lib/libtrunc.so.1"),
        "the --include'd file is not in the output"
    );
}

// -------------------------------------------------------------------- package database

/// `--keep-pkgdb`: dpkg's status lists exactly the installed packages that still own a
/// file in the output (nginx and the libraries it links stay, apt and perl go), and the
/// file lists of the kept packages come along for scanners.
#[test]
fn keep_pkgdb_lists_only_packages_with_files() {
    let Some(fx) = fixtures() else { return };
    let tmp = tempdir();
    let out = tmp.path().join("out.tar");
    let mut extra = nginx_include_args();
    extra.push("--keep-pkgdb".into());
    run_whittle(
        [
            "slim".to_string(),
            reference("docker-archive", &fx.nginx.join("nginx.tar"), None),
            reference("docker-archive", &out, Some("whittle-e2e/slim:pkgdb")),
        ]
        .into_iter()
        .chain(extra),
    )
    .ok();
    let root = tmp.path().join("root");
    fs::create_dir(&root).unwrap();
    unpack_single_layer(&out, &root);
    let status = fs::read_to_string(root.join("var/lib/dpkg/status"))
        .expect("--keep-pkgdb kept no /var/lib/dpkg/status");
    let packages: Vec<&str> = status
        .lines()
        .filter_map(|l| l.strip_prefix("Package: "))
        .collect();
    for want in ["nginx-light", "libc6", "libssl3", "base-files"] {
        let alt = if want == "nginx-light" { "nginx" } else { want };
        assert!(
            packages.iter().any(|p| *p == want || *p == alt),
            "{want} still has files in the output but is not in the trimmed status: {packages:?}"
        );
    }
    for gone in ["apt", "perl-base", "bash", "dpkg"] {
        assert!(
            !packages.contains(&gone),
            "{gone} has no files left but is still in the trimmed status"
        );
    }
    // Every listed package keeps its file list; no dropped package keeps one.
    for p in &packages {
        let listed = ["", ":amd64"].iter().any(|arch| {
            root.join(format!("var/lib/dpkg/info/{p}{arch}.list"))
                .is_file()
        });
        assert!(listed, "{p} is in the status but its .list was not kept");
    }
    assert!(
        !root.join("var/lib/dpkg/info/apt.list").exists(),
        "apt.list kept although apt was dropped"
    );
    assert!(
        root.join("etc/os-release").exists() || root.join("usr/lib/os-release").exists(),
        "scanners need os-release to name the distribution"
    );
}

// ----------------------------------------------------------------- logical layers

/// `--layering packages`: two programs slimmed from one Debian base share a
/// byte-identical bottom layer (the base's C library), and both still run.
#[test]
fn layering_packages_shares_the_bottom_layer() {
    let Some(fx) = fixtures() else { return };
    let tmp = tempdir();
    let mut cleanup = DockerCleanup::default();
    let mut bottoms = Vec::new();
    for name in ["cxx", "loader"] {
        let out = tmp.path().join(format!("{name}.tar"));
        let tag = format!("whittle-e2e/layered:{name}");
        fresh_tag(&tag, &mut cleanup);
        let report = tmp.path().join(format!("{name}.json"));
        slim_ok(
            &reference("docker-archive", &fx.slim.join(format!("{name}.tar")), None),
            &out,
            &tag,
            Some(&report),
            &["--layering".into(), "packages".into()],
        );
        let ids = archive_layers_diff_ids(&out);
        assert_eq!(
            ids.len(),
            3,
            "{name}: base, libraries, application layers: {ids:?}"
        );
        bottoms.push(ids[0].clone());
        let kept = report_kept(&read_json(&report));
        assert!(
            kept.keys().any(|p| p.ends_with("/libc.so.6")),
            "{name}: libc not kept"
        );
        docker_load(&out, &tag);
        let (ok, got, err) = docker_run_offline(&tag);
        assert!(ok, "{name} (layered) failed: {got} {err}");
        assert_eq!(got, expected_output(fx.slim, name));
    }
    assert_eq!(bottoms[0], bottoms[1], "the bottom layers differ");
}

/// Two bases installed apart from the same packages differ only in their directories'
/// times (when things were installed). `--layering packages` gives a layer's directories a
/// time that depends on its files alone, so apps slimmed from either base share the
/// bottom layer, and both run.
#[test]
fn layering_packages_shares_the_bottom_layer_across_bases_installed_apart() {
    let Some(fx) = fixtures() else { return };
    let tmp = tempdir();
    let mut cleanup = DockerCleanup::default();
    // One flattened root of the cxx image, then a copy whose directories are a day younger.
    let flat = tmp.path().join("flat.tar");
    whittle_ok([
        "squash".to_string(),
        reference("docker-archive", &fx.slim.join("cxx.tar"), None),
        reference("docker-archive", &flat, None),
        "--compression".into(),
        "none".into(),
    ]);
    let first = tmp.path().join("first");
    fs::create_dir(&first).unwrap();
    unpack_single_layer(&flat, &first);
    let second = tmp.path().join("second");
    let copied = std::process::Command::new("cp")
        .args(["-a"])
        .arg(&first)
        .arg(&second)
        .status()
        .unwrap();
    assert!(copied.success());
    let touched = std::process::Command::new("find")
        .arg(&second)
        .args([
            "-type",
            "d",
            "-exec",
            "touch",
            "-h",
            "-d",
            "@1700086400",
            "{}",
            "+",
        ])
        .status()
        .unwrap();
    assert!(touched.success());
    let mut bottoms = Vec::new();
    for (name, root) in [("first", &first), ("second", &second)] {
        let out = tmp.path().join(format!("{name}.tar"));
        let tag = format!("whittle-e2e/layered-apart:{name}");
        fresh_tag(&tag, &mut cleanup);
        slim_ok(
            &reference("dir", root, None),
            &out,
            &tag,
            None,
            &[
                "--layering".into(),
                "packages".into(),
                "--entrypoint".into(),
                r#"["/usr/local/bin/cxx-demo"]"#.into(),
            ],
        );
        let ids = archive_layers_diff_ids(&out);
        assert_eq!(ids.len(), 3, "{name}: {ids:?}");
        bottoms.push(ids);
        docker_load(&out, &tag);
        let (ok, got, err) = docker_run_offline(&tag);
        assert!(ok, "{name} (layered) failed: {got} {err}");
        assert_eq!(got, expected_output(fx.slim, "cxx"));
    }
    assert_eq!(
        bottoms[0][0], bottoms[1][0],
        "the bottom layers of bases installed apart differ"
    );
}

/// Regression (issue 15): `--exclude` of the entrypoint, or of a library it links,
/// wrote an image that dies at start, with exit 0.
#[test]
fn excluding_what_the_program_needs_to_start_is_an_error() {
    let Some(fx) = fixtures() else { return };
    let tmp = tempdir();
    let (dir, out) = out_dir(tmp.path());
    for (pattern, named) in [
        ("/usr/sbin/nginx", "/usr/sbin/nginx"),
        ("/usr/lib/x86_64-linux-gnu/libssl*", "libssl.so.3"),
    ] {
        let run = run_whittle([
            "slim".to_string(),
            nginx_src(&fx),
            reference("docker-archive", &out, Some("whittle-e2e/slim:nope")),
            "--exclude".into(),
            pattern.into(),
        ]);
        assert_error_writes_nothing(&run, named, &dir);
        assert!(run.stderr().contains("cannot start"), "{}", run.describe());
    }
}
