//! `berth down`: stop the project's supervisor (or clean up after one that died) and remove
//! what the project made.

use anyhow::anyhow;

use super::supervise::{failure, lock_project};
use super::up::{Progress, progress_mode};
use super::{Failure, GlobalOptions};
use crate::image::Store;
use crate::spec::Project;
use crate::supervisor::control::{Reply, Request};
use crate::supervisor::{self, SupervisorRecord, control, recover};

/// `berth down`.
#[derive(Debug, clap::Args)]
pub struct DownArgs {
    /// Seconds to wait for containers to stop before killing them (default: each service's
    /// `stop_grace_period`, else 10).
    #[arg(short = 't', long)]
    pub timeout: Option<u64>,
    /// Remove the project's named volumes (not external ones) too.
    #[arg(short = 'v', long)]
    pub volumes: bool,
    /// Remove the services' images too: `all`, or `local` (only the images of built services
    /// without an `image:` name).
    #[arg(long, value_name = "TYPE", value_parser = ["all", "local"])]
    pub rmi: Option<String>,
    /// Accepted for compose's sake: `down` always removes every container of the project.
    #[arg(long)]
    pub remove_orphans: bool,
}

pub(super) fn down(global: &GlobalOptions, args: &DownArgs) -> Result<(), Failure> {
    let loaded = super::load_named(global)?;
    let project = &loaded.project.name;
    let root = global.state_root();
    let dir = supervisor::project_dir(&root, project);
    let _lock = lock_project(global, project)?;
    let containers = super::ps::containers(global, project);
    let networks: Vec<String> = crate::network::store::NetworkStore::lock(&root)
        .and_then(|store| store.all())
        .map(|all| all.into_iter().filter(|n| &n.project == project).map(|n| n.name).collect())
        .unwrap_or_default();
    if let Some(record) = SupervisorRecord::load(&root, project).filter(SupervisorRecord::is_running) {
        match control::request(&dir, &Request::Down { timeout: args.timeout, volumes: args.volumes }) {
            // A `pre_stop` hook failed: that container still runs, and `down` ends here, as
            // compose's does.
            Some(Reply::Error(e)) => return Err(failure(anyhow!(e))),
            Some(_) => recover::wait_for_exit(record.pid),
            None => recover::kill_and_wait(record.pid),
        }
    }
    crate::fault::point("after-supervisor");
    // What is left (one-off containers, or everything after a supervisor was killed): its
    // anonymous volumes go with `-v`, as compose's `down -v` removes them.
    let anonymous: Vec<String> = if args.volumes {
        crate::runtime::state::list(&root)
            .unwrap_or_default()
            .iter()
            .filter_map(|f| f.spec.as_ref())
            .filter(|s| &s.project == project)
            .flat_map(crate::plan::mounts::anonymous_volumes)
            .collect()
    } else {
        Vec::new()
    };
    // Every step is tried whatever failed before it; the failures are reported together, and
    // what failed is still recorded, so a second `down` finishes the job.
    let mut failures: Vec<String> = Vec::new();
    if let Err(e) = recover::clean(&root, project) {
        failures.push(e.to_string());
    }
    recover::remove_volumes(&root, &anonymous);
    let mode = progress_mode(global);
    let say = |what: &str, name: &str, done: &str| match mode {
        Progress::Quiet => {}
        Progress::Plain => eprintln!(" {what} {name}  {done}"),
        Progress::Tty => eprintln!(" \u{2714} {what} {name}  {done}"),
    };
    for container in &containers {
        say("Container", &container.name, "Removed");
    }
    for network in &networks {
        say("Network", network, "Removed");
    }
    if args.volumes {
        for (key, volume) in loaded.project.volumes.iter().filter(|(_, v)| !v.external) {
            let name = if volume.name.is_empty() { format!("{project}_{key}") } else { volume.name.clone() };
            if !root.join("volumes").join(&name).is_dir() {
                continue;
            }
            // By descriptor: the tree is the containers'.
            match crate::volume::remove_unchecked(&root, &name) {
                Ok(_) => say("Volume", &name, "Removed"),
                Err(e) => failures.push(format!("volume {name}: {e}")),
            }
        }
    }
    if let Some(which) = args.rmi.as_deref() {
        remove_images(&root, &loaded.project, which, &mut failures, &say);
    }
    if failures.is_empty() {
        Ok(())
    } else {
        for message in &failures {
            eprintln!("error: {message}");
        }
        Err(failure(anyhow!("{} removal(s) failed; `berth down` again retries them", failures.len())))
    }
}

/// `down --rmi`: the services' images (`local`: only those berth named itself, built services
/// without `image:`).
fn remove_images(
    root: &std::path::Path,
    project: &Project,
    which: &str,
    failures: &mut Vec<String>,
    say: &dyn Fn(&str, &str, &str),
) {
    let store = match Store::open(root) {
        Ok(store) => store,
        Err(e) => return failures.push(e.to_string()),
    };
    {
        let images: std::collections::BTreeSet<String> = project
            .services
            .values()
            .filter(|s| which == "all" || s.image.is_none())
            .filter_map(|s| s.image_name(&project.name))
            .collect();
        for image in &images {
            match store.resolve(image).and_then(|found| found.map(|_| store.remove(image)).transpose()) {
                Ok(Some(_)) => say("Image", image, "Removed"),
                Ok(None) => {}
                Err(e) => failures.push(format!("image {image}: {e}")),
            }
        }
    }
}
