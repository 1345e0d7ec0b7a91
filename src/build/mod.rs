//! Image builds from Dockerfiles: `build:` in stack files, `berth build`, `up --build`.

pub mod cache;
pub mod context;
pub mod copy;
mod copy_archive;
pub mod dockerfile;
pub mod engine;
mod error;
mod glob;
pub(crate) mod in_root;
pub mod layer_tar;
pub mod mounted;
pub mod network;
pub mod run_step;
mod service;
pub mod state;

pub use engine::{BuildRequest, Builder, Built, DockerfileSource};
pub use error::BuildError;
pub use service::{BuildOptions, request};
