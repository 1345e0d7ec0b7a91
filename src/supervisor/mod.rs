//! The per-project supervisor: one process that owns a project's containers (they are its
//! children, watched through pidfds), restarts them by policy, serves their names over DNS, and
//! takes orders from the CLI on a root-only control socket. `berth up -d` starts it; `berth
//! down` asks it to stop everything and exit, or cleans up after it when it was killed.

pub mod control;
mod converge;
pub mod desired;
pub mod events;
mod health;
mod hooks;
mod launch;
pub mod logs;
pub mod names;
mod orders;
mod probe;
pub mod recover;
mod shared;
pub mod status;
pub mod watching;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;

use crate::graph::Condition;
use crate::image::Store;
use crate::network::setup::{self, NetworkError};
use crate::runtime::RuntimeError;
use crate::runtime::spawner::Spawner;
use crate::spec::{Project, Service};
pub use converge::{UpReport, UpRequest};
use desired::Desired;
use launch::{Origin, Running};
pub use shared::Shared;
use shared::Watcher;

/// Why the supervisor could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// Networks.
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// Containers.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// A file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// Anything else, said in words.
    #[error("{0}")]
    Other(String),
}

/// `<root>/projects/<project>`.
pub fn project_dir(root: &Path, project: &str) -> PathBuf {
    root.join("projects").join(project)
}

/// The supervisor's record: which process it is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SupervisorRecord {
    /// Its PID.
    pub pid: i32,
    /// Its start time, so a reused PID is not mistaken for it.
    pub start_time: u64,
}

