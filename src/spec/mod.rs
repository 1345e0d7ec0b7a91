//! Stack files: from compose YAML on disk to a typed, normalised, validated [`Project`].
//!
//! Everything here is pure (files are read, nothing else is touched) and needs no root.

pub mod dotenv;
pub mod error;
pub mod interpolate;
pub mod load;
pub mod merge;
pub mod model;
pub mod naming;
pub(crate) mod normalize;
pub(crate) mod paths;
pub mod ports;
pub mod preflight;
pub mod schema;
pub mod units;
pub mod validate;
pub mod volume_opts;
pub mod volumes;
pub mod yaml;
mod yaml_build;

pub use error::{LoadError, SpecError, Stage, Warning};
pub use load::{Loaded, ProjectOptions, load};
pub use model::{Project, Service};
