//! `berth rm`: removes services' stopped containers. berth removes a container's files when it
//! stops, so what is left to remove is the supervisor's record of it (what `ps -a` shows).

use anyhow::anyhow;

use super::{Failure, GlobalOptions, load_project};
use crate::supervisor::{self, control};

/// `berth rm`.
#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// Do not ask for confirmation (berth never asks; accepted for compose's sake).
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Stop the containers first.
    #[arg(short = 's', long)]
    pub stop: bool,
    /// Remove their anonymous volumes too (berth always does).
    #[arg(short = 'v', long)]
    pub volumes: bool,
    /// Only these services (default: all).
    pub services: Vec<String>,
}

pub(super) fn rm(global: &GlobalOptions, args: &RmArgs) -> Result<(), Failure> {
    let loaded = load_project(&global.project_options())?;
    let project = &loaded.project;
    super::check_services(project, &args.services)?;
    let dir = supervisor::project_dir(&global.state_root(), &project.name);
    let _lock = super::up::lock_project(global, &project.name)?;
    let services = args.services.join(" ");
    let failure = |e: anyhow::Error| Failure { code: 1, error: e };
    if args.stop {
        match control::request(&dir, format!("stop - {services}").trim_end()) {
            Some(reply) if reply == "ok" => {}
            Some(reply) => return Err(failure(anyhow!("{}", reply.trim_start_matches("error: ")))),
            None => {}
        }
    }
    let reply = control::request(&dir, format!("rm {services}").trim_end()).unwrap_or_default();
    if let Some(error) = reply.strip_prefix("error: ") {
        return Err(failure(anyhow!("{error}")));
    }
    let removed: Vec<String> = serde_json::from_str(&reply).unwrap_or_default();
    if removed.is_empty() {
        eprintln!("No stopped containers");
    }
    for name in removed {
        eprintln!(" Container {name}  Removed");
    }
    Ok(())
}
