//! `up` on a running project: load the stack again, compare each service's config hash with
//! the running one's, and change only what differs — recreate changed services (and those that
//! depend on them with `restart: true`), start missing ones, scale replicas up or down, and
//! warn about (or remove) orphans — as compose's reconciler does.

use std::collections::BTreeMap;
use std::sync::Arc;

use std::os::unix::fs::OpenOptionsExt;

use serde::{Deserialize, Serialize};

use super::desired::Desired;
use super::orders::{self, grace};
use super::{Shared, SupervisorError, listen_for_names, start_services};
use crate::spec::Project;
use crate::spec::load::ProjectOptions;

/// What `berth up` asks of the supervisor: the first start, and every `up` after it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UpRequest {
    /// How to load the project, with the CLI's environment and working directory.
    pub options: ProjectOptions,
    /// The services named on the command line (all when empty).
    pub services: Vec<String>,
    /// `--force-recreate`.
    pub force_recreate: bool,
    /// `--no-recreate`.
    pub no_recreate: bool,
    /// `--remove-orphans`.
    pub remove_orphans: bool,
    /// `--no-deps`: named services only, not their dependencies.
    pub no_deps: bool,
    /// `--scale SERVICE=N`.
    pub scale: BTreeMap<String, u64>,
    /// `-t`: seconds containers get to stop when recreated.
    pub timeout: Option<u64>,
    /// `--watch`: run the services' `develop.watch` rules (in the supervisor, so `up -d`
    /// keeps watching).
    #[serde(default)]
    pub watch: bool,
    /// `-V`: recreated containers get fresh anonymous volumes instead of their predecessors'.
    #[serde(default)]
    pub renew_anon_volumes: bool,
    /// `start`/`restart` with no supervisor running: a new supervisor only runs the stopped
    /// containers it finds on disk again (of `services`, all when empty), as they were.
    #[serde(default)]
    pub resume: bool,
}

impl UpRequest {
    /// How this request treats kept containers, `targets` being the services it brings up
    /// (`--force-recreate` applies to the named services only, else to all).
    pub(crate) fn start_mode(&self, targets: &[String]) -> super::StartMode {
        let recreate = match (self.force_recreate, self.services.is_empty()) {
            (false, _) => Vec::new(),
            (true, false) => self.services.clone(),
            (true, true) => targets.to_vec(),
        };
        super::StartMode { resume_only: self.resume, recreate, renew_anon_volumes: self.renew_anon_volumes }
    }

    /// Where the last `up`'s request is kept: `start` with no supervisor loads the project
    /// with it.
    pub fn path(project_dir: &std::path::Path) -> std::path::PathBuf {
        project_dir.join("up.json")
    }

    /// The last `up`'s request of the project in `project_dir`.
    pub fn load_last(project_dir: &std::path::Path) -> Option<UpRequest> {
        serde_json::from_slice(&std::fs::read(UpRequest::path(project_dir)).ok()?).ok()
    }
}

/// What `up` did to one container, for its progress line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Change {
    /// The container.
    pub container: String,
    /// `Started`, `Recreated`, `Restarted`, `Running`, `Removed`.
    pub action: String,
}

/// The supervisor's answer to an [`UpRequest`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UpReport {
    /// One entry per container touched or looked at.
    pub changes: Vec<Change>,
    /// What the user should know (orphans).
    pub warnings: Vec<String>,
}

/// Loads the project as `request` says, with its `--scale`s applied.
pub fn load(request: &UpRequest) -> Result<Project, SupervisorError> {
    let loaded = crate::spec::load(&request.options).map_err(|e| SupervisorError::Other(e.to_string()))?;
    // What `config` accepts but nothing can run (an nfs volume, say) stops `up` here, located,
    // before anything is made.
    let unrunnable = crate::spec::volume_opts::check(&loaded.project, &loaded.document);
    if !unrunnable.is_empty() {
        return Err(SupervisorError::Other(crate::spec::error::LoadError { errors: unrunnable }.to_string()));
    }
    let mut project = loaded.project;
    for (service, replicas) in &request.scale {
        let Some(config) = project.services.get_mut(service) else {
            return Err(SupervisorError::Other(format!("--scale: no such service: {service:?}")));
        };
        config.scale = Some(*replicas);
    }
    Ok(project)
}

