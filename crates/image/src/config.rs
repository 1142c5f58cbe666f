//! Reading and editing image configs as JSON values, so that keys whittle does
//! not model (Healthcheck, OnBuild, Shell, ...) survive untouched and in order.

use serde_json::{json, Map, Value};

use crate::{Digest, Error, Result};

fn parse(bytes: &[u8]) -> Result<Map<String, Value>> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Error::InvalidJson {
            what: "image config",
            reason: "it is not a JSON object".into(),
        }),
        Err(e) => Err(Error::InvalidJson {
            what: "image config",
            reason: e.to_string(),
        }),
    }
}

/// The config's `rootfs.diff_ids`.
pub fn diff_ids(bytes: &[u8]) -> Result<Vec<Digest>> {
    let map = parse(bytes)?;
    let ids = map
        .get("rootfs")
        .and_then(|r| r.get("diff_ids"))
        .and_then(Value::as_array)
        .ok_or_else(|| Error::InvalidJson {
            what: "image config",
            reason: "it has no rootfs.diff_ids list".into(),
        })?;
    ids.iter()
        .map(|v| {
            v.as_str()
                .ok_or_else(|| Error::InvalidDigest(v.to_string()))?
                .parse()
        })
        .collect()
}

/// Changes to an image's run configuration, as given on the command line.
#[derive(Clone, Debug, Default)]
pub struct ConfigOverrides {
    /// Replaces `Entrypoint` (and, without [`ConfigOverrides::cmd`], removes `Cmd`).
    pub entrypoint: Option<Vec<String>>,
    /// Replaces `Cmd`.
    pub cmd: Option<Vec<String>>,
    /// `KEY=VALUE` entries set in `Env` (replacing an entry with the same key).
    pub env: Vec<String>,
    /// Replaces `WorkingDir`.
    pub workdir: Option<String>,
    /// Replaces `User`.
    pub user: Option<String>,
    /// Ports added to `ExposedPorts` (`80`, `53/udp`).
    pub expose: Vec<String>,
    /// Labels set.
    pub labels: Vec<(String, String)>,
    /// Paths added to `Volumes`.
    pub volumes: Vec<String>,
    /// Replaces `StopSignal`.
    pub stop_signal: Option<String>,
}

impl ConfigOverrides {
    /// True when nothing is overridden.
    pub fn is_empty(&self) -> bool {
        self.entrypoint.is_none()
            && self.cmd.is_none()
            && self.env.is_empty()
            && self.workdir.is_none()
            && self.user.is_none()
            && self.expose.is_empty()
            && self.labels.is_empty()
            && self.volumes.is_empty()
            && self.stop_signal.is_none()
    }

    fn apply(&self, run: &mut Map<String, Value>) {
        if let Some(ep) = &self.entrypoint {
            run.insert("Entrypoint".into(), json!(ep));
            // A new entrypoint resets the image's Cmd, as ENTRYPOINT in a Dockerfile and
            // `docker run --entrypoint` do: the old Cmd was arguments for the old program.
            if self.cmd.is_none() {
                run.remove("Cmd");
            }
        }
        if let Some(cmd) = &self.cmd {
            run.insert("Cmd".into(), json!(cmd));
        }
        if !self.env.is_empty() {
            let mut env: Vec<String> = run
                .get("Env")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            for entry in &self.env {
                let key = entry.split('=').next().unwrap_or(entry);
                env.retain(|e| e.split('=').next() != Some(key));
                env.push(entry.clone());
            }
            run.insert("Env".into(), json!(env));
        }
        if let Some(w) = &self.workdir {
            run.insert("WorkingDir".into(), json!(w));
        }
        if let Some(u) = &self.user {
            run.insert("User".into(), json!(u));
        }
        if !self.expose.is_empty() {
            let ports = object_entry(run, "ExposedPorts");
            for p in &self.expose {
                let key = if p.contains('/') {
                    p.clone()
                } else {
                    format!("{p}/tcp")
                };
                ports.insert(key, json!({}));
            }
        }
        if !self.labels.is_empty() {
            let labels = object_entry(run, "Labels");
            for (k, v) in &self.labels {
                labels.insert(k.clone(), json!(v));
            }
        }
        if !self.volumes.is_empty() {
            let volumes = object_entry(run, "Volumes");
            for v in &self.volumes {
                volumes.insert(v.clone(), json!({}));
            }
        }
        if let Some(s) = &self.stop_signal {
            run.insert("StopSignal".into(), json!(s));
        }
    }
}

fn object_entry<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    if !map.get(key).is_some_and(Value::is_object) {
        map.insert(key.to_string(), json!({}));
    }
    match map.get_mut(key) {
        Some(Value::Object(m)) => m,
        // Just inserted as an object above.
        _ => unreachable!("object entry was just inserted"),
    }
}

/// What whittle changes in a config when it writes new layers.
#[derive(Clone, Debug, Default)]
pub struct ConfigEdit<'a> {
    /// New `rootfs.diff_ids` (and a one-entry history naming `created_by`), or keep.
    pub new_layers: Option<(Vec<Digest>, &'a str)>,
    /// Overrides from the command line.
    pub overrides: Option<&'a ConfigOverrides>,
    /// `SOURCE_DATE_EPOCH`: sets `created` (and history times) when given.
    pub source_date_epoch: Option<u64>,
}

