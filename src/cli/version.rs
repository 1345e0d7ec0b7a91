//! `berth version`: compose's three forms (`pretty`, `--format json`, `--short`).

use super::{Failure, emit};

/// `berth version`.
#[derive(Debug, clap::Args)]
pub struct VersionArgs {
    /// `pretty` (the default) or `json`.
    #[arg(short = 'f', long, value_name = "FORMAT", value_parser = ["pretty", "json"])]
    pub format: Option<String>,
    /// Only the version number.
    #[arg(long)]
    pub short: bool,
}

/// Prints berth's version as `docker compose version` prints compose's.
pub(super) fn version(args: &VersionArgs) -> Result<(), Failure> {
    let version = env!("CARGO_PKG_VERSION");
    let text = if args.short {
        format!("{version}\n")
    } else if args.format.as_deref() == Some("json") {
        format!("{}\n", serde_json::json!({ "version": format!("v{version}") }))
    } else {
        format!("berth version v{version}\n")
    };
    emit(&text)
}
