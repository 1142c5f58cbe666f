//! End-to-end tests of `docker://` against Debian's docker-registry (the CNCF
//! distribution registry), each test starting its own on a free 127.0.0.1 port, with
//! htpasswd Basic auth where auth is tested. Requests are counted in the registry's
//! own access log. Uses the Debian nginx fixture ($WHITTLE_FIXTURES, see e2e_docker.rs).

#[allow(dead_code)]
mod common;

use std::fs;

use base64::Engine as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::docker_e2e::{
    docker, find_tool, fixture, oci_image, read_blob, require_tools, serve_and_fetch, whittle,
    DockerCleanup,
};

const PAGE: &str = "whittle test page";
const USER: &str = "alice";
const SECRET: &str = "pa55-w0rd-xyzzy";

/// A registry process on 127.0.0.1, stopped on drop.
struct Registry {
    child: Child,
    host: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    /// Starts one that trusts tokens from `issuer` (the `auth: token` mode).
    fn start_token(issuer: &token::Issuer) -> Option<Registry> {
        Registry::start_with(
            false,
            &format!(
                "auth:\n  token:\n    realm: {}\n    service: whittle-e2e-registry\n    issuer: whittle-test-issuer\n    rootcertbundle: {}\n",
                issuer.realm,
                issuer.cert.display()
            ),
        )
    }

    /// Starts one; with `auth`, it wants USER:SECRET (htpasswd, bcrypt).
    fn start(auth: bool) -> Option<Registry> {
        Registry::start_with(auth, "")
    }

    fn start_with(auth: bool, extra_config: &str) -> Option<Registry> {
        let tools: &[&str] = if auth {
            &["docker-registry", "htpasswd"]
        } else {
            &["docker-registry"]
        };
        if !require_tools(tools) {
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("whittle-e2e-registry-")
            .tempdir()
            .expect("temp dir");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        // `http:` comes last so that extra config indented under it (tls) lands there.
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\n  formatter: text\nstorage:\n  filesystem:\n    rootdirectory: {}\n",
            dir.path().join("data").display()
        );
        if auth {
            let htpasswd = dir.path().join("htpasswd");
            let out = Command::new(find_tool("htpasswd").expect("htpasswd"))
                .args(["-Bbn", USER, SECRET])
                .output()
                .expect("run htpasswd");
            assert!(out.status.success(), "htpasswd failed");
            fs::write(&htpasswd, out.stdout).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: whittle-e2e\n    path: {}\n",
                htpasswd.display()
            ));
        }
        if extra_config.starts_with("  ") {
            config.push_str(&format!("http:\n  addr: 127.0.0.1:{port}\n{extra_config}"));
        } else {
            config.push_str(extra_config);
            config.push_str(&format!("http:\n  addr: 127.0.0.1:{port}\n"));
        }
        let config_path = dir.path().join("config.yml");
        fs::write(&config_path, config).unwrap();
        let log = dir.path().join("registry.log");
        let child = Command::new(find_tool("docker-registry").expect("docker-registry"))
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .expect("start docker-registry");
        let host = format!("127.0.0.1:{port}");
        let reg = Registry {
            child,
            host: host.clone(),
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(&host).is_err() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen on {host}: {}",
                fs::read_to_string(&reg.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(reg)
    }

    /// Access-log lines so far whose method and URI contain `method` and `uri_part`.
    fn requests(&self, method: &str, uri_part: &str) -> Vec<String> {
        // The registry logs a request just after answering it: let the last line land.
        std::thread::sleep(Duration::from_millis(300));
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter(|l| l.contains("response completed"))
            .filter(|l| l.contains(&format!("http.request.method={method} ")))
            .filter(|l| {
                // logrus quotes a value only when it has to (`?`, `:`, `=` ...).
                l.split("http.request.uri=").nth(1).is_some_and(|rest| {
                    let uri = match rest.strip_prefix('"') {
                        Some(q) => q.split('"').next().unwrap_or(""),
                        None => rest.split(' ').next().unwrap_or(""),
                    };
                    uri.contains(uri_part)
                })
            })
            .map(String::from)
            .collect()
    }

    fn reference(&self, repo_tag: &str) -> String {
        format!("docker://{}/{repo_tag}", self.host)
    }
}

