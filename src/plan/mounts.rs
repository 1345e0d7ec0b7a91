//! Service `volumes`, `tmpfs`, `secrets`, `configs` (see `files`) and the image's `VOLUME`s
//! as mounts over the root filesystem.

use std::path::{Component, Path, PathBuf};

use crate::runtime::spec::{Mount, MountKind};
use crate::spec::Service;
use crate::spec::volume_opts::{Backing, backing};
use crate::spec::volumes::{self, MountType, parse_tmpfs_entry};

use super::{PlanContext, PlanError, invalid, random_hex};

/// Where a volume's data lives under the state root.
pub fn volume_dir(state_root: &Path, name: &str) -> PathBuf {
    state_root.join("volumes").join(name).join("_data")
}

/// The container's mounts, parents before children.
///
/// Named volumes get their full name (`<project>_<key>`, or the top-level `name:`); volumes
/// without a source and image `VOLUME`s no mount covers get a fresh 64-hex-digit name, as docker
/// names anonymous volumes. Two mounts at one target are an error, as in docker.
pub(super) fn mounts(ctx: &PlanContext<'_>, service: &Service) -> Result<Vec<Mount>, PlanError> {
    let mut out = Vec::new();
    for m in &service.volumes {
        out.push(volume_mount(ctx, service, m)?);
    }
    for spec in &service.tmpfs {
        let entry = parse_tmpfs_entry(spec).map_err(|e| invalid(service, "tmpfs", e.to_string()))?;
        out.push(tmpfs_mount(&entry.mount));
    }
    out.extend(super::files::mounts(ctx.project, service)?);
    let mut seen: Vec<&str> = Vec::new();
    for m in &out {
        if seen.contains(&m.target.as_str()) {
            return Err(invalid(service, "volumes", format!("duplicate mount point {:?}", m.target)));
        }
        seen.push(&m.target);
    }
    let shared = super::volumes_from::mounts(ctx.state_root, &ctx.project.name, service, &out)?;
    out.extend(shared);
    let image_volumes = ctx.image.config.config.volumes.iter().flat_map(|v| v.keys());
    for target in image_volumes {
        let target = volumes::clean_absolute(target);
        if out.iter().all(|m| m.target != target) {
            out.push(anonymous(ctx, target, false, true)?);
        }
    }
    // docker mounts in order of path depth so a parent never hides a child; the sort is stable.
    out.sort_by_key(|m| m.target.split('/').filter(|c| !c.is_empty()).count());
    Ok(out)
}

fn anonymous(ctx: &PlanContext<'_>, target: String, read_only: bool, copy_up: bool) -> Result<Mount, PlanError> {
    let name = random_hex(32)?;
    let dir = volume_dir(ctx.state_root, &name);
    Ok(Mount { kind: MountKind::Volume { name, dir, copy_up }, target, read_only })
}

fn tmpfs_mount(m: &volumes::Mount) -> Mount {
    let opts = m.tmpfs.as_ref();
    Mount {
        kind: MountKind::Tmpfs { size: opts.and_then(|t| t.size), mode: opts.and_then(|t| t.mode) },
        target: m.target.clone(),
        read_only: m.read_only,
    }
}

