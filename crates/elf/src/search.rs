//! Finding a library the way the image's loader would: glibc's order
//! (`DT_RPATH`, `LD_LIBRARY_PATH`, `DT_RUNPATH`, `ld.so.cache`, default and
//! multiarch directories) or musl's (`LD_LIBRARY_PATH`, `DT_RPATH`/`DT_RUNPATH`,
//! its `.path` file or defaults), skipping candidates of another ELF class or
//! machine, as the loaders do.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::deps::{read_deps, ElfDeps};
use crate::ldconfig::{cache_entries, conf_dirs, musl_dirs, CacheEntry};
use crate::root::{normalize, parent, resolve, NodeKind, Resolved, Root};

/// The loader family, from the interpreter's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoaderKind {
    /// glibc's `ld-linux*.so.*` / `ld64.so.*`.
    Glibc,
    /// musl's `ld-musl-*.so.1`.
    Musl,
}

impl LoaderKind {
    /// Guesses the loader family from an interpreter path.
    pub fn of(interpreter: &str) -> LoaderKind {
        if interpreter.contains("ld-musl") {
            LoaderKind::Musl
        } else {
            LoaderKind::Glibc
        }
    }
}

/// A library found for a name: where it was looked up and what it resolved to.
#[derive(Clone, Debug)]
pub struct Found {
    /// The path the loader opens (may be a symlink).
    pub path: String,
    /// `path` resolved, with the symlinks crossed.
    pub resolved: Resolved,
    /// The library's own dependencies.
    pub deps: ElfDeps,
}

/// The image-wide facts a search needs, read once.
pub struct Searcher<'r> {
    root: &'r dyn Root,
    ld_library_path: Vec<String>,
    conf_dirs: Vec<String>,
    cache: Vec<CacheEntry>,
    elf_cache: Mutex<HashMap<String, Option<ElfDeps>>>,
}

fn multiarch(machine: u16, bits: u8) -> &'static [&'static str] {
    use elf::abi;
    match (machine, bits) {
        (abi::EM_X86_64, 64) => &["x86_64-linux-gnu"],
        (abi::EM_386, 32) => &["i386-linux-gnu"],
        (abi::EM_AARCH64, 64) => &["aarch64-linux-gnu"],
        (abi::EM_ARM, 32) => &["arm-linux-gnueabihf", "arm-linux-gnueabi"],
        (abi::EM_RISCV, 64) => &["riscv64-linux-gnu"],
        (abi::EM_PPC64, 64) => &["powerpc64le-linux-gnu"],
        (abi::EM_S390, 64) => &["s390x-linux-gnu"],
        _ => &[],
    }
}

impl<'r> Searcher<'r> {
    /// Reads the image's loader configuration; `env` is the image's `Env`
    /// (for `LD_LIBRARY_PATH`).
    pub fn new(root: &'r dyn Root, env: &[String]) -> Searcher<'r> {
        let ld_library_path = env
            .iter()
            .filter_map(|e| e.strip_prefix("LD_LIBRARY_PATH="))
            .flat_map(|v| v.split([':', ';']))
            .filter(|d| d.starts_with('/'))
            .map(|d| normalize("/", d))
            .collect();
        Searcher {
            root,
            ld_library_path,
            conf_dirs: conf_dirs(root),
            cache: cache_entries(root),
            elf_cache: Mutex::new(HashMap::new()),
        }
    }

    /// The image root.
    pub fn root(&self) -> &'r dyn Root {
        self.root
    }

    /// The dependencies of the regular file at the real path `path`, read once.
    pub fn deps(&self, path: &str) -> Result<ElfDeps, crate::deps::DepsError> {
        if let Ok(cache) = self.elf_cache.lock() {
            if let Some(Some(d)) = cache.get(path) {
                return Ok(d.clone());
            }
        }
        let size = match self.root.lstat(path) {
            Some(NodeKind::File(size)) => size,
            _ => {
                return Err(crate::deps::DepsError::Malformed(
                    "not a regular file".into(),
                ))
            }
        };
        let r = read_deps(self.root, path, size);
        if let Ok(mut cache) = self.elf_cache.lock() {
            cache.insert(path.to_string(), r.as_ref().ok().cloned());
        }
        r
    }

