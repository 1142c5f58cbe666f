//! `docker-container:ID|NAME` (source only): a container's state as an image —
//! its image's layers plus one layer of what changed in the container (the
//! Engine's `changes`: added and modified paths taken from the container's
//! export, deleted ones as whiteouts), with the container's run config, as
//! `docker commit` would make it. The container's image is the implied base
//! for `extract`.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
use whittle_image::entries::{normalize, EntryKind, Meta};
use whittle_image::layer_write::LayerWriter;
use whittle_image::{Compression, Image, Layer, MediaType, RawDoc, Scratch};

use crate::engine::Engine;
use crate::{daemon, Error, Result};

fn location(id: &str) -> String {
    format!("docker-container:{id}")
}

fn get_json(engine: &Engine, id: &str, path: &str, what: &str) -> Result<Value> {
    let mut resp = engine.request("GET", path, None)?;
    match resp.status {
        200 => {}
        404 => {
            return Err(Error::invalid(
                location(id),
                format!(
                    "the Docker Engine has no such container ({})",
                    resp.text(2048)
                ),
            ))
        }
        status => {
            return Err(Error::invalid(
                location(id),
                format!(
                    "cannot get its {what}: the Engine answered {status}: {}",
                    resp.text(2048)
                ),
            ))
        }
    }
    let mut bytes = Vec::new();
    resp.body()
        .take(256 << 20)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::invalid(location(id), format!("cannot read its {what}: {e}")))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::invalid(location(id), format!("its {what} is not JSON: {e}")))
}

/// Opens container `id`: its image plus a layer of its changes. Returns the
/// image and how many of its layers are the container's image (the base).
pub fn open(id: &str, scratch_parent: &Path) -> Result<(Image, usize)> {
    let engine = Engine::from_env()?;
    let q = crate::encode_query(id);
    let info = get_json(&engine, id, &format!("/containers/{q}/json"), "description")?;
    let image_id = info["Image"]
        .as_str()
        .ok_or_else(|| Error::invalid(location(id), "the Engine did not say which image it runs"))?
        .to_string();
    let base = daemon::open(&image_id, scratch_parent)?;
    let changes = get_json(&engine, id, &format!("/containers/{q}/changes"), "changes")?;
    let mut keep = std::collections::HashSet::new();
    let mut deleted = Vec::new();
    for c in changes.as_array().into_iter().flatten() {
        let Some(path) = c["Path"].as_str() else {
            continue;
        };
        let key = path.trim_start_matches('/').to_string();
        match c["Kind"].as_u64() {
            Some(2) => deleted.push(key),
            Some(_) => {
                keep.insert(key);
            }
            None => {}
        }
    }

    let scratch = Arc::new(Scratch::new_in(scratch_parent)?);
    let export = scratch.new_file("container-export.tar");
    let mut resp = engine.request("GET", &format!("/containers/{q}/export"), None)?;
    if resp.status != 200 {
        let status = resp.status;
        return Err(Error::invalid(
            location(id),
            format!(
                "cannot export it: the Engine answered {status}: {}",
                resp.text(2048)
            ),
        ));
    }
    let file = File::create(&export).map_err(|e| Error::io("cannot create", &export, e))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    io::copy(resp.body(), &mut out)
        .map_err(|e| Error::invalid(location(id), format!("the export broke off: {e}")))?;
    out.flush()
        .map_err(|e| Error::io("cannot write", &export, e))?;
    drop(out);

    let layer_path = scratch.new_file("container-layer");
    let mut writer = LayerWriter::create(layer_path, Compression::Gzip)?;
    let bad = |e: io::Error| {
        Error::invalid(
            location(id),
            format!("its export is not a readable tar: {e}"),
        )
    };
    let mut archive =
        tar::Archive::new(File::open(&export).map_err(|e| Error::io("cannot open", &export, e))?);
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let name = match normalize(&raw) {
            Ok(n) if !n.is_empty() => n,
            Ok(_) => continue,
            Err(why) => {
                return Err(Error::invalid(
                    location(id),
                    format!("its export has a member {raw:?}: {why}"),
                ))
            }
        };
        if !keep.contains(&name) {
            continue;
        }
        let xattrs = xattrs(&mut entry);
        let h = entry.header().clone();
        let meta = Meta {
            mode: h.mode().unwrap_or(0o644),
            uid: h.uid().unwrap_or(0),
            gid: h.gid().unwrap_or(0),
            mtime: h.mtime().unwrap_or(0),
            xattrs,
        };
        let link = || {
            entry
                .link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned())
                .unwrap_or_default()
        };
        let kind = match h.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => EntryKind::File,
            tar::EntryType::Directory => EntryKind::Dir,
            tar::EntryType::Symlink => EntryKind::Symlink(link()),
            tar::EntryType::Link => match normalize(&link()) {
                // A link to a file that did not change would point outside the layer.
                Ok(t) if keep.contains(&t) => EntryKind::Hardlink(t),
                _ => continue,
            },
            tar::EntryType::Char => EntryKind::CharDevice(
                h.device_major().ok().flatten().unwrap_or(0),
                h.device_minor().ok().flatten().unwrap_or(0),
            ),
            tar::EntryType::Block => EntryKind::BlockDevice(
                h.device_major().ok().flatten().unwrap_or(0),
                h.device_minor().ok().flatten().unwrap_or(0),
            ),
            tar::EntryType::Fifo => EntryKind::Fifo,
            _ => continue,
        };
        let size = if kind == EntryKind::File {
            entry.size()
        } else {
            0
        };
        let data: Option<&mut dyn Read> = if kind == EntryKind::File {
            Some(&mut entry)
        } else {
            None
        };
        writer.append(&name, &kind, &meta, size, data)?;
    }
    // Deletions become whiteouts; one for the topmost deleted path is enough.
    deleted.sort();
    let mut last: Option<String> = None;
    for path in deleted {
        if last
            .as_ref()
            .is_some_and(|l| path.starts_with(&format!("{l}/")))
        {
            continue;
        }
        let (dir, file) = path.rsplit_once('/').unwrap_or(("", &path));
        let wh = if dir.is_empty() {
            format!(".wh.{file}")
        } else {
            format!("{dir}/.wh.{file}")
        };
        let meta = Meta {
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
            xattrs: Vec::new(),
        };
        writer.append(&wh, &EntryKind::File, &meta, 0, Some(&mut io::empty()))?;
        last = Some(path);
    }
    let written = writer.finish()?;
    let _ = std::fs::remove_file(&export);
    scratch.adopt(&written.path, &written.descriptor.digest)?;

    let config = container_config(&base.config.bytes, &info, &written.diff_id.to_string())
        .map_err(|e| Error::invalid(location(id), e))?;
    let base_layers = base.layers.len();
    let mut layers = base.layers.clone();
    layers.push(Layer {
        descriptor: written.descriptor,
        diff_id: written.diff_id,
        store: scratch,
    });
    Ok((
        Image {
            manifest: None,
            config: RawDoc::new(MediaType::OciConfig, config),
            layers,
        },
        base_layers,
    ))
}

