//! What the supervisor knows about its containers and services right now: the table `ps`
//! prints, and the per-service state `depends_on` conditions wait on.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::events::{Event, EventLog};
use super::health::Health;

/// One container, as `berth ps --format json` prints it (compose's field names, plus berth's
/// `StartedAt`/`FinishedAt` in Unix nanoseconds and `Restarts`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerStatus {
    /// Container id.
    #[serde(rename = "ID")]
    pub id: String,
    /// Container name.
    pub name: String,
    /// The image reference.
    pub image: String,
    /// The command line.
    pub command: String,
    /// Project.
    pub project: String,
    /// Service.
    pub service: String,
    /// Unix seconds of creation.
    pub created: u64,
    /// `running`, `restarting` or `exited`.
    pub state: String,
    /// `healthy`, `unhealthy`, `starting`, or empty without a health check.
    pub health: String,
    /// The last exit code (0 while it has not exited).
    pub exit_code: i32,
    /// Unix nanoseconds the current (or last) process started.
    pub started_at: u128,
    /// Unix nanoseconds it exited, 0 while running.
    pub finished_at: u128,
    /// How many times it was restarted.
    pub restarts: u32,
    /// When each of its last processes started (Unix nanoseconds, oldest first, at most
    /// [`START_HISTORY`]): the restart back-off, visible.
    pub starts: Vec<u128>,
    /// Published ports.
    pub publishers: Vec<Publisher>,
    /// The last health probe's output.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub health_output: String,
}

/// How many start times a container's entry keeps.
pub const START_HISTORY: usize = 10;

impl Status {
    /// A container's entry.
    pub fn get(&self, name: &str) -> Option<ContainerStatus> {
        self.containers.lock().ok()?.get(name).cloned()
    }
}

/// A published port in compose's JSON form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Publisher {
    /// Host address.
    #[serde(rename = "URL")]
    pub url: String,
    /// Container port.
    pub target_port: u16,
    /// Host port.
    pub published_port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
}

/// Where a service stands, for the services that depend on it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceState {
    /// All its containers started.
    pub started: bool,
    /// It has a health check and all its containers are healthy.
    pub healthy: bool,
    /// A container of it exited for good, with this code.
    pub completed: Option<i32>,
    /// Why it cannot satisfy a condition any more (failed to start, unhealthy).
    pub failed: Option<String>,
}

/// The supervisor's tables.
#[derive(Debug)]
pub struct Status {
    containers: Mutex<BTreeMap<String, ContainerStatus>>,
    services: Mutex<BTreeMap<String, watch::Sender<ServiceState>>>,
    /// Where the changes are recorded as container events, once the supervisor says.
    events: OnceLock<EventLog>,
    /// The state root whose container records get each change of state, exit code, health
    /// and restart count, once the supervisor says.
    records: OnceLock<std::path::PathBuf>,
}

