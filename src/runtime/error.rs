//! Runtime errors: every one names the container (or service) it happened to.

use std::path::PathBuf;

/// A runtime failure.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A system call on the parent's side failed.
    #[error("{what}: {source}")]
    Sys {
        /// What berth was doing.
        what: String,
        /// The error number.
        #[source]
        source: nix::Error,
    },
    /// A file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The container's setup failed before its process started; the message comes from the
    /// container (e.g. `exec: "foo": executable file not found in $PATH`).
    #[error("service {service:?}: cannot start container {container}: {message}")]
    Start {
        /// The service.
        service: String,
        /// The container's name.
        container: String,
        /// What failed, as the container reported it.
        message: String,
    },
    /// The spawner process is gone or answered nonsense.
    #[error("spawner: {0}")]
    Spawner(String),
    /// cgroup work failed.
    #[error(transparent)]
    Cgroup(#[from] super::cgroups::CgroupError),
    /// No such container.
    #[error("{0}")]
    NotFound(String),
    /// The container's network could not be set up.
    #[error("container {container}: network: {message}")]
    Network {
        /// The container.
        container: String,
        /// What failed.
        message: String,
    },
    /// A request that cannot be honoured as asked.
    #[error("{0}")]
    Invalid(String),
}

impl RuntimeError {
    /// A failed system call.
    pub fn sys(what: impl Into<String>, source: nix::Error) -> Self {
        RuntimeError::Sys { what: what.into(), source }
    }

    /// A failed file operation.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RuntimeError::Io { path: path.into(), source }
    }
}
