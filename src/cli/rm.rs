//! `berth rm`: removes services' stopped containers — their writable layers, and with `-v`
//! their anonymous volumes — as compose's `rm` does. Running containers are left alone unless
//! `-s` stops them first.

use anyhow::anyhow;

use super::{Failure, GlobalOptions, load_project};
use crate::runtime::state;
use crate::supervisor::{self, control, recover};

/// `berth rm`.
#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// Do not ask for confirmation (berth never asks; accepted for compose's sake).
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Stop the containers first.
    #[arg(short = 's', long)]
    pub stop: bool,
    /// Remove their anonymous volumes too.
    #[arg(short = 'v', long)]
    pub volumes: bool,
    /// Only these services (default: all).
    pub services: Vec<String>,
}

pub(super) fn rm(global: &GlobalOptions, args: &RmArgs) -> Result<(), Failure> {
    let loaded = load_project(&global.project_options())?;
    let project = &loaded.project;
    super::check_services(project, &args.services)?;
    let root = global.state_root();
    let dir = supervisor::project_dir(&root, &project.name);
    let _lock = super::up::lock_project(global, &project.name)?;
    let services = args.services.join(" ");
    let failure = |e: anyhow::Error| Failure { code: 1, error: e };
    if args.stop {
        match control::request(&dir, format!("stop - {services}").trim_end()) {
            Some(reply) if reply == "ok" => {}
            Some(reply) => return Err(failure(anyhow!("{}", reply.trim_start_matches("error: ")))),
            None => recover::reap(&root, &project.name).map_err(|e| failure(e.into()))?,
        }
    }
    let volumes = if args.volumes { "v" } else { "-" };
    let removed: Vec<String> = match control::request(&dir, format!("rm {volumes} {services}").trim_end()) {
        Some(reply) => {
            if let Some(error) = reply.strip_prefix("error: ") {
                return Err(failure(anyhow!("{error}")));
            }
            serde_json::from_str(&reply).unwrap_or_default()
        }
        // No supervisor: the stopped containers are on disk alone. One-off containers are
        // not `rm`'s, as in compose (`down` removes them).
        None => {
            let mut removed = Vec::new();
            for found in state::list(&root).map_err(|e| failure(e.into()))? {
                let (Some(spec), Some(record)) = (&found.spec, &found.record) else { continue };
                let wanted = args.services.is_empty() || args.services.contains(&spec.service);
                if spec.project != project.name || record.oneoff || !wanted || record.is_running() {
                    continue;
                }
                recover::remove_container(&root, spec, args.volumes);
                removed.push(spec.name.clone());
            }
            removed
        }
    };
    if removed.is_empty() {
        eprintln!("No stopped containers");
    }
    for name in removed {
        eprintln!(" Container {name}  Removed");
    }
    Ok(())
}
