//! Hostile-input corpus for the `whittle` CLI (docs/CLI.md).
//!
//! Every input is crafted here, in a temp dir, as a minimal OCI layout. Layer
//! tars with malicious members are written header by header, because the `tar`
//! crate's safe setters refuse `..` and absolute names.
//!
//! Each test asserts either a refusal (exit 1, `whittle: error:` naming the
//! problem, no panic, destination absent) or success with a verified safe result.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// How long an ordinary run may take before it counts as a hang.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------
// Raw ustar members
// ---------------------------------------------------------------------------

/// One tar member, written verbatim (no path checks of any kind).
struct Member<'a> {
    name: &'a str,
    kind: u8,
    mode: u32,
    data: &'a [u8],
    link: &'a str,
    dev: (u32, u32),
}

fn member(name: &str, kind: u8, mode: u32) -> Member<'_> {
    Member {
        name,
        kind,
        mode,
        data: b"",
        link: "",
        dev: (0, 0),
    }
}

fn file<'a>(name: &'a str, data: &'a [u8]) -> Member<'a> {
    Member {
        data,
        ..member(name, b'0', 0o644)
    }
}

fn dir(name: &str) -> Member<'_> {
    member(name, b'5', 0o755)
}

fn symlink<'a>(name: &'a str, target: &'a str) -> Member<'a> {
    Member {
        link: target,
        ..member(name, b'2', 0o777)
    }
}

fn hardlink<'a>(name: &'a str, target: &'a str) -> Member<'a> {
    Member {
        link: target,
        ..member(name, b'1', 0o644)
    }
}

fn char_device(name: &str, major: u32, minor: u32) -> Member<'_> {
    Member {
        dev: (major, minor),
        ..member(name, b'3', 0o666)
    }
}

fn fifo(name: &str) -> Member<'_> {
    member(name, b'6', 0o644)
}

/// Writes `value` as zero-padded octal filling all but the last byte of `field`, then NUL.
fn put_octal(field: &mut [u8], value: u64) {
    let digits = format!("{value:0width$o}", width = field.len() - 1);
    assert_eq!(
        digits.len(),
        field.len() - 1,
        "{value} does not fit a {}-byte tar field",
        field.len()
    );
    field[..digits.len()].copy_from_slice(digits.as_bytes());
    field[digits.len()] = 0;
}

fn put_bytes(field: &mut [u8], value: &[u8]) {
    assert!(
        value.len() <= field.len(),
        "{:?} does not fit a {}-byte tar field",
        String::from_utf8_lossy(value),
        field.len()
    );
    field[..value.len()].copy_from_slice(value);
}