fn run(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = whittle();
    cmd.args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    // No credentials from the machine's own config.
    if !envs.iter().any(|(k, _)| *k == "DOCKER_CONFIG") {
        cmd.env("DOCKER_CONFIG", "/nonexistent-whittle-e2e");
    }
    cmd.output().expect("run whittle")
}

fn ok(args: &[&str], envs: &[(&str, &str)]) -> String {
    let out = run(args, envs);
    assert!(
        out.status.success(),
        "whittle {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn oci_src(fx: &Path) -> String {
    format!("oci:{}:latest", fx.join("nginx-oci").display())
}

/// Push, pull back digest for digest, push again with zero uploads, and copy to another
/// repository of the same registry by mounting instead of uploading.
#[test]
fn push_pull_round_trip_skips_and_mounts() {
    let Some(fx) = fixture() else { return };
    let Some(reg) = Registry::start(false) else {
        return;
    };
    let src = oci_image(&fx.join("nginx-oci"), "latest");
    let dst = reg.reference("whittle/nginx:v1");
    let pushed = ok(&["copy", &oci_src(fx), &dst], &[]);
    assert_eq!(pushed, src.manifest_digest, "push keeps the manifest bytes");
    let first_uploads = reg.requests("PUT", "/blobs/uploads/").len();
    assert_eq!(first_uploads, 3, "config and two layers uploaded once each");

    // Pull into a fresh layout: every blob byte-identical to the source's.
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("pulled");
    let pulled = ok(
        &["copy", &dst, &format!("oci:{}:back", layout.display())],
        &[],
    );
    assert_eq!(pulled, src.manifest_digest);
    let back = oci_image(&layout, "back");
    assert_eq!(back.config_bytes, src.config_bytes);
    for layer in src.layers() {
        let d = layer["digest"].as_str().unwrap();
        assert!(
            read_blob(&layout, d) == read_blob(&fx.join("nginx-oci"), d),
            "layer {d} differs after the round trip"
        );
    }

    // The same push again uploads nothing.
    ok(&["copy", &oci_src(fx), &dst], &[]);
    assert_eq!(
        reg.requests("PUT", "/blobs/uploads/").len(),
        first_uploads,
        "the second push uploaded blobs the registry already had"
    );
    assert!(reg.requests("HEAD", "/v2/whittle/nginx/blobs/").len() >= 6);

    // Another repository of the same registry: layers are mounted, not uploaded.
    let other = reg.reference("other/nginx:v2");
    ok(&["copy", &dst, &other], &[]);
    let mounts = reg.requests("POST", "/v2/other/nginx/blobs/uploads/?mount=");
    assert_eq!(
        mounts.len(),
        2,
        "both layers should be mounted from whittle/nginx"
    );
    let layer_puts: Vec<String> = reg
        .requests("PUT", "/v2/other/nginx/blobs/uploads/")
        .into_iter()
        .filter(|l| {
            src.layers()
                .iter()
                .any(|d| l.contains(&d["digest"].as_str().unwrap().replace(':', "%3A")))
        })
        .collect();
    assert!(
        layer_puts.is_empty(),
        "layers uploaded despite the mount: {layer_puts:?}"
    );
}

/// docker:// -> docker-daemon: -> docker run: the pulled image serves the page.
#[test]
fn pulled_image_runs_in_docker() {
    let Some(fx) = fixture() else { return };
    if !require_tools(&["docker"]) {
        return;
    }
    let Some(reg) = Registry::start(false) else {
        return;
    };
    const TAG: &str = "whittle-e2e/registry:pulled";
    let mut cleanup = DockerCleanup::default();
    docker(["rmi", TAG]);
    cleanup.images.push(TAG.into());
    let dst = reg.reference("run/nginx:v1");
    ok(&["copy", &oci_src(fx), &dst], &[]);
    ok(&["copy", &dst, &format!("docker-daemon:{TAG}")], &[]);
    assert_eq!(
        serve_and_fetch(TAG, &mut cleanup).as_deref().map(str::trim),
        Some(PAGE)
    );
}

/// Basic auth: no credentials and wrong ones are 401s in words with exit 1 and no
/// secret printed; --creds, config.json `auths` and a `credHelpers` helper all work.
#[test]
fn basic_auth_from_flags_config_and_helpers() {
    let Some(fx) = fixture() else { return };
    let Some(reg) = Registry::start(true) else {
        return;
    };
    let dst = reg.reference("secure/nginx:v1");
    let src = oci_src(fx);

    let out = run(&["copy", &src, &dst], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("401"), "{err}");

    let wrong = format!("{USER}:not-{SECRET}");
    let out = run(&["copy", "--creds", &wrong, &src, &dst], &[]);
    assert_eq!(out.status.code(), Some(1));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("401") && all.contains("unauthorized"), "{all}");
    assert!(!all.contains(SECRET), "a secret was printed: {all}");

    let creds = format!("{USER}:{SECRET}");
    let digest = ok(&["copy", "--creds", &creds, &src, &dst], &[]);
    assert!(digest.starts_with("sha256:"));

    // config.json with a base64 `auth` entry.
    let tmp = tempfile::tempdir().unwrap();
    let cfg_dir = tmp.path().join("docker");
    fs::create_dir(&cfg_dir).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(creds.as_bytes());
    fs::write(
        cfg_dir.join("config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, reg.host),
    )
    .unwrap();
    let cfg = cfg_dir.to_str().unwrap();
    let got = ok(&["inspect", "--json", &dst], &[("DOCKER_CONFIG", cfg)]);
    assert!(
        got.contains(&digest),
        "inspect through config.json auth: {got}"
    );

    // A credential helper: docker-credential-NAME get, found on PATH.
    let bin = tmp.path().join("bin");
    fs::create_dir(&bin).unwrap();
    let helper = bin.join("docker-credential-whittletest");
    fs::write(
        &helper,
        format!(
            "#!/bin/sh\nread server\n[ \"$1\" = get ] && [ \"$server\" = \"{}\" ] || exit 3\necho '{{\"Username\":\"{USER}\",\"Secret\":\"{SECRET}\"}}'\n",
            reg.host
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&helper, fs::Permissions::from_mode(0o755)).unwrap();
    let helper_cfg = tmp.path().join("helper");
    fs::create_dir(&helper_cfg).unwrap();
    fs::write(
        helper_cfg.join("config.json"),
        format!(r#"{{"credHelpers":{{"{}":"whittletest"}}}}"#, reg.host),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = run(
        &["inspect", &dst],
        &[
            ("DOCKER_CONFIG", helper_cfg.to_str().unwrap()),
            ("PATH", &path),
        ],
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "inspect through a credential helper: {text}"
    );
    assert!(!text.contains(SECRET), "a secret was printed: {text}");
}

/// Bad references and missing repositories are errors in words.
#[test]
fn registry_errors_are_clear() {
    let Some(reg) = Registry::start(false) else {
        return;
    };
    let out = run(&["inspect", &reg.reference("nothing/here:v1")], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("404") && err.contains("not found"), "{err}");
    for bad in ["docker://127.0.0.1:5000/UPPER/case", "docker:127.0.0.1/x"] {
        let out = run(&["inspect", bad], &[]);
        assert_eq!(out.status.code(), Some(1), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("accepted forms"), "{bad}: {err}");
    }
}

// ------------------------------------------------------------- fault-injecting proxy

mod faulty {
    //! An HTTP proxy between whittle and a registry that misbehaves on purpose: it
    //! answers some requests with 500 or 429 itself, and cuts blob downloads off in
    //! the middle. One request per connection (it asks both sides to close).

    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    #[derive(Default)]
    pub struct Stats {
        pub requests: AtomicUsize,
        pub errors_sent: AtomicUsize,
        pub cut_downloads: AtomicUsize,
        pub range_requests: AtomicUsize,
    }

    pub struct Proxy {
        pub addr: String,
        pub stats: Arc<Stats>,
        stop: Arc<AtomicBool>,
    }

    impl Drop for Proxy {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            let _ = TcpStream::connect(&self.addr);
        }
    }

    /// `always_fail`: every request gets a 500 (faults that persist).
    pub fn start(upstream: String, always_fail: bool) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().unwrap().to_string();
        let stats = Arc::new(Stats::default());
        let stop = Arc::new(AtomicBool::new(false));
        // Each (method, path) is failed once, then let through.
        let seen: Arc<Mutex<std::collections::HashSet<String>>> = Arc::default();
        let (st, sp) = (stats.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (up, st, seen) = (upstream.clone(), st.clone(), seen.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &up, &st, &seen, always_fail);
                });
            }
        });
        Proxy { addr, stats, stop }
    }

    fn read_head(r: &mut impl BufRead) -> std::io::Result<Vec<String>> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let line = line.trim_end().to_string();
            if line.is_empty() {
                return Ok(lines);
            }
            lines.push(line);
        }
    }

    fn content_length(head: &[String]) -> u64 {
        head.iter()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0)
    }

    fn rewrite(head: &[String]) -> String {
        let mut out = String::new();
        for l in head {
            if l.to_ascii_lowercase().starts_with("connection:") {
                continue;
            }
            out.push_str(l);
            out.push_str("\r\n");
        }
        out.push_str("Connection: close\r\n\r\n");
        out
    }

    fn serve(
        client: TcpStream,
        upstream: &str,
        st: &Stats,
        seen: &Mutex<std::collections::HashSet<String>>,
        always_fail: bool,
    ) -> std::io::Result<()> {
        let mut reader = BufReader::new(client.try_clone()?);
        let mut client = client;
        let head = read_head(&mut reader)?;
        st.requests.fetch_add(1, Ordering::SeqCst);
        let request_line = head.first().cloned().unwrap_or_default();
        let mut parts = request_line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let path_only = path.split('?').next().unwrap_or("").to_string();
        let has_range = head
            .iter()
            .any(|l| l.to_ascii_lowercase().starts_with("range:"));
        if has_range {
            st.range_requests.fetch_add(1, Ordering::SeqCst);
        }
        let body_len = content_length(&head);
        let first_time = seen.lock().unwrap().insert(format!("{method} {path_only}"));
        let is_blob_get = method == "GET" && path_only.contains("/blobs/");
        if always_fail || (first_time && !is_blob_get && path_only != "/v2/") {
            // Drain the body, then refuse: every other first request gets a 500, the rest 429.
            std::io::copy(&mut (&mut reader).take(body_len), &mut std::io::sink())?;
            st.errors_sent.fetch_add(1, Ordering::SeqCst);
            let n = st.errors_sent.load(Ordering::SeqCst);
            let status = if always_fail || n % 2 == 1 {
                "500 Internal Server Error"
            } else {
                "429 Too Many Requests\r\nRetry-After: 0"
            };
            write!(
                client,
                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )?;
            return Ok(());
        }
        let mut up = TcpStream::connect(upstream)?;
        up.write_all(rewrite(&head).as_bytes())?;
        std::io::copy(&mut (&mut reader).take(body_len), &mut up)?;
        let mut up_reader = BufReader::new(up);
        let resp_head = read_head(&mut up_reader)?;
        client.write_all(rewrite(&resp_head).as_bytes())?;
        let len = content_length(&resp_head);
        let ok = resp_head.first().is_some_and(|l| l.contains(" 200 "));
        if is_blob_get && first_time && ok && !has_range && len > 64 * 1024 {
            // Cut the download off halfway, as a dropped connection would.
            std::io::copy(&mut (&mut up_reader).take(len / 2), &mut client)?;
            st.cut_downloads.fetch_add(1, Ordering::SeqCst);
            client.flush()?;
            let _ = client.shutdown(std::net::Shutdown::Both);
            return Ok(());
        }
        std::io::copy(&mut up_reader, &mut client)?;
        Ok(())
    }
}

