//! The image core of whittle: a streaming, verifying model of OCI and Docker
//! images, the flattened filesystem they present, and deterministic writers.
//!
//! Why a crate of its own: every command (copy, squash, inspect, slim, build)
//! stands on reading layers safely and writing them reproducibly, and none of
//! that needs to know where an image came from. Transports only provide blob
//! bytes ([`BlobStore`]); everything here verifies what it reads against its
//! digest, never holds a whole layer in memory, and never writes a layer's
//! members to disk.
#![deny(missing_docs)]

pub mod blob;
pub mod checked;
pub mod compress;
pub mod config;
mod digest;
pub mod entries;
mod error;
pub mod flatten;
pub mod image;
pub mod inspect;
pub mod layer_write;
pub mod layers;
mod limits;
pub mod manifest;
mod media;
pub mod mutate;
pub mod parallel;
mod pgzip;
pub mod progress;
pub mod scratch;
pub mod unpack;
pub mod verified;

pub use blob::BlobStore;
pub use digest::{Digest, HashingReader, HashingWriter};
pub use error::{Error, Result};
pub use image::{Image, Layer, RawDoc};
pub use limits::Limits;
pub use manifest::{Descriptor, Index, Manifest, Platform};
pub use media::{Compression, MediaType};
pub use scratch::{temp_prefix, Scratch};
