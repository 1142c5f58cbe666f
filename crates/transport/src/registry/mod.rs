//! `docker://HOST[:PORT]/REPO[:TAG|@DIGEST]`: registries speaking the OCI
//! distribution API. Pulls stream each blob through the digest check (and pick
//! up a dropped download where it stopped); pushes skip blobs the registry has,
//! mount them from another repository of the same registry, and put the
//! manifest last.

pub mod auth;
pub mod client;

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use whittle_image::{BlobStore, Descriptor, Digest, Image, Limits, MediaType};

use crate::layout::{self, Blob};
use crate::{Error, Result};
pub use client::{Client, RegistryOptions};

/// The media types a pull accepts, most wanted first.
const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// Largest manifest read (the distribution registry's own limit is 4 MiB).
const MAX_MANIFEST: u64 = 4 << 20;

/// A parsed `docker://` reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryRef {
    /// `HOST[:PORT]`.
    pub host: String,
    /// The repository path.
    pub repo: String,
    /// A tag, when given.
    pub tag: Option<String>,
    /// A digest, when given.
    pub digest: Option<String>,
}

impl RegistryRef {
    /// Parses what follows `docker://`.
    pub fn parse(rest: &str) -> std::result::Result<RegistryRef, String> {
        let rest = rest.trim_start_matches("//");
        let (name, digest) = match rest.split_once('@') {
            Some((n, d)) => (n, Some(d.to_string())),
            None => (rest, None),
        };
        if let Some(d) = &digest {
            d.parse::<Digest>()
                .map_err(|_| format!("{d:?} is not a sha256 digest"))?;
        }
        let (host, path) = match name.split_once('/') {
            Some((h, p)) if h.contains(['.', ':']) || h == "localhost" => (h.to_string(), p),
            // Docker Hub, as the docker CLI spells it.
            _ => ("registry-1.docker.io".to_string(), name),
        };
        let (repo, tag) = match path.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r.to_string(), Some(t.to_string())),
            _ => (path.to_string(), None),
        };
        let repo = if host == "registry-1.docker.io" && !repo.contains('/') {
            format!("library/{repo}")
        } else {
            repo
        };
        let valid = |s: &str| {
            !s.is_empty()
                && s.split('/').all(|c| {
                    !c.is_empty()
                        && c.chars().all(|ch| {
                            ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch)
                        })
                })
        };
        if !valid(&repo) {
            return Err(format!(
                "{repo:?} is not a valid repository name (lower case, digits, . _ - and /)"
            ));
        }
        if let Some(t) = &tag {
            if t.is_empty()
                || t.len() > 128
                || !t
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            {
                return Err(format!("{t:?} is not a valid tag"));
            }
        }
        Ok(RegistryRef {
            host,
            repo,
            tag,
            digest,
        })
    }

    /// The manifest reference: the digest, else the tag, else `latest`.
    pub fn reference(&self) -> String {
        self.digest
            .clone()
            .or_else(|| self.tag.clone())
            .unwrap_or_else(|| "latest".into())
    }

    fn pull_scope(&self) -> String {
        format!("repository:{}:pull", self.repo)
    }

    fn push_scope(&self) -> String {
        format!("repository:{}:pull,push", self.repo)
    }
}

impl std::fmt::Display for RegistryRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "docker://{}/{}", self.host, self.repo)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// What an HTTP status means, in words.
fn status_words(status: u16) -> &'static str {
    match status {
        401 => "unauthorized (missing or wrong credentials)",
        403 => "denied (the credentials have no access to it)",
        404 => "not found",
        405 => "not allowed by this registry",
        _ => "refused",
    }
}

fn http_error(r: &RegistryRef, what: &str, resp: &mut ureq::http::Response<ureq::Body>) -> Error {
    let status = resp.status().as_u16();
    let mut text = String::new();
    let _ = resp
        .body_mut()
        .as_reader()
        .take(2048)
        .read_to_string(&mut text);
    let detail = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["errors"][0]["message"].as_str().map(String::from))
        .unwrap_or_default();
    Error::invalid(
        r.to_string(),
        format!(
            "{what}: HTTP {status} {}{}",
            status_words(status),
            if detail.is_empty() {
                String::new()
            } else {
                format!(" ({detail})")
            }
        ),
    )
}

