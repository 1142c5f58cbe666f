//! Regressions of issue 15 (CLI correctness) that need no daemon: each test names the
//! behaviour it pins.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// The whittle binary under test.
fn whittle_cmd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_whittle"))
}

/// `whittle ARGS`, which must succeed (its stderr is the failure message otherwise).
fn whittle_ok<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(args: &[S]) -> std::process::Output {
    let out = whittle_cmd().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "whittle {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `whittle ARGS` under `umask`.
fn whittle_with_umask(umask: &str, args: &[&str]) {
    let mut script = format!("umask {umask}; exec \"$0\"");
    for i in 1..=args.len() {
        script.push_str(&format!(" \"${i}\""));
    }
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_whittle"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "whittle {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every path under `dir` (and `dir` itself) with its permission bits.
fn modes(dir: &Path) -> Vec<(String, u32)> {
    let mut out = vec![(
        ".".to_string(),
        std::fs::metadata(dir).unwrap().permissions().mode() & 0o777,
    )];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let md = e.metadata().unwrap();
            let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
            out.push((rel, md.permissions().mode() & 0o777));
            if md.is_dir() {
                stack.push(e.path());
            }
        }
    }
    out
}

/// Written files and directories get 0644/0755 filtered by the umask, as skopeo and tar
/// write them — not 0600 whatever the umask.
#[test]
fn outputs_follow_the_umask() {
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = tmp.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::write(rootfs.join("etc/hello"), "hi\n").unwrap();
    let src = format!("dir:{}", rootfs.display());
    for (umask, file, dir) in [("022", 0o644, 0o755), ("077", 0o600, 0o700)] {
        let layout = tmp.path().join(format!("layout-{umask}"));
        whittle_with_umask(
            umask,
            &["copy", &src, &format!("oci:{}:x", layout.display())],
        );
        for (path, mode) in modes(&layout) {
            let is_dir = layout.join(&path).is_dir();
            let want = if is_dir { dir } else { file };
            assert_eq!(mode, want, "umask {umask}: {path} is {mode:o}");
        }
        let archive = tmp.path().join(format!("archive-{umask}.tar"));
        whittle_with_umask(
            umask,
            &[
                "copy",
                &src,
                &format!("docker-archive:{}", archive.display()),
            ],
        );
        let mode = std::fs::metadata(&archive).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, file, "umask {umask}: the archive is {mode:o}");
    }
}

/// Regression (issue 15): `whittle inspect --json IMAGE | head -1` panicked on the
/// closed pipe (exit 101). Now it ends quietly like coreutils: status 141, no message.
#[test]
fn a_closed_stdout_ends_quietly() {
    use std::process::Stdio;
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = tmp.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::write(rootfs.join("etc/hello"), "hi\n").unwrap();
    for args in [vec!["inspect", "--json"], vec!["inspect"]] {
        // The reader is gone before whittle starts, so that its first write fails
        // however fast it runs.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = whittle_cmd()
            .args(&args)
            .arg(format!("dir:{}", rootfs.display()))
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(141), "{args:?}: {stderr}");
        assert!(!stderr.contains("error"), "{args:?}: {stderr}");
    }
}

/// `--platform linux/arm64` on an amd64-only image copied amd64 silently.
#[test]
fn a_platform_that_matches_nothing_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = tmp.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    // A dir: source is an image of this machine's platform.
    let (here, other) = if cfg!(target_arch = "x86_64") {
        ("linux/amd64", "linux/arm64")
    } else {
        ("linux/arm64", "linux/amd64")
    };
    let out = tmp.path().join("layout");
    let run = |platform: &str| {
        whittle_cmd()
            .args(["--platform", platform, "copy"])
            .arg(format!("dir:{}", rootfs.display()))
            .arg(format!("oci:{}:x", out.display()))
            .output()
            .unwrap()
    };
    let refused = run(other);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("it is {here} only")), "{stderr}");
    assert!(!out.exists(), "an output was written");
    assert!(run(here).status.success());
}