/// A raw 512-byte ustar header; nothing about `name` or `link` is checked.
fn ustar_header(
    name: &str,
    kind: u8,
    mode: u32,
    size: u64,
    link: &str,
    dev: (u32, u32),
) -> [u8; 512] {
    let mut h = [0u8; 512];
    put_bytes(&mut h[0..100], name.as_bytes());
    put_octal(&mut h[100..108], u64::from(mode));
    put_octal(&mut h[108..116], 0); // uid
    put_octal(&mut h[116..124], 0); // gid
    put_octal(&mut h[124..136], size);
    put_octal(&mut h[136..148], 1_700_000_000); // mtime
    h[156] = kind;
    put_bytes(&mut h[157..257], link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    put_bytes(&mut h[265..297], b"root");
    put_bytes(&mut h[297..329], b"root");
    put_octal(&mut h[329..337], u64::from(dev.0));
    put_octal(&mut h[337..345], u64::from(dev.1));
    // The checksum is the byte sum with the checksum field itself taken as spaces.
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

fn pad_to_block(out: &mut (impl Write + ?Sized), len: u64) -> io::Result<()> {
    let rem = (len % 512) as usize;
    if rem != 0 {
        out.write_all(&[0u8; 512][rem..])?;
    }
    Ok(())
}

/// A complete tar stream: each member's header and padded data, then two zero blocks.
fn tar_of(members: &[Member]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in members {
        out.extend_from_slice(&ustar_header(
            m.name,
            m.kind,
            m.mode,
            m.data.len() as u64,
            m.link,
            m.dev,
        ));
        out.extend_from_slice(m.data);
        pad_to_block(&mut out, m.data.len() as u64).unwrap();
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// xorshift64 noise: incompressible, cheap, reproducible.
fn noise(len: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut v = vec![0u8; len];
    for chunk in v.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
    v
}

// ---------------------------------------------------------------------------
// OCI layouts
// ---------------------------------------------------------------------------

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The hex part of a `sha256:HEX` digest.
fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").expect("a sha256 digest")
}

fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    layout.join("blobs/sha256").join(hex_of(digest))
}

/// Stores `bytes` as a blob; returns its digest and size.
fn put_blob(layout: &Path, bytes: &[u8]) -> (String, u64) {
    fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    let digest = format!("sha256:{}", sha256_hex(bytes));
    fs::write(blob_path(layout, &digest), bytes).unwrap();
    (digest, bytes.len() as u64)
}

/// A layer blob already stored in a layout.
#[derive(Clone, Debug)]
struct Layer {
    digest: String,
    size: u64,
    media_type: &'static str,
    diff_id: String,
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Stores `tar` gzip-compressed as a layer.
fn gzip_layer(layout: &Path, tar: &[u8]) -> Layer {
    let (digest, size) = put_blob(layout, &gzip(tar));
    Layer {
        digest,
        size,
        media_type: LAYER_GZIP,
        diff_id: format!("sha256:{}", sha256_hex(tar)),
    }
}

/// Stores `tar` uncompressed as a layer.
fn plain_layer(layout: &Path, tar: &[u8]) -> Layer {
    let (digest, size) = put_blob(layout, tar);
    Layer {
        diff_id: digest.clone(),
        digest,
        size,
        media_type: LAYER_TAR,
    }
}

/// Stores the first half of a gzip'd tar (one 256 KiB file of noise) as a layer whose
/// diff_id is the whole tar's: its digest holds, its content cannot. Returns the tar's length.
fn truncated_gzip_layer(layout: &Path) -> (Layer, usize) {
    let tar = tar_of(&[file("big", &noise(256 << 10))]);
    let full = gzip(&tar);
    let (digest, size) = put_blob(layout, &full[..full.len() / 2]);
    let layer = Layer {
        digest,
        size,
        media_type: LAYER_GZIP,
        diff_id: format!("sha256:{}", sha256_hex(&tar)),
    };
    (layer, tar.len())
}

/// Stores a tar holding one regular file, `chunk` repeated `times` times, as a gzip layer.
/// Each distinct piece (header, chunk, end blocks) is compressed once and its gzip member
/// written again for each repetition — a valid multi-member stream, as pigz writes —
/// so that hundreds of megabytes cost no compression time even in a debug build.
fn big_file_gzip_layer(layout: &Path, name: &str, chunk: &[u8], times: u64) -> Layer {
    assert_eq!(chunk.len() % 512, 0, "the chunk must be whole tar blocks");
    let size = chunk.len() as u64 * times;
    let header = ustar_header(name, b'0', 0o644, size, "", (0, 0));
    let end = [0u8; 1024];
    let pieces: [(&[u8], u64); 3] = [(&header, 1), (chunk, times), (&end, 1)];
    fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    let partial = layout.join("blobs/sha256/partial");
    let mut out = BufWriter::with_capacity(1 << 20, File::create(&partial).unwrap());
    let (mut blob_hash, mut tar_hash, mut blob_size) = (Sha256::new(), Sha256::new(), 0u64);
    for (plain, times) in pieces {
        let mut e = GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(plain).unwrap();
        let member = e.finish().unwrap();
        for _ in 0..times {
            out.write_all(&member).unwrap();
            blob_hash.update(&member);
            tar_hash.update(plain);
            blob_size += member.len() as u64;
        }
    }
    out.into_inner().map_err(|e| e.into_error()).unwrap();
    let digest = format!("sha256:{}", hex::encode(blob_hash.finalize()));
    fs::rename(&partial, blob_path(layout, &digest)).unwrap();
    Layer {
        digest,
        size: blob_size,
        media_type: LAYER_GZIP,
        diff_id: format!("sha256:{}", hex::encode(tar_hash.finalize())),
    }
}

/// An image written as an OCI layout.
struct Image {
    dir: PathBuf,
    manifest_digest: String,
    config_digest: String,
    layers: Vec<Layer>,
}

impl Image {
    fn layer_blob(&self, i: usize) -> PathBuf {
        blob_path(&self.dir, &self.layers[i].digest)
    }
}

/// Writes `oci-layout` and an `index.json` with one descriptor tagged `latest`.
fn write_index(layout: &Path, media_type: &str, digest: &str, size: u64) {
    fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let index = json!({
        "schemaVersion": 2,
        "mediaType": INDEX_TYPE,
        "manifests": [{
            "mediaType": media_type,
            "digest": digest,
            "size": size,
            "annotations": { REF_NAME: "latest" },
        }],
    });
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
}

/// Writes the config, manifest, index.json and oci-layout around stored `layers`.
fn finish_layout(layout: &Path, layers: &[Layer]) -> Image {
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": { "type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>() },
    });
    let (config_digest, config_size) = put_blob(layout, &serde_json::to_vec(&config).unwrap());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": { "mediaType": CONFIG_TYPE, "digest": config_digest, "size": config_size },
        "layers": layers
            .iter()
            .map(|l| json!({ "mediaType": l.media_type, "digest": l.digest, "size": l.size }))
            .collect::<Vec<_>>(),
    });
    let (manifest_digest, manifest_size) =
        put_blob(layout, &serde_json::to_vec(&manifest).unwrap());
    write_index(layout, MANIFEST_TYPE, &manifest_digest, manifest_size);
    Image {
        dir: layout.to_path_buf(),
        manifest_digest,
        config_digest,
        layers: layers.to_vec(),
    }
}

/// A scratch area: `root/in` (the source layout) and `root/out` (a destination, absent).
struct Scratch {
    _tmp: TempDir,
    root: PathBuf,
}

impl Scratch {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        fs::create_dir(root.join("in")).unwrap();
        Scratch { _tmp: tmp, root }
    }

    fn input(&self) -> PathBuf {
        self.root.join("in")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
}

/// A scratch area holding a one-layer image (gzip) made of `members`.
fn image_of(members: &[Member]) -> (Scratch, Image) {
    let s = Scratch::new();
    let layer = gzip_layer(&s.input(), &tar_of(members));
    let image = finish_layout(&s.input(), &[layer]);
    (s, image)
}

fn oci(dir: &Path, tag: Option<&str>) -> String {
    match tag {
        Some(tag) => format!("oci:{}:{tag}", dir.display()),
        None => format!("oci:{}", dir.display()),
    }
}

// ---------------------------------------------------------------------------
// Running whittle
// ---------------------------------------------------------------------------

fn whittle_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_whittle"));
    cmd.args(args)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .stdin(Stdio::null());
    cmd
}

