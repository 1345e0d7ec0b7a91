//! What every part of a project's supervisor reads: the project, its images and networks, the
//! spawner, and the name table the DNS server answers from.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use super::names::NameTable;
use crate::image::{ImageRecord, Store};
use crate::network::firewall::{self, Backend};
use crate::network::setup::NetworkError;
use crate::network::store::NetworkRecord;
use crate::runtime::spawner::Spawner;
use crate::spec::Project;

/// The supervisor's shared state.
#[derive(Debug)]
pub struct Shared {
    /// The state root.
    pub root: PathBuf,
    /// `<root>/projects/<project>`: the control socket, the supervisor's record, logs.
    pub project_dir: PathBuf,
    /// The project.
    pub project: Project,
    /// Makes container processes (forked while the supervisor had one thread).
    pub spawner: Spawner,
    /// The image store.
    pub store: Store,
    /// Each service's image.
    pub images: BTreeMap<String, ImageRecord>,
    /// The project's networks by key.
    pub networks: BTreeMap<String, NetworkRecord>,
    /// The names the DNS server answers.
    pub names: Arc<NameTable>,
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
    /// The tasks watching containers, with their service, awaited by `down`.
    pub watchers: std::sync::Mutex<Vec<(String, tokio::task::JoinHandle<()>)>>,
    /// Containers `kill` ended with a fatal signal: their restart policy is off until they are
    /// started again, as in docker.
    pub killed: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// Per service: `down`'s order to stop, with the time its containers get before SIGKILL.
    pub stops: BTreeMap<String, tokio::sync::watch::Sender<Option<std::time::Duration>>>,
    firewall: OnceLock<Backend>,
}

impl Shared {
    /// Shared state for `project`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        root: PathBuf,
        project: Project,
        spawner: Spawner,
        store: Store,
        images: BTreeMap<String, ImageRecord>,
        networks: BTreeMap<String, NetworkRecord>,
    ) -> Shared {
        let project_dir = super::project_dir(&root, &project.name);
        let project_names = project.services.values().flat_map(|s| {
            let aliases = s.networks.values().flatten().flat_map(|n| n.aliases.iter().cloned());
            let containers = (1..=u32::try_from(s.replicas()).unwrap_or(1))
                .map(|i| crate::plan::container_name(&project, s, i))
                .collect::<Vec<_>>();
            std::iter::once(s.name.clone()).chain(containers).chain(aliases)
        });
        let host_resolv_conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let subnets = networks.values().map(|n| (n.addressing.subnet, n.name.clone())).collect();
        let host_upstreams = crate::network::setup::upstreams(&crate::spec::Service::default(), &host_resolv_conf);
        let names = Arc::new(NameTable::new(project_names.collect::<Vec<_>>(), subnets, host_upstreams));
        let status = super::status::Status::new(project.services.keys());
        status.record_events(&project_dir);
        let stops = project.services.keys().map(|s| (s.clone(), tokio::sync::watch::channel(None).0)).collect();
        Shared {
            root,
            project_dir,
            project,
            spawner,
            store,
            images,
            networks,
            names,
            host_resolv_conf,
            host_hosts: std::fs::read_to_string("/etc/hosts").unwrap_or_default(),
            host_hostname: std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default(),
            default_host_ip: super::launch::default_host_ip(),
            status,
            watchers: std::sync::Mutex::new(Vec::new()),
            killed: std::sync::Mutex::new(std::collections::BTreeSet::new()),
            stops,
            firewall: OnceLock::new(),
        }
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
