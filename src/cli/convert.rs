//! `berth convert`: the project as Kubernetes manifests.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Failure, GlobalOptions, emit, load_project};
use crate::convert::{self, BindMounts, Format, Options};

/// `berth convert` flags.
#[derive(Debug, clap::Args)]
pub struct ConvertArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Write to this file, or one file per object (`<kind>-<name>.yaml`) into this directory: a
    /// directory is a path that is one, ends in `/`, or has no .yaml, .yml or .json extension.
    #[arg(short, long, value_name = "DIR|FILE")]
    pub output: Option<PathBuf>,
    /// Put every object in this namespace.
    #[arg(short, long, value_name = "NS")]
    pub namespace: Option<String>,
    /// What bind mounts become; none is portable, and by default they are left out.
    #[arg(long, value_enum, value_name = "MODE", default_value_t)]
    pub bind_mounts: BindMounts,
}

fn is_dir_path(path: &Path) -> bool {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
    path.is_dir() || path.as_os_str().to_string_lossy().ends_with('/') || !matches!(ext, "yaml" | "yml" | "json")
}

pub(super) fn run(global: &GlobalOptions, args: &ConvertArgs) -> Result<(), Failure> {
    let project = load_project(&global.project_options())?.project;
    let options = Options { namespace: args.namespace.clone(), bind_mounts: args.bind_mounts };
    let invalid = |e: convert::ConvertError| Failure { code: super::EXIT_INVALID, error: e.into() };
    let failed = |e: convert::ConvertError| Failure { code: 1, error: e.into() };
    let result = convert::convert(&project, &options).map_err(invalid)?;
    {
        let mut err = std::io::stderr().lock();
        for w in &result.warnings {
            let _ = writeln!(err, "warning: {w}");
        }
    }
    match &args.output {
        Some(dir) if is_dir_path(dir) => {
            convert::write_dir(&result.objects, dir, args.format).map(drop).map_err(failed)
        }
        Some(file) => {
            let text = convert::render(&result.objects, args.format).map_err(failed)?;
            std::fs::write(file, text).map_err(Failure::from)
        }
        None => emit(&convert::render(&result.objects, args.format).map_err(failed)?),
    }
}