impl SupervisorRecord {
    /// The record of `project`'s supervisor, when there is one.
    pub fn load(root: &Path, project: &str) -> Option<SupervisorRecord> {
        let text = std::fs::read(project_dir(root, project).join("supervisor.json")).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Whether the process still runs.
    pub fn is_running(&self) -> bool {
        crate::runtime::state::process_start_time(self.pid) == Some(self.start_time)
    }
}

/// Loads the project as `request` says and runs its supervisor until `down`. `ready` hears an
/// [`UpReport`] (JSON) once every container started, or the error that stopped `up` (after
/// everything made was removed again).
pub fn run(
    root: &Path,
    request: UpRequest,
    spawner: Spawner,
    mut ready: Option<std::fs::File>,
) -> Result<(), SupervisorError> {
    let project = match converge::load(&request) {
        Ok(project) => project,
        Err(e) => {
            tell(&mut ready, &e.to_string());
            return Err(e);
        }
    };
    let name = project.name.clone();
    let found: Vec<crate::runtime::state::Found> = crate::runtime::state::list(root)?
        .into_iter()
        .filter(|f| f.spec.as_ref().is_some_and(|s| s.project == name))
        .collect();
    let shared = match prepare(root, project, spawner, !found.is_empty()) {
        Ok(shared) => Arc::new(shared),
        Err(e) => {
            if found.is_empty() {
                let _ = setup::remove_networks(root, &name);
            }
            let _ = std::fs::remove_file(project_dir(root, &name).join("supervisor.json"));
            tell(&mut ready, &e.to_string());
            return Err(e);
        }
    };
    let adopted = adopt(&shared, found);
    // Container starts run on blocking threads: a few at a time use the two cores as well as
    // fifty would, and idle ones leave soon — every extra thread keeps its stack and malloc
    // arena, which would be most of the supervisor's memory per container.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(8)
        .thread_keep_alive(Duration::from_secs(1))
        .enable_all()
        .build()
        .map_err(|e| SupervisorError::Io { path: "tokio runtime".into(), source: e })?;
    let outcome = runtime.block_on(serve(Arc::clone(&shared), &request, &mut ready, &adopted));
    drop(runtime);
    // `down` (or a failed first start) takes the networks; a supervisor told to halt (Ctrl-C
    // of an attached `up`) leaves them to the stopped containers, as compose does.
    let remove_networks = outcome.as_ref().map_or(adopted.is_empty(), |exit| exit.remove);
    if remove_networks {
        shared.status.destroyed_all();
        let _ = setup::remove_networks(&shared.root, &shared.name);
    }
    let _ = std::fs::remove_file(shared.project_dir.join("supervisor.json"));
    let _ = std::fs::remove_file(control::socket_path(&shared.project_dir));
    // `up` hears of a failure only once everything made is gone again.
    match outcome {
        Ok(_) => Ok(()),
        Err(e) => {
            tell(&mut ready, &e.to_string());
            Err(e)
        }
    }
}

/// Takes in the project's containers found on disk (`found`, after `recover::reap`): stopped
/// ones are kept, to be run again or replaced; returns their names.
fn adopt(shared: &Shared, found: Vec<crate::runtime::state::Found>) -> Vec<String> {
    let desired = shared.desired();
    let mut adopted = Vec::new();
    for found in found {
        let (Some(spec), Some(record)) = (found.spec, found.record) else { continue };
        if record.oneoff || record.is_running() {
            continue;
        }
        let image = desired.project.services.get(&spec.service).and_then(|s| s.image_name(&shared.name));
        shared.status.adopt(status::ContainerStatus {
            id: spec.id.clone(),
            name: spec.name.clone(),
            image: image.unwrap_or_default(),
            command: shell_words::join(&spec.process.args),
            project: spec.project.clone(),
            service: spec.service.clone(),
            created: record.created,
            state: "exited".into(),
            health: record.health.clone(),
            exit_code: record.exit_code,
            started_at: record.started_at,
            finished_at: record.finished_at,
            restarts: record.restarts,
            starts: Vec::new(),
            publishers: Vec::new(),
            health_output: String::new(),
        });
        adopted.push(spec.name.clone());
        shared.keep(spec);
    }
    adopted
}

fn tell(ready: &mut Option<std::fs::File>, message: &str) {
    if let Some(mut pipe) = ready.take() {
        let _ = pipe.write_all(format!("{}\n", message.trim_end()).as_bytes());
    }
}

fn prepare(root: &Path, project: Project, spawner: Spawner, has_containers: bool) -> Result<Shared, SupervisorError> {
    let dir = project_dir(root, &project.name);
    let logs = dir.join("logs");
    // A fresh start has fresh containers: the logs of the last run (kept after `down`) go.
    // Kept containers keep theirs, as docker's do.
    if !has_containers {
        let _ = std::fs::remove_dir_all(&logs);
    }
    crate::secure_fs::private_dir(&logs).map_err(|e| SupervisorError::Io { path: logs.clone(), source: e })?;
    let pid = std::process::id() as i32;
    let record = SupervisorRecord { pid, start_time: crate::runtime::state::process_start_time(pid).unwrap_or(0) };
    let path = dir.join("supervisor.json");
    crate::fsutil::write_atomic(&path, &serde_json::to_vec(&record).unwrap_or_default())
        .map_err(|e| SupervisorError::Io { path: path.clone(), source: e })?;
    crate::fault::point("after-record");
    let store = Store::open(root).map_err(|e| SupervisorError::Other(e.to_string()))?;
    let desired = Desired::resolve(root, project, &store)?;
    Ok(Shared::new(root.to_path_buf(), desired, spawner, store))
}

async fn serve(
    shared: Arc<Shared>,
    request: &UpRequest,
    ready: &mut Option<std::fs::File>,
    adopted: &[String],
) -> Result<control::Exit, SupervisorError> {
    listen_for_names(&shared).await?;
    let control = control::bind(&shared.project_dir)?;
    tokio::spawn(logs::rotate_own_output(shared.project_dir.join("supervisor.log")));
    let desired = shared.desired();
    let (services, started) = if request.resume {
        let kept: Vec<(String, String)> = shared
            .kept
            .lock()
            .map(|k| k.values().map(|s| (s.service.clone(), s.name.clone())).collect())
            .unwrap_or_default();
        let services: Vec<String> = desired
            .project
            .services
            .keys()
            .filter(|s| request.services.is_empty() || request.services.contains(s))
            .filter(|s| kept.iter().any(|(service, _)| service == *s))
            .cloned()
            .collect();
        let started = orders::start_stopped(&shared, &services).await;
        (services, started)
    } else {
        let services = converge::targets(&desired.project, request)?;
        let started = start_services(&shared, &desired, &services, &request.start_mode(&services)).await;
        (services, started)
    };
    if let Err(e) = started {
        orders::stop_all(&shared, Some(Duration::ZERO)).await;
        // What this start made goes again; what was there before stays.
        shared.remove_kept(|spec| !adopted.contains(&spec.name), false);
        return Err(e);
    }
    let mut report = UpReport::default();
    for service in &services {
        let Some(config) = desired.project.services.get(service) else { continue };
        for index in 1..=u32::try_from(config.replicas()).unwrap_or(1) {
            let container = crate::plan::container_name(&desired.project, config, index);
            report.changes.push(converge::Change { container, action: "Started".into() });
        }
    }
    let remembered = match request.resume {
        true => {
            UpRequest::load_last(&shared.project_dir).unwrap_or_else(|| UpRequest { resume: false, ..request.clone() })
        }
        false => request.clone(),
    };
    if let Err(e) = converge::remember(&shared, &remembered) {
        orders::stop_all(&shared, Some(Duration::ZERO)).await;
        return Err(e);
    }
    tell(ready, &serde_json::to_string(&report).unwrap_or_default());
    let exit = control::serve_until_down(control, &shared).await;
    // An order under way finishes first.
    let _turn = shared.orders.lock().await;
    watching::stop(&shared);
    orders::stop_all(&shared, exit.timeout).await;
    if exit.remove {
        remove_all_kept(&shared, exit.volumes).await;
    }
    if let Ok(mut listeners) = shared.dns_listeners.lock() {
        listeners.clear();
    }
    Ok(exit)
}

/// `down`: removes every kept container (and, with `volumes`, its anonymous volumes), a few
/// at a time.
async fn remove_all_kept(shared: &Arc<Shared>, volumes: bool) {
    let all: Vec<crate::runtime::spec::ContainerSpec> =
        shared.kept.lock().map(|mut k| std::mem::take(&mut *k).into_values().collect()).unwrap_or_default();
    let mut removing = tokio::task::JoinSet::new();
    for spec in all {
        let root = shared.root.clone();
        removing.spawn_blocking(move || recover::remove_container(&root, &spec, volumes));
    }
    while removing.join_next().await.is_some() {}
}

/// Serves DNS on the gateway of each network the project made that has no server yet.
async fn listen_for_names(shared: &Shared) -> Result<(), SupervisorError> {
    let desired = shared.desired();
    for (key, record) in desired.networks.iter().filter(|(_, r)| r.project == shared.name) {
        let serving = shared.dns_listeners.lock().map(|l| l.contains_key(key)).unwrap_or(true);
        if serving {
            continue;
        }
        let address = SocketAddr::from((record.addressing.gateway, 53));
        let scope = crate::network::dns::Scope { subnet: Some(record.addressing.subnet), internal: record.internal };
        let listener =
            shared.dns.listen_scoped(address, scope).await.map_err(|e| SupervisorError::Other(e.to_string()))?;
        if let Ok(mut listeners) = shared.dns_listeners.lock() {
            listeners.insert(key.clone(), listener);
        }
    }
    Ok(())
}

/// How [`start_replicas`] treats a replica's kept (stopped) container: run it again when its
/// config hash still matches, else replace it (taking over its anonymous volumes).
#[derive(Debug, Clone, Default)]
pub(crate) struct StartMode {
    /// Only run kept containers again (`start`, `restart`), whatever their hash; plan none.
    pub resume_only: bool,
    /// Services whose kept containers are replaced whatever their hash (`--force-recreate`).
    pub recreate: Vec<String>,
    /// `-V`: a replacement gets fresh anonymous volumes.
    pub renew_anon_volumes: bool,
}

/// Starts `services` of `desired`, each as soon as its dependencies meet their conditions
/// (not wave by wave); the first failure, once every start has ended.
async fn start_services(
    shared: &Arc<Shared>,
    desired: &Desired,
    services: &[String],
    mode: &StartMode,
) -> Result<(), SupervisorError> {
    let graph =
        crate::spec::validate::dependency_graph(&desired.project).map_err(|e| SupervisorError::Other(e.to_string()))?;
    let mut starting = tokio::task::JoinSet::new();
    for service in services {
        let dependencies: Vec<(String, Condition, bool)> = graph
            .dependencies_of(service)
            .into_iter()
            .map(|d| (d.dependency.clone(), d.condition, d.required))
            .collect();
        starting.spawn(start_service(Arc::clone(shared), service.clone(), dependencies, mode.clone()));
    }
    let mut failure = None;
    while let Some(joined) = starting.join_next().await {
        if let Ok(Err(e)) = joined {
            failure.get_or_insert(e);
        }
    }
    failure.map_or(Ok(()), Err)
}

/// Waits for `service`'s dependencies to meet their conditions, then starts its replicas and
/// a watcher for each. A required dependency that can no longer meet its condition fails `up`
/// with a message naming it.
async fn start_service(
    shared: Arc<Shared>,
    service: String,
    dependencies: Vec<(String, Condition, bool)>,
    mode: StartMode,
) -> Result<(), SupervisorError> {
    for (dependency, condition, required) in dependencies {
        let Some(mut state) = shared.status.watch(&dependency) else { continue };
        if condition == Condition::Healthy && !has_health_check(&shared, &dependency) {
            return Err(SupervisorError::Other(format!(
                "service {service:?} depends on {dependency:?} being healthy, but {dependency:?} has no health check"
            )));
        }
        let outcome = state
            .wait_for(|s| s.failed.is_some() || condition_met(s, condition))
            .await
            .map(|s| if condition_met(&s, condition) { None } else { s.failed.clone() });
        match outcome {
            Ok(None) => {}
            Ok(Some(why)) if !required => {
                eprintln!("berth: {service}: optional dependency {dependency} did not start: {why}");
            }
            Ok(Some(why)) => {
                let message = format!("dependency failed to start: service {dependency:?}: {why}");
                shared.status.service(&service, |s| s.failed = Some(message.clone()));
                return Err(SupervisorError::Other(message));
            }
            Err(_) => return Err(SupervisorError::Other(format!("dependency {dependency:?} vanished"))),
        }
    }
    start_replicas(&shared, &service, &mode).await
}

/// Starts those of `service`'s replicas that are not running, each with a watcher: a kept
/// container as `mode` says, else a new one.
async fn start_replicas(shared: &Arc<Shared>, service: &str, mode: &StartMode) -> Result<(), SupervisorError> {
    let service = service.to_owned();
    let desired = shared.desired();
    let Some(config) = desired.project.services.get(&service) else { return Ok(()) };
    let hash = desired.hashes.get(&service).cloned().unwrap_or_default();
    let running = shared.watched(&service);
    for index in (1..=u32::try_from(config.replicas()).unwrap_or(1)).filter(|i| !running.contains(i)) {
        let name = crate::plan::container_name(&desired.project, config, index);
        let origin = match shared.take_kept(&name) {
            Some(old) if mode.resume_only || (old.config_hash == hash && !mode.recreate.contains(&service)) => {
                Origin::Kept(old)
            }
            Some(old) => Origin::Replace { old, renew_anon_volumes: mode.renew_anon_volumes },
            None if mode.resume_only => continue,
            None => Origin::New,
        };
        let Some(stop) = shared.stop_receiver(&service, index) else { continue };
        let started = {
            let shared = Arc::clone(shared);
            let service = service.clone();
            tokio::task::spawn_blocking(move || launch::start(&shared, &service, index, 0, origin)).await
        };
        let running = match started {
            Ok(Ok(running)) => running,
            Ok(Err(e)) => {
                shared.status.service(&service, |s| s.failed = Some(e.to_string()));
                return Err(e);
            }
            Err(e) => return Err(SupervisorError::Other(e.to_string())),
        };
        let target = crate::runtime::exec::Target::running(running.container.spec.clone(), running.container.pid);
        let task = tokio::spawn(supervise(Arc::clone(shared), service.clone(), running, stop));
        if let Ok(mut watchers) = shared.watchers.lock() {
            watchers.retain(|w| !(w.service == service && w.index == index && w.task.is_finished()));
            watchers.push(Watcher { service: service.clone(), index, task });
        }
        // The service counts as started once its hooks passed: dependents wait for them.
        let post_start = hooks::of(shared, &service, hooks::Phase::PostStart);
        if let Err(e) = hooks::run(shared, target, hooks::Phase::PostStart, post_start).await {
            shared.status.service(&service, |s| s.failed = Some(e.to_string()));
            return Err(e);
        }
    }
    shared.status.service(&service, |s| s.started = true);
    Ok(())
}

fn has_health_check(shared: &Shared, service: &str) -> bool {
    let desired = shared.desired();
    let own = desired.project.services.get(service).and_then(|s| s.healthcheck.as_ref());
    let image = desired.images.get(service).and_then(|i| i.config.config.healthcheck.as_ref());
    health::plan(own, image).is_some()
}

/// Whether a dependency's state meets a `depends_on` condition.
fn condition_met(state: &status::ServiceState, condition: Condition) -> bool {
    match condition {
        Condition::Started => state.started,
        Condition::Healthy => state.healthy,
        Condition::CompletedSuccessfully => state.completed == Some(0),
    }
}

/// Watches one container: probes its health, restarts it by its policy when it exits (or,
/// with `x-berth-restart-on-unhealthy`, when it turns unhealthy), stops it when ordered to.
async fn supervise(
    shared: Arc<Shared>,
    service: String,
    mut running: Running,
    mut stop: watch::Receiver<Option<Duration>>,
) {
    let mut restarts = 0u32;
    let mut delay = INITIAL_BACKOFF;
    loop {
        let started = Instant::now();
        let name = running.container.spec.name.clone();
        let desired = shared.desired();
        let config = desired.project.services.get(&service);
        let heal = config.is_some_and(restarts_when_unhealthy);
        let mut probe = running.health.clone().map(|plan| {
            let spec = running.container.spec.clone();
            tokio::spawn(probe::run(Arc::clone(&shared), spec, running.container.pid, plan, heal))
        });
        let grace = orders::grace(&shared, &service, None);
        let ended = wait_or_stop(&mut running, &mut stop, probe.as_mut(), grace).await;
        // docker's back-off runs from the exit, not from when the old run is cleared away.
        let exited_at = tokio::time::Instant::now();
        if let Some(probe) = probe {
            probe.abort();
        }
        let killed = shared.killed.lock().map(|mut k| k.remove(&name)).unwrap_or(false);
        let (code, again) = match ended {
            Ended::Exited(exit) => {
                (exit.code, !killed && config.is_some_and(|c| should_restart(c, exit.code, restarts)))
            }
            // docker's status for a container killed at the end of its grace period.
            Ended::Unhealthy(exit) => (exit.map_or(137, |e| e.code), !killed),
            Ended::Stopped(exit) => (exit.map_or(137, |e| e.code), false),
        };
        if !again {
            {
                let shared = Arc::clone(&shared);
                let _ = tokio::task::spawn_blocking(move || launch::stop_and_keep(&shared, running, code)).await;
            }
            shared.status.update(&name, |c| {
                c.state = "exited".into();
                c.exit_code = code;
                c.finished_at = status::now_nanos();
            });
            if let Ended::Stopped(_) = ended {
                shared.status.event(&name, "stop", &[]);
            }
            if let Ended::Exited(_) = ended {
                shared.status.service(&service, |s| {
                    s.completed = Some(code);
                    if code != 0 {
                        s.failed.get_or_insert(format!("container {name} exited with code {code}"));
                    }
                });
            }
            return;
        }
        let index = running.index;
        let kept = {
            let shared = Arc::clone(&shared);
            tokio::task::spawn_blocking(move || launch::retire(&shared, running)).await.ok().flatten()
        };
        crate::fault::point("before-restart");
        shared.status.update(&name, |c| {
            c.state = "restarting".into();
            c.exit_code = code;
            c.finished_at = status::now_nanos();
        });
        if started.elapsed() >= BACKOFF_RESET {
            delay = INITIAL_BACKOFF;
        }
        // The container is made ready (root, cgroup, network) shortly before the back-off ends
        // and let go at its end: a restart costs the back-off and an exec.
        let deadline = exited_at + delay;
        let prepare_at = deadline.checked_sub(RESTART_LEAD).unwrap_or(exited_at);
        let called_off = tokio::select! {
            () = tokio::time::sleep_until(prepare_at) => false,
            _ = stop.changed() => true,
        };
        if called_off {
            if let Some(spec) = kept {
                let shared = Arc::clone(&shared);
                let _ = tokio::task::spawn_blocking(move || launch::keep_stopped(&shared, spec, code)).await;
            }
            shared.status.update(&name, |c| c.state = "exited".into());
            return;
        }
        restarts += 1;
        let again = kept.clone();
        let created = {
            let shared = Arc::clone(&shared);
            let service = service.clone();
            tokio::task::spawn_blocking(move || launch::create(&shared, &service, index, restarts, kept)).await
        };
        let pending = match created {
            Ok(Ok(pending)) => pending,
            Ok(Err(e)) => {
                eprintln!("berth: restart {service}-{index}: {e}");
                // The runtime kept the files of a container that ran before.
                if let Some(spec) = again {
                    launch::keep_stopped(&shared, spec, code);
                }
                shared.status.update(&name, |c| c.state = "exited".into());
                return;
            }
            Err(_) => return,
        };
        let called_off = tokio::select! {
            () = tokio::time::sleep_until(deadline) => false,
            _ = stop.changed() => true,
        };
        if called_off {
            {
                let shared = Arc::clone(&shared);
                let _ = tokio::task::spawn_blocking(move || launch::abandon(&shared, pending, code)).await;
            }
            shared.status.update(&name, |c| c.state = "exited".into());
            return;
        }
        delay = (delay * 2).min(MAX_BACKOFF);
        let restarted = {
            let shared = Arc::clone(&shared);
            tokio::task::spawn_blocking(move || launch::run(&shared, pending, restarts)).await
        };
        match restarted {
            Ok(Ok(next)) => running = next,
            Ok(Err(e)) => {
                eprintln!("berth: restart {service}-{index}: {e}");
                shared.status.update(&name, |c| c.state = "exited".into());
                return;
            }
            Err(_) => return,
        }
    }
}

/// berth's opt-in restart of a container that turns unhealthy (docker only reports it):
/// `x-berth-restart-on-unhealthy: true` on the service.
fn restarts_when_unhealthy(service: &Service) -> bool {
    service.other.get(RESTART_ON_UNHEALTHY).and_then(serde_json::Value::as_bool).unwrap_or(false)
}

/// The service key of [`restarts_when_unhealthy`].
pub const RESTART_ON_UNHEALTHY: &str = "x-berth-restart-on-unhealthy";

/// docker's restart manager: 100 ms, doubled per restart up to a minute, back to 100 ms after
/// ten seconds of uptime.
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
const BACKOFF_RESET: Duration = Duration::from_secs(10);
/// How long before the end of its back-off a restarting container is made, waiting to exec.
const RESTART_LEAD: Duration = Duration::from_millis(60);

/// How a container's run ended.
enum Ended {
    /// It exited by itself.
    Exited(crate::runtime::container::ExitStatus),
    /// It turned unhealthy and was stopped to be restarted: its status when it exited within
    /// its grace period, `None` when it was killed.
    Unhealthy(Option<crate::runtime::container::ExitStatus>),
    /// It was stopped (`stop`, `down`): as for `Unhealthy`.
    Stopped(Option<crate::runtime::container::ExitStatus>),
}

/// Waits for the container to exit, to be told to stop, or (when `probe` ends, which it does
/// only for a container to restart when unhealthy) to turn unhealthy.
async fn wait_or_stop(
    running: &mut Running,
    stop: &mut watch::Receiver<Option<Duration>>,
    probe: Option<&mut tokio::task::JoinHandle<()>>,
    grace: Duration,
) -> Ended {
    let Ok(pidfd) = running.container.pidfd.try_clone() else { return Ended::Stopped(None) };
    // SAFETY: the AsyncFd owns the pidfd (a duplicate of the container's), which stays open
    // for as long as it is registered and is closed only when the AsyncFd is dropped.
    let Ok(exited) = (unsafe { AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE) }) else {
        return Ended::Stopped(None);
    };
    let already = *stop.borrow();
    if let Some(timeout) = already {
        return Ended::Stopped(graceful_stop(running, &exited, timeout).await);
    }
    let unhealthy = async {
        match probe {
            Some(probe) => {
                let _ = probe.await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = exited.readable() => match running.container.wait() {
            Ok(status) => Ended::Exited(status),
            Err(_) => Ended::Stopped(None),
        },
        _ = stop.changed() => {
            let timeout = (*stop.borrow()).unwrap_or(Duration::ZERO);
            Ended::Stopped(graceful_stop(running, &exited, timeout).await)
        }
        () = unhealthy => Ended::Unhealthy(graceful_stop(running, &exited, grace).await),
    }
}

/// The stop signal, up to `timeout` for the container to exit, then (by the caller) SIGKILL.
async fn graceful_stop(
    running: &mut Running,
    exited: &AsyncFd<std::os::fd::OwnedFd>,
    timeout: Duration,
) -> Option<crate::runtime::container::ExitStatus> {
    if timeout.is_zero() {
        return None;
    }
    let _ = running.container.signal(running.stop_signal);
    let _ready = tokio::time::timeout(timeout, exited.readable()).await.ok()?.ok()?;
    running.container.wait().ok()
}

/// docker's restart policies: `no`, `always`, `unless-stopped`, `on-failure[:N]`, or
/// `deploy.restart_policy` (`none`, `any`, `on-failure` with `max_attempts`).
fn should_restart(service: &Service, code: i32, restarts: u32) -> bool {
    if let Some(policy) = service.deploy.as_ref().and_then(|d| d.restart_policy.as_ref()) {
        let limit = policy.max_attempts.unwrap_or(0);
        let within = limit == 0 || u64::from(restarts) < limit;
        return match policy.condition.as_deref().unwrap_or("any") {
            "none" => false,
            "on-failure" => code != 0 && within,
            _ => within,
        };
    }
    let policy = service.restart.as_deref().unwrap_or("no");
    match policy.split_once(':') {
        Some(("on-failure", max)) => code != 0 && max.parse::<u32>().is_ok_and(|max| restarts < max),
        _ => match policy {
            "always" | "unless-stopped" => true,
            "on-failure" => code != 0,
            _ => false,
        },
    }
}
