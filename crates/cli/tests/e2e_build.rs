//! End-to-end tests of `whittle build` (docs/BUILD.md): specs written here, built with
//! the debootstrap builder image (tests/fixtures/build-images.sh, $WHITTLE_BUILD_FIXTURES)
//! and the Debian nginx fixture; outputs are loaded into dockerd and run. Without docker
//! or root the tests print `SKIP: ...` and pass, unless `CI` is set.

#[allow(dead_code)]
mod common;

use std::fs;
use std::path::Path;

use common::docker_e2e::{
    docker_ok, fresh_tag as fresh, read_json, reference, serve_and_fetch, DockerCleanup,
};
use common::slim_e2e::{
    build_fixtures, docker_load, docker_run_offline, run_whittle, run_whittle_env, tempdir,
    unpack_single_layer, Run,
};

const GREETING: &str = "hello from a whittle build";

/// The fixtures, when they and user namespaces are available (else the test is
/// skipped, said why). Steps run in the sandbox, as root or as an ordinary user.
fn setup() -> Option<(&'static Path, &'static Path)> {
    let fx = build_fixtures()?;
    if let Err(e) = whittle_trace::check_supported() {
        common::docker_e2e::skip_or_panic(&e.to_string());
        return None;
    }
    Some(fx)
}

