//! What an ELF object asks of the dynamic loader: its interpreter, the
//! libraries it names, where it says to look for them, and the libraries it
//! announces it may `dlopen` (the `.note.dlopen` convention).
//!
//! Reads only the headers, the dynamic segment, its string table and the
//! notes, through [`Root::read_at`], so a large binary is never read whole.
//! Every offset and size comes from untrusted input and is checked against
//! the file size and a cap before anything is allocated.

use elf::abi;
use elf::dynamic::DynamicTable;
use elf::endian::AnyEndian;
use elf::file::{parse_ident, Class, FileHeader};
use elf::note::{Note, NoteIterator};
use elf::segment::{ProgramHeader, SegmentTable};

use crate::root::Root;

/// Largest dynamic segment, string table or note area read (16 MiB).
const MAX_REGION: u64 = 16 << 20;

/// The `.note.dlopen` note: owner "FDO", this type, a JSON list as description.
const NT_FDO_DLOPEN_METADATA: u64 = 0x407c_0c0a;

/// Why an ELF object could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DepsError {
    /// Reading the file failed.
    #[error("cannot read it: {0}")]
    Io(#[from] std::io::Error),
    /// Not an ELF file, or a malformed one.
    #[error("not a valid ELF file: {0}")]
    Malformed(String),
}

fn bad(what: impl Into<String>) -> DepsError {
    DepsError::Malformed(what.into())
}

/// A library an object announces it may `dlopen`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DlopenHint {
    /// Alternative sonames, in preference order.
    pub sonames: Vec<String>,
    /// `required`, `recommended` or `suggested` (the convention's default is `recommended`).
    pub priority: String,
    /// The feature it provides, when named.
    pub feature: Option<String>,
}

/// What the loader needs for one ELF object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElfDeps {
    /// 32 or 64.
    pub bits: u8,
    /// `e_machine`.
    pub machine: u16,
    /// `PT_INTERP`, for programs started through a loader.
    pub interpreter: Option<String>,
    /// `DT_NEEDED`, in order.
    pub needed: Vec<String>,
    /// `DT_RPATH` entries (colon-separated in the file).
    pub rpath: Vec<String>,
    /// `DT_RUNPATH` entries.
    pub runpath: Vec<String>,
    /// `DT_SONAME`.
    pub soname: Option<String>,
    /// `.note.dlopen` entries.
    pub dlopen: Vec<DlopenHint>,
    /// True when the object has a dynamic section.
    pub dynamic: bool,
}

struct Reader<'a> {
    root: &'a dyn Root,
    path: &'a str,
    size: u64,
}

impl Reader<'_> {
    fn bytes(&self, offset: u64, len: u64) -> Result<Vec<u8>, DepsError> {
        let end = offset
            .checked_add(len)
            .ok_or_else(|| bad("an offset overflows"))?;
        if end > self.size {
            return Err(bad(format!(
                "a region ends at byte {end}, past the end of the file ({} bytes)",
                self.size
            )));
        }
        if len > MAX_REGION {
            return Err(bad(format!("a region of {len} bytes is implausibly large")));
        }
        let mut buf = vec![0u8; len as usize];
        let mut filled = 0usize;
        while filled < buf.len() {
            let n = self
                .root
                .read_at(self.path, offset + filled as u64, &mut buf[filled..])?;
            if n == 0 {
                return Err(bad("the file is shorter than its headers say"));
            }
            filled += n;
        }
        Ok(buf)
    }
}

