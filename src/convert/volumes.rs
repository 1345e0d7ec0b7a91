//! Mounts: named volumes as claims, anonymous volumes and tmpfs as emptyDirs, bind mounts
//! as asked, secrets and configs as Secret and ConfigMap files at the same paths.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value as Json, json};

use super::container::bytes_quantity;
use super::files::object_name;
use super::names::{data_key, dns_label, is_label_value, is_qualified_name};
use super::workload::Pod;
use super::{BindMounts, Ctx, Kind};
use crate::spec::Service;
use crate::spec::model::FileMount;
use crate::spec::volumes::{Mount, MountType, parse_tmpfs_entry};

/// A claim's size when the volume names none (`x-berth-size`).
const DEFAULT_CLAIM_SIZE: &str = "1Gi";

/// The named volumes (keys of the project's `volumes`) a service mounts.
pub(super) fn named_volumes(service: &Service) -> BTreeSet<&str> {
    service
        .volumes
        .iter()
        .filter(|m| m.r#type == MountType::Volume)
        .filter_map(|m| m.source.as_deref())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The services mounting each named volume.
pub(super) fn volume_users<'a>(ctx: &Ctx<'a>) -> BTreeMap<&'a str, Vec<&'a str>> {
    let mut users: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for s in ctx.project.services.values() {
        for v in named_volumes(s) {
            users.entry(v).or_default().push(s.name.as_str());
        }
    }
    users
}

/// The claim a named volume is: its own name when external (it exists), else its key.
fn claim_name(ctx: &Ctx<'_>, key: &str) -> String {
    match ctx.project.volumes.get(key) {
        Some(v) if v.external && !v.name.is_empty() => dns_label(&v.name, 253),
        _ => dns_label(key, 253),
    }
}

fn is_external(ctx: &Ctx<'_>, key: &str) -> bool {
    ctx.project.volumes.get(key).is_some_and(|v| v.external)
}

/// The claim's spec: size and storage class from `x-berth-size` / `x-berth-storage-class`.
fn claim_spec(ctx: &Ctx<'_>, key: &str, access: &str) -> Json {
    let other = ctx.project.volumes.get(key).map(|v| &v.other);
    let get = |k: &str| other.and_then(|o| o.get(k)).and_then(Json::as_str).map(str::to_owned);
    let mut spec = Map::new();
    spec.insert("accessModes".into(), json!([access]));
    if let Some(class) = get("x-berth-storage-class") {
        spec.insert("storageClassName".into(), json!(class));
    }
    let size = get("x-berth-size").unwrap_or_else(|| DEFAULT_CLAIM_SIZE.to_owned());
    spec.insert("resources".into(), json!({"requests": {"storage": size}}));
    Json::Object(spec)
}

/// The container's volume mounts, adding their volumes (and claim templates) to `pod`.
pub(super) fn mounts(ctx: &mut Ctx<'_>, service: &Service, pod: &mut Pod) -> Vec<Json> {
    let svc = service.name.as_str();
    let mut out = Vec::new();
    for m in &service.volumes {
        let Some(name) = mount_volume(ctx, service, m, pod) else { continue };
        let mut mount = Map::new();
        mount.insert("name".into(), json!(name));
        mount.insert("mountPath".into(), json!(m.target));
        if let Some(sub) = m.volume.as_ref().and_then(|v| v.subpath.as_deref()) {
            mount.insert("subPath".into(), json!(sub));
        }
        if m.read_only {
            mount.insert("readOnly".into(), json!(true));
        }
        if let Some(p) = m.bind.as_ref().and_then(|b| b.propagation.as_deref()) {
            ctx.warn(svc, "volumes", format!("{}: propagation {p}: left out", m.target));
        }
        out.push(Json::Object(mount));
    }
    for entry in &service.tmpfs {
        let Ok(t) = parse_tmpfs_entry(entry) else {
            ctx.warn(svc, "tmpfs", format!("{entry:?} cannot be read: left out"));
            continue;
        };
        if !t.flags.is_empty() {
            let msg = format!("{}: mount options {} cannot be expressed: left out", t.mount.target, t.flags.join(","));
            ctx.warn(svc, "tmpfs", msg);
        }
        let size = t.mount.tmpfs.as_ref().and_then(|o| o.size);
        let name = pod.add_volume(&format!("tmpfs{}", t.mount.target), memory_dir(size));
        out.push(json!({"name": name, "mountPath": t.mount.target}));
    }
    if let Some(size) = service.shm_size {
        // The usual way to size /dev/shm: a memory-backed emptyDir over it.
        let name = pod.add_volume("shm", memory_dir(Some(size)));
        out.push(json!({"name": name, "mountPath": "/dev/shm"}));
    }
    for (kind, mounts) in [("secrets", &service.secrets), ("configs", &service.configs)] {
        for m in mounts {
            out.push(file_mount(ctx, svc, kind, m, pod));
        }
    }
    out
}

fn memory_dir(size: Option<u64>) -> Json {
    match size {
        Some(bytes) => json!({"emptyDir": {"medium": "Memory", "sizeLimit": bytes_quantity(bytes)}}),
        None => json!({"emptyDir": {"medium": "Memory"}}),
    }
}

/// The pod volume for one service mount, by name; `None` when it is left out.
fn mount_volume(ctx: &mut Ctx<'_>, service: &Service, m: &Mount, pod: &mut Pod) -> Option<String> {
    let svc = service.name.as_str();
    let source = m.source.as_deref().filter(|s| !s.is_empty());
    match (m.r#type, source) {
        (MountType::Volume, None) => Some(pod.add_volume(&format!("anon{}", m.target), json!({"emptyDir": {}}))),
        (MountType::Volume, Some(key)) => {
            if ctx.kinds.get(svc) == Some(&Kind::StatefulSet) && !is_external(ctx, key) {
                let name = dns_label(key, 63);
                if pod.claim(&name) {
                    let meta = json!({"name": name});
                    pod.claim_templates.push(json!({"metadata": meta, "spec": claim_spec(ctx, key, "ReadWriteOnce")}));
                }
                return Some(name);
            }
            pod.uses_claims = true;
            let claim = claim_name(ctx, key);
            Some(pod.add_volume(key, json!({"persistentVolumeClaim": {"claimName": claim}})))
        }
        (MountType::Tmpfs, _) => {
            let size = m.tmpfs.as_ref().and_then(|o| o.size);
            Some(pod.add_volume(&format!("tmpfs{}", m.target), memory_dir(size)))
        }
        (MountType::Bind, _) => {
            let src = source.unwrap_or_default();
            let what = format!("{src}:{}", m.target);
            match ctx.options.bind_mounts {
                BindMounts::Skip => {
                    let msg = format!(
                        "{what}: a host path is not portable to a cluster: left out \
                         (--bind-mounts empty-dir or host-path to keep it)"
                    );
                    ctx.warn(svc, "volumes", msg);
                    None
                }
                BindMounts::EmptyDir => {
                    ctx.warn(svc, "volumes", format!("{what}: a host path, mounted as an empty directory"));
                    Some(pod.add_volume(&format!("bind{}", m.target), json!({"emptyDir": {}})))
                }
                BindMounts::HostPath => {
                    let msg =
                        format!("{what}: a host path, mounted from the file system of whichever node runs the pod");
                    ctx.warn(svc, "volumes", msg);
                    Some(pod.add_volume(&format!("bind{}", m.target), json!({"hostPath": {"path": src}})))
                }
            }
        }
        (other, _) => {
            let kind = serde_json::to_value(other).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
            ctx.warn(
                svc,
                "volumes",
                format!("{}: a mount of type {kind} has no Kubernetes equivalent: left out", m.target),
            );
            None
        }
    }
}

/// A secret or config as one file from its Secret or ConfigMap at the path compose uses.
fn file_mount(ctx: &mut Ctx<'_>, svc: &str, kind: &str, m: &FileMount, pod: &mut Pod) -> Json {
    let (objects, dir) =
        if kind == "secrets" { (&ctx.project.secrets, "/run/secrets/") } else { (&ctx.project.configs, "/") };
    let target = match m.target.as_deref().filter(|t| !t.is_empty()) {
        Some(t) if t.starts_with('/') => t.to_owned(),
        Some(t) => format!("/run/secrets/{t}"),
        None => format!("{dir}{}", m.source),
    };
    let name = object_name(&m.source, objects.get(&m.source));
    if m.uid.is_some() || m.gid.is_some() {
        let msg =
            format!("{}: uid and gid: Kubernetes sets a file's group only pod-wide (fsGroup): left out", m.source);
        ctx.warn(svc, kind, msg);
    }
    let mut source = Map::new();
    if kind == "secrets" {
        source.insert("secretName".into(), json!(name));
    } else {
        source.insert("name".into(), json!(name));
    }
    if let Some(mode) = m.mode {
        source.insert("defaultMode".into(), json!(mode));
    }
    let field = if kind == "secrets" { "secret" } else { "configMap" };
    let volume = pod.add_volume(&format!("{}-{}", &kind[..kind.len() - 1], m.source), json!({ field: source }));
    json!({"name": volume, "mountPath": target, "subPath": data_key(&m.source), "readOnly": true})
}

/// A PersistentVolumeClaim for each named volume that Deployments mount (StatefulSets bring
/// their own; external volumes' claims exist), and warnings for what a claim cannot say.
pub(super) fn claims(ctx: &mut Ctx<'_>) {
    let users = volume_users(ctx);
    for (key, services) in &users {
        let subject = format!("volume {key:?}");
        let Some(volume) = ctx.project.volumes.get(*key) else { continue };
        if let Some(driver) = volume.driver.as_deref().filter(|d| !d.is_empty() && *d != "local") {
            ctx.warn_about(subject.clone(), "driver", format!("{driver}: use x-berth-storage-class to pick storage"));
        }
        for k in volume.other.keys().filter(|k| !k.starts_with("x-")) {
            ctx.warn_about(subject.clone(), k, "has no PersistentVolumeClaim equivalent: left out");
        }
        let stateful = services.iter().any(|s| ctx.kinds.get(*s) == Some(&Kind::StatefulSet));
        if volume.external || stateful {
            continue;
        }
        let replicas: u64 = services.iter().filter_map(|s| ctx.project.services.get(*s)).map(Service::replicas).sum();
        let access = if services.len() > 1 || replicas > 1 {
            let msg = format!(
                "mounted by {} pods at once ({}): the claim is ReadWriteMany, which needs a storage class that offers it",
                replicas.max(2),
                services.join(", ")
            );
            ctx.warn_about(subject.clone(), "volumes", msg);
            "ReadWriteMany"
        } else {
            "ReadWriteOnce"
        };
        let mut labels = Map::new();
        for (k, v) in &volume.labels {
            if is_qualified_name(k) && is_label_value(v) {
                labels.insert(k.clone(), json!(v));
            } else {
                ctx.warn_about(subject.clone(), "labels", format!("{k}={v} is not a valid Kubernetes label: left out"));
            }
        }
        let name = claim_name(ctx, key);
        let spec = claim_spec(ctx, key, access);
        let meta = ctx.metadata(&name, labels);
        ctx.push(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta, "spec": spec}));
    }
}