/// `whittle copy IMG docker-archive:notes.txt` replaced an unrelated existing file.
#[test]
fn an_existing_file_that_is_not_an_image_archive_is_not_clobbered() {
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = tmp.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    let src = format!("dir:{}", rootfs.display());
    let whittle = |args: &[&str]| whittle_cmd().args(args).output().unwrap();
    for transport in ["docker-archive", "oci-archive"] {
        let notes = tmp.path().join(format!("notes-{transport}.txt"));
        std::fs::write(&notes, "my notes\n").unwrap();
        let dst = format!("{transport}:{}", notes.display());
        let refused = whittle(&["copy", &src, &dst]);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("not an image archive"), "{stderr}");
        assert_eq!(std::fs::read_to_string(&notes).unwrap(), "my notes\n");
        // An image archive is replaced (as docker save does); --force replaces anything.
        assert!(whittle(&["--force", "copy", &src, &dst]).status.success());
        assert!(whittle(&["copy", &src, &dst]).status.success());
    }
}

/// A truncated `docker save` archive read as "not a docker save archive (it has no
/// manifest.json)"; it says it was truncated now.
#[test]
fn a_truncated_archive_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = tmp.path().join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    let noise: Vec<u8> = (0..2_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(rootfs.join("data"), &noise).unwrap();
    let archive = tmp.path().join("image.tar");
    let ok = whittle_cmd()
        .arg("copy")
        .arg(format!("dir:{}", rootfs.display()))
        .arg(format!("docker-archive:{}", archive.display()))
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let bytes = std::fs::read(&archive).unwrap();
    let cut = tmp.path().join("cut.tar");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let out = whittle_cmd()
        .arg("inspect")
        .arg(format!("docker-archive:{}", cut.display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("truncated"), "{stderr}");
}

/// Writing untagged into an OCI layout that holds an image added a second untagged
/// image, and `oci:DIR` then asked for a tag that could not be given.
#[test]
fn untagged_writes_to_an_oci_layout_never_dead_end() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let whittle = |args: &[String]| {
        String::from_utf8_lossy(&whittle_ok(args).stdout)
            .trim()
            .to_string()
    };
    let mut digests = Vec::new();
    for (i, tag) in ["", "", ":named", ""].iter().enumerate() {
        let rootfs = tmp.path().join(format!("rootfs{i}"));
        std::fs::create_dir_all(&rootfs).unwrap();
        std::fs::write(rootfs.join("n"), format!("{i}")).unwrap();
        let digest = whittle(&[
            "copy".into(),
            format!("dir:{}", rootfs.display()),
            format!("oci:{}{tag}", layout.display()),
        ]);
        digests.push(digest);
        // Reading the layout without a tag gives the last untagged image.
        let last_untagged = if tag.is_empty() {
            digests.last().cloned()
        } else {
            digests.get(i - 1).cloned()
        };
        let copy = tmp.path().join(format!("copy{i}"));
        let read = whittle(&[
            "copy".into(),
            format!("oci:{}", layout.display()),
            format!("oci:{}", copy.display()),
        ]);
        assert_eq!(Some(read), last_untagged, "after write {i}");
    }
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2, "{index}");
}

/// `oci:DIR@sha256:…` picks an image by digest, as `docker://` does; a layout with
/// several images names what can pick each; a digest cannot be a write target.
#[test]
fn an_oci_layout_image_can_be_picked_by_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let run = |args: &[String]| whittle_cmd().args(args).output().unwrap();
    let mut digests = Vec::new();
    for tag in ["one", "two"] {
        let rootfs = tmp.path().join(tag);
        std::fs::create_dir_all(&rootfs).unwrap();
        std::fs::write(rootfs.join("n"), tag).unwrap();
        let out = whittle_ok(&[
            "copy".into(),
            format!("dir:{}", rootfs.display()),
            format!("oci:{}:{tag}", layout.display()),
        ]);
        digests.push(String::from_utf8_lossy(&out.stdout).trim().to_string());
    }
    assert_ne!(digests[0], digests[1]);
    for digest in &digests {
        let copy = tmp.path().join(format!("copy-{}", &digest[7..19]));
        let out = whittle_ok(&[
            "copy".into(),
            format!("oci:{}@{digest}", layout.display()),
            format!("oci:{}", copy.display()),
        ]);
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), digest);
    }
    // Neither tag nor digest: the error names both ways to pick.
    let out = run(&["inspect".into(), format!("oci:{}", layout.display())]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(":one") && stderr.contains("@DIGEST"),
        "{stderr}"
    );
    // A digest that is not there is named in the error.
    let absent = format!("sha256:{}", "0".repeat(64));
    let out = run(&[
        "inspect".into(),
        format!("oci:{}@{absent}", layout.display()),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&absent), "{stderr}");
    // A digest does not say where to write.
    let rootfs = tmp.path().join("one");
    let out = run(&[
        "copy".into(),
        format!("dir:{}", rootfs.display()),
        format!("oci:{}@{}", tmp.path().join("new").display(), digests[0]),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("to write"), "{stderr}");
    assert!(!tmp.path().join("new").exists());
}

