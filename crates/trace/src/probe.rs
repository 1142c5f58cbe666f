//! Probes that drive the program while it runs: HTTP requests, TCP exchanges,
//! commands inside the sandbox, a host-side script. HTTP and TCP probes reach
//! the program from a thread that has joined the sandbox's network namespace,
//! so nothing is exposed on the host and ports never clash.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

use crate::net::Net;

/// `--http-probe [PORT][/PATH]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpProbe {
    /// The port; `None` means every exposed port.
    pub port: Option<u16>,
    /// The request path, starting with `/`.
    pub path: String,
}

impl HttpProbe {
    /// Parses `80/`, `8080/health`, `80`, `/index.html` or `` (every exposed port, `/`).
    pub fn parse(s: &str) -> Result<HttpProbe, String> {
        let (port, path) = match s.find('/') {
            Some(i) => (&s[..i], &s[i..]),
            None => (s, "/"),
        };
        let port = if port.is_empty() {
            None
        } else {
            Some(
                port.parse::<u16>()
                    .map_err(|_| format!("{s:?} is not [PORT][/PATH] (e.g. 80/ or 8080/health)"))?,
            )
        };
        if path.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "{s:?}: the path may not contain spaces or control characters"
            ));
        }
        Ok(HttpProbe {
            port,
            path: path.to_string(),
        })
    }
}

/// `--tcp-probe PORT[:LINE]`: connect; with a line, send it and read the reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpProbe {
    /// The port.
    pub port: u16,
    /// A line to send (a newline is added).
    pub send: Option<String>,
}

impl TcpProbe {
    /// Parses `7000` or `7000:hello`.
    pub fn parse(s: &str) -> Result<TcpProbe, String> {
        let (port, send) = match s.split_once(':') {
            Some((p, l)) => (p, Some(l.to_string())),
            None => (s, None),
        };
        let port = port
            .parse::<u16>()
            .map_err(|_| format!("{s:?} is not PORT[:LINE] (e.g. 7000 or 7000:hello)"))?;
        Ok(TcpProbe { port, send })
    }
}

/// What one probe saw.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ProbeResult {
    /// Which probe, e.g. `GET :80/`.
    pub name: String,
    /// Whether it got an answer (any HTTP status; a TCP reply; exit status 0).
    pub ok: bool,
    /// For people: status, sizes, errors.
    pub summary: String,
    /// What must match between two runs (status and body digest, reply, exit and output digest).
    pub fingerprint: String,
    /// How long it took: an HTTP or TCP probe with the wait for its port, an exec
    /// probe with its retries.
    pub seconds: f64,
}

