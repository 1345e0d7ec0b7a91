//! The normalised project: one typed form per compose key.
//!
//! Field names and shapes follow the canonical form `docker compose config --format json`
//! prints (services is a map, `depends_on` is a map of service → {condition, required,
//! restart}, ports and volumes in long form), so `berth config` output can be diffed with
//! compose's. Keys berth reads but does not model are kept in `other`, in compose's canonical
//! form, so nothing is silently dropped from `config` output.
//!
//! The Rust types say what a value means (`mem_limit` is a byte count); the serialisers print
//! it as compose does (`"536870912"`). Compose's Go structs leave out empty strings and false
//! booleans (`omitempty`), and so does berth.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::Value as Json;

use super::ports::PortMapping;
use super::units::format_duration;
use super::volumes::{Mount, MountType};
pub use crate::graph::Condition;

/// A duration that prints as compose prints it (`1m30s`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(pub std::time::Duration);

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(self.0))
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Go's `omitempty` on a string: an empty value is not printed.
fn blank(s: &Option<String>) -> bool {
    s.as_deref().is_none_or(str::is_empty)
}

/// Byte counts print as decimal strings (compose's `UnitBytes`).
fn bytes_as_string<S: Serializer>(bytes: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match bytes {
        Some(b) => s.collect_str(b),
        None => s.serialize_none(),
    }
}

/// File modes print as octal strings such as `"0440"` (compose's `FileMode`).
fn mode_as_octal<S: Serializer>(mode: &Option<u32>, s: S) -> Result<S::Ok, S::Error> {
    match mode {
        Some(m) => s.collect_str(&format_args!("0{m:o}")),
        None => s.serialize_none(),
    }
}

/// `extra_hosts` prints as a sorted list of `host=address`.
fn hosts_as_list<S: Serializer>(hosts: &BTreeMap<String, Vec<String>>, s: S) -> Result<S::Ok, S::Error> {
    let mut list: Vec<String> =
        hosts.iter().flat_map(|(host, ips)| ips.iter().map(move |ip| format!("{host}={ip}"))).collect();
    list.sort();
    s.collect_seq(list)
}

/// A hook with no command prints as `{"command": null}` (compose's `ServiceHook`).
fn hook_or_null<S: Serializer>(hook: &Option<Json>, s: S) -> Result<S::Ok, S::Error> {
    match hook {
        Some(h) => h.serialize(s),
        None => {
            let mut map = s.serialize_map(Some(1))?;
            map.serialize_entry("command", &())?;
            map.end()
        }
    }
}

/// A section compose always prints, as `{}` when it was not written.
fn empty_if_none<T: Serialize, S: Serializer>(value: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => v.serialize(s),
        None => s.serialize_map(Some(0))?.end(),
    }
}

/// A whole project, ready to be planned.
///
/// It serialises as `docker compose config` prints a project: networks, volumes, secrets and
/// configs no enabled service uses are left out, and the dependencies that links,
/// `volumes_from` and `service:` namespaces imply are listed under `depends_on`.
#[derive(Clone, Debug, Default)]
pub struct Project {
    /// The project name, normalised.
    pub name: String,
    /// Enabled services by name.
    pub services: BTreeMap<String, Service>,
    /// Networks by key.
    pub networks: BTreeMap<String, Network>,
    /// Volumes by key.
    pub volumes: BTreeMap<String, Volume>,
    /// Secrets by key.
    pub secrets: BTreeMap<String, FileObject>,
    /// Configs by key.
    pub configs: BTreeMap<String, FileObject>,
    /// Top-level `x-` keys and other keys kept verbatim.
    pub other: BTreeMap<String, Json>,
    /// The project directory: relative paths were resolved against it.
    pub working_dir: PathBuf,
    /// The stack files, in load order.
    pub compose_files: Vec<PathBuf>,
    /// The variables interpolation used (OS environment over `.env`).
    pub environment: BTreeMap<String, String>,
    /// Services left out because none of their profiles is enabled.
    pub disabled_services: BTreeMap<String, Service>,
}

