//! The image's own loader configuration: `/etc/ld.so.conf` (with its
//! `include` lines), `/etc/ld.so.cache`, and musl's `/etc/ld-musl-ARCH.path`.

use crate::root::{normalize, parent, read_small, resolve, NodeKind, Root};

/// Largest configuration file read.
const MAX_CONF: usize = 1 << 20;
/// Largest cache read (Debian's is ~35 KB with a full library set).
const MAX_CACHE: usize = 64 << 20;
/// `include` nesting limit, against include loops.
const MAX_DEPTH: usize = 8;

/// The directories `/etc/ld.so.conf` lists, in order, `include`s expanded.
pub fn conf_dirs(root: &dyn Root) -> Vec<String> {
    let mut out = Vec::new();
    read_conf(root, "/etc/ld.so.conf", 0, &mut Vec::new(), &mut out);
    out
}

fn read_conf(
    root: &dyn Root,
    path: &str,
    depth: usize,
    seen: &mut Vec<String>,
    out: &mut Vec<String>,
) {
    if depth > MAX_DEPTH {
        return;
    }
    let Ok(real) = resolve(root, path) else {
        return;
    };
    // Each file once: an include loop adds nothing.
    if seen.contains(&real.path) {
        return;
    }
    seen.push(real.path.clone());
    if !matches!(real.kind, NodeKind::File(_)) {
        return;
    }
    let Ok(bytes) = read_small(root, &real.path, MAX_CONF) else {
        return;
    };
    let text = String::from_utf8_lossy(&bytes);
    let dir = parent(path).to_string();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("include") {
            if rest.starts_with(char::is_whitespace) {
                for pattern in rest.split_whitespace() {
                    for file in glob(root, &normalize(&dir, pattern)) {
                        read_conf(root, &file, depth + 1, seen, out);
                    }
                }
                continue;
            }
        }
        if line.starts_with("hwcap") {
            continue;
        }
        for d in line.split(|c: char| c == ':' || c == ',' || c.is_whitespace()) {
            if d.starts_with('/') {
                let d = normalize("/", d);
                if !out.contains(&d) {
                    out.push(d);
                }
            }
        }
    }
}

/// Paths matching `pattern` (absolute; `*` and `?` within one component), sorted.
pub fn glob(root: &dyn Root, pattern: &str) -> Vec<String> {
    let mut found = vec![String::from("/")];
    for part in pattern.split('/').filter(|p| !p.is_empty()) {
        let mut next = Vec::new();
        for dir in &found {
            let join = |name: &str| {
                if dir == "/" {
                    format!("/{name}")
                } else {
                    format!("{dir}/{name}")
                }
            };
            if part.contains(['*', '?']) {
                let Ok(real) = resolve(root, dir) else {
                    continue;
                };
                for name in root.list(&real.path) {
                    if wildcard_match(part, &name) {
                        next.push(join(&name));
                    }
                }
            } else {
                next.push(join(part));
            }
        }
        found = next;
    }
    found.retain(|p| resolve(root, p).is_ok());
    found.sort();
    found
}

/// Shell-style match of one path component: `*` any run, `?` one character.
pub fn wildcard_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// One `ld.so.cache` entry: a soname and the path ldconfig found it at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheEntry {
    /// The soname (`libssl.so.3`).
    pub soname: String,
    /// The path (`/usr/lib/x86_64-linux-gnu/libssl.so.3`).
    pub path: String,
}

const NEW_MAGIC: &[u8] = b"glibc-ld.so.cache1.1";
const OLD_MAGIC: &[u8] = b"ld.so-1.7.0";

/// The entries of the image's `/etc/ld.so.cache`, in the cache's order; empty
/// when it is absent or not in a format glibc has written since 2.1.
pub fn cache_entries(root: &dyn Root) -> Vec<CacheEntry> {
    let Ok(real) = resolve(root, "/etc/ld.so.cache") else {
        return Vec::new();
    };
    let Ok(bytes) = read_small(root, &real.path, MAX_CACHE) else {
        return Vec::new();
    };
    parse_cache(&bytes)
}

fn u32_at(b: &[u8], at: usize, little: bool) -> Option<u32> {
    let raw: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(if little {
        u32::from_le_bytes(raw)
    } else {
        u32::from_be_bytes(raw)
    })
}

