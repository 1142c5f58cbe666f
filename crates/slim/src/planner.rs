//! Building the keep-set: seeds (entrypoint, implicit files, includes) and
//! their closure (interpreters, loaders, libraries, symlinks), each path with
//! the reason it was kept.

use std::collections::VecDeque;

use whittle_elf::root::{normalize, read_small, resolve, ResolveError, Resolved};
use whittle_elf::{ElfDeps, LoaderKind, NodeKind, Root, Searcher};

use crate::image_root::ImageRoot;
use crate::reason::{KeepSet, Reason};
use crate::SlimError;

/// The default `PATH` when the image sets none (Docker's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Files programs read that no linker shows, with what they are for.
const IMPLICIT: &[(&str, &str)] = &[
    ("/etc/passwd", "user names (getpwnam)"),
    ("/etc/group", "group names (getgrnam)"),
    ("/etc/nsswitch.conf", "name service switch configuration"),
    ("/etc/hosts", "host names"),
    ("/etc/host.conf", "resolver configuration"),
    ("/etc/resolv.conf", "DNS resolver configuration"),
    ("/etc/localtime", "time zone"),
    ("/etc/timezone", "time zone name"),
    ("/etc/services", "service names (getservbyname)"),
    ("/etc/protocols", "protocol names (getprotobyname)"),
    ("/etc/mime.types", "MIME types"),
    ("/etc/ssl/certs/ca-certificates.crt", "CA certificates"),
    ("/etc/pki/tls/certs/ca-bundle.crt", "CA certificates"),
    ("/etc/ssl/cert.pem", "CA certificates"),
];

/// Directories programs write run-time state into (pid files, sockets), kept
/// empty: config files name them (`pid /run/nginx.pid`) where analysis cannot see.
const RUNTIME_DIRS: &[&str] = &["/run", "/var/run", "/var/tmp"];

/// NSS services glibc (2.34 and later) has built in: no module to load.
const NSS_BUILTIN: &[&str] = &["files", "dns"];

/// The facts of the image config that the analysis uses.
#[derive(Clone, Debug, Default)]
pub struct RunConfig {
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// `Env`.
    pub env: Vec<String>,
    /// `WorkingDir` (`/` when unset).
    pub workdir: String,
    /// `Volumes` keys.
    pub volumes: Vec<String>,
}

impl RunConfig {
    /// Reads the run config out of an image config document.
    pub fn from_config(bytes: &[u8]) -> Result<RunConfig, SlimError> {
        let doc: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| SlimError::Config(format!("the image config is not JSON: {e}")))?;
        let c = &doc["config"];
        let strings = |v: &serde_json::Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        let workdir = c["WorkingDir"].as_str().unwrap_or("");
        Ok(RunConfig {
            entrypoint: strings(&c["Entrypoint"]),
            cmd: strings(&c["Cmd"]),
            env: strings(&c["Env"]),
            workdir: if workdir.is_empty() {
                "/".into()
            } else {
                normalize("/", workdir)
            },
            volumes: c["Volumes"]
                .as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default(),
        })
    }

    /// The command line the container runs: entrypoint then cmd.
    pub fn argv(&self) -> Vec<String> {
        self.entrypoint.iter().chain(&self.cmd).cloned().collect()
    }

    /// The directories of the image's `PATH` (the default one when unset), made
    /// absolute against the working directory, in search order.
    pub fn path_dirs(&self) -> Vec<String> {
        let path = self
            .env
            .iter()
            .rev()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH);
        path.split(':')
            .filter(|d| !d.is_empty())
            .map(|d| normalize(&self.workdir, d))
            .collect()
    }
}

/// Which program a library is loaded for: its search rules come from there.
#[derive(Clone)]
struct Program {
    deps: ElfDeps,
    real: String,
    loader: LoaderKind,
}

struct Work {
    path: String,
    program: Option<Program>,
    /// Whether its `#!` interpreter is kept: not for a script that nothing runs.
    follow_script: bool,
}