/// Through a proxy that answers 500 and 429 once per request and cuts every blob
/// download off halfway, a push and a pull still complete, digest for digest, and
/// the pull resumed the cut downloads with Range requests.
#[test]
fn transient_faults_are_retried_and_downloads_resumed() {
    let Some(fx) = fixture() else { return };
    let Some(reg) = Registry::start(false) else {
        return;
    };
    let proxy = faulty::start(reg.host.clone(), false);
    let src = oci_image(&fx.join("nginx-oci"), "latest");
    let dst = format!("docker://{}/faults/nginx:v1", proxy.addr);
    let pushed = ok(&["copy", &oci_src(fx), &dst], &[]);
    assert_eq!(pushed, src.manifest_digest);
    assert!(
        proxy
            .stats
            .errors_sent
            .load(std::sync::atomic::Ordering::SeqCst)
            >= 4,
        "the proxy injected too few errors to test anything"
    );
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("pulled");
    let pulled = ok(&["copy", &dst, &format!("oci:{}:x", layout.display())], &[]);
    assert_eq!(pulled, src.manifest_digest);
    let back = oci_image(&layout, "x");
    assert_eq!(back.diff_ids(), src.diff_ids());
    let cut = proxy
        .stats
        .cut_downloads
        .load(std::sync::atomic::Ordering::SeqCst);
    let ranges = proxy
        .stats
        .range_requests
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        cut >= 1,
        "no download was cut off (the fixture's layers are big enough)"
    );
    assert!(
        ranges >= cut,
        "{cut} downloads were cut but only {ranges} resumed with Range"
    );
}

