//! From a compose service and its image to a [`ContainerSpec`]: every rule docker and compose
//! apply between a stack file and a running container, and nothing that touches the kernel.
//!
//! The plan decides; the spawner only carries it out. Rules follow docker's daemon (moby
//! `runconfig.Merge`, `daemon/oci_linux.go`, libnetwork's hosts and resolv.conf handling) and
//! compose's container creation (`pkg/compose/create.go`), so a stack behaves under berth as it
//! does under `docker compose up`. Each error names the service and the key to fix.

mod etc;
pub mod files;
mod isolation;
pub mod mounts;
mod process;
mod volumes_from;

#[cfg(test)]
mod tests;

pub use etc::resolv_conf;
pub use mounts::volume_dir;
pub use process::DEFAULT_PATH;

/// A service's cgroup limits, as its containers get them.
pub fn service_resources(service: &Service) -> Result<crate::runtime::spec::Resources, PlanError> {
    isolation::resources(service)
}

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use crate::image::ImageRecord;
use crate::runtime::caps::CapsError;
use crate::runtime::spec::{ContainerSpec, DEFAULT_SHM_SIZE, NamespaceMode, Rootfs};
use crate::spec::{Project, Service};

/// What the plan needs besides the service: the project, where state lives, the image, and
/// the host files a container starts from. Host files are passed in as text so the plan stays
/// pure and testable.
#[derive(Debug)]
pub struct PlanContext<'a> {
    /// The project the service belongs to: names, top-level volumes, `service:` references
    /// and the variables bare `environment` keys take their values from.
    pub project: &'a Project,
    /// The state root; volumes live under `<state_root>/volumes/<name>/_data`.
    pub state_root: &'a Path,
    /// The service's image.
    pub image: &'a ImageRecord,
    /// The store's directory of short layer links (`<store>/l`).
    pub layer_root: PathBuf,
    /// Short link names of the image's layers, base layer first as the image lists them.
    pub layer_links: Vec<String>,
    /// Contents of the host's /etc/resolv.conf.
    pub host_resolv_conf: &'a str,
    /// Contents of the host's /etc/hosts: a `network_mode: host` container sees it as is.
    pub host_hosts: &'a str,
    /// The host's name: the default host name with `network_mode: host` and `uts: host`.
    pub host_hostname: &'a str,
}

/// What `berth run` changes on top of the service (and `up` leaves at its defaults), with the
/// meaning the service keys of the same names have.
#[derive(Debug, Clone, Default)]
pub struct RunOverrides {
    /// Replaces `command`.
    pub command: Option<Vec<String>>,
    /// Replaces `entrypoint`; an empty list clears it.
    pub entrypoint: Option<Vec<String>>,
    /// `KEY=VALUE`, or `KEY` to take the value from the project environment (and unset the
    /// variable when it is not there), applied after `environment`.
    pub env: Vec<String>,
    /// Replaces `user`.
    pub user: Option<String>,
    /// Replaces `working_dir`.
    pub workdir: Option<String>,
    /// Replaces `tty`.
    pub tty: Option<bool>,
    /// Keeps stdin open even when the service does not ask for it.
    pub interactive: bool,
    /// Replaces the container's name (`berth run --name`, or a one-off's generated name).
    pub name: Option<String>,
    /// Replica number, 1-based: the `-1` in `<project>-<service>-1`.
    pub index: u32,
}

