//! The per-project supervisor: one process that owns a project's containers (they are its
//! children, watched through pidfds), restarts them by policy, serves their names over DNS, and
//! takes orders from the CLI on a root-only control socket. `berth up -d` starts it; `berth
//! down` asks it to stop everything and exit, or cleans up after it when it was killed.

pub mod control;
pub mod events;
mod health;
mod launch;
pub mod logs;
pub mod names;
mod probe;
pub mod recover;
mod shared;
pub mod status;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;

use crate::graph::Condition;
use crate::image::{ImageRecord, Store};
use crate::network::dns::DnsServer;
use crate::network::setup::{self, NetworkError};
use crate::runtime::RuntimeError;
use crate::runtime::spawner::Spawner;
use crate::spec::{Project, Service};
use launch::Running;
pub use shared::Shared;

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

/// Runs the supervisor of `project` until `down`. `ready` hears `ok` once every container
/// started, or the error that stopped `up` (after everything made was removed again).
pub fn run(
    root: &Path,
    project: Project,
    spawner: Spawner,
    mut ready: Option<std::fs::File>,
) -> Result<(), SupervisorError> {
    let name = project.name.clone();
    let shared = match prepare(root, project, spawner) {
        Ok(shared) => Arc::new(shared),
        Err(e) => {
            let _ = setup::remove_networks(root, &name);
            let _ = std::fs::remove_file(project_dir(root, &name).join("supervisor.json"));
            tell(&mut ready, &e.to_string());
            return Err(e);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| SupervisorError::Io { path: "tokio runtime".into(), source: e })?;
    let outcome = runtime.block_on(serve(Arc::clone(&shared), &mut ready));
    shared.status.destroyed_all();
    drop(runtime);
    let _ = setup::remove_networks(&shared.root, &shared.project.name);
    let _ = std::fs::remove_file(shared.project_dir.join("supervisor.json"));
    let _ = std::fs::remove_file(control::socket_path(&shared.project_dir));
    // `up` hears of a failure only once everything made is gone again.
    if let Err(e) = &outcome {
        tell(&mut ready, &e.to_string());
    }
    outcome
}

fn tell(ready: &mut Option<std::fs::File>, message: &str) {
    if let Some(mut pipe) = ready.take() {
        let _ = pipe.write_all(format!("{}\n", message.trim_end()).as_bytes());
    }
}

fn prepare(root: &Path, project: Project, spawner: Spawner) -> Result<Shared, SupervisorError> {
    let dir = project_dir(root, &project.name);
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| SupervisorError::Io { path: logs.clone(), source: e })?;
    let pid = std::process::id() as i32;
    let record = SupervisorRecord { pid, start_time: crate::runtime::state::process_start_time(pid).unwrap_or(0) };
    let path = dir.join("supervisor.json");
    std::fs::write(&path, serde_json::to_vec(&record).unwrap_or_default())
        .map_err(|e| SupervisorError::Io { path: path.clone(), source: e })?;
    let store = Store::open(root).map_err(|e| SupervisorError::Other(e.to_string()))?;
    let mut images: BTreeMap<String, ImageRecord> = BTreeMap::new();
    for (name, service) in &project.services {
        let image = service.image.as_deref().ok_or_else(|| {
            SupervisorError::Other(format!("service {name:?} has no image, and berth cannot build images yet"))
        })?;
        let record = store
            .resolve(image)
            .map_err(|e| SupervisorError::Other(e.to_string()))?
            .ok_or_else(|| SupervisorError::Other(format!("service {name:?}: image {image} is not in the store")))?;
        images.insert(name.clone(), record);
    }
    let keys: Vec<&str> = project
        .services
        .values()
        .filter(|s| has_own_network(s))
        .flat_map(|s| s.networks.keys().map(String::as_str))
        .collect();
    let networks = setup::ensure_networks(root, &project, keys)?;
    Ok(Shared::new(root.to_path_buf(), project, spawner, store, images, networks))
}

