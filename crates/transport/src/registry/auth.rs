//! Registry credentials: `--creds`, or the Docker client's `config.json`
//! (`auths` entries with a base64 `auth`, and `credHelpers`/`credsStore`
//! helpers run as `docker-credential-NAME get`). Secrets never reach a message.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;

use crate::{Error, Result};

/// A user name and password (or token) for a registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user.
    pub user: String,
    /// The secret.
    pub secret: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <secret>)", self.user)
    }
}

impl Credentials {
    /// Parses `USER:PASS`.
    pub fn parse(s: &str) -> Result<Credentials> {
        match s.split_once(':') {
            Some((u, p)) if !u.is_empty() => Ok(Credentials {
                user: u.into(),
                secret: p.into(),
            }),
            _ => Err(Error::invalid("--creds", "expected USER:PASSWORD")),
        }
    }

    /// The `Authorization: Basic` value.
    pub fn basic(&self) -> String {
        let raw = format!("{}:{}", self.user, self.secret);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// The config file: `--authfile`, `$DOCKER_CONFIG/config.json`, or `~/.docker/config.json`.
pub fn config_path(authfile: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = authfile {
        return Some(p.to_path_buf());
    }
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// The credentials the config file has for `host`, if any.
pub fn lookup(host: &str, authfile: Option<&Path>) -> Result<Option<Credentials>> {
    let Some(path) = config_path(authfile) else {
        return Ok(None);
    };
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && authfile.is_none() => {
            return Ok(None)
        }
        Err(e) => return Err(Error::io("cannot read", &path, e)),
    };
    let doc: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::invalid(path.display(), format!("not valid JSON: {e}")))?;
    // Docker Hub is stored under its legacy URL.
    let keys: Vec<String> = if host == "registry-1.docker.io" || host == "docker.io" {
        vec![
            "https://index.docker.io/v1/".into(),
            "docker.io".into(),
            host.into(),
        ]
    } else {
        vec![
            host.into(),
            format!("https://{host}"),
            format!("http://{host}"),
        ]
    };
    if let Some(helpers) = doc["credHelpers"].as_object() {
        if let Some(helper) = keys
            .iter()
            .find_map(|k| helpers.get(k))
            .and_then(|h| h.as_str())
        {
            return run_helper(helper, host).map(Some);
        }
    }
    if let Some(auths) = doc["auths"].as_object() {
        for k in &keys {
            if let Some(auth) = auths.get(k).and_then(|a| a["auth"].as_str()) {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(auth.trim())
                    .map_err(|_| {
                        Error::invalid(
                            path.display(),
                            format!("the auth entry for {k} is not base64"),
                        )
                    })?;
                let text = String::from_utf8_lossy(&decoded).into_owned();
                return Credentials::parse(&text).map(Some).map_err(|_| {
                    Error::invalid(
                        path.display(),
                        format!("the auth entry for {k} is not USER:PASSWORD"),
                    )
                });
            }
        }
    }
    if let Some(store) = doc["credsStore"].as_str() {
        return run_helper(store, host).map(Some);
    }
    Ok(None)
}

/// Runs `docker-credential-NAME get` with the server on stdin.
fn run_helper(name: &str, host: &str) -> Result<Credentials> {
    let program = format!("docker-credential-{name}");
    let fail = |why: String| Error::invalid(&program, why);
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run it: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(host.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| fail(format!("it failed: {e}")))?;
    if !out.status.success() {
        // Its output may hold a secret: report only the status.
        return Err(fail(format!("it exited with {} for {host}", out.status)));
    }
    let doc: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|_| fail("it did not print JSON".into()))?;
    match (doc["Username"].as_str(), doc["Secret"].as_str()) {
        (Some(u), Some(s)) => Ok(Credentials {
            user: u.into(),
            secret: s.into(),
        }),
        _ => Err(fail("its answer has no Username and Secret".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_auths_and_hides_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config.json");
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        std::fs::write(
            &cfg,
            format!(r#"{{"auths":{{"127.0.0.1:5000":{{"auth":"{auth}"}}}}}}"#),
        )
        .unwrap();
        let c = lookup("127.0.0.1:5000", Some(&cfg)).unwrap().unwrap();
        assert_eq!(c.user, "alice");
        assert_eq!(c.secret, "s3cret");
        assert!(!format!("{c:?}").contains("s3cret"));
        assert!(lookup("other:1", Some(&cfg)).unwrap().is_none());
        assert!(Credentials::parse("nocolon").is_err());
    }
}
