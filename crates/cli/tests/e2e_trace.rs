//! End-to-end tests of run-time tracing (docs/CLI.md, "slim --http-probe ...", "verify"):
//! whittle runs an image's program in its own sandbox under ptrace+seccomp, drives it
//! with probes and keeps every file it touched; outputs are loaded into dockerd and run.
//! Images: the Debian nginx fixture ($WHITTLE_FIXTURES) and tests/fixtures/trace-images.sh
//! ($WHITTLE_TRACE_FIXTURES): a program that dlopens libz without linking it, a busybox
//! nc echo server, a batch script, a forking script, a script that ignores SIGTERM.
//! Without docker or root the tests print `SKIP: ...` and pass, unless `CI` is set.

#[allow(dead_code)]
mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::docker_e2e::{
    docker, docker_ok, fresh_tag as fresh, reference, serve_and_fetch, serve_and_fetch_on,
    sha256_file, skip_or_panic, DockerCleanup,
};
use common::slim_e2e::{
    app_fixtures, docker_load, docker_run_offline, read_report, run_whittle, tempdir,
    trace_fixtures, unpack_single_layer, Run, PAGE,
};

const MB: u64 = 1_000_000;

/// The fixtures, when they and user namespaces are available (else the test is
/// skipped, said why). Root is not needed: CI runs these as root and as an
/// ordinary user with a subordinate id range (scripts/test-rootless.sh).
fn setup() -> Option<(&'static Path, &'static Path)> {
    let fx = trace_fixtures()?;
    if let Err(e) = whittle_trace::check_supported() {
        skip_or_panic(&e.to_string());
        return None;
    }
    Some(fx)
}

fn archive(dir: &Path, name: &str) -> String {
    reference("docker-archive", &dir.join(format!("{name}.tar")), None)
}

/// `whittle slim SRC docker-archive:OUT:TAG ARGS...`, which must succeed.
fn slim(src: &str, out: &Path, tag: &str, args: &[&str]) -> Run {
    let mut all = vec![
        "slim".to_string(),
        src.to_string(),
        reference("docker-archive", out, Some(tag)),
    ];
    all.extend(args.iter().map(|s| s.to_string()));
    let run = run_whittle(&all).ok();
    assert!(
        out.is_file(),
        "{} not written; {}",
        out.display(),
        run.describe()
    );
    run
}

/// Every regular file of a single-layer output, by path, with its sha256.
fn output_files(out: &Path, dir: &Path) -> BTreeMap<String, String> {
    let root = dir.join("unpacked");
    std::fs::create_dir_all(&root).unwrap();
    unpack_single_layer(out, &root);
    let mut files = BTreeMap::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                let rel = e
                    .path()
                    .strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                files.insert(rel, sha256_file(&e.path()));
            }
        }
    }
    files
}

fn total_bytes(out: &Path, dir: &Path) -> u64 {
    let root = dir.join("unpacked");
    let mut total = 0;
    let mut stack = vec![root];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else if m.is_file() {
                total += m.len();
            }
        }
    }
    let _ = out;
    total
}

/// Processes in one of whittle's sandboxes (whittle sets HOSTNAME=whittle in their
/// environment; /proc/PID/root shows "/" from outside a pivoted root) whose environment
/// holds `marker` (each test passes its own with `--env`, as tests run concurrently).
fn sandboxed_processes(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let has = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
        if has(&environ, b"HOSTNAME=whittle\0") && has(&environ, marker.as_bytes()) {
            found.push(format!(
                "{} {}",
                entry.file_name().to_string_lossy(),
                String::from_utf8_lossy(&cmdline)
            ));
        }
    }
    found
}

/// A `--env` marker unique to this test process and `test`.
fn marker(test: &str) -> String {
    format!("WHITTLE_TEST_MARK={test}-{}", std::process::id())
}

/// Nothing of a whittle sandbox with `marker` is left: no process, no mount of a
/// whittle temp dir, no temp dir in `tmp`.
fn assert_nothing_left(tmp: &Path, marker: &str) {
    let left = sandboxed_processes(marker);
    assert!(
        left.is_empty(),
        "processes still run in a sandbox: {left:?}"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(".whittle-"),
        "a sandbox mount is left:\n{mounts}"
    );
    let left: Vec<String> = std::fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".whittle-"))
        .collect();
    assert!(
        left.is_empty(),
        "temporary files left in {}: {left:?}",
        tmp.display()
    );
}