/// Builds a keep-set over one image root.
pub struct Planner<'a> {
    root: &'a ImageRoot<'a>,
    searcher: Searcher<'a>,
    config: RunConfig,
    /// What is kept, and why.
    pub keep: KeepSet,
    /// Things the user should know: unresolved libraries, dangling links.
    pub warnings: Vec<String>,
    /// Paths kept (or already kept) because the trace named them, links crossed included.
    pub traced_hits: std::collections::BTreeSet<String>,
    queue: VecDeque<Work>,
    glibc_program: Option<String>,
    libgcc_done: bool,
    default_loader: LoaderKind,
}

impl<'a> Planner<'a> {
    /// A planner for `root` run with `config`.
    pub fn new(root: &'a ImageRoot<'a>, config: RunConfig) -> Planner<'a> {
        let searcher = Searcher::new(root, &config.env);
        let musl_only = root.list("/lib").iter().any(|n| n.starts_with("ld-musl-"))
            && !root
                .list("/lib64")
                .iter()
                .any(|n| n.starts_with("ld-linux"));
        Planner {
            root,
            searcher,
            config,
            keep: KeepSet::default(),
            warnings: Vec::new(),
            traced_hits: Default::default(),
            queue: VecDeque::new(),
            glibc_program: None,
            libgcc_done: false,
            default_loader: if musl_only {
                LoaderKind::Musl
            } else {
                LoaderKind::Glibc
            },
        }
    }

    fn warn(&mut self, message: String) {
        if !self.warnings.contains(&message) {
            self.warnings.push(message);
        }
    }

    /// Keeps the links crossed and the final path of `resolved`; queues a
    /// newly kept regular file for analysis.
    fn keep_resolved(&mut self, resolved: &Resolved, reason: Reason, program: Option<Program>) {
        for link in &resolved.links {
            self.keep
                .insert(link, Reason::SymlinkTo(resolved.path.clone()));
        }
        if self.keep.insert(&resolved.path, reason) {
            if let NodeKind::File(_) = resolved.kind {
                self.queue.push_back(Work {
                    path: resolved.path.clone(),
                    program,
                    follow_script: true,
                });
            }
        }
    }

    /// Resolves and keeps `path`; a failure becomes a warning (`what` says who asked).
    fn keep_path(&mut self, path: &str, reason: Reason, what: &str) -> Option<Resolved> {
        match resolve(self.root, path) {
            Ok(r) => {
                self.keep_resolved(&r, reason, None);
                Some(r)
            }
            Err(e) => {
                self.warn(format!("{path} ({what}): {e}"));
                // A link that was asked for is kept even when its target is not there.
                if let Some(NodeKind::Symlink(_)) = self.root.lstat(path) {
                    self.keep.insert(path, reason);
                }
                None
            }
        }
    }

    /// Finds a command through the image's `PATH`, as the container's exec would.
    fn which(&self, name: &str) -> Option<Resolved> {
        self.config.path_dirs().iter().find_map(|dir| {
            let r = resolve(self.root, &normalize(dir, name)).ok()?;
            matches!(r.kind, NodeKind::File(_)).then_some(r)
        })
    }

    /// Seeds the entrypoint (and paths among its arguments).
    pub fn entrypoint(&mut self) -> Result<Vec<String>, SlimError> {
        let argv = self.config.argv();
        let Some(argv0) = argv.first().cloned() else {
            return Err(SlimError::NoEntrypoint);
        };
        let resolved = if argv0.contains('/') {
            let path = normalize(&self.config.workdir, &argv0);
            resolve(self.root, &path).map_err(|e| SlimError::EntrypointMissing {
                name: argv0.clone(),
                why: e.to_string(),
            })?
        } else {
            self.which(&argv0)
                .ok_or_else(|| SlimError::EntrypointMissing {
                    name: argv0.clone(),
                    why: format!(
                        "no such program in PATH ({})",
                        self.config.path_dirs().join(":")
                    ),
                })?
        };
        if !matches!(resolved.kind, NodeKind::File(_)) {
            return Err(SlimError::EntrypointMissing {
                name: argv0,
                why: format!("{} is not a regular file", resolved.path),
            });
        }
        self.keep_resolved(&resolved, Reason::Entrypoint, None);
        let program = resolved.path.clone();
        let name = argv0.rsplit('/').next().unwrap_or("");
        let is_shell = matches!(name, "sh" | "bash" | "dash" | "ash" | "zsh" | "ksh");
        let script_runner = is_shell || is_script_interpreter(name);
        let mut script_seen = false;
        let mut args = argv.iter().skip(1).peekable();
        while let Some(arg) = args.next() {
            if is_shell && arg == "-c" {
                if let Some(script) = args.next() {
                    for word in shell_commands(script) {
                        let found = if word.contains('/') {
                            resolve(self.root, &normalize(&self.config.workdir, &word)).ok()
                        } else {
                            self.which(&word)
                        };
                        match found.filter(|r| matches!(r.kind, NodeKind::File(_))) {
                            Some(r) => {
                                self.keep_resolved(&r, Reason::ArgumentOf(program.clone()), None)
                            }
                            None if !is_shell_builtin(&word) => self.warn(format!(
                                "the entrypoint's `{argv0} -c` string runs {word:?}, which is not \
                                 in the image (looked in {}): the container will fail when the \
                                 shell gets there",
                                if word.contains('/') {
                                    self.config.workdir.clone()
                                } else {
                                    self.config.path_dirs().join(":")
                                }
                            )),
                            None => {}
                        }
                    }
                }
                script_seen = true;
                continue;
            }
            if script_runner && !script_seen {
                // Code or a module instead of a script (`python -m http.server`, `perl -e`).
                if matches!(arg.as_str(), "-c" | "-m" | "-e" | "-E") {
                    script_seen = true;
                    args.next();
                    continue;
                }
                // Options that take a value.
                if matches!(arg.as_str(), "-W" | "-X" | "-o" | "-O" | "-r" | "-I") {
                    args.next();
                    continue;
                }
            }
            // `sh script.sh`, `python app.py`: the first operand is the program's script,
            // which must be there (relative to WORKDIR).
            if script_runner && !script_seen && !arg.starts_with('-') {
                script_seen = true;
                let path = normalize(&self.config.workdir, arg);
                match resolve(self.root, &path) {
                    Ok(r) if matches!(r.kind, NodeKind::File(_)) => {
                        self.keep_resolved(&r, Reason::ArgumentOf(program.clone()), None);
                    }
                    Ok(r) => {
                        return Err(SlimError::EntrypointMissing {
                            name: arg.clone(),
                            why: format!(
                                "the script {argv0} runs, {}, is not a regular file",
                                r.path
                            ),
                        })
                    }
                    Err(e) => {
                        return Err(SlimError::EntrypointMissing {
                            name: arg.clone(),
                            why: format!("it is the script {argv0} runs, and {e}"),
                        })
                    }
                }
                continue;
            }
            if arg.starts_with('/') {
                if let Ok(r) = resolve(self.root, arg) {
                    if matches!(r.kind, NodeKind::File(_)) {
                        self.keep_resolved(&r, Reason::ArgumentOf(program.clone()), None);
                    }
                }
            }
        }
        self.drain();
        Ok(argv)
    }

    /// Seeds the files no linker shows, and the config's directories.
    pub fn implicit(&mut self) {
        for (path, what) in IMPLICIT {
            if resolve(self.root, path).is_ok() {
                self.keep_path(path, Reason::Implicit(what), "implicit");
            } else if let Some(NodeKind::Symlink(_)) = self.root.lstat(path) {
                self.warn(format!("{path} is a dangling symlink"));
            }
        }
        self.nss_modules();
        let workdir = self.config.workdir.clone();
        if workdir != "/" && resolve(self.root, &workdir).is_ok() {
            self.keep_path(&workdir, Reason::Workdir, "WORKDIR");
        }
        for v in self.config.volumes.clone() {
            let v = normalize("/", &v);
            if resolve(self.root, &v).is_ok() {
                self.keep_path(&v, Reason::Volume, "VOLUME");
            }
        }
        if resolve(self.root, "/tmp").is_ok() {
            self.keep_path("/tmp", Reason::Tmp, "/tmp");
        }
        for dir in RUNTIME_DIRS {
            if resolve(self.root, dir).is_ok_and(|r| r.kind == NodeKind::Dir) {
                self.keep_path(
                    dir,
                    Reason::Implicit("run-time state directory"),
                    "implicit",
                );
            }
        }
        self.drain();
    }

    /// Modules named in `/etc/nsswitch.conf` beyond glibc's built-in ones,
    /// when a glibc program is kept.
    fn nss_modules(&mut self) {
        let Some(program) = self.glibc_program.clone() else {
            return;
        };
        let Ok(conf) = resolve(self.root, "/etc/nsswitch.conf") else {
            return;
        };
        let Ok(bytes) = read_small(self.root, &conf.path, 1 << 20) else {
            return;
        };
        let mut services: Vec<String> = Vec::new();
        for line in String::from_utf8_lossy(&bytes).lines() {
            let line = line.split('#').next().unwrap_or("");
            let Some((_, list)) = line.split_once(':') else {
                continue;
            };
            let mut in_action = false;
            for word in list.split_whitespace() {
                // `[NOTFOUND=return]` actions are not services.
                if word.starts_with('[') {
                    in_action = !word.ends_with(']');
                    continue;
                }
                if in_action {
                    in_action = !word.ends_with(']');
                    continue;
                }
                if !NSS_BUILTIN.contains(&word) && !services.iter().any(|s| s == word) {
                    services.push(word.to_string());
                }
            }
        }
        let Ok(deps) = self.searcher.deps(&program) else {
            return;
        };
        let ctx = Program {
            deps: deps.clone(),
            real: program.clone(),
            loader: LoaderKind::Glibc,
        };
        for svc in services {
            let name = format!("libnss_{svc}.so.2");
            // glibc skips a module that is not there; so does the slimmed image.
            if let Ok(found) =
                self.searcher
                    .find(&name, &deps, &program, &deps, &program, LoaderKind::Glibc)
            {
                self.keep_resolved(
                    &found.resolved,
                    Reason::NssModuleFor(conf.path.clone()),
                    Some(ctx.clone()),
                );
            }
        }
    }

    /// Keeps what `--include` names: a file with its closure, a directory with its tree.
    pub fn include(&mut self, path: &str, reason: Reason) {
        let Some(r) = self.keep_path(path, reason, "--include") else {
            return;
        };
        if r.kind == NodeKind::Dir {
            self.keep_tree(&r.path);
        }
        self.drain();
    }

    /// Like [`Planner::include`], analysing the ELF files kept only when `closure` is set.
    pub fn include_without_closure(&mut self, path: &str, reason: Reason, closure: bool) {
        if closure {
            self.include(path, reason);
            return;
        }
        let Some(r) = self.keep_path(path, reason, "paths") else {
            return;
        };
        if r.kind == NodeKind::Dir {
            self.keep_tree(&r.path);
        }
        self.queue.clear();
    }

    /// Keeps a whole tree; files in it are analysed, symlinks bring their
    /// targets (a link to a directory brings that directory's tree too).
    pub fn keep_tree(&mut self, dir: &str) {
        let mut dirs = vec![dir.to_string()];
        while let Some(dir) = dirs.pop() {
            for path in self.root.tree(&dir) {
                if path == dir {
                    continue;
                }
                match self.root.lstat(&path) {
                    Some(NodeKind::Symlink(_)) => {
                        self.keep.insert(&path, Reason::InTree(dir.clone()));
                        match resolve(self.root, &path) {
                            Ok(r) if r.kind == NodeKind::Dir => {
                                for link in &r.links {
                                    self.keep.insert(link, Reason::SymlinkTo(r.path.clone()));
                                }
                                if self.keep.insert(&r.path, Reason::TargetOf(path.clone())) {
                                    dirs.push(r.path.clone());
                                }
                            }
                            Ok(r) => self.keep_resolved(&r, Reason::TargetOf(path.clone()), None),
                            Err(e) => self.warn(format!("{path} (in {dir}): {e}")),
                        }
                    }
                    Some(NodeKind::File(_)) => {
                        if self.keep.insert(&path, Reason::InTree(dir.clone())) {
                            self.queue.push_back(Work {
                                path,
                                program: None,
                                follow_script: true,
                            });
                        }
                    }
                    _ => {
                        self.keep.insert(&path, Reason::InTree(dir.clone()));
                    }
                }
            }
        }
    }

    /// Keeps a path the traced run named, if the image has it (the run's own
    /// files and the kernel's `/proc`, `/sys`, `/dev` are not the image's). A
    /// file brings its closure; a directory only itself (what the program
    /// read inside it was traced too).
    pub fn keep_traced(&mut self, path: &str, by: &str) {
        if crate::is_run_time_path(path) {
            return;
        }
        let reason = || Reason::Traced(by.to_string());
        match resolve(self.root, path) {
            Ok(r) => {
                self.traced_hits.extend(r.links.iter().cloned());
                self.traced_hits.insert(r.path.clone());
                self.keep_resolved(&r, reason(), None);
            }
            Err(_) => {
                // A dangling link the program looked at is part of what it saw.
                if let Some(NodeKind::Symlink(_)) = self.root.lstat(path) {
                    self.traced_hits.insert(path.to_string());
                    self.keep.insert(path, reason());
                    return;
                }
                // Something the program made (nginx's /var/lib/nginx/body) needs its directory.
                let parent = whittle_elf::root::parent(path);
                if let Ok(r) = resolve(self.root, parent) {
                    if r.kind == NodeKind::Dir {
                        self.traced_hits.insert(r.path.clone());
                        self.keep_resolved(&r, Reason::TracedParentOf(path.to_string()), None);
                    }
                }
            }
        }
    }

    /// Keeps a path found by the caller (extract's added files).
    pub fn keep_added(&mut self, path: &str, reason: Reason) {
        match self.root.lstat(path) {
            Some(NodeKind::Symlink(_)) => {
                self.keep.insert(path, reason);
                match resolve(self.root, path) {
                    Ok(r) => self.keep_resolved(&r, Reason::TargetOf(path.to_string()), None),
                    Err(e) => self.warn(format!("{path}: {e}")),
                }
            }
            Some(kind) => {
                let file = matches!(kind, NodeKind::File(_));
                if self.keep.insert(path, reason) && file {
                    // A script runs only if it is executable; one in documentation (a sample
                    // debian/rules) or the package database (maintainer scripts, which only
                    // dpkg runs) would pull in make or perl for nothing.
                    let executable = self
                        .root
                        .node(path)
                        .is_some_and(|n| n.meta.mode & 0o111 != 0);
                    self.queue.push_back(Work {
                        path: path.to_string(),
                        program: None,
                        follow_script: executable && !never_run(path),
                    });
                }
            }
            None => {}
        }
    }

    /// Analyses every queued file until nothing new is kept.
    pub fn drain(&mut self) {
        while let Some(work) = self.queue.pop_front() {
            self.analyse(work);
        }
    }

    fn analyse(&mut self, work: Work) {
        let Ok(head) = read_small(self.root, &work.path, 256) else {
            self.warn(format!("{}: cannot read it", work.path));
            return;
        };
        if head.starts_with(b"#!") {
            if work.follow_script {
                self.script(&work.path, &head);
            }
        } else if head.starts_with(b"\x7fELF") {
            self.elf(work);
        }
    }

    fn script(&mut self, path: &str, head: &[u8]) {
        let line = head[2..].split(|b| *b == b'\n').next().unwrap_or(&[]);
        let line = String::from_utf8_lossy(line);
        let mut words = line.split_whitespace();
        let Some(interp) = words.next() else {
            self.warn(format!("{path}: a `#!` line with no interpreter"));
            return;
        };
        let Some(r) = self.keep_path(
            interp,
            Reason::InterpreterOf(path.to_string()),
            &format!("interpreter of {path}"),
        ) else {
            return;
        };
        if r.path.ends_with("/env") {
            // `#!/usr/bin/env [-S] prog`: prog is found through PATH at run time.
            if let Some(prog) = words.find(|w| !w.starts_with('-') && !w.contains('=')) {
                match self.which(prog) {
                    Some(found) => {
                        self.keep_resolved(&found, Reason::InterpreterOf(path.to_string()), None)
                    }
                    None => self.warn(format!(
                        "{prog} (interpreter of {path} through env): not found in PATH"
                    )),
                }
            }
        }
    }

    fn elf(&mut self, work: Work) {
        let path = work.path;
        let deps = match self.searcher.deps(&path) {
            Ok(d) => d,
            Err(e) => {
                self.warn(format!("{path}: {e}; kept, but its libraries are unknown"));
                return;
            }
        };
        let program = match (&deps.interpreter, work.program) {
            (Some(interp), _) => Program {
                deps: deps.clone(),
                real: path.clone(),
                loader: LoaderKind::of(interp),
            },
            (None, Some(p)) => p,
            (None, None) => Program {
                deps: deps.clone(),
                real: path.clone(),
                loader: self.default_loader,
            },
        };
        if let Some(interp) = &deps.interpreter {
            match resolve(self.root, interp) {
                Ok(r) => self.keep_resolved(&r, Reason::PtInterpOf(path.clone()), None),
                Err(e) => self.warn(format!(
                    "{path} needs the loader {interp}, which is not in the image ({e}): \
                     it would fail to start with `no such file or directory`"
                )),
            }
        }
        let find = |me: &Self, name: &str| {
            me.searcher.find(
                name,
                &deps,
                &path,
                &program.deps,
                &program.real,
                program.loader,
            )
        };
        for name in &deps.needed {
            match find(self, name) {
                Ok(found) => self.keep_resolved(
                    &found.resolved,
                    Reason::NeededBy(path.clone()),
                    Some(program.clone()),
                ),
                Err(tried) => self.warn(format!(
                    "{name} (DT_NEEDED of {path}): not found in the image (looked in {})",
                    summarize_dirs(&tried)
                )),
            }
        }
        for hint in &deps.dlopen {
            let found = hint.sonames.iter().find_map(|s| find(self, s).ok());
            match found {
                Some(found) => self.keep_resolved(
                    &found.resolved,
                    Reason::DlopenNoteOf(path.clone()),
                    Some(program.clone()),
                ),
                None if hint.priority == "required" => self.warn(format!(
                    "{} (required dlopen of {path}): not found in the image",
                    hint.sonames.join(" or ")
                )),
                None => {}
            }
        }
        let glibc_program = deps.interpreter.is_some()
            && program.loader == LoaderKind::Glibc
            && deps.needed.iter().any(|n| n == "libc.so.6");
        if glibc_program {
            if self.glibc_program.is_none() {
                self.glibc_program = Some(path.clone());
            }
            if !self.libgcc_done {
                self.libgcc_done = true;
                if let Ok(found) = find(self, "libgcc_s.so.1") {
                    self.keep_resolved(
                        &found.resolved,
                        Reason::ThreadedGlibc(path.clone()),
                        Some(program.clone()),
                    );
                }
            }
        }
    }

    /// True when `path` resolves inside the image.
    pub fn exists(&self, path: &str) -> bool {
        resolve(self.root, path).is_ok()
    }

    /// Resolution of `path`, for callers that need the error.
    pub fn resolve(&self, path: &str) -> Result<Resolved, ResolveError> {
        resolve(self.root, path)
    }
}

