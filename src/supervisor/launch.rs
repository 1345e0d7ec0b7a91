//! One container of a service, from plan to running and back to nothing: planned, placed on
//! its networks, started, its ports published and its names served; and the reverse.

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use super::SupervisorError;
use super::health::HealthPlan;
use super::names::NameEntry;
use super::shared::Shared;
use super::status::{ContainerStatus, Publisher, health_text, now_nanos};
use crate::launch::{self, LaunchError, Networks, PlanContext, RunOverrides};
use crate::network::ports::{self, Published};
use crate::network::{firewall, setup};
use crate::runtime::container::{Container, Created, StartOptions};
use crate::runtime::spec::ContainerSpec;

/// A container the supervisor runs.
#[derive(Debug)]
pub struct Running {
    /// The container.
    pub container: Container,
    /// Replica number.
    pub index: u32,
    /// Its published ports, held.
    pub ports: Vec<Published>,
    /// What `down` sends first (`stop_signal`, default SIGTERM).
    pub stop_signal: nix::sys::signal::Signal,
    /// Its health check, if it has one.
    pub health: Option<HealthPlan>,
}

/// Where a container's output goes: `<project dir>/logs/<name>.log`.
pub fn log_path(shared: &Shared, name: &str) -> PathBuf {
    shared.project_dir.join("logs").join(format!("{name}.log"))
}

/// Where a container [`start`] runs comes from.
#[derive(Debug)]
pub enum Origin {
    /// A new container, planned now.
    New,
    /// A kept container, run again with its own spec and files, as docker starts a stopped
    /// container (or restarts one by policy).
    Kept(ContainerSpec),
    /// A new container replacing a kept one (its config changed, or `--force-recreate`): it
    /// takes over the old one's anonymous volumes unless `renew_anon_volumes`, then the old
    /// one is removed.
    Replace {
        /// The old container.
        old: ContainerSpec,
        /// `-V`: fresh anonymous volumes.
        renew_anon_volumes: bool,
    },
}

/// Plans and starts replica `index` of `service`, its `restarts`th restart, from `origin`.
pub fn start(
    shared: &Shared,
    service_name: &str,
    index: u32,
    restarts: u32,
    origin: Origin,
) -> Result<Running, SupervisorError> {
    let kept = match origin {
        Origin::New => None,
        Origin::Kept(spec) => Some(spec),
        Origin::Replace { old, renew_anon_volumes } => {
            let desired = shared.desired();
            let (Some(service), Some(image)) =
                (desired.project.services.get(service_name), desired.images.get(service_name))
            else {
                shared.keep(old);
                return Err(SupervisorError::Other(format!("no such service: {service_name}")));
            };
            let mut spec = match plan_container(shared, &desired, service, image, index) {
                Ok(spec) => spec,
                Err(e) => {
                    shared.keep(old);
                    return Err(e);
                }
            };
            if !renew_anon_volumes {
                crate::plan::mounts::take_over_anonymous(&mut spec, &old);
            }
            // compose removes the old container once the new one exists; its anonymous volumes
            // stay (taken over, or left for `volume prune` after `-V`, as in compose).
            super::recover::remove_container(&shared.root, &old, false);
            Some(spec)
        }
    };
    // A kept container that fails to start stays kept, its files untouched by the runtime.
    let again =
        kept.clone().filter(|spec| crate::runtime::state::ContainerDirs::new(&shared.root, &spec.id).ran_before());
    let started =
        create(shared, service_name, index, restarts, kept).and_then(|pending| run(shared, pending, restarts));
    if let (Err(_), Some(spec)) = (&started, again) {
        keep_stopped(shared, spec, 128);
    }
    started
}

/// A container made and waiting to exec (see [`create`]).
#[derive(Debug)]
pub struct Pending {
    created: Created,
    index: u32,
}

/// What [`start`] does up to the container's exec: its process waits, root, cgroup, network
/// and log capture ready, for [`run`] (or [`abandon`]).
pub fn create(
    shared: &Shared,
    service_name: &str,
    index: u32,
    restarts: u32,
    kept: Option<ContainerSpec>,
) -> Result<Pending, SupervisorError> {
    let desired = shared.desired();
    let project = &desired.project;
    let service = project
        .services
        .get(service_name)
        .ok_or_else(|| SupervisorError::Other(format!("no such service: {service_name}")))?;
    let image = desired
        .images
        .get(service_name)
        .ok_or_else(|| SupervisorError::Other(format!("service {service_name:?}: no image")))?;
    let spec = match kept {
        Some(spec) => spec,
        None => plan_container(shared, &desired, service, image, index)?,
    };
    let (policy, warning) = super::logs::LogPolicy::of(service.other.get("logging"));
    if let Some(warning) = warning.filter(|_| restarts == 0) {
        eprintln!("berth: {service_name}: {warning}");
    }
    let log = super::logs::LogFile::open(&log_path(shared, &spec.name), policy).map_err(|e| {
        launch::release(&shared.root, &spec);
        SupervisorError::Io { path: log_path(shared, &spec.name), source: e }
    })?;
    let pipe = || {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| SupervisorError::Io { path: "pipe".into(), source: e.into() })
    };
    let (out_read, out_write) = pipe()?;
    let (err_read, err_write) = pipe()?;
    let null =
        std::fs::File::open("/dev/null").map_err(|e| SupervisorError::Io { path: "/dev/null".into(), source: e })?;
    let options = StartOptions {
        stdio: Some([null.as_raw_fd(), out_write.as_raw_fd(), err_write.as_raw_fd()]),
        die_with_parent: false,
        oneoff: false,
    };
    let created = launch::create(&shared.spawner, &shared.root, spec, options).map_err(launch_error)?;
    // Only the container holds the write ends now: the readers end when it does.
    drop((out_write, err_write));
    super::logs::capture(out_read, "stdout", std::sync::Arc::clone(&log));
    super::logs::capture(err_read, "stderr", log);
    Ok(Pending { created, index })
}

