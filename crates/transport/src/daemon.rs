//! `docker-daemon:NAME[:TAG]`: images in the local Docker Engine, read with
//! its image export and written with its image load, over the Engine's unix
//! socket. Both directions stream through a `docker save` archive in a
//! private temporary directory (the archive reader needs to seek).

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use whittle_image::{Digest, Image, Limits, Scratch};

use crate::engine::Engine;
use crate::reference::with_default_tag;
use crate::{docker_archive, Error, Result};

fn location(name: &str) -> String {
    format!("docker-daemon:{name}")
}

/// Reads image `name` from the Engine; the export lives in a temporary
/// directory under `scratch_parent` as long as the image does.
pub fn open(name: &str, scratch_parent: &Path) -> Result<Image> {
    let name = with_default_tag(name);
    let engine = Engine::from_env()?;
    let mut resp = engine.request(
        "GET",
        &format!("/images/get?names={}", crate::encode_query(&name)),
        None,
    )?;
    match resp.status {
        200 => {}
        404 => {
            return Err(Error::invalid(
                location(&name),
                format!("the Docker Engine has no such image ({})", resp.text(4096)),
            ))
        }
        status => {
            return Err(Error::invalid(
                location(&name),
                format!("the Docker Engine answered {status}: {}", resp.text(4096)),
            ))
        }
    }
    let scratch = Arc::new(Scratch::new_in(scratch_parent)?);
    let path = scratch.new_file("engine-export.tar");
    let file = File::create(&path).map_err(|e| Error::io("cannot create", &path, e))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    io::copy(resp.body(), &mut out).map_err(|e| {
        Error::invalid(
            location(&name),
            format!("the export from the Docker Engine broke off: {e}"),
        )
    })?;
    out.flush()
        .map_err(|e| Error::io("cannot write", &path, e))?;
    docker_archive::open_owned(&path, None, Some(scratch)).map_err(|e| match e {
        Error::Invalid { reason, .. } => Error::invalid(
            location(&name),
            format!("the Docker Engine's export is not a readable archive: {reason}"),
        ),
        other => other,
    })
}

/// Loads `image` into the Engine as `name`; returns the manifest digest.
pub fn write(
    name: &str,
    image: &Image,
    scratch_parent: &Path,
    mtime: u64,
    limits: &Limits,
) -> Result<Digest> {
    let name = with_default_tag(name);
    if name.contains('@') {
        return Err(Error::invalid(
            location(&name),
            "a digest cannot name an image to load; give NAME[:TAG]",
        ));
    }
    let engine = Engine::from_env()?;
    let scratch = Scratch::new_in(scratch_parent)?;
    let path = scratch.path().join("load.tar");
    let digest = docker_archive::write(&path, Some(&name), image, mtime, limits)?;
    let mut file = File::open(&path).map_err(|e| Error::io("cannot open", &path, e))?;
    let len = file
        .metadata()
        .map_err(|e| Error::io("cannot read", &path, e))?
        .len();
    let mut resp = engine.request(
        "POST",
        "/images/load?quiet=1",
        Some((&mut file, len, "application/x-tar")),
    )?;
    if resp.status != 200 {
        let status = resp.status;
        return Err(Error::invalid(
            location(&name),
            format!(
                "the Docker Engine refused the image ({status}): {}",
                resp.text(4096)
            ),
        ));
    }
    // The answer is a stream of JSON messages; a failure is one with "error".
    let lines = BufReader::new(resp.body());
    for line in lines.lines() {
        let line =
            line.map_err(|e| Error::invalid(location(&name), format!("the load broke off: {e}")))?;
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if let Some(err) = msg.get("error").and_then(|e| e.as_str()) {
            return Err(Error::invalid(
                location(&name),
                format!("the Docker Engine could not load the image: {err}"),
            ));
        }
    }
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_latest_only_without_tag_or_digest() {
        assert_eq!(with_default_tag("nginx"), "nginx:latest");
        assert_eq!(with_default_tag("nginx:1.25"), "nginx:1.25");
        assert_eq!(
            with_default_tag("localhost:5000/app"),
            "localhost:5000/app:latest"
        );
        assert_eq!(with_default_tag("app@sha256:ab"), "app@sha256:ab");
        assert_eq!(crate::encode_query("a/b:c"), "a%2Fb%3Ac");
    }
}