/// Runs `cmd` to completion, killing it (and failing the test) after `timeout`.
fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("cannot start whittle");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let err = err_reader.join().unwrap_or_default();
            panic!(
                "{cmd:?} did not finish within {timeout:?} (hang?); stderr:\n{}",
                String::from_utf8_lossy(&err)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

fn whittle(args: &[&str]) -> Output {
    run_with_timeout(whittle_cmd(args), RUN_TIMEOUT)
}

fn squash(src: &Path, dst: &Path) -> Output {
    whittle(&["squash", &oci(src, Some("latest")), &oci(dst, None)])
}

fn copy(src: &Path, dst: &Path) -> Output {
    whittle(&["copy", &oci(src, Some("latest")), &oci(dst, None)])
}

fn inspect(src: &Path) -> Output {
    whittle(&["inspect", &oci(src, Some("latest"))])
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Exit 0 and no panic.
#[track_caller]
fn assert_success(out: &Output) {
    let stderr = stderr_of(out);
    assert!(
        !stderr.contains("panicked at"),
        "whittle panicked:\n{stderr}"
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "expected success ({:?}); stderr:\n{stderr}",
        out.status
    );
}

/// Exit 1, a `whittle: error:` message containing, for each group, at least one of
/// its words (case-insensitive), no panic, and `dest` (if any) absent.
#[track_caller]
fn assert_refused(out: &Output, dest: Option<&Path>, needles: &[&[&str]]) {
    let stderr = stderr_of(out);
    assert!(
        !stderr.contains("panicked at"),
        "whittle panicked:\n{stderr}"
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected exit 1 ({:?}); stderr:\n{stderr}",
        out.status
    );
    assert!(
        stderr.contains("whittle: error:"),
        "stderr lacks `whittle: error:`:\n{stderr}"
    );
    let lower = stderr.to_lowercase();
    for group in needles {
        assert!(
            group.iter().any(|n| lower.contains(&n.to_lowercase())),
            "stderr should mention one of {group:?}; it is:\n{stderr}"
        );
    }
    if let Some(dest) = dest {
        assert!(
            fs::symlink_metadata(dest).is_err(),
            "destination {} exists after a refusal; stderr:\n{stderr}",
            dest.display()
        );
    }
}

/// Needles naming a layer: the start of its blob digest or of its diff_id.
fn layer_names(layer: &Layer) -> [&str; 2] {
    [&hex_of(&layer.digest)[..12], &hex_of(&layer.diff_id)[..12]]
}

/// Both `squash` and `inspect` refuse the image with a message naming the layer
/// and every group of `needles`; the squash destination is never created.
#[track_caller]
fn assert_member_refused(s: &Scratch, image: &Image, needles: &[&[&str]]) {
    let out = s.path("out");
    let layer = layer_names(&image.layers[0]);
    let mut all: Vec<&[&str]> = needles.to_vec();
    all.push(&layer);
    assert_refused(&squash(&image.dir, &out), Some(&out), &all);
    assert_refused(&inspect(&image.dir), None, &all);
}

/// Every path under `root` (recursively), symlinks not followed.
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        if let Ok(entries) = fs::read_dir(&p) {
            for e in entries.flatten() {
                let path = e.path();
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(path.clone());
                }
                found.push(path);
            }
        }
    }
    found
}

// ---------------------------------------------------------------------------
// Reading whittle's output
// ---------------------------------------------------------------------------

/// Reads a blob of `layout`, checking that its bytes hash to `digest`.
fn read_verified_blob(layout: &Path, digest: &str) -> Vec<u8> {
    let bytes =
        fs::read(blob_path(layout, digest)).unwrap_or_else(|e| panic!("output blob {digest}: {e}"));
    assert_eq!(
        sha256_hex(&bytes),
        hex_of(digest),
        "output blob {digest} does not match its digest"
    );
    bytes
}

fn read_json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("output JSON parses")
}

/// One member of an output layer.
#[derive(Debug)]
struct OutEntry {
    path: String,
    kind: tar::EntryType,
    data: Vec<u8>,
    dev: (Option<u32>, Option<u32>),
}

/// The members of the single layer of the single image in output layout `layout`,
/// after checking blob digests and the layer's diff_id.
fn single_layer_entries(layout: &Path) -> Vec<OutEntry> {
    assert!(
        layout.join("oci-layout").is_file(),
        "output has no oci-layout"
    );
    let index = read_json(&fs::read(layout.join("index.json")).expect("output has index.json"));
    let manifests = index["manifests"]
        .as_array()
        .expect("index.json has manifests");
    assert_eq!(manifests.len(), 1, "index.json: {index}");
    let manifest = read_json(&read_verified_blob(
        layout,
        manifests[0]["digest"].as_str().unwrap(),
    ));
    let layers = manifest["layers"].as_array().expect("manifest has layers");
    assert_eq!(
        layers.len(),
        1,
        "a squashed image has one layer: {manifest}"
    );
    let config = read_json(&read_verified_blob(
        layout,
        manifest["config"]["digest"].as_str().unwrap(),
    ));
    let media_type = layers[0]["mediaType"].as_str().unwrap();
    let blob = read_verified_blob(layout, layers[0]["digest"].as_str().unwrap());
    let tar_bytes = if media_type.ends_with("gzip") {
        let mut v = Vec::new();
        MultiGzDecoder::new(&blob[..])
            .read_to_end(&mut v)
            .expect("output layer decompresses");
        v
    } else {
        assert!(
            media_type.ends_with(".tar"),
            "unexpected output layer media type {media_type}"
        );
        blob
    };
    assert_eq!(
        config["rootfs"]["diff_ids"][0]
            .as_str()
            .map(|d| hex_of(d).to_string()),
        Some(sha256_hex(&tar_bytes)),
        "output diff_id does not match the output layer"
    );
    let mut archive = tar::Archive::new(&tar_bytes[..]);
    let mut entries = Vec::new();
    for e in archive.entries().expect("output layer is a tar") {
        let mut e = e.expect("output layer member");
        let raw = e.path().unwrap().to_string_lossy().into_owned();
        let path = raw
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_string();
        let kind = e.header().entry_type();
        let dev = (
            e.header().device_major().unwrap_or(None),
            e.header().device_minor().unwrap_or(None),
        );
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        entries.push(OutEntry {
            path,
            kind,
            data,
            dev,
        });
    }
    entries
}

