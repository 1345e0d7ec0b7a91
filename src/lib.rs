//! berth: a daemonless, compose-compatible multi-container composer for Linux.
//!
//! The crate is layered the way data flows: [`spec`] turns stack files into a typed
//! [`spec::Project`], [`graph`] orders its services, [`convert`] turns it into Kubernetes manifests, and [`cli`] is
//! the thin edge that prints.

pub mod build;
pub mod cli;
pub mod container_fs;
pub mod convert;
pub mod fault;
pub mod fsutil;
pub mod graph;
pub mod image;
pub mod launch;
pub mod network;
pub mod plan;
pub mod runtime;
pub mod secure_fs;
pub mod spec;
pub mod supervisor;
pub mod timing;
pub mod volume;
pub mod watch;
