//! `berth stop`, `berth start` and `berth restart`: orders to the project's supervisor, or a
//! supervisor started again from the last `up`'s request.

use anyhow::anyhow;

use super::supervise::{failure, lock_project, start_supervisor, unexpected};
use super::{Failure, GlobalOptions};
use crate::supervisor::control::{Reply, Request};
use crate::supervisor::{self, UpRequest, control, recover};

/// `berth stop`, `berth start`, `berth restart`.
#[derive(Debug, clap::Args)]
pub struct ServicesArgs {
    /// Seconds to wait for containers to stop before killing them (stop, restart; default:
    /// each service's `stop_grace_period`, else 10).
    #[arg(short = 't', long)]
    pub timeout: Option<u64>,
    /// Only these services (default: all).
    pub services: Vec<String>,
}

/// Sends `stop`, `start` or `restart` to the project's supervisor and waits until it is done.
/// With no supervisor running, `start` and `restart` start one from the last `up`'s request,
/// which runs the stopped containers it finds on disk again; `stop` ends what a killed
/// supervisor left running.
pub(super) fn lifecycle(global: &GlobalOptions, command: &str, args: &ServicesArgs) -> Result<(), Failure> {
    let loaded = super::load_named(global)?;
    let project = &loaded.project;
    super::check_services(project, &args.services)?;
    let root = global.state_root();
    let dir = supervisor::project_dir(&root, &project.name);
    if command == "start" {
        check_created(&root, &project.name, &args.services)?;
    }
    let _lock = lock_project(global, &project.name)?;
    let (timeout, services) = (args.timeout, args.services.clone());
    let request = match command {
        "start" => Request::Start { services },
        "restart" => Request::Restart { timeout, services },
        _ => Request::Stop { timeout, services },
    };
    match control::request(&dir, &request) {
        Some(Reply::Done) => Ok(()),
        Some(other) => Err(failure(unexpected(other))),
        None => {
            recover::reap(&root, &project.name).map_err(failure)?;
            crate::fault::point("after-reap");
            if command == "stop" {
                return Ok(());
            }
            check_created(&root, &project.name, &args.services)?;
            let mut request = UpRequest::load_last(&dir)
                .ok_or_else(|| failure(anyhow!("no container found for project {:?}: not found", project.name)))?;
            request.services.clone_from(&args.services);
            request.resume = true;
            request.force_recreate = false;
            start_supervisor(global, &root, &project.name, &request).map(drop)
        }
    }
}

/// compose's refusal to `start` what was never created: a project without containers, or a
/// named service without one.
fn check_created(root: &std::path::Path, project: &str, services: &[String]) -> Result<(), Failure> {
    let found: Vec<String> = crate::runtime::state::list(root)
        .map_err(failure)?
        .into_iter()
        .filter_map(|f| f.spec.filter(|s| s.project == project && f.record.as_ref().is_some_and(|r| !r.oneoff)))
        .map(|s| s.service)
        .collect();
    if found.is_empty() {
        return Err(failure(anyhow!("no container found for project {project:?}: not found")));
    }
    if let Some(missing) = services.iter().find(|s| !found.contains(s)) {
        return Err(failure(anyhow!("no such service: {missing:?}: not found")));
    }
    Ok(())
}