fn entries_named<'a>(entries: &'a [OutEntry], path: &str) -> Vec<&'a OutEntry> {
    entries.iter().filter(|e| e.path == path).collect()
}

// ---------------------------------------------------------------------------
// Member-level attacks
// ---------------------------------------------------------------------------

/// Threat: path traversal — a member named `../evil` written outside the image root.
#[test]
fn dotdot_member_is_refused() {
    let (s, image) = image_of(&[file("ok", b"fine\n"), file("../evil", b"pwned\n")]);
    let cwd = s.path("cwd");
    fs::create_dir(&cwd).unwrap();
    let outside = s.root.parent().unwrap().join("evil");
    let existed = outside.exists();

    let out = s.path("out");
    let mut cmd = whittle_cmd(&["squash", &oci(&image.dir, Some("latest")), &oci(&out, None)]);
    cmd.current_dir(&cwd);
    let result = run_with_timeout(cmd, RUN_TIMEOUT);
    let layer = layer_names(&image.layers[0]);
    assert_refused(&result, Some(&out), &[&["../evil"], &[".."], &layer]);
    assert_refused(&inspect(&image.dir), None, &[&["../evil"], &layer]);

    let evil: Vec<_> = walk(&s.root)
        .into_iter()
        .filter(|p| p.file_name() == Some("evil".as_ref()))
        .collect();
    assert!(evil.is_empty(), "files named evil were created: {evil:?}");
    assert!(
        existed || !outside.exists(),
        "{} was created",
        outside.display()
    );
}

/// Threat: absolute member name `/etc/evil` — written over the host's /etc by a naive extractor.
#[test]
fn absolute_member_is_refused() {
    let (s, image) = image_of(&[file("ok", b"fine\n"), file("/etc/evil", b"pwned\n")]);
    assert_member_refused(&s, &image, &[&["/etc/evil"], &["absolute"]]);
}

/// Threat: symlink redirection — `link -> /outside` then `link/pwned` lands outside the root.
#[test]
fn write_through_symlink_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().to_str().unwrap().to_string();
    let (s, image) = image_of(&[symlink("link", &target), file("link/pwned", b"pwned\n")]);
    assert_member_refused(&s, &image, &[&["link/pwned"], &["symlink"]]);
    let written: Vec<_> = fs::read_dir(outside.path()).unwrap().collect();
    assert!(
        written.is_empty(),
        "something was written in the symlink target: {written:?}"
    );
}

/// Threat: a hard link whose target climbs out of the root (`../../etc/passwd`).
#[test]
fn hardlink_escaping_the_root_is_refused() {
    let (s, image) = image_of(&[
        file("ok", b"fine\n"),
        hardlink("innocent", "../../etc/passwd"),
    ]);
    assert_member_refused(&s, &image, &[&["innocent"], &["../../etc/passwd"]]);
}

/// Threat: a hard link to a path that is not in the image (link to host content, or garbage).
#[test]
fn hardlink_to_missing_target_is_refused() {
    let (s, image) = image_of(&[file("ok", b"fine\n"), hardlink("ghost", "no/such/file")]);
    assert_member_refused(
        &s,
        &image,
        &[&["ghost"], &["hard link", "hardlink"], &["no/such/file"]],
    );
}

/// Threat: a bare whiteout `dir/.wh.`, which names nothing (or, naively, deletes `dir` itself).
#[test]
fn bare_whiteout_is_refused() {
    let (s, image) = image_of(&[
        dir("dir/"),
        file("dir/keep", b"keep\n"),
        file("dir/.wh.", b""),
    ]);
    assert_member_refused(&s, &image, &[&["dir/.wh."], &["whiteout"]]);
}

/// Threat: duplicate members — ambiguity between tools about which copy wins.
#[test]
fn duplicate_entries_keep_the_last() {
    let (s, image) = image_of(&[
        file("a.txt", b"first\n"),
        file("b.txt", b"other\n"),
        file("a.txt", b"second\n"),
    ]);
    let out = s.path("out");
    assert_success(&squash(&image.dir, &out));
    let entries = single_layer_entries(&out);
    let a = entries_named(&entries, "a.txt");
    assert_eq!(a.len(), 1, "a.txt must appear exactly once: {entries:?}");
    assert_eq!(a[0].kind, tar::EntryType::Regular);
    assert_eq!(a[0].data, b"second\n", "the last duplicate must win");
    assert_eq!(entries_named(&entries, "b.txt")[0].data, b"other\n");
}

/// Threat: device nodes — kept as entries, never created on the host.
#[test]
fn device_nodes_and_fifos_are_kept_not_created() {
    let (s, image) = image_of(&[
        dir("dev/"),
        char_device("dev/null", 1, 3),
        dir("run/"),
        fifo("run/pipe"),
    ]);
    let out = s.path("out");
    assert_success(&squash(&image.dir, &out));
    let entries = single_layer_entries(&out);
    let null = entries_named(&entries, "dev/null");
    assert_eq!(null.len(), 1, "dev/null must appear once: {entries:?}");
    assert_eq!(null[0].kind, tar::EntryType::Char, "{:?}", null[0]);
    assert_eq!(
        null[0].dev,
        (Some(1), Some(3)),
        "dev/null must keep major 1 minor 3"
    );
    let pipe = entries_named(&entries, "run/pipe");
    assert_eq!(pipe.len(), 1, "run/pipe must appear once: {entries:?}");
    assert_eq!(pipe[0].kind, tar::EntryType::Fifo, "{:?}", pipe[0]);
    let nodes: Vec<_> = walk(&s.root)
        .into_iter()
        .filter(|p| {
            fs::symlink_metadata(p)
                .is_ok_and(|m| m.file_type().is_char_device() || m.file_type().is_fifo())
        })
        .collect();
    assert!(
        nodes.is_empty(),
        "device nodes or fifos were created on the host: {nodes:?}"
    );
}