/// What [`Project`] prints.
#[derive(Serialize)]
struct CanonicalProject<'a> {
    name: &'a str,
    services: BTreeMap<&'a str, Cow<'a, Service>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    networks: BTreeMap<&'a str, &'a Network>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    volumes: BTreeMap<&'a str, &'a Volume>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    secrets: BTreeMap<&'a str, &'a FileObject>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    configs: BTreeMap<&'a str, &'a FileObject>,
    #[serde(flatten)]
    other: &'a BTreeMap<String, Json>,
}

fn pick<'a, T>(all: &'a BTreeMap<String, T>, keep: &BTreeSet<&str>) -> BTreeMap<&'a str, &'a T> {
    all.iter().filter(|(k, _)| keep.contains(k.as_str())).map(|(k, v)| (k.as_str(), v)).collect()
}

impl Serialize for Project {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let used = self.used_resources();
        CanonicalProject {
            name: &self.name,
            services: self.services.iter().map(|(k, svc)| (k.as_str(), svc.with_implied_dependencies())).collect(),
            networks: pick(&self.networks, &used.networks),
            volumes: pick(&self.volumes, &used.volumes),
            secrets: pick(&self.secrets, &used.secrets),
            configs: pick(&self.configs, &used.configs),
            other: &self.other,
        }
        .serialize(s)
    }
}

/// Keys of the top-level objects the enabled services refer to.
#[derive(Debug, Default)]
pub struct UsedResources<'a> {
    /// Network keys.
    pub networks: BTreeSet<&'a str>,
    /// Volume keys (named volume mounts).
    pub volumes: BTreeSet<&'a str>,
    /// Secret keys, including build secrets.
    pub secrets: BTreeSet<&'a str>,
    /// Config keys.
    pub configs: BTreeSet<&'a str>,
}

impl Project {
    /// The networks, volumes, secrets and configs enabled services refer to; compose leaves the
    /// others out of `config` and does not create them.
    pub fn used_resources(&self) -> UsedResources<'_> {
        let mut used = UsedResources::default();
        for s in self.services.values() {
            used.networks.extend(s.networks.keys().map(String::as_str));
            used.volumes
                .extend(s.volumes.iter().filter(|m| m.r#type == MountType::Volume).filter_map(|m| m.source.as_deref()));
            used.secrets.extend(s.secrets.iter().map(|m| m.source.as_str()));
            used.configs.extend(s.configs.iter().map(|m| m.source.as_str()));
            let build_secrets = s.build.as_ref().and_then(|b| b.other.get("secrets")).and_then(Json::as_array);
            used.secrets
                .extend(build_secrets.into_iter().flatten().filter_map(|m| m.get("source").and_then(Json::as_str)));
        }
        used
    }

    /// Every profile named by any service, sorted.
    pub fn all_profiles(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .services
            .values()
            .chain(self.disabled_services.values())
            .flat_map(|s| s.profiles.iter().cloned())
            .collect();
        all.sort();
        all.dedup();
        all
    }
}

/// One service.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Service {
    /// The service's key.
    #[serde(skip)]
    pub name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build: Option<Build>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    /// Exec form; a string command was split as a shell would.
    pub command: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub configs: Vec<FileMount>,
    #[serde(skip_serializing_if = "blank")]
    pub container_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_shares: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    #[serde(skip_serializing_if = "blank")]
    pub cpuset: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub depends_on: BTreeMap<String, DependsOn>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deploy: Option<Deploy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub develop: Option<Develop>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_search: Vec<String>,
    /// Exec form, like `command`.
    pub entrypoint: Option<Vec<String>>,
    /// Already read into `environment`, so not printed (as compose does not).
    #[serde(skip)]
    pub env_file: Vec<EnvFile>,
    /// Resolved: env_file values, then `environment`; `None` is a bare key with no value.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, Option<String>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expose: Vec<String>,
    /// Host name → addresses; `host-gateway` is kept as written.
    #[serde(skip_serializing_if = "BTreeMap::is_empty", serialize_with = "hosts_as_list")]
    pub extra_hosts: BTreeMap<String, Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    #[serde(skip_serializing_if = "blank")]
    pub hostname: Option<String>,
    #[serde(skip_serializing_if = "blank")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    #[serde(skip_serializing_if = "blank")]
    pub ipc: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "bytes_as_string")]
    pub mem_limit: Option<u64>,
    #[serde(skip_serializing_if = "blank")]
    pub network_mode: Option<String>,
    /// Network key → attachment options.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, Option<ServiceNetwork>>,
    #[serde(skip_serializing_if = "blank")]
    pub pid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortMapping>,
    #[serde(skip_serializing_if = "is_false")]
    pub privileged: bool,
    #[serde(skip_serializing_if = "blank")]
    pub pull_policy: Option<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub read_only: bool,
    #[serde(skip_serializing_if = "blank")]
    pub restart: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<FileMount>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "bytes_as_string")]
    pub shm_size: Option<u64>,
    #[serde(skip_serializing_if = "is_false")]
    pub stdin_open: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_grace_period: Option<Duration>,
    #[serde(skip_serializing_if = "blank")]
    pub stop_signal: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tmpfs: Vec<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub tty: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub ulimits: BTreeMap<String, Ulimit>,
    #[serde(skip_serializing_if = "blank")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Mount>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes_from: Vec<String>,
    #[serde(skip_serializing_if = "blank")]
    pub working_dir: Option<String>,
    /// `x-` keys and keys berth accepts without modelling, verbatim.
    #[serde(flatten)]
    pub other: BTreeMap<String, Json>,
}