/// Whether a service gets a network namespace of its own on bridge networks (not `host`,
/// `none` or another container's).
fn has_own_network(service: &Service) -> bool {
    service.network_mode.as_deref().is_none_or(|m| m.is_empty() || m == "bridge" || m == "default")
}

async fn serve(shared: Arc<Shared>, ready: &mut Option<std::fs::File>) -> Result<(), SupervisorError> {
    let server = DnsServer::new(Arc::clone(&shared.names) as Arc<dyn crate::network::dns::Records>);
    let mut listeners = Vec::new();
    for record in shared.networks.values().filter(|r| r.project == shared.project.name) {
        let address = SocketAddr::from((record.addressing.gateway, 53));
        listeners.push(server.listen(address).await.map_err(|e| SupervisorError::Other(e.to_string()))?);
    }
    let control = control::bind(&shared.project_dir)?;
    let graph =
        crate::spec::validate::dependency_graph(&shared.project).map_err(|e| SupervisorError::Other(e.to_string()))?;
    // Every service starts as soon as its dependencies meet their conditions, not wave by wave.
    let mut starting = tokio::task::JoinSet::new();
    for service in shared.project.services.keys() {
        let dependencies: Vec<(String, Condition, bool)> = graph
            .dependencies_of(service)
            .into_iter()
            .map(|d| (d.dependency.clone(), d.condition, d.required))
            .collect();
        starting.spawn(start_service(Arc::clone(&shared), service.clone(), dependencies));
    }
    let mut failure = None;
    while let Some(joined) = starting.join_next().await {
        if let Ok(Err(e)) = joined {
            failure.get_or_insert(e);
        }
    }
    if let Some(e) = failure {
        stop_all(&shared, &graph, Some(Duration::ZERO)).await;
        return Err(e);
    }
    tell(ready, "ok");
    let timeout = control::serve_until_down(control, &shared).await;
    stop_all(&shared, &graph, timeout).await;
    drop(listeners);
    Ok(())
}

/// Stops every container in reverse dependency order.
async fn stop_all(shared: &Shared, graph: &crate::graph::DependencyGraph, timeout: Option<Duration>) {
    stop_services(shared, graph, &[], timeout).await;
}

/// `berth stop` / `restart`: stops `services` (all when empty), then starts them again when
/// `restart`; a stopped service stays down (no restart policy) until started.
pub(crate) async fn stop_or_restart(
    shared: &Arc<Shared>,
    services: &[String],
    timeout: Option<Duration>,
    restart: bool,
) -> Result<(), SupervisorError> {
    let graph =
        crate::spec::validate::dependency_graph(&shared.project).map_err(|e| SupervisorError::Other(e.to_string()))?;
    stop_services(shared, &graph, services, timeout).await;
    if restart { start_stopped(shared, services).await.inspect(|()| shared.status.restarted(services)) } else { Ok(()) }
}

/// `berth kill`: sends `signal` to the running containers of `services` (all when empty). A
/// fatal signal (KILL, TERM, INT, QUIT, or the service's `stop_signal`) turns the container's
/// restart policy off until it is started again, as `docker kill` does; others leave it on.
pub(crate) fn kill(
    shared: &Shared,
    services: &[String],
    signal: nix::sys::signal::Signal,
) -> Result<usize, SupervisorError> {
    use nix::sys::signal::Signal;
    let mut sent = 0;
    for found in crate::runtime::state::list(&shared.root)? {
        let (Some(spec), Some(record)) = (found.spec, found.record) else { continue };
        if spec.project != shared.project.name || record.oneoff || !record.is_running() {
            continue;
        }
        if !services.is_empty() && !services.contains(&spec.service) {
            continue;
        }
        let stop_signal = shared.project.services.get(&spec.service).and_then(|s| s.stop_signal.as_deref());
        let fatal = matches!(signal, Signal::SIGKILL | Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT)
            || stop_signal.is_some_and(|s| s.trim_start_matches("SIG") == signal.as_str().trim_start_matches("SIG"));
        if fatal && let Ok(mut killed) = shared.killed.lock() {
            killed.insert(spec.name.clone());
        }
        let pidfd = crate::runtime::exec::pidfd_open(record.pid)?;
        // The PID may have been reused between reading the record and opening the pidfd.
        if record.is_running() {
            shared.status.event(&spec.name, "kill", &[("signal", (signal as i32).to_string())]);
            crate::runtime::container::send_signal(&pidfd, signal)?;
            sent += 1;
        }
    }
    Ok(sent)
}