    /// Candidates for `name` needed by `requester` (found at `requester_path`,
    /// real path `requester_real`), in the loader's order; `program` is the
    /// main executable's deps (its `DT_RPATH` applies to every library).
    fn candidates(
        &self,
        name: &str,
        requester: &ElfDeps,
        requester_path: &str,
        program: &ElfDeps,
        program_real: &str,
        loader: LoaderKind,
    ) -> Vec<String> {
        if name.contains('/') {
            return vec![normalize("/", name)];
        }
        let expand = |dirs: &[String], origin: &str, deps: &ElfDeps| -> Vec<String> {
            dirs.iter()
                .flat_map(|d| expand_tokens(d, origin, deps))
                .collect()
        };
        let origin = parent(requester_path).to_string();
        let program_origin = parent(program_real).to_string();
        let mut dirs: Vec<String> = Vec::new();
        match loader {
            LoaderKind::Glibc => {
                if requester.runpath.is_empty() {
                    dirs.extend(expand(&requester.rpath, &origin, requester));
                    if program_real != requester_path && program.runpath.is_empty() {
                        dirs.extend(expand(&program.rpath, &program_origin, program));
                    }
                }
                dirs.extend(self.ld_library_path.iter().cloned());
                dirs.extend(expand(&requester.runpath, &origin, requester));
                let mut out: Vec<String> = dirs.iter().map(|d| join(d, name)).collect();
                out.extend(
                    self.cache
                        .iter()
                        .filter(|e| e.soname == name)
                        .map(|e| e.path.clone()),
                );
                let mut defaults: Vec<String> = Vec::new();
                defaults.extend(self.conf_dirs.iter().cloned());
                for triplet in multiarch(requester.machine, requester.bits) {
                    defaults.push(format!("/lib/{triplet}"));
                    defaults.push(format!("/usr/lib/{triplet}"));
                }
                if requester.bits == 64 {
                    defaults.extend(["/lib64".into(), "/usr/lib64".into()]);
                }
                defaults.extend(["/lib".into(), "/usr/lib".into()]);
                out.extend(defaults.iter().map(|d| join(d, name)));
                out
            }
            LoaderKind::Musl => {
                dirs.extend(self.ld_library_path.iter().cloned());
                dirs.extend(expand(&requester.rpath, &origin, requester));
                dirs.extend(expand(&requester.runpath, &origin, requester));
                let interp = program.interpreter.as_deref().unwrap_or("");
                dirs.extend(musl_dirs(self.root, interp));
                dirs.iter().map(|d| join(d, name)).collect()
            }
        }
    }

    /// Finds the library `name` for `requester`, or `None` with the paths tried.
    pub fn find(
        &self,
        name: &str,
        requester: &ElfDeps,
        requester_path: &str,
        program: &ElfDeps,
        program_real: &str,
        loader: LoaderKind,
    ) -> Result<Found, Vec<String>> {
        let mut tried = Vec::new();
        for candidate in self.candidates(
            name,
            requester,
            requester_path,
            program,
            program_real,
            loader,
        ) {
            if tried.contains(&candidate) {
                continue;
            }
            tried.push(candidate.clone());
            let Ok(resolved) = resolve(self.root, &candidate) else {
                continue;
            };
            if !matches!(resolved.kind, NodeKind::File(_)) {
                continue;
            }
            // The loaders skip a file of another class or machine and go on looking.
            match self.deps(&resolved.path) {
                Ok(deps) if deps.bits == requester.bits && deps.machine == requester.machine => {
                    return Ok(Found {
                        path: candidate,
                        resolved,
                        deps,
                    });
                }
                _ => continue,
            }
        }
        Err(tried)
    }
}

fn join(dir: &str, name: &str) -> String {
    normalize(dir, name)
}

