//! One registry's HTTP client: the distribution API's auth challenges (Basic,
//! and Bearer tokens fetched from the realm and cached per scope), retries with
//! backoff on 429, 5xx and dropped connections, and errors in words.

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ureq::http::{Request, Response};
use ureq::{Agent, Body, SendBody};

use super::auth::Credentials;
use crate::{Error, Result};

/// How often a request is tried before giving up on transient failures.
const ATTEMPTS: u32 = 5;

/// What a registry connection needs.
#[derive(Clone, Debug, Default)]
pub struct RegistryOptions {
    /// `--creds USER:PASS`, overriding the config file.
    pub creds: Option<Credentials>,
    /// `--authfile`.
    pub authfile: Option<std::path::PathBuf>,
    /// `--tls-verify=false`: plain HTTP or unverified TLS for this registry.
    pub insecure: bool,
    /// `--cert-dir`: extra CA certificates (`*.crt`) to trust besides the system's.
    pub cert_dir: Option<std::path::PathBuf>,
}

/// A body to send, made again for each attempt.
pub type BodyFactory<'a> = &'a (dyn Fn() -> Result<(Box<dyn Read + 'a>, u64)> + Sync);

/// A client for one registry host.
pub struct Client {
    agent: Agent,
    base: String,
    host: String,
    creds: Option<Credentials>,
    /// `Authorization` values by scope (Bearer) or for all (Basic, under "").
    auth: Mutex<HashMap<String, String>>,
    /// Why HTTPS failed when plain HTTP was chosen instead.
    tls_error: Option<String>,
}

/// The system's CA certificates plus every `*.crt` in `dir`.
fn roots_with(dir: &std::path::Path) -> Result<Vec<ureq::tls::Certificate<'static>>> {
    let mut certs = Vec::new();
    let mut add = |path: &std::path::Path| -> Result<()> {
        let pem = std::fs::read(path).map_err(|e| Error::io("cannot read", path, e))?;
        for item in ureq::tls::parse_pem(&pem) {
            if let Ok(ureq::tls::PemItem::Certificate(c)) = item {
                certs.push(c.to_owned());
            }
        }
        Ok(())
    };
    for bundle in [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
    ] {
        let p = std::path::Path::new(bundle);
        if p.is_file() {
            add(p)?;
            break;
        }
    }
    let entries =
        std::fs::read_dir(dir).map_err(|e| Error::io("cannot read --cert-dir", dir, e))?;
    let mut files: Vec<std::path::PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "crt"))
        .collect();
    files.sort();
    for f in &files {
        add(f)?;
    }
    Ok(certs)
}

/// True for hosts that are this machine: plain HTTP is allowed there.
fn is_local(host: &str) -> bool {
    let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
    name == "localhost" || name.starts_with("127.") || name == "[::1]"
}