/// Blobs (and manifests) of one repository.
pub struct RegistryStore {
    client: Arc<Client>,
    r: RegistryRef,
    docs: Mutex<HashMap<Digest, Vec<u8>>>,
}

impl RegistryStore {
    fn get_manifest(&self, reference: &str) -> Result<(Vec<u8>, Option<String>)> {
        let path = format!("/v2/{}/manifests/{reference}", self.r.repo);
        let mut resp = self.client.send(
            "GET",
            &path,
            &[("Accept", ACCEPT.to_string())],
            &self.r.pull_scope(),
            None,
        )?;
        if resp.status().as_u16() != 200 {
            return Err(http_error(
                &self.r,
                &format!("cannot get the manifest {reference}"),
                &mut resp,
            ));
        }
        let media = client::header(&resp, "content-type");
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(MAX_MANIFEST)
            .read_to_vec()
            .map_err(|e| {
                Error::invalid(
                    self.r.to_string(),
                    format!("cannot read the manifest {reference}: {e}"),
                )
            })?;
        Ok((bytes, media))
    }
}

impl BlobStore for RegistryStore {
    fn open_raw(&self, digest: &Digest) -> whittle_image::Result<Box<dyn Read + Send + '_>> {
        if let Some(bytes) = self.docs.lock().ok().and_then(|d| d.get(digest).cloned()) {
            return Ok(Box::new(io::Cursor::new(bytes)));
        }
        let blob = BlobReader {
            store: self,
            digest: digest.clone(),
            offset: 0,
            body: None,
            resumes: 0,
        };
        let mut blob = blob;
        match blob.connect() {
            Ok(()) => Ok(Box::new(blob)),
            // A manifest named by an index lives under /manifests/.
            Err(BlobFetch::NotFound) => {
                let (bytes, _) = self.get_manifest(&digest.to_string()).map_err(|e| {
                    whittle_image::Error::BlobIo {
                        digest: digest.clone(),
                        source: io::Error::other(e.to_string()),
                    }
                })?;
                Ok(Box::new(io::Cursor::new(bytes)))
            }
            Err(BlobFetch::Failed(e)) => Err(whittle_image::Error::BlobIo {
                digest: digest.clone(),
                source: io::Error::other(e),
            }),
        }
    }

    fn location(&self) -> String {
        format!("docker://{}/{}", self.r.host, self.r.repo)
    }
}

enum BlobFetch {
    NotFound,
    Failed(String),
}

/// A blob download that resumes with `Range` after a dropped connection.
struct BlobReader<'a> {
    store: &'a RegistryStore,
    digest: Digest,
    offset: u64,
    body: Option<ureq::BodyReader<'static>>,
    resumes: u32,
}

impl BlobReader<'_> {
    fn connect(&mut self) -> std::result::Result<(), BlobFetch> {
        let path = format!("/v2/{}/blobs/{}", self.store.r.repo, self.digest);
        let mut headers = Vec::new();
        if self.offset > 0 {
            headers.push(("Range", format!("bytes={}-", self.offset)));
        }
        let mut resp = self
            .store
            .client
            .send("GET", &path, &headers, &self.store.r.pull_scope(), None)
            .map_err(|e| BlobFetch::Failed(e.to_string()))?;
        let status = resp.status().as_u16();
        let skip = match status {
            200 => self.offset,
            206 => 0,
            404 if self.offset == 0 => return Err(BlobFetch::NotFound),
            _ => {
                return Err(BlobFetch::Failed(
                    http_error(
                        &self.store.r,
                        &format!("cannot get the blob {}", self.digest),
                        &mut resp,
                    )
                    .to_string(),
                ))
            }
        };
        let mut body = resp.into_body().into_with_config().reader();
        if skip > 0 {
            // The server ignored Range: drop what we already have.
            io::copy(&mut (&mut body).take(skip), &mut io::sink())
                .map_err(|e| BlobFetch::Failed(e.to_string()))?;
        }
        self.body = Some(body);
        Ok(())
    }
}