/// Ends a container [`create`] made without letting it exec (its restart was called off): it
/// is kept, stopped, with its files.
pub fn abandon(shared: &Shared, pending: Pending, code: i32) {
    let spec = pending.created.spec().clone();
    match pending.created.retire() {
        Ok(spec) => keep_stopped(shared, spec, code),
        Err(e) => {
            eprintln!("berth: stop {}: {e}", spec.name);
            discard(shared, &spec);
        }
    }
}

/// Records a container whose run ended as stopped, with its exit code, on disk (so `ps -a`
/// tells it without the supervisor) and in the supervisor's table of kept containers.
pub fn keep_stopped(shared: &Shared, spec: ContainerSpec, code: i32) {
    let dirs = crate::runtime::state::ContainerDirs::new(&shared.root, &spec.id);
    if let Err(e) = crate::runtime::state::ContainerRecord::mark_exited(&dirs, code) {
        eprintln!("berth: record {}: {e}", spec.name);
    }
    shared.keep(spec);
}

/// Lets a [`create`]d container exec, publishes its ports and serves its names: the rest of
/// [`start`].
pub fn run(shared: &Shared, pending: Pending, restarts: u32) -> Result<Running, SupervisorError> {
    let Pending { created, index } = pending;
    let desired = shared.desired();
    let (Some(service), Some(image)) =
        (desired.project.services.get(&created.spec().service), desired.images.get(&created.spec().service))
    else {
        let released = created.spec().clone();
        let _ = created.destroy();
        launch::release(&shared.root, &released);
        return Err(SupervisorError::Other(format!("no such service: {}", released.service)));
    };
    let container = launch::run(&shared.root, created).map_err(launch_error)?;
    let stop_signal = service
        .stop_signal
        .as_deref()
        .and_then(|name| {
            let name = name.to_ascii_uppercase();
            let full = if name.starts_with("SIG") { name } else { format!("SIG{name}") };
            full.parse().ok()
        })
        .unwrap_or(nix::sys::signal::Signal::SIGTERM);
    let health = super::health::plan(service.healthcheck.as_ref(), image.config.config.healthcheck.as_ref());
    let mut running = Running { container, index, ports: Vec::new(), stop_signal, health };
    // A watched service's sync paths, brought up to date in the fresh container.
    super::watching::resync(shared, &running.container.spec, running.container.pid);
    if let Err(e) = publish(shared, service, &mut running) {
        // docker keeps a container that could not start, as created: `ps -a` shows it.
        stop_and_keep(shared, running, 128);
        return Err(e);
    }
    let upstreams = setup::upstreams(service, &shared.host_resolv_conf);
    let spec = &running.container.spec;
    // A restart keeps the entry's creation time and start history, as docker keeps its
    // container's.
    let previous = shared.status.get(&spec.name).filter(|p| restarts > 0 || p.id == spec.id);
    let now = now_nanos();
    let mut starts = previous.as_ref().map(|p| p.starts.clone()).unwrap_or_default();
    starts.push(now);
    if starts.len() > super::status::START_HISTORY {
        starts.remove(0);
    }
    shared.status.put(ContainerStatus {
        id: spec.id.clone(),
        name: spec.name.clone(),
        image: service.image_name(&spec.project).unwrap_or_default(),
        command: shell_words::join(&spec.process.args),
        project: spec.project.clone(),
        service: spec.service.clone(),
        created: previous.as_ref().map_or_else(crate::runtime::state::now, |p| p.created),
        state: "running".into(),
        health: health_text(running.health.as_ref().map(|_| super::health::Health::Starting)),
        exit_code: 0,
        started_at: now,
        finished_at: 0,
        restarts: if restarts > 0 { restarts } else { previous.as_ref().map_or(0, |p| p.restarts) },
        starts,
        publishers: running
            .ports
            .iter()
            .map(|p| Publisher {
                url: p.host_ip.map_or_else(|| "0.0.0.0".to_owned(), |ip| ip.to_string()),
                target_port: p.container_port,
                published_port: p.host_port,
                protocol: p.protocol.name().to_owned(),
            })
            .collect(),
        health_output: String::new(),
    });
    shared.names.add(
        spec.endpoints
            .iter()
            .map(|e| NameEntry {
                container: spec.id.clone(),
                address: e.address.addr(),
                network: e.network.clone(),
                names: e.names.iter().map(|n| n.to_lowercase()).collect(),
                upstreams: upstreams.clone(),
            })
            .collect(),
    );
    Ok(running)
}