impl Client {
    /// A client for `host` (`HOST[:PORT]`): HTTPS, falling back to plain HTTP
    /// only for this machine's addresses or with `--tls-verify=false`.
    pub fn new(host: &str, opts: &RegistryOptions) -> Result<Client> {
        let roots = match &opts.cert_dir {
            Some(dir) => ureq::tls::RootCerts::Specific(Arc::new(roots_with(dir)?)),
            None => ureq::tls::RootCerts::PlatformVerifier,
        };
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(roots)
            .disable_verification(opts.insecure)
            .build();
        let config = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(15)))
            .timeout_recv_response(Some(Duration::from_secs(120)))
            .timeout_recv_body(Some(Duration::from_secs(300)))
            .max_idle_connections_per_host(8)
            .tls_config(tls)
            .build();
        let agent = Agent::new_with_config(config);
        let creds = match &opts.creds {
            Some(c) => Some(c.clone()),
            None => super::auth::lookup(host, opts.authfile.as_deref())?,
        };
        // Docker's rule: try HTTPS; fall back to HTTP where plain HTTP is allowed.
        let may_be_plain = is_local(host) || opts.insecure;
        let https = format!("https://{host}");
        let mut tls_error = None;
        let scheme_base = if !may_be_plain {
            https
        } else {
            match agent.get(format!("{https}/v2/")).call() {
                Ok(_) => https,
                Err(e) => {
                    tls_error = Some(e.to_string());
                    format!("http://{host}")
                }
            }
        };
        Ok(Client {
            agent,
            base: scheme_base,
            host: host.to_string(),
            creds,
            auth: Mutex::new(HashMap::new()),
            tls_error,
        })
    }

    /// The registry host.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// An absolute URL for an API path (`/v2/...`) or a `Location` header value.
    pub fn url(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with("http://") || path_or_url.starts_with("https://") {
            path_or_url.to_string()
        } else {
            format!("{}{path_or_url}", self.base)
        }
    }

    fn stored_auth(&self, scope: &str) -> Option<String> {
        let map = self.auth.lock().ok()?;
        map.get(scope).or_else(|| map.get("")).cloned()
    }

    /// Sends a request, answering auth challenges and retrying transient failures.
    /// Statuses other than 401 after auth, 429 and 5xx are returned for the caller to judge.
    pub fn send(
        &self,
        method: &str,
        path_or_url: &str,
        headers: &[(&str, String)],
        scope: &str,
        body: Option<BodyFactory<'_>>,
    ) -> Result<Response<Body>> {
        let url = self.url(path_or_url);
        let mut challenged = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = Request::builder().method(method).uri(&url);
            for (k, v) in headers {
                req = req.header(*k, v);
            }
            if let Some(a) = self.stored_auth(scope) {
                req = req.header("Authorization", a);
            }
            let result = match body {
                Some(make) => {
                    let (mut reader, len) = make()?;
                    let req = req
                        .header("Content-Length", len.to_string())
                        .body(SendBody::from_reader(&mut reader))
                        .map_err(|e| Error::invalid(&url, format!("bad request: {e}")))?;
                    self.agent.run(req)
                }
                // GET and HEAD carry nothing; a bodiless POST says so with a zero
                // length rather than an empty chunked body, which proxies mishandle.
                None if method == "GET" || method == "HEAD" => {
                    let req = req
                        .body(())
                        .map_err(|e| Error::invalid(&url, format!("bad request: {e}")))?;
                    self.agent.run(req)
                }
                None => {
                    let req = req
                        .body(&[][..])
                        .map_err(|e| Error::invalid(&url, format!("bad request: {e}")))?;
                    self.agent.run(req)
                }
            };
            let resp = match result {
                Ok(r) => r,
                Err(e) => {
                    // A blob error from the body we were sending is not transient.
                    if let ureq::Error::Io(io) = &e {
                        if let Some(inner) = whittle_image::blob::find_error(io) {
                            return Err(Error::Image(inner));
                        }
                    }
                    if attempt < ATTEMPTS {
                        backoff(attempt, None);
                        continue;
                    }
                    return Err(Error::invalid(
                        format!("docker://{}", self.host),
                        format!("{method} {url} failed after {attempt} attempts: {e}"),
                    ));
                }
            };
            let status = resp.status().as_u16();
            if status == 401 && !challenged {
                challenged = true;
                let challenge = header(&resp, "www-authenticate").unwrap_or_default();
                self.answer_challenge(&challenge, scope)?;
                continue;
            }
            if (status == 429 || (500..600).contains(&status) && status != 501)
                && attempt < ATTEMPTS
            {
                let wait = header(&resp, "retry-after").and_then(|v| v.trim().parse::<u64>().ok());
                backoff(attempt, wait);
                continue;
            }
            // An HTTPS server answering plain HTTP: the real problem was the TLS handshake.
            if status == 400 {
                if let Some(tls) = &self.tls_error {
                    return Err(Error::invalid(
                        format!("docker://{}", self.host),
                        format!(
                            "the registry speaks HTTPS but the connection failed ({tls}); \
                             trust its CA with --cert-dir DIR or skip verification with --tls-verify=false"
                        ),
                    ));
                }
            }
            return Ok(resp);
        }
    }

    /// Gets an `Authorization` value for a `WWW-Authenticate` challenge.
    fn answer_challenge(&self, challenge: &str, scope: &str) -> Result<()> {
        let (scheme, params) = parse_challenge(challenge);
        let value = match scheme.to_ascii_lowercase().as_str() {
            "basic" => {
                let Some(c) = &self.creds else {
                    return Err(self.unauthorized("the registry wants a user name and password (give --creds or log in with docker login)"));
                };
                (String::new(), c.basic())
            }
            "bearer" => {
                let realm = params.get("realm").cloned().ok_or_else(|| {
                    self.unauthorized("the registry's Bearer challenge names no realm")
                })?;
                let mut query = Vec::new();
                if let Some(s) = params.get("service") {
                    query.push(format!("service={}", crate::encode_query(s)));
                }
                let wanted = params
                    .get("scope")
                    .cloned()
                    .unwrap_or_else(|| scope.to_string());
                for s in wanted.split(' ').filter(|s| !s.is_empty()) {
                    query.push(format!("scope={}", crate::encode_query(s)));
                }
                let url = if query.is_empty() {
                    realm.clone()
                } else {
                    format!(
                        "{realm}{}{}",
                        if realm.contains('?') { '&' } else { '?' },
                        query.join("&")
                    )
                };
                let mut req = self.agent.get(&url);
                if let Some(c) = &self.creds {
                    req = req.header("Authorization", c.basic());
                }
                let mut resp = req.call().map_err(|e| {
                    Error::invalid(
                        format!("docker://{}", self.host),
                        format!("cannot reach the token service {realm}: {e}"),
                    )
                })?;
                let status = resp.status().as_u16();
                if status == 401 || status == 403 {
                    return Err(self.unauthorized(&format!(
                        "the token service refused the credentials (HTTP {status})"
                    )));
                }
                if status != 200 {
                    return Err(Error::invalid(
                        format!("docker://{}", self.host),
                        format!("the token service {realm} answered HTTP {status}"),
                    ));
                }
                let raw = resp
                    .body_mut()
                    .with_config()
                    .limit(1 << 20)
                    .read_to_vec()
                    .map_err(|e| {
                        Error::invalid(&realm, format!("cannot read the token answer: {e}"))
                    })?;
                let doc: serde_json::Value = serde_json::from_slice(&raw).map_err(|e| {
                    Error::invalid(&realm, format!("the token answer is not JSON: {e}"))
                })?;
                let token = doc["token"]
                    .as_str()
                    .or_else(|| doc["access_token"].as_str())
                    .ok_or_else(|| Error::invalid(&realm, "the token answer has no token"))?;
                (scope.to_string(), format!("Bearer {token}"))
            }
            _ => {
                return Err(self.unauthorized(&format!(
                    "the registry asks for authentication ({}) whittle does not speak",
                    if scheme.is_empty() {
                        "no WWW-Authenticate header"
                    } else {
                        scheme.as_str()
                    }
                )))
            }
        };
        if let Ok(mut map) = self.auth.lock() {
            map.insert(value.0, value.1);
        }
        Ok(())
    }

    fn unauthorized(&self, why: &str) -> Error {
        Error::invalid(
            format!("docker://{}", self.host),
            format!("401 unauthorized: {why}"),
        )
    }
}

