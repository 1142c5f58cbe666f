//! The build definition read by `whittle build SPEC DST`: parsed and checked
//! in full before anything runs.
//!
//! [`parse`] turns the TOML text into a [`Spec`] whose paths are checked and
//! normalised: in-step and in-image paths are absolute with no `..`, host
//! paths are absolute, canonical and inside the spec's directory, ports read
//! `80/tcp`. Every mistake that sits somewhere in the file becomes a
//! [`SpecError::Invalid`] naming its line and column and quoting the line.

mod raw;
mod snippet;
#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;

use raw::{Entries, ModeValue, RawConfig, RawFile, RawLayer, RawSpec, RawStep};

/// A parsed and checked build definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// The image to start from; `None` for `scratch` (the default).
    pub from: Option<String>,
    /// Which baseline files to add to the bottom of the image.
    pub baseline: Baseline,
    /// The image to take CA certificates from, if any.
    pub ca_certs_from: Option<String>,
    /// The image to take time-zone data from, if any.
    pub tzdata_from: Option<String>,
    /// The build steps, in the order they run.
    pub steps: Vec<Step>,
    /// The layers to add, bottom first.
    pub layers: Vec<LayerSpec>,
    /// The image config to set.
    pub config: ConfigSpec,
    /// The spec's directory: absolute, and canonical when it exists. Host
    /// paths are relative to it and may not leave it.
    pub dir: PathBuf,
    /// The spec's text as read, for hashing.
    pub source: String,
    /// `FILE:LINE:COL` where each image reference is first written, so that an
    /// image that cannot be read is reported where it is named.
    pub image_places: BTreeMap<String, String>,
}

/// The baseline files added under the layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Baseline {
    /// What a static binary needs: `/etc/passwd`, `/etc/group`, `/tmp` and the like.
    Static,
    /// [`Baseline::Static`] plus the files a dynamically linked program commonly reads.
    Base,
    /// No baseline files (the default).
    #[default]
    None,
}

/// One build step: a command run in a container of a builder image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The step's name, unique among steps, of `[A-Za-z0-9_.-]`.
    pub name: String,
    /// The builder image's reference, not parsed here.
    pub image: String,
    /// The shell command or script to run.
    pub run: String,
    /// Host files to mount: the absolute in-step path and the canonical host
    /// path, in the order written.
    pub inputs: Vec<(String, PathBuf)>,
    /// The absolute in-step paths to keep after the step.
    pub outputs: Vec<String>,
    /// The network the step sees.
    pub network: StepNetwork,
    /// Environment variables, in the order written.
    pub env: Vec<(String, String)>,
    /// The absolute directory to run in, if set.
    pub workdir: Option<String>,
}

/// The network a build step sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepNetwork {
    /// Loopback only (the default).
    #[default]
    None,
    /// The host's network.
    Host,
}

/// One layer to add to the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSpec {
    /// The layer's name, unique among layers.
    pub name: String,
    /// Files from step outputs and from the host.
    pub files: Vec<FileSource>,
    /// The image to take [`LayerSpec::paths`] from, if any.
    pub image: Option<String>,
    /// Absolute paths to take from [`LayerSpec::image`]; empty when no image is set.
    pub paths: Vec<String>,
    /// Whether to add the ELF closure (interpreter and libraries) of the binaries taken.
    pub closure: bool,
    /// The permission bits to set on the files, if any.
    pub mode: Option<u32>,
    /// The owner to set on the files, if any.
    pub uid: Option<u32>,
    /// The group to set on the files, if any.
    pub gid: Option<u32>,
}

/// Where a layer's file comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileSource {
    /// An output of a build step.
    Step {
        /// The step's name.
        step: String,
        /// The absolute in-step path, under one of the step's outputs.
        path: String,
        /// The absolute path in the image.
        to: String,
    },
    /// A file or directory of the host.
    Host {
        /// The canonical host path, inside the spec's directory.
        host: PathBuf,
        /// The absolute path in the image.
        to: String,
    },
}

