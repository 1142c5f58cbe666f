//! Media types, parsed once into an enum, and the layer compressions they imply.

use std::fmt;

/// The media types whittle reads and writes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MediaType {
    /// `application/vnd.oci.image.manifest.v1+json`
    OciManifest,
    /// `application/vnd.oci.image.index.v1+json`
    OciIndex,
    /// `application/vnd.oci.image.config.v1+json`
    OciConfig,
    /// `application/vnd.oci.image.layer.v1.tar`
    OciLayer,
    /// `application/vnd.oci.image.layer.v1.tar+gzip`
    OciLayerGzip,
    /// `application/vnd.oci.image.layer.v1.tar+zstd`
    OciLayerZstd,
    /// `application/vnd.docker.distribution.manifest.v2+json`
    DockerManifest,
    /// `application/vnd.docker.distribution.manifest.list.v2+json`
    DockerManifestList,
    /// `application/vnd.docker.container.image.v1+json`
    DockerConfig,
    /// `application/vnd.docker.image.rootfs.diff.tar.gzip`
    DockerLayerGzip,
    /// `application/vnd.docker.image.rootfs.diff.tar` (uncommon, but seen)
    DockerLayer,
    /// Anything else, kept verbatim.
    Other(String),
}

const TABLE: &[(&str, MediaType)] = &[
    (
        "application/vnd.oci.image.manifest.v1+json",
        MediaType::OciManifest,
    ),
    (
        "application/vnd.oci.image.index.v1+json",
        MediaType::OciIndex,
    ),
    (
        "application/vnd.oci.image.config.v1+json",
        MediaType::OciConfig,
    ),
    (
        "application/vnd.oci.image.layer.v1.tar",
        MediaType::OciLayer,
    ),
    (
        "application/vnd.oci.image.layer.v1.tar+gzip",
        MediaType::OciLayerGzip,
    ),
    (
        "application/vnd.oci.image.layer.v1.tar+zstd",
        MediaType::OciLayerZstd,
    ),
    (
        "application/vnd.docker.distribution.manifest.v2+json",
        MediaType::DockerManifest,
    ),
    (
        "application/vnd.docker.distribution.manifest.list.v2+json",
        MediaType::DockerManifestList,
    ),
    (
        "application/vnd.docker.container.image.v1+json",
        MediaType::DockerConfig,
    ),
    (
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        MediaType::DockerLayerGzip,
    ),
    (
        "application/vnd.docker.image.rootfs.diff.tar",
        MediaType::DockerLayer,
    ),
];

impl MediaType {
    /// Parses a media type string; unknown ones become [`MediaType::Other`].
    pub fn parse(s: &str) -> MediaType {
        TABLE
            .iter()
            .find(|(name, _)| *name == s)
            .map(|(_, t)| t.clone())
            .unwrap_or_else(|| MediaType::Other(s.to_string()))
    }

    /// The string form.
    pub fn as_str(&self) -> &str {
        match self {
            MediaType::Other(s) => s,
            known => TABLE
                .iter()
                .find(|(_, t)| t == known)
                .map(|(name, _)| *name)
                .unwrap_or(""),
        }
    }

    /// How a layer of this type is compressed, or `None` when it is not a layer type.
    pub fn layer_compression(&self) -> Option<Compression> {
        match self {
            MediaType::OciLayer | MediaType::DockerLayer => Some(Compression::None),
            MediaType::OciLayerGzip | MediaType::DockerLayerGzip => Some(Compression::Gzip),
            MediaType::OciLayerZstd => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// The OCI layer media type for a compression.
    pub fn oci_layer(compression: Compression) -> MediaType {
        match compression {
            Compression::None => MediaType::OciLayer,
            Compression::Gzip => MediaType::OciLayerGzip,
            Compression::Zstd => MediaType::OciLayerZstd,
        }
    }

    /// True for manifests and indexes of either family.
    pub fn is_index(&self) -> bool {
        matches!(self, MediaType::OciIndex | MediaType::DockerManifestList)
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for MediaType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for MediaType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(MediaType::parse(&String::deserialize(d)?))
    }
}

/// A layer compression.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip (deflate), written by whittle's parallel block encoder.
    Gzip,
    /// zstd, written by libzstd's multithreaded encoder.
    Zstd,
}

impl std::str::FromStr for Compression {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Compression::None),
            "gzip" => Ok(Compression::Gzip),
            "zstd" => Ok(Compression::Zstd),
            _ => Err(format!(
                "unknown compression {s:?}: expected gzip, zstd or none"
            )),
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_known_and_unknown() {
        for (s, _) in TABLE {
            assert_eq!(MediaType::parse(s).as_str(), *s);
        }
        assert_eq!(MediaType::parse("x/y"), MediaType::Other("x/y".into()));
        assert_eq!(MediaType::parse("x/y").as_str(), "x/y");
    }
}