fn backoff(attempt: u32, retry_after: Option<u64>) {
    let ms = match retry_after {
        Some(s) => s.min(10) * 1000,
        None => 200u64 << attempt.min(5),
    };
    std::thread::sleep(Duration::from_millis(ms));
}

/// A response header as text.
pub fn header(resp: &Response<Body>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(String::from)
}

/// `Bearer realm="x",service="y"` -> ("Bearer", {realm: x, service: y}).
fn parse_challenge(s: &str) -> (String, HashMap<String, String>) {
    let s = s.trim();
    let (scheme, rest) = s.split_once(' ').unwrap_or((s, ""));
    let mut params = HashMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, tail) = if let Some(q) = after.strip_prefix('"') {
            match q.find('"') {
                Some(end) => (&q[..end], &q[end + 1..]),
                None => (q, ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        params.insert(key, value.to_string());
        rest = tail.trim_start().trim_start_matches(',').trim_start();
    }
    (scheme.to_string(), params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_challenges() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(s, "Bearer");
        assert_eq!(p["realm"], "https://auth.example/token");
        assert_eq!(p["service"], "registry.example");
        assert_eq!(p["scope"], "repository:a/b:pull,push");
        let (s, p) = parse_challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!(s, "Basic");
        assert_eq!(p["realm"], "Registry Realm");
        assert!(
            is_local("127.0.0.1:5000") && is_local("localhost") && !is_local("example.com:5000")
        );
    }
}
