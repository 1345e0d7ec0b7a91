//! The container runtime: berth creates its containers itself.
//!
//! - [`spec`]: what a container should be (pure data, made by [`crate::plan`]).
//! - [`spawner`]: the single-threaded process, forked before any thread exists, that clones
//!   containers and exec processes so they become children of the caller (`CLONE_PARENT`).
//! - [`init`]: the code that runs in the new container before `execve`: mounts, `pivot_root`,
//!   identity, capabilities; and berth's minimal init for `init: true`.
//! - [`container`]: the parent's side: state on disk, cgroup, start, wait, delete.
//! - [`exec`]: a process in a running container; [`pty`] relays a terminal.
//! - [`cgroups`]: limits, stats, freeze, kill (libcgroups underneath).

pub mod caps;
pub mod cgroups;
pub mod container;
pub mod error;
pub mod exec;
pub mod init;
mod init_layer;
pub mod pty;
pub mod seccomp;
mod spare_dirs;
pub mod spawner;
pub mod spec;
pub mod state;
pub mod sync;
pub mod user;

pub use error::RuntimeError;