// ---------------------------------------------------------------------------
// Blob-level attacks
// ---------------------------------------------------------------------------

/// Threat: a truncated gzip stream whose (fixed-up) digest verifies — decompression must fail loudly.
#[test]
fn truncated_gzip_layer_is_refused() {
    let s = Scratch::new();
    let (layer, _) = truncated_gzip_layer(&s.input());
    let image = finish_layout(&s.input(), &[layer]);
    let words: &[&str] = &[
        "decompress",
        "corrupt",
        "unexpected end",
        "unexpected eof",
        "truncated",
        "end of file",
    ];

    let out = s.path("out");
    assert_refused(&squash(&image.dir, &out), Some(&out), &[words]);
    // copy checks every layer against its diff_id, so it must decompress it too.
    let out2 = s.path("out2");
    assert_refused(&copy(&image.dir, &out2), Some(&out2), &[words]);
}

/// Threat: a tampered blob — its bytes no longer hash to the digest the manifest names.
/// The flipped byte is in the gzip header's mtime, so only the digest check can notice.
#[test]
fn layer_blob_with_wrong_digest_is_refused() {
    let (s, image) = image_of(&[file("etc/hostname", b"box\n")]);
    let path = image.layer_blob(0);
    let mut bytes = fs::read(&path).unwrap();
    bytes[4] ^= 0x5a;
    fs::write(&path, &bytes).unwrap();
    let digest = hex_of(&image.layers[0].digest);

    let out = s.path("out");
    assert_refused(
        &squash(&image.dir, &out),
        Some(&out),
        &[&["hashes to", "corrupt"], &[digest]],
    );
    let out2 = s.path("out2");
    assert_refused(
        &copy(&image.dir, &out2),
        Some(&out2),
        &[&["hashes to", "corrupt"], &[digest]],
    );
}

/// Threat: a tampered config — a still-valid JSON whose bytes no longer match its digest.
#[test]
fn config_blob_with_wrong_digest_is_refused() {
    let (s, image) = image_of(&[file("etc/hostname", b"box\n")]);
    let path = blob_path(&image.dir, &image.config_digest);
    let text = fs::read_to_string(&path)
        .unwrap()
        .replace("\"linux\"", "\"linuy\"");
    fs::write(&path, text).unwrap();
    let digest = hex_of(&image.config_digest);

    let out = s.path("out");
    assert_refused(
        &squash(&image.dir, &out),
        Some(&out),
        &[&["hashes to", "corrupt"], &[digest]],
    );
    let out2 = s.path("out2");
    assert_refused(
        &copy(&image.dir, &out2),
        Some(&out2),
        &[&["hashes to", "corrupt"], &[digest]],
    );
}

/// Threat: a config that lies about its layers — the layer blob is intact (its digest
/// holds) but is not the tar the config names. Gzip: found by decompressing. Uncompressed:
/// the blob digest is the diff_id, so the two must be equal (whittle hashes it once).
#[test]
fn layer_not_matching_its_diff_id_is_refused() {
    let store: [fn(&Path, &[u8]) -> Layer; 2] = [gzip_layer, plain_layer];
    for (kind, store) in ["gzip", "uncompressed"].into_iter().zip(store) {
        let s = Scratch::new();
        let mut layer = store(&s.input(), &tar_of(&[file("etc/hostname", b"box\n")]));
        layer.diff_id = format!("sha256:{}", sha256_hex(b"some other layer"));
        let image = finish_layout(&s.input(), &[layer]);
        let needles: &[&[&str]] = &[
            &["diff_id", "diffid"],
            &[&hex_of(&image.layers[0].diff_id)[..12]],
        ];

        let out = s.path("out");
        assert_refused(&squash(&image.dir, &out), Some(&out), needles);
        let out2 = s.path("out2");
        assert_refused(&copy(&image.dir, &out2), Some(&out2), needles);
        // --compression none: the gzip blob is re-encoded through a checked read, the
        // plain one copied as it is — checked too.
        let out3 = s.path("out3");
        let (src, dst) = (oci(&image.dir, Some("latest")), oci(&out3, None));
        let kept = whittle(&["copy", "--compression", "none", &src, &dst]);
        assert_refused(&kept, Some(&out3), needles);
        eprintln!("{kind}: refused by squash, copy and copy --compression none");
    }
}

/// Threat: an incomplete image — the manifest names a layer blob that is not there.
#[test]
fn missing_layer_blob_is_refused() {
    let (s, image) = image_of(&[file("etc/hostname", b"box\n")]);
    fs::remove_file(image.layer_blob(0)).unwrap();
    let digest = hex_of(&image.layers[0].digest);

    let out = s.path("out");
    assert_refused(
        &squash(&image.dir, &out),
        Some(&out),
        &[&["missing"], &[digest]],
    );
    let out2 = s.path("out2");
    assert_refused(
        &copy(&image.dir, &out2),
        Some(&out2),
        &[&["missing"], &[digest]],
    );
}