/// `python3.11`, `perl`, `node`: programs whose first operand is a script to run.
/// Trees whose files a container never executes: documentation, and the package
/// database (its maintainer scripts are run by dpkg or apk only).
fn never_run(path: &str) -> bool {
    const TREES: [&str; 5] = [
        "/usr/share/doc/",
        "/usr/share/man/",
        "/usr/share/info/",
        "/var/lib/dpkg/",
        "/lib/apk/db/",
    ];
    TREES.iter().any(|t| path.starts_with(t))
}

fn is_script_interpreter(name: &str) -> bool {
    [
        "python", "perl", "ruby", "node", "nodejs", "php", "lua", "tclsh", "Rscript",
    ]
    .iter()
    .any(|i| {
        name.strip_prefix(i)
            .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit() || c == '.'))
    })
}

/// Words a POSIX shell (or bash) runs itself: no program need exist for them.
fn is_shell_builtin(word: &str) -> bool {
    const BUILTINS: &[&str] = &[
        "!", ".", ":", "[", "[[", "alias", "bg", "break", "case", "cd", "command", "continue",
        "declare", "do", "done", "echo", "elif", "else", "esac", "eval", "exec", "exit", "export",
        "false", "fg", "fi", "for", "function", "getopts", "hash", "if", "in", "jobs", "kill",
        "let", "local", "printf", "pwd", "read", "readonly", "return", "select", "set", "shift",
        "source", "test", "then", "time", "times", "trap", "true", "type", "typeset", "ulimit",
        "umask", "unalias", "unset", "until", "wait", "while", "{", "}",
    ];
    BUILTINS.contains(&word)
}