/// Parses `ld.so.cache` bytes: the new format alone, or the old format with
/// the new one embedded after it.
pub fn parse_cache(bytes: &[u8]) -> Vec<CacheEntry> {
    let start = if bytes.starts_with(NEW_MAGIC) {
        0
    } else if bytes.starts_with(OLD_MAGIC) {
        // Old header (12 bytes of magic + count) and 12-byte entries, then the new table, 8-aligned.
        let Some(n) = u32_at(bytes, 12, true) else {
            return Vec::new();
        };
        let after = 16usize.saturating_add((n as usize).saturating_mul(12));
        let aligned = after.div_ceil(8) * 8;
        match bytes.get(aligned..) {
            Some(rest) if rest.starts_with(NEW_MAGIC) => aligned,
            _ => return Vec::new(),
        }
    } else {
        return Vec::new();
    };
    let table = &bytes[start..];
    // Byte order: flags byte 28 says 2 = little, 3 = big; 0 (old writers) means host order.
    let little = match table.get(28) {
        Some(3) => false,
        Some(2) => true,
        _ => cfg!(target_endian = "little"),
    };
    let Some(nlibs) = u32_at(table, 20, little) else {
        return Vec::new();
    };
    let string = |off: u32| -> Option<String> {
        // Offsets in the new format count from the start of the new table.
        let rest = table.get(off as usize..)?;
        let end = rest.iter().position(|b| *b == 0)?;
        Some(String::from_utf8_lossy(&rest[..end]).into_owned())
    };
    let mut out = Vec::new();
    for i in 0..nlibs as usize {
        let at = 48 + i * 24;
        let (Some(key), Some(value)) =
            (u32_at(table, at + 4, little), u32_at(table, at + 8, little))
        else {
            break;
        };
        if let (Some(soname), Some(path)) = (string(key), string(value)) {
            if path.starts_with('/') {
                out.push(CacheEntry { soname, path });
            }
        }
    }
    out
}

/// musl's search path for `interpreter` (`/lib/ld-musl-x86_64.so.1`): the
/// image's `/etc/ld-musl-x86_64.path` when present, else musl's default.
pub fn musl_dirs(root: &dyn Root, interpreter: &str) -> Vec<String> {
    let name = interpreter.rsplit('/').next().unwrap_or(interpreter);
    let arch = name
        .strip_prefix("ld-musl-")
        .and_then(|s| s.strip_suffix(".so.1"))
        .unwrap_or("");
    let conf = format!("/etc/ld-musl-{arch}.path");
    if let Ok(real) = resolve(root, &conf) {
        if let Ok(bytes) = read_small(root, &real.path, MAX_CONF) {
            return String::from_utf8_lossy(&bytes)
                .split(|c: char| c == ':' || c.is_whitespace())
                .filter(|d| d.starts_with('/'))
                .map(|d| normalize("/", d))
                .collect();
        }
    }
    ["/lib", "/usr/local/lib", "/usr/lib"]
        .map(String::from)
        .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::root::testing::MemRoot;

    #[test]
    fn expands_includes_relative_to_the_conf_dir() {
        let mut r = MemRoot::default();
        r.dir("/etc")
            .dir("/etc/ld.so.conf.d")
            .file(
                "/etc/ld.so.conf",
                b"# comment\ninclude ld.so.conf.d/*.conf\n/opt/lib:/opt/lib2\n",
            )
            .file(
                "/etc/ld.so.conf.d/x86_64-linux-gnu.conf",
                b"# Multiarch support\n/usr/local/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu\n",
            )
            .file("/etc/ld.so.conf.d/libc.conf", b"/usr/local/lib\n")
            .file("/etc/ld.so.conf.d/ignored.txt", b"/nope\n")
            .file("/etc/ld.so.conf.d/loop.conf", b"include /etc/ld.so.conf\n");
        assert_eq!(
            conf_dirs(&r),
            [
                "/usr/local/lib",
                "/usr/local/lib/x86_64-linux-gnu",
                "/lib/x86_64-linux-gnu",
                "/opt/lib",
                "/opt/lib2"
            ]
        );
    }

    #[test]
    fn matches_wildcards() {
        assert!(wildcard_match("*.conf", "libc.conf"));
        assert!(!wildcard_match("*.conf", "libc.conf.bak"));
        assert!(wildcard_match("lib?.so*", "libz.so.1"));
        assert!(wildcard_match("*", ""));
        assert!(!wildcard_match("a*b", "acbd"));
    }

    #[test]
    fn parses_a_synthetic_new_format_cache() {
        let mut b = NEW_MAGIC.to_vec();
        b.extend(2u32.to_le_bytes()); // nlibs
        b.extend(0u32.to_le_bytes()); // len_strings
        b.extend([2, 0, 0, 0]); // little-endian flag + padding
        b.extend([0u8; 16]); // extension offset + unused
        assert_eq!(b.len(), 48);
        let strings_at = 48 + 2 * 24;
        let strings = b"libz.so.1\0/usr/lib/libz.so.1\0libm.so.6\0/lib/libm.so.6\0";
        let offs = [0u32, 10, 29, 39].map(|o| o + strings_at as u32);
        for pair in [(offs[0], offs[1]), (offs[2], offs[3])] {
            b.extend(0x0303i32.to_le_bytes());
            b.extend(pair.0.to_le_bytes());
            b.extend(pair.1.to_le_bytes());
            b.extend([0u8; 12]);
        }
        b.extend(strings);
        let entries = parse_cache(&b);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].soname, "libm.so.6");
        assert_eq!(entries[1].path, "/lib/libm.so.6");
        assert!(parse_cache(b"garbage").is_empty());
        assert!(parse_cache(&b[..60]).is_empty());
    }

    #[test]
    fn parses_the_hosts_cache_when_it_has_one() {
        let Ok(bytes) = std::fs::read("/etc/ld.so.cache") else {
            eprintln!("SKIP: this host has no /etc/ld.so.cache");
            return;
        };
        let entries = parse_cache(&bytes);
        assert!(
            entries.iter().any(|e| e.soname == "libc.so.6"),
            "libc.so.6 not among {} entries",
            entries.len()
        );
    }
}
