//! Image building from a Dockerfile (groundwork for `build:`).

pub mod context;
pub mod copy;
mod copy_archive;
pub mod dockerfile;
mod glob;
mod in_root;
pub mod layer_tar;