pub(crate) fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Waits until one of `ports` accepts, retrying with a growing pause (no fixed
/// sleep), while `alive()` holds, at most until `deadline`. Returns that port.
pub(crate) fn wait_ready(
    net: &Net,
    ports: &[u16],
    deadline: Instant,
    alive: &dyn Fn() -> bool,
) -> Result<u16, String> {
    let mut pause = Duration::from_millis(2);
    let shown = ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    loop {
        for port in ports {
            if net.connect(*port, Duration::from_millis(500)).is_ok() {
                return Ok(*port);
            }
        }
        if !alive() {
            return Err(format!(
                "the program exited before port {shown} accepted connections"
            ));
        }
        if Instant::now() >= deadline {
            return Err(format!("nothing accepted connections on port {shown}"));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

const MAX_RESPONSE: u64 = 64 << 20;
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Decodes a chunked body; `None` when it is malformed.
fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}

/// `GET path` on `port` (HTTP/1.1, `Connection: close`).
pub(crate) fn http_get(net: &Net, port: u16, path: &str) -> ProbeResult {
    let name = format!("GET :{port}{path}");
    let fail = |name: String, why: String| ProbeResult {
        seconds: 0.0,
        name,
        ok: false,
        fingerprint: format!("error: {why}"),
        summary: why,
    };
    let mut stream = match net.connect(port, IO_TIMEOUT) {
        Ok(s) => s,
        Err(e) => return fail(name, format!("cannot connect: {e}")),
    };
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\nUser-Agent: whittle-probe\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    if let Err(e) = stream.write_all(request.as_bytes()) {
        return fail(name, format!("cannot send the request: {e}"));
    }
    let mut raw = Vec::new();
    if let Err(e) = (&mut stream).take(MAX_RESPONSE).read_to_end(&mut raw) {
        if raw.is_empty() {
            return fail(name, format!("no response: {e}"));
        }
    }
    let Some(head_end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return fail(name, "the response is not HTTP".into());
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_string();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut body = raw[head_end + 4..].to_vec();
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if chunked {
        body = dechunk(&body).unwrap_or(body);
    }
    let digest = sha256(&body);
    ProbeResult {
        seconds: 0.0,
        name,
        ok: status != 0,
        summary: format!("HTTP {status}, {} bytes", body.len()),
        fingerprint: format!("{status} {digest}"),
    }
}

/// Connects to `port`; sends `line` and reads one reply line (or until the peer closes).
pub(crate) fn tcp(net: &Net, port: u16, line: Option<&str>) -> ProbeResult {
    let name = match line {
        Some(l) => format!("TCP :{port} {l:?}"),
        None => format!("TCP :{port}"),
    };
    let mut stream = match net.connect(port, IO_TIMEOUT) {
        Ok(s) => s,
        Err(e) => {
            return ProbeResult {
                seconds: 0.0,
                name,
                ok: false,
                summary: format!("cannot connect: {e}"),
                fingerprint: "refused".into(),
            }
        }
    };
    let Some(line) = line else {
        return ProbeResult {
            seconds: 0.0,
            name,
            ok: true,
            summary: "connected".into(),
            fingerprint: "connected".into(),
        };
    };
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    if let Err(e) = stream.write_all(format!("{line}\n").as_bytes()) {
        return ProbeResult {
            seconds: 0.0,
            name,
            ok: false,
            summary: format!("cannot send: {e}"),
            fingerprint: "send failed".into(),
        };
    }
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while reply.len() < 1 << 20 {
        match stream.read(&mut byte) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if byte[0] == b'\n' {
                    break;
                }
                reply.push(byte[0]);
            }
        }
    }
    let text = String::from_utf8_lossy(&reply).to_string();
    ProbeResult {
        seconds: 0.0,
        name,
        ok: !reply.is_empty(),
        summary: if reply.is_empty() {
            "no reply".into()
        } else {
            format!("replied {text:?}")
        },
        fingerprint: format!("reply {text:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_probe_flags() {
        assert_eq!(
            HttpProbe::parse("80/").unwrap(),
            HttpProbe {
                port: Some(80),
                path: "/".into()
            }
        );
        assert_eq!(HttpProbe::parse("8080/health").unwrap().path, "/health");
        assert_eq!(
            HttpProbe::parse("").unwrap(),
            HttpProbe {
                port: None,
                path: "/".into()
            }
        );
        assert_eq!(HttpProbe::parse("/x").unwrap().port, None);
        assert!(HttpProbe::parse("http/").is_err());
        assert!(HttpProbe::parse("80/a b").is_err());
        assert_eq!(
            TcpProbe::parse("7000:hello there").unwrap().send.as_deref(),
            Some("hello there")
        );
        assert!(TcpProbe::parse("seven").is_err());
    }

    #[test]
    fn dechunks() {
        assert_eq!(
            dechunk(b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n").unwrap(),
            b"abcde"
        );
        assert!(dechunk(b"zz\r\n").is_none());
    }

    #[test]
    fn probes_a_real_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            // The readiness check, the GET, the TCP exchange.
            for _ in 0..3 {
                let (mut s, _) = listener.accept().unwrap();
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).unwrap_or(0);
                if buf[..n].starts_with(b"GET") {
                    s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
                        .unwrap();
                } else {
                    s.write_all(&buf[..n]).unwrap();
                }
            }
        });
        let net = Net::host();
        wait_ready(
            &net,
            &[port],
            Instant::now() + Duration::from_secs(5),
            &|| true,
        )
        .unwrap();
        let r = http_get(&net, port, "/");
        assert!(r.ok, "{r:?}");
        assert_eq!(r.fingerprint, format!("200 {}", sha256(b"hi")));
        let t = tcp(&net, port, Some("ping"));
        assert_eq!(t.summary, "replied \"ping\"");
        server.join().unwrap();
    }
}
