//! ELF facts read from untrusted bytes taken out of container images.
//!
//! Images are input: every offset in them is checked, and nothing here panics
//! on malformed files. Parsing uses the `elf` crate (no unsafe, fuzzed). This
//! crate answers the questions image tools ask first: is this program static or
//! dynamic, and which loader (`PT_INTERP`) does the kernel need to start it?
#![deny(missing_docs)]

pub mod deps;
pub mod ldconfig;
pub mod root;
pub mod search;

pub use deps::{read_deps, DepsError, ElfDeps};
pub use root::{NodeKind, Root};
pub use search::{LoaderKind, Searcher};

use elf::abi;
use elf::endian::AnyEndian;
use elf::file::{parse_ident, Class, FileHeader};
use elf::segment::SegmentTable;

/// How many leading bytes of a file [`summarize`] needs: program headers and
/// the interpreter path sit at the start of every linker's output.
pub const PREFIX: usize = 64 * 1024;

/// How an ELF file is linked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Linkage {
    /// Started through a program interpreter (the dynamic loader).
    Dynamic {
        /// The `PT_INTERP` path, e.g. `/lib64/ld-linux-x86-64.so.2`.
        interpreter: String,
    },
    /// An executable with no interpreter and no dynamic section.
    Static,
    /// A shared object with no interpreter: a library, or a static-pie program.
    SharedObject,
    /// A relocatable object, a core dump, or anything else.
    Other,
}

/// What [`summarize`] found in an ELF file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElfSummary {
    /// 32 or 64.
    pub bits: u8,
    /// The machine, e.g. `x86-64`.
    pub machine: String,
    /// How it is linked.
    pub linkage: Linkage,
}

impl ElfSummary {
    /// The interpreter, for dynamic programs.
    pub fn interpreter(&self) -> Option<&str> {
        match &self.linkage {
            Linkage::Dynamic { interpreter } => Some(interpreter),
            _ => None,
        }
    }
}

/// True when `prefix` starts with the ELF magic.
pub fn is_elf(prefix: &[u8]) -> bool {
    prefix.starts_with(b"\x7fELF")
}

/// Summarises an ELF file from its first bytes (`prefix`, ideally [`PREFIX`]
/// long) and its full `size`. Returns `None` for non-ELF or malformed files.
pub fn summarize(prefix: &[u8], size: u64) -> Option<ElfSummary> {
    if !is_elf(prefix) {
        return None;
    }
    let ident = parse_ident::<AnyEndian>(prefix.get(..abi::EI_NIDENT)?).ok()?;
    let tail_len = match ident.1 {
        Class::ELF32 => elf::file::ELF32_EHDR_TAILSIZE,
        Class::ELF64 => elf::file::ELF64_EHDR_TAILSIZE,
    };
    let ehdr = FileHeader::parse_tail(
        ident,
        prefix.get(abi::EI_NIDENT..abi::EI_NIDENT + tail_len)?,
    )
    .ok()?;
    let bits = if ehdr.class == Class::ELF64 { 64 } else { 32 };
    let machine = machine_name(ehdr.e_machine);
    let phoff = usize::try_from(ehdr.e_phoff).ok()?;
    let phlen = usize::from(ehdr.e_phnum).checked_mul(usize::from(ehdr.e_phentsize))?;
    let phdrs = SegmentTable::new(
        ehdr.endianness,
        ehdr.class,
        prefix.get(phoff..phoff.checked_add(phlen)?)?,
    );
    let mut interp = None;
    let mut dynamic = false;
    for ph in phdrs.iter() {
        match ph.p_type {
            abi::PT_INTERP => {
                let start = usize::try_from(ph.p_offset).ok()?;
                let end = start.checked_add(usize::try_from(ph.p_filesz).ok()?)?;
                if end as u64 > size {
                    return None;
                }
                let raw = prefix.get(start..end)?;
                let raw = raw.split(|b| *b == 0).next().unwrap_or(raw);
                interp = Some(String::from_utf8_lossy(raw).into_owned());
            }
            abi::PT_DYNAMIC => dynamic = true,
            _ => {}
        }
    }
    let linkage = match (interp, ehdr.e_type) {
        (Some(interpreter), _) => Linkage::Dynamic { interpreter },
        (None, abi::ET_EXEC) if !dynamic => Linkage::Static,
        (None, abi::ET_EXEC | abi::ET_DYN) => Linkage::SharedObject,
        _ => Linkage::Other,
    };
    Some(ElfSummary {
        bits,
        machine,
        linkage,
    })
}

fn machine_name(machine: u16) -> String {
    match machine {
        abi::EM_X86_64 => "x86-64".into(),
        abi::EM_386 => "i386".into(),
        abi::EM_AARCH64 => "aarch64".into(),
        abi::EM_ARM => "arm".into(),
        abi::EM_RISCV => "riscv".into(),
        abi::EM_PPC64 => "ppc64".into(),
        abi::EM_S390 => "s390".into(),
        other => format!("machine {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_prefix(path: &str) -> Option<(Vec<u8>, u64)> {
        let bytes = std::fs::read(path).ok()?;
        let size = bytes.len() as u64;
        Some((bytes[..bytes.len().min(PREFIX)].to_vec(), size))
    }

    #[test]
    fn the_test_runner_itself_is_a_dynamic_elf() {
        // The running test binary is a real ELF built by this toolchain.
        let me = std::env::current_exe().unwrap();
        let (prefix, size) = read_prefix(me.to_str().unwrap()).unwrap();
        let s = summarize(&prefix, size).unwrap();
        assert_eq!(s.bits, 64);
        let interp = s.interpreter().expect("a dynamic test binary");
        assert!(interp.starts_with('/') && interp.contains("ld"), "{interp}");
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        assert_eq!(summarize(b"not elf at all", 14), None);
        let mut truncated = b"\x7fELF\x02\x01\x01".to_vec();
        truncated.resize(70, 0xff);
        assert_eq!(summarize(&truncated, 70), None);
        // A header that points its program headers far past the prefix.
        let me = std::env::current_exe().unwrap();
        let (mut prefix, size) = read_prefix(me.to_str().unwrap()).unwrap();
        prefix[0x20..0x28].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(summarize(&prefix, size), None);
    }
}