/// A source tree with hello.c (mode 0644, whatever the umask) in `dir/src`.
fn hello_tree(dir: &Path, greeting: &str) {
    fs::create_dir_all(dir.join("src")).unwrap();
    let c = dir.join("src/hello.c");
    fs::write(
        &c,
        format!("#include <stdio.h>\nint main(void) {{ puts(\"{greeting}\"); return 0; }}\n"),
    )
    .unwrap();
    fs::set_permissions(&c, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    fs::set_permissions(
        dir.join("src"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
}

fn hello_spec(builder: &Path) -> String {
    format!(
        r#"from = "scratch"
baseline = "static"

[[step]]
name = "compile"
image = "docker-archive:{}"
inputs = {{ "/src" = "src" }}
run = "musl-gcc -static -O2 -o /out/hello /src/hello.c"
outputs = ["/out/hello"]

[[layer]]
name = "app"
files = [{{ step = "compile", path = "/out/hello", to = "/usr/local/bin/hello" }}]
mode = "0755"

[config]
entrypoint = ["/usr/local/bin/hello"]
user = "nonroot"
"#,
        builder.join("builder.tar").display()
    )
}

fn build(spec: &Path, dst: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "build".to_string(),
        spec.to_string_lossy().into_owned(),
        dst.to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    run_whittle(&args)
}

/// Sizes of the layer blobs of the one image in an OCI layout.
fn oci_layer_sizes(layout: &Path) -> Vec<(String, u64)> {
    let index = read_json(&layout.join("index.json"));
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let manifest = read_json(&common::docker_e2e::blob_path(layout, &digest));
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["digest"].as_str().unwrap().to_string(),
                l["size"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_musl_hello_is_built_hermetically_onto_scratch() {
    let Some((_, fx)) = setup() else {
        return;
    };
    let dir = tempdir();
    hello_tree(dir.path(), GREETING);
    let spec = dir.path().join("hello.toml");
    fs::write(&spec, hello_spec(fx)).unwrap();
    let layout = dir.path().join("oci");
    let prov = dir.path().join("prov.json");
    let run = build(
        &spec,
        &reference("oci", &layout, Some("hello")),
        &["--provenance", prov.to_str().unwrap()],
    )
    .ok();
    let compressed: u64 = oci_layer_sizes(&layout).iter().map(|(_, s)| s).sum();
    assert!(
        compressed <= 100_000,
        "{compressed} bytes compressed; {}",
        run.describe()
    );
    // Provenance: the spec, the builder image and the source tree, each with a digest.
    let p = read_json(&prov);
    assert_eq!(p["predicateType"], "https://slsa.dev/provenance/v1");
    let deps = p["predicate"]["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .unwrap();
    for kind in ["spec", "image", "source"] {
        assert!(
            deps.iter().any(|d| d["annotations"]["kind"] == kind
                && d["digest"]["sha256"]
                    .as_str()
                    .is_some_and(|h| h.len() == 64)),
            "{kind} missing: {p}"
        );
    }
    assert_eq!(p["predicate"]["runDetails"]["metadata"]["hermetic"], true);
    // The same, as annotations of the manifest (no host paths: sources relative to the spec).
    let index = read_json(&layout.join("index.json"));
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let manifest = read_json(&common::docker_e2e::blob_path(&layout, &digest));
    let notes: Vec<String> = manifest["annotations"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert!(
        notes.iter().any(|n| n.starts_with("source src sha256:")),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("spec hello.toml sha256:")),
        "{notes:?}"
    );
    assert_eq!(
        manifest["annotations"]["dev.whittle.build.hermetic"],
        "true"
    );

    let archive = dir.path().join("hello.tar");
    let tag = "whittle-test/build-hello:latest";
    let mut cleanup = DockerCleanup::default();
    fresh(tag, &mut cleanup);
    build(
        &spec,
        &reference("docker-archive", &archive, Some(tag)),
        &[],
    )
    .ok();
    docker_load(&archive, tag);
    let (ok, stdout, stderr) = docker_run_offline(tag);
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(stdout.trim(), GREETING);
    let user = docker_ok(["image", "inspect", "-f", "{{.Config.User}}", tag]);
    assert_eq!(
        user, "65532:65532",
        "user = \"nonroot\" resolves in the generated passwd"
    );
}

#[test]
fn nginx_with_its_closure_on_scratch_serves_the_page() {
    let Some((nginx, _)) = setup() else {
        return;
    };
    let dir = tempdir();
    fs::create_dir(dir.path().join("html")).unwrap();
    fs::write(dir.path().join("html/index.html"), "built page\n").unwrap();
    let example = fs::read_to_string(
        common::docker_e2e::workspace_root().join("examples/nginx-scratch/nginx.toml"),
    )
    .unwrap();
    let spec_text = example.replace(
        "docker-archive:../../target/fixtures/nginx/nginx.tar",
        &format!("docker-archive:{}", nginx.join("nginx.tar").display()),
    );
    let spec = dir.path().join("nginx.toml");
    fs::write(&spec, spec_text).unwrap();
    let archive = dir.path().join("nginx.tar");
    let tag = "whittle-test/build-nginx:latest";
    let mut cleanup = DockerCleanup::default();
    fresh(tag, &mut cleanup);
    build(
        &spec,
        &reference("docker-archive", &archive, Some(tag)),
        &[],
    )
    .ok();
    docker_load(&archive, tag);
    let size: u64 = docker_ok(["image", "inspect", "-f", "{{.Size}}", tag])
        .parse()
        .unwrap();
    assert!(size <= 12_000_000, "{size} bytes uncompressed");
    let body = serve_and_fetch(tag, &mut cleanup).expect("nginx reachable");
    assert_eq!(body, "built page\n");
}

/// A step that tries to reach a listener on the host, at 127.0.0.1 and at the host's
/// own address; with `network = "host"` it may.
fn network_spec(builder: &Path, port: u16, host_ip: &str, network: &str) -> String {
    format!(
        r#"[[step]]
name = "probe"
image = "docker-archive:{}"
network = "{network}"
run = """
for a in 127.0.0.1 {host_ip}; do
  if bash -c "exec 3<>/dev/tcp/$a/{port}" 2>/dev/null; then echo "$a connected"; else echo "$a refused"; fi
done > /out/result
"""
outputs = ["/out/result"]

[[layer]]
name = "result"
files = [{{ step = "probe", path = "/out/result", to = "/result" }}]
mode = "0755"

[config]
entrypoint = ["/result"]
"#,
        builder.join("builder.tar").display()
    )
}

#[test]
fn steps_have_no_network_unless_the_spec_says_host() {
    let Some((_, fx)) = setup() else {
        return;
    };
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    // The host's own (non-loopback) address, if it has one.
    let host_ip = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("10.255.255.255:9").and_then(|_| s.local_addr()))
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|_| "127.0.0.1".into());
    let dir = tempdir();
    let mut results = Vec::new();
    for network in ["none", "host"] {
        let spec = dir.path().join(format!("{network}.toml"));
        fs::write(&spec, network_spec(fx, port, &host_ip, network)).unwrap();
        let out = dir.path().join(format!("{network}.tar"));
        let prov = dir.path().join(format!("{network}.json"));
        build(
            &spec,
            &reference("docker-archive", &out, Some("x:y")),
            &["--provenance", prov.to_str().unwrap()],
        )
        .ok();
        let root = dir.path().join(format!("{network}-root"));
        fs::create_dir(&root).unwrap();
        unpack_single_layer(&out, &root);
        results.push((
            fs::read_to_string(root.join("result")).unwrap(),
            read_json(&prov),
        ));
    }
    let (off, off_prov) = &results[0];
    assert_eq!(off.lines().count(), 2, "{off}");
    assert!(
        off.lines().all(|l| l.ends_with("refused")),
        "a step without network connected: {off}"
    );
    assert_eq!(
        off_prov["predicate"]["runDetails"]["metadata"]["hermetic"],
        true
    );
    let (on, on_prov) = &results[1];
    assert_eq!(on.lines().count(), 2, "{on}");
    assert!(
        on.lines().all(|l| l.ends_with("connected")),
        "network = \"host\" did not connect: {on}"
    );
    assert_eq!(
        on_prov["predicate"]["buildDefinition"]["externalParameters"]["hostNetworkSteps"],
        serde_json::json!(["probe"])
    );
    assert_eq!(
        on_prov["predicate"]["runDetails"]["metadata"]["hermetic"],
        false
    );
}

#[test]
fn the_same_spec_and_sources_give_the_same_digest_anywhere() {
    let Some((_, fx)) = setup() else {
        return;
    };
    let dir = tempdir();
    let mut digests = Vec::new();
    for (name, umask, tz) in [
        ("a/first", "022", "UTC"),
        ("b/other/place", "077", "Asia/Tokyo"),
    ] {
        let tree = dir.path().join(name);
        hello_tree(&tree, GREETING);
        let spec = tree.join("hello.toml");
        fs::write(&spec, hello_spec(fx)).unwrap();
        let out = tree.join("out");
        let whittle = env!("CARGO_BIN_EXE_whittle");
        let cmd = format!(
            "umask {umask}; exec {whittle} build {} {}",
            spec.display(),
            reference("oci", &out, Some("x"))
        );
        let o = std::process::Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .env("TZ", tz)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        digests.push(String::from_utf8_lossy(&o.stdout).trim().to_string());
    }
    assert_eq!(
        digests[0], digests[1],
        "two checkouts built to different digests"
    );
    // One byte of the source changed: a different image.
    let tree = dir.path().join("a/first");
    hello_tree(&tree, "hello from a whittle buile");
    let run = run_whittle_env(
        [
            "build",
            tree.join("hello.toml").to_str().unwrap(),
            &reference("oci", &tree.join("out2"), Some("x")),
        ],
        &[],
    )
    .ok();
    assert_ne!(run.stdout().trim(), digests[0]);
}

#[test]
fn identical_layer_blocks_give_identical_layers() {
    if build_fixtures().is_none() {
        return;
    }
    let dir = tempdir();
    let mut shared = Vec::new();
    let mut apps = Vec::new();
    for app in ["one", "two"] {
        let d = dir.path().join(app);
        fs::create_dir_all(d.join("common")).unwrap();
        fs::create_dir_all(d.join("app")).unwrap();
        fs::write(d.join("common/shared.conf"), "shared=1\n").unwrap();
        fs::write(d.join("app/run"), format!("#!/bin/sh\necho {app}\n")).unwrap();
        let spec = d.join("spec.toml");
        fs::write(
            &spec,
            r#"baseline = "static"
[[layer]]
name = "common"
files = [{ host = "common", to = "/etc/shared" }]
[[layer]]
name = "app"
files = [{ host = "app", to = "/app" }]
mode = "0755"
[config]
entrypoint = ["/app/run"]
"#,
        )
        .unwrap();
        let out = d.join("out");
        // A script whose interpreter the image lacks is an error before anything is written.
        let run = build(&spec, &reference("oci", &out, Some("x")), &[]);
        assert_eq!(run.code(), Some(1), "{}", run.describe());
        assert!(
            run.stderr().contains("/bin/sh, which is not in the image"),
            "{}",
            run.describe()
        );
        assert!(!out.exists());
        fs::write(d.join("app/run"), format!("payload {app}\n")).unwrap();
        build(&spec, &reference("oci", &out, Some("x")), &[]).ok();
        let layers = oci_layer_sizes(&out);
        assert_eq!(layers.len(), 3, "baseline, common, app");
        shared.push(layers[..2].to_vec());
        apps.push(layers[2].0.clone());
    }
    assert_eq!(
        shared[0], shared[1],
        "the baseline and common layers differ between the specs"
    );
    assert_ne!(apps[0], apps[1]);
}

#[test]
fn emit_context_builds_with_docker_build() {
    let Some((_, fx)) = setup() else {
        return;
    };
    let dir = tempdir();
    hello_tree(dir.path(), GREETING);
    let spec = dir.path().join("hello.toml");
    fs::write(&spec, hello_spec(fx)).unwrap();
    let ctx = dir.path().join("context");
    let run = run_whittle([
        "build",
        spec.to_str().unwrap(),
        "--emit-context",
        ctx.to_str().unwrap(),
    ])
    .ok();
    let dockerfile = fs::read_to_string(ctx.join("Dockerfile"))
        .unwrap_or_else(|e| panic!("{e}; {}", run.describe()));
    assert!(
        dockerfile.starts_with("FROM scratch\nADD rootfs.tar /\n"),
        "{dockerfile}"
    );
    let tag = "whittle-test/build-context:latest";
    let mut cleanup = DockerCleanup::default();
    cleanup.images.push(tag.into());
    docker_ok([
        "build",
        "--network",
        "none",
        "-q",
        "-t",
        tag,
        ctx.to_str().unwrap(),
    ]);
    let (ok, stdout, stderr) = docker_run_offline(tag);
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(stdout.trim(), GREETING);
}

#[test]
fn bad_specs_say_where_and_write_nothing() {
    let Some((_, fx)) = setup() else {
        return;
    };
    let dir = tempdir();
    hello_tree(dir.path(), GREETING);
    fs::write(dir.path().join("../outside.txt"), "x").ok();
    let builder = format!("docker-archive:{}", fx.join("builder.tar").display());
    let cases: Vec<(&str, String, Option<&str>, &str)> = vec![
        ("unknown key", "baseline = \"static\"\ncolour = \"blue\"\n".into(), Some(":2:1"), "colour"),
        ("wrong type", "[[layer]]\nname = \"a\"\nclosure = \"yes\"\n".into(), Some(":3:11"), "bool"),
        ("missing image", "[[layer]]\nname = \"a\"\nimage = \"docker-archive:/nonexistent/x.tar\"\npaths = [\"/x\"]\n".into(), None, "/nonexistent/x.tar"),
        ("escaping path", "[[layer]]\nname = \"a\"\nfiles = [{ host = \"../../etc\", to = \"/etc\" }]\n".into(), Some(":3:"), "outside"),
        (
            "failing step",
            format!("[[step]]\nname = \"boom\"\nimage = \"{builder}\"\nrun = \"echo it went wrong; exit 3\"\n[config]\nentrypoint = [\"/x\"]\n"),
            None,
            "exit code 3",
        ),
    ];
    fs::create_dir_all(dir.path().join("files")).unwrap();
    fs::write(dir.path().join("files/tool"), "plain data\n").unwrap();
    fs::set_permissions(
        dir.path().join("files/tool"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let layer = "[[layer]]\nname = \"a\"\nfiles = [{ host = \"files\", to = \"/opt\" }]\n";
    let mut cases = cases;
    cases.push((
        "entrypoint not executable",
        format!("{layer}[config]\nentrypoint = [\"/opt/tool\"]\n"),
        None,
        "/opt/tool is not executable",
    ));
    cases.push((
        "entrypoint missing",
        format!("{layer}[config]\nentrypoint = [\"/opt/nothing\"]\n"),
        None,
        "/opt/nothing is not a file in the image",
    ));
    cases.push((
        "user missing",
        format!(
            "{layer}mode = \"0755\"\n[config]\nentrypoint = [\"/opt/tool\"]\nuser = \"www-data\"\n"
        ),
        None,
        "no /etc/passwd",
    ));
    for (what, text, position, phrase) in cases {
        let spec = dir.path().join("spec.toml");
        fs::write(&spec, text).unwrap();
        let out = dir.path().join("out.tar");
        let run = build(&spec, &reference("docker-archive", &out, Some("x:y")), &[]);
        assert_eq!(run.code(), Some(1), "{what}: {}", run.describe());
        let err = run.stderr();
        if let Some(pos) = position {
            assert!(
                err.contains(&format!("spec.toml{pos}")),
                "{what}: no position {pos}: {err}"
            );
        }
        assert!(err.contains(phrase), "{what}: {err}");
        assert!(!out.exists(), "{what}: an output was written");
        if what == "failing step" {
            assert!(
                err.contains("it went wrong"),
                "the step's output is shown: {err}"
            );
        }
    }
}

#[test]
fn a_static_glibc_program_using_nss_is_warned_about() {
    if common::docker_e2e::find_tool("gcc").is_none()
        || common::docker_e2e::find_tool("musl-gcc").is_none()
    {
        common::docker_e2e::skip_or_panic("gcc and musl-gcc are needed to make static programs");
        return;
    }
    let dir = tempdir();
    fs::create_dir(dir.path().join("bin")).unwrap();
    let src = dir.path().join("who.c");
    fs::write(&src, "#include <pwd.h>\n#include <stdio.h>\nint main(void) { struct passwd *p = getpwnam(\"root\"); printf(\"%d\\n\", p ? (int)p->pw_uid : -1); return 0; }\n").unwrap();
    for (compiler, name) in [("gcc", "glibc"), ("musl-gcc", "musl")] {
        let out = std::process::Command::new(compiler)
            .args(["-static", "-O2", "-o"])
            .arg(dir.path().join("bin").join(name))
            .arg(&src)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{compiler}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let spec = dir.path().join("who.toml");
    fs::write(
        &spec,
        "baseline = \"static\"\n[[layer]]\nname = \"bin\"\nfiles = [{ host = \"bin\", to = \"/bin\" }]\n[config]\nentrypoint = [\"/bin/glibc\"]\n",
    )
    .unwrap();
    let run = build(
        &spec,
        &reference("oci", &dir.path().join("out"), Some("x")),
        &[],
    )
    .ok();
    let err = run.stderr();
    assert!(
        err.contains("/bin/glibc: statically linked with glibc and uses NSS"),
        "{}",
        run.describe()
    );
    assert!(
        !err.contains("/bin/musl:"),
        "musl has no NSS modules to load: {err}"
    );
}

#[test]
fn a_base_image_keeps_its_layers_and_config_under_the_new_ones() {
    let Some((_, _)) = setup() else {
        return;
    };
    let Some((_, trace)) = common::slim_e2e::trace_fixtures() else {
        return;
    };
    let dir = tempdir();
    fs::create_dir(dir.path().join("conf")).unwrap();
    fs::write(dir.path().join("conf/echo.conf"), "port=7000\n").unwrap();
    let base = trace.join("echo.tar");
    let spec = dir.path().join("spec.toml");
    fs::write(
        &spec,
        format!(
            "from = \"docker-archive:{}\"\n[[layer]]\nname = \"conf\"\nfiles = [{{ host = \"conf\", to = \"/etc/echo\" }}]\n[config]\nlabels = {{ \"purpose\" = \"test\" }}\n",
            base.display()
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let run = build(&spec, &reference("oci", &out, Some("x")), &[]).ok();
    let layers = oci_layer_sizes(&out);
    let index = read_json(&out.join("index.json"));
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let manifest = read_json(&common::docker_e2e::blob_path(&out, &digest));
    let config = read_json(&common::docker_e2e::blob_path(
        &out,
        manifest["config"]["digest"].as_str().unwrap(),
    ));
    let base_config = common::docker_e2e::docker_archive_image(&base);
    assert_eq!(
        layers.len(),
        base_config.diff_ids().len() + 1,
        "{}",
        run.describe()
    );
    // The base's entrypoint and exposed port stay; the spec's label is added.
    assert_eq!(config["config"]["Entrypoint"][0], "/bin/nc");
    assert!(
        config["config"]["ExposedPorts"]["7000/tcp"].is_object(),
        "{config}"
    );
    assert_eq!(config["config"]["Labels"]["purpose"], "test");
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    assert_eq!(diff_ids[0].as_str().unwrap(), base_config.diff_ids()[0]);
}

#[test]
fn a_dynamic_program_built_in_a_step_brings_its_closure() {
    let Some((_, fx)) = setup() else {
        return;
    };
    let dir = tempdir();
    hello_tree(dir.path(), GREETING);
    let spec = dir.path().join("dyn.toml");
    // musl-gcc without -static: the program needs /lib/ld-musl-x86_64.so.1 from the builder.
    let text = hello_spec(fx)
        .replace("musl-gcc -static -O2", "musl-gcc -O2")
        .replace("mode = \"0755\"", "mode = \"0755\"\nclosure = true");
    fs::write(&spec, text).unwrap();
    let archive = dir.path().join("dyn.tar");
    let tag = "whittle-test/build-dynamic:latest";
    let mut cleanup = DockerCleanup::default();
    fresh(tag, &mut cleanup);
    build(
        &spec,
        &reference("docker-archive", &archive, Some(tag)),
        &[],
    )
    .ok();
    docker_load(&archive, tag);
    let (ok, stdout, stderr) = docker_run_offline(tag);
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(stdout.trim(), GREETING);
    // Without closure the loader is missing: an error before anything is written.
    let text = fs::read_to_string(&spec)
        .unwrap()
        .replace("closure = true\n", "");
    fs::write(&spec, text).unwrap();
    let out = dir.path().join("none.tar");
    let run = build(&spec, &reference("docker-archive", &out, Some("x:y")), &[]);
    assert_eq!(run.code(), Some(1), "{}", run.describe());
    assert!(
        run.stderr()
            .contains("its loader /lib/ld-musl-x86_64.so.1 is not in the image"),
        "{}",
        run.describe()
    );
    assert!(!out.exists());
}

/// Every path under `dir` with its mode and content, to compare before and after.
fn tree_listing(dir: &Path) -> Vec<(std::path::PathBuf, u32, Vec<u8>)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let md = fs::symlink_metadata(&p).unwrap();
            let data = if md.is_file() {
                fs::read(&p).unwrap()
            } else {
                Vec::new()
            };
            out.push((p.clone(), md.permissions().mode(), data));
            if md.is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_builder_image_whose_links_lead_out_leaves_the_host_untouched() {
    if setup().is_none() {
        return;
    }
    let dir = tempdir();
    let host = dir.path().join("host");
    fs::create_dir_all(host.join("existing")).unwrap();
    fs::write(host.join("victim"), "precious").unwrap();
    let before = tree_listing(&host);
    // A builder image (a plain root directory) whose /in and /out are links to host paths.
    let builder = dir.path().join("builder");
    fs::create_dir_all(builder.join("bin")).unwrap();
    fs::copy("/bin/busybox", builder.join("bin/busybox")).unwrap();
    for applet in ["sh", "mkdir", "echo"] {
        std::os::unix::fs::symlink("busybox", builder.join("bin").join(applet)).unwrap();
    }
    std::os::unix::fs::symlink(&host, builder.join("in")).unwrap();
    std::os::unix::fs::symlink(host.join("existing"), builder.join("out")).unwrap();
    fs::write(dir.path().join("input.txt"), "from the spec").unwrap();
    let spec = dir.path().join("links.toml");
    fs::write(
        &spec,
        format!(
            r#"from = "scratch"

[[step]]
name = "s"
image = "dir:{}"
inputs = {{ "/in/victim" = "input.txt" }}
run = "mkdir -p /out/sub && echo made > /out/sub/made"
outputs = ["/out/sub/made"]

[[layer]]
name = "app"
files = [{{ step = "s", path = "/out/sub/made", to = "/made" }}]
mode = "0755"

[config]
cmd = ["/made"]
"#,
            builder.display()
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let r = build(&spec, &format!("oci:{}:x", out.display()), &[]);
    assert_eq!(r.code(), Some(0), "{}", r.describe());
    assert_eq!(
        tree_listing(&host),
        before,
        "the build touched the host directory"
    );
}

/// Regression (issue 15): the examples resolved their images against the working
/// directory and failed outside the repository root. Built as written, from elsewhere.
#[test]
fn the_examples_build_as_written_from_another_directory() {
    if setup().is_none() {
        return;
    }
    let repo = common::docker_e2e::workspace_root();
    let dir = tempdir();
    for (example, fixture) in [
        (
            "examples/hello-musl/hello.toml",
            "target/fixtures/build/builder.tar",
        ),
        (
            "examples/nginx-scratch/nginx.toml",
            "target/fixtures/nginx/nginx.tar",
        ),
    ] {
        // The examples name the fixtures where scripts/test.sh makes them.
        if !repo.join(fixture).is_file() {
            common::docker_e2e::skip_or_panic(&format!(
                "{fixture} is not where the example names it (fixtures built elsewhere)"
            ));
            return;
        }
        let out = dir.path().join(example.replace('/', "-"));
        let run = std::process::Command::new(env!("CARGO_BIN_EXE_whittle"))
            .current_dir(dir.path())
            .arg("build")
            .arg(repo.join(example))
            .arg(format!("oci:{}:x", out.display()))
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{example}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
}