impl Read for BlobReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(body) = self.body.as_mut() else {
                return Ok(0);
            };
            match body.read(buf) {
                Ok(n) => {
                    self.offset += n as u64;
                    return Ok(n);
                }
                Err(e) if self.resumes < 5 => {
                    self.resumes += 1;
                    self.body = None;
                    std::thread::sleep(std::time::Duration::from_millis(200 << self.resumes));
                    if self.connect().is_err() {
                        return Err(io::Error::other(format!(
                            "the download of {} broke off at byte {} ({e}) and could not be resumed",
                            self.digest, self.offset
                        )));
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn sha256(bytes: &[u8]) -> Digest {
    whittle_image::RawDoc::new(MediaType::OciManifest, bytes.to_vec()).digest
}

fn media_type_of(bytes: &[u8], header: Option<&str>) -> MediaType {
    let from_doc = serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| v["mediaType"].as_str().map(String::from));
    let name = from_doc
        .or_else(|| header.map(|h| h.split(';').next().unwrap_or("").trim().to_string()))
        .unwrap_or_default();
    if name.is_empty() {
        MediaType::OciManifest
    } else {
        MediaType::parse(&name)
    }
}

/// Pulls the image `r` names (`platform`'s, from an index).
pub fn open(
    r: &RegistryRef,
    opts: &RegistryOptions,
    platform: &whittle_image::Platform,
) -> Result<Image> {
    let (store, desc) = open_top(r, opts)?;
    let mut seen = HashSet::new();
    layout::resolve(store, desc, &r.to_string(), &mut seen, platform)
}

/// The repository as a blob store, and the descriptor of what `r` names
/// (fetched, verified and cached in the store).
pub fn open_top(
    r: &RegistryRef,
    opts: &RegistryOptions,
) -> Result<(Arc<dyn BlobStore>, Descriptor)> {
    let client = Arc::new(Client::new(&r.host, opts)?);
    let store = Arc::new(RegistryStore {
        client,
        r: r.clone(),
        docs: Mutex::new(HashMap::new()),
    });
    let (bytes, header) = store.get_manifest(&r.reference())?;
    let digest = sha256(&bytes);
    if let Some(want) = &r.digest {
        if digest.to_string() != *want {
            return Err(whittle_image::Error::DigestMismatch {
                expected: want.parse()?,
                found: digest,
            }
            .into());
        }
    }
    let desc = Descriptor::new(
        media_type_of(&bytes, header.as_deref()),
        digest.clone(),
        bytes.len() as u64,
    );
    if let Ok(mut docs) = store.docs.lock() {
        docs.insert(digest, bytes);
    }
    Ok((store, desc))
}

/// The client and tag for a push to `r` (a digest alone names no tag).
fn push_target(r: &RegistryRef, opts: &RegistryOptions) -> Result<(Client, String)> {
    if r.digest.is_some() && r.tag.is_none() {
        return Err(Error::invalid(
            r.to_string(),
            "push to a tag (NAME:TAG), not a digest",
        ));
    }
    let tag = r.tag.clone().unwrap_or_else(|| "latest".into());
    Ok((Client::new(&r.host, opts)?, tag))
}

/// Pushes every platform of `multi`: each image under its digest, then the index under the tag.
pub fn write_all(
    r: &RegistryRef,
    multi: &crate::multi::MultiImage,
    opts: &RegistryOptions,
    limits: &Limits,
) -> Result<Digest> {
    let (client, tag) = push_target(r, opts)?;
    for image in &multi.images {
        let manifest = image.manifest_doc();
        push_image(
            &client,
            r,
            image,
            &manifest,
            &manifest.digest.to_string(),
            limits,
        )?;
    }
    put_manifest(&client, r, &multi.index, &tag)?;
    Ok(multi.index.digest.clone())
}

fn put_manifest(
    client: &Client,
    r: &RegistryRef,
    doc: &whittle_image::RawDoc,
    reference: &str,
) -> Result<()> {
    let path = format!("/v2/{}/manifests/{reference}", r.repo);
    let body = doc.bytes.clone();
    let make = move || -> Result<(Box<dyn Read + '_>, u64)> {
        Ok((Box::new(io::Cursor::new(body.clone())), body.len() as u64))
    };
    let mut resp = client.send(
        "PUT",
        &path,
        &[("Content-Type", doc.media_type.to_string())],
        &r.push_scope(),
        Some(&make),
    )?;
    if resp.status().as_u16() != 201 {
        return Err(http_error(
            r,
            &format!("cannot put the manifest {reference}"),
            &mut resp,
        ));
    }
    Ok(())
}

fn push_image(
    client: &Client,
    r: &RegistryRef,
    image: &Image,
    manifest: &whittle_image::RawDoc,
    reference: &str,
    limits: &Limits,
) -> Result<()> {
    let blobs: Vec<Blob<'_>> = layout::blobs(image, manifest)
        .into_iter()
        .filter(|b| b.digest() != &manifest.digest)
        .collect();
    whittle_image::parallel::map_indexed(blobs.len(), 4, |i| {
        push_blob(client, r, &blobs[i], limits)
    })?;
    put_manifest(client, r, manifest, reference)
}

/// Pushes `image` to `r`; returns the manifest digest.
pub fn write(
    r: &RegistryRef,
    image: &Image,
    opts: &RegistryOptions,
    limits: &Limits,
) -> Result<Digest> {
    let (client, tag) = push_target(r, opts)?;
    let manifest = image.manifest_doc();
    push_image(&client, r, image, &manifest, &tag, limits)?;
    Ok(manifest.digest)
}

fn push_blob(client: &Client, r: &RegistryRef, blob: &Blob<'_>, limits: &Limits) -> Result<()> {
    let digest = blob.digest().to_string();
    let scope = r.push_scope();
    // Already there: nothing to send.
    let mut head = client.send(
        "HEAD",
        &format!("/v2/{}/blobs/{digest}", r.repo),
        &[],
        &scope,
        None,
    )?;
    match head.status().as_u16() {
        200 => return Ok(()),
        401 | 403 => {
            return Err(http_error(
                r,
                &format!("cannot check for {digest}"),
                &mut head,
            ))
        }
        _ => {}
    }
    // From another repository of this registry: ask it to mount the blob.
    let mount_from = match blob {
        Blob::Layer(l) => l
            .store
            .location()
            .strip_prefix(&format!("docker://{}/", r.host))
            .filter(|repo| *repo != r.repo)
            .map(String::from),
        Blob::Doc(_) => None,
    };
    let start = match &mount_from {
        Some(from) => format!(
            "/v2/{}/blobs/uploads/?mount={}&from={}",
            r.repo,
            crate::encode_query(&digest),
            crate::encode_query(from)
        ),
        None => format!("/v2/{}/blobs/uploads/", r.repo),
    };
    let scope = match &mount_from {
        Some(from) => format!("{scope} repository:{from}:pull"),
        None => scope,
    };
    let mut resp = client.send("POST", &start, &[], &scope, None)?;
    match resp.status().as_u16() {
        201 if mount_from.is_some() => return Ok(()),
        202 => {}
        _ => {
            return Err(http_error(
                r,
                &format!("cannot start uploading {digest}"),
                &mut resp,
            ))
        }
    }
    let location = client::header(&resp, "location")
        .ok_or_else(|| Error::invalid(r.to_string(), "the registry gave no upload location"))?;
    let chunk = upload_chunk_size();
    let location = if blob.size() > chunk {
        upload_chunks(client, r, blob, limits, &scope, location, chunk)?
    } else {
        location
    };
    let sep = if location.contains('?') { '&' } else { '?' };
    let url = format!("{location}{sep}digest={}", crate::encode_query(&digest));
    let whole = blob.size() <= chunk;
    let make = || -> Result<(Box<dyn Read + '_>, u64)> {
        if whole {
            Ok((
                Box::new(VerifiedToEnd::new(blob.open(limits)?, blob.size())),
                blob.size(),
            ))
        } else {
            // Everything went up in chunks: the PUT only closes the upload.
            Ok((Box::new(io::empty()), 0))
        }
    };
    let mut resp = client.send(
        "PUT",
        &url,
        &[("Content-Type", "application/octet-stream".to_string())],
        &scope,
        Some(&make),
    )?;
    if resp.status().as_u16() != 201 {
        return Err(http_error(r, &format!("cannot upload {digest}"), &mut resp));
    }
    Ok(())
}

/// Blobs larger than this go up in `PATCH` chunks of this size (some registries and
/// proxies cap request bodies). `WHITTLE_UPLOAD_CHUNK` (bytes) overrides it.
fn upload_chunk_size() -> u64 {
    std::env::var("WHITTLE_UPLOAD_CHUNK")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|n| *n >= 4096)
        .unwrap_or(256 << 20)
}

/// Sends `blob` in chunks with `PATCH` and `Content-Range`, streaming through one
/// verified reader; returns the upload location to close with the digest.
fn upload_chunks(
    client: &Client,
    r: &RegistryRef,
    blob: &Blob<'_>,
    limits: &Limits,
    scope: &str,
    mut location: String,
    chunk: u64,
) -> Result<String> {
    let source: Mutex<Box<dyn Read + Send + '_>> = Mutex::new(Box::new(VerifiedToEnd::new(
        blob.open(limits)?,
        blob.size(),
    )));
    let size = blob.size();
    let mut offset = 0u64;
    while offset < size {
        let len = chunk.min(size - offset);
        let sent = std::sync::atomic::AtomicBool::new(false);
        let make = || -> Result<(Box<dyn Read + '_>, u64)> {
            // A chunk is read from the stream once: it cannot be sent again.
            if sent.swap(true, std::sync::atomic::Ordering::SeqCst) {
                return Err(Error::invalid(
                    r.to_string(),
                    "a chunk upload failed and cannot be resent",
                ));
            }
            let guard = source
                .lock()
                .map_err(|_| Error::invalid(r.to_string(), "the upload stream was lost"))?;
            Ok((
                Box::new(ChunkReader {
                    inner: guard,
                    left: len,
                }),
                len,
            ))
        };
        let range = format!("{}-{}", offset, offset + len - 1);
        let mut resp = client.send(
            "PATCH",
            &location,
            &[
                ("Content-Type", "application/octet-stream".to_string()),
                ("Content-Range", range),
            ],
            scope,
            Some(&make),
        )?;
        if resp.status().as_u16() != 202 {
            return Err(http_error(
                r,
                &format!("cannot upload a chunk of {}", blob.digest()),
                &mut resp,
            ));
        }
        location = client::header(&resp, "location").ok_or_else(|| {
            Error::invalid(r.to_string(), "the registry gave no location after a chunk")
        })?;
        offset += len;
    }
    Ok(location)
}

