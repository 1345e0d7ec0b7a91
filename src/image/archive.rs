//! STUB (replaced by the archive helper's module).
use std::path::Path;

use super::{ImageError, ImageRecord, Reference, Store};

/// A loaded image.
#[derive(Debug)]
pub struct Loaded {
    /// The image.
    pub record: ImageRecord,
    /// Its names.
    pub names: Vec<Reference>,
}

/// Import options.
#[derive(Debug, Default)]
pub struct ImportOptions {
    /// Cmd.
    pub cmd: Option<Vec<String>>,
    /// Env.
    pub env: Vec<String>,
    /// WorkingDir.
    pub working_dir: Option<String>,
}

/// Loads an archive.
pub fn load(_store: &Store, path: &Path) -> Result<Vec<Loaded>, ImageError> {
    Err(ImageError::Malformed(format!("{}: not built yet", path.display())))
}

/// Imports a rootfs tarball.
pub fn import(
    _store: &Store,
    source: &Path,
    _reference: &Reference,
    _opts: &ImportOptions,
) -> Result<ImageRecord, ImageError> {
    Err(ImageError::Malformed(format!("{}: not built yet", source.display())))
}