/// The image config to set; what is not set is left as the base image has it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigSpec {
    /// The entrypoint, if set.
    pub entrypoint: Option<Vec<String>>,
    /// The default arguments, if set.
    pub cmd: Option<Vec<String>>,
    /// Environment variables, in the order written.
    pub env: Vec<(String, String)>,
    /// The user to run as, if set.
    pub user: Option<String>,
    /// The absolute working directory, if set.
    pub workdir: Option<String>,
    /// Exposed ports, normalised to `PORT/PROTO` (`80/tcp`).
    pub ports: Vec<String>,
    /// Absolute volume paths.
    pub volumes: Vec<String>,
    /// Labels, in the order written.
    pub labels: Vec<(String, String)>,
    /// The signal that stops the container, if set.
    pub stop_signal: Option<String>,
}

/// Why a spec could not be read or is invalid.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The spec file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The spec file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The spec's directory could not be resolved.
    #[error("cannot resolve the spec's directory {}: {source}", path.display())]
    Dir {
        /// The directory.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A mistake at a place in the spec.
    #[error("{}:{line}:{column}: {message}\n{snippet}", file.display())]
    Invalid {
        /// The spec file, as given.
        file: PathBuf,
        /// The 1-based line.
        line: usize,
        /// The 1-based column, in characters.
        column: usize,
        /// What is wrong, in words.
        message: String,
        /// The offending line with a caret line under the place.
        snippet: String,
    },
}

/// Reads and parses the spec at `file` (see [`parse`]).
pub fn load(file: &Path) -> Result<Spec, SpecError> {
    let text = std::fs::read_to_string(file).map_err(|source| SpecError::Read {
        path: file.to_path_buf(),
        source,
    })?;
    parse(&text, file)
}

/// Parses and checks a spec. `file` names it in messages, and its directory
/// (made absolute against the current directory) is the base of host paths,
/// which must exist and must not resolve outside it.
pub fn parse(text: &str, file: &Path) -> Result<Spec, SpecError> {
    let dir = spec_dir(file)?;
    let cx = Cx {
        text,
        file,
        canonical_dir: std::fs::canonicalize(&dir),
        image_places: RefCell::default(),
    };
    let raw: RawSpec = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        cx.invalid(span, e.message().trim_end())
    })?;
    let dir = match &cx.canonical_dir {
        Ok(canonical) => canonical.clone(),
        Err(_) => dir,
    };
    cx.spec(raw, dir)
}

/// The spec's directory, made absolute.
fn spec_dir(file: &Path) -> Result<PathBuf, SpecError> {
    let parent = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::path::absolute(parent).map_err(|source| SpecError::Dir {
        path: parent.to_path_buf(),
        source,
    })
}

/// What checking needs: the text for positions, the file for messages and
/// the canonical spec directory for host paths.
struct Cx<'a> {
    text: &'a str,
    file: &'a Path,
    canonical_dir: std::io::Result<PathBuf>,
    /// Filled as image references are checked.
    image_places: RefCell<BTreeMap<String, String>>,
}

type Res<T> = Result<T, SpecError>;

