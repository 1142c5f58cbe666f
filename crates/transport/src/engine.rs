//! A small Docker Engine API client over its unix socket: HTTP/1.1, one
//! request per connection, bodies streamed both ways (no async stack).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use crate::{Error, Result};

/// Where the Engine listens: `DOCKER_HOST=unix://PATH`, else `/var/run/docker.sock`.
pub fn socket_path() -> Result<PathBuf> {
    match std::env::var("DOCKER_HOST") {
        Ok(h) if !h.is_empty() => match h.strip_prefix("unix://") {
            Some(p) => Ok(PathBuf::from(p)),
            None => Err(Error::invalid(
                format!("DOCKER_HOST={h}"),
                "only unix:// sockets are supported for docker-daemon:",
            )),
        },
        _ => Ok(PathBuf::from("/var/run/docker.sock")),
    }
}

/// A response: status, headers, and the body as a stream.
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
    body: Box<dyn Read + Send>,
}

impl Response {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body.
    pub fn body(&mut self) -> &mut (dyn Read + Send) {
        &mut *self.body
    }

    /// The body as text, at most `max` bytes (for error messages).
    pub fn text(&mut self, max: u64) -> String {
        let mut out = Vec::new();
        let _ = (&mut self.body).take(max).read_to_end(&mut out);
        String::from_utf8_lossy(&out).trim().to_string()
    }
}

/// The Engine at a socket.
pub struct Engine {
    socket: PathBuf,
}

fn io_err(socket: &std::path::Path, e: io::Error) -> Error {
    Error::io("cannot talk to the Docker Engine at", socket, e)
}

impl Engine {
    /// The Engine `DOCKER_HOST` names (or the default socket).
    pub fn from_env() -> Result<Engine> {
        Ok(Engine {
            socket: socket_path()?,
        })
    }

    /// Sends a request; `body` is streamed with its length.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<(&mut dyn Read, u64, &str)>,
    ) -> Result<Response> {
        let stream = UnixStream::connect(&self.socket).map_err(|e| io_err(&self.socket, e))?;
        // Exports of big images take a while to start; a stalled daemon should not hang us forever.
        let _ = stream.set_read_timeout(Some(Duration::from_secs(600)));
        let mut w = io::BufWriter::with_capacity(1 << 20, &stream);
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\nUser-Agent: whittle/{}\r\n", env!("CARGO_PKG_VERSION"));
        if let Some((_, len, content_type)) = &body {
            head.push_str(&format!(
                "Content-Type: {content_type}\r\nContent-Length: {len}\r\n"
            ));
        }
        head.push_str("\r\n");
        w.write_all(head.as_bytes())
            .map_err(|e| io_err(&self.socket, e))?;
        if let Some((reader, len, _)) = body {
            let sent =
                io::copy(&mut reader.take(len), &mut w).map_err(|e| io_err(&self.socket, e))?;
            if sent != len {
                return Err(Error::invalid(
                    path,
                    "the request body ended before its declared length",
                ));
            }
        }
        w.flush().map_err(|e| io_err(&self.socket, e))?;
        drop(w);
        let mut reader = BufReader::with_capacity(1 << 20, stream);
        let (status, headers) = read_head(&mut reader).map_err(|e| io_err(&self.socket, e))?;
        let chunked = headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
        let length = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.trim().parse::<u64>().ok());
        let body: Box<dyn Read + Send> = if chunked {
            Box::new(Chunked::new(reader))
        } else if let Some(n) = length {
            Box::new(reader.take(n))
        } else {
            Box::new(reader)
        };
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

fn read_head(r: &mut impl BufRead) -> io::Result<(u16, Vec<(String, String)>)> {
    let mut raw = Vec::new();
    loop {
        let before = raw.len();
        let n = r.read_until(b'\n', &mut raw)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the connection closed before a response",
            ));
        }
        if raw.len() > 64 * 1024 {
            return Err(io::Error::other("response headers are too long"));
        }
        if &raw[before..] == b"\r\n" || &raw[before..] == b"\n" {
            break;
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(&raw) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(io::Error::other("incomplete response head")),
        Err(e) => return Err(io::Error::other(format!("malformed response: {e}"))),
    }
    let status = resp.code.unwrap_or(0);
    let headers = resp
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    Ok((status, headers))
}

/// A `Transfer-Encoding: chunked` body.
struct Chunked<R> {
    inner: R,
    left: u64,
    done: bool,
}

impl<R: BufRead> Chunked<R> {
    fn new(inner: R) -> Self {
        Chunked {
            inner,
            left: 0,
            done: false,
        }
    }

    fn next_size(&mut self) -> io::Result<u64> {
        let mut line = String::new();
        self.inner.read_line(&mut line)?;
        let hex = line.trim().split(';').next().unwrap_or("");
        u64::from_str_radix(hex, 16)
            .map_err(|_| io::Error::other(format!("bad chunk size line {line:?}")))
    }
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let size = self.next_size()?;
            if size == 0 {
                self.done = true;
                return Ok(0);
            }
            self.left = size;
        }
        let want = buf.len().min(self.left as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the response ended inside a chunk",
            ));
        }
        self.left -= n as u64;
        if self.left == 0 {
            let mut crlf = String::new();
            self.inner.read_line(&mut crlf)?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_chunked_bodies() {
        let raw = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n";
        let mut c = Chunked::new(&raw[..]);
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        assert_eq!(out, "hello, world");
        let mut bad = Chunked::new(&b"zz\r\n"[..]);
        assert!(bad.read_to_string(&mut String::new()).is_err());
        let mut short = Chunked::new(&b"10\r\nabc"[..]);
        assert!(short.read_to_string(&mut String::new()).is_err());
    }

    #[test]
    fn parses_response_heads() {
        let raw = b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        let mut r = &raw[..];
        let (status, headers) = read_head(&mut r).unwrap();
        assert_eq!(status, 404);
        assert!(headers.contains(&("content-length".into(), "2".into())));
        assert_eq!(r, b"{}");
    }
}
