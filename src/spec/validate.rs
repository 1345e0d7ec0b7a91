//! Semantic checks on a normalised project: what the schema cannot see.

use std::collections::BTreeMap;

use super::error::{SpecError, Stage};
use super::model::Project;
use super::volumes::MountType;
use super::yaml::Node;
use crate::graph::{Dependency, DependencyGraph, EdgeOrigin, GraphError, did_you_mean};

/// Every dependency edge of the enabled services: `depends_on` plus the implicit edges from
/// links, volumes_from and `service:` namespace sharing.
pub fn dependencies(project: &Project) -> Vec<Dependency> {
    let mut deps = Vec::new();
    for (name, s) in &project.services {
        for (target, d) in &s.depends_on {
            deps.push(Dependency {
                service: name.clone(),
                dependency: target.clone(),
                condition: d.condition,
                required: d.required,
                restart: d.restart,
                origin: EdgeOrigin::DependsOn,
            });
        }
        let implicit = |target: &str, origin| Dependency::implicit(name.clone(), target, origin);
        for link in &s.links {
            deps.push(implicit(link.split(':').next().unwrap_or(link), EdgeOrigin::Links));
        }
        for from in &s.volumes_from {
            if !from.starts_with("container:") {
                deps.push(implicit(from.split(':').next().unwrap_or(from), EdgeOrigin::VolumesFrom));
            }
        }
        let uts = s.other.get("uts").and_then(|v| v.as_str());
        let cgroup = s.other.get("cgroup").and_then(|v| v.as_str());
        for (mode, origin) in [
            (s.network_mode.as_deref(), EdgeOrigin::NetworkMode),
            (s.pid.as_deref(), EdgeOrigin::Pid),
            (s.ipc.as_deref(), EdgeOrigin::Ipc),
            (uts, EdgeOrigin::Uts),
            (cgroup, EdgeOrigin::Cgroup),
        ] {
            if let Some(target) = mode.and_then(|m| m.strip_prefix("service:")) {
                deps.push(implicit(target, origin));
            }
        }
    }
    deps
}

/// The project's dependency graph (the errors loading already reports are possible here
/// only for projects that skipped validation).
pub fn dependency_graph(project: &Project) -> Result<DependencyGraph, GraphError> {
    DependencyGraph::new(project.services.keys().cloned(), dependencies(project))
}