/// A new container of `service`: planned, placed on its networks.
fn plan_container(
    shared: &Shared,
    desired: &super::desired::Desired,
    service: &crate::spec::Service,
    image: &crate::image::ImageRecord,
    index: u32,
) -> Result<ContainerSpec, SupervisorError> {
    let project = &desired.project;
    let layer_links = image
        .layers
        .iter()
        .map(|l| {
            shared
                .store
                .layer_link(&l.diff_id)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    let ctx = PlanContext {
        project,
        state_root: &shared.root,
        image,
        layer_root: shared.store.dir().join("l"),
        layer_links,
        host_resolv_conf: &shared.host_resolv_conf,
        host_hosts: &shared.host_hosts,
        host_hostname: &shared.host_hostname,
    };
    let overrides = RunOverrides { index, ..RunOverrides::default() };
    let request = launch::Plan { ctx, service, overrides, networks: Networks::Replica(&desired.networks) };
    launch::plan(&shared.root, &request, |spec| {
        spec.config_hash = desired.hashes.get(&service.name).cloned().unwrap_or_default();
    })
    .map_err(launch_error)
}

/// The supervisor's errors as they were before launching moved out: a bad plan is `Other`.
fn launch_error(e: LaunchError) -> SupervisorError {
    match e {
        LaunchError::Plan(e) => SupervisorError::Other(e.to_string()),
        LaunchError::Network(e) => e.into(),
        LaunchError::Runtime(e) => SupervisorError::Runtime(e),
    }
}

/// Ends a container's run for a restart: its names and ports are withdrawn, its process and
/// cgroup gone, its files and addresses kept for [`start`] with the returned spec.
pub fn retire(shared: &Shared, running: Running) -> Option<ContainerSpec> {
    let spec = running.container.spec.clone();
    withdraw(shared, &spec);
    drop(running.ports);
    match running.container.retire() {
        Ok(spec) => Some(spec),
        Err(e) => {
            eprintln!("berth: retire {}: {e}", spec.name);
            discard(shared, &spec);
            None
        }
    }
}

/// Removes a retired container's files and releases its addresses: its restart was
/// called off.
pub fn discard(shared: &Shared, spec: &ContainerSpec) {
    let _ = crate::runtime::state::ContainerDirs::new(&shared.root, &spec.id).remove();
    let _ = setup::release(&shared.root, spec);
}

/// Takes a container's names off the DNS table and its ports out of the firewall.
fn withdraw(shared: &Shared, spec: &ContainerSpec) {
    shared.names.remove(&spec.id);
    if let Ok(firewall) = shared.firewall() {
        let _ = firewall.remove_container(&spec.project, &spec.name);
    }
}

fn publish(shared: &Shared, service: &crate::spec::Service, running: &mut Running) -> Result<(), SupervisorError> {
    if service.ports.is_empty() {
        return Ok(());
    }
    let spec = &running.container.spec;
    let Some(endpoint) = spec.endpoints.first() else { return Ok(()) };
    let default_host_ip = shared
        .desired()
        .networks
        .values()
        .find(|n| n.name == endpoint.network)
        .and_then(|n| n.host_binding)
        .or(shared.default_host_ip);
    running.ports = ports::publish(&service.ports, default_host_ip)
        .map_err(|e| SupervisorError::Other(format!("service {:?}: ports: {e}", service.name)))?;
    let rules = firewall::PortRule::for_published(&spec.project, &spec.name, &running.ports, endpoint.address.addr());
    shared.firewall()?.add_ports(&rules).map_err(setup::NetworkError::from)?;
    Ok(())
}

/// Ends a container's run and keeps it, stopped: whatever still runs is killed, its names,
/// port rules and cgroup go (no kernel object is left: its namespaces and veths went with its
/// processes), and its files and addresses stay for `start`, until `rm` or `down`.
pub fn stop_and_keep(shared: &Shared, running: Running, code: i32) {
    let spec = running.container.spec.clone();
    if running.ports.is_empty() {
        shared.names.remove(&spec.id);
    } else {
        withdraw(shared, &spec);
    }
    drop(running.ports);
    match running.container.retire() {
        Ok(spec) => keep_stopped(shared, spec, code),
        Err(e) => {
            eprintln!("berth: stop {}: {e}", spec.name);
            discard(shared, &spec);
        }
    }
}

/// The host address published ports bind to when neither the port nor its network names one:
/// `BERTH_HOST_IP`, else all addresses, as in compose.
pub fn default_host_ip() -> Option<Ipv4Addr> {
    std::env::var("BERTH_HOST_IP").ok().and_then(|v| v.parse().ok())
}