#[test]
fn nginx_traced_with_an_http_probe_serves_the_page_without_includes() {
    let Some((nginx, _)) = setup() else {
        return;
    };
    let dir = tempdir();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let out = dir.path().join("out.tar");
    let report = dir.path().join("report.json");
    let tag = "whittle-test/trace-nginx:latest";
    let mut cleanup = DockerCleanup::default();
    fresh(tag, &mut cleanup);
    let mut args = vec![
        "slim".to_string(),
        reference("docker-archive", &nginx.join("nginx.tar"), None),
    ];
    args.push(reference("docker-archive", &out, Some(tag)));
    let mark = marker("nginx");
    args.extend(
        [
            "--env",
            &mark,
            "--http-probe",
            "80/",
            "--verify",
            "--report",
        ]
        .map(String::from),
    );
    args.push(report.to_string_lossy().into_owned());
    let run = common::slim_e2e::run_whittle_env(&args, &[("TMPDIR", tmp.to_str().unwrap())]).ok();
    let err = run.stderr();
    assert!(
        err.contains("probe GET :80/: HTTP 200"),
        "{}",
        run.describe()
    );
    assert!(
        err.contains("verify: the slimmed image behaves like the original"),
        "{}",
        run.describe()
    );
    assert_nothing_left(&tmp, &mark);

    // Every file comes from the original image, unchanged by the run (logs, pid file).
    let files = output_files(&out, dir.path());
    let original = dir.path().join("original");
    std::fs::create_dir(&original).unwrap();
    tar::Archive::new(std::fs::File::open(nginx.join("export.tar")).unwrap())
        .unpack(&original)
        .unwrap();
    // (docker export writes its own resolv.conf, hosts and hostname into export.tar.)
    const DOCKER_MANAGED: [&str; 3] = ["etc/resolv.conf", "etc/hosts", "etc/hostname"];
    for (path, digest) in files
        .iter()
        .filter(|(p, _)| !DOCKER_MANAGED.contains(&p.as_str()))
    {
        let theirs = original.join(path);
        assert!(theirs.is_file(), "{path} is not in the original image");
        assert_eq!(
            &sha256_file(&theirs),
            digest,
            "{path} differs from the original image"
        );
    }
    assert!(
        files.contains_key("var/log/nginx/access.log"),
        "nginx opened its log: it is kept, as the image has it"
    );
    assert!(
        !files.contains_key("run/nginx.pid"),
        "the run's pid file leaked into the output"
    );
    let bytes = total_bytes(&out, dir.path());
    assert!(
        bytes <= 12 * MB,
        "{bytes} bytes uncompressed, more than 12 MB"
    );

    // The report says what the trace found: nginx's config and its page.
    let kept = read_report(&report);
    for path in [
        "/etc/nginx/nginx.conf",
        "/var/www/html/index.html",
        "/etc/nginx/mime.types",
    ] {
        let found = kept.get(path).unwrap_or_else(|| panic!("{path} not kept"));
        assert!(
            found.iter().any(|f| f == "trace"),
            "{path} found by {found:?}"
        );
    }
    assert_eq!(kept["/usr/sbin/nginx"], ["static", "trace"]);

    docker_load(&out, tag);
    let body = serve_and_fetch(tag, &mut cleanup).expect("nginx reachable");
    assert!(body.contains(PAGE), "the slimmed nginx served {body:?}");
}

#[test]
fn dlopen_is_missed_statically_and_found_by_the_trace() {
    let Some((_, fx)) = setup() else {
        return;
    };
    let dir = tempdir();
    let src = archive(fx, "dlopen");
    let expected = std::fs::read_to_string(fx.join("expected/dlopen.txt")).unwrap();
    let mut cleanup = DockerCleanup::default();

    // Static analysis alone cannot see dlopen("libz.so.1").
    let static_out = dir.path().join("static.tar");
    fresh("whittle-test/trace-dlopen-static:latest", &mut cleanup);
    slim(
        &src,
        &static_out,
        "whittle-test/trace-dlopen-static:latest",
        &[],
    );
    docker_load(&static_out, "whittle-test/trace-dlopen-static:latest");
    let (ok, stdout, _) = docker_run_offline("whittle-test/trace-dlopen-static:latest");
    assert!(
        !ok && stdout.contains("dlopen failed"),
        "static slim unexpectedly works: {stdout}"
    );
    let verify = run_whittle([
        "verify",
        &src,
        &reference("docker-archive", &static_out, None),
        "--duration",
        "5",
    ]);
    assert_eq!(
        verify.code(),
        Some(1),
        "verify must fail; {}",
        verify.describe()
    );
    let err = verify.stderr();
    assert!(
        err.contains("exit code 0 in the original, exit code 2"),
        "{}",
        verify.describe()
    );
    assert!(
        err.contains("libz.so.1"),
        "verify does not name the missing library; {}",
        verify.describe()
    );

    // Traced: kept, runs, verifies.
    let traced_out = dir.path().join("traced.tar");
    let report = dir.path().join("report.json");
    fresh("whittle-test/trace-dlopen:latest", &mut cleanup);
    slim(
        &src,
        &traced_out,
        "whittle-test/trace-dlopen:latest",
        &["--trace", "--report", report.to_str().unwrap()],
    );
    let kept = read_report(&report);
    assert!(
        kept.iter()
            .any(|(p, by)| p.contains("libz.so.1") && by.iter().any(|b| b == "trace")),
        "libz not kept by the trace: {kept:?}"
    );
    docker_load(&traced_out, "whittle-test/trace-dlopen:latest");
    let (ok, stdout, stderr) = docker_run_offline("whittle-test/trace-dlopen:latest");
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(stdout, expected);
    let verify = run_whittle([
        "verify",
        &src,
        &reference("docker-archive", &traced_out, None),
    ])
    .ok();
    assert!(
        verify.stderr().contains("behaves like"),
        "{}",
        verify.describe()
    );
}