impl Service {
    /// The image the service runs: `image:`, else, for a service that is built, compose's
    /// `<project>-<service>`.
    pub fn image_name(&self, project: &str) -> Option<String> {
        match (&self.image, &self.build) {
            (Some(image), _) => Some(image.clone()),
            (None, Some(_)) => Some(format!("{project}-{}", self.name)),
            (None, None) => None,
        }
    }

    /// How many containers `up` runs: `scale`, else `deploy.replicas`, else 1.
    pub fn replicas(&self) -> u64 {
        self.scale.or_else(|| self.deploy.as_ref().and_then(|d| d.replicas)).unwrap_or(1)
    }

    /// The services this one needs without naming them in `depends_on`: links and `service:`
    /// namespaces (restarted with it), then `volumes_from`, each as compose lists it.
    pub fn implied_dependencies(&self) -> Vec<(&str, DependsOn)> {
        let uts = self.other.get("uts").and_then(Json::as_str);
        let cgroup = self.other.get("cgroup").and_then(Json::as_str);
        let namespaces = [self.network_mode.as_deref(), self.ipc.as_deref(), self.pid.as_deref(), uts, cgroup];
        let restarted = self
            .links
            .iter()
            .map(|l| l.split(':').next().unwrap_or(l))
            .chain(namespaces.into_iter().flatten().filter_map(|m| m.strip_prefix("service:")))
            .map(|name| (name, DependsOn { condition: Condition::Started, required: true, restart: true }));
        let mounted = self.volumes_from.iter().filter(|v| !v.starts_with("container:")).map(|v| {
            (
                v.split(':').next().unwrap_or(v),
                DependsOn { condition: Condition::Started, required: true, restart: false },
            )
        });
        restarted.chain(mounted).collect()
    }