/// A service that cannot become a container as written.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A key's value docker would refuse.
    #[error("service {service:?}: {key}: {message}")]
    Invalid {
        /// The service.
        service: String,
        /// The key to fix (`working_dir`, `sysctls`, ...).
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// Neither the service nor its image says what to run (docker's wording).
    #[error("service {service:?}: no command specified")]
    NoCommand {
        /// The service.
        service: String,
    },
    /// `cap_add` or `cap_drop` names a capability the kernel does not know.
    #[error("service {service:?}: {source}")]
    Capabilities {
        /// The service.
        service: String,
        /// Which key and which name.
        source: CapsError,
    },
    /// The random ids could not be drawn.
    #[error("cannot read random bytes from /dev/urandom: {0}")]
    Random(#[source] io::Error),
}

/// A [`PlanError::Invalid`] for `key` of `service`.
fn invalid(service: &Service, key: &str, message: impl Into<String>) -> PlanError {
    PlanError::Invalid { service: service.name.clone(), key: key.to_owned(), message: message.into() }
}

/// Plans one container of `service`.
///
/// The host name is `hostname:` when set; otherwise, as docker does, the first 12 characters
/// of the container id (compose sets none of its own), or the host's name when the container
/// shares the host's network or UTS namespace.
pub fn container_spec(
    ctx: &PlanContext<'_>,
    service: &Service,
    overrides: &RunOverrides,
) -> Result<ContainerSpec, PlanError> {
    let id = random_hex(16)?;
    let name = overrides.name.clone().unwrap_or_else(|| container_name(ctx.project, service, overrides.index.max(1)));
    let namespaces = isolation::namespaces(ctx.project, service)?;
    let hostname = etc::hostname(ctx, service, &namespaces, &id)?;
    let process = process::process(ctx, service, overrides, &hostname)?;
    let etc = etc::etc_files(ctx, service, &namespaces, &hostname)?;
    let sysctls = isolation::sysctls(service, &namespaces)?;
    let resources = isolation::resources(service)?;
    let mounts = mounts::mounts(ctx, service)?;
    let mut lower = ctx.layer_links.clone();
    lower.reverse();
    Ok(ContainerSpec {
        id,
        name,
        project: ctx.project.name.clone(),
        service: service.name.clone(),
        rootfs: Rootfs {
            layer_root: ctx.layer_root.clone(),
            lower,
            host_binds: ctx.image.host_binds.clone(),
            volatile: false,
            self_contained: false,
        },
        process,
        hostname,
        domainname: other_str(service, "domainname").unwrap_or_default().to_owned(),
        namespaces,
        mounts,
        etc,
        resources,
        sysctls,
        privileged: service.privileged,
        read_only: service.read_only,
        shm_size: service.shm_size.filter(|s| *s > 0).unwrap_or(DEFAULT_SHM_SIZE),
        init: service.init == Some(true),
        endpoints: Vec::new(),
        config_hash: String::new(),
    })
}

/// A container's name as compose gives it: `container_name`, else `<project>-<service>-<n>`.
pub fn container_name(project: &Project, service: &Service, index: u32) -> String {
    match service.container_name.as_deref().filter(|n| !n.is_empty()) {
        Some(name) => name.to_owned(),
        None => format!("{}-{}-{index}", project.name, service.name),
    }
}

/// `bytes` random bytes as lowercase hex: container ids and anonymous volume names.
pub(crate) fn random_hex(bytes: usize) -> Result<String, PlanError> {
    let mut buf = vec![0u8; bytes];
    File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf)).map_err(PlanError::Random)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// A string key the model keeps verbatim in `other`.
fn other_str<'s>(service: &'s Service, key: &str) -> Option<&'s str> {
    service.other.get(key).and_then(Json::as_str)
}

/// A list key the model keeps verbatim in `other`, as strings (numbers are written out).
fn other_strings(service: &Service, key: &str) -> Vec<String> {
    let Some(Json::Array(items)) = service.other.get(key) else { return Vec::new() };
    items
        .iter()
        .filter_map(|v| match v {
            Json::String(s) => Some(s.clone()),
            Json::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .collect()
}

/// A namespace another container owns, from `service:NAME` or `container:NAME` in `key`.
/// `service:` names the service's first container, which is the one compose joins.
fn joined_namespace(
    project: &Project,
    service: &Service,
    key: &str,
    value: &str,
) -> Result<Option<NamespaceMode>, PlanError> {
    if let Some(other) = value.strip_prefix("service:") {
        let target = project.services.get(other).ok_or_else(|| {
            invalid(service, key, format!("service {other:?} is not in the project (or not enabled)"))
        })?;
        return Ok(Some(NamespaceMode::Container(container_name(project, target, 1))));
    }
    if let Some(container) = value.strip_prefix("container:") {
        if container.is_empty() {
            return Err(invalid(service, key, "container: needs a container name"));
        }
        return Ok(Some(NamespaceMode::Container(container.to_owned())));
    }
    Ok(None)
}