#[test]
fn an_echo_server_is_driven_by_tcp_and_exec_probes() {
    let Some((_, fx)) = setup() else {
        return;
    };
    let dir = tempdir();
    let src = archive(fx, "echo");
    let out = dir.path().join("out.tar");
    let report = dir.path().join("report.json");
    let tag = "whittle-test/trace-echo-slim:latest";
    let mut cleanup = DockerCleanup::default();
    fresh(tag, &mut cleanup);
    let run = slim(
        &src,
        &out,
        tag,
        &[
            "--tcp-probe",
            "7000:hello",
            "--exec-probe",
            "sh -c 'cat /proc/self/status >/dev/null'",
            "--report",
            report.to_str().unwrap(),
        ],
    );
    assert!(
        run.stderr().contains("replied \"hello\""),
        "{}",
        run.describe()
    );
    assert!(
        run.stderr().contains("probe exec sh -c"),
        "{}",
        run.describe()
    );
    // The exec probe ran `sh` through its PATH, traced like the server.
    let kept = read_report(&report);
    assert!(
        kept.get("/bin/sh")
            .is_some_and(|f| f.iter().any(|b| b == "trace")),
        "{kept:?}"
    );

    // The slimmed server echoes in docker (a client from the original image in its network).
    docker_load(&out, tag);
    let cid = docker_ok(["run", "-d", "--network", "none", tag]);
    cleanup.containers.push(cid.clone());
    let client_image = "whittle-test/trace-echo:latest";
    docker_load(&fx.join("echo.tar"), client_image);
    let deadline = Instant::now() + Duration::from_secs(20);
    let reply = loop {
        let r = docker([
            "run",
            "--rm",
            "--network",
            &format!("container:{cid}"),
            "--entrypoint",
            "sh",
            client_image,
            "-c",
            "echo again | nc 127.0.0.1 7000",
        ]);
        let text = String::from_utf8_lossy(&r.stdout).trim().to_string();
        if !text.is_empty() || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(reply, "again");
}

#[test]
fn a_batch_job_and_a_forking_tree_are_traced_to_the_end() {
    let Some((_, fx)) = setup() else {
        return;
    };
    let dir = tempdir();
    let mut cleanup = DockerCleanup::default();
    for (name, needed, unused) in [
        (
            "batch",
            vec!["/app/data/input.txt", "/etc/batch.conf"],
            Some("/app/data/unused.txt"),
        ),
        ("forks", vec!["/app/early.txt", "/app/late.txt"], None),
    ] {
        let out = dir.path().join(format!("{name}.tar"));
        let report = dir.path().join(format!("{name}.json"));
        let tag = format!("whittle-test/trace-{name}-slim:latest");
        fresh(&tag, &mut cleanup);
        let started = Instant::now();
        let run = slim(
            &archive(fx, name),
            &out,
            &tag,
            &["--duration", "20", "--report", report.to_str().unwrap()],
        );
        // Both end by themselves long before --duration.
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{name}: {}",
            run.describe()
        );
        assert!(
            run.stderr().contains("exit code 0 by itself"),
            "{name}: {}",
            run.describe()
        );
        let kept = read_report(&report);
        for p in &needed {
            assert!(
                kept.get(*p).is_some_and(|f| f.iter().any(|b| b == "trace")),
                "{name}: {p} not traced: {kept:?}"
            );
        }
        if let Some(u) = unused {
            assert!(!kept.contains_key(u), "{name}: {u} was never read but kept");
        }
        docker_load(&out, &tag);
        let (ok, stdout, stderr) = docker_run_offline(&tag);
        let expected = std::fs::read_to_string(fx.join(format!("expected/{name}.txt"))).unwrap();
        assert!(ok, "{name}: {stdout}{stderr}");
        assert_eq!(stdout, expected, "{name}");
    }
}

#[test]
fn a_program_ignoring_sigterm_is_killed_after_the_grace_period() {
    let Some((_, fx)) = setup() else {
        return;
    };
    let dir = tempdir();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let out = dir.path().join("out.tar");
    let report = dir.path().join("report.json");
    let started = Instant::now();
    let mark = marker("sigterm");
    let args = [
        "slim".to_string(),
        archive(fx, "stubborn"),
        reference(
            "docker-archive",
            &out,
            Some("whittle-test/trace-stubborn-slim:latest"),
        ),
        "--env".into(),
        mark.clone(),
        "--duration".into(),
        "1".into(),
        "--stop-timeout".into(),
        "60".into(),
        "--report".into(),
        report.to_string_lossy().into_owned(),
    ];
    let run = common::slim_e2e::run_whittle_env(&args, &[("TMPDIR", tmp.to_str().unwrap())]).ok();
    let elapsed = started.elapsed();
    // Its pid 1 ignores SIGTERM (no handler): whittle sees that and does not wait 60 s.
    assert!(
        run.stderr().contains("has no handler for the stop signal"),
        "{}",
        run.describe()
    );
    assert!(
        elapsed < Duration::from_secs(30),
        "waited for the stop timeout: {elapsed:?}"
    );
    assert!(read_report(&report).contains_key("/app/stubborn.txt"));
    assert_nothing_left(&tmp, &mark);
}