/// Commands at the start of each simple command of a `sh -c` string:
/// `exec nginx -g 'daemon off;' && x=1 foo` gives `nginx`, `foo`. Words the shell
/// computes (`$APP`, `"$@"`, globs) are left out: only a run can tell what they name.
fn shell_commands(script: &str) -> Vec<String> {
    // Quoted text is an argument, never a command: replace it with a marker word.
    const QUOTED: char = '\u{0}';
    let mut unquoted = String::with_capacity(script.len());
    let mut quote = None;
    for c in script.chars() {
        match (quote, c) {
            (None, '\'' | '"') => {
                quote = Some(c);
                unquoted.push(QUOTED);
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, c) => unquoted.push(c),
        }
    }
    let mut out = Vec::new();
    for segment in unquoted.split([';', '&', '|', '\n', '(', ')']) {
        // Keywords and prefixes before the command: `if`, `! foo`, `exec foo`, `A=1 foo`.
        const LEADERS: &[&str] = &[
            "exec", "then", "do", "else", "elif", "if", "while", "until", "!", "{", "command",
        ];
        let mut words = segment
            .split_whitespace()
            .skip_while(|w| LEADERS.contains(w) || (w.contains('=') && !w.starts_with('=')));
        if let Some(w) = words.next() {
            let computed = w.contains([QUOTED, '$', '`', '*', '?', '<', '>']);
            if !computed && !out.iter().any(|o| o == w) {
                out.push(w.to_string());
            }
        }
    }
    out
}

