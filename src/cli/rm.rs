//! `berth rm`: removes services' stopped containers — their writable layers, and with `-v`
//! their anonymous volumes — as compose's `rm` does. Running containers are left alone unless
//! `-s` stops them first.

use super::{Failure, GlobalOptions};
use crate::runtime::state;
use crate::supervisor::control::{Reply, Request};
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
    let loaded = super::load_named(global)?;
    let project = &loaded.project;
    super::check_services(project, &args.services)?;
    let root = global.state_root();
    let dir = supervisor::project_dir(&root, &project.name);
    let _lock = super::supervise::lock_project(global, &project.name)?;
    let failure = |e: anyhow::Error| Failure { code: 1, error: e };
    if args.stop {
        let stop = Request::Stop { timeout: None, services: args.services.clone() };
        match control::request(&dir, &stop) {
            Some(Reply::Done) => {}
            Some(other) => return Err(failure(super::supervise::unexpected(other))),
            None => recover::reap(&root, &project.name).map_err(|e| failure(e.into()))?,
        }
    }
    let rm = Request::Rm { volumes: args.volumes, services: args.services.clone() };
    let removed: Vec<String> = match control::request(&dir, &rm) {
        Some(Reply::Removed(removed)) => removed,
        Some(other) => return Err(failure(super::supervise::unexpected(other))),
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