/// `berth start`: starts the replicas of `services` (all when empty) that are not running.
pub(crate) async fn start_stopped(shared: &Arc<Shared>, services: &[String]) -> Result<(), SupervisorError> {
    let graph =
        crate::spec::validate::dependency_graph(&shared.project).map_err(|e| SupervisorError::Other(e.to_string()))?;
    for wave in graph.start_waves() {
        for service in wave.iter().filter(|s| services.is_empty() || services.contains(s)) {
            let watched = shared.watchers.lock().map(|w| w.iter().any(|(s, _)| s == service)).unwrap_or(true);
            if watched {
                continue;
            }
            if let Some(stop) = shared.stops.get(service) {
                stop.send_replace(None);
            }
            start_replicas(shared, service).await?;
        }
    }
    Ok(())
}

/// Stops the containers of `services` (all when empty) in reverse dependency order, wave by
/// wave: each gets its stop signal, then `timeout` (else its `stop_grace_period`, else 10 s)
/// before SIGKILL.
async fn stop_services(
    shared: &Shared,
    graph: &crate::graph::DependencyGraph,
    services: &[String],
    timeout: Option<Duration>,
) {
    for mut wave in graph.stop_waves() {
        wave.retain(|s| services.is_empty() || services.contains(s));
        for service in &wave {
            let grace = timeout.unwrap_or_else(|| {
                shared
                    .project
                    .services
                    .get(service)
                    .and_then(|s| s.stop_grace_period)
                    .map_or(Duration::from_secs(control::DEFAULT_STOP_SECS), |d| d.0)
            });
            if let Some(stop) = shared.stops.get(service) {
                let _ = stop.send(Some(grace));
            }
        }
        let watchers: Vec<_> = shared
            .watchers
            .lock()
            .map(|mut all| {
                let (these, rest): (Vec<_>, Vec<_>) =
                    std::mem::take(&mut *all).into_iter().partition(|(s, _)| wave.contains(s));
                *all = rest;
                these
            })
            .unwrap_or_default();
        for (_, watcher) in watchers {
            let _ = watcher.await;
        }
    }
}

/// Waits for `service`'s dependencies to meet their conditions, then starts its replicas and
/// a watcher for each. A required dependency that can no longer meet its condition fails `up`
/// with a message naming it.
async fn start_service(
    shared: Arc<Shared>,
    service: String,
    dependencies: Vec<(String, Condition, bool)>,
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
    start_replicas(&shared, &service).await
}

/// Starts `service`'s replicas, each with a watcher.
async fn start_replicas(shared: &Arc<Shared>, service: &str) -> Result<(), SupervisorError> {
    let service = service.to_owned();
    let replicas = shared.project.services.get(&service).map_or(1, Service::replicas);
    for index in 1..=u32::try_from(replicas).unwrap_or(1) {
        let started = {
            let shared = Arc::clone(shared);
            let service = service.clone();
            tokio::task::spawn_blocking(move || launch::start(&shared, &service, index, 0)).await
        };
        let running = match started {
            Ok(Ok(running)) => running,
            Ok(Err(e)) => {
                shared.status.service(&service, |s| s.failed = Some(e.to_string()));
                return Err(e);
            }
            Err(e) => return Err(SupervisorError::Other(e.to_string())),
        };
        let Some(stop) = shared.stops.get(&service).map(watch::Sender::subscribe) else { continue };
        let watcher = tokio::spawn(supervise(Arc::clone(shared), service.clone(), running, stop));
        if let Ok(mut watchers) = shared.watchers.lock() {
            watchers.push((service.clone(), watcher));
        }
    }
    shared.status.service(&service, |s| s.started = true);
    Ok(())
}