/// When the faults do not stop, the copy fails with a clear error, exit 1, and the
/// registry has no manifest under the tag.
#[test]
fn persistent_faults_fail_clearly_without_a_partial_tag() {
    let Some(fx) = fixture() else { return };
    let Some(reg) = Registry::start(false) else {
        return;
    };
    let proxy = faulty::start(reg.host.clone(), true);
    let dst = format!("docker://{}/broken/nginx:v1", proxy.addr);
    let started = Instant::now();
    let out = run(&["copy", &oci_src(fx), &dst], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("500"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "gave up too slowly"
    );
    // Straight to the registry: the tag was never written.
    let probe = run(&["inspect", &reg.reference("broken/nginx:v1")], &[]);
    assert_eq!(probe.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&probe.stderr).contains("404"));
}

// ---------------------------------------------------------------- token auth

mod token {
    //! A token issuer for the registry's `auth: token` mode, written for the tests:
    //! it checks Basic credentials and hands out RS256 JWTs (signed by `openssl`
    //! with a test key whose self-signed certificate the registry trusts) granting
    //! the scopes asked for.

    use std::io::{BufRead, BufReader, Write};
    use std::net::{TcpListener, TcpStream};
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use base64::Engine as _;

    pub struct Issuer {
        pub realm: String,
        pub cert: PathBuf,
        pub tokens_issued: Arc<AtomicUsize>,
    }