/// Expands `$ORIGIN`, `$LIB` and `$PLATFORM` (also in `${...}` form) in an
/// rpath entry; `$LIB` may stand for several directories, so several results.
fn expand_tokens(entry: &str, origin: &str, deps: &ElfDeps) -> Vec<String> {
    let entry = entry
        .replace("${ORIGIN}", "$ORIGIN")
        .replace("${LIB}", "$LIB")
        .replace("${PLATFORM}", "$PLATFORM");
    let platform = match deps.machine {
        elf::abi::EM_X86_64 => "x86_64",
        elf::abi::EM_AARCH64 => "aarch64",
        elf::abi::EM_386 => "i686",
        _ => "",
    };
    let entry = entry
        .replace("$ORIGIN", origin)
        .replace("$PLATFORM", platform);
    let libs: Vec<String> = if entry.contains("$LIB") {
        let mut l: Vec<String> = multiarch(deps.machine, deps.bits)
            .iter()
            .map(|t| format!("lib/{t}"))
            .collect();
        l.push(if deps.bits == 64 { "lib64" } else { "lib" }.into());
        l.into_iter()
            .map(|lib| entry.replace("$LIB", &lib))
            .collect()
    } else {
        vec![entry]
    };
    libs.into_iter()
        .filter(|d| d.starts_with('/'))
        .map(|d| normalize("/", &d))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::root::testing::MemRoot;

    fn deps(bits: u8, rpath: &[&str], runpath: &[&str]) -> ElfDeps {
        ElfDeps {
            bits,
            machine: elf::abi::EM_X86_64,
            interpreter: Some("/lib64/ld-linux-x86-64.so.2".into()),
            needed: vec![],
            rpath: rpath.iter().map(|s| s.to_string()).collect(),
            runpath: runpath.iter().map(|s| s.to_string()).collect(),
            soname: None,
            dlopen: vec![],
            dynamic: true,
        }
    }

    #[test]
    fn orders_candidates_like_glibc() {
        let mut r = MemRoot::default();
        r.dir("/etc").file("/etc/ld.so.conf", b"/opt/conf\n");
        let s = Searcher::new(&r, &["LD_LIBRARY_PATH=/env/lib".into()]);
        let prog = deps(64, &["$ORIGIN/../lib"], &[]);
        let c = s.candidates(
            "libx.so.1",
            &prog,
            "/app/bin/prog",
            &prog,
            "/app/bin/prog",
            LoaderKind::Glibc,
        );
        assert_eq!(
            &c[..4],
            [
                "/app/lib/libx.so.1",
                "/env/lib/libx.so.1",
                "/opt/conf/libx.so.1",
                "/lib/x86_64-linux-gnu/libx.so.1"
            ]
        );
        // DT_RUNPATH disables DT_RPATH and comes after LD_LIBRARY_PATH.
        let lib = deps(64, &["/ignored"], &["$ORIGIN"]);
        let c = s.candidates(
            "liby.so",
            &lib,
            "/usr/lib/libz.so",
            &prog,
            "/app/bin/prog",
            LoaderKind::Glibc,
        );
        assert_eq!(&c[..2], ["/env/lib/liby.so", "/usr/lib/liby.so"]);
        assert!(!c.iter().any(|p| p.starts_with("/ignored")));
    }

    #[test]
    fn skips_libraries_of_another_class() {
        let exe = std::env::current_exe().unwrap();
        let bytes = std::fs::read(exe).unwrap();
        let mut r = MemRoot::default();
        let mut elf32 = bytes[..64].to_vec();
        elf32[4] = 1; // ELFCLASS32: unreadable as ours, skipped like a wrong class
        r.dir("/lib")
            .dir("/usr")
            .dir("/usr/lib")
            .file("/lib/libq.so", &elf32)
            .file("/usr/lib/libq.so.real", &bytes)
            .link("/usr/lib/libq.so", "libq.so.real");
        let s = Searcher::new(&r, &[]);
        let prog = deps(64, &[], &[]);
        let found = s
            .find(
                "libq.so",
                &prog,
                "/bin/p",
                &prog,
                "/bin/p",
                LoaderKind::Glibc,
            )
            .unwrap();
        assert_eq!(found.path, "/usr/lib/libq.so");
        assert_eq!(found.resolved.path, "/usr/lib/libq.so.real");
        assert_eq!(found.resolved.links, ["/usr/lib/libq.so"]);
        let missing = s
            .find(
                "libnone.so",
                &prog,
                "/bin/p",
                &prog,
                "/bin/p",
                LoaderKind::Glibc,
            )
            .unwrap_err();
        assert!(missing.contains(&"/usr/lib/libnone.so".to_string()));
    }

    #[test]
    fn expands_origin_lib_and_platform() {
        let d = deps(64, &[], &[]);
        assert_eq!(
            expand_tokens("$ORIGIN/../lib", "/opt/app/bin", &d),
            ["/opt/app/lib"]
        );
        assert_eq!(
            expand_tokens("/usr/${LIB}/x", "/", &d),
            ["/usr/lib/x86_64-linux-gnu/x", "/usr/lib64/x"]
        );
        assert_eq!(expand_tokens("/p/$PLATFORM", "/", &d), ["/p/x86_64"]);
        assert!(expand_tokens("relative/dir", "/", &d).is_empty());
    }
}