/// Threat: an index that points at itself — an infinite loop for a naive resolver.
/// (Content addressing makes a true cycle impossible, so the blob sits under the digest
/// it names rather than its own hash; a resolver must stop by the digest check or a
/// cycle check, never loop.)
#[test]
fn self_referencing_index_is_refused_without_hanging() {
    let s = Scratch::new();
    let layout = s.input();
    fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    let digest = format!(
        "sha256:{}",
        sha256_hex(b"whittle: the index that names itself")
    );
    let body = |size: u64| {
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": INDEX_TYPE,
            "manifests": [{ "mediaType": INDEX_TYPE, "digest": digest, "size": size }],
        }))
        .unwrap()
    };
    let size = body(0).len() as u64;
    let size = body(size).len() as u64; // the size field names the document's own length
    let bytes = body(size);
    assert_eq!(bytes.len() as u64, size);
    fs::write(blob_path(&layout, &digest), &bytes).unwrap();
    write_index(&layout, INDEX_TYPE, &digest, size);

    let words: &[&str] = &[
        "cycle",
        "loop",
        "nest",
        "recurs",
        "itself",
        "depth",
        "hashes to",
        "corrupt",
    ];
    let out = s.path("out");
    let result = run_with_timeout(
        whittle_cmd(&["squash", &oci(&layout, Some("latest")), &oci(&out, None)]),
        Duration::from_secs(20),
    );
    assert_refused(&result, Some(&out), &[words]);
    let out2 = s.path("out2");
    let result = run_with_timeout(
        whittle_cmd(&["copy", &oci(&layout, Some("latest")), &oci(&out2, None)]),
        Duration::from_secs(20),
    );
    assert_refused(&result, Some(&out2), &[words]);
    let result = run_with_timeout(
        whittle_cmd(&["inspect", &oci(&layout, Some("latest"))]),
        Duration::from_secs(20),
    );
    assert_refused(&result, None, &[words]);
}

/// Threat: unbounded recursion — 10,000 indexes nested in a chain must not overflow the
/// stack: whittle either follows them or refuses with an error, but never crashes.
#[test]
fn deeply_nested_indexes_do_not_crash() {
    let s = Scratch::new();
    let layout = s.input();
    let layer = gzip_layer(&layout, &tar_of(&[file("etc/hostname", b"box\n")]));
    let image = finish_layout(&layout, &[layer]);
    let manifest_size = fs::metadata(blob_path(&layout, &image.manifest_digest))
        .unwrap()
        .len();
    let (mut media_type, mut digest, mut size) =
        (MANIFEST_TYPE, image.manifest_digest.clone(), manifest_size);
    for _ in 0..10_000 {
        let index = json!({
            "schemaVersion": 2,
            "mediaType": INDEX_TYPE,
            "manifests": [{ "mediaType": media_type, "digest": digest, "size": size }],
        });
        (digest, size) = put_blob(&layout, &serde_json::to_vec(&index).unwrap());
        media_type = INDEX_TYPE;
    }
    write_index(&layout, INDEX_TYPE, &digest, size);

    let out = s.path("out");
    let result = run_with_timeout(
        whittle_cmd(&["squash", &oci(&layout, Some("latest")), &oci(&out, None)]),
        Duration::from_secs(60),
    );
    let stderr = stderr_of(&result);
    assert!(
        !stderr.contains("panicked at"),
        "whittle panicked:\n{stderr}"
    );
    match result.status.code() {
        Some(0) => {
            let entries = single_layer_entries(&out);
            assert_eq!(entries_named(&entries, "etc/hostname")[0].data, b"box\n");
        }
        Some(1) => assert_refused(&result, Some(&out), &[]),
        _ => panic!(
            "whittle crashed on deeply nested indexes ({:?}); stderr:\n{stderr}",
            result.status
        ),
    }
}

/// Threat: decompression bomb — 300 MiB of zeros in a ~300 KB gzip layer must stop at
/// `--max-layer-size`, quickly, for squash and copy alike.
#[test]
fn decompression_bomb_stops_at_max_layer_size() {
    let s = Scratch::new();
    let layer = big_file_gzip_layer(&s.input(), "zeros", &[0u8; 1 << 20], 300);
    assert!(
        layer.size < 2_000_000,
        "the bomb should be small, it is {} bytes",
        layer.size
    );
    let image = finish_layout(&s.input(), &[layer]);

    // The flag itself is accepted and does not refuse a small image.
    let (small, small_image) = image_of(&[file("etc/hostname", b"box\n")]);
    let ok = small.path("out");
    let limited = ["--max-layer-size", "100M"];
    let args = |cmd: &'static str, src: &Path, dst: &Path| {
        let mut v: Vec<String> = limited.iter().map(|a| a.to_string()).collect();
        v.extend([cmd.to_string(), oci(src, Some("latest")), oci(dst, None)]);
        v
    };
    let run = |v: Vec<String>| {
        let refs: Vec<&str> = v.iter().map(String::as_str).collect();
        let start = Instant::now();
        let out = whittle(&refs);
        (out, start.elapsed())
    };
    assert_success(&run(args("squash", &small_image.dir, &ok)).0);

    for (cmd, dst) in [("squash", s.path("out")), ("copy", s.path("out2"))] {
        let (out, took) = run(args(cmd, &image.dir, &dst));
        assert_refused(
            &out,
            Some(&dst),
            &[&["limit", "max-layer-size", "too large", "exceeds"]],
        );
        assert!(
            took < Duration::from_secs(60),
            "{cmd} took {took:?} to refuse the bomb"
        );
    }
}

// ---------------------------------------------------------------------------
// Proven layer facts (the cache of "blob D decompresses to diff_id X")
// ---------------------------------------------------------------------------

/// Runs `whittle SUBCOMMAND SRC DST` keeping layer facts in `cache`.
fn with_facts(cache: &Path, subcommand: &str, src: &Path, dst: &Path) -> Output {
    let mut cmd = whittle_cmd(&[subcommand, &oci(src, Some("latest")), &oci(dst, None)]);
    cmd.env("WHITTLE_CACHE_DIR", cache);
    run_with_timeout(cmd, RUN_TIMEOUT)
}

fn copy_with_facts(cache: &Path, src: &Path, dst: &Path) -> Output {
    with_facts(cache, "copy", src, dst)
}