fn volume_mount(ctx: &PlanContext<'_>, service: &Service, m: &volumes::Mount) -> Result<Mount, PlanError> {
    let source = m.source.as_deref().filter(|s| !s.is_empty());
    if !m.target.starts_with('/') {
        return Err(invalid(service, "volumes", format!("mount target {:?} must be an absolute path", m.target)));
    }
    match m.r#type {
        MountType::Bind => {
            let source = source
                .ok_or_else(|| invalid(service, "volumes", format!("bind mount at {:?} has no source", m.target)))?;
            if !source.starts_with('/') {
                return Err(invalid(service, "volumes", format!("bind source {source:?} is not an absolute path")));
            }
            let bind = m.bind.as_ref();
            Ok(Mount {
                kind: MountKind::Bind {
                    source: PathBuf::from(source),
                    create_host_path: bind.is_some_and(|b| b.create_host_path),
                    propagation: bind.and_then(|b| b.propagation.clone()),
                },
                target: m.target.clone(),
                read_only: m.read_only,
            })
        }
        MountType::Volume => {
            let opts = m.volume.as_ref();
            let nocopy = opts.is_some_and(|o| o.nocopy);
            let Some(key) = source else { return anonymous(ctx, m.target.clone(), m.read_only, !nocopy) };
            let declared = ctx.project.volumes.get(key);
            let name = match declared {
                Some(v) if !v.name.is_empty() => v.name.clone(),
                _ => format!("{}_{key}", ctx.project.name),
            };
            let backing = declared
                .map(|v| backing(v, &ctx.project.working_dir))
                .transpose()
                .map_err(|e| invalid(service, "volumes", format!("volume {key:?}: {}: {}", e.key, e.message)))?;
            let mut dir = match backing {
                Some(Backing::Tmpfs { size, mode }) => {
                    return Ok(Mount {
                        kind: MountKind::Tmpfs { size, mode },
                        target: m.target.clone(),
                        read_only: m.read_only,
                    });
                }
                Some(Backing::Bind(device)) => device,
                Some(Backing::Directory) | None => volume_dir(ctx.state_root, &name),
            };
            let mut copy_up = !nocopy;
            if let Some(sub) = opts.and_then(|o| o.subpath.as_deref()).filter(|s| !s.is_empty()) {
                let relative = Path::new(sub);
                if !relative.components().all(|c| matches!(c, Component::Normal(_))) {
                    return Err(invalid(
                        service,
                        "volumes",
                        format!("subpath {sub:?} must be a relative path inside the volume, without \"..\""),
                    ));
                }
                dir.push(relative);
                // docker copies image content only into a whole volume.
                copy_up = false;
            }
            Ok(Mount {
                kind: MountKind::Volume { name, dir, copy_up },
                target: m.target.clone(),
                read_only: m.read_only,
            })
        }
        MountType::Tmpfs => Ok(tmpfs_mount(m)),
        MountType::Image | MountType::Npipe | MountType::Cluster => {
            let kind =
                serde_json::to_value(m.r#type).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
            Err(invalid(
                service,
                "volumes",
                format!("mount type {kind:?} (at {:?}) is not supported by berth", m.target),
            ))
        }
    }
}

/// Whether a volume name is one [`mounts`] made up for an anonymous volume (64 hex digits).
pub fn is_anonymous(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The names of `spec`'s anonymous volumes.
pub fn anonymous_volumes(spec: &crate::runtime::spec::ContainerSpec) -> Vec<String> {
    spec.mounts
        .iter()
        .filter_map(|m| match &m.kind {
            MountKind::Volume { name, .. } if is_anonymous(name) => Some(name.clone()),
            _ => None,
        })
        .collect()
}

/// Gives `new` the anonymous volumes `old` had at the same mount targets, as compose does when
/// it recreates a container: the data of a database without a named volume survives a change
/// of configuration.
pub fn take_over_anonymous(new: &mut crate::runtime::spec::ContainerSpec, old: &crate::runtime::spec::ContainerSpec) {
    for mount in &mut new.mounts {
        let MountKind::Volume { name, dir, .. } = &mut mount.kind else { continue };
        if !is_anonymous(name) {
            continue;
        }
        let previous = old.mounts.iter().find_map(|m| match &m.kind {
            MountKind::Volume { name, dir, .. } if m.target == mount.target && is_anonymous(name) => {
                Some((name.clone(), dir.clone()))
            }
            _ => None,
        });
        if let Some((old_name, old_dir)) = previous {
            *name = old_name;
            *dir = old_dir;
        }
    }
}

#[cfg(test)]
mod lifecycle_tests {
    use super::*;
    use crate::runtime::spec::{ContainerSpec, Mount, MountKind};

    fn volume(name: &str, target: &str) -> Mount {
        Mount {
            kind: MountKind::Volume { name: name.into(), dir: format!("/v/{name}/_data").into(), copy_up: true },
            target: target.into(),
            read_only: false,
        }
    }

    #[test]
    fn a_recreated_container_takes_over_anonymous_volumes_by_target_only() {
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        let c = "c".repeat(64);
        let old: ContainerSpec = serde_json::from_value(serde_json::json!({
            "id": "1", "name": "p-s-1", "project": "p", "service": "s",
            "rootfs": {"layer_root": "/", "lower": []},
            "process": {"args": [], "env": [], "user": "", "additional_groups": [], "cwd": "/", "tty": false, "stdin_open": false, "capabilities": [], "no_new_privileges": false, "rlimits": []},
            "hostname": "h", "namespaces": {"net": "private", "pid": "private", "ipc": "private", "uts": "private"},
            "etc": {"hosts": "", "hostname": "", "resolv_conf": ""}, "shm_size": 0
        }))
        .unwrap_or_else(|e| panic!("spec: {e}"));
        let mut old = old;
        old.mounts = vec![volume(&a, "/data"), volume("p_named", "/named")];
        let mut new = old.clone();
        new.mounts = vec![volume(&b, "/data"), volume(&c, "/other"), volume("p_named", "/named")];
        take_over_anonymous(&mut new, &old);
        assert_eq!(anonymous_volumes(&new), vec![a.clone(), c]);
        assert_eq!(anonymous_volumes(&old), vec![a]);
        assert!(!is_anonymous("p_named"));
    }
}
