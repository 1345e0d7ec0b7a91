//! What `up` and `run` check before they start anything, on the services they are about to
//! start: problems `config` accepts, as `docker compose config` does, because they are about
//! running the project rather than about the file.
//!
//! - a secret or config whose file is missing, whose environment variable is not set, or that
//!   is `external` (there is no swarm to hold it);
//! - the same host port published by two services (docker compose starts the first and fails
//!   on the second, leaving a half-made stack).
//!
//! Each error names the file, the line and the key, like the loader's.

use std::collections::{BTreeMap, BTreeSet};

use super::error::{LoadError, SpecError, Stage};
use super::model::{FileMount, FileObject, Project};
use super::ports::host_port_range;
use super::volumes;
use super::yaml::Node;

/// A secret or a config, as a service is granted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FileKind {
    /// `secrets:`.
    Secret,
    /// `configs:`.
    Config,
}

impl FileKind {
    /// The singular noun, for messages.
    pub fn noun(self) -> &'static str {
        match self {
            FileKind::Secret => "secret",
            FileKind::Config => "config",
        }
    }

    /// The service and top-level key.
    pub fn key(self) -> &'static str {
        match self {
            FileKind::Secret => "secrets",
            FileKind::Config => "configs",
        }
    }

    /// The top-level definitions of this kind.
    pub fn defined(self, project: &Project) -> &BTreeMap<String, FileObject> {
        match self {
            FileKind::Secret => &project.secrets,
            FileKind::Config => &project.configs,
        }
    }

    /// Where a grant lands in the container, as compose places it: a secret at
    /// `/run/secrets/<target>` unless the target is absolute, a config at `/<target>`; the
    /// target defaults to the top-level key.
    pub fn target(self, grant: &FileMount) -> String {
        let target = grant.target.as_deref().filter(|t| !t.is_empty()).unwrap_or(&grant.source);
        match self {
            FileKind::Secret if !target.starts_with('/') => volumes::clean_absolute(&format!("/run/secrets/{target}")),
            _ => volumes::clean_absolute(target),
        }
    }
}

/// The secrets and configs of `service`, in the order the service lists them (secrets first).
pub fn grants(service: &super::Service) -> impl Iterator<Item = (FileKind, &FileMount)> {
    let secrets = service.secrets.iter().map(|g| (FileKind::Secret, g));
    secrets.chain(service.configs.iter().map(|g| (FileKind::Config, g)))
}

/// Why `object` cannot give a file's bytes now, if it cannot: the pointer and path of the key
/// to fix, and the message.
fn unusable(project: &Project, kind: FileKind, key: &str, object: &FileObject) -> Option<(&'static str, String)> {
    let noun = kind.noun();
    if object.external {
        let others = if kind == FileKind::Config { "file, environment or content" } else { "file or environment" };
        return Some((
            "external",
            format!(
                "{noun} {key:?} is external, and berth runs no swarm to hold it: give it a {others} source instead"
            ),
        ));
    }
    if let Some(file) = &object.file {
        let problem = match std::fs::metadata(file) {
            Ok(meta) if meta.is_file() => return None,
            Ok(_) => "is not a regular file".to_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => "does not exist".to_owned(),
            Err(e) => format!("cannot be read: {e}"),
        };
        return Some(("file", format!("{noun} file {file} {problem}")));
    }
    if let Some(var) = &object.environment {
        if project.environment.contains_key(var) {
            return None;
        }
        return Some(("environment", format!("environment variable {var:?} required by {noun} {key:?} is not set")));
    }
    if object.content.is_some() {
        return None;
    }
    Some(("", format!("{noun} {key:?} has no source: give it a file, environment or content")))
}

/// Checks the services in `services` (those the caller is about to start); every problem is
/// reported together.
pub fn check<'a>(project: &Project, doc: &Node, services: impl IntoIterator<Item = &'a str>) -> Result<(), LoadError> {
    let mut errors = Vec::new();
    let mut seen = BTreeSet::new();
    let mut published = Vec::new();
    for name in services {
        let Some(service) = project.services.get(name) else { continue };
        for (kind, grant) in grants(service) {
            let key = grant.source.as_str();
            let Some(object) = kind.defined(project).get(key) else { continue };
            if !seen.insert((kind, key)) {
                continue;
            }
            if let Some((field, message)) = unusable(project, kind, key, object) {
                let mut pointer = format!("/{}/{key}", kind.key());
                let mut path = format!("{}.{key}", kind.key());
                if !field.is_empty() {
                    pointer = format!("{pointer}/{field}");
                    path = format!("{path}.{field}");
                }
                let message = format!("{message} (service {name:?} uses it)");
                errors.push(SpecError::at(Stage::Semantic, &doc.locate(&pointer).location, path, message));
            }
        }
        for p in &service.ports {
            if let Some(range) = p.published.as_deref().and_then(|p| host_port_range(p).ok()) {
                published.push(Published {
                    service: name,
                    host_ip: p.host_ip.as_deref().unwrap_or_default(),
                    protocol: &p.protocol,
                    range,
                });
            }
        }
    }
    errors.extend(port_conflicts(&published, doc));
    if errors.is_empty() { Ok(()) } else { Err(LoadError { errors }) }
}

/// One published host port range.
struct Published<'a> {
    service: &'a str,
    host_ip: &'a str,
    protocol: &'a str,
    range: (u16, u16),
}

impl Published<'_> {
    /// Whether both would bind the same port: overlapping ranges, one protocol, and the same
    /// address or a wildcard on either side.
    fn clashes_with(&self, other: &Published<'_>) -> bool {
        let wildcard = |ip: &str| ip.is_empty() || ip == "0.0.0.0" || ip == "::";
        let same_ip = wildcard(self.host_ip) || wildcard(other.host_ip) || self.host_ip == other.host_ip;
        let overlap = self.range.0 <= other.range.1 && other.range.0 <= self.range.1;
        same_ip && overlap && self.protocol == other.protocol
    }
}

/// The same host port and protocol published twice on overlapping addresses.
fn port_conflicts(published: &[Published<'_>], doc: &Node) -> Vec<SpecError> {
    let mut errors = Vec::new();
    for (i, a) in published.iter().enumerate() {
        if let Some(b) = published[..i].iter().find(|b| a.clashes_with(b)) {
            let port = a.range.0.max(b.range.0);
            errors.push(SpecError::at(
                Stage::Semantic,
                &doc.locate(&format!("/services/{}/ports", a.service)).location,
                format!("services.{}.ports", a.service),
                format!(
                    "host port {port}/{} is published twice: by service {:?} and by service {:?}",
                    a.protocol, b.service, a.service
                ),
            ));
        }
    }
    errors
}
