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

    fn host_port_80_free() -> bool {
        TcpListener::bind(("0.0.0.0", 80)).is_ok()
            && TcpStream::connect_timeout(
                &SocketAddr::from(([127, 0, 0, 1], 80)),
                Duration::from_millis(300),
            )
            .is_err()
    }

    /// Runs `image` (its own CMD) detached and fetches `http://<container>:80/`.
    /// Uses the default bridge network (container IP); if the bridge is unusable on this
    /// machine, falls back to `--network host` when the host's port 80 is free.
    /// Containers are registered in `cleanup`. `None`: skipped (already reported).
    pub fn serve_and_fetch(image: &str, cleanup: &mut DockerCleanup) -> Option<String> {
        let cid = docker_ok(["run", "-d", image]);
        cleanup.containers.push(cid.clone());
        let ip = docker_ok(["inspect", "-f", "{{.NetworkSettings.IPAddress}}", &cid]);
        let bridge_err = match ip.parse::<std::net::IpAddr>() {
            Ok(ip) => match http_get(SocketAddr::new(ip, 80), Duration::from_secs(10)) {
                Ok(body) => return Some(body),
                Err(e) => e,
            },
            Err(_) => format!("container has no bridge IP address ({ip:?})"),
        };
        // Did nginx die? Then it is the image, not the network.
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
        if !host_port_80_free() {
            skip_or_panic(&format!(
                "the docker bridge network is unusable ({bridge_err}) and the host's port 80 \
                 is busy, so nginx in {image} cannot be reached\n{diag}"
            ));
            return None;
        }
        let cid = docker_ok(["run", "-d", "--network", "host", image]);
        cleanup.containers.push(cid.clone());
        match http_get(
            SocketAddr::from(([127, 0, 0, 1], 80)),
            Duration::from_secs(10),
        ) {
            Ok(body) => Some(body),
            Err(e) => panic!(
                "nginx in {image} (--network host) not reachable on 127.0.0.1:80: {e}\n{}",
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