fn summarize_dirs(tried: &[String]) -> String {
    let mut dirs: Vec<&str> = tried.iter().map(|p| whittle_elf::root::parent(p)).collect();
    dirs.dedup();
    let shown: Vec<&str> = dirs.iter().take(6).copied().collect();
    if dirs.len() > shown.len() {
        format!("{} and {} more", shown.join(", "), dirs.len() - shown.len())
    } else {
        shown.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_script_interpreters() {
        for yes in ["python3", "python3.11", "perl", "node", "ruby3.1", "php8.2"] {
            assert!(is_script_interpreter(yes), "{yes}");
        }
        for no in ["php-fpm", "nginx", "pythonista", "nodemon"] {
            assert!(!is_script_interpreter(no), "{no}");
        }
    }

    #[test]
    fn finds_commands_in_shell_strings() {
        assert_eq!(shell_commands("exec nginx -g 'daemon off;'"), ["nginx"]);
        assert_eq!(
            shell_commands("A=1 /app/run.sh && echo done | tee /x"),
            ["/app/run.sh", "echo", "tee"]
        );
        // Computed commands are not named.
        assert_eq!(
            shell_commands("\"$APP\" --x; $HOME/run; exec \"$@\""),
            [] as [&str; 0]
        );
        assert_eq!(
            shell_commands("if true; then mytool --x; fi"),
            ["true", "mytool", "fi"]
        );
    }
}
