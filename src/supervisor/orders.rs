//! The CLI's orders to a running project: stop, start, restart and kill services.

use std::sync::Arc;
use std::time::Duration;

use super::hooks::{self, Phase};
use super::{Shared, SupervisorError, control, start_replicas};

/// Stops every container in reverse dependency order, without their `pre_stop` hooks (a
/// failed `up`'s clean-up, or the end of `down`, whose hooks [`stop_services`] ran first).
pub(super) async fn stop_all(shared: &Arc<Shared>, timeout: Option<Duration>) {
    let _ = stop_services(shared, &[], timeout, Hooks::Skip).await;
}

/// Whether [`stop_services`] runs the `pre_stop` hooks of the containers it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hooks {
    /// Run them; the first that fails ends the stop, its container still running (compose).
    Run,
    /// Stop without them: a replacement (compose runs none there either) or a clean-up.
    Skip,
}

/// `berth stop` / `restart`: stops `services` (all when empty), then starts them again when
/// `restart`; a stopped service stays down (no restart policy) until started. Services that
/// depend on a restarted one with `restart: true` are restarted with it, as in compose.
pub(crate) async fn stop_or_restart(
    shared: &Arc<Shared>,
    services: &[String],
    timeout: Option<Duration>,
    restart: bool,
) -> Result<(), SupervisorError> {
    let services =
        if restart && !services.is_empty() { with_restarting_dependents(shared, services)? } else { services.to_vec() };
    stop_services(shared, &services, timeout, Hooks::Run).await?;
    if restart {
        start_stopped(shared, &services).await.inspect(|()| shared.status.restarted(&services))
    } else {
        Ok(())
    }
}

/// `services` and, transitively, every service that depends on one of them with `restart:
/// true`.
pub(super) fn with_restarting_dependents(shared: &Shared, services: &[String]) -> Result<Vec<String>, SupervisorError> {
    let desired = shared.desired();
    let mut all = services.to_vec();
    let mut grew = true;
    while grew {
        grew = false;
        for (name, service) in &desired.project.services {
            let restarts = service.depends_on.iter().any(|(dependency, d)| d.restart && all.contains(dependency))
                || service
                    .implied_dependencies()
                    .iter()
                    .any(|(dependency, d)| d.restart && all.iter().any(|a| a == dependency));
            if restarts && !all.contains(name) {
                all.push(name.clone());
                grew = true;
            }
        }
    }
    Ok(all)
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
    let desired = shared.desired();
    let mut sent = 0;
    for found in crate::runtime::state::list(&shared.root)? {
        let (Some(spec), Some(record)) = (found.spec, found.record) else { continue };
        if spec.project != shared.name || record.oneoff || !record.is_running() {
            continue;
        }
        if !services.is_empty() && !services.contains(&spec.service) {
            continue;
        }
        let stop_signal = desired.project.services.get(&spec.service).and_then(|s| s.stop_signal.as_deref());
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

/// `berth start`: runs the kept (stopped) containers of `services` (all when empty) again, in
/// dependency order, as they were.
pub(crate) async fn start_stopped(shared: &Arc<Shared>, services: &[String]) -> Result<(), SupervisorError> {
    let desired = shared.desired();
    let graph =
        crate::spec::validate::dependency_graph(&desired.project).map_err(|e| SupervisorError::Other(e.to_string()))?;
    for wave in graph.start_waves() {
        for service in wave.iter().filter(|s| services.is_empty() || services.contains(s)) {
            start_replicas(shared, service, &super::StartMode { resume_only: true, ..Default::default() }).await?;
        }
    }
    Ok(())
}

/// The time `service`'s containers get between their stop signal and SIGKILL: `timeout`, else
/// its `stop_grace_period`, else 10 s.
pub(super) fn grace(shared: &Shared, service: &str, timeout: Option<Duration>) -> Duration {
    timeout.unwrap_or_else(|| {
        shared
            .desired()
            .project
            .services
            .get(service)
            .and_then(|s| s.stop_grace_period)
            .map_or(Duration::from_secs(control::DEFAULT_STOP_SECS), |d| d.0)
    })
}

/// Stops the containers of `services` (all when empty) in reverse dependency order, wave by
/// wave: each gets its stop signal, then its [`grace`] before SIGKILL. Containers of services
/// the project no longer has (orphans) stop last. With [`Hooks::Run`], each running container's
/// `pre_stop` hooks run before its stop signal; the first that fails ends the stop there.
pub(super) async fn stop_services(
    shared: &Arc<Shared>,
    services: &[String],
    timeout: Option<Duration>,
    hooks: Hooks,
) -> Result<(), SupervisorError> {
    let waves = crate::spec::validate::dependency_graph(&shared.desired().project)
        .map(|graph| graph.stop_waves())
        .unwrap_or_default();
    let known: Vec<String> = waves.iter().flatten().cloned().collect();
    let orphans: Vec<String> = shared
        .watchers
        .lock()
        .map(|all| all.iter().map(|w| w.service.clone()).filter(|s| !known.contains(s)).collect())
        .unwrap_or_default();
    for mut wave in waves.into_iter().chain(std::iter::once(orphans)) {
        wave.retain(|s| services.is_empty() || services.contains(s));
        if hooks == Hooks::Run {
            pre_stop(shared, &wave).await?;
        }
        for service in &wave {
            shared.order_stop(service, None, grace(shared, service, timeout));
        }
        for watcher in shared.take_watchers(|w| wave.contains(&w.service)) {
            let _ = watcher.task.await;
        }
    }
    Ok(())
}

/// The `pre_stop` hooks of the running containers of `services`.
async fn pre_stop(shared: &Arc<Shared>, services: &[String]) -> Result<(), SupervisorError> {
    for service in services {
        let hooks = hooks::of(shared, service, Phase::PreStop);
        if hooks.is_empty() {
            continue;
        }
        let targets = {
            let shared = Arc::clone(shared);
            let service = service.clone();
            tokio::task::spawn_blocking(move || super::watching::containers_of(&shared, &service))
                .await
                .unwrap_or_default()
        };
        for target in targets {
            hooks::run(shared, target, Phase::PreStop, hooks.clone()).await?;
        }
    }
    Ok(())
}
