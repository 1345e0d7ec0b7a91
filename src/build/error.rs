//! Why a build failed. Every error about an instruction names the Dockerfile and the line.

use std::io;
use std::path::PathBuf;

use super::context::CopyError;
use super::dockerfile::{DockerfileError, ExpandError};
use crate::image::ImageError;
use crate::network::setup::NetworkError;
use crate::plan::PlanError;
use crate::runtime::RuntimeError;

/// A failed build.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A service's `build:` section cannot be built as written.
    #[error("service {service:?}: {key}: {message}")]
    Service {
        /// The service.
        service: String,
        /// The key (`build.context`, ...).
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The Dockerfile could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The Dockerfile does not parse.
    #[error("{file}: {source}")]
    Parse {
        /// The file (or `dockerfile_inline`).
        file: String,
        /// The parser's error, with its line.
        source: DockerfileError,
    },
    /// An instruction cannot be carried out as written.
    #[error("{file}:{line}: {instruction}: {message}")]
    Instruction {
        /// The file.
        file: String,
        /// The line the instruction starts on.
        line: usize,
        /// The instruction's name.
        instruction: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A word could not be expanded.
    #[error("{file}:{line}: {instruction}: {source}")]
    Expand {
        /// The file.
        file: String,
        /// The line.
        line: usize,
        /// The instruction's name.
        instruction: &'static str,
        /// The cause.
        source: ExpandError,
    },
    /// A RUN's command exited with a failure.
    #[error("{file}:{line}: RUN {command}: exited with code {code}")]
    RunFailed {
        /// The file.
        file: String,
        /// The line.
        line: usize,
        /// The command, shortened.
        command: String,
        /// Its exit code.
        code: i32,
    },
    /// COPY or ADD failed.
    #[error("{file}:{line}: {instruction}: {source}")]
    Copy {
        /// The file.
        file: String,
        /// The line.
        line: usize,
        /// COPY or ADD.
        instruction: &'static str,
        /// The cause.
        source: CopyError,
    },
    /// The image store failed.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The RUN container could not be made or run.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The RUN container could not be planned.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The RUN container's network could not be set up.
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// A file of the build's own could not be made.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A system call failed.
    #[error("{what}: {source}")]
    Sys {
        /// What berth was doing.
        what: String,
        /// The cause.
        source: nix::Error,
    },
    /// The build was interrupted (Ctrl-C, SIGTERM); what it made is removed.
    #[error("interrupted")]
    Interrupted,
}

impl BuildError {
    /// An I/O error at `path`.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        BuildError::Io { path: path.into(), source }
    }
}
