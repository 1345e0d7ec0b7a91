//! What every part of a project's supervisor reads: the desired project (its images and
//! networks), the spawner, the containers' watchers and stop orders, and the name table the DNS
//! server answers from.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use ipnet::Ipv4Net;
use tokio::sync::watch;

use super::desired::Desired;
use super::names::NameTable;
use crate::image::Store;
use crate::network::dns::{DnsServer, Listener};
use crate::network::firewall::{self, Backend};
use crate::network::setup::NetworkError;
use crate::runtime::spawner::Spawner;
use crate::spec::Project;

/// A task watching one container (see `supervise`), awaited when its service stops.
#[derive(Debug)]
pub struct Watcher {
    /// The container's service.
    pub service: String,
    /// The replica number.
    pub index: u32,
    /// The task.
    pub task: tokio::task::JoinHandle<()>,
}

/// An order to stop a container: the time its process gets before SIGKILL.
pub type StopOrder = Option<Duration>;

/// The supervisor's shared state.
#[derive(Debug)]
pub struct Shared {
    /// The state root.
    pub root: PathBuf,
    /// `<root>/projects/<project>`: the control socket, the supervisor's record, logs.
    pub project_dir: PathBuf,
    /// The project's name.
    pub name: String,
    desired: RwLock<Arc<Desired>>,
    /// Makes container processes (forked while the supervisor had one thread).
    pub spawner: Spawner,
    /// The image store.
    pub store: Store,
    /// The names the DNS server answers.
    pub names: Arc<NameTable>,
    /// The DNS server of the project's networks.
    pub dns: DnsServer,
    /// Where it listens: one per network the project made.
    pub dns_listeners: Mutex<BTreeMap<String, Listener>>,
    /// The host's /etc/resolv.conf.
    pub host_resolv_conf: String,
    /// The host's /etc/hosts.
    pub host_hosts: String,
    /// The host's name.
    pub host_hostname: String,
    /// Default host address of published ports.
    pub default_host_ip: Option<Ipv4Addr>,
    /// Containers and services as they stand.
    pub status: super::status::Status,
    /// The tasks watching containers.
    pub watchers: Mutex<Vec<Watcher>>,
    /// Containers `kill` ended with a fatal signal: their restart policy is off until they are
    /// started again, as in docker.
    pub killed: Mutex<BTreeSet<String>>,
    /// Taken by each order that changes containers (up, stop, start, restart), so they take
    /// turns.
    pub orders: tokio::sync::Mutex<()>,
    /// `develop.watch`, while it runs.
    pub watching: Mutex<Option<super::watching::Watching>>,
    /// The last `up`'s request: what a watched stack file is reloaded with.
    pub last_up: Mutex<Option<super::converge::UpRequest>>,
    /// Stopped containers kept with their files, by name: what `start` runs again and `rm`
    /// removes.
    pub kept: Mutex<BTreeMap<String, crate::runtime::spec::ContainerSpec>>,
    /// Per container (service, replica): the order to stop.
    stops: Mutex<BTreeMap<(String, u32), watch::Sender<StopOrder>>>,
    firewall: OnceLock<Backend>,
}

impl Shared {
    /// Shared state for `desired`.
    pub fn new(root: PathBuf, desired: Desired, spawner: Spawner, store: Store) -> Shared {
        let project = &desired.project;
        let project_dir = super::project_dir(&root, &project.name);
        let host_resolv_conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let host_upstreams = crate::network::setup::upstreams(&crate::spec::Service::default(), &host_resolv_conf);
        let names = Arc::new(NameTable::new(project_names(project), subnets(&desired), host_upstreams));
        let status = super::status::Status::new(project.services.keys());
        status.record_events(&project_dir);
        status.record_to(&root);
        Shared {
            root,
            project_dir,
            name: project.name.clone(),
            dns: DnsServer::new(Arc::clone(&names) as Arc<dyn crate::network::dns::Records>),
            names,
            desired: RwLock::new(Arc::new(desired)),
            spawner,
            store,
            dns_listeners: Mutex::new(BTreeMap::new()),
            host_resolv_conf,
            host_hosts: std::fs::read_to_string("/etc/hosts").unwrap_or_default(),
            host_hostname: std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default(),
            default_host_ip: super::launch::default_host_ip(),
            status,
            watchers: Mutex::new(Vec::new()),
            killed: Mutex::new(BTreeSet::new()),
            orders: tokio::sync::Mutex::new(()),
            watching: Mutex::new(None),
            last_up: Mutex::new(None),
            kept: Mutex::new(BTreeMap::new()),
            stops: Mutex::new(BTreeMap::new()),
            firewall: OnceLock::new(),
        }
    }