    /// This service with [`Service::implied_dependencies`] added to `depends_on`, where
    /// `depends_on` does not already name them.
    fn with_implied_dependencies(&self) -> Cow<'_, Self> {
        let implied = self.implied_dependencies();
        if implied.iter().all(|(name, _)| self.depends_on.contains_key(*name)) {
            return Cow::Borrowed(self);
        }
        let mut owned = self.clone();
        for (name, dep) in implied {
            owned.depends_on.entry(name.to_owned()).or_insert(dep);
        }
        Cow::Owned(owned)
    }
}

/// `build:`, kept so a later stage can build; berth does not build yet.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Build {
    pub context: String,
    #[serde(skip_serializing_if = "blank")]
    pub dockerfile: Option<String>,
    #[serde(skip_serializing_if = "blank")]
    pub dockerfile_inline: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, Option<String>>,
    #[serde(skip_serializing_if = "blank")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The rest of the build section, verbatim.
    #[serde(flatten)]
    pub other: BTreeMap<String, Json>,
}

/// One `depends_on` entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DependsOn {
    pub condition: Condition,
    pub required: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub restart: bool,
}

/// `env_file` entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EnvFile {
    pub path: String,
    pub required: bool,
    #[serde(skip_serializing_if = "blank")]
    pub format: Option<String>,
}

/// `healthcheck:`, as written: see [`Healthcheck::is_disabled`].
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Healthcheck {
    /// `["NONE"]`, `["CMD", …]` or `["CMD-SHELL", "…"]`; empty when only timings are given
    /// (the image's test is used). A test string `NONE` is read as `["NONE"]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_period: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<Duration>,
    #[serde(skip_serializing_if = "is_false")]
    pub disable: bool,
}

impl Healthcheck {
    /// `disable: true` and a `NONE` test both turn the image's healthcheck off.
    pub fn is_disabled(&self) -> bool {
        self.disable || self.test.first().is_some_and(|t| t == "NONE")
    }
}

/// A service's attachment to one network.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ServiceNetwork {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    #[serde(skip_serializing_if = "blank")]
    pub ipv4_address: Option<String>,
    #[serde(skip_serializing_if = "blank")]
    pub ipv6_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// The other attachment options (`gw_priority`, `interface_name`, `driver_opts`, …).
    #[serde(flatten)]
    pub other: BTreeMap<String, Json>,
}

/// A `ulimits` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ulimit {
    pub soft: i64,
    pub hard: i64,
    /// Written as one number for both limits, and printed so.
    pub single: bool,
}

impl Serialize for Ulimit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.single {
            return s.serialize_i64(self.soft);
        }
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("soft", &self.soft)?;
        map.serialize_entry("hard", &self.hard)?;
        map.end()
    }
}

/// A secret or config as a service mounts it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileMount {
    pub source: String,
    #[serde(skip_serializing_if = "blank")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "blank")]
    pub uid: Option<String>,
    #[serde(skip_serializing_if = "blank")]
    pub gid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "mode_as_octal")]
    pub mode: Option<u32>,
}

/// `deploy:` — the parts that matter on one machine.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Deploy {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u64>,
    /// Printed as `{}` when absent, as compose does.
    #[serde(serialize_with = "empty_if_none")]
    pub resources: Option<Resources>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    /// Swarm placement, verbatim; printed as `{}` when absent, as compose does.
    pub placement: BTreeMap<String, Json>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Json>,
}

/// `deploy.resources`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Resources {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<ResourceLimits>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservations: Option<ResourceLimits>,
}

/// Limits or reservations.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ResourceLimits {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "bytes_as_string")]
    pub memory: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids: Option<i64>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Json>,
}

/// `deploy.restart_policy`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RestartPolicy {
    /// `none`, `on-failure` or `any`.
    #[serde(skip_serializing_if = "blank")]
    pub condition: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<Duration>,
}

/// `develop:`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Develop {
    pub watch: Vec<WatchRule>,
}