/// The services `up` brings up: those named and (unless `--no-deps`) everything they depend
/// on, else all.
pub fn targets(project: &Project, request: &UpRequest) -> Result<Vec<String>, SupervisorError> {
    if request.services.is_empty() {
        return Ok(project.services.keys().cloned().collect());
    }
    let graph = crate::spec::validate::dependency_graph(project).map_err(|e| SupervisorError::Other(e.to_string()))?;
    let mut wanted = Vec::new();
    let mut queue: Vec<String> = request.services.clone();
    while let Some(service) = queue.pop() {
        if !project.services.contains_key(&service) {
            return Err(SupervisorError::Other(format!("no such service: {service:?}")));
        }
        if wanted.contains(&service) {
            continue;
        }
        if !request.no_deps {
            queue.extend(graph.dependencies_of(&service).into_iter().map(|d| d.dependency.clone()));
        }
        wanted.push(service);
    }
    Ok(wanted)
}

/// Brings the running project in line with the stack as `request` loads it.
pub async fn up(shared: &Arc<Shared>, request: UpRequest) -> Result<UpReport, SupervisorError> {
    let loaded = {
        let shared = Arc::clone(shared);
        let request = request.clone();
        tokio::task::spawn_blocking(move || {
            let project = load(&request)?;
            if project.name != shared.name {
                return Err(SupervisorError::Other(format!(
                    "the stack is project {:?}, not {:?}",
                    project.name, shared.name
                )));
            }
            Desired::resolve(&shared.root, project, &shared.store)
        })
        .await
        .map_err(|e| SupervisorError::Other(e.to_string()))??
    };
    let targets = targets(&loaded.project, &request)?;
    let old = shared.desired();
    let mut report = UpReport::default();
    let mut recreate = Vec::new();
    let mut start = Vec::new();
    let mut scale_down: Vec<(String, u32)> = Vec::new();
    let mut kept: Vec<(String, u32)> = Vec::new();
    for service in &targets {
        let running = shared.watched(service);
        let wanted = loaded.project.services.get(service).map_or(1, crate::spec::Service::replicas);
        let wanted = u32::try_from(wanted).unwrap_or(u32::MAX);
        let changed = old.hashes.get(service) != loaded.hashes.get(service);
        let forced = request.force_recreate && (request.services.is_empty() || request.services.contains(service));
        if running.is_empty() {
            start.push(service.clone());
        } else if (changed || forced) && !request.no_recreate {
            recreate.push(service.clone());
        } else {
            scale_down.extend(running.iter().filter(|i| **i > wanted).map(|i| (service.clone(), *i)));
            if running.len() < wanted as usize {
                start.push(service.clone());
            }
            kept.extend(running.iter().filter(|i| **i <= wanted).map(|i| (service.clone(), *i)));
        }
    }
    let orphans: Vec<String> = {
        let watchers = shared.watchers.lock().map_err(|_| SupervisorError::Other("poisoned".into()))?;
        let mut orphans: Vec<String> = watchers
            .iter()
            .filter(|w| !w.task.is_finished() && !loaded.project.services.contains_key(&w.service))
            .map(|w| w.service.clone())
            .collect();
        orphans.dedup();
        orphans
    };
    shared.replace_desired(loaded);
    listen_for_names(shared).await?;
    let desired = shared.desired();
    // compose restarts the services that depend on a recreated one with `restart: true`.
    let restarted: Vec<String> = orders::with_restarting_dependents(shared, &recreate)?
        .into_iter()
        .filter(|s| !recreate.contains(s) && !start.contains(s) && !shared.watched(s).is_empty())
        .collect();
    for (service, index) in kept.iter().filter(|(s, _)| !restarted.contains(s)) {
        report.changes.push(change(&desired.project, service, *index, "Running"));
    }
    let mut stopping: Vec<String> = recreate.iter().chain(&restarted).cloned().collect();
    if request.remove_orphans {
        stopping.extend(orphans.iter().cloned());
    } else if !orphans.is_empty() {
        let containers: Vec<String> =
            shared.status.containers().into_iter().filter(|c| orphans.contains(&c.service)).map(|c| c.name).collect();
        report.warnings.push(format!(
            "Found orphan containers ([{}]) for this project. If you removed or renamed this service in your compose \
             file, you can run this command with the --remove-orphans flag to clean it up.",
            containers.join(" ")
        ));
    }
    let timeout = request.timeout.map(std::time::Duration::from_secs);
    if !stopping.is_empty() {
        let _ = orders::stop_services(shared, &stopping, timeout, orders::Hooks::Skip).await;
    }
    for orphan in orphans.iter().filter(|_| request.remove_orphans) {
        for container in shared.status.containers().into_iter().filter(|c| &c.service == orphan) {
            shared.status.forget(&container.name);
            report.changes.push(Change { container: container.name, action: "Removed".into() });
        }
        shared.remove_kept(|spec| &spec.service == orphan, false);
    }
    for (service, index) in &scale_down {
        shared.order_stop(service, Some(*index), grace(shared, service, timeout));
        for watcher in shared.take_watchers(|w| &w.service == service && w.index == *index) {
            let _ = watcher.task.await;
        }
        let name = change(&desired.project, service, *index, "Removed");
        shared.status.forget(&name.container);
        shared.remove_kept(|spec| spec.name == name.container, false);
        report.changes.push(name);
    }
    for service in recreate.iter().chain(&restarted) {
        shared.status.reset_service(service);
    }
    let before: BTreeMap<String, std::collections::BTreeSet<u32>> =
        start.iter().map(|s| (s.clone(), shared.watched(s))).collect();
    let starting: Vec<String> = recreate.iter().chain(&restarted).chain(&start).cloned().collect();
    start_services(shared, &desired, &starting, &request.start_mode(&targets)).await?;
    for service in &starting {
        let action = if recreate.contains(service) {
            "Recreated"
        } else if restarted.contains(service) {
            "Restarted"
        } else {
            "Started"
        };
        let already = before.get(service).cloned().unwrap_or_default();
        let replicas = desired.project.services.get(service).map_or(1, crate::spec::Service::replicas);
        // Counted, not looked up: a one-shot container may have finished already.
        for index in (1..=u32::try_from(replicas).unwrap_or(1)).filter(|i| !already.contains(i)) {
            report.changes.push(change(&desired.project, service, index, action));
        }
    }
    report.changes.sort_by(|a, b| a.container.cmp(&b.container));
    Ok(report)
}

fn change(project: &Project, service: &str, index: u32, action: &str) -> Change {
    let container = project.services.get(service).map_or_else(
        || format!("{}-{service}-{index}", project.name),
        |s| crate::plan::container_name(project, s, index),
    );
    Change { container, action: action.into() }
}

/// Keeps `request` as the last `up`, and starts watching when it asks to.
pub fn remember(shared: &Arc<Shared>, request: &UpRequest) -> Result<(), SupervisorError> {
    if let Ok(mut last) = shared.last_up.lock() {
        *last = Some(request.clone());
    }
    // On disk too, for a supervisor started later by `start` (the request holds the CLI's
    // environment: root only).
    let path = UpRequest::path(&shared.project_dir);
    let text = serde_json::to_vec(request).unwrap_or_default();
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path.with_extension("tmp"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, &text))
        .and_then(|()| std::fs::rename(path.with_extension("tmp"), &path));
    written.map_err(|e| SupervisorError::Io { path, source: e })?;
    if request.watch {
        super::watching::start(shared, request)?;
    }
    Ok(())
}