#[test]
fn a_probe_that_fails_on_the_original_fails_the_command_and_writes_nothing() {
    let Some((_, fx)) = setup() else {
        return;
    };
    let dir = tempdir();
    let out = dir.path().join("out.tar");
    // The stubborn script listens on no port: the probe cannot pass.
    let src = archive(fx, "stubborn");
    let probe = ["--http-probe", "8080/", "--ready-timeout", "1"];
    let mut args = vec!["slim", &src];
    let dst = reference("docker-archive", &out, Some("x:y"));
    args.push(&dst);
    args.extend(probe);
    let r = run_whittle(&args);
    assert_eq!(r.code(), Some(1), "{}", r.describe());
    assert!(
        r.stderr().contains("probe(s) failed on the original"),
        "{}",
        r.describe()
    );
    assert!(!out.exists(), "an output was written after a failed probe");
    // verify of two images that both fail the probe: not "behaves like the original".
    let mut v = vec!["verify", &src, &src];
    v.extend(probe);
    let r = run_whittle(&v);
    assert_eq!(r.code(), Some(1), "{}", r.describe());
    assert!(!r.stderr().contains("behaves like"), "{}", r.describe());
    // --allow-probe-failure writes it anyway, saying the probe failed.
    args.push("--allow-probe-failure");
    let r = run_whittle(&args);
    assert_eq!(r.code(), Some(0), "{}", r.describe());
    assert!(r.stderr().contains("FAILED"), "{}", r.describe());
    assert!(out.exists());
}

#[test]
fn verify_catches_a_broken_slim() {
    let Some((nginx, _)) = setup() else {
        return;
    };
    let dir = tempdir();
    let src = reference("docker-archive", &nginx.join("nginx.tar"), None);
    let out = dir.path().join("broken.tar");
    slim(
        &src,
        &out,
        "whittle-test/trace-broken:latest",
        &["--http-probe", "80/", "--exclude", "/etc/passwd"],
    );
    let verify = run_whittle([
        "verify",
        &src,
        &reference("docker-archive", &out, None),
        "--http-probe",
        "80/",
    ]);
    assert_eq!(verify.code(), Some(1), "{}", verify.describe());
    let err = verify.stderr();
    assert!(err.contains("probe GET :80/"), "{}", verify.describe());
    assert!(
        err.contains("/etc/passwd"),
        "the missing file is not named; {}",
        verify.describe()
    );
    // --verify refuses to write such an output.
    let refused = dir.path().join("refused.tar");
    let r = run_whittle([
        "slim",
        &src,
        &reference("docker-archive", &refused, Some("x:y")),
        "--http-probe",
        "80/",
        "--exclude",
        "/etc/passwd",
        "--verify",
    ]);
    assert_eq!(r.code(), Some(1), "{}", r.describe());
    assert!(!refused.exists(), "a failed --verify wrote its output");
}

