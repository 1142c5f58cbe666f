//! End-to-end tests of `whittle trim` and `extract --trim` (docs/CLI.md, "trim"):
//! - the Debian nginx fixture's base image (tests/fixtures/nginx-image.sh: debootstrap
//!   minbase + nginx-light, documentation and locales still in it) trimmed: dockerd runs the
//!   output and nginx serves the page; documentation (but the copyright files), man pages
//!   and locales are gone, every other path is as it was, `dpkg --verify` says what it says
//!   of the input, the savings are on stderr and in the report, and two runs give one digest;
//! - a busybox root whose entrypoint script and its interpreter live under /usr/share/doc:
//!   both stay (and stderr says why), the rest of the documentation goes, the output runs;
//! - the same image with `LANG=de_DE.UTF-8`: the German catalogs stay, others go;
//! - a `dir:` source without an entrypoint: a warning, and trimmed all the same;
//! - bad input: an unknown category names the valid ones, a missing source and an output
//!   that is not an image archive are errors that write nothing.
//!
//! Without docker or the fixtures the tests print `SKIP: ...` and pass, unless `CI` is set.

#[allow(dead_code)]
mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::docker_e2e::{docker, fresh_tag, read_json, reference, serve_and_fetch, DockerCleanup};
use common::slim_e2e::{
    archive_layers, dir_entries, docker_load, docker_run_offline, fixtures, run_whittle, tempdir,
    unpack_single_layer, Member, Run, PAGE,
};

/// `whittle trim SRC docker-archive:OUT:TAG EXTRA...`, which must succeed.
fn trim_ok(src: &str, out: &Path, tag: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "trim".to_string(),
        src.to_string(),
        reference("docker-archive", out, Some(tag)),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let run = run_whittle(&args).ok();
    assert!(
        out.is_file(),
        "{} was not written; {}",
        out.display(),
        run.describe()
    );
    run
}

/// The bytes stderr reports for a category (`  docs  405 files  6.8 MiB  (7179957 bytes)`).
fn saved_bytes(stderr: &str, category: &str) -> Option<u64> {
    stderr.lines().find_map(|l| {
        let mut words = l.split_whitespace();
        if words.next() != Some(category) {
            return None;
        }
        let inside = l.rsplit_once('(')?.1.strip_suffix(" bytes)")?;
        inside.parse().ok()
    })
}

fn under(path: &str, dir: &str) -> bool {
    path.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
}

/// Whether trim (default categories) may drop or rewrite `path` of the input.
fn may_change(path: &str, m: &Member) -> bool {
    under(path, "/usr/share/doc")
        || under(path, "/usr/share/man")
        || under(path, "/usr/share/info")
        || under(path, "/usr/share/locale")
        || under(path, "/usr/lib/locale")
        || under(path, "/var/cache/apt")
        || under(path, "/var/lib/apt/lists")
        || (under(path, "/var/cache/debconf") && path.ends_with("-old"))
        || (under(path, "/var/log") && m.kind == 'f')
        || (under(path, "/var/lib/dpkg/info")
            && (path.ends_with(".list") || path.ends_with(".md5sums")))
}