impl Cx<'_> {
    fn invalid(&self, span: Range<usize>, message: impl Into<String>) -> SpecError {
        let place = snippet::locate(self.text, span);
        SpecError::Invalid {
            file: self.file.to_path_buf(),
            line: place.line,
            column: place.column,
            message: message.into(),
            snippet: place.snippet,
        }
    }

    fn spec(&self, raw: RawSpec, dir: PathBuf) -> Res<Spec> {
        let from = match raw.from {
            Some(from) if from.get_ref() == "scratch" => None,
            Some(from) => Some(self.reference(from, "from")?),
            None => None,
        };
        let ca_certs_from = self.source_image(raw.ca_certs_from, "ca_certs_from")?;
        let tzdata_from = self.source_image(raw.tzdata_from, "tzdata_from")?;

        let mut steps = Vec::with_capacity(raw.step.len());
        let mut step_lines = HashMap::new();
        for step in raw.step {
            let name = step.name.clone();
            if let Some(first) = step_lines.insert(name.get_ref().clone(), self.line(&name)) {
                return Err(self.invalid(
                    name.span(),
                    format!(
                        "duplicate step name `{}` (first defined on line {first})",
                        name.get_ref()
                    ),
                ));
            }
            steps.push(self.step(step)?);
        }

        let mut layers = Vec::with_capacity(raw.layer.len());
        let mut layer_lines = HashMap::new();
        for layer in raw.layer {
            let name = layer.name.clone();
            if let Some(first) = layer_lines.insert(name.get_ref().clone(), self.line(&name)) {
                return Err(self.invalid(
                    name.span(),
                    format!(
                        "duplicate layer name `{}` (first defined on line {first})",
                        name.get_ref()
                    ),
                ));
            }
            layers.push(self.layer(layer, &steps)?);
        }

        Ok(Spec {
            from,
            baseline: raw.baseline,
            ca_certs_from,
            tzdata_from,
            steps,
            layers,
            config: self.config(raw.config)?,
            dir,
            source: self.text.to_owned(),
            image_places: self.image_places.take(),
        })
    }

    fn line<T>(&self, at: &Spanned<T>) -> usize {
        snippet::locate(self.text, at.span()).line
    }

    fn source_image(&self, value: Option<Spanned<String>>, key: &str) -> Res<Option<String>> {
        match value {
            Some(v) if v.get_ref() == "scratch" => Err(self.invalid(
                v.span(),
                format!("`{key}` must name an image to take files from; scratch has none"),
            )),
            Some(v) => self.reference(v, key).map(Some),
            None => Ok(None),
        }
    }

    /// An image reference, kept as written (relative paths are resolved against
    /// the spec's directory when it is opened); its syntax is checked here.
    fn reference(&self, value: Spanned<String>, key: &str) -> Res<String> {
        let span = value.span();
        let reference = self.non_empty(value, key)?;
        if let Err(e) = reference.parse::<whittle_transport::ImageRef>() {
            return Err(self.invalid(span, format!("`{key}`: {e}")));
        }
        let place = snippet::locate(self.text, span);
        self.image_places
            .borrow_mut()
            .entry(reference.clone())
            .or_insert_with(|| format!("{}:{}:{}", self.file.display(), place.line, place.column));
        Ok(reference)
    }

    fn non_empty(&self, value: Spanned<String>, key: &str) -> Res<String> {
        if value.get_ref().trim().is_empty() {
            return Err(self.invalid(value.span(), format!("`{key}` must not be empty")));
        }
        Ok(value.into_inner())
    }

    fn step(&self, raw: RawStep) -> Res<Step> {
        let name = raw.name.get_ref();
        let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
        if name.is_empty() || !name.chars().all(valid) {
            return Err(self.invalid(
                raw.name.span(),
                format!("step name {name:?} must be made of letters, digits, `_`, `.` and `-`"),
            ));
        }
        if raw.run.get_ref().trim().is_empty() {
            return Err(self.invalid(raw.run.span(), "`run` must not be empty"));
        }
        let mut inputs: Vec<(String, PathBuf)> = Vec::with_capacity(raw.inputs.0.len());
        for (to, host) in raw.inputs.0 {
            let in_step = self.absolute(&to, "an input's in-step path")?;
            if inputs.iter().any(|(seen, _)| *seen == in_step) {
                return Err(self.invalid(
                    to.span(),
                    format!("in-step path {in_step} is given twice in `inputs`"),
                ));
            }
            inputs.push((in_step, self.host_path(&host)?));
        }
        let outputs = raw
            .outputs
            .iter()
            .map(|p| self.absolute(p, "an output"))
            .collect::<Res<_>>()?;
        let workdir = match &raw.workdir {
            Some(w) => Some(self.absolute(w, "`workdir`")?),
            None => None,
        };
        Ok(Step {
            name: raw.name.into_inner(),
            image: self.reference(raw.image, "image")?,
            run: raw.run.into_inner(),
            inputs,
            outputs,
            network: raw.network,
            env: self.env(raw.env)?,
            workdir,
        })
    }

    fn layer(&self, raw: RawLayer, steps: &[Step]) -> Res<LayerSpec> {
        if raw.name.get_ref().trim().is_empty() {
            return Err(self.invalid(raw.name.span(), "layer name must not be empty"));
        }
        let files = raw
            .files
            .iter()
            .map(|f| self.file(f, steps))
            .collect::<Res<_>>()?;
        let (image, paths) = match (raw.image, raw.paths) {
            (Some(image), Some(paths)) => {
                if paths.get_ref().is_empty() {
                    return Err(self.invalid(
                        paths.span(),
                        "`paths` must name at least one path to take from `image`",
                    ));
                }
                let paths = paths
                    .get_ref()
                    .iter()
                    .map(|p| self.absolute(p, "a path in `paths`"))
                    .collect::<Res<_>>()?;
                (Some(self.reference(image, "image")?), paths)
            }
            (Some(image), None) => {
                return Err(self.invalid(
                    image.span(),
                    "`image` is set but `paths` is not: name the paths to take from it",
                ))
            }
            (None, Some(paths)) => {
                return Err(self.invalid(
                    paths.span(),
                    "`paths` is set but `image` is not: name the image to take them from",
                ))
            }
            (None, None) => (None, Vec::new()),
        };
        Ok(LayerSpec {
            name: raw.name.into_inner(),
            files,
            image,
            paths,
            closure: raw.closure,
            mode: raw.mode.map(|m| self.mode(&m)).transpose()?,
            uid: raw.uid,
            gid: raw.gid,
        })
    }

    fn file(&self, entry: &Spanned<RawFile>, steps: &[Step]) -> Res<FileSource> {
        let f = entry.get_ref();
        match (&f.step, &f.host) {
            (Some(step), None) => {
                let Some(found) = steps.iter().find(|s| s.name == *step.get_ref()) else {
                    return Err(self.invalid(
                        step.span(),
                        format!("no step is named `{}`", step.get_ref()),
                    ));
                };
                let Some(path) = &f.path else {
                    return Err(self.invalid(
                        entry.span(),
                        "a file from a step needs `path`: which of its outputs to take",
                    ));
                };
                let path_abs = self.absolute(path, "`path`")?;
                if !found.outputs.iter().any(|out| is_under(&path_abs, out)) {
                    let outputs = if found.outputs.is_empty() {
                        "it has none".to_owned()
                    } else {
                        found.outputs.join(", ")
                    };
                    return Err(self.invalid(
                        path.span(),
                        format!(
                            "{path_abs} is not under an output of step `{}` ({outputs})",
                            found.name
                        ),
                    ));
                }
                let to = match &f.to {
                    Some(to) => self.absolute(to, "`to`")?,
                    None => path_abs.clone(),
                };
                Ok(FileSource::Step {
                    step: found.name.clone(),
                    path: path_abs,
                    to,
                })
            }
            (None, Some(host)) => {
                if let Some(path) = &f.path {
                    return Err(self.invalid(
                        path.span(),
                        "`path` is only for files from a step; a host file is named by `host`",
                    ));
                }
                let Some(to) = &f.to else {
                    return Err(self.invalid(
                        entry.span(),
                        "a host file needs `to`: where to put it in the image",
                    ));
                };
                Ok(FileSource::Host {
                    host: self.host_path(host)?,
                    to: self.absolute(to, "`to`")?,
                })
            }
            (Some(_), Some(_)) => Err(self.invalid(
                entry.span(),
                "a file entry takes either `step` or `host`, not both",
            )),
            (None, None) => Err(self.invalid(
                entry.span(),
                "a file entry needs `step` (a step's output) or `host` (a host file)",
            )),
        }
    }

    fn mode(&self, mode: &Spanned<ModeValue>) -> Res<u32> {
        let text = match mode.get_ref() {
            ModeValue::Text(text) => text,
            ModeValue::Number(n) => {
                return Err(self.invalid(
                    mode.span(),
                    format!("`mode = {n}` is a TOML integer; write the bits as a quoted octal string such as \"0755\""),
                ))
            }
        };
        let octal =
            !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| (b'0'..=b'7').contains(&b));
        match u32::from_str_radix(text, 8) {
            Ok(bits) if octal && bits <= 0o7777 => Ok(bits),
            _ => Err(self.invalid(
                mode.span(),
                format!("bad mode {text:?}: expected octal permission bits such as \"0755\", at most \"7777\""),
            )),
        }
    }

    fn config(&self, raw: RawConfig) -> Res<ConfigSpec> {
        let user = raw.user.map(|u| self.non_empty(u, "user")).transpose()?;
        let workdir = match &raw.workdir {
            Some(w) => Some(self.absolute(w, "`workdir`")?),
            None => None,
        };
        let mut ports = Vec::with_capacity(raw.ports.len());
        for port in &raw.ports {
            let normal = normal_port(port.get_ref()).ok_or_else(|| {
                self.invalid(
                    port.span(),
                    format!(
                        "bad port {:?}: expected PORT or PORT/PROTO with PORT in 1-65535 and PROTO tcp, udp or sctp",
                        port.get_ref()
                    ),
                )
            })?;
            if !ports.contains(&normal) {
                ports.push(normal);
            }
        }
        let volumes = raw
            .volumes
            .iter()
            .map(|v| self.absolute(v, "a volume"))
            .collect::<Res<_>>()?;
        let mut labels = Vec::with_capacity(raw.labels.0.len());
        for (key, value) in raw.labels.0 {
            if key.get_ref().is_empty() {
                return Err(self.invalid(key.span(), "a label's name must not be empty"));
            }
            labels.push((key.into_inner(), value));
        }
        Ok(ConfigSpec {
            entrypoint: raw.entrypoint,
            cmd: raw.cmd,
            env: self.env(raw.env)?,
            user,
            workdir,
            ports,
            volumes,
            labels,
            stop_signal: raw
                .stop_signal
                .map(|s| self.non_empty(s, "stop_signal"))
                .transpose()?,
        })
    }

    fn env(&self, env: Entries<String>) -> Res<Vec<(String, String)>> {
        env.0
            .into_iter()
            .map(|(key, value)| {
                let name = key.get_ref();
                if name.is_empty() || name.contains(['=', '\0']) {
                    return Err(self.invalid(
                        key.span(),
                        format!("bad environment variable name {name:?}: it must be non-empty, without `=` or NUL"),
                    ));
                }
                if value.contains('\0') {
                    return Err(self.invalid(
                        key.span(),
                        format!("environment variable {name} contains a NUL byte"),
                    ));
                }
                Ok((key.into_inner(), value))
            })
            .collect()
    }

    /// An absolute in-step or in-image path, normalised: no repeated `/`, no
    /// `.` and no trailing `/`. `..` is refused, so the path stays put.
    fn absolute(&self, path: &Spanned<String>, what: &str) -> Res<String> {
        let text = path.get_ref();
        if !text.starts_with('/') {
            return Err(self.invalid(
                path.span(),
                format!("{what} must be an absolute path (starting with /), not {text:?}"),
            ));
        }
        if text.contains('\0') {
            return Err(self.invalid(path.span(), format!("{what} contains a NUL byte")));
        }
        let mut normal = String::with_capacity(text.len());
        for part in text.split('/').filter(|p| !p.is_empty() && *p != ".") {
            if part == ".." {
                return Err(self.invalid(
                    path.span(),
                    format!("{what} must not contain `..`: {text:?}"),
                ));
            }
            normal.push('/');
            normal.push_str(part);
        }
        if normal.is_empty() {
            normal.push('/');
        }
        Ok(normal)
    }

    /// A host path relative to the spec's directory (or absolute): it must
    /// exist, and once symlinks are resolved it must lie inside that directory.
    fn host_path(&self, path: &Spanned<String>) -> Res<PathBuf> {
        let text = path.get_ref();
        if text.is_empty() {
            return Err(self.invalid(path.span(), "a host path must not be empty"));
        }
        let dir = match &self.canonical_dir {
            Ok(dir) => dir,
            Err(e) => {
                return Err(SpecError::Dir {
                    path: spec_dir(self.file)?,
                    source: std::io::Error::new(e.kind(), e.to_string()),
                })
            }
        };
        let joined = dir.join(text);
        let resolved = std::fs::canonicalize(&joined).map_err(|e| {
            let message = if e.kind() == std::io::ErrorKind::NotFound {
                format!("no such file: {}", joined.display())
            } else {
                format!("cannot resolve {}: {e}", joined.display())
            };
            self.invalid(path.span(), message)
        })?;
        if !resolved.starts_with(dir) {
            return Err(self.invalid(
                path.span(),
                format!(
                    "host path {text:?} resolves to {}, outside the spec's directory {}",
                    resolved.display(),
                    dir.display()
                ),
            ));
        }
        Ok(resolved)
    }
}

/// Whether the normalised absolute `path` is `dir` or lies under it.
fn is_under(path: &str, dir: &str) -> bool {
    dir == "/"
        || path == dir
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// `80`, `80/tcp`, `53/udp` or `9/sctp`, normalised to `PORT/PROTO`.
fn normal_port(text: &str) -> Option<String> {
    let (port, proto) = text.split_once('/').unwrap_or((text, "tcp"));
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let port: u16 = port.parse().ok()?;
    if port == 0 || !matches!(proto, "tcp" | "udp" | "sctp") {
        return None;
    }
    Some(format!("{port}/{proto}"))
}