#[test]
fn ctrl_c_during_a_run_leaves_nothing_behind() {
    let Some((_, fx)) = setup() else {
        return;
    };
    let dir = tempdir();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let out = dir.path().join("out.tar");
    let mark = marker("ctrl-c");
    let mut child = common::docker_e2e::whittle()
        .args([
            "slim",
            &archive(fx, "stubborn"),
            &reference("docker-archive", &out, Some("x:y")),
            "--env",
            &mark,
            "--duration",
            "60",
        ])
        .env("TMPDIR", &tmp)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Wait until the program runs in its sandbox.
    let deadline = Instant::now() + Duration::from_secs(60);
    let sandboxed = || !sandboxed_processes(&mark).is_empty();
    while !sandboxed() {
        assert!(Instant::now() < deadline, "the sandbox never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: kill has no memory effects.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(!out.exists(), "an interrupted slim wrote its output");
    // The kernel tears the pid namespace down asynchronously: give it a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    while sandboxed() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!sandboxed(), "a sandboxed process outlived whittle");
    assert_nothing_left(&tmp, &mark);
    let prefix = format!(".whittle-{pid}-");
    for entry in std::fs::read_dir("/dev/shm").unwrap().flatten() {
        assert!(
            !entry.file_name().to_string_lossy().starts_with(&prefix),
            "/dev/shm/{:?} left",
            entry.file_name()
        );
    }
}

#[test]
fn a_probe_script_runs_on_the_host_inside_the_programs_network() {
    let Some((_, fx)) = setup() else {
        return;
    };
    let dir = tempdir();
    let script = dir.path().join("probe.sh");
    let seen = dir.path().join("seen.txt");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\nset -e\necho \"$WHITTLE_APP_ADDR $WHITTLE_APP_PORTS\" > {seen}\nreply=$(echo scripted | busybox nc \"$WHITTLE_APP_HOST\" \"$WHITTLE_APP_PORT\")\necho \"$reply\" >> {seen}\n[ \"$reply\" = scripted ]\n",
            seen = seen.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = dir.path().join("out.tar");
    let run = slim(
        &archive(fx, "echo"),
        &out,
        "whittle-test/trace-echo-script:latest",
        // (busybox nc as pid 1 ignores SIGTERM: do not wait the default 10 s for it.)
        &[
            "--probe-script",
            script.to_str().unwrap(),
            "--stop-timeout",
            "1",
        ],
    );
    assert!(run.stderr().contains("probe script"), "{}", run.describe());
    assert!(run.stderr().contains("exit code 0"), "{}", run.describe());
    let seen = fs::read_to_string(&seen).unwrap();
    assert_eq!(seen, "127.0.0.1:7000 7000\nscripted\n");
}

/// What a program sees of its environment, in lines that two runtimes can compare.
const REPORT: &str = r#"#!/bin/sh
echo "ids uid=$(id -u) gid=$(id -g) groups=$(id -G)"
grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):' /proc/self/status | tr -s '\t ' ' '
[ "$(hostname)" = "$(cat /etc/hostname)" ] && echo "hostname matches /etc/hostname"
for f in /etc/hosts /etc/hostname /etc/resolv.conf; do [ -f "$f" ] && echo "file $f"; done
grep -E '^(127\.0\.0\.1|::1)[[:space:]]+localhost' /etc/hosts | awk '{print "hosts", $1, $2}'
grep -c nameserver /etc/resolv.conf | sed 's/^/resolv nameservers /'
for d in /tmp /run /run/app /dev /dev/shm /dev/pts /dev/mqueue /proc /sys; do
  stat -c "mode %n %a %u:%g" "$d" 2>/dev/null || echo "mode $d missing"
done
cat /run/app/state
echo "dev $(ls -A /dev | sort | tr '\n' ' ')"
echo "ulimit nofile $(ulimit -n) stack $(ulimit -s) core $(ulimit -c) nproc $(ulimit -u)"
echo "cwd $(pwd)"
env | grep -v -E '^(HOSTNAME|PWD|SHLVL|_)=' | sort | sed 's/^/env /'
awk '{print "mount", $5}' /proc/self/mountinfo | sort
(echo x > /proc/sys/kernel/domainname) 2>/dev/null && echo "proc/sys writable"
exit 0
"#;

/// A report line as compared, `None` for the lines whittle's sandbox is meant to
/// differ in from `docker run` (docs/SECURITY.md, "Intended differences"): the six /dev
/// nodes are bind mounts of the host's (a user namespace cannot make nodes), there is no
/// cgroup filesystem under /sys, the pids limit is an RLIMIT_NPROC, and the kernel's own
/// /proc, /sys and /dev/mqueue belong to the host's root, which the user namespace
/// shows as nobody (their modes are compared, not their owners).
fn compared(line: &str) -> Option<String> {
    let dev_bind = ["null", "zero", "full", "random", "urandom", "tty"]
        .iter()
        .any(|n| line == format!("mount /dev/{n}"));
    if dev_bind || line.starts_with("mount /sys/fs/cgroup") {
        return None;
    }
    if let Some(rest) = line.strip_prefix("ulimit ") {
        return Some(format!(
            "ulimit {}",
            rest.split(" nproc").next().unwrap_or(rest)
        ));
    }
    for kernel_owned in ["mode /proc ", "mode /sys ", "mode /dev/mqueue "] {
        if line.starts_with(kernel_owned) {
            return Some(line.rsplit_once(' ').map_or(line, |(l, _)| l).to_string());
        }
    }
    Some(line.to_string())
}

#[test]
fn the_sandbox_looks_like_docker_run_to_the_program() {
    if setup().is_none() {
        return;
    }
    let dir = tempdir();
    let root = dir.path().join("root");
    for d in ["bin", "etc", "tmp", "run/app", "srv"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    // The image's own /run content and modes must stay visible (no tmpfs over it).
    fs::set_permissions(root.join("run/app"), fs::Permissions::from_mode(0o2775)).unwrap();
    fs::write(root.join("run/app/state"), "state of the image\n").unwrap();
    fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for applet in [
        "sh", "id", "grep", "hostname", "cat", "stat", "ls", "sort", "tr", "env", "awk", "sed",
        "pwd",
    ] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/srv:/bin/sh\n",
    )
    .unwrap();
    fs::write(
        root.join("etc/group"),
        "root:x:0:\napp:x:1000:\nextra:x:2000:app\n",
    )
    .unwrap();
    fs::write(root.join("report.sh"), REPORT).unwrap();
    let mut cleanup = DockerCleanup::default();
    for (user, workdir) in [("", "/"), ("app", "/srv")] {
        let tag = format!("whittle-test/fidelity{user}:latest");
        fresh(&tag, &mut cleanup);
        let image = dir.path().join(format!("fidelity{user}.tar"));
        let copy = run_whittle([
            "copy".to_string(),
            format!("dir:{}", root.display()),
            reference("docker-archive", &image, Some(&tag)),
            "--entrypoint".into(),
            r#"["/bin/sh","/report.sh"]"#.into(),
            "--user".into(),
            user.into(),
            "--workdir".into(),
            workdir.into(),
            "--env".into(),
            "GREETING=hello there".into(),
        ]);
        assert_eq!(copy.code(), Some(0), "{}", copy.describe());
        docker_load(&image, &tag);
        let (ok, docker_says, err) = docker_run_offline(&tag);
        assert!(ok, "{docker_says}{err}");
        let logs = dir.path().join(format!("logs{user}"));
        let out = dir.path().join(format!("out{user}"));
        let slim = run_whittle([
            "slim".to_string(),
            reference("docker-archive", &image, None),
            format!("oci:{}:x", out.display()),
            "--trace".into(),
            "--keep-logs".into(),
            logs.to_string_lossy().into_owned(),
        ]);
        assert_eq!(slim.code(), Some(0), "{}", slim.describe());
        let whittle_says = fs::read_to_string(logs.join("original-program.log")).unwrap();
        let keep = |text: &str| -> Vec<String> { text.lines().filter_map(compared).collect() };
        assert_eq!(
            keep(&whittle_says),
            keep(&docker_says),
            "user {user:?}: the sandbox differs from docker run\n--- whittle:\n{whittle_says}\n--- docker:\n{docker_says}"
        );
        // The report itself saw something: guard against two empty outputs.
        assert!(
            docker_says.contains("CapBnd: 00000000a80425fb"),
            "{docker_says}"
        );
        assert!(docker_says.contains("state of the image"), "{docker_says}");
    }
}

/// A TCP port free on the host now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn postgresql_with_debians_cluster_slims_and_answers_sql_in_docker() {
    let (Some(_), Some(apps)) = (setup(), app_fixtures()) else {
        return;
    };
    let dir = tempdir();
    // A real SQL session over TCP with password authentication, against `localhost`
    // resolved through /etc/hosts (the sandbox must provide one, as Docker does).
    let script = dir.path().join("sql.sh");
    fs::write(
        &script,
        "#!/bin/sh\nPGPASSWORD=secret exec psql -h localhost -p \"${PGPORT:-5432}\" -U postgres \\\n  -d postgres -tAc 'select 41+1'\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let tag = "whittle-test/postgres-slim:latest";
    let mut cleanup = DockerCleanup::default();
    fresh(tag, &mut cleanup);
    let out = dir.path().join("postgres-slim.tar");
    let run = slim(
        &reference("docker-archive", &apps.join("postgres.tar"), None),
        &out,
        tag,
        &["--probe-script", script.to_str().unwrap()],
    );
    assert!(
        run.stderr().contains("probe script") && run.stderr().contains("(ok)"),
        "{}",
        run.describe()
    );
    docker_load(&out, tag);
    // The output on the host's network, on a port of its own, answers the same session.
    let port = free_port().to_string();
    let cid = docker_ok([
        "run",
        "-d",
        "--network",
        "host",
        tag,
        "/usr/lib/postgresql/15/bin/postgres",
        "-D",
        "/var/lib/postgresql/15/main",
        "-c",
        "config_file=/etc/postgresql/15/main/postgresql.conf",
        "-c",
        &format!("port={port}"),
    ]);
    cleanup.containers.push(cid.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    let answer = loop {
        let out = std::process::Command::new(&script)
            .env("PGPORT", &port)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let logs = docker(["logs", &cid]);
    assert_eq!(
        answer,
        "42",
        "the slimmed PostgreSQL does not answer: {}",
        String::from_utf8_lossy(&logs.stderr)
    );
}

#[test]
fn a_python_server_as_pid_1_is_stopped_without_the_stop_timeout() {
    let (Some(_), Some(apps)) = (setup(), app_fixtures()) else {
        return;
    };
    let dir = tempdir();
    let out = dir.path().join("python-slim.tar");
    let started = Instant::now();
    let run = slim(
        &reference("docker-archive", &apps.join("python.tar"), None),
        &out,
        "whittle-test/python-slim:latest",
        &["--http-probe", "8000/", "--stop-timeout", "60"],
    );
    // Python installs no SIGTERM handler; as pid 1 it ignores the signal. The log says
    // whittle saw that and did not wait the 60 s.
    assert!(
        run.stderr().contains("has no handler for the stop signal"),
        "{}",
        run.describe()
    );
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn redis_with_an_exec_probe_passes_every_cold_run() {
    let (Some(_), Some(apps)) = (setup(), app_fixtures()) else {
        return;
    };
    let dir = tempdir();
    let src = reference("docker-archive", &apps.join("redis.tar"), None);
    // `redis-cli ping` must not race the server: exec probes wait for the exposed port.
    for i in 0..10 {
        let out = dir.path().join(format!("redis-{i}"));
        let r = run_whittle([
            "slim".to_string(),
            src.clone(),
            format!("oci:{}:x", out.display()),
            "--exec-probe".into(),
            "redis-cli ping".into(),
        ]);
        assert_eq!(r.code(), Some(0), "cold run {i}: {}", r.describe());
        assert!(
            r.stderr()
                .contains("probe exec redis-cli ping: exit code 0"),
            "cold run {i}: {}",
            r.describe()
        );
        fs::remove_dir_all(&out).unwrap();
    }
}

/// A web application of tests/fixtures/app-images.sh slimmed with an HTTP probe on its
/// port: the probe's answer is in the log, and the output serves the same page in Docker.
/// Returns the slim's run (None: skipped, already said why).
fn web_app_slims_and_serves_in_docker(name: &str, port: u16, extra: &[&str]) -> Option<Run> {
    let (Some(_), Some(apps)) = (setup(), app_fixtures()) else {
        return None;
    };
    let dir = tempdir();
    let out = dir.path().join(format!("{name}-slim.tar"));
    let tag = format!("whittle-test/{name}-slim:latest");
    let mut cleanup = DockerCleanup::default();
    fresh(&tag, &mut cleanup);
    let run = slim(
        &reference("docker-archive", &apps.join(format!("{name}.tar")), None),
        &out,
        &tag,
        &[&["--http-probe", &format!("{port}/"), "--verify"], extra].concat(),
    );
    let want = format!("served by {name}");
    assert!(
        run.stderr()
            .contains(&format!("probe GET :{port}/: HTTP 200")),
        "{}",
        run.describe()
    );
    let before = fs::metadata(apps.join(format!("{name}.tar")))
        .unwrap()
        .len();
    let after = fs::metadata(&out).unwrap().len();
    assert!(
        after * 2 < before,
        "{name}: slimmed to {after} bytes from {before}: {}",
        run.describe()
    );
    docker_load(&out, &tag);
    let body = serve_and_fetch_on(&tag, port, &mut cleanup)?;
    assert_eq!(
        body.trim(),
        want,
        "{name}: the slimmed image answers otherwise"
    );
    Some(run)
}

/// Node.js's SIGTERM handler resets itself and re-raises the signal, which pid 1 of a
/// pid namespace cannot die of: the run must not wait the stop timeout for it.
#[test]
fn a_node_express_app_slims_and_serves_in_docker() {
    let Some(run) = web_app_slims_and_serves_in_docker("node", 3000, &["--stop-timeout", "60"])
    else {
        return;
    };
    assert!(
        run.stderr().contains("dropped it on receiving it"),
        "{}",
        run.describe()
    );
}

/// Flask runs as the non-root user app, and its page is readable only through the
/// supplementary group that /etc/group gives app: a run that dropped it would fail.
#[test]
fn a_flask_app_as_a_non_root_user_slims_and_serves_in_docker() {
    web_app_slims_and_serves_in_docker("flask", 5000, &[]);
}

#[test]
fn a_sinatra_app_slims_and_serves_in_docker() {
    web_app_slims_and_serves_in_docker("sinatra", 4567, &[]);
}

/// Where Debian's golang-github-opencontainers-specs-dev puts the runtime spec's schema.
const OCI_SCHEMA_DIR: &str = "/usr/share/gocode/src/github.com/opencontainers/runtime-spec/schema";

/// Validates `profiles` against the OCI runtime spec's seccomp schema; `Err` holds why not.
fn validate_seccomp_profiles(profiles: &[&Path]) -> Option<Result<(), String>> {
    let validator =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/tools/validate-seccomp-profile.py");
    let python = Path::new("/usr/bin/python3");
    let has_jsonschema = std::process::Command::new(python)
        .args(["-c", "import jsonschema"])
        .status()
        .is_ok_and(|s| s.success());
    if !Path::new(OCI_SCHEMA_DIR).is_dir() || !has_jsonschema {
        skip_or_panic(
            "the OCI runtime spec's schema (golang-github-opencontainers-specs-dev) or \
             python3-jsonschema is missing (scripts/setup.sh installs them)",
        );
        return None;
    }
    let out = std::process::Command::new(python)
        .arg(&validator)
        .arg(OCI_SCHEMA_DIR)
        .args(profiles)
        .output()
        .expect("run the schema validator");
    Some(if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    })
}

/// The names a profile allows (unconditionally or with argument conditions).
fn allowed_calls(profile: &Path) -> Vec<String> {
    let p: serde_json::Value = serde_json::from_slice(&fs::read(profile).unwrap()).unwrap();
    p["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "SCMP_ACT_ALLOW")
        .flat_map(|r| r["names"].as_array().unwrap().iter())
        .map(|n| n.as_str().unwrap().to_string())
        .collect()
}

/// The traced run records every system call: the profile it writes is valid for the
/// OCI runtime spec, allows what nginx did (accept4: the probe's connection) and not
/// what it never did, and the slimmed nginx serves its page in Docker under it.
#[test]
fn nginx_slimmed_with_a_seccomp_profile_serves_under_it_in_docker() {
    let Some((nginx, _)) = setup() else {
        return;
    };
    let dir = tempdir();
    let out = dir.path().join("out.tar");
    let profile = dir.path().join("nginx.seccomp.json");
    let tag = "whittle-test/trace-nginx-seccomp:latest";
    let mut cleanup = DockerCleanup::default();
    fresh(tag, &mut cleanup);
    let src = reference("docker-archive", &nginx.join("nginx.tar"), None);
    let run = slim(
        &src,
        &out,
        tag,
        &[
            "--http-probe",
            "80/",
            "--seccomp-profile",
            profile.to_str().unwrap(),
        ],
    );
    assert!(
        run.stderr().contains("seccomp profile: ") && profile.is_file(),
        "{}",
        run.describe()
    );
    let Some(valid) = validate_seccomp_profiles(&[&profile]) else {
        return;
    };
    valid.unwrap_or_else(|e| panic!("the profile is not valid for the OCI runtime spec: {e}"));
    // The validator does reject what the schema does not allow.
    let broken = dir.path().join("broken.json");
    fs::write(
        &broken,
        fs::read_to_string(&profile)
            .unwrap()
            .replace("SCMP_ACT_ALLOW", "SCMP_ACT_PERMIT"),
    )
    .unwrap();
    assert!(validate_seccomp_profiles(&[&broken]).is_some_and(|r| r.is_err()));

    let allowed = allowed_calls(&profile);
    for call in ["accept4", "execve", "openat", "sendfile", "clone"] {
        assert!(
            allowed.iter().any(|c| c == call),
            "{call} not allowed: {allowed:?}"
        );
    }
    for call in [
        "mount",
        "ptrace",
        "unshare",
        "reboot",
        "sysinfo_never",
        "kexec_load",
    ] {
        assert!(!allowed.iter().any(|c| c == call), "{call} allowed");
    }
    assert!(allowed.len() < 150, "{} calls allowed", allowed.len());
    // The same run, the same bytes.
    let again = dir.path().join("again.json");
    let out2 = dir.path().join("out2.tar");
    slim(
        &src,
        &out2,
        tag,
        &[
            "--http-probe",
            "80/",
            "--seccomp-profile",
            again.to_str().unwrap(),
        ],
    );
    assert_eq!(
        allowed_calls(&again),
        allowed,
        "the profile changed between two runs"
    );

    docker_load(&out, tag);
    let opt = format!("seccomp={}", profile.display());
    let body =
        common::docker_e2e::serve_and_fetch_with(tag, 80, &["--security-opt", &opt], &mut cleanup)
            .expect("nginx reachable");
    assert!(
        body.contains(PAGE),
        "nginx under its profile served {body:?}"
    );
}

/// A program that makes, when asked, one call it never made in the traced run: under the
/// profile that call fails with EPERM, while the rest of the program runs; under Docker's
/// own profile it succeeds.
#[test]
fn a_call_the_traced_run_never_made_is_refused_under_the_profile() {
    let Some(_) = setup() else {
        return;
    };
    let Some(musl_gcc) = common::docker_e2e::find_tool("musl-gcc") else {
        skip_or_panic("musl-gcc is needed to make a static test program (apt install musl-tools)");
        return;
    };
    let dir = tempdir();
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    let source = dir.path().join("demo.c");
    fs::write(
        &source,
        r#"#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/sysinfo.h>
/* Prints hello; with the argument "sysinfo", also calls sysinfo(2) and says how it went. */
int main(int argc, char **argv) {
    printf("hello\n");
    if (argc > 1 && strcmp(argv[1], "sysinfo") == 0) {
        struct sysinfo si;
        if (sysinfo(&si) != 0) {
            printf("sysinfo: %s\n", strerror(errno));
            return 3;
        }
        printf("sysinfo: ok\n");
    }
    return 0;
}
"#,
    )
    .unwrap();
    let built = std::process::Command::new(musl_gcc)
        .args(["-static", "-O2", "-o"])
        .arg(root.join("demo"))
        .arg(&source)
        .status()
        .unwrap();
    assert!(built.success(), "musl-gcc failed");
    let out = dir.path().join("out.tar");
    let profile = dir.path().join("demo.seccomp.json");
    let tag = "whittle-test/trace-seccomp-demo:latest";
    let mut cleanup = DockerCleanup::default();
    fresh(tag, &mut cleanup);
    let run = slim(
        &reference("dir", &root, None),
        &out,
        tag,
        &[
            "--entrypoint",
            r#"["/demo"]"#,
            "--trace",
            "--seccomp-profile",
            profile.to_str().unwrap(),
        ],
    );
    assert!(profile.is_file(), "{}", run.describe());
    let allowed = allowed_calls(&profile);
    assert!(!allowed.iter().any(|c| c == "sysinfo"), "{allowed:?}");
    docker_load(&out, tag);
    let opt = format!("seccomp={}", profile.display());
    let run_demo = |args: &[&str]| {
        let mut all = vec!["run", "--rm", "--network", "none"];
        all.extend(args);
        let out = std::process::Command::new("docker")
            .args(&all)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = run_demo(&["--security-opt", &opt, tag]);
    assert_eq!((code, stdout.as_str()), (Some(0), "hello\n"), "{stderr}");
    let (code, stdout, stderr) = run_demo(&["--security-opt", &opt, tag, "sysinfo"]);
    assert_eq!(
        (code, stdout.as_str()),
        (Some(3), "hello\nsysinfo: Operation not permitted\n"),
        "{stderr}"
    );
    let (code, stdout, stderr) = run_demo(&[tag, "sysinfo"]);
    assert_eq!(
        (code, stdout.as_str()),
        (Some(0), "hello\nsysinfo: ok\n"),
        "{stderr}"
    );

    // verify --seccomp-profile: the image as traced passes; the same image told (by its
    // CMD) to make the extra call fails, naming the call and the program.
    let verify = |image: &Path| {
        let src = reference("docker-archive", image, None);
        run_whittle([
            "verify".to_string(),
            src.clone(),
            src,
            "--seccomp-profile".to_string(),
            profile.to_string_lossy().into_owned(),
        ])
    };
    let passed = verify(&out).ok();
    assert!(
        passed.stderr().contains("every system call it made is one"),
        "{}",
        passed.describe()
    );
    let asking = dir.path().join("asking.tar");
    slim(
        &reference("dir", &root, None),
        &asking,
        tag,
        &["--entrypoint", r#"["/demo"]"#, "--cmd", r#"["sysinfo"]"#],
    );
    let failed = verify(&asking);
    assert_eq!(failed.code(), Some(1), "{}", failed.describe());
    assert!(
        failed.stderr().contains(&format!(
            "/demo made calls that {} refuses (under it they fail): sysinfo",
            profile.display()
        )),
        "{}",
        failed.describe()
    );
}