/// `dpkg --verify` in IMAGE: what it lists (it exits non-zero when it lists anything).
fn dpkg_verify(image: &str) -> String {
    let out = docker([
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "dpkg",
        image,
        "--verify",
    ]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn nginx_trim_serves_the_page_drops_docs_and_is_reproducible() {
    let Some(fx) = fixtures() else { return };
    let tmp = tempdir();
    let src = reference("docker-archive", &fx.nginx.join("base.tar"), None);
    let tag = "whittle-e2e/trim:nginx";
    let mut cleanup = DockerCleanup::default();
    fresh_tag(tag, &mut cleanup);
    let out = tmp.path().join("out.tar");
    let report = tmp.path().join("trim.json");
    let run = trim_ok(&src, &out, tag, &["--report", report.to_str().unwrap()]);
    let err = run.stderr();

    // Savings per category on stderr, and the same in the report.
    let json = read_json(&report);
    for c in ["docs", "man", "locale"] {
        let bytes = saved_bytes(&err, c)
            .unwrap_or_else(|| panic!("stderr has no savings line for {c}; {}", run.describe()));
        assert!(bytes > 0, "{c} saved nothing; {}", run.describe());
        assert_eq!(json["saved"][c]["bytes"].as_u64(), Some(bytes), "{json:#}");
    }
    assert!(
        err.contains("copyright files in /usr/share/doc kept"),
        "{err}"
    );

    // Same input, another directory: the same image.
    let again = tmp.path().join("again");
    fs::create_dir(&again).unwrap();
    let run2 = trim_ok(&src, &again.join("out.tar"), tag, &[]);
    assert_eq!(run.digest(), run2.digest(), "two trims of one image differ");

    // The tree: categories gone, copyright files kept, everything else as it was.
    let input = archive_layers(&fx.nginx.join("base.tar")).members;
    let output = archive_layers(&out).members;
    assert_eq!(archive_layers(&out).sizes.len(), 1, "trim writes one layer");
    let mut problems = Vec::new();
    for (p, m) in &output {
        let wrong = (under(p, "/usr/share/doc")
            && !(p.ends_with("/copyright") || m.kind == 'd' || m.kind == 'l'))
            || under(p, "/usr/share/man")
            || under(p, "/usr/share/info")
            || (under(p, "/usr/share/locale") && m.kind != 'f')
            || (under(p, "/usr/lib/locale")
                && !(p == "/usr/lib/locale/C.utf8" || under(p, "/usr/lib/locale/C.utf8")));
        if wrong {
            problems.push(format!("{p}: should have been dropped"));
        }
    }
    for (p, m) in &input {
        let kept = output.get(p);
        if !may_change(p, m) {
            // A hard-link group is written with its first path (in output order) carrying
            // the data, as squash writes it: which member is the link may change.
            let same = |k: &Member| {
                k.mode == m.mode
                    && (k.kind == 'h'
                        || m.kind == 'h'
                        || (k.kind, k.size, &k.link) == (m.kind, m.size, &m.link))
            };
            match kept {
                Some(k) if same(k) => {}
                Some(k) => problems.push(format!("{p}: changed: {m:?} -> {k:?}")),
                None => problems.push(format!("{p}: dropped, but in no category")),
            }
        }
        if under(p, "/usr/share/doc") && p.ends_with("/copyright") && m.kind == 'f' {
            match kept {
                Some(k) if k.size == m.size => {}
                _ => problems.push(format!("{p}: a copyright file, not kept as it was")),
            }
        }
    }
    assert!(
        input.keys().any(|p| under(p, "/usr/share/locale/de")),
        "the fixture should have German catalogs"
    );
    assert!(
        output.contains_key("/var/log/nginx"),
        "log directories stay"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // dockerd runs it; nginx serves the page; dpkg agrees with the files as much as before.
    docker_load(&out, tag);
    let body = serve_and_fetch(tag, &mut cleanup);
    if let Some(body) = body {
        assert_eq!(body.trim(), PAGE);
    }
    let base_tag = "whittle-test/base:latest";
    let loaded = docker(["image", "inspect", base_tag]).status.success();
    if !loaded {
        docker_load(&fx.nginx.join("base.tar"), base_tag);
    }
    assert_eq!(
        dpkg_verify(tag),
        dpkg_verify(base_tag),
        "dpkg --verify finds more missing files after trim"
    );
}

#[test]
fn trim_keeps_what_the_entrypoint_needs_in_a_dropped_category() {
    let Some(fx) = fixtures() else { return };
    let tmp = tempdir();
    let root = tmp.path().join("root");
    fs::create_dir(&root).unwrap();
    unpack_single_layer(&fx.slim.join("busybox.tar"), &root);
    let tool = root.join("usr/share/doc/tool");
    fs::create_dir_all(&tool).unwrap();
    fs::copy(root.join("bin/busybox"), tool.join("busybox")).unwrap();
    let script = tool.join("run.sh");
    fs::write(
        &script,
        "#!/usr/share/doc/tool/busybox sh\necho trimmed-ok\n",
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(tool.join("README"), "read me\n").unwrap();
    fs::create_dir_all(root.join("usr/share/man/man1")).unwrap();
    fs::write(root.join("usr/share/man/man1/tool.1"), ".TH TOOL 1\n").unwrap();

    let tag = "whittle-e2e/trim:closure";
    let mut cleanup = DockerCleanup::default();
    fresh_tag(tag, &mut cleanup);
    let out = tmp.path().join("out.tar");
    let run = trim_ok(
        &reference("dir", &root, None),
        &out,
        tag,
        &["--entrypoint", "/usr/share/doc/tool/run.sh"],
    );
    let err = run.stderr();
    for p in ["/usr/share/doc/tool/run.sh", "/usr/share/doc/tool/busybox"] {
        assert!(
            err.lines()
                .any(|l| l.starts_with(&format!("kept {p} (docs) for the entrypoint"))),
            "stderr should say {p} was kept for the entrypoint; {}",
            run.describe()
        );
    }
    let members: BTreeMap<String, Member> = archive_layers(&out).members;
    for p in ["/usr/share/doc/tool/run.sh", "/usr/share/doc/tool/busybox"] {
        assert!(
            members.contains_key(p),
            "{p} was dropped; {}",
            run.describe()
        );
    }
    for p in ["/usr/share/doc/tool/README", "/usr/share/man/man1/tool.1"] {
        assert!(!members.contains_key(p), "{p} was kept; {}", run.describe());
    }
    docker_load(&out, tag);
    let (ok, stdout, stderr) = docker_run_offline(tag);
    assert!(ok && stdout.trim() == "trimmed-ok", "{stdout}\n{stderr}");
}

#[test]
fn extract_trim_drops_the_added_documentation() {
    let Some(fx) = fixtures() else { return };
    let tmp = tempdir();
    let src = reference("docker-archive", &fx.slim.join("nginx-layered.tar"), None);
    let base = reference("docker-archive", &fx.slim.join("minbase.tar"), None);
    let out = tmp.path().join("out.tar");
    let run = run_whittle([
        "extract",
        "--trim",
        "--base",
        &base,
        &src,
        &reference("docker-archive", &out, Some("whittle-e2e/trim:extract")),
    ])
    .ok();
    let members = archive_layers(&out).members;
    assert!(
        members.contains_key("/usr/sbin/nginx"),
        "{}",
        run.describe()
    );
    let docs: Vec<&String> = members
        .keys()
        .filter(|p| {
            (under(p, "/usr/share/doc") && !p.ends_with("/copyright") && members[*p].kind == 'f')
                || under(p, "/usr/share/man")
        })
        .collect();
    assert!(docs.is_empty(), "documentation left: {docs:?}");
    assert!(
        saved_bytes(&run.stderr(), "docs").is_some_and(|b| b > 0),
        "{}",
        run.describe()
    );
}

#[test]
fn unknown_category_and_bad_paths_are_errors_that_write_nothing() {
    let tmp = tempdir();
    let dir = tmp.path().join("out");
    fs::create_dir(&dir).unwrap();
    let dst = reference("docker-archive", &dir.join("out.tar"), Some("x/y:z"));
    let src = reference("docker-archive", &tmp.path().join("missing.tar"), None);

    for args in [
        vec!["trim", "--drop", "docs,manuals", &src, &dst],
        vec!["extract", "--trim=docs,manuals", "--base", &src, &src, &dst],
    ] {
        let run = run_whittle(&args);
        assert_ne!(run.code(), Some(0), "{}", run.describe());
        let err = run.stderr();
        assert!(
            err.contains("\"manuals\"")
                && err.contains("docs, copyright, man, locale, cache, logs"),
            "the error should name the bad category and the valid ones; {}",
            run.describe()
        );
        assert!(dir_entries(&dir).is_empty(), "{}", run.describe());
    }

    let run = run_whittle(["trim", &src, &dst]);
    assert_eq!(run.code(), Some(1), "{}", run.describe());
    assert!(
        run.stderr().contains("whittle: error:"),
        "{}",
        run.describe()
    );
    assert!(run.stderr().contains("missing.tar"), "{}", run.describe());
    assert!(dir_entries(&dir).is_empty(), "{}", run.describe());
}

#[test]
fn trim_refuses_to_overwrite_a_file_that_is_not_an_image() {
    let Some(fx) = fixtures() else { return };
    let tmp = tempdir();
    let notes = tmp.path().join("notes.tar");
    fs::write(&notes, "my notes\n").unwrap();
    let src = reference("docker-archive", &fx.slim.join("busybox.tar"), None);
    let run = run_whittle([
        "trim".to_string(),
        src,
        reference("docker-archive", &notes, Some("x/y:z")),
    ]);
    assert_eq!(run.code(), Some(1), "{}", run.describe());
    assert_eq!(fs::read_to_string(&notes).unwrap(), "my notes\n");
    let left: Vec<String> = dir_entries(tmp.path())
        .into_iter()
        .filter(|n| n != "notes.tar")
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}; {}", run.describe());
}

#[test]
fn trim_keeps_the_catalogs_of_the_configured_locale() {
    let Some(fx) = fixtures() else { return };
    let tmp = tempdir();
    let src = reference("docker-archive", &fx.nginx.join("base.tar"), None);
    let out = tmp.path().join("out.tar");
    let run = trim_ok(
        &src,
        &out,
        "whittle-e2e/trim:de",
        &["--env", "LANG=de_DE.UTF-8", "--drop", "locale"],
    );
    let input = archive_layers(&fx.nginx.join("base.tar")).members;
    let output = archive_layers(&out).members;
    let catalogs = |m: &BTreeMap<String, Member>, lang: &str| -> usize {
        m.keys()
            .filter(|p| under(p, &format!("/usr/share/locale/{lang}")))
            .count()
    };
    assert!(catalogs(&input, "de") > 0 && catalogs(&input, "fr") > 0);
    assert_eq!(
        catalogs(&output, "de"),
        catalogs(&input, "de"),
        "LANG=de_DE.UTF-8 keeps the de catalogs; {}",
        run.describe()
    );
    assert_eq!(catalogs(&output, "fr"), 0, "{}", run.describe());
    assert_eq!(catalogs(&output, "de_CH"), 0, "{}", run.describe());
    // Only locale was asked for: the documentation stays.
    assert_eq!(
        output.keys().filter(|p| under(p, "/usr/share/doc")).count(),
        input.keys().filter(|p| under(p, "/usr/share/doc")).count()
    );
}

#[test]
fn trim_without_an_entrypoint_warns_and_trims() {
    let tmp = tempdir();
    let root = tmp.path().join("root");
    fs::create_dir_all(root.join("usr/share/doc/pkg")).unwrap();
    fs::write(root.join("usr/share/doc/pkg/README"), "read me\n").unwrap();
    fs::write(root.join("usr/share/doc/pkg/copyright"), "MIT\n").unwrap();
    let out = tmp.path().join("out.tar");
    let run = trim_ok(
        &reference("dir", &root, None),
        &out,
        "whittle-e2e/trim:noentry",
        &[],
    );
    assert!(
        run.stderr()
            .contains("warning: the image has no entrypoint"),
        "{}",
        run.describe()
    );
    let members = archive_layers(&out).members;
    assert!(members.contains_key("/usr/share/doc/pkg/copyright"));
    assert!(!members.contains_key("/usr/share/doc/pkg/README"));
}