fn has_health_check(shared: &Shared, service: &str) -> bool {
    let own = shared.project.services.get(service).and_then(|s| s.healthcheck.as_ref());
    let image = shared.images.get(service).and_then(|i| i.config.config.healthcheck.as_ref());
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

/// Watches one container: probes its health, restarts it by its policy when it exits, stops
/// it on `down`.
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
        let probe = running.health.clone().map(|plan| {
            let spec = running.container.spec.clone();
            tokio::spawn(probe::run(Arc::clone(&shared), spec, running.container.pid, plan))
        });
        let exit = wait_or_stop(&mut running, &mut stop).await;
        if let Some(probe) = probe {
            probe.abort();
        }
        let index = running.index;
        {
            let shared = Arc::clone(&shared);
            let _ = tokio::task::spawn_blocking(move || launch::stop_and_remove(&shared, running)).await;
        }
        let exit = match exit {
            Ended::Exited(exit) => exit,
            Ended::Stopped(exit) => {
                // docker's status for a container killed at the end of its grace period.
                let code = exit.map_or(137, |e| e.code);
                shared.status.update(&name, |c| {
                    c.state = "exited".into();
                    c.exit_code = code;
                    c.finished_at = status::now_nanos();
                });
                shared.status.event(&name, "stop", &[]);
                return;
            }
        };
        let Some(config) = shared.project.services.get(&service) else { return };
        let killed = shared.killed.lock().map(|mut k| k.remove(&name)).unwrap_or(false);
        let again = !killed && should_restart(config, exit.code, restarts);
        shared.status.update(&name, |c| {
            c.state = if again { "restarting" } else { "exited" }.into();
            c.exit_code = exit.code;
            c.finished_at = status::now_nanos();
        });
        if !again {
            shared.status.service(&service, |s| {
                s.completed = Some(exit.code);
                if exit.code != 0 {
                    s.failed.get_or_insert(format!("container {name} exited with code {}", exit.code));
                }
            });
            return;
        }
        if started.elapsed() >= BACKOFF_RESET {
            delay = INITIAL_BACKOFF;
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stop.changed() => return,
        }
        delay = (delay * 2).min(MAX_BACKOFF);
        restarts += 1;
        let restarted = {
            let shared = Arc::clone(&shared);
            let service = service.clone();
            tokio::task::spawn_blocking(move || launch::start(&shared, &service, index, restarts)).await
        };
        match restarted {
            Ok(Ok(next)) => running = next,
            Ok(Err(e)) => {
                eprintln!("berth: restart {service}-{index}: {e}");
                return;
            }
            Err(_) => return,
        }
    }
}

/// docker's restart manager: 100 ms, doubled per restart up to a minute, back to 100 ms after
/// ten seconds of uptime.
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
const BACKOFF_RESET: Duration = Duration::from_secs(10);

/// How a container's run ended.
enum Ended {
    /// It exited by itself.
    Exited(crate::runtime::container::ExitStatus),
    /// It was stopped (`stop`, `down`): its status when it exited within its grace period,
    /// `None` when it was killed.
    Stopped(Option<crate::runtime::container::ExitStatus>),
}

/// Waits for the container to exit or to be told to stop.
async fn wait_or_stop(running: &mut Running, stop: &mut watch::Receiver<Option<Duration>>) -> Ended {
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
    tokio::select! {
        _ = exited.readable() => match running.container.wait() {
            Ok(status) => Ended::Exited(status),
            Err(_) => Ended::Stopped(None),
        },
        _ = stop.changed() => {
            let timeout = (*stop.borrow()).unwrap_or(Duration::ZERO);
            Ended::Stopped(graceful_stop(running, &exited, timeout).await)
        }
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
