//! Helpers shared by the integration tests in `crates/cli/tests/`.
//!
//! Several test files (and several authors) add to this file: append new items, never
//! delete or rename existing ones. Each group of helpers lives in its own module so that
//! names cannot collide.

// ---------------------------------------------------------------------------------------
// docker_e2e: helpers for crates/cli/tests/e2e_docker.rs (real Debian nginx fixture image,
// docker, skopeo, umoci).
// ---------------------------------------------------------------------------------------
#[allow(dead_code)]
pub mod docker_e2e {
    use std::collections::BTreeMap;
    use std::ffi::OsStr;
    use std::fmt;
    use std::fs;
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output, Stdio};
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    use serde_json::Value;
    use sha2::{Digest as _, Sha256};

    /// Lock serialising fixture builds across test processes (cargo-nextest runs every
    /// test in its own process).
    pub const FIXTURE_LOCK: &str = "/tmp/whittle-fixture.lock";

    /// `TRANSPORT:PATH` or `TRANSPORT:PATH:SUFFIX`.
    pub fn reference(transport: &str, path: &Path, suffix: Option<&str>) -> String {
        let p = path.to_str().expect("UTF-8 path");
        assert!(
            !p.contains(':'),
            "path {p:?} would be ambiguous in a reference"
        );
        match suffix {
            Some(s) => format!("{transport}:{p}:{s}"),
            None => format!("{transport}:{p}"),
        }
    }

    /// The cargo workspace root (two levels above crates/cli).
    pub fn workspace_root() -> PathBuf {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        p.canonicalize().unwrap_or(p)
    }

    /// An environment limitation: with `CI` set it is a failure (CI must provide the
    /// tools), otherwise the test prints `SKIP: <reason>` to stderr and returns early.
    /// Returns normally only when the test should skip.
    pub fn skip_or_panic(reason: &str) {
        if std::env::var_os("CI").is_some() {
            panic!("CI is set, so this test must not be skipped: {reason}");
        }
        // Straight to the stderr handle, not eprintln!: libtest captures the macros'
        // output of passing tests, and a skip must be visible.
        let _ = writeln!(std::io::stderr(), "SKIP: {reason}");
    }

    /// Where `name` is found on PATH (also looking in the sbin directories, which a
    /// non-root PATH often lacks).
    pub fn find_tool(name: &str) -> Option<PathBuf> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let extra = ["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from);
        std::env::split_paths(&path)
            .chain(extra)
            .map(|dir| dir.join(name))
            .find(|p| {
                fs::metadata(p)
                    .map(|m| m.is_file() && m.mode() & 0o111 != 0)
                    .unwrap_or(false)
            })
    }

    fn docker_works() -> Result<(), String> {
        if find_tool("docker").is_none() {
            return Err("`docker` is not installed".into());
        }
        let out = Command::new("docker")
            .args(["info", "--format", "{{.ServerVersion}}"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run `docker info`: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "`docker info` failed (is dockerd running?): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(())
    }

    fn missing_tool(tools: &[&str]) -> Option<String> {
        for tool in tools {
            if *tool == "docker" {
                if let Err(e) = docker_works() {
                    return Some(e);
                }
            } else if find_tool(tool).is_none() {
                return Some(format!("`{tool}` is not installed"));
            }
        }
        None
    }

    /// True when every tool is usable (`docker` additionally needs `docker info` to
    /// succeed); otherwise skips (or panics under CI) and returns false.
    pub fn require_tools(tools: &[&str]) -> bool {
        match missing_tool(tools) {
            None => true,
            Some(reason) => {
                skip_or_panic(&reason);
                false
            }
        }
    }

    enum FixtureError {
        /// The environment cannot build it (tools, root, docker): skip or, in CI, fail.
        Unavailable(String),
        /// The build itself failed: always a failure.
        Failed(String),
    }

    fn fixture_dir() -> PathBuf {
        match std::env::var_os("WHITTLE_FIXTURES") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => workspace_root().join("target/fixtures/nginx"),
        }
    }

    fn build_fixture() -> Result<PathBuf, FixtureError> {
        let dir = fixture_dir();
        if dir.join(".done").is_file() {
            return Ok(dir);
        }
        let script = workspace_root().join("tests/fixtures/nginx-image.sh");
        if !script.is_file() {
            return Err(FixtureError::Failed(format!(
                "{} is missing",
                script.display()
            )));
        }
        if let Some(reason) = missing_tool(&["bash", "flock", "debootstrap", "skopeo", "docker"]) {
            return Err(FixtureError::Unavailable(format!(
                "cannot build the nginx fixture in {}: {reason}",
                dir.display()
            )));
        }
        let uid = Command::new("id").arg("-u").output().ok();
        let is_root = uid
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        if !is_root {
            return Err(FixtureError::Unavailable(format!(
                "cannot build the nginx fixture in {}: debootstrap needs root",
                dir.display()
            )));
        }
        eprintln!(
            "building the nginx fixture in {} (once; cached by .done)",
            dir.display()
        );
        // The script is idempotent (it exits at once when .done exists) and flock makes
        // concurrent builders (one per nextest process) wait for the first one.
        let out = Command::new("flock")
            .arg(FIXTURE_LOCK)
            .arg("bash")
            .arg(&script)
            .arg(&dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| FixtureError::Failed(format!("cannot run flock/bash: {e}")))?;
        if !out.status.success() || !dir.join(".done").is_file() {
            return Err(FixtureError::Failed(format!(
                "{} {} failed ({}):\nstdout:\n{}\nstderr:\n{}",
                script.display(),
                dir.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(dir)
    }

    /// The nginx fixture directory (base.tar, nginx.tar, nginx-oci/, export.tar), built
    /// at most once per process. `None` means: skip the test (already reported).
    pub fn fixture() -> Option<&'static Path> {
        static FIXTURE: OnceLock<Result<PathBuf, FixtureError>> = OnceLock::new();
        match FIXTURE.get_or_init(build_fixture) {
            Ok(dir) => Some(dir.as_path()),
            Err(FixtureError::Unavailable(reason)) => {
                skip_or_panic(reason);
                None
            }
            Err(FixtureError::Failed(msg)) => panic!("nginx fixture: {msg}"),
        }
    }

    // ----------------------------------------------------------------- processes

    /// A `Command` for the whittle binary under test.
    pub fn whittle() -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_whittle"));
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs `cmd`, capturing its output.
    pub fn output(cmd: &mut Command) -> Output {
        cmd.stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
    }

    /// Runs `cmd` and panics (showing its output) unless it exits 0.
    pub fn run_ok(cmd: &mut Command) -> Output {
        let out = output(cmd);
        assert!(
            out.status.success(),
            "{cmd:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `whittle ARGS...`, which must succeed.
    pub fn whittle_ok<I, S>(args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_ok(whittle().args(args))
    }

    /// `docker ARGS...`, which must succeed; returns trimmed stdout.
    pub fn docker_ok<I, S>(args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let out = run_ok(Command::new("docker").args(args));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `docker ARGS...`, whatever its outcome.
    pub fn docker<I, S>(args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        output(Command::new("docker").args(args))
    }

    /// Removes a leftover of an earlier run (docker load would otherwise keep it) and
    /// registers `tag` for removal at the end.
    pub fn fresh_tag(tag: &str, cleanup: &mut DockerCleanup) {
        docker(["rmi", "-f", tag]);
        cleanup.images.push(tag.to_string());
    }

    /// Removes containers and images when dropped (also when the test panics).
    #[derive(Default)]
    pub struct DockerCleanup {
        pub containers: Vec<String>,
        pub images: Vec<String>,
    }

    impl Drop for DockerCleanup {
        fn drop(&mut self) {
            for c in self.containers.drain(..) {
                let _ = Command::new("docker")
                    .args(["rm", "-f", &c])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
            for i in self.images.drain(..) {
                let _ = Command::new("docker")
                    .args(["rmi", &i])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }

    // ----------------------------------------------------------------------- http

    fn http_get_once(addr: SocketAddr) -> Result<String, String> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))
            .map_err(|e| format!("connect {addr}: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(3))).ok();
        s.set_write_timeout(Some(Duration::from_secs(3))).ok();
        s.write_all(b"GET / HTTP/1.0\r\nHost: whittle-e2e\r\nUser-Agent: whittle-e2e\r\n\r\n")
            .map_err(|e| format!("send to {addr}: {e}"))?;
        let mut resp = Vec::new();
        s.read_to_end(&mut resp)
            .map_err(|e| format!("read from {addr}: {e}"))?;
        let resp = String::from_utf8_lossy(&resp).into_owned();
        let (head, body) = resp
            .split_once("\r\n\r\n")
            .ok_or_else(|| format!("malformed HTTP response from {addr}: {resp:?}"))?;
        let status = head.lines().next().unwrap_or("");
        if !(status.starts_with("HTTP/1.") && status.split_whitespace().nth(1) == Some("200")) {
            return Err(format!("{addr} answered {status:?}: {body:?}"));
        }
        Ok(body.to_string())
    }

    /// `GET /` over HTTP/1.0 with retries until `timeout`; returns the body of a 200.
    pub fn http_get(addr: SocketAddr, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            match http_get_once(addr) {
                Ok(body) => return Ok(body),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(250)),
            }
        }
    }

    fn container_diagnostics(cid: &str) -> String {
        let state = docker(["inspect", "-f", "{{json .State}}", cid]);
        let logs = docker(["logs", "--tail", "50", cid]);
        format!(
            "container state: {}\ncontainer logs:\n{}{}",
            String::from_utf8_lossy(&state.stdout).trim(),
            String::from_utf8_lossy(&logs.stdout),
            String::from_utf8_lossy(&logs.stderr)
        )
    }

    fn host_port_free(port: u16) -> bool {
        TcpListener::bind(("0.0.0.0", port)).is_ok()
            && TcpStream::connect_timeout(
                &SocketAddr::from(([127, 0, 0, 1], port)),
                Duration::from_millis(300),
            )
            .is_err()
    }

    /// Runs `image` (its own CMD) detached and fetches `http://<container>:80/`.
    /// Containers are registered in `cleanup`. `None`: skipped (already reported).
    pub fn serve_and_fetch(image: &str, cleanup: &mut DockerCleanup) -> Option<String> {
        serve_and_fetch_on(image, 80, cleanup)
    }

    /// Runs `image` (its own CMD) detached and fetches `http://<container>:PORT/`.
    /// Uses the default bridge network (container IP); if the bridge is unusable on this
    /// machine, falls back to `--network host` when the host's PORT is free.
    /// Containers are registered in `cleanup`. `None`: skipped (already reported).
    pub fn serve_and_fetch_on(
        image: &str,
        port: u16,
        cleanup: &mut DockerCleanup,
    ) -> Option<String> {
        serve_and_fetch_with(image, port, &[], cleanup)
    }

    /// [`serve_and_fetch_on`] with more `docker run` options (`--security-opt ...`).
    pub fn serve_and_fetch_with(
        image: &str,
        port: u16,
        run_options: &[&str],
        cleanup: &mut DockerCleanup,
    ) -> Option<String> {
        let run = |network: &[&str]| {
            let mut args = vec!["run", "-d"];
            args.extend(network);
            args.extend(run_options);
            args.push(image);
            docker_ok(args)
        };
        let cid = run(&[]);
        cleanup.containers.push(cid.clone());
        let ip = docker_ok(["inspect", "-f", "{{.NetworkSettings.IPAddress}}", &cid]);
        let bridge_err = match ip.parse::<std::net::IpAddr>() {
            Ok(ip) => match http_get(SocketAddr::new(ip, port), Duration::from_secs(20)) {
                Ok(body) => return Some(body),
                Err(e) => e,
            },
            Err(_) => format!("container has no bridge IP address ({ip:?})"),
        };
        // Did the server die? Then it is the image, not the network.
        let running = docker_ok(["inspect", "-f", "{{.State.Running}}", &cid]);
        assert_eq!(
            running,
            "true",
            "container of {image} is not running after start ({bridge_err}):\n{}",
            container_diagnostics(&cid)
        );
        eprintln!("bridge network unusable ({bridge_err}); falling back to --network host");
        let diag = container_diagnostics(&cid);
        docker(["rm", "-f", &cid]);
        if !host_port_free(port) {
            skip_or_panic(&format!(
                "the docker bridge network is unusable ({bridge_err}) and the host's port {port} \
                 is busy, so the server in {image} cannot be reached\n{diag}"
            ));
            return None;
        }
        let cid = run(&["--network", "host"]);
        cleanup.containers.push(cid.clone());
        match http_get(
            SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_secs(20),
        ) {
            Ok(body) => Some(body),
            Err(e) => panic!(
                "the server in {image} (--network host) not reachable on 127.0.0.1:{port}: {e}\n{}",
                container_diagnostics(&cid)
            ),
        }
    }

    // ------------------------------------------------------------------- digests

    pub fn sha256_hex(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    /// sha256 of everything `r` yields, streamed.
    pub fn sha256_reader(mut r: impl Read) -> std::io::Result<String> {
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = r.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Ok(hex::encode(h.finalize()))
    }

    pub fn sha256_file(path: &Path) -> String {
        let f = fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        sha256_reader(f).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    pub fn read_json(path: &Path) -> Value {
        let bytes = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
    }

    // ---------------------------------------------------------------- OCI layouts

    /// `blobs/sha256/<hex>` inside an OCI layout (or Docker 25+ archive) for `sha256:<hex>`.
    pub fn blob_path(layout: &Path, digest: &str) -> PathBuf {
        let (alg, hex) = digest
            .split_once(':')
            .unwrap_or_else(|| panic!("malformed digest {digest:?}"));
        layout.join("blobs").join(alg).join(hex)
    }

    /// Reads a blob and checks that its bytes match its digest.
    pub fn read_blob(layout: &Path, digest: &str) -> Vec<u8> {
        let path = blob_path(layout, digest);
        let bytes = fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        assert_eq!(
            format!("sha256:{}", sha256_hex(&bytes)),
            digest,
            "blob {} does not match its digest",
            path.display()
        );
        bytes
    }

    /// The descriptor in `index.json` tagged `tag` (annotation
    /// `org.opencontainers.image.ref.name`).
    pub fn oci_index_entry(layout: &Path, tag: &str) -> Value {
        let index = read_json(&layout.join("index.json"));
        let manifests = index["manifests"]
            .as_array()
            .unwrap_or_else(|| panic!("{}/index.json has no manifests: {index}", layout.display()));
        let found: Vec<&Value> = manifests
            .iter()
            .filter(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "{}/index.json: expected exactly one manifest tagged {tag:?}: {index}",
            layout.display()
        );
        found[0].clone()
    }

    /// An image manifest as stored in an OCI layout, with its digest.
    pub struct OciImage {
        pub manifest_digest: String,
        pub manifest: Value,
        pub config_digest: String,
        pub config_bytes: Vec<u8>,
        pub config: Value,
    }

    impl OciImage {
        pub fn diff_ids(&self) -> Vec<String> {
            json_strings(&self.config["rootfs"]["diff_ids"])
        }
        pub fn layers(&self) -> Vec<Value> {
            self.manifest["layers"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        }
    }

    pub fn json_strings(v: &Value) -> Vec<String> {
        v.as_array()
            .unwrap_or_else(|| panic!("expected a JSON array of strings, got {v}"))
            .iter()
            .map(|s| {
                s.as_str()
                    .unwrap_or_else(|| panic!("not a string: {s}"))
                    .to_string()
            })
            .collect()
    }

    /// Reads the image tagged `tag` from an OCI layout (manifest and config verified
    /// against their digests).
    pub fn oci_image(layout: &Path, tag: &str) -> OciImage {
        let entry = oci_index_entry(layout, tag);
        let manifest_digest = entry["digest"]
            .as_str()
            .expect("index entry digest")
            .to_string();
        let manifest: Value =
            serde_json::from_slice(&read_blob(layout, &manifest_digest)).expect("manifest is JSON");
        let config_digest = manifest["config"]["digest"]
            .as_str()
            .unwrap_or_else(|| panic!("manifest without config digest: {manifest}"))
            .to_string();
        let config_bytes = read_blob(layout, &config_digest);
        let config = serde_json::from_slice(&config_bytes).expect("config is JSON");
        OciImage {
            manifest_digest,
            manifest,
            config_digest,
            config_bytes,
            config,
        }
    }

    // ------------------------------------------------------------ docker archives

    /// Path of a tar member without `./` prefix or trailing `/`.
    pub fn norm(p: &Path) -> String {
        let s = p.to_string_lossy();
        let s = s.trim_start_matches("./").trim_start_matches('/');
        s.trim_end_matches('/').to_string()
    }

    /// Reads the named members (normalised names) of a tar file into memory.
    pub fn tar_members(tar_path: &Path, wanted: &[&str]) -> BTreeMap<String, Vec<u8>> {
        let f =
            fs::File::open(tar_path).unwrap_or_else(|e| panic!("open {}: {e}", tar_path.display()));
        let mut ar = tar::Archive::new(f);
        let mut found = BTreeMap::new();
        for entry in ar.entries().expect("tar entries") {
            let mut entry = entry.expect("tar entry");
            let name = norm(&entry.path().expect("tar path"));
            if wanted.contains(&name.as_str()) {
                let mut buf = Vec::new();
                entry.read_to_end(&mut buf).expect("read tar member");
                found.insert(name, buf);
            }
        }
        found
    }

    /// sha256 of every regular-file member of a tar file (streamed).
    pub fn tar_member_digests(tar_path: &Path) -> BTreeMap<String, String> {
        let f =
            fs::File::open(tar_path).unwrap_or_else(|e| panic!("open {}: {e}", tar_path.display()));
        let mut ar = tar::Archive::new(f);
        let mut out = BTreeMap::new();
        for entry in ar.entries().expect("tar entries") {
            let entry = entry.expect("tar entry");
            if entry.header().entry_type().is_file() {
                let name = norm(&entry.path().expect("tar path"));
                out.insert(name, sha256_reader(entry).expect("read tar member"));
            }
        }
        out
    }

    /// The first image of a `docker save` archive: its manifest.json entry, config bytes
    /// and parsed config.
    pub struct DockerArchiveImage {
        pub entry: Value,
        pub config_bytes: Vec<u8>,
        pub config: Value,
    }

    impl DockerArchiveImage {
        pub fn diff_ids(&self) -> Vec<String> {
            json_strings(&self.config["rootfs"]["diff_ids"])
        }
        pub fn layer_paths(&self) -> Vec<String> {
            json_strings(&self.entry["Layers"])
        }
    }

    pub fn docker_archive_image(tar_path: &Path) -> DockerArchiveImage {
        let m = tar_members(tar_path, &["manifest.json"]);
        let manifest: Value = serde_json::from_slice(
            m.get("manifest.json")
                .unwrap_or_else(|| panic!("{} has no manifest.json", tar_path.display())),
        )
        .expect("manifest.json is JSON");
        let entry = manifest
            .as_array()
            .and_then(|a| a.first())
            .unwrap_or_else(|| panic!("empty manifest.json: {manifest}"))
            .clone();
        let config_path = entry["Config"]
            .as_str()
            .expect("manifest.json Config")
            .to_string();
        let config_bytes = tar_members(tar_path, &[config_path.as_str()])
            .remove(&config_path)
            .unwrap_or_else(|| panic!("{} lacks {config_path}", tar_path.display()));
        let config = serde_json::from_slice(&config_bytes).expect("config is JSON");
        DockerArchiveImage {
            entry,
            config_bytes,
            config,
        }
    }

    // --------------------------------------------------------------- tree models

    /// What a path is, for comparing filesystem trees.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub enum Kind {
        File { sha256: String },
        Dir,
        Symlink { target: String },
        Fifo,
        Char { major: u64, minor: u64 },
        Block { major: u64, minor: u64 },
        Socket,
        Other(String),
    }

    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Node {
        pub kind: Kind,
        /// Permission bits including setuid/setgid/sticky (`mode & 0o7777`).
        pub mode: u32,
        pub uid: u64,
        pub gid: u64,
    }

    impl fmt::Display for Node {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(
                f,
                "{:?} mode {:04o} owner {}:{}",
                self.kind, self.mode, self.uid, self.gid
            )
        }
    }

    fn dev_major(rdev: u64) -> u64 {
        ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff)
    }

    fn dev_minor(rdev: u64) -> u64 {
        (rdev & 0xff) | ((rdev >> 12) & !0xff)
    }

    /// Every path below `root` (relative, `/`-separated; the root itself excluded),
    /// never following symlinks.
    pub fn tree_from_dir(root: &Path) -> BTreeMap<String, Node> {
        fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Node>) {
            let rd =
                fs::read_dir(dir).unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()));
            for ent in rd {
                let ent = ent.expect("dir entry");
                let path = ent.path();
                let md = fs::symlink_metadata(&path)
                    .unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()));
                let ft = md.file_type();
                let kind = if ft.is_dir() {
                    Kind::Dir
                } else if ft.is_file() {
                    Kind::File {
                        sha256: sha256_file(&path),
                    }
                } else if ft.is_symlink() {
                    let t = fs::read_link(&path).expect("readlink");
                    Kind::Symlink {
                        target: t.to_string_lossy().into_owned(),
                    }
                } else if ft.is_fifo() {
                    Kind::Fifo
                } else if ft.is_char_device() {
                    Kind::Char {
                        major: dev_major(md.rdev()),
                        minor: dev_minor(md.rdev()),
                    }
                } else if ft.is_block_device() {
                    Kind::Block {
                        major: dev_major(md.rdev()),
                        minor: dev_minor(md.rdev()),
                    }
                } else if ft.is_socket() {
                    Kind::Socket
                } else {
                    Kind::Other(format!("{ft:?}"))
                };
                let rel = path.strip_prefix(root).expect("below root");
                out.insert(
                    rel.to_string_lossy().into_owned(),
                    Node {
                        kind,
                        mode: md.mode() & 0o7777,
                        uid: u64::from(md.uid()),
                        gid: u64::from(md.gid()),
                    },
                );
                if ft.is_dir() {
                    walk(root, &path, out);
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(root, root, &mut out);
        out
    }

    /// The tree a (filesystem, not image) tar describes, e.g. `docker export` output.
    /// Hardlinks become regular files with their target's content; later members
    /// replace earlier ones.
    pub fn tree_from_tar(tar_path: &Path) -> BTreeMap<String, Node> {
        let f =
            fs::File::open(tar_path).unwrap_or_else(|e| panic!("open {}: {e}", tar_path.display()));
        let mut ar = tar::Archive::new(f);
        let mut out: BTreeMap<String, Node> = BTreeMap::new();
        for entry in ar.entries().expect("tar entries") {
            let entry = entry.expect("tar entry");
            let name = norm(&entry.path().expect("tar path"));
            if name.is_empty() || name == "." {
                continue;
            }
            let h = entry.header();
            let mode = h.mode().expect("tar mode") & 0o7777;
            let uid = h.uid().expect("tar uid");
            let gid = h.gid().expect("tar gid");
            let et = h.entry_type();
            let link = || {
                entry
                    .link_name()
                    .expect("tar link name")
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default()
            };
            let devno = || {
                (
                    u64::from(h.device_major().ok().flatten().unwrap_or(0)),
                    u64::from(h.device_minor().ok().flatten().unwrap_or(0)),
                )
            };
            let kind = match et {
                tar::EntryType::Directory => Kind::Dir,
                tar::EntryType::Symlink => Kind::Symlink { target: link() },
                tar::EntryType::Link => {
                    let target = norm(Path::new(&link()));
                    match out.get(&target) {
                        Some(Node {
                            kind: k @ Kind::File { .. },
                            ..
                        }) => k.clone(),
                        other => panic!(
                            "{}: hardlink {name} -> {target}: target is {other:?}",
                            tar_path.display()
                        ),
                    }
                }
                tar::EntryType::Fifo => Kind::Fifo,
                tar::EntryType::Char => {
                    let (major, minor) = devno();
                    Kind::Char { major, minor }
                }
                tar::EntryType::Block => {
                    let (major, minor) = devno();
                    Kind::Block { major, minor }
                }
                t if t.is_file() => Kind::File {
                    sha256: sha256_reader(entry).expect("read tar member"),
                },
                other => Kind::Other(format!("{other:?}")),
            };
            out.insert(
                name,
                Node {
                    kind,
                    mode,
                    uid,
                    gid,
                },
            );
        }
        out
    }

    /// Human-readable differences between two trees (`a` and `b` name the sides).
    pub fn tree_diff(
        a_name: &str,
        a: &BTreeMap<String, Node>,
        b_name: &str,
        b: &BTreeMap<String, Node>,
    ) -> Vec<String> {
        let mut diffs = Vec::new();
        for (path, na) in a {
            match b.get(path) {
                None => diffs.push(format!("{path}: only in {a_name} ({na})")),
                Some(nb) if nb != na => {
                    diffs.push(format!("{path}: {a_name} has {na}; {b_name} has {nb}"))
                }
                Some(_) => {}
            }
        }
        for (path, nb) in b {
            if !a.contains_key(path) {
                diffs.push(format!("{path}: only in {b_name} ({nb})"));
            }
        }
        diffs.sort();
        diffs
    }
}

// ---------------------------------------------------------------------------------------
// slim_e2e: helpers for crates/cli/tests/e2e_slim.rs (`whittle slim/extract/why` on real
// images: the nginx fixture plus tests/fixtures/slim-images.sh's cxx, musl and busybox
// images; outputs are loaded into dockerd and run).
// ---------------------------------------------------------------------------------------
#[allow(dead_code)]
pub mod slim_e2e {
    use std::collections::{BTreeMap, BTreeSet};
    use std::ffi::OsStr;
    use std::fs;
    use std::io::{BufRead, BufReader, Read};
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output, Stdio};
    use std::sync::OnceLock;

    use serde_json::Value;

    use super::docker_e2e::{
        docker, docker_archive_image, docker_ok, find_tool, fixture, norm, skip_or_panic, whittle,
        workspace_root, FIXTURE_LOCK,
    };

    /// The page the nginx fixture serves.
    pub const PAGE: &str = "whittle test page";

    /// The --include flags nginx needs: data files no static analysis can find.
    pub const NGINX_INCLUDES: [&str; 5] = [
        "/etc/nginx",
        "/var/www",
        "/usr/share/nginx",
        "/var/lib/nginx",
        "/var/log/nginx",
    ];

    /// `--include P` for each of `NGINX_INCLUDES`.
    pub fn nginx_include_args() -> Vec<String> {
        NGINX_INCLUDES
            .iter()
            .flat_map(|p| ["--include".to_string(), p.to_string()])
            .collect()
    }

    // ----------------------------------------------------------------- fixtures

    enum SlimFixtureError {
        Unavailable(String),
        Failed(String),
    }

    /// Both fixture directories: the nginx one (base.tar, nginx.tar, export.tar) and the
    /// slim one (cxx.tar, musl.tar, busybox.tar, expected/NAME.txt).
    pub struct Fixtures {
        pub nginx: &'static Path,
        pub slim: &'static Path,
    }

    /// A fixture directory: `$ENV`, else `<workspace>/target/fixtures/<sub>`.
    fn fixture_dir(env: &str, sub: &str) -> PathBuf {
        match std::env::var_os(env) {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => workspace_root().join("target/fixtures").join(sub),
        }
    }

    /// Builds the images of `tests/fixtures/<script> DIR NGINX` once (cached by DIR/.done).
    fn build_script_fixture(
        dir: PathBuf,
        script: &str,
        tools: &[&str],
        nginx: &Path,
    ) -> Result<PathBuf, SlimFixtureError> {
        if dir.join(".done").is_file() {
            return Ok(dir);
        }
        let script = workspace_root().join("tests/fixtures").join(script);
        if !script.is_file() {
            return Err(SlimFixtureError::Failed(format!(
                "{} is missing",
                script.display()
            )));
        }
        for tool in ["bash", "flock", "docker"].iter().chain(tools) {
            if find_tool(tool).is_none() {
                return Err(SlimFixtureError::Unavailable(format!(
                    "cannot build the fixtures in {}: `{tool}` is not installed",
                    dir.display()
                )));
            }
        }
        if !Path::new("/bin/busybox").is_file() {
            return Err(SlimFixtureError::Unavailable(format!(
                "cannot build the fixtures in {}: /bin/busybox (busybox-static) is \
                 not installed",
                dir.display()
            )));
        }
        eprintln!(
            "building the fixtures in {} (once; cached by .done)",
            dir.display()
        );
        // Same lock as the nginx fixture (built before, not nested): the script is
        // idempotent and flock makes concurrent test processes wait for the first.
        let out = Command::new("flock")
            .arg(FIXTURE_LOCK)
            .arg("bash")
            .arg(&script)
            .arg(&dir)
            .arg(nginx)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| SlimFixtureError::Failed(format!("cannot run flock/bash: {e}")))?;
        if !out.status.success() || !dir.join(".done").is_file() {
            return Err(SlimFixtureError::Failed(format!(
                "{} {} {} failed ({}):\nstdout:\n{}\nstderr:\n{}",
                script.display(),
                dir.display(),
                nginx.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(dir)
    }

    fn build_slim_fixture(nginx: &Path) -> Result<PathBuf, SlimFixtureError> {
        build_script_fixture(
            fixture_dir("WHITTLE_SLIM_FIXTURES", "slim"),
            "slim-images.sh",
            &["g++", "musl-gcc", "readelf"],
            nginx,
        )
    }

    /// The nginx fixture and the builder image of tests/fixtures/build-images.sh
    /// ($WHITTLE_BUILD_FIXTURES): builder.tar, a debootstrap Debian with musl-tools.
    pub fn build_fixtures() -> Option<(&'static Path, &'static Path)> {
        if !super::docker_e2e::require_tools(&["docker"]) {
            return None;
        }
        let nginx = fixture()?;
        static BUILD: OnceLock<Result<PathBuf, SlimFixtureError>> = OnceLock::new();
        let built = BUILD.get_or_init(|| {
            build_script_fixture(
                fixture_dir("WHITTLE_BUILD_FIXTURES", "build"),
                "build-images.sh",
                &["debootstrap"],
                nginx,
            )
        });
        match built {
            Ok(dir) => Some((nginx, dir.as_path())),
            Err(SlimFixtureError::Unavailable(reason)) => {
                skip_or_panic(reason);
                None
            }
            Err(SlimFixtureError::Failed(msg)) => panic!("build fixtures: {msg}"),
        }
    }

    /// The nginx fixture and the run-time tracing images of tests/fixtures/trace-images.sh
    /// ($WHITTLE_TRACE_FIXTURES): dlopen, echo, batch, forks, stubborn (.tar each,
    /// expected/NAME.txt). `None`: skip (already reported; a failure when `CI` is set).
    pub fn trace_fixtures() -> Option<(&'static Path, &'static Path)> {
        if !super::docker_e2e::require_tools(&["docker"]) {
            return None;
        }
        let nginx = fixture()?;
        static TRACE: OnceLock<Result<PathBuf, SlimFixtureError>> = OnceLock::new();
        let built = TRACE.get_or_init(|| {
            build_script_fixture(
                fixture_dir("WHITTLE_TRACE_FIXTURES", "trace"),
                "trace-images.sh",
                &["gcc", "readelf"],
                nginx,
            )
        });
        match built {
            Ok(dir) => Some((nginx, dir.as_path())),
            Err(SlimFixtureError::Unavailable(reason)) => {
                skip_or_panic(reason);
                None
            }
            Err(SlimFixtureError::Failed(msg)) => panic!("trace fixtures: {msg}"),
        }
    }

    /// Real applications on Debian bookworm from tests/fixtures/app-images.sh
    /// ($WHITTLE_APP_FIXTURES): postgres.tar (Debian's cluster), python.tar
    /// (http.server as pid 1). `None`: skip (already reported; a failure when `CI` is set).
    pub fn app_fixtures() -> Option<&'static Path> {
        if !super::docker_e2e::require_tools(&["docker", "psql"]) {
            return None;
        }
        let nginx = fixture()?;
        static APPS: OnceLock<Result<PathBuf, SlimFixtureError>> = OnceLock::new();
        let built = APPS.get_or_init(|| {
            build_script_fixture(
                fixture_dir("WHITTLE_APP_FIXTURES", "apps"),
                "app-images.sh",
                &["debootstrap"],
                nginx,
            )
        });
        match built {
            Ok(dir) => Some(dir.as_path()),
            Err(SlimFixtureError::Unavailable(reason)) => {
                skip_or_panic(reason);
                None
            }
            Err(SlimFixtureError::Failed(msg)) => panic!("app fixtures: {msg}"),
        }
    }

    /// The nginx and slim fixtures, built at most once per process, and a working
    /// docker. `None`: skip the test (already reported; a failure when `CI` is set).
    pub fn fixtures() -> Option<Fixtures> {
        if !super::docker_e2e::require_tools(&["docker"]) {
            return None;
        }
        let nginx = fixture()?;
        static SLIM: OnceLock<Result<PathBuf, SlimFixtureError>> = OnceLock::new();
        match SLIM.get_or_init(|| build_slim_fixture(nginx)) {
            Ok(slim) => Some(Fixtures {
                nginx,
                slim: slim.as_path(),
            }),
            Err(SlimFixtureError::Unavailable(reason)) => {
                skip_or_panic(reason);
                None
            }
            Err(SlimFixtureError::Failed(msg)) => panic!("slim fixtures: {msg}"),
        }
    }

    /// What the fixture script saw image NAME print (expected/NAME.txt, one line).
    pub fn expected_output(slim: &Path, name: &str) -> String {
        let p = slim.join("expected").join(format!("{name}.txt"));
        fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
    }

    // ---------------------------------------------------------------- references

    /// A temporary directory whose name has no ':' (see `reference`).
    pub fn tempdir() -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix("whittle-slim-e2e-")
            .tempdir()
            .expect("temp dir")
    }

    // ----------------------------------------------------------------- whittle

    /// Output of a whittle run, with its command line for messages.
    pub struct Run {
        pub cmdline: String,
        pub out: Output,
    }

    impl Run {
        pub fn stdout(&self) -> String {
            String::from_utf8_lossy(&self.out.stdout).into_owned()
        }
        pub fn stderr(&self) -> String {
            String::from_utf8_lossy(&self.out.stderr).into_owned()
        }
        pub fn code(&self) -> Option<i32> {
            self.out.status.code()
        }
        /// For assertion messages.
        pub fn describe(&self) -> String {
            format!(
                "`{}` exited with {}:\nstdout:\n{}\nstderr:\n{}",
                self.cmdline,
                self.out.status,
                self.stdout(),
                self.stderr()
            )
        }
        /// Panics unless the run exited 0.
        pub fn ok(self) -> Self {
            assert!(self.out.status.success(), "{}", self.describe());
            self
        }
        /// The manifest digest printed on stdout (checked to be `sha256:<64 hex>`).
        pub fn digest(&self) -> String {
            let s = self.stdout();
            let d = s.trim().lines().last().unwrap_or("").trim().to_string();
            let hex = d.strip_prefix("sha256:").unwrap_or("");
            assert!(
                hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
                "stdout should end with the output manifest digest; {}",
                self.describe()
            );
            d
        }
    }

    /// Runs `whittle ARGS...` (whatever its outcome), and fails the test on any panic
    /// or signal death: whittle must never panic, whatever the input.
    pub fn run_whittle<I, S>(args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_whittle_env(args, &[])
    }

    /// [`run_whittle`] with extra environment variables.
    pub fn run_whittle_env<I, S>(args: I, env: &[(&str, &str)]) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = whittle();
        cmd.args(args);
        cmd.envs(env.iter().copied());
        let cmdline = format!(
            "whittle {}",
            cmd.get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        );
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {cmdline}: {e}"));
        let run = Run { cmdline, out };
        assert!(
            !run.stderr().contains("panicked") && run.code().is_some(),
            "whittle panicked or was killed by a signal; {}",
            run.describe()
        );
        assert!(
            matches!(run.code(), Some(0..=2)),
            "whittle exited with an undocumented status; {}",
            run.describe()
        );
        run
    }

    // ------------------------------------------------------------------- docker

    /// `docker load -i ARCHIVE`, checking docker reports loading `tag`.
    pub fn docker_load(archive: &Path, tag: &str) {
        let out = docker_ok(["load", "-i", archive.to_str().unwrap()]);
        assert!(
            out.contains(&format!("Loaded image: {tag}")),
            "docker load -i {} did not load {tag}: {out}",
            archive.display()
        );
    }

    /// `docker run --rm --network none IMAGE`: exit status and stdout, stderr.
    pub fn docker_run_offline(image: &str) -> (bool, String, String) {
        let out = docker(["run", "--rm", "--network", "none", image]);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `docker image inspect REF` (the single object), or None.
    pub fn docker_image_inspect(r: &str) -> Option<Value> {
        let out = docker(["image", "inspect", r]);
        if !out.status.success() {
            return None;
        }
        let v: Value = serde_json::from_slice(&out.stdout).expect("docker inspect JSON");
        v.as_array().and_then(|a| a.first()).cloned()
    }

    // ---------------------------------------------------------- docker archives

    /// One member of an image layer.
    #[derive(Clone, Debug)]
    pub struct Member {
        /// 'f' file, 'd' dir, 'l' symlink, 'h' hardlink, 'o' other.
        pub kind: char,
        pub size: u64,
        pub link: Option<String>,
        pub mode: u32,
    }

    /// The layers of a docker-archive: their sizes as stored (plain tars there) and
    /// the union of their members, named `/abs/path` (later layers win; whiteouts are
    /// listed as they are).
    pub struct ArchiveLayers {
        pub sizes: Vec<u64>,
        pub members: BTreeMap<String, Member>,
    }

    impl ArchiveLayers {
        pub fn total_size(&self) -> u64 {
            self.sizes.iter().sum()
        }
    }

    fn read_layer(r: impl Read, into: &mut BTreeMap<String, Member>) {
        let mut br = BufReader::new(r);
        let head = br.fill_buf().expect("read layer").to_vec();
        let reader: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
            Box::new(flate2::read::MultiGzDecoder::new(br))
        } else {
            assert!(
                !head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]),
                "zstd layer in a docker archive (they hold plain tars)"
            );
            Box::new(br)
        };
        let mut ar = tar::Archive::new(reader);
        for entry in ar.entries().expect("layer tar entries") {
            let entry = entry.expect("layer tar entry");
            let name = norm(&entry.path().expect("layer member path"));
            if name.is_empty() || name == "." {
                continue;
            }
            let h = entry.header();
            let et = h.entry_type();
            let kind = match et {
                tar::EntryType::Directory => 'd',
                tar::EntryType::Symlink => 'l',
                tar::EntryType::Link => 'h',
                t if t.is_file() => 'f',
                _ => 'o',
            };
            let link = entry
                .link_name()
                .ok()
                .flatten()
                .map(|p| p.to_string_lossy().into_owned());
            into.insert(
                format!("/{name}"),
                Member {
                    kind,
                    size: h.size().unwrap_or(0),
                    link,
                    mode: h.mode().unwrap_or(0),
                },
            );
        }
    }

    /// Reads a docker-archive's layers (first image of manifest.json).
    pub fn archive_layers(archive: &Path) -> ArchiveLayers {
        let img = docker_archive_image(archive);
        let layer_paths = img.layer_paths();
        let mut sizes = vec![None; layer_paths.len()];
        let mut per_layer: Vec<BTreeMap<String, Member>> = vec![BTreeMap::new(); layer_paths.len()];
        let f =
            fs::File::open(archive).unwrap_or_else(|e| panic!("open {}: {e}", archive.display()));
        let mut ar = tar::Archive::new(f);
        for entry in ar.entries().expect("archive entries") {
            let entry = entry.expect("archive entry");
            let name = norm(&entry.path().expect("archive member path"));
            // The same blob may be listed twice; every listing gets the members.
            let idx: Vec<usize> = layer_paths
                .iter()
                .enumerate()
                .filter(|(_, p)| norm(Path::new(p.as_str())) == name)
                .map(|(i, _)| i)
                .collect();
            if idx.is_empty() {
                continue;
            }
            let size = entry.header().size().expect("layer size");
            let mut members = BTreeMap::new();
            read_layer(entry, &mut members);
            for i in idx {
                sizes[i] = Some(size);
                per_layer[i] = members.clone();
            }
        }
        let sizes = sizes
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                s.unwrap_or_else(|| {
                    panic!(
                        "{}: layer {} not in the archive",
                        archive.display(),
                        layer_paths[i]
                    )
                })
            })
            .collect();
        let mut members = BTreeMap::new();
        for layer in per_layer {
            members.extend(layer);
        }
        ArchiveLayers { sizes, members }
    }

    /// Whether a docker-archive (Docker 25+ form) stores the blob `sha256:<hex>`.
    pub fn archive_has_blob(archive: &Path, digest: &str) -> bool {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        let want = format!("blobs/sha256/{hex}");
        let f =
            fs::File::open(archive).unwrap_or_else(|e| panic!("open {}: {e}", archive.display()));
        let mut ar = tar::Archive::new(f);
        let found = ar.entries().expect("archive entries").any(|e| {
            let e = e.expect("archive entry");
            norm(&e.path().expect("member path")) == want
        });
        found
    }

    /// Names (`/abs/path`) of every member of a filesystem tar (e.g. docker export).
    pub fn tar_names(tar_path: &Path) -> BTreeSet<String> {
        let f =
            fs::File::open(tar_path).unwrap_or_else(|e| panic!("open {}: {e}", tar_path.display()));
        let mut ar = tar::Archive::new(f);
        let mut out = BTreeSet::new();
        for entry in ar.entries().expect("tar entries") {
            let entry = entry.expect("tar entry");
            let name = norm(&entry.path().expect("tar path"));
            if !name.is_empty() && name != "." {
                out.insert(format!("/{name}"));
            }
        }
        out
    }

    /// Unpacks every layer of a single-layer docker-archive into `dest` (used to turn an
    /// image into a `dir:` root).
    pub fn unpack_single_layer(archive: &Path, dest: &Path) {
        let img = docker_archive_image(archive);
        let layers = img.layer_paths();
        assert_eq!(
            layers.len(),
            1,
            "{} should have one layer",
            archive.display()
        );
        let want = norm(Path::new(&layers[0]));
        let f =
            fs::File::open(archive).unwrap_or_else(|e| panic!("open {}: {e}", archive.display()));
        let mut ar = tar::Archive::new(f);
        for entry in ar.entries().expect("archive entries") {
            let entry = entry.expect("archive entry");
            if norm(&entry.path().expect("member path")) == want {
                let mut layer = tar::Archive::new(entry);
                layer.set_preserve_permissions(true);
                layer
                    .unpack(dest)
                    .unwrap_or_else(|e| panic!("unpack layer into {}: {e}", dest.display()));
                return;
            }
        }
        panic!("{}: layer {want} not found", archive.display());
    }

    // ------------------------------------------------------------------- reports

    /// One `kept` entry of a slim report.
    #[derive(Clone, Debug)]
    pub struct Kept {
        pub reason: String,
        pub chain: Vec<String>,
    }

    /// `found_by` of every kept path of a report file (`static`, `trace`, `include`).
    pub fn read_report(path: &Path) -> BTreeMap<String, Vec<String>> {
        let report: Value = serde_json::from_slice(
            &fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display())),
        )
        .expect("report JSON");
        report["kept"]
            .as_array()
            .expect("kept array")
            .iter()
            .map(|k| {
                let found = k["found_by"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|s| s.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                (k["path"].as_str().expect("path").to_string(), found)
            })
            .collect()
    }

    /// `kept` of a report, by path; panics on a malformed entry.
    pub fn report_kept(report: &Value) -> BTreeMap<String, Kept> {
        let kept = report["kept"]
            .as_array()
            .unwrap_or_else(|| panic!("report has no `kept` array: {report}"));
        let mut out = BTreeMap::new();
        for k in kept {
            let path = k["path"]
                .as_str()
                .unwrap_or_else(|| panic!("kept entry without a path: {k}"))
                .to_string();
            let reason = k["reason"].as_str().unwrap_or("").to_string();
            let chain = k["chain"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|s| s.as_str().unwrap_or("<not a string>").to_string())
                        .collect()
                })
                .unwrap_or_default();
            let dup = out.insert(path.clone(), Kept { reason, chain });
            assert!(dup.is_none(), "report keeps {path} twice");
        }
        out
    }

    /// The reasons that name a FROM path (`DT_NEEDED of /usr/sbin/nginx`).
    const LINK_REASONS: [&str; 11] = [
        "argument of ",
        "target of symlink ",
        "in the tree of ",
        "needed by threaded glibc programs such as ",
        "interpreter of ",
        "PT_INTERP of ",
        "DT_NEEDED of ",
        "dlopen note of ",
        "symlink on the path to ",
        "parent directory of ",
        "NSS module for ",
    ];

    /// The root reasons docs/CLI.md lists (besides `implicit: ...` and `--include P`).
    const ROOT_REASONS: [&str; 9] = [
        "entrypoint",
        "--layering packages (the base's C library)",
        "--base-libs all",
        "WORKDIR",
        "VOLUME",
        "/tmp",
        "--include-shell",
        "package database",
        "added above the base",
    ];

    /// The FROM path of a linking reason, None for a root reason. Besides the
    /// documented forms (`DT_NEEDED of FROM`, ...), any reason `WORDS /FROM` (not an
    /// `--option`) whose FROM is a kept path links to it, so that chains using
    /// undocumented wording are still walked (`report_undocumented_reasons` flags the
    /// wording itself).
    pub fn reason_from<'a>(reason: &'a str, kept: &BTreeMap<String, Kept>) -> Option<&'a str> {
        if let Some(from) = LINK_REASONS.iter().find_map(|p| reason.strip_prefix(p)) {
            return Some(from);
        }
        if reason.starts_with("--") {
            return None;
        }
        let i = reason.find(" /")?;
        let from = &reason[i + 1..];
        kept.contains_key(from).then_some(from)
    }

    /// Reasons not in docs/CLI.md's list, with an example path each.
    pub fn report_undocumented_reasons(kept: &BTreeMap<String, Kept>) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (path, k) in kept {
            let documented = ROOT_REASONS.contains(&k.reason.as_str())
                || k.reason.starts_with("implicit: ")
                || k.reason.starts_with("--include ")
                || LINK_REASONS.iter().any(|p| {
                    k.reason
                        .strip_prefix(p)
                        .is_some_and(|from| from.starts_with('/'))
                });
            if !documented {
                // Group by wording: the reason without its trailing path.
                let form = match k.reason.find(" /") {
                    Some(i) => format!("{} FROM", &k.reason[..i]),
                    None => k.reason.clone(),
                };
                out.entry(form)
                    .or_insert_with(|| format!("{path}: {:?}", k.reason));
            }
        }
        out
    }

    /// Checks every kept entry: a non-empty reason; `chain` = [path, reason, reason of
    /// FROM, ..., root reason], each FROM itself kept, ending in a root reason. Returns
    /// the problems found (empty = fine).
    pub fn report_chain_problems(kept: &BTreeMap<String, Kept>) -> Vec<String> {
        let mut problems = Vec::new();
        for (path, k) in kept {
            if k.reason.trim().is_empty() {
                problems.push(format!("{path}: empty reason"));
                continue;
            }
            if k.chain.len() < 2 {
                problems.push(format!("{path}: chain too short: {:?}", k.chain));
                continue;
            }
            if k.chain[0] != *path || k.chain[1] != k.reason {
                problems.push(format!(
                    "{path}: chain should start [path, reason] = [{path:?}, {:?}]: {:?}",
                    k.reason, k.chain
                ));
                continue;
            }
            // Walk the FROM links; each step's next chain element is FROM's reason.
            let mut ok = true;
            for i in 1..k.chain.len() {
                let step = &k.chain[i];
                match reason_from(step, kept) {
                    Some(from) => {
                        let Some(fk) = kept.get(from) else {
                            problems.push(format!(
                                "{path}: chain step {step:?} names {from}, which is not kept"
                            ));
                            ok = false;
                            break;
                        };
                        match k.chain.get(i + 1) {
                            Some(next) if *next == fk.reason => {}
                            Some(next) => {
                                problems.push(format!(
                                    "{path}: chain step after {step:?} is {next:?}, but {from} \
                                     is kept for {:?}",
                                    fk.reason
                                ));
                                ok = false;
                                break;
                            }
                            None => {
                                problems.push(format!(
                                    "{path}: chain ends in {step:?}, not in a root reason: {:?}",
                                    k.chain
                                ));
                                ok = false;
                                break;
                            }
                        }
                    }
                    None => {
                        if i != k.chain.len() - 1 {
                            problems.push(format!(
                                "{path}: root reason {step:?} in the middle of the chain {:?}",
                                k.chain
                            ));
                            ok = false;
                        }
                        break;
                    }
                }
            }
            if ok && k.chain.last().is_some_and(|r| r.trim().is_empty()) {
                problems.push(format!("{path}: empty root reason in {:?}", k.chain));
            }
        }
        problems
    }

    /// First `n` items, one per line, for messages.
    pub fn first_lines<T: std::fmt::Display>(
        items: impl IntoIterator<Item = T>,
        n: usize,
    ) -> String {
        items
            .into_iter()
            .take(n)
            .map(|i| format!("  {i}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Whether `dir` has no entries (an error run must leave nothing behind).
    pub fn dir_entries(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------
// multi_platform: a two-platform image index built from the nginx fixture's OCI layout.
// ---------------------------------------------------------------------------------------
#[allow(dead_code)]
pub mod multi_platform {
    use std::fs;
    use std::path::Path;

    use serde_json::{json, Value};

    use super::docker_e2e::{oci_image, sha256_hex};

    pub fn put_blob(layout: &Path, bytes: &[u8]) -> (String, usize) {
        let hex = sha256_hex(bytes);
        fs::write(layout.join("blobs/sha256").join(&hex), bytes).unwrap();
        (format!("sha256:{hex}"), bytes.len())
    }

    /// Copies the fixture layout and adds tag `multi`: an index of two platforms.
    pub fn multi_platform_layout(fx: &Path, dir: &Path) -> (String, String) {
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
}

// ---------------------------------------------------------------------------------------
// sbom_e2e: the SBOM formats' own validators (crates/cli/tests/e2e_sbom.rs), from the venv
// scripts/setup.sh makes ($WHITTLE_VENV, default /opt/whittle-venv).
// ---------------------------------------------------------------------------------------
#[allow(dead_code)]
pub mod sbom_e2e {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// pyspdxtools and a Python with cyclonedx-python-lib's JSON validator.
    pub struct Validators {
        pyspdxtools: PathBuf,
        python: PathBuf,
    }

    /// The validators, or `None` after `skip_or_panic` (a failure when `CI` is set: setup.sh
    /// installs them).
    pub fn validators() -> Option<Validators> {
        let venv = std::env::var_os("WHITTLE_VENV")
            .filter(|v| !v.is_empty())
            .map_or_else(|| PathBuf::from("/opt/whittle-venv"), PathBuf::from);
        let v = Validators {
            pyspdxtools: venv.join("bin/pyspdxtools"),
            python: venv.join("bin/python"),
        };
        let cyclonedx = Command::new(&v.python)
            .args([
                "-c",
                "from cyclonedx.validation.json import JsonStrictValidator",
            ])
            .output()
            .is_ok_and(|o| o.status.success());
        if !v.pyspdxtools.is_file() || !cyclonedx {
            super::docker_e2e::skip_or_panic(&format!(
                "the SBOM validators (spdx-tools, cyclonedx-python-lib[json-validation]) are \
                 not in {} (scripts/setup.sh installs them)",
                venv.display()
            ));
            return None;
        }
        Some(v)
    }

    impl Validators {
        /// `pyspdxtools -i FILE`: parses and validates an SPDX document; the error is its output.
        pub fn spdx(&self, file: &Path) -> Result<(), String> {
            let out = Command::new(&self.pyspdxtools)
                .arg("-i")
                .arg(file)
                .output()
                .map_err(|e| format!("cannot run {}: {e}", self.pyspdxtools.display()))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "pyspdxtools -i {} exited with {}:\n{}{}",
                    file.display(),
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ))
            }
        }

        /// cyclonedx-python-lib's strict JSON schema validation for CycloneDX 1.5.
        pub fn cyclonedx(&self, file: &Path) -> Result<(), String> {
            const SCRIPT: &str = "
import sys
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
error = JsonStrictValidator(SchemaVersion.V1_5).validate_str(open(sys.argv[1]).read())
if error is not None:
    print(error)
    sys.exit(1)
";
            let out = Command::new(&self.python)
                .args(["-c", SCRIPT])
                .arg(file)
                .output()
                .map_err(|e| format!("cannot run {}: {e}", self.python.display()))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "the CycloneDX 1.5 validator refused {}:\n{}{}",
                    file.display(),
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ))
            }
        }
    }
}