/// A program named in the entrypoint's `sh -c` string that is not in the image was
/// passed over in silence; the image then failed at run time.
#[test]
fn a_missing_program_in_a_shell_string_is_reported() {
    let busybox = Path::new("/bin/busybox");
    if !busybox.exists() {
        eprintln!("skipped: /bin/busybox (busybox-static) is not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
    let slim = |entrypoint: &str, out: &str| {
        let out = whittle_ok(&[
            "slim".to_string(),
            format!("dir:{}", root.display()),
            format!("oci:{}", tmp.path().join(out).display()),
            "--entrypoint".to_string(),
            entrypoint.to_string(),
        ]);
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let stderr = slim(
        r#"sh -c 'mytool --x && busybox true; "$APP"; echo done'"#,
        "a",
    );
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].contains("\"mytool\""), "{stderr}");
    let stderr = slim(r#"sh -c 'exec busybox true'"#, "b");
    assert!(!stderr.contains("warning:"), "{stderr}");
}

/// An image the spec names that cannot be read is reported at `FILE:LINE:COL`.
#[test]
fn a_spec_image_that_cannot_be_read_is_named_where_it_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("app.toml");
    std::fs::write(
        &spec,
        "# base\nbaseline = \"static\"\nfrom   = \"oci:missing-layout:1\"\n",
    )
    .unwrap();
    let out = whittle_cmd()
        .arg("build")
        .arg(&spec)
        .arg(format!("oci:{}", tmp.path().join("out").display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}:3:10: cannot read oci:missing-layout:1",
            spec.display()
        )),
        "{stderr}"
    );
    assert!(!tmp.path().join("out").exists());
}