/// One `develop.watch` rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WatchRule {
    /// Absolute host path.
    pub path: String,
    /// `sync`, `rebuild`, `restart`, `sync+restart` or `sync+exec`.
    pub action: String,
    #[serde(skip_serializing_if = "blank")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignore: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub initial_sync: bool,
    /// The `exec` hook of `sync+exec` (command in exec form); compose prints
    /// `{"command": null}` when there is none.
    #[serde(serialize_with = "hook_or_null")]
    pub exec: Option<Json>,
}

/// A top-level network.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Network {
    /// The kernel-side name: `<project>_<key>` unless `name:` or `external`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "blank")]
    pub driver: Option<String>,
    /// Printed as `{}` when absent, as compose does.
    #[serde(serialize_with = "empty_if_none")]
    pub ipam: Option<Ipam>,
    #[serde(skip_serializing_if = "is_false")]
    pub external: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub internal: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Json>,
}

/// `networks.*.ipam`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Ipam {
    #[serde(skip_serializing_if = "blank")]
    pub driver: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<IpamPool>,
}

/// One address pool.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct IpamPool {
    #[serde(skip_serializing_if = "blank")]
    pub subnet: Option<String>,
    #[serde(skip_serializing_if = "blank")]
    pub ip_range: Option<String>,
    #[serde(skip_serializing_if = "blank")]
    pub gateway: Option<String>,
    /// Addresses the driver must not hand out, by host name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub aux_addresses: BTreeMap<String, String>,
}

/// A top-level volume.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Volume {
    /// The name on disk: `<project>_<key>` unless `name:` or `external`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "blank")]
    pub driver: Option<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub external: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Json>,
}

