//! `berth convert`: the loaded, interpolated [`Project`] as Kubernetes manifests.
//!
//! Each service becomes one workload (a Deployment; a StatefulSet when it alone mounts a named
//! volume and runs one replica; a Job when a dependent waits for it to complete), a Service
//! named after it when it has ports, and the ConfigMaps, Secrets and claims its files and
//! volumes need. Manifests are plain JSON values in the shape the Kubernetes API documents, so
//! no client library is needed. Whatever Kubernetes cannot express gives one [`Warning`]
//! naming the key and the service: nothing is dropped silently.

mod container;
mod files;
mod leftovers;
mod names;
mod network;
mod output;
mod probes;
mod volumes;
mod waits;
mod workload;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{Map, Value as Json, json};

use crate::graph::Condition;
use crate::spec::model::DependsOn;
use crate::spec::{Project, Service};

pub use names::{is_dns_label, is_label_value, is_qualified_name};
pub use output::{Format, render, write_dir};

/// How bind mounts (host paths) are converted; none of them is portable to a cluster.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum BindMounts {
    /// Leave them out, with a warning.
    #[default]
    Skip,
    /// An emptyDir at the same path: the directory starts empty.
    EmptyDir,
    /// A hostPath volume: the path must exist on whichever node runs the pod.
    HostPath,
}

/// What `convert` is asked for besides the project.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `metadata.namespace` of every object; none leaves it to `kubectl -n`.
    pub namespace: Option<String>,
    /// What bind mounts become.
    pub bind_mounts: BindMounts,
}

/// Something the stack asks for that the manifests do not express, or express differently.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Warning {
    /// What it is about: `service "web"`, `volume "data"`, `project "p"`.
    pub subject: String,
    /// The compose key.
    pub key: String,
    /// Why, and what happens instead.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.subject, self.key, self.message)
    }
}

/// Why a project cannot be converted at all.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// `--namespace` is not a DNS-1123 label.
    #[error("invalid namespace {0:?}: expected lowercase letters, digits and '-', at most 63 characters")]
    InvalidNamespace(String),
    /// The manifests could not be serialised.
    #[error("cannot serialise the manifests: {0}")]
    Serialize(String),
    /// An output file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file or directory.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// The manifests and what could not be carried over.
#[derive(Debug, Default)]
pub struct Conversion {
    /// Kubernetes objects, in the order `kubectl apply` should see them.
    pub objects: Vec<Json>,
    /// One per key that could not be expressed, sorted.
    pub warnings: Vec<Warning>,
}

/// Which workload a service becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Deployment,
    StatefulSet,
    Job,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Deployment => "Deployment",
            Kind::StatefulSet => "StatefulSet",
            Kind::Job => "Job",
        }
    }
}

/// State shared by the parts of one conversion.
pub(crate) struct Ctx<'a> {
    pub project: &'a Project,
    pub options: &'a Options,
    /// Service key → Kubernetes name (DNS-1035 label).
    pub names: BTreeMap<String, String>,
    /// Service key → workload kind.
    pub kinds: BTreeMap<String, Kind>,
    /// Service key → the first TCP port its Service listens on, for dependents to wait on.
    pub wait_ports: BTreeMap<String, u16>,
    /// The project as a label value.
    pub part_of: String,
    pub warnings: BTreeSet<Warning>,
    pub objects: Vec<Json>,
    /// Some init container reads the API, so the project needs the waiter's RBAC objects.
    pub needs_waiter: bool,
}

impl Ctx<'_> {
    /// Records a warning about a service.
    pub fn warn(&mut self, service: &str, key: &str, message: impl Into<String>) {
        self.warn_about(format!("service {service:?}"), key, message);
    }

    /// Records a warning about anything.
    pub fn warn_about(&mut self, subject: String, key: &str, message: impl Into<String>) {
        self.warnings.insert(Warning { subject, key: key.to_owned(), message: message.into() });
    }

    /// `metadata` with the namespace and the project's labels.
    pub fn metadata(&self, name: &str, mut labels: Map<String, Json>) -> Json {
        labels.insert("app.kubernetes.io/part-of".into(), json!(self.part_of));
        let mut meta = Map::new();
        meta.insert("name".into(), json!(name));
        if let Some(ns) = &self.options.namespace {
            meta.insert("namespace".into(), json!(ns));
        }
        meta.insert("labels".into(), Json::Object(labels));
        Json::Object(meta)
    }

    /// The labels that select a service's pods.
    pub fn selector(&self, service: &str) -> Map<String, Json> {
        let mut m = Map::new();
        m.insert("app.kubernetes.io/name".into(), json!(self.names[service]));
        m.insert("app.kubernetes.io/part-of".into(), json!(self.part_of));
        m
    }

    /// Adds an object.
    pub fn push(&mut self, object: Json) {
        self.objects.push(object);
    }
}

/// The dependencies a service waits for: `depends_on`, then what links, `volumes_from` and
/// `service:` namespaces imply, limited to enabled services.
pub(crate) fn dependencies<'a>(project: &'a Project, service: &'a Service) -> BTreeMap<&'a str, DependsOn> {
    let mut deps: BTreeMap<&str, DependsOn> = service.depends_on.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    for (name, dep) in service.implied_dependencies() {
        deps.entry(name).or_insert(dep);
    }
    deps.retain(|name, _| project.services.contains_key(*name) && *name != service.name);
    deps
}

/// Converts a project.
pub fn convert(project: &Project, options: &Options) -> Result<Conversion, ConvertError> {
    if let Some(ns) = &options.namespace
        && !is_dns_label(ns)
    {
        return Err(ConvertError::InvalidNamespace(ns.clone()));
    }
    let mut ctx = Ctx {
        project,
        options,
        names: BTreeMap::new(),
        kinds: BTreeMap::new(),
        wait_ports: BTreeMap::new(),
        part_of: names::label_value(&project.name),
        warnings: BTreeSet::new(),
        objects: Vec::new(),
        needs_waiter: false,
    };
    names::assign_service_names(&mut ctx);
    workload::assign_kinds(&mut ctx);
    // Services first: dependents wait on the ports they choose.
    for service in project.services.values() {
        network::services(&mut ctx, service);
    }
    for service in project.services.values() {
        if service.image.is_none() && service.build.is_none() {
            ctx.warn(&service.name, "image", "no image and no build (a provider or fragment): not converted");
            continue;
        }
        workload::workload(&mut ctx, service);
    }
    files::project_files(&mut ctx);
    volumes::claims(&mut ctx);
    network::project_networks(&mut ctx);
    if ctx.needs_waiter {
        waits::rbac(&mut ctx);
    }
    let mut objects = std::mem::take(&mut ctx.objects);
    objects.sort_by_key(|o| (kind_rank(o["kind"].as_str().unwrap_or_default()), o["metadata"]["name"].to_string()));
    Ok(Conversion { objects, warnings: ctx.warnings.into_iter().collect() })
}

/// The order `kubectl apply` creates objects in: what pods refer to before the pods.
fn kind_rank(kind: &str) -> u8 {
    match kind {
        "ServiceAccount" => 0,
        "Role" => 1,
        "RoleBinding" => 2,
        "Secret" => 3,
        "ConfigMap" => 4,
        "PersistentVolumeClaim" => 5,
        "Service" => 6,
        "Job" => 7,
        "StatefulSet" => 8,
        _ => 9,
    }
}

/// Whether a dependent waits for this condition by the dependency's completion.
pub(crate) fn waits_for_completion(dep: &DependsOn) -> bool {
    dep.condition == Condition::CompletedSuccessfully
}