/// Reads the loader-relevant facts of the ELF file `path` (of `size` bytes) in `root`.
pub fn read_deps(root: &dyn Root, path: &str, size: u64) -> Result<ElfDeps, DepsError> {
    let r = Reader { root, path, size };
    let head_len = size.min(64);
    let head = r.bytes(0, head_len)?;
    if !head.starts_with(b"\x7fELF") {
        return Err(bad("no ELF magic"));
    }
    let ident = parse_ident::<AnyEndian>(
        head.get(..abi::EI_NIDENT)
            .ok_or_else(|| bad("truncated header"))?,
    )
    .map_err(|e| bad(e.to_string()))?;
    let tail_len = match ident.1 {
        Class::ELF32 => elf::file::ELF32_EHDR_TAILSIZE,
        Class::ELF64 => elf::file::ELF64_EHDR_TAILSIZE,
    };
    let tail = head
        .get(abi::EI_NIDENT..abi::EI_NIDENT + tail_len)
        .ok_or_else(|| bad("truncated header"))?;
    let ehdr = FileHeader::parse_tail(ident, tail).map_err(|e| bad(e.to_string()))?;
    let phlen = u64::from(ehdr.e_phnum) * u64::from(ehdr.e_phentsize);
    let phbuf = r.bytes(ehdr.e_phoff, phlen)?;
    let phdrs: Vec<ProgramHeader> = SegmentTable::new(ehdr.endianness, ehdr.class, &phbuf)
        .iter()
        .collect();

    let mut deps = ElfDeps {
        bits: if ehdr.class == Class::ELF64 { 64 } else { 32 },
        machine: ehdr.e_machine,
        interpreter: None,
        needed: Vec::new(),
        rpath: Vec::new(),
        runpath: Vec::new(),
        soname: None,
        dlopen: Vec::new(),
        dynamic: false,
    };
    for ph in &phdrs {
        match ph.p_type {
            abi::PT_INTERP => {
                let raw = r.bytes(ph.p_offset, ph.p_filesz)?;
                deps.interpreter = Some(c_string(&raw, 0).unwrap_or_default());
            }
            abi::PT_NOTE => {
                let raw = r.bytes(ph.p_offset, ph.p_filesz)?;
                let notes =
                    NoteIterator::new(ehdr.endianness, ehdr.class, ph.p_align as usize, &raw);
                for note in notes {
                    if let Note::Unknown(any) = note {
                        if any.n_type == NT_FDO_DLOPEN_METADATA
                            && any.name_str().ok() == Some("FDO")
                        {
                            deps.dlopen.extend(parse_dlopen_note(any.desc));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(dyn_ph) = phdrs.iter().find(|p| p.p_type == abi::PT_DYNAMIC) {
        deps.dynamic = true;
        let raw = r.bytes(dyn_ph.p_offset, dyn_ph.p_filesz)?;
        let table = DynamicTable::new(ehdr.endianness, ehdr.class, &raw);
        let (mut strtab, mut strsz) = (None, None);
        let mut needed = Vec::new();
        let (mut rpath, mut runpath, mut soname) = (None, None, None);
        for d in table.iter() {
            match d.d_tag {
                abi::DT_NULL => break,
                abi::DT_NEEDED => needed.push(d.d_val()),
                abi::DT_RPATH => rpath = Some(d.d_val()),
                abi::DT_RUNPATH => runpath = Some(d.d_val()),
                abi::DT_SONAME => soname = Some(d.d_val()),
                abi::DT_STRTAB => strtab = Some(d.d_ptr()),
                abi::DT_STRSZ => strsz = Some(d.d_val()),
                _ => {}
            }
        }
        let wants_strings =
            !needed.is_empty() || rpath.is_some() || runpath.is_some() || soname.is_some();
        if wants_strings {
            let (Some(addr), Some(len)) = (strtab, strsz) else {
                return Err(bad("a dynamic section without a string table"));
            };
            let offset = vaddr_to_offset(&phdrs, addr)
                .ok_or_else(|| bad("the dynamic string table is not in any loaded segment"))?;
            let strings = r.bytes(offset, len)?;
            let string = |off: u64| {
                c_string(&strings, off)
                    .ok_or_else(|| bad("a dynamic string lies outside its table"))
            };
            for off in needed {
                deps.needed.push(string(off)?);
            }
            if let Some(off) = rpath {
                deps.rpath = split_path_list(&string(off)?);
            }
            if let Some(off) = runpath {
                deps.runpath = split_path_list(&string(off)?);
            }
            if let Some(off) = soname {
                deps.soname = Some(string(off)?);
            }
        }
    }
    Ok(deps)
}

fn vaddr_to_offset(phdrs: &[ProgramHeader], addr: u64) -> Option<u64> {
    phdrs
        .iter()
        .filter(|p| p.p_type == abi::PT_LOAD)
        .find(|p| addr >= p.p_vaddr && addr - p.p_vaddr < p.p_filesz)
        .map(|p| p.p_offset + (addr - p.p_vaddr))
}

fn c_string(bytes: &[u8], offset: u64) -> Option<String> {
    let rest = bytes.get(usize::try_from(offset).ok()?..)?;
    let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
    Some(String::from_utf8_lossy(&rest[..end]).into_owned())
}

fn split_path_list(s: &str) -> Vec<String> {
    s.split(':')
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect()
}

/// Parses the JSON of a `.note.dlopen` description; malformed notes give nothing.
fn parse_dlopen_note(desc: &[u8]) -> Vec<DlopenHint> {
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        soname: Vec<String>,
        #[serde(default)]
        priority: Option<String>,
        #[serde(default)]
        feature: Option<String>,
    }
    let end = desc.iter().position(|b| *b == 0).unwrap_or(desc.len());
    let Ok(entries) = serde_json::from_slice::<Vec<Entry>>(&desc[..end]) else {
        return Vec::new();
    };
    entries
        .into_iter()
        .filter(|e| !e.soname.is_empty())
        .map(|e| DlopenHint {
            sonames: e.soname,
            priority: e.priority.unwrap_or_else(|| "recommended".into()),
            feature: e.feature,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::root::testing::MemRoot;

    fn host_file(path: &str) -> Option<Vec<u8>> {
        std::fs::read(path).ok()
    }

    #[test]
    fn reads_the_test_runners_own_dependencies() {
        let exe = std::env::current_exe().unwrap();
        let bytes = host_file(exe.to_str().unwrap()).unwrap();
        let mut root = MemRoot::default();
        root.file("/exe", &bytes);
        let deps = read_deps(&root, "/exe", bytes.len() as u64).unwrap();
        assert_eq!(deps.bits, 64);
        assert!(deps.dynamic);
        assert!(
            deps.interpreter
                .as_deref()
                .is_some_and(|i| i.contains("ld-")),
            "{deps:?}"
        );
        assert!(
            deps.needed.iter().any(|n| n.starts_with("libc.so")),
            "{deps:?}"
        );
    }

    #[test]
    fn reads_a_library_soname() {
        let Some(bytes) = [
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/usr/lib/x86_64-linux-gnu/libc.so.6",
        ]
        .iter()
        .find_map(|p| host_file(p)) else {
            eprintln!("SKIP: no glibc at the Debian x86-64 path on this host");
            return;
        };
        let mut root = MemRoot::default();
        root.file("/libc", &bytes);
        let deps = read_deps(&root, "/libc", bytes.len() as u64).unwrap();
        assert_eq!(deps.soname.as_deref(), Some("libc.so.6"));
        assert!(
            deps.needed.iter().any(|n| n.starts_with("ld-linux")),
            "{deps:?}"
        );
    }

    #[test]
    fn truncated_and_garbage_files_are_errors_not_panics() {
        let exe = std::env::current_exe().unwrap();
        let bytes = host_file(exe.to_str().unwrap()).unwrap();
        for cut in [0usize, 4, 20, 63, 64, 200, 1000, 5000] {
            let mut root = MemRoot::default();
            root.file("/x", &bytes[..cut.min(bytes.len())]);
            let r = read_deps(&root, "/x", cut.min(bytes.len()) as u64);
            assert!(r.is_err(), "cut at {cut} gave {r:?}");
        }
        let mut root = MemRoot::default();
        let mut junk = b"\x7fELF\x02\x01\x01".to_vec();
        junk.resize(4096, 0xff);
        root.file("/j", &junk);
        assert!(read_deps(&root, "/j", 4096).is_err());
    }

    #[test]
    fn parses_dlopen_notes() {
        let hints = parse_dlopen_note(
            br#"[{"feature":"zstd","soname":["libzstd.so.1"],"priority":"suggested"},{"soname":["libfoo.so.2","libfoo.so.1"]},{"nothing":1}]"#,
        );
        assert_eq!(hints.len(), 2);
        assert_eq!(hints[0].sonames, ["libzstd.so.1"]);
        assert_eq!(hints[0].priority, "suggested");
        assert_eq!(hints[1].priority, "recommended");
        assert!(parse_dlopen_note(b"not json").is_empty());
    }
}
