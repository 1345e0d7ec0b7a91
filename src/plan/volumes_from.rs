//! `volumes_from`: every volume and bind of another container (a service's, or `container:`
//! any berth container by name) mounted at the same target. `:ro` makes them all read-only,
//! `:rw` all writable, and without a mode each keeps the source's. tmpfs mounts are not shared,
//! as in docker. compose makes the source service a dependency, so its container exists by the
//! time this one is planned. (compose 2.40 drops the mode it hands docker; berth keeps it.)

use std::path::Path;

use crate::runtime::spec::{ContainerSpec, Mount, MountKind};
use crate::spec::Service;

use super::{PlanError, invalid};

/// The mounts `service`'s `volumes_from` entries bring, in order, leaving out targets in
/// `own` (the service's own mounts win, as in docker) and targets an earlier entry brought.
pub(super) fn mounts(
    state_root: &Path,
    project: &str,
    service: &Service,
    own: &[Mount],
) -> Result<Vec<Mount>, PlanError> {
    if service.volumes_from.is_empty() {
        return Ok(Vec::new());
    }
    let found: Vec<ContainerSpec> = crate::runtime::state::list(state_root)
        .map_err(|e| invalid(service, "volumes_from", format!("read the containers: {e}")))?
        .into_iter()
        .filter_map(|f| Some((f.spec?, f.record)))
        .filter(|(_, record)| !record.as_ref().is_some_and(|r| r.oneoff))
        .map(|(spec, _)| spec)
        .collect();
    let mut out: Vec<Mount> = Vec::new();
    for entry in &service.volumes_from {
        let (source, read_only) = parse(entry).map_err(|m| invalid(service, "volumes_from", m))?;
        let spec = match &source {
            Source::Container(name) => found.iter().find(|s| &s.name == name),
            // The service's first replica when it has one, else its first container by name.
            Source::Service(name) => {
                let mut candidates: Vec<&ContainerSpec> =
                    found.iter().filter(|s| s.project == project && &s.service == name).collect();
                candidates.sort_by(|a, b| a.name.cmp(&b.name));
                candidates.into_iter().next()
            }
        };
        let Some(spec) = spec else {
            let what = match &source {
                Source::Container(name) => format!("container {name:?}"),
                Source::Service(name) => format!("service {name:?} has no container"),
            };
            return Err(invalid(service, "volumes_from", format!("{entry:?}: {what} to share volumes with")));
        };
        for mount in &spec.mounts {
            let shared = match &mount.kind {
                MountKind::Volume { name, dir, .. } => {
                    MountKind::Volume { name: name.clone(), dir: dir.clone(), copy_up: false }
                }
                MountKind::Bind { source, propagation, .. } => MountKind::Bind {
                    source: source.clone(),
                    create_host_path: false,
                    propagation: propagation.clone(),
                },
                // A secret or config is granted to its own service only (compose grants it
                // per service, under `secrets:`/`configs:`).
                MountKind::Tmpfs { .. } | MountKind::File { .. } => continue,
            };
            if own.iter().chain(&out).any(|m| m.target == mount.target) {
                continue;
            }
            out.push(Mount {
                kind: shared,
                target: mount.target.clone(),
                read_only: read_only.unwrap_or(mount.read_only),
            });
        }
    }
    Ok(out)
}

/// Whose volumes.
#[derive(Debug, PartialEq, Eq)]
enum Source {
    Service(String),
    Container(String),
}

/// `name[:ro|:rw]` or `container:name[:ro|:rw]`: the source and the forced mode.
fn parse(entry: &str) -> Result<(Source, Option<bool>), String> {
    let (rest, container) = match entry.strip_prefix("container:") {
        Some(rest) => (rest, true),
        None => (entry, false),
    };
    let (name, mode) = match rest.rsplit_once(':') {
        Some((name, "ro")) => (name, Some(true)),
        Some((name, "rw")) => (name, Some(false)),
        Some((_, mode)) => return Err(format!("{entry:?}: unknown mode {mode:?} (ro or rw)")),
        None => (rest, None),
    };
    if name.is_empty() {
        return Err(format!("{entry:?}: no service or container named"));
    }
    let source = if container { Source::Container(name.to_owned()) } else { Source::Service(name.to_owned()) };
    Ok((source, mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_name_a_source_and_maybe_a_mode() {
        assert_eq!(parse("db"), Ok((Source::Service("db".into()), None)));
        assert_eq!(parse("db:ro"), Ok((Source::Service("db".into()), Some(true))));
        assert_eq!(parse("container:p-db-1:rw"), Ok((Source::Container("p-db-1".into()), Some(false))));
        assert_eq!(parse("container:x"), Ok((Source::Container("x".into()), None)));
        assert!(parse("db:z").is_err());
        assert!(parse("container::ro").is_err());
    }
}