    fn b64url(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Makes a key and certificate in `dir` and serves tokens for USER:SECRET.
    pub fn start(dir: &Path, user: &str, secret: &str) -> Issuer {
        let key = dir.join("issuer.key");
        let cert = dir.join("issuer.crt");
        let ok = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=whittle-test-issuer",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("run openssl");
        assert!(
            ok.status.success(),
            "openssl req: {}",
            String::from_utf8_lossy(&ok.stderr)
        );
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert)
            .output()
            .expect("openssl x509");
        let x5c = base64::engine::general_purpose::STANDARD.encode(&der.stdout);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let realm = format!("http://{}/token", listener.local_addr().unwrap());
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"))
        );
        let issued = Arc::new(AtomicUsize::new(0));
        let counter = issued.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let _ = answer(conn, &expected, &key, &x5c, &counter);
            }
        });
        Issuer {
            realm,
            cert,
            tokens_issued: issued,
        }
    }

    fn answer(
        conn: TcpStream,
        expected: &str,
        key: &Path,
        x5c: &str,
        counter: &AtomicUsize,
    ) -> std::io::Result<()> {
        let mut reader = BufReader::new(conn.try_clone()?);
        let mut conn = conn;
        let mut request_line = String::new();
        reader.read_line(&mut request_line)?;
        let mut authorized = false;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("authorization") && v.trim() == expected {
                    authorized = true;
                }
            }
        }
        if !authorized {
            return write!(
                conn,
                "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
        let target = request_line.split_whitespace().nth(1).unwrap_or("");
        let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
        let mut service = String::new();
        let mut access = Vec::new();
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(v);
            match k {
                "service" => service = v,
                "scope" => {
                    // repository:NAME:ACTIONS
                    let mut parts = v.splitn(3, ':');
                    let (t, name, actions) = (
                        parts.next().unwrap_or(""),
                        parts.next().unwrap_or(""),
                        parts.next().unwrap_or(""),
                    );
                    let actions: Vec<String> =
                        actions.split(',').map(|a| format!("\"{a}\"")).collect();
                    access.push(format!(
                        r#"{{"type":"{t}","name":"{name}","actions":[{}]}}"#,
                        actions.join(",")
                    ));
                }
                _ => {}
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let n = counter.fetch_add(1, Ordering::SeqCst);
        let header = format!(r#"{{"alg":"RS256","typ":"JWT","x5c":["{x5c}"]}}"#);
        let claims = format!(
            r#"{{"iss":"whittle-test-issuer","sub":"alice","aud":"{service}","exp":{},"nbf":{},"iat":{now},"jti":"t{n}","access":[{}]}}"#,
            now + 300,
            now - 10,
            access.join(",")
        );
        let signing_input = format!(
            "{}.{}",
            b64url(header.as_bytes()),
            b64url(claims.as_bytes())
        );
        let mut sign = Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(key)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        sign.stdin
            .take()
            .unwrap()
            .write_all(signing_input.as_bytes())?;
        let sig = sign.wait_with_output()?.stdout;
        let token = format!("{signing_input}.{}", b64url(&sig));
        let body = format!(r#"{{"token":"{token}","expires_in":300}}"#);
        write!(
            conn,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    fn percent_decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' && i + 2 < bytes.len() {
                if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                    out.push(b);
                    i += 3;
                    continue;
                }
            }
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Bearer tokens: the registry answers 401 with a realm; whittle fetches a token there
/// with the user's Basic credentials, per scope, and pushes, mounts and pulls with it;
/// wrong credentials are refused by the token service, in words.
#[test]
fn bearer_token_auth_round_trip() {
    let Some(fx) = fixture() else { return };
    if !require_tools(&["docker-registry", "openssl"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let issuer = token::start(tmp.path(), USER, SECRET);
    let Some(reg) = Registry::start_token(&issuer) else {
        return;
    };
    let src = oci_image(&fx.join("nginx-oci"), "latest");
    let creds = format!("{USER}:{SECRET}");
    let dst = reg.reference("tok/nginx:v1");

    let out = run(&["copy", &oci_src(fx), &dst], &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "push without credentials succeeded"
    );
    let wrong = format!("{USER}:nope");
    let out = run(&["copy", "--creds", &wrong, &oci_src(fx), &dst], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("401") && err.contains("token service"),
        "{err}"
    );

    let pushed = ok(&["copy", "--creds", &creds, &oci_src(fx), &dst], &[]);
    assert_eq!(pushed, src.manifest_digest);
    let issued = issuer
        .tokens_issued
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(issued >= 1, "no token was fetched");
    // Mount into another repository (a token for two scopes), then pull.
    let other = reg.reference("tok2/nginx:v1");
    ok(&["copy", "--creds", &creds, &dst, &other], &[]);
    assert_eq!(
        reg.requests("POST", "/v2/tok2/nginx/blobs/uploads/?mount=")
            .len(),
        2
    );
    let layout = tmp.path().join("pulled");
    let pulled = ok(
        &[
            "copy",
            "--creds",
            &creds,
            &other,
            &format!("oci:{}:x", layout.display()),
        ],
        &[],
    );
    assert_eq!(pulled, src.manifest_digest);
}

/// A two-platform index pushed with `copy --all`, pulled back whole with the same
/// index digest, and `--platform` picking one image from the registry's index.
#[test]
fn multi_platform_index_push_and_pick() {
    let Some(fx) = fixture() else { return };
    let Some(reg) = Registry::start(false) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (amd64, arm64) = common::multi_platform::multi_platform_layout(fx, tmp.path());
    let layout = tmp.path().join("multi");
    let src = format!("oci:{}:multi", layout.display());
    let dst = reg.reference("multi/nginx:v1");
    let index_digest = ok(&["copy", "--all", &src, &dst], &[]);
    let puts = reg.requests("PUT", "/v2/multi/nginx/manifests/");
    assert_eq!(puts.len(), 3, "two manifests and the index: {puts:#?}");

    let back = tmp.path().join("back");
    let pulled = ok(
        &["copy", "--all", &dst, &format!("oci:{}:x", back.display())],
        &[],
    );
    assert_eq!(pulled, index_digest);
    for (platform, want) in [("linux/amd64", &amd64), ("linux/arm64", &arm64)] {
        let out = ok(&["--platform", platform, "inspect", "--json", &dst], &[]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            v["manifest_digest"].as_str(),
            Some(want.as_str()),
            "{platform}"
        );
    }
}

/// Large blobs go up in PATCH chunks (the size lowered here to 8 MiB), and come back
/// byte for byte.
#[test]
fn chunked_upload_round_trip() {
    let Some(fx) = fixture() else { return };
    let Some(reg) = Registry::start(false) else {
        return;
    };
    let src = oci_image(&fx.join("nginx-oci"), "latest");
    let dst = reg.reference("chunks/nginx:v1");
    let chunk = (8u64 << 20).to_string();
    let pushed = ok(
        &["copy", &oci_src(fx), &dst],
        &[("WHITTLE_UPLOAD_CHUNK", &chunk)],
    );
    assert_eq!(pushed, src.manifest_digest);
    let biggest = src
        .layers()
        .iter()
        .filter_map(|l| l["size"].as_u64())
        .max()
        .unwrap_or(0);
    let patches = reg
        .requests("PATCH", "/v2/chunks/nginx/blobs/uploads/")
        .len() as u64;
    assert!(
        patches >= biggest.div_ceil(8 << 20),
        "a {biggest}-byte layer should take at least {} chunks, saw {patches}",
        biggest.div_ceil(8 << 20)
    );
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("pulled");
    let pulled = ok(&["copy", &dst, &format!("oci:{}:x", layout.display())], &[]);
    assert_eq!(pulled, src.manifest_digest);
}

/// A source blob that does not match its digest is refused before the registry
/// has it under the tag: whole or in chunks.
#[test]
fn corrupt_source_blob_is_never_pushed() {
    let Some(fx) = fixture() else { return };
    let Some(reg) = Registry::start(false) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("copy");
    ok(
        &[
            "copy",
            &oci_src(fx),
            &format!("oci:{}:latest", layout.display()),
        ],
        &[],
    );
    let src = oci_image(&layout, "latest");
    let small = src
        .layers()
        .iter()
        .min_by_key(|l| l["size"].as_u64().unwrap_or(u64::MAX))
        .and_then(|l| l["digest"].as_str().map(String::from))
        .unwrap();
    let path = layout
        .join("blobs/sha256")
        .join(small.trim_start_matches("sha256:"));
    let mut bytes = fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&path, bytes).unwrap();
    for (repo, chunk) in [("corrupt/whole", None), ("corrupt/chunked", Some("262144"))] {
        let dst = reg.reference(&format!("{repo}:v1"));
        let envs: Vec<(&str, &str)> = chunk
            .map(|c| vec![("WHITTLE_UPLOAD_CHUNK", c)])
            .unwrap_or_default();
        let out = run(
            &["copy", &format!("oci:{}:latest", layout.display()), &dst],
            &envs,
        );
        assert_eq!(
            out.status.code(),
            Some(1),
            "{repo}: a corrupt blob was pushed"
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&small) || err.contains("digest"),
            "{repo}: {err}"
        );
        let probe = run(&["inspect", &dst], &[]);
        assert_eq!(
            probe.status.code(),
            Some(1),
            "{repo}: the tag exists after a failed push"
        );
    }
}

/// A registry serving TLS with a private CA: refused without trust in it, reached with
/// `--cert-dir` holding the CA, or with `--tls-verify=false`.
#[test]
fn tls_registry_with_cert_dir() {
    let Some(fx) = fixture() else { return };
    if !require_tools(&["docker-registry", "openssl"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // A private CA and a server certificate for 127.0.0.1 signed by it.
    let p = |n: &str| tmp.path().join(n);
    let (key, cert, ca) = (p("tls.key"), p("tls.crt"), p("ca.crt"));
    fs::write(
        p("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(tmp.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=whittle-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "tls.key",
        "-out",
        "tls.csr",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "tls.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "tls.crt",
    ]);
    let Some(reg) = Registry::start_with(
        false,
        &format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            cert.display(),
            key.display()
        ),
    ) else {
        return;
    };
    let dst = reg.reference("tls/nginx:v1");
    let out = run(&["copy", &oci_src(fx), &dst], &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "pushed to a registry whose CA is not trusted"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--cert-dir"),
        "the error should say how to trust the CA: {err}"
    );

    let certs = tmp.path().join("certs");
    fs::create_dir(&certs).unwrap();
    fs::copy(&ca, certs.join("ca.crt")).unwrap();
    let certs = certs.to_str().unwrap();
    let src = oci_image(&fx.join("nginx-oci"), "latest");
    let pushed = ok(&["--cert-dir", certs, "copy", &oci_src(fx), &dst], &[]);
    assert_eq!(pushed, src.manifest_digest);
    let got = ok(&["--tls-verify=false", "inspect", "--json", &dst], &[]);
    assert!(got.contains(&src.manifest_digest));
}

/// Where blobs are kept as given (an OCI layout, a registry), a copy from a `docker save`
/// archive compresses the layers, as skopeo and docker push do: gzip media types, blobs
/// that gunzip to the diff_ids; `--compression none` keeps them plain; an OCI layout
/// copied again keeps its gzip blobs byte for byte; and Docker pulls the pushed image
/// from the registry and runs it.
#[test]
fn copies_into_blob_stores_are_compressed_by_default() {
    let Some(fx) = fixture() else { return };
    if !require_tools(&["docker"]) {
        return;
    }
    let Some(reg) = Registry::start(false) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let archive = format!("docker-archive:{}", fx.join("nginx.tar").display());
    let gz = tmp.path().join("gz");
    let out = run(&["copy", &archive, &format!("oci:{}:x", gz.display())], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // It says so, and how to have them otherwise.
    assert!(
        stderr.contains("gzipping 2 uncompressed layers") && stderr.contains("--compression none"),
        "{stderr}"
    );
    let image = oci_image(&gz, "x");
    let diff_ids = image.diff_ids();
    assert_eq!(image.layers().len(), diff_ids.len());
    for (layer, diff_id) in image.layers().iter().zip(&diff_ids) {
        assert_eq!(
            layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip",
            "{layer}"
        );
        let blob = read_blob(&gz, layer["digest"].as_str().unwrap());
        let mut plain = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::MultiGzDecoder::new(&blob[..]),
            &mut plain,
        )
        .expect("the layer blob gunzips");
        assert_eq!(
            &format!("sha256:{}", common::docker_e2e::sha256_hex(&plain)),
            diff_id
        );
        assert!(blob.len() < plain.len());
    }

    let plain = tmp.path().join("plain");
    ok(
        &[
            "copy",
            &archive,
            &format!("oci:{}:x", plain.display()),
            "--compression",
            "none",
        ],
        &[],
    );
    let image = oci_image(&plain, "x");
    for (layer, diff_id) in image.layers().iter().zip(&diff_ids) {
        assert_eq!(
            layer["mediaType"], "application/vnd.oci.image.layer.v1.tar",
            "{layer}"
        );
        assert_eq!(layer["digest"].as_str(), Some(diff_id.as_str()));
    }

    let again = tmp.path().join("again");
    let first = oci_image(&gz, "x");
    let copied = ok(
        &[
            "copy",
            &format!("oci:{}:x", gz.display()),
            &format!("oci:{}:x", again.display()),
        ],
        &[],
    );
    assert_eq!(
        copied, first.manifest_digest,
        "oci -> oci keeps the manifest"
    );
    for layer in first.layers() {
        let d = layer["digest"].as_str().unwrap();
        assert!(
            read_blob(&again, d) == read_blob(&gz, d),
            "blob {d} changed"
        );
    }

    // Pushed from the archive: the registry holds gzip layers, and Docker runs them.
    let dst = reg.reference("compressed/nginx:v1");
    ok(&["copy", &archive, &dst], &[]);
    let inspect: serde_json::Value =
        serde_json::from_str(&ok(&["inspect", "--json", &dst], &[])).unwrap();
    for layer in inspect["layers"].as_array().unwrap() {
        assert!(
            layer["media_type"].as_str().unwrap().ends_with("+gzip"),
            "{layer}"
        );
        assert!(
            layer["compressed_size"].as_u64() < layer["uncompressed_size"].as_u64(),
            "{layer}"
        );
    }
    let pulled = format!("{}/compressed/nginx:v1", reg.host);
    let mut cleanup = DockerCleanup::default();
    cleanup.images.push(pulled.clone());
    let out = docker(["pull", "-q", &pulled]);
    assert!(
        out.status.success(),
        "docker pull {pulled}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        serve_and_fetch(&pulled, &mut cleanup)
            .as_deref()
            .map(str::trim),
        Some(PAGE)
    );
}