/// Writes the fact "blob `layer` is the tar `diff_id` of `size` bytes" into `cache`,
/// made private as whittle makes it.
fn plant_fact(cache: &Path, layer: &Layer, diff_id: &str, size: usize) -> PathBuf {
    use std::os::unix::fs::DirBuilderExt;
    let dir = cache.join("layers/sha256");
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .unwrap();
    let path = dir.join(hex_of(&layer.digest));
    fs::write(&path, format!("{diff_id} {size}\n")).unwrap();
    path
}

/// A full check records what it proved; a failed one records nothing.
#[test]
fn a_full_check_records_the_layer_fact_and_a_failed_one_does_not() {
    let s = Scratch::new();
    let tar = tar_of(&[file("etc/hostname", b"box\n")]);
    let image = finish_layout(&s.input(), &[gzip_layer(&s.input(), &tar)]);
    let cache = s.path("cache");
    assert_success(&copy_with_facts(&cache, &image.dir, &s.path("out")));
    let fact = cache
        .join("layers/sha256")
        .join(hex_of(&image.layers[0].digest));
    let text = fs::read_to_string(&fact).expect("the copy should record the layer fact");
    assert_eq!(text, format!("{} {}\n", image.layers[0].diff_id, tar.len()));

    // A blob that does not hash to its digest proves nothing.
    let (s2, bad) = image_of(&[file("etc/hostname", b"other\n")]);
    let mut bytes = fs::read(bad.layer_blob(0)).unwrap();
    bytes[4] ^= 0x5a;
    fs::write(bad.layer_blob(0), &bytes).unwrap();
    let cache2 = s2.path("cache");
    let out = s2.path("out");
    assert_refused(
        &copy_with_facts(&cache2, &bad.dir, &out),
        Some(&out),
        &[&["hashes to", "corrupt"]],
    );
    assert!(!cache2
        .join("layers/sha256")
        .join(hex_of(&bad.layers[0].digest))
        .exists());
}

/// With a fact, copy checks the blob digest only — so the digest check still refuses a
/// tampered blob, and a fact naming another diff_id than the config refuses the layer.
#[test]
fn a_known_layer_is_still_checked_against_its_digest_and_its_diff_id() {
    let s = Scratch::new();
    let tar = tar_of(&[file("etc/hostname", b"box\n")]);
    let layer = gzip_layer(&s.input(), &tar);
    let image = finish_layout(&s.input(), std::slice::from_ref(&layer));
    let cache = s.path("cache");
    let fact = plant_fact(
        &cache,
        &layer,
        &format!("sha256:{}", sha256_hex(b"another tar")),
        tar.len(),
    );
    let out = s.path("out");
    for subcommand in ["copy", "squash"] {
        assert_refused(
            &with_facts(&cache, subcommand, &image.dir, &out),
            Some(&out),
            &[&["diff_id", "diffid"], &[&hex_of(&layer.diff_id)[..12]]],
        );
    }
    fs::remove_file(&fact).unwrap();
    plant_fact(&cache, &layer, &layer.diff_id, tar.len());
    let mut bytes = fs::read(image.layer_blob(0)).unwrap();
    bytes[4] ^= 0x5a;
    fs::write(image.layer_blob(0), &bytes).unwrap();
    assert_refused(
        &copy_with_facts(&cache, &image.dir, &out),
        Some(&out),
        &[&["hashes to", "corrupt"], &[&hex_of(&layer.digest)[..12]]],
    );
}

/// Facts are trusted as far as their directory: one that others can write to is not
/// used (and said), so a fact planted there cannot vouch for a broken layer; the same
/// fact in a private directory is used — the copy then checks the digest only.
#[test]
fn facts_are_used_only_from_a_directory_nobody_else_can_write() {
    use std::os::unix::fs::PermissionsExt;
    let s = Scratch::new();
    let (layer, tar_len) = truncated_gzip_layer(&s.input());
    let image = finish_layout(&s.input(), std::slice::from_ref(&layer));
    let cache = s.path("cache");
    plant_fact(&cache, &layer, &layer.diff_id, tar_len);

    fs::set_permissions(&cache, fs::Permissions::from_mode(0o777)).unwrap();
    let out = s.path("out");
    let refused = copy_with_facts(&cache, &image.dir, &out);
    assert_refused(
        &refused,
        Some(&out),
        &[&["decompress", "unexpected end", "truncated"]],
    );
    assert!(
        stderr_of(&refused).contains("is not used"),
        "the unusable cache should be said:\n{}",
        stderr_of(&refused)
    );

    fs::set_permissions(&cache, fs::Permissions::from_mode(0o700)).unwrap();
    assert_success(&copy_with_facts(&cache, &image.dir, &out));
}

// ---------------------------------------------------------------------------
// Interruption
// ---------------------------------------------------------------------------

fn dir_names(dir: &Path) -> HashSet<OsString> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect()
}

/// Starts `whittle args`, lets it work (300 ms, or 100 ms once a new entry — its
/// temporary sibling — shows up in `watch`), then kills it with SIGKILL. Fails if it
/// ended by itself first, so a kill that came too late cannot pass unnoticed.
fn kill_midway(args: &[&str], watch: &Path, log: &Path) {
    let before = dir_names(watch);
    let mut cmd = whittle_cmd(args);
    cmd.stdout(Stdio::null()).stderr(File::create(log).unwrap());
    let mut child = cmd.spawn().expect("cannot start whittle");
    let start = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(10));
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "{args:?} ended by itself ({status:?}) before it could be killed; stderr:\n{}",
                fs::read_to_string(log).unwrap_or_default()
            );
        }
        let elapsed = start.elapsed();
        let started_writing = dir_names(watch).len() > before.len();
        if elapsed >= Duration::from_millis(300)
            || (started_writing && elapsed >= Duration::from_millis(100))
        {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL on Unix
    let status = child.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(9),
        "{args:?} was not killed by SIGKILL: {status:?}"
    );
}