/// Shell completions and a man page come from the same definitions as --help.
#[test]
fn completions_and_man_page() {
    let run = |args: &[&str]| {
        let out = whittle_cmd().args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for (shell, marker) in [
        ("bash", "_whittle()"),
        ("zsh", "#compdef whittle"),
        ("fish", "complete -c whittle"),
    ] {
        let script = run(&["completions", shell]);
        assert!(
            script.contains(marker),
            "{shell}: {}",
            &script[..script.len().min(200)]
        );
        assert!(
            script.contains("http-probe"),
            "{shell} completes no --http-probe"
        );
    }
    let man = run(&["man"]);
    assert!(
        man.contains(".TH whittle 1") && man.contains("slim"),
        "{}",
        &man[..man.len().min(300)]
    );
}

/// `inspect` listed a hard-linked pair twice among the largest files.
#[test]
fn inspect_counts_a_hard_linked_file_once() {
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = tmp.path().join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    std::fs::write(rootfs.join("big"), vec![7u8; 300_000]).unwrap();
    std::fs::hard_link(rootfs.join("big"), rootfs.join("big-link")).unwrap();
    std::fs::write(rootfs.join("small"), b"x").unwrap();
    let out = whittle_cmd()
        .args(["inspect", "--json"])
        .arg(format!("dir:{}", rootfs.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let paths: Vec<&str> = report["largest_files"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["path"].as_str())
        .collect();
    assert_eq!(paths, ["/big", "/small"], "{report}");
}

/// `inspect` showed no run configuration; it shows it (and `--json` carries it and the history).
#[test]
fn inspect_shows_the_run_configuration() {
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = tmp.path().join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    let layout = tmp.path().join("layout");
    let made = whittle_cmd()
        .arg("copy")
        .arg(format!("dir:{}", rootfs.display()))
        .arg(format!("oci:{}:x", layout.display()))
        .args([
            "--entrypoint",
            "/app --serve",
            "--env",
            "MODE=prod",
            "--user",
            "65532",
        ])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let inspect = |json: bool| {
        let mut cmd = whittle_cmd();
        cmd.arg("inspect");
        if json {
            cmd.arg("--json");
        }
        let out = cmd
            .arg(format!("oci:{}:x", layout.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let table = inspect(false);
    assert!(
        table.contains(r#"Entrypoint   ["/app","--serve"]"#),
        "{table}"
    );
    assert!(table.contains("User         65532"), "{table}");
    let report: serde_json::Value = serde_json::from_str(&inspect(true)).unwrap();
    assert_eq!(report["config"]["Env"][1], "MODE=prod", "{report}");
    assert!(report.get("history").is_some(), "{report}");
}

/// The README's `whittle copy docker-archive:nginx.tar oci:out/nginx:latest` in a fresh
/// directory: a layout's missing parents are made (as skopeo does), and a write that fails
/// removes them again; an archive's directory must exist, and the error says which.
#[test]
fn an_oci_layout_gets_its_missing_parents_and_a_failed_write_leaves_none() {
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = tmp.path().join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    std::fs::write(rootfs.join("f"), "x").unwrap();
    let src = format!("dir:{}", rootfs.display());
    whittle_ok(&[
        "copy",
        &src,
        &format!("oci:{}/out/deep/app:1", tmp.path().display()),
    ]);
    assert!(tmp.path().join("out/deep/app/index.json").is_file());
    // A source whose layer is corrupt fails while the layout is written: the parents
    // made for it are gone again.
    let blobs = tmp.path().join("out/deep/app/blobs/sha256");
    let layer = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&layer).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&layer, bytes).unwrap();
    let out = whittle_cmd()
        .args([
            "copy",
            &format!("oci:{}/out/deep/app:1", tmp.path().display()),
            &format!("oci:{}/new/dir/app:1", tmp.path().display()),
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!tmp.path().join("new").exists());
}

/// oci -> oci copies each blob (never a hard link: a write into the copy in place must
/// leave the source as it was); the copies get 0644 under umask 022 and 0600 under 077;
/// a blob whose bytes do not match its digest is refused and nothing is written.
#[test]
fn oci_to_oci_copies_verified_blobs_and_follows_the_umask() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = tmp.path().join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    // Noise, so that the layer is the largest blob (larger than config and manifest).
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let noise: Vec<u8> = (0..200_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(rootfs.join("f"), noise).unwrap();
    let src = tmp.path().join("src");
    whittle_with_umask(
        "022",
        &[
            "copy",
            &format!("dir:{}", rootfs.display()),
            &format!("oci:{}:1", src.display()),
        ],
    );
    let blobs = |layout: &Path| -> Vec<std::path::PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(layout.join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    };
    let layer = blobs(&src)
        .into_iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let name = layer.file_name().unwrap().to_owned();
    let from = format!("oci:{}:1", src.display());

    let original = std::fs::read(&layer).unwrap();
    for (umask, mode) in [("022", 0o644), ("077", 0o600)] {
        let copy = tmp.path().join(format!("copy-{umask}"));
        whittle_with_umask(
            umask,
            &["copy", &from, &format!("oci:{}:1", copy.display())],
        );
        let blob = copy.join("blobs/sha256").join(&name);
        let (a, b) = (
            std::fs::metadata(&layer).unwrap(),
            std::fs::metadata(&blob).unwrap(),
        );
        assert_ne!(
            (a.dev(), a.ino()),
            (b.dev(), b.ino()),
            "hard-linked to the source"
        );
        assert_eq!(b.mode() & 0o777, mode, "umask {umask}");
        assert_eq!(std::fs::read(&blob).unwrap(), original);
        // In place, as a careless tool would: the source does not change.
        std::fs::write(&blob, b"changed").unwrap();
        assert_eq!(std::fs::read(&layer).unwrap(), original);
    }

    // Same size, other bytes: refused, and nothing written.
    let mut bytes = std::fs::read(&layer).unwrap();
    bytes[0] ^= 0xff;
    std::fs::remove_file(&layer).unwrap();
    std::fs::write(&layer, bytes).unwrap();
    let out = whittle_cmd()
        .args([
            "copy",
            &from,
            &format!("oci:{}:1", tmp.path().join("bad").display()),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is corrupt"), "{stderr}");
    assert!(!tmp.path().join("bad").exists());
}