/// Applies `edit` to a config, keeping every other key as it was.
pub fn edit(bytes: &[u8], edit: &ConfigEdit<'_>) -> Result<Vec<u8>> {
    let mut map = parse(bytes)?;
    // Nothing to change: keep the bytes, so the config digest (Docker's image ID) survives.
    if edit.new_layers.is_none()
        && edit.overrides.is_none_or(ConfigOverrides::is_empty)
        && edit.source_date_epoch.is_none()
    {
        return Ok(bytes.to_vec());
    }
    let created = match edit.source_date_epoch {
        Some(epoch) => Some(rfc3339(epoch)),
        None => map.get("created").and_then(Value::as_str).map(String::from),
    };
    if let Some(c) = &created {
        map.insert("created".into(), json!(c));
    }
    if let Some((diff_ids, created_by)) = &edit.new_layers {
        let rootfs = object_entry(&mut map, "rootfs");
        rootfs.insert("type".into(), json!("layers"));
        rootfs.insert("diff_ids".into(), json!(diff_ids));
        let mut entry = Map::new();
        if let Some(c) = &created {
            entry.insert("created".into(), json!(c));
        }
        entry.insert("created_by".into(), json!(created_by));
        let history: Vec<Value> = (0..diff_ids.len())
            .map(|_| Value::Object(entry.clone()))
            .collect();
        map.insert("history".into(), Value::Array(history));
    }
    if let Some(o) = edit.overrides {
        if !o.is_empty() {
            o.apply(object_entry(&mut map, "config"));
        }
    }
    Ok(serde_json::to_vec(&Value::Object(map)).unwrap_or_default())
}

/// A fresh config for an image made from a directory: linux on the host's architecture.
pub fn new_config(
    diff_ids: &[Digest],
    source_date_epoch: Option<u64>,
    overrides: &ConfigOverrides,
) -> Vec<u8> {
    let created = rfc3339(source_date_epoch.unwrap_or(0));
    let platform = crate::manifest::host_platform();
    let mut run = Map::new();
    run.insert(
        "Env".into(),
        json!(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]),
    );
    overrides.apply(&mut run);
    let doc = json!({
        "created": created,
        "architecture": platform.architecture,
        "os": platform.os,
        "config": Value::Object(run),
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": diff_ids.iter().map(|_| json!({"created": created, "created_by": "whittle dir:"})).collect::<Vec<_>>(),
    });
    serde_json::to_vec(&doc).unwrap_or_default()
}

/// Formats seconds since the epoch as RFC 3339 UTC (`1970-01-01T00:00:00Z`).
pub fn rfc3339(epoch: u64) -> String {
    let days = (epoch / 86_400) as i64;
    let secs = epoch % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn edit_keeps_unknown_keys_in_order() {
        let cfg = br#"{"zeta":1,"config":{"Healthcheck":{"Test":["x"]},"Env":["A=1","B=2"]},"rootfs":{"type":"layers","diff_ids":[]},"alpha":2}"#;
        let o = ConfigOverrides {
            env: vec!["A=3".into()],
            expose: vec!["80".into()],
            ..Default::default()
        };
        let out = edit(
            cfg,
            &ConfigEdit {
                overrides: Some(&o),
                ..Default::default()
            },
        )
        .unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with(r#"{"zeta":1,"config":{"Healthcheck":{"Test":["x"]},"Env":["B=2","A=3"],"ExposedPorts":{"80/tcp":{}}}"#), "{s}");
        assert!(s.ends_with(r#""alpha":2}"#), "{s}");
    }

    /// Regression (issue 15): `extract --entrypoint /usr/bin/tool` kept the container's
    /// `Cmd` (`sh -c 'apt-get install ...'`), so the image ran `tool sh -c ...`.
    #[test]
    fn a_new_entrypoint_resets_cmd_unless_cmd_is_given() {
        let cfg = br#"{"config":{"Cmd":["sh","-c","apt-get install ./tool.deb"]},"rootfs":{"type":"layers","diff_ids":[]}}"#;
        let run = |o: ConfigOverrides| -> serde_json::Value {
            let out = edit(
                cfg,
                &ConfigEdit {
                    overrides: Some(&o),
                    ..Default::default()
                },
            )
            .unwrap();
            serde_json::from_slice::<serde_json::Value>(&out).unwrap()["config"].clone()
        };
        let c = run(ConfigOverrides {
            entrypoint: Some(vec!["/usr/bin/tool".into()]),
            ..Default::default()
        });
        assert_eq!(c["Entrypoint"], serde_json::json!(["/usr/bin/tool"]));
        assert!(c.get("Cmd").is_none(), "{c}");
        let c = run(ConfigOverrides {
            entrypoint: Some(vec!["/usr/bin/tool".into()]),
            cmd: Some(vec!["--help".into()]),
            ..Default::default()
        });
        assert_eq!(c["Cmd"], serde_json::json!(["--help"]));
        // Only --cmd: the entrypoint stays, Cmd is replaced.
        let c = run(ConfigOverrides {
            cmd: Some(vec!["x".into()]),
            ..Default::default()
        });
        assert_eq!(c["Cmd"], serde_json::json!(["x"]));
    }

    #[test]
    fn edit_without_changes_keeps_the_bytes() {
        // Go's encoder escapes '&'; a re-serialised config would have a new digest.
        let cfg = br#"{"config":{"Cmd":["a \u0026\u0026 b"]},  "rootfs":{"type":"layers","diff_ids":[]}}"#;
        let out = edit(cfg, &ConfigEdit::default()).unwrap();
        assert_eq!(out, cfg.to_vec());
        let empty = ConfigOverrides::default();
        let edit_with = ConfigEdit {
            overrides: Some(&empty),
            ..Default::default()
        };
        assert_eq!(edit(cfg, &edit_with).unwrap(), cfg.to_vec());
        assert!(edit(b"not json", &ConfigEdit::default()).is_err());
    }

    #[test]
    fn rejects_configs_without_diff_ids() {
        assert!(diff_ids(b"{}").is_err());
        assert!(diff_ids(b"[]").is_err());
        assert!(diff_ids(br#"{"rootfs":{"diff_ids":["sha256:nope"]}}"#).is_err());
    }
}