/// A top-level secret or config.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FileObject {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Absolute host path, for `file:`.
    #[serde(skip_serializing_if = "blank")]
    pub file: Option<String>,
    /// Variable name, for `environment:`.
    #[serde(skip_serializing_if = "blank")]
    pub environment: Option<String>,
    /// Inline text, for `content:` (configs).
    #[serde(skip_serializing_if = "blank")]
    pub content: Option<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub external: bool,
    #[serde(flatten)]
    pub other: BTreeMap<String, Json>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn service(f: impl FnOnce(&mut Service)) -> Service {
        let mut s = Service { name: "web".into(), image: Some("x".into()), ..Service::default() };
        f(&mut s);
        s
    }

    #[test]
    fn services_print_compose_value_types() {
        let s = service(|s| {
            s.mem_limit = Some(512 << 20);
            s.shm_size = Some(64 << 20);
            s.extra_hosts = BTreeMap::from([
                ("z".to_owned(), vec!["1.1.1.1".to_owned()]),
                ("b".to_owned(), vec!["::1".to_owned(), "2.2.2.2".to_owned()]),
            ]);
            s.ulimits = BTreeMap::from([
                ("nproc".to_owned(), Ulimit { soft: 30, hard: 30, single: true }),
                ("nofile".to_owned(), Ulimit { soft: 10, hard: 20, single: false }),
            ]);
            s.secrets = vec![FileMount {
                source: "s".into(),
                target: Some("/run/secrets/s".into()),
                uid: None,
                gid: None,
                mode: Some(0o440),
            }];
            s.env_file = vec![EnvFile { path: "a.env".into(), required: true, format: None }];
            s.hostname = Some(String::new());
        });
        let j = serde_json::to_value(&s).unwrap();
        assert_eq!(j["mem_limit"], "536870912");
        assert_eq!(j["shm_size"], "67108864");
        assert_eq!(j["extra_hosts"], json!(["b=2.2.2.2", "b=::1", "z=1.1.1.1"]));
        assert_eq!(j["ulimits"], json!({"nproc": 30, "nofile": {"soft": 10, "hard": 20}}));
        assert_eq!(j["secrets"][0]["mode"], "0440");
        assert_eq!((j["command"].clone(), j["entrypoint"].clone()), (Json::Null, Json::Null), "always printed");
        assert!(j.get("env_file").is_none(), "env files are already in environment");
        assert!(j.get("hostname").is_none(), "an empty string is left out, as Go's omitempty does");
    }

    #[test]
    fn sections_compose_always_prints_default_to_empty_objects() {
        let deploy = Deploy { replicas: Some(2), ..Deploy::default() };
        assert_eq!(serde_json::to_value(&deploy).unwrap(), json!({"replicas": 2, "resources": {}, "placement": {}}));
        let net = Network { name: "p_default".into(), ..Network::default() };
        assert_eq!(serde_json::to_value(&net).unwrap(), json!({"name": "p_default", "ipam": {}}));
        let rule = WatchRule {
            path: "/src".into(),
            action: "rebuild".into(),
            target: None,
            ignore: Vec::new(),
            include: Vec::new(),
            initial_sync: false,
            exec: None,
        };
        assert_eq!(serde_json::to_value(&rule).unwrap()["exec"], json!({"command": null}));
        let limits = ResourceLimits { memory: Some(1 << 30), ..ResourceLimits::default() };
        assert_eq!(serde_json::to_value(&limits).unwrap(), json!({"memory": "1073741824"}));
    }

    #[test]
    fn healthchecks_print_as_written_and_know_when_they_are_off() {
        let off = Healthcheck { disable: true, ..Healthcheck::default() };
        assert_eq!(serde_json::to_value(&off).unwrap(), json!({"disable": true}));
        assert!(off.is_disabled());
        let none = Healthcheck { test: vec!["NONE".into()], ..Healthcheck::default() };
        assert!(none.is_disabled());
        assert!(!Healthcheck { test: vec!["CMD".into(), "true".into()], ..Healthcheck::default() }.is_disabled());
    }

    #[test]
    fn projects_leave_out_unused_resources_and_list_implied_dependencies() {
        let mut p = Project { name: "p".into(), ..Project::default() };
        let db = service(|s| {
            s.networks.insert("back".into(), None);
            s.volumes = vec![super::super::volumes::parse_volume_short("data:/data").unwrap()];
            s.secrets.push(FileMount { source: "pw".into(), target: None, uid: None, gid: None, mode: None });
        });
        let web = service(|s| {
            s.links = vec!["db:database".into()];
            s.volumes_from = vec!["cache:ro".into(), "container:abc".into()];
            s.network_mode = Some("service:vpn".into());
            s.depends_on
                .insert("cache".into(), DependsOn { condition: Condition::Healthy, required: false, restart: false });
        });
        p.services = BTreeMap::from([("db".to_owned(), db), ("web".to_owned(), web)]);
        for key in ["back", "unused"] {
            p.networks.insert(key.into(), Network { name: format!("p_{key}"), ..Network::default() });
        }
        for key in ["data", "spare"] {
            p.volumes.insert(key.into(), Volume { name: format!("p_{key}"), ..Volume::default() });
        }
        p.secrets.insert("pw".into(), FileObject { name: "p_pw".into(), ..FileObject::default() });
        p.configs.insert("unused".into(), FileObject { name: "p_unused".into(), ..FileObject::default() });

        let j = serde_json::to_value(&p).unwrap();
        assert_eq!(j["networks"], json!({"back": {"name": "p_back", "ipam": {}}}));
        assert_eq!(j["volumes"], json!({"data": {"name": "p_data"}}));
        assert_eq!(j["secrets"], json!({"pw": {"name": "p_pw"}}));
        assert!(j.get("configs").is_none());
        assert_eq!(
            j["services"]["web"]["depends_on"],
            json!({
                "db": {"condition": "service_started", "required": true, "restart": true},
                "vpn": {"condition": "service_started", "required": true, "restart": true},
                "cache": {"condition": "service_healthy", "required": false},
            }),
            "an explicit depends_on entry wins over the implied one"
        );
        assert!(!p.services["web"].depends_on.contains_key("db"), "the model itself is unchanged");
    }
}