/// Runs every semantic check; all problems are reported together.
pub(crate) fn project(project: &Project, doc: &Node, consistency: bool) -> Vec<SpecError> {
    let mut errors = Vec::new();
    let at = |pointer: &str, path: String, message: String| {
        SpecError::at(Stage::Semantic, &doc.locate(pointer).location, path, message)
    };
    let names: Vec<&str> = project.services.keys().map(String::as_str).collect();

    // Dependencies on unknown or disabled services; required: false edges may point at a
    // disabled service and are then dropped by the planner.
    let mut deps = Vec::new();
    for dep in dependencies(project) {
        let disabled = project.disabled_services.contains_key(&dep.dependency);
        let key = dep.origin.as_str();
        let pointer = format!("/services/{}/{key}", dep.service);
        let path = format!("services.{}.{key}", dep.service);
        if project.services.contains_key(&dep.dependency) {
            deps.push(dep);
        } else if disabled && !dep.required {
            continue;
        } else if disabled {
            errors.push(at(
                &pointer,
                path,
                format!(
                    "service {:?} is required by {:?} but is disabled: enable its profile",
                    dep.dependency, dep.service
                ),
            ));
        } else {
            let hint = did_you_mean(&dep.dependency, names.iter().copied())
                .map(|h| format!(" (did you mean {h:?}?)"))
                .unwrap_or_default();
            errors.push(at(
                &pointer,
                path,
                format!("service {:?} depends on undefined service {:?}{hint}", dep.service, dep.dependency),
            ));
        }
    }
    if errors.is_empty()
        && let Err(e) = DependencyGraph::new(project.services.keys().cloned(), deps)
    {
        let pointer = match &e {
            GraphError::Cycle { path } => path.first().map(|s| format!("/services/{s}/depends_on")).unwrap_or_default(),
            _ => String::new(),
        };
        errors.push(SpecError::at(Stage::Semantic, &doc.locate(&pointer).location, "", e.to_string()));
    }

    let mut container_names: BTreeMap<&str, &str> = BTreeMap::new();
    for (name, s) in &project.services {
        let base = format!("/services/{name}");
        let path = |k: &str| format!("services.{name}.{k}");
        // A `provider:` service is run by an external tool and has no image of its own.
        if consistency && s.image.is_none() && s.build.is_none() && !s.other.contains_key("provider") {
            errors.push(at(
                &base,
                format!("services.{name}"),
                format!("service {name:?} has neither an image nor a build context specified"),
            ));
        }
        if let Some(build) = &s.build {
            errors.extend(build_checks(name, s, build, doc));
        }
        if s.network_mode.is_some() && s.networks.keys().any(|k| k != "default") {
            errors.push(at(
                &format!("{base}/network_mode"),
                path("network_mode"),
                "network_mode cannot be combined with networks".into(),
            ));
        }
        if let Some(mode) = &s.network_mode {
            let known = matches!(mode.as_str(), "bridge" | "host" | "none")
                || mode.starts_with("service:")
                || mode.starts_with("container:");
            if !known {
                errors.push(at(
                    &format!("{base}/network_mode"),
                    path("network_mode"),
                    format!(
                        "unknown network_mode {mode:?}: expected bridge, host, none, service:NAME or container:NAME"
                    ),
                ));
            }
        }
        if let Some(cn) = s.container_name.as_deref() {
            if let Some(other) = container_names.insert(cn, name) {
                errors.push(at(
                    &format!("{base}/container_name"),
                    path("container_name"),
                    format!("container name {cn:?} is already used by service {other:?}"),
                ));
            }
            if s.replicas() > 1 {
                errors.push(at(
                    &format!("{base}/container_name"),
                    path("container_name"),
                    format!("service {name:?} sets container_name, so it cannot run {} replicas", s.replicas()),
                ));
            }
        }
        for net in s.networks.keys() {
            if net != "default" && !project.networks.contains_key(net) {
                let hint = did_you_mean(net, project.networks.keys().map(String::as_str))
                    .map(|h| format!(" (did you mean {h:?}?)"))
                    .unwrap_or_default();
                errors.push(at(
                    &format!("{base}/networks/{net}"),
                    path("networks"),
                    format!("service {name:?} refers to undefined network {net:?}{hint}"),
                ));
            }
        }
        for (i, m) in s.volumes.iter().enumerate() {
            if let (MountType::Volume, Some(src)) = (m.r#type, &m.source)
                && !project.volumes.contains_key(src)
            {
                let hint = did_you_mean(src, project.volumes.keys().map(String::as_str))
                    .map(|h| format!(" (did you mean {h:?}?)"))
                    .unwrap_or_default();
                errors.push(at(&format!("{base}/volumes/{i}"), format!("services.{name}.volumes[{i}]"), format!("service {name:?} refers to undefined volume {src:?}{hint}: declare it under the top-level volumes key")));
            }
        }
        for (kind, mounts, defined) in
            [("secret", &s.secrets, &project.secrets), ("config", &s.configs, &project.configs)]
        {
            for (i, m) in mounts.iter().enumerate() {
                if !defined.contains_key(&m.source) {
                    errors.push(at(
                        &format!("{base}/{kind}s/{i}"),
                        format!("services.{name}.{kind}s[{i}]"),
                        format!("service {name:?} refers to undefined {kind} {:?}", m.source),
                    ));
                }
            }
        }
    }
    errors
}

/// What compose checks in `build:` before any build runs.
fn build_checks(name: &str, s: &super::model::Service, build: &super::model::Build, doc: &Node) -> Vec<SpecError> {
    let mut errors = Vec::new();
    let base = format!("/services/{name}/build");
    let platforms: Vec<&str> = build
        .other
        .get("platforms")
        .and_then(|p| p.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    if let Some(platform) = s.other.get("platform").and_then(|p| p.as_str())
        && !platforms.is_empty()
        && !platforms.contains(&platform)
    {
        errors.push(SpecError::at(
            Stage::Semantic,
            &doc.locate(&format!("{base}/platforms")).location,
            format!("services.{name}.build.platforms"),
            format!("build.platforms must include the service's platform {platform:?}"),
        ));
    }
    for (i, secret) in build.other.get("secrets").and_then(|v| v.as_array()).into_iter().flatten().enumerate() {
        if let Some(target) = secret.get("target").and_then(|t| t.as_str())
            && target.contains('/')
        {
            errors.push(SpecError::at(
                Stage::Semantic,
                &doc.locate(&format!("{base}/secrets/{i}")).location,
                format!("services.{name}.build.secrets[{i}]"),
                format!("build secret target {target:?} must be a file name, not a path"),
            ));
        }
    }
    errors
}
