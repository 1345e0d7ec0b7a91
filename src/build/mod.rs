//! Image building from a Dockerfile (groundwork for `build:`).

pub mod dockerfile;
