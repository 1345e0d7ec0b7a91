//! Service `volumes`, `tmpfs` and the image's `VOLUME`s as mounts over the root filesystem.

use std::path::{Component, Path, PathBuf};

use crate::runtime::spec::{Mount, MountKind};
use crate::spec::Service;
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
    let mut seen: Vec<&str> = Vec::new();
    for m in &out {
        if seen.contains(&m.target.as_str()) {
            return Err(invalid(service, "volumes", format!("duplicate mount point {:?}", m.target)));
        }
        seen.push(&m.target);
    }
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
            let name = match ctx.project.volumes.get(key) {
                Some(v) if !v.name.is_empty() => v.name.clone(),
                _ => format!("{}_{key}", ctx.project.name),
            };
            let mut dir = volume_dir(ctx.state_root, &name);
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