/// A blob stream that, on handing out its last byte, reads once more to reach
/// the end, so that the digest (and diff_id) checks run before an HTTP client
/// that stops at Content-Length has sent everything.
struct VerifiedToEnd<R> {
    inner: R,
    left: u64,
}

impl<R: Read> VerifiedToEnd<R> {
    fn new(inner: R, size: u64) -> Self {
        VerifiedToEnd { inner, left: size }
    }
}

impl<R: Read> Read for VerifiedToEnd<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(self.left as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the blob is shorter than its size",
            ));
        }
        self.left -= n as u64;
        if self.left == 0 {
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? != 0 {
                return Err(io::Error::other("the blob is longer than its size"));
            }
        }
        Ok(n)
    }
}

/// The next `left` bytes of a shared stream.
struct ChunkReader<'g, 'b> {
    inner: std::sync::MutexGuard<'g, Box<dyn Read + Send + 'b>>,
    left: u64,
}

impl Read for ChunkReader<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(self.left as usize);
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references() {
        let r = RegistryRef::parse("127.0.0.1:5000/a/b:v1").unwrap();
        assert_eq!(
            (r.host.as_str(), r.repo.as_str(), r.tag.as_deref()),
            ("127.0.0.1:5000", "a/b", Some("v1"))
        );
        assert_eq!(r.reference(), "v1");
        let r = RegistryRef::parse("nginx").unwrap();
        assert_eq!(
            (r.host.as_str(), r.repo.as_str()),
            ("registry-1.docker.io", "library/nginx")
        );
        assert_eq!(r.reference(), "latest");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = RegistryRef::parse(&format!("localhost:5000/x@{d}")).unwrap();
        assert_eq!(r.reference(), d);
        assert_eq!(r.to_string(), format!("docker://localhost:5000/x@{d}"));
        for bad in [
            "localhost:5000/UPPER",
            "localhost:5000/x@sha256:zz",
            "localhost:5000/x:bad tag",
            "localhost:5000/",
        ] {
            assert!(RegistryRef::parse(bad).is_err(), "{bad}");
        }
    }
}
