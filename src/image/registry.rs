//! STUB (replaced by the registry helper's module).
use std::path::PathBuf;

use super::{ImageError, ImageRecord, Reference, Store};

/// How to show progress.
#[derive(Clone, Copy, Debug)]
pub enum Progress {
    /// Bars on a TTY, plain lines otherwise.
    Auto,
    /// Plain lines.
    Plain,
    /// Nothing.
    Quiet,
}

/// Pull options.
#[derive(Clone, Debug)]
pub struct PullOptions {
    /// Registries allowed over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// The docker config file.
    pub docker_config: Option<PathBuf>,
    /// Progress display.
    pub progress: Progress,
    /// The platform.
    pub platform: Option<String>,
}

/// What a pull did.
#[derive(Debug)]
pub struct PullReport {
    /// The image.
    pub record: ImageRecord,
}

/// Pulls an image.
pub async fn pull(_store: &Store, reference: &Reference, _opts: &PullOptions) -> Result<PullReport, ImageError> {
    Err(ImageError::Registry(format!("cannot pull {reference}: not built yet")))
}