/// Threat: kill -9 mid-copy — a partial destination must never replace (or appear as) the
/// real one. The source is a 200 MiB incompressible gzip layer, so that each copy runs
/// for about a second and the kill lands while it writes.
#[test]
fn kill_9_mid_copy_leaves_destination_untouched() {
    let s = Scratch::new();
    let layer = big_file_gzip_layer(&s.input(), "noise", &noise(1 << 20), 200);
    assert!(layer.size > 200 << 20, "the layer should not compress");
    let image = finish_layout(&s.input(), &[layer]);
    let src = oci(&image.dir, Some("latest"));
    let log = s.path("stderr.log");

    // An existing archive stays byte-identical.
    let archives = s.path("archives");
    fs::create_dir(&archives).unwrap();
    let dst = archives.join("dst.tar");
    let original: Vec<u8> = b"original archive bytes\n"
        .iter()
        .copied()
        .cycle()
        .take(1 << 20)
        .collect();
    fs::write(&dst, &original).unwrap();
    let sink = format!("docker-archive:{}", dst.display());
    // (--force: the bytes here are no image archive, which whittle would refuse to replace.)
    kill_midway(
        &["--force", "copy", "--compression", "gzip", &src, &sink],
        &archives,
        &log,
    );
    assert!(
        fs::read(&dst).unwrap() == original,
        "dst.tar changed after kill -9 mid-copy"
    );

    // An absent OCI layout stays absent. (`--compression none` makes whittle decompress
    // the 200 MiB; gzip to gzip would copy the blob as is, over in a moment.)
    let layouts = s.path("layouts");
    fs::create_dir(&layouts).unwrap();
    let out = layouts.join("out");
    kill_midway(
        &["copy", "--compression", "none", &src, &oci(&out, None)],
        &layouts,
        &log,
    );
    assert!(
        fs::symlink_metadata(&out).is_err(),
        "{} exists after kill -9 mid-copy",
        out.display()
    );

    // An existing OCI layout keeps its index.json.
    let existing = layouts.join("existing");
    fs::create_dir(&existing).unwrap();
    let small = gzip_layer(&existing, &tar_of(&[file("etc/hostname", b"box\n")]));
    finish_layout(&existing, &[small]);
    let index = fs::read(existing.join("index.json")).unwrap();
    kill_midway(
        &["copy", "--compression", "none", &src, &oci(&existing, None)],
        &layouts,
        &log,
    );
    assert!(
        fs::read(existing.join("index.json")).unwrap() == index,
        "existing index.json changed after kill -9"
    );
}

// ---------------------------------------------------------------------------
// Baseline
// ---------------------------------------------------------------------------

/// Baseline: the harness builds valid images — a normal image squashes and copies.
#[test]
fn baseline_valid_image_squashes_and_copies() {
    let s = Scratch::new();
    let first = gzip_layer(
        &s.input(),
        &tar_of(&[
            dir("etc/"),
            file("etc/hostname", b"box\n"),
            file("etc/motd", b"hello\n"),
            dir("bin/"),
        ]),
    );
    let second = plain_layer(
        &s.input(),
        &tar_of(&[
            file("bin/tool", b"#!/bin/sh\necho tool\n"),
            file("etc/.wh.motd", b""),
            symlink("bin/alias", "tool"),
        ]),
    );
    let image = finish_layout(&s.input(), &[first, second]);

    let out = s.path("out");
    assert_success(&squash(&image.dir, &out));
    assert!(out.join("index.json").is_file() && out.join("oci-layout").is_file());
    let entries = single_layer_entries(&out);
    let file_data = |p: &str| {
        let found = entries_named(&entries, p);
        assert_eq!(found.len(), 1, "{p} must appear once: {entries:?}");
        found[0].data.clone()
    };
    assert_eq!(file_data("etc/hostname"), b"box\n");
    assert_eq!(file_data("bin/tool"), b"#!/bin/sh\necho tool\n");
    assert_eq!(
        entries_named(&entries, "bin/alias")[0].kind,
        tar::EntryType::Symlink
    );
    assert!(
        entries_named(&entries, "etc/motd").is_empty(),
        "the whiteout must delete etc/motd"
    );
    assert!(
        entries.iter().all(|e| !e.path.contains(".wh.")),
        "whiteouts must not survive squashing: {entries:?}"
    );
    let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    let mut sorted = paths.clone();
    sorted.sort_unstable();
    assert_eq!(paths, sorted, "squash output entries are sorted");

    // copy without --compression keeps the gzip layer blob byte for byte and gzips the
    // plain one (an OCI layout keeps blobs as given, so it gets them compressed).
    let out2 = s.path("out2");
    assert_success(&copy(&image.dir, &out2));
    let index = read_json(&fs::read(out2.join("index.json")).unwrap());
    let manifest = read_json(&read_verified_blob(
        &out2,
        index["manifests"][0]["digest"].as_str().unwrap(),
    ));
    let written = manifest["layers"].as_array().unwrap();
    assert_eq!(written.len(), image.layers.len());
    for (layer, out) in image.layers.iter().zip(written) {
        let digest = out["digest"].as_str().unwrap();
        let bytes = read_verified_blob(&out2, digest);
        assert_eq!(out["mediaType"], LAYER_GZIP, "{out}");
        if layer.media_type == LAYER_GZIP {
            assert_eq!(
                bytes,
                fs::read(blob_path(&image.dir, &layer.digest)).unwrap(),
                "copy changed layer {}",
                layer.digest
            );
        } else {
            let mut tar = Vec::new();
            flate2::read::MultiGzDecoder::new(&bytes[..])
                .read_to_end(&mut tar)
                .unwrap();
            assert_eq!(format!("sha256:{}", sha256_hex(&tar)), layer.diff_id);
        }
    }

    assert_success(&inspect(&image.dir));
}