    /// The project as it should run now.
    pub fn desired(&self) -> Arc<Desired> {
        self.desired.read().map_or_else(|e| Arc::clone(&e.into_inner()), |d| Arc::clone(&d))
    }

    /// Makes `desired` the project to run (containers already running are not touched), and
    /// teaches the name table its new names and networks.
    pub fn replace_desired(&self, desired: Desired) {
        self.names.learn(project_names(&desired.project), subnets(&desired));
        for service in desired.project.services.keys() {
            if self.status.watch(service).is_none() {
                self.status.reset_service(service);
            }
        }
        match self.desired.write() {
            Ok(mut current) => *current = Arc::new(desired),
            Err(e) => *e.into_inner() = Arc::new(desired),
        }
    }

    /// The order to stop replica `index` of `service`, to watch; a fresh container starts
    /// with no order.
    pub fn stop_receiver(&self, service: &str, index: u32) -> Option<watch::Receiver<StopOrder>> {
        let mut stops = self.stops.lock().ok()?;
        let sender = stops.entry((service.to_owned(), index)).or_insert_with(|| watch::channel(None).0);
        sender.send_replace(None);
        Some(sender.subscribe())
    }

    /// Orders `service`'s containers (only replica `index`, when given) to stop.
    pub fn order_stop(&self, service: &str, index: Option<u32>, grace: Duration) {
        if let Ok(stops) = self.stops.lock() {
            for ((s, i), sender) in stops.iter() {
                if s == service && index.is_none_or(|index| index == *i) {
                    sender.send_replace(Some(grace));
                }
            }
        }
    }

    /// Takes the watchers of the containers `wanted` picks out of the table.
    pub fn take_watchers(&self, wanted: impl Fn(&Watcher) -> bool) -> Vec<Watcher> {
        let Ok(mut all) = self.watchers.lock() else { return Vec::new() };
        let (these, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut *all).into_iter().partition(|w| wanted(w));
        *all = rest;
        these
    }

    /// The replicas of `service` being watched (running, or waiting to restart).
    pub fn watched(&self, service: &str) -> BTreeSet<u32> {
        self.watchers
            .lock()
            .map(|all| all.iter().filter(|w| w.service == service && !w.task.is_finished()).map(|w| w.index).collect())
            .unwrap_or_default()
    }

    /// Takes the kept (stopped) container called `name`, if there is one.
    pub fn take_kept(&self, name: &str) -> Option<crate::runtime::spec::ContainerSpec> {
        self.kept.lock().ok()?.remove(name)
    }

    /// Keeps a stopped container.
    pub fn keep(&self, spec: crate::runtime::spec::ContainerSpec) {
        if let Ok(mut kept) = self.kept.lock() {
            kept.insert(spec.name.clone(), spec);
        }
    }

    /// Removes the kept containers `wanted` picks (their files, addresses and, with `volumes`,
    /// anonymous volumes) and forgets them; returns their names.
    pub fn remove_kept(
        &self,
        wanted: impl Fn(&crate::runtime::spec::ContainerSpec) -> bool,
        volumes: bool,
    ) -> Vec<String> {
        let removed: Vec<crate::runtime::spec::ContainerSpec> = match self.kept.lock() {
            Ok(mut kept) => {
                let names: Vec<String> = kept.values().filter(|s| wanted(s)).map(|s| s.name.clone()).collect();
                names.iter().filter_map(|n| kept.remove(n)).collect()
            }
            Err(_) => Vec::new(),
        };
        for spec in &removed {
            super::recover::remove_container(&self.root, spec, volumes);
            self.status.forget(&spec.name);
        }
        removed.into_iter().map(|s| s.name).collect()
    }

    /// The host's packet filter, found once.
    pub fn firewall(&self) -> Result<Backend, NetworkError> {
        if let Some(backend) = self.firewall.get() {
            return Ok(*backend);
        }
        let backend = firewall::detect()?;
        Ok(*self.firewall.get_or_init(|| backend))
    }
}

/// The names of the project whether or not a container has them now: services, container
/// names, aliases.
fn project_names(project: &Project) -> Vec<String> {
    project
        .services
        .values()
        .flat_map(|s| {
            let aliases = s.networks.values().flatten().flat_map(|n| n.aliases.iter().cloned());
            let containers = (1..=u32::try_from(s.replicas()).unwrap_or(1))
                .map(|i| crate::plan::container_name(project, s, i))
                .collect::<Vec<_>>();
            std::iter::once(s.name.clone()).chain(containers).chain(aliases).collect::<Vec<_>>()
        })
        .collect()
}

fn subnets(desired: &Desired) -> Vec<(Ipv4Net, String)> {
    desired.networks.values().map(|n| (n.addressing.subnet, n.name.clone())).collect()
}
