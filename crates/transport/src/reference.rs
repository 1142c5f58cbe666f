//! Image references in skopeo's spelling, parsed once into a type.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The forms whittle accepts, for error messages.
pub const ACCEPTED: &str = "accepted forms:
  oci:DIR[:TAG|@DIGEST]       an OCI image layout directory
  oci-archive:FILE[:TAG|@DIGEST]   a tar of an OCI image layout
  docker-archive:FILE[:REF]   a `docker save` tar (legacy or Docker 25+ layout)
  docker://HOST[:PORT]/REPO[:TAG|@DIGEST]   an image in a registry (OCI distribution API)
  docker-container:ID|NAME    a container's state: its image plus what changed in it (source only)
  docker-daemon:NAME[:TAG]    an image in the local Docker Engine (DOCKER_HOST or /var/run/docker.sock)
  dir:ROOTFS                  a directory, as a one-layer image (source only)";

/// What picks one image out of an OCI layout's `index.json`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayoutPick {
    /// The entry annotated `org.opencontainers.image.ref.name` = this.
    Tag(String),
    /// The entry with this digest (reading only).
    Digest(whittle_image::Digest),
}

impl LayoutPick {
    /// The tag, if this picks by tag.
    pub fn tag(&self) -> Option<&str> {
        match self {
            LayoutPick::Tag(t) => Some(t),
            LayoutPick::Digest(_) => None,
        }
    }
}

impl fmt::Display for LayoutPick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayoutPick::Tag(t) => write!(f, ":{t}"),
            LayoutPick::Digest(d) => write!(f, "@{d}"),
        }
    }
}

/// Where an image is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageRef {
    /// An OCI layout directory, optionally a tag in it.
    Oci {
        /// The layout directory.
        dir: PathBuf,
        /// A tag or digest in it.
        pick: Option<LayoutPick>,
    },
    /// A tar of an OCI layout.
    OciArchive {
        /// The tar file.
        file: PathBuf,
        /// A tag or digest in it.
        pick: Option<LayoutPick>,
    },
    /// A `docker save` tar.
    DockerArchive {
        /// The tar file.
        file: PathBuf,
        /// A `RepoTags` entry such as `nginx:latest`.
        reference: Option<String>,
    },
    /// An image in a registry.
    Docker(crate::registry::RegistryRef),
    /// A container of the local Docker Engine (source only).
    DockerContainer {
        /// Its ID or name.
        id: String,
    },
    /// An image in the local Docker Engine.
    DockerDaemon {
        /// `NAME[:TAG]` or `NAME@DIGEST`.
        name: String,
    },
    /// A directory as a one-layer image.
    Dir {
        /// The root directory.
        root: PathBuf,
    },
}

