//! `berth scale`: `up --no-recreate --scale …` of the named services on the running project.

use anyhow::anyhow;

use super::supervise::{converge, failure, lock_project, running_supervisor};
use super::up::{UpArgs, show_progress, up_request};
use super::{Failure, GlobalOptions, load_project};

/// `berth scale`.
#[derive(Debug, clap::Args)]
pub struct ScaleArgs {
    /// Do not start the services' dependencies.
    #[arg(long)]
    pub no_deps: bool,
    /// `SERVICE=N` (one or more).
    #[arg(required = true, value_name = "SERVICE=N")]
    pub scales: Vec<String>,
}

/// `berth scale`: `up --no-recreate --scale …` of the named services, on the running project.
pub(super) fn scale(global: &GlobalOptions, args: &ScaleArgs) -> Result<(), Failure> {
    let options = global.project_options();
    let loaded = load_project(&options)?;
    let project = &loaded.project;
    let up_args = UpArgs {
        detach: true,
        no_recreate: true,
        no_deps: args.no_deps,
        scale: args.scales.clone(),
        services: args
            .scales
            .iter()
            .map(|s| s.split_once('=').map_or(s.as_str(), |(name, _)| name).to_owned())
            .collect(),
        ..UpArgs::default()
    };
    let request = up_request(options, project, &up_args)?;
    let root = global.state_root();
    let _lock = lock_project(global, &project.name)?;
    let dir = running_supervisor(&root, &project.name)
        .ok_or_else(|| failure(anyhow!("project {} is not running: `berth up -d` starts it", project.name)))?;
    let report = converge(&dir, &request)?;
    show_progress(global, &report);
    Ok(())
}