fn xattrs<R: Read>(entry: &mut tar::Entry<'_, R>) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    if let Ok(Some(exts)) = entry.pax_extensions() {
        for ext in exts.flatten() {
            if let (Ok(key), value) = (ext.key(), ext.value_bytes()) {
                if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                    out.push((name.to_string(), value.to_vec()));
                }
            }
        }
    }
    out.sort();
    out
}

/// The base image's config with the change layer appended (diff_id and
/// history) and the container's run config, as `docker commit` records it.
fn container_config(
    base: &[u8],
    info: &Value,
    diff_id: &str,
) -> std::result::Result<Vec<u8>, String> {
    let mut doc: Value =
        serde_json::from_slice(base).map_err(|e| format!("its image config is not JSON: {e}"))?;
    let ids = doc["rootfs"]["diff_ids"]
        .as_array_mut()
        .ok_or("its image config has no rootfs.diff_ids")?;
    ids.push(Value::String(diff_id.to_string()));
    let created = info["Created"].clone();
    let entry = serde_json::json!({
        "created": created,
        "created_by": format!("whittle docker-container:{}", info["Id"].as_str().unwrap_or("")),
    });
    match doc["history"].as_array_mut() {
        Some(h) => h.push(entry),
        None => doc["history"] = Value::Array(vec![entry]),
    }
    if let Some(run) = info["Config"].as_object() {
        for key in [
            "Entrypoint",
            "Cmd",
            "Env",
            "WorkingDir",
            "User",
            "ExposedPorts",
            "Volumes",
            "Labels",
            "StopSignal",
        ] {
            if let Some(v) = run.get(key) {
                doc["config"][key] = v.clone();
            }
        }
    }
    if created.is_string() {
        doc["created"] = created;
    }
    serde_json::to_vec(&doc).map_err(|e| e.to_string())
}