impl Status {
    /// Tables for `services`.
    pub fn new<'a>(services: impl IntoIterator<Item = &'a String>) -> Status {
        Status {
            containers: Mutex::new(BTreeMap::new()),
            services: Mutex::new(
                services.into_iter().map(|s| (s.clone(), watch::channel(ServiceState::default()).0)).collect(),
            ),
            events: OnceLock::new(),
            records: OnceLock::new(),
        }
    }

    /// Writes every change of a container's state, exit code, health and restart count into
    /// its record under `state_root` (durably, as every record is written), so `ps -a` tells
    /// the truth after the supervisor is killed.
    pub fn record_to(&self, state_root: &std::path::Path) {
        let _ = self.records.set(state_root.to_path_buf());
    }

    /// Brings `entry`'s record on disk up to date (nothing is written when nothing changed).
    fn persist(&self, entry: &ContainerStatus) {
        let Some(root) = self.records.get() else { return };
        let dirs = crate::runtime::state::ContainerDirs::new(root, &entry.id);
        let recorded = crate::runtime::state::ContainerRecord::modify(&dirs, |record| {
            record.health.clone_from(&entry.health);
            record.restarts = entry.restarts;
            // Restarting or exited: this run is over, whatever comes next.
            if entry.state != "running" {
                record.exited = true;
                record.exit_code = entry.exit_code;
                if entry.finished_at > 0 {
                    record.finished_at = entry.finished_at;
                }
            }
        });
        if let Err(e) = recorded {
            eprintln!("berth: record {}: {e}", entry.name);
        }
    }

    /// Records every change from now on as container events in `project_dir`'s events file
    /// (see [`super::events`]).
    pub fn record_events(&self, project_dir: &std::path::Path) {
        let _ = self.events.set(EventLog::new(project_dir));
    }

    /// Changes a container's entry (made if missing). A container that stops running `die`s;
    /// one whose health turns healthy or unhealthy gets a `health_status` event.
    pub fn update(&self, name: &str, change: impl FnOnce(&mut ContainerStatus)) {
        if let Ok(mut table) = self.containers.lock()
            && let Some(entry) = table.get_mut(name)
        {
            let before = (entry.state.clone(), entry.health.clone());
            change(entry);
            if before.0 == "running" && entry.state != "running" {
                let seconds = now_nanos().saturating_sub(entry.started_at) / 1_000_000_000;
                let code = entry.exit_code.to_string();
                self.record(entry, "die", &[("exitCode", code), ("execDuration", seconds.to_string())]);
            }
            if before.1 != entry.health && matches!(entry.health.as_str(), "healthy" | "unhealthy") {
                self.record(entry, &format!("health_status: {}", entry.health), &[]);
            }
            self.persist(entry);
        }
    }

    /// Adds or replaces a container's entry: a new container (a restart makes one too) is
    /// `create`d and `start`ed, and the one it replaces `destroy`ed.
    pub fn put(&self, status: ContainerStatus) {
        if let Ok(mut table) = self.containers.lock() {
            if let Some(previous) = table.get(&status.name)
                && previous.id != status.id
            {
                self.record(previous, "destroy", &[]);
            }
            if table.get(&status.name).is_none_or(|p| p.id != status.id) {
                self.record(&status, "create", &[]);
            }
            self.record(&status, "start", &[]);
            self.persist(&status);
            table.insert(status.name.clone(), status);
        }
    }

    /// Takes in a container found on disk (a stopped one a new supervisor adopts): no event,
    /// since nothing happened to it.
    pub fn adopt(&self, status: ContainerStatus) {
        if let Ok(mut table) = self.containers.lock() {
            table.insert(status.name.clone(), status);
        }
    }

    /// Records an event of container `name` that its entry does not show (`kill`, `stop`).
    pub fn event(&self, name: &str, action: &str, attributes: &[(&str, String)]) {
        if let Ok(table) = self.containers.lock()
            && let Some(entry) = table.get(name)
        {
            self.record(entry, action, attributes);
        }
    }

    /// `restart` events for the containers of `services` (all when empty).
    pub fn restarted(&self, services: &[String]) {
        if let Ok(table) = self.containers.lock() {
            for entry in table.values().filter(|c| services.is_empty() || services.contains(&c.service)) {
                self.record(entry, "restart", &[]);
            }
        }
    }

    /// `destroy` events for every container, when the project goes down.
    pub fn destroyed_all(&self) {
        if let Ok(table) = self.containers.lock() {
            for entry in table.values() {
                self.record(entry, "destroy", &[]);
            }
        }
    }

    fn record(&self, container: &ContainerStatus, action: &str, attributes: &[(&str, String)]) {
        let Some(log) = self.events.get() else { return };
        let mut all: BTreeMap<String, String> = attributes.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        all.insert("image".into(), container.image.clone());
        all.insert("name".into(), container.name.clone());
        log.append(&Event {
            time: now_nanos(),
            action: action.to_owned(),
            id: container.id.clone(),
            service: container.service.clone(),
            attributes: all,
        });
    }

    /// Every container, by name.
    pub fn containers(&self) -> Vec<ContainerStatus> {
        self.containers.lock().map(|t| t.values().cloned().collect()).unwrap_or_default()
    }

    /// A service's state, to watch.
    pub fn watch(&self, service: &str) -> Option<watch::Receiver<ServiceState>> {
        self.services.lock().ok()?.get(service).map(watch::Sender::subscribe)
    }

    /// Changes a service's state.
    pub fn service(&self, service: &str, change: impl FnOnce(&mut ServiceState)) {
        if let Ok(services) = self.services.lock()
            && let Some(sender) = services.get(service)
        {
            sender.send_modify(change);
        }
    }

    /// Starts `service` afresh: a new service (an `up` on the running project added it), or
    /// one about to be recreated, whose dependents must wait for it again.
    pub fn reset_service(&self, service: &str) {
        if let Ok(mut services) = self.services.lock() {
            match services.get(service) {
                Some(sender) => {
                    sender.send_replace(ServiceState::default());
                }
                None => {
                    services.insert(service.to_owned(), watch::channel(ServiceState::default()).0);
                }
            }
        }
    }

    /// Forgets a container (removed for good: scaled down, recreated, an orphan).
    pub fn forget(&self, name: &str) {
        if let Ok(mut table) = self.containers.lock()
            && let Some(entry) = table.remove(name)
        {
            self.record(&entry, "destroy", &[]);
        }
    }

    /// Recomputes whether all of `service`'s containers are healthy.
    pub fn refresh_health(&self, service: &str) {
        let containers = self.containers();
        let mine: Vec<_> = containers.iter().filter(|c| c.service == service).collect();
        let healthy = !mine.is_empty() && mine.iter().all(|c| c.health == health_text(Some(Health::Healthy)));
        let unhealthy = mine.iter().find(|c| c.health == health_text(Some(Health::Unhealthy)));
        let failure = unhealthy.map(|c| format!("container {} is unhealthy: {}", c.name, c.health_output.trim()));
        self.service(service, |s| {
            s.healthy = healthy;
            if let Some(failure) = failure {
                s.failed.get_or_insert(failure);
            }
        });
    }
}

/// docker's text for a health state.
pub fn health_text(health: Option<Health>) -> String {
    match health {
        Some(Health::Starting) => "starting",
        Some(Health::Healthy) => "healthy",
        Some(Health::Unhealthy) => "unhealthy",
        None => "",
    }
    .to_owned()
}

/// Unix time in nanoseconds.
pub fn now_nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}