/// `NAME` with `:latest` added when it has neither a tag nor a digest.
pub fn with_default_tag(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') || name.contains('@') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

fn split_path(input: &str, rest: &str) -> Result<(PathBuf, Option<String>)> {
    let (path, suffix) = match rest.split_once(':') {
        Some((p, s)) => (p, Some(s.to_string())),
        None => (rest, None),
    };
    if path.is_empty() {
        return Err(Error::BadReference {
            input: input.into(),
            reason: "the path is empty".into(),
        });
    }
    if suffix.as_deref() == Some("") {
        return Err(Error::BadReference {
            input: input.into(),
            reason: "the name after the path is empty".into(),
        });
    }
    Ok((PathBuf::from(path), suffix))
}

/// `PATH[:TAG]` or `PATH@sha256:HEX` of the layout transports.
fn split_layout(input: &str, rest: &str) -> Result<(PathBuf, Option<LayoutPick>)> {
    if let Some(at) = rest.rfind("@sha256:") {
        let (path, digest) = (&rest[..at], &rest[at + 1..]);
        if path.is_empty() {
            return Err(Error::BadReference {
                input: input.into(),
                reason: "the path is empty".into(),
            });
        }
        let digest = digest.parse().map_err(|e| Error::BadReference {
            input: input.into(),
            reason: format!("{digest:?} is not a valid digest: {e}"),
        })?;
        return Ok((PathBuf::from(path), Some(LayoutPick::Digest(digest))));
    }
    let (path, tag) = split_path(input, rest)?;
    if let Some(t) = &tag {
        if t.contains('/') || t.contains(char::is_whitespace) || t.contains('@') {
            return Err(Error::BadReference {
                input: input.into(),
                reason: format!("{t:?} is not a valid tag"),
            });
        }
    }
    Ok((path, tag.map(LayoutPick::Tag)))
}

impl ImageRef {
    /// The same reference with a relative file or directory path taken relative to
    /// `base` (a spec file's directory) rather than the working directory.
    pub fn relative_to(self, base: &Path) -> ImageRef {
        let rebase = |p: PathBuf| if p.is_relative() { base.join(p) } else { p };
        match self {
            ImageRef::Oci { dir, pick } => ImageRef::Oci {
                dir: rebase(dir),
                pick,
            },
            ImageRef::OciArchive { file, pick } => ImageRef::OciArchive {
                file: rebase(file),
                pick,
            },
            ImageRef::DockerArchive { file, reference } => ImageRef::DockerArchive {
                file: rebase(file),
                reference,
            },
            ImageRef::Dir { root } => ImageRef::Dir { root: rebase(root) },
            other => other,
        }
    }
}

impl std::str::FromStr for ImageRef {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self> {
        let Some((transport, rest)) = input.split_once(':') else {
            return Err(Error::BadReference {
                input: input.into(),
                reason: "it names no transport".into(),
            });
        };
        match transport {
            "oci" => {
                let (dir, pick) = split_layout(input, rest)?;
                Ok(ImageRef::Oci { dir, pick })
            }
            "oci-archive" => {
                let (file, pick) = split_layout(input, rest)?;
                Ok(ImageRef::OciArchive { file, pick })
            }
            "docker-archive" => {
                let (file, reference) = split_path(input, rest)?;
                if let Some(r) = &reference {
                    if r.contains(char::is_whitespace) || r.starts_with(':') {
                        return Err(Error::BadReference {
                            input: input.into(),
                            reason: format!("{r:?} is not a valid image name"),
                        });
                    }
                }
                Ok(ImageRef::DockerArchive { file, reference })
            }
            "docker" => {
                let Some(rest) = rest.strip_prefix("//") else {
                    return Err(Error::BadReference {
                        input: input.into(),
                        reason: "a registry reference starts with docker://".into(),
                    });
                };
                crate::registry::RegistryRef::parse(rest)
                    .map(ImageRef::Docker)
                    .map_err(|reason| Error::BadReference {
                        input: input.into(),
                        reason,
                    })
            }
            "docker-container" => {
                let ok = !rest.is_empty()
                    && rest
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
                if !ok {
                    return Err(Error::BadReference {
                        input: input.into(),
                        reason: format!("{rest:?} is not a container ID or name"),
                    });
                }
                Ok(ImageRef::DockerContainer { id: rest.into() })
            }
            "docker-daemon" => {
                let bad = rest.is_empty()
                    || rest.starts_with([':', '/', '@'])
                    || rest.ends_with([':', '/', '@'])
                    || rest.contains(char::is_whitespace)
                    || rest.contains("//");
                if bad {
                    return Err(Error::BadReference {
                        input: input.into(),
                        reason: format!("{rest:?} is not a valid image name"),
                    });
                }
                Ok(ImageRef::DockerDaemon { name: rest.into() })
            }
            "dir" => {
                if rest.is_empty() {
                    return Err(Error::BadReference {
                        input: input.into(),
                        reason: "the path is empty".into(),
                    });
                }
                Ok(ImageRef::Dir {
                    root: PathBuf::from(rest),
                })
            }
            other => Err(Error::BadReference {
                input: input.into(),
                reason: format!("{other:?} is not a transport whittle knows"),
            }),
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let with =
            |f: &mut fmt::Formatter<'_>, t: &str, p: &PathBuf, s: &Option<LayoutPick>| match s {
                Some(s) => write!(f, "{t}:{}{s}", p.display()),
                None => write!(f, "{t}:{}", p.display()),
            };
        match self {
            ImageRef::Oci { dir, pick } => with(f, "oci", dir, pick),
            ImageRef::OciArchive { file, pick } => with(f, "oci-archive", file, pick),
            ImageRef::DockerArchive { file, reference } => match reference {
                Some(r) => write!(f, "docker-archive:{}:{r}", file.display()),
                None => write!(f, "docker-archive:{}", file.display()),
            },
            ImageRef::Docker(r) => write!(f, "{r}"),
            ImageRef::DockerDaemon { name } => write!(f, "docker-daemon:{name}"),
            ImageRef::DockerContainer { id } => write!(f, "docker-container:{id}"),
            ImageRef::Dir { root } => write!(f, "dir:{}", root.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_form() {
        assert_eq!(
            "oci:/tmp/x:latest".parse::<ImageRef>().unwrap(),
            ImageRef::Oci {
                dir: "/tmp/x".into(),
                pick: Some(LayoutPick::Tag("latest".into()))
            }
        );
        let hex = "a".repeat(64);
        let by_digest = format!("oci:/tmp/x@y@sha256:{hex}");
        let parsed = by_digest.parse::<ImageRef>().unwrap();
        assert_eq!(
            parsed,
            ImageRef::Oci {
                dir: "/tmp/x@y".into(),
                pick: Some(LayoutPick::Digest(format!("sha256:{hex}").parse().unwrap()))
            }
        );
        assert_eq!(parsed.to_string(), by_digest);
        assert_eq!(
            "docker-archive:a.tar:nginx:1.25"
                .parse::<ImageRef>()
                .unwrap(),
            ImageRef::DockerArchive {
                file: "a.tar".into(),
                reference: Some("nginx:1.25".into())
            }
        );
        assert_eq!(
            "dir:root".parse::<ImageRef>().unwrap(),
            ImageRef::Dir {
                root: "root".into()
            }
        );
        assert_eq!(
            "docker-daemon:localhost:5000/app:1"
                .parse::<ImageRef>()
                .unwrap(),
            ImageRef::DockerDaemon {
                name: "localhost:5000/app:1".into()
            }
        );
        assert_eq!(
            "oci-archive:x.tar".parse::<ImageRef>().unwrap().to_string(),
            "oci-archive:x.tar"
        );
    }

    #[test]
    fn refuses_bad_references_and_lists_the_forms() {
        for bad in [
            "nginx",
            "docker:x",
            "docker://",
            "oci:",
            "oci:dir:",
            "oci:d:a/b",
            "foo:bar",
            "dir:",
            "docker-daemon:",
            "docker-daemon:a b",
            "oci:d@sha256:abc",
            "oci-archive:@sha256:0000000000000000000000000000000000000000000000000000000000000000",
        ] {
            let e = bad.parse::<ImageRef>().unwrap_err().to_string();
            assert!(
                e.contains("accepted forms") && e.contains("oci-archive:FILE"),
                "{bad}: {e}"
            );
        }
    }
}
