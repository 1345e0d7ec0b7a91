//! Images: a content-addressed store of blobs and unpacked layers, fed by registries, image
//! archives and rootfs tarballs.
//!
//! Layers are unpacked once, in overlayfs form (whiteouts as 0/0 character devices, opaque
//! directories as xattrs), and shared read-only by every container as overlay lower
//! directories; each container adds its own upper directory.

pub mod archive;
pub mod config;
pub mod digest;
pub mod ensure;
pub mod host;
pub mod reference;
pub mod registry;
pub mod save;
pub mod store;
pub mod unpack;

use std::path::PathBuf;

pub use digest::Digest;
pub use reference::Reference;
pub use store::{ImageRecord, Layer, Store};

/// Why an image operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A file or directory of the store could not be used.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Content did not match its digest: a corrupt or tampered download or archive.
    #[error("content of {what} does not match its digest: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was checked.
        what: String,
        /// The digest it should have.
        expected: Digest,
        /// The digest it has.
        actual: Digest,
    },
    /// A reference or digest that cannot be parsed.
    #[error("{0}")]
    InvalidReference(String),
    /// No image by that name or id.
    #[error("no such image: {0}")]
    NotFound(String),
    /// The state root cannot hold overlay upper directories.
    #[error("{0}")]
    UnsuitableRoot(String),
    /// A layer could not be unpacked.
    #[error("layer {layer}: {source}")]
    Unpack {
        /// The layer's blob digest.
        layer: String,
        /// Why.
        source: unpack::UnpackError,
    },
    /// A manifest, config or archive that is not what it claims to be.
    #[error("{0}")]
    Malformed(String),
    /// The registry refused or failed.
    #[error("{0}")]
    Registry(String),
    /// The image is in use and cannot be removed.
    #[error("{0}")]
    InUse(String),
}

impl ImageError {
    /// An I/O error at a path.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ImageError::Io { path: path.into(), source }
    }
}

/// The state root: `--root`, else `BERTH_ROOT`, else `/var/lib/berth`.
pub fn default_root() -> PathBuf {
    std::env::var_os("BERTH_ROOT").map_or_else(|| PathBuf::from("/var/lib/berth"), PathBuf::from)
}
