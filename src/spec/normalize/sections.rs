//! The nested sections of a service: ports, volumes, healthcheck, ulimits, deploy and develop.

use std::collections::BTreeMap;

use super::super::model::{Deploy, Develop, Healthcheck, ResourceLimits, Resources, RestartPolicy, Ulimit, WatchRule};
use super::super::yaml::{Mapping, Node, Value};
use super::super::{ports, volumes};
use super::canonical;
use super::read::{Reader, child, index, resolve_path};
use super::service::ServiceContext;

pub(super) fn port_list(r: &mut Reader, node: &Node, path: &str) -> Vec<ports::PortMapping> {
    let mut out = Vec::new();
    for (i, item) in node.as_seq().unwrap_or_default().iter().enumerate() {
        let p = index(path, i);
        let parsed = match &item.value {
            Value::Map(map) => {
                let target = map.get("target").and_then(|n| r.integer(n, &child(&p, "target")));
                let Some(target) = target else {
                    r.error(item, &p, "a port needs a target");
                    continue;
                };
                let field = |r: &mut Reader, k: &str| map.get(k).and_then(|n| r.string(n, &child(&p, k)));
                let published = field(r, "published");
                let host_ip = field(r, "host_ip");
                let protocol = field(r, "protocol");
                let mode = field(r, "mode");
                let name = field(r, "name");
                let app_protocol = field(r, "app_protocol");
                ports::expand_long(target, published, host_ip, protocol, mode, name, app_protocol)
            }
            _ => match r.string(item, &p) {
                Some(spec) => ports::parse_port_short(&spec),
                None => continue,
            },
        };
        match parsed {
            Ok(list) => out.extend(list),
            Err(e) => r.error(item, &p, e.to_string()),
        }
    }
    out
}

pub(super) fn volume_list(r: &mut Reader, ctx: &ServiceContext<'_>, node: &Node, path: &str) -> Vec<volumes::Mount> {
    let mut out = Vec::new();
    for (i, item) in node.as_seq().unwrap_or_default().iter().enumerate() {
        let p = index(path, i);
        let parsed = match &item.value {
            Value::Map(map) => match volume_long(r, map, &p) {
                Some(mount) => Ok(mount),
                None => continue,
            },
            _ => match r.string(item, &p) {
                Some(spec) => volumes::parse_volume_short(&spec).map_err(|e| e.to_string()),
                None => continue,
            },
        };
        match parsed {
            Ok(mut mount) => {
                if mount.r#type == volumes::MountType::Bind
                    && let Some(src) = &mount.source
                {
                    mount.source = Some(resolve_path(ctx.project_dir, src).display().to_string());
                }
                out.push(mount);
            }
            Err(e) => r.error(item, &p, e),
        }
    }
    out
}

/// The long volume syntax: `{type, source, target, read_only, bind, volume, tmpfs, image}`.
pub(super) fn volume_long(r: &mut Reader, map: &Mapping, path: &str) -> Option<volumes::Mount> {
    use volumes::{BindOptions, ImageOptions, Mount, MountType, TmpfsOptions, VolumeOptions};
    let field = |r: &mut Reader, k: &str| map.get(k).and_then(|n| r.string(n, &child(path, k)));
    let kind = field(r, "type").unwrap_or_else(|| "volume".into());
    let r#type = match kind.as_str() {
        "bind" => MountType::Bind,
        "volume" => MountType::Volume,
        "tmpfs" => MountType::Tmpfs,
        "image" => MountType::Image,
        "npipe" => MountType::Npipe,
        "cluster" => MountType::Cluster,
        other => {
            if let Some(n) = map.get("type") {
                r.error(
                    n,
                    &child(path, "type"),
                    format!("unknown mount type {other:?}: expected bind, volume, tmpfs or image"),
                );
            }
            return None;
        }
    };
    let Some(target) = field(r, "target") else {
        let at = map.values().next().map_or_else(Default::default, |n| n.location.clone());
        r.errors.push(super::super::error::SpecError::at(
            super::super::error::Stage::Semantic,
            &at,
            path,
            "a mount needs a target",
        ));
        return None;
    };
    if !target.starts_with('/')
        && let Some(n) = map.get("target")
    {
        r.error(n, &child(path, "target"), format!("mount target {target:?} must be an absolute path"));
    }
    let target = if target.starts_with('/') { volumes::clean_absolute(&target) } else { target };
    let sub = |k: &str| map.get(k).and_then(Node::as_map);
    let sp = |k: &str, f: &str| child(&child(path, k), f);
    let bind = sub("bind").map(|m| BindOptions {
        propagation: m.get("propagation").and_then(|n| r.string(n, &sp("bind", "propagation"))),
        // The long syntax creates a missing host path only when asked to.
        create_host_path: m
            .get("create_host_path")
            .and_then(|n| r.boolean(n, &sp("bind", "create_host_path")))
            .unwrap_or(false),
        selinux: m.get("selinux").and_then(|n| r.string(n, &sp("bind", "selinux"))),
        recursive: m.get("recursive").and_then(|n| r.string(n, &sp("bind", "recursive"))),
    });
    let volume = sub("volume").map(|m| VolumeOptions {
        nocopy: m.get("nocopy").and_then(|n| r.boolean(n, &sp("volume", "nocopy"))).unwrap_or(false),
        subpath: m.get("subpath").and_then(|n| r.string(n, &sp("volume", "subpath"))),
        labels: m.get("labels").map(|n| r.labels(n, &sp("volume", "labels"))).unwrap_or_default(),
    });
    let tmpfs = sub("tmpfs").map(|m| TmpfsOptions {
        size: m.get("size").and_then(|n| r.bytes(n, &sp("tmpfs", "size"))),
        mode: m.get("mode").and_then(|n| r.integer(n, &sp("tmpfs", "mode"))).and_then(|v| u32::try_from(v).ok()),
    });
    let image = sub("image")
        .map(|m| ImageOptions { subpath: m.get("subpath").and_then(|n| r.string(n, &sp("image", "subpath"))) });
    let source = field(r, "source");
    if r#type == MountType::Bind
        && source.is_none()
        && let Some(n) = map.get("type")
    {
        r.error(n, path, "a bind mount needs a source");
    }
    Some(Mount {
        r#type,
        source,
        target,
        read_only: map.get("read_only").and_then(|n| r.boolean(n, &child(path, "read_only"))).unwrap_or(false),
        consistency: field(r, "consistency"),
        bind,
        volume,
        tmpfs,
        image,
    })
}

pub(super) fn healthcheck(r: &mut Reader, node: &Node, path: &str) -> Option<Healthcheck> {
    let map = node.as_map()?;
    let p = |k: &str| child(path, k);
    let mut h = Healthcheck::default();
    if let Some(n) = map.get("test") {
        h.test = match &n.value {
            Value::Seq(_) => r.strings(n, &p("test")),
            _ => match r.string(n, &p("test")) {
                Some(s) if s == "NONE" => vec!["NONE".into()],
                Some(s) => vec!["CMD-SHELL".into(), s],
                None => Vec::new(),
            },
        };
        if let Some(first) = h.test.first()
            && !matches!(first.as_str(), "NONE" | "CMD" | "CMD-SHELL")
        {
            r.error(n, &p("test"), format!("a test list must start with CMD, CMD-SHELL or NONE, not {first:?}"));
        }
    }
    for (key, field) in [
        ("interval", &mut h.interval),
        ("timeout", &mut h.timeout),
        ("start_period", &mut h.start_period),
        ("start_interval", &mut h.start_interval),
    ] {
        if let Some(n) = map.get(key) {
            *field = r.duration(n, &p(key));
        }
    }
    h.retries = map.get("retries").and_then(|n| r.count(n, &p("retries")));
    h.disable = map.get("disable").and_then(|n| r.boolean(n, &p("disable"))).unwrap_or(false);
    Some(h)
}

pub(super) fn ulimits(r: &mut Reader, node: &Node, path: &str) -> BTreeMap<String, Ulimit> {
    let mut out = BTreeMap::new();
    for (name, v) in node.as_map().into_iter().flatten() {
        let p = child(path, name);
        let limit = match v.as_map() {
            Some(m) => {
                let soft = m.get("soft").and_then(|n| r.integer(n, &child(&p, "soft")));
                let hard = m.get("hard").and_then(|n| r.integer(n, &child(&p, "hard")));
                match (soft, hard) {
                    (Some(soft), Some(hard)) if soft <= hard => Some(Ulimit { soft, hard, single: false }),
                    (Some(soft), Some(hard)) => {
                        r.error(v, &p, format!("soft limit {soft} is above the hard limit {hard}"));
                        None
                    }
                    _ => {
                        r.error(v, &p, "a ulimit mapping needs both soft and hard");
                        None
                    }
                }
            }
            None => r.integer(v, &p).map(|n| Ulimit { soft: n, hard: n, single: true }),
        };
        if let Some(limit) = limit {
            out.insert(name.clone(), limit);
        }
    }
    out
}

pub(super) fn deploy(r: &mut Reader, node: &Node, path: &str) -> Option<Deploy> {
    let map = node.as_map()?;
    let p = |k: &str| child(path, k);
    let mut d = Deploy {
        other: Reader::verbatim(map, &["replicas", "resources", "restart_policy", "placement"]),
        placement: map.get("placement").map(|n| canonical::placement(&n.to_json())).unwrap_or_default(),
        ..Deploy::default()
    };
    canonical::deploy(&mut d.other);
    d.replicas = map.get("replicas").and_then(|n| r.count(n, &p("replicas")));
    if let Some(res) = map.get("resources").and_then(Node::as_map) {
        let mut limits = |key: &str| -> Option<ResourceLimits> {
            let m = res.get(key)?.as_map()?;
            let q = child(&p("resources"), key);
            let mut other = Reader::verbatim(m, &["cpus", "memory", "pids"]);
            canonical::resource_limits(&mut other);
            Some(ResourceLimits {
                cpus: m.get("cpus").and_then(|n| r.number(n, &child(&q, "cpus"))),
                memory: m.get("memory").and_then(|n| r.bytes(n, &child(&q, "memory"))),
                pids: m.get("pids").and_then(|n| r.integer(n, &child(&q, "pids"))),
                other,
            })
        };
        d.resources = Some(Resources { limits: limits("limits"), reservations: limits("reservations") });
    }
    if let Some(rp) = map.get("restart_policy").and_then(Node::as_map) {
        let q = |k: &str| child(&p("restart_policy"), k);
        let condition = rp.get("condition").and_then(|n| r.string(n, &q("condition")));
        if let Some(c) = &condition
            && !matches!(c.as_str(), "none" | "on-failure" | "any")
            && let Some(n) = rp.get("condition")
        {
            r.error(n, &q("condition"), format!("unknown restart condition {c:?}: expected none, on-failure or any"));
        }
        d.restart_policy = Some(RestartPolicy {
            condition,
            delay: rp.get("delay").and_then(|n| r.duration(n, &q("delay"))),
            max_attempts: rp.get("max_attempts").and_then(|n| r.count(n, &q("max_attempts"))),
            window: rp.get("window").and_then(|n| r.duration(n, &q("window"))),
        });
    }
    Some(d)
}

pub(super) fn develop(r: &mut Reader, ctx: &ServiceContext<'_>, node: &Node, path: &str) -> Option<Develop> {
    let watch = node.get("watch")?;
    let wp = child(path, "watch");
    let mut rules = Vec::new();
    for (i, item) in watch.as_seq().unwrap_or_default().iter().enumerate() {
        let p = index(&wp, i);
        let Some(m) = item.as_map() else { continue };
        let field = |r: &mut Reader, k: &str| m.get(k).and_then(|n| r.string(n, &child(&p, k)));
        let (Some(raw_path), Some(action)) = (field(r, "path"), field(r, "action")) else {
            r.error(item, &p, "a watch rule needs path and action");
            continue;
        };
        if !matches!(action.as_str(), "sync" | "rebuild" | "restart" | "sync+restart" | "sync+exec")
            && let Some(n) = m.get("action")
        {
            r.error(n, &child(&p, "action"), format!("unknown watch action {action:?}"));
        }
        rules.push(WatchRule {
            path: resolve_path(ctx.project_dir, &raw_path).display().to_string(),
            action,
            target: field(r, "target"),
            ignore: m.get("ignore").map(|n| r.strings(n, &child(&p, "ignore"))).unwrap_or_default(),
            include: m.get("include").map(|n| r.strings(n, &child(&p, "include"))).unwrap_or_default(),
            initial_sync: m.get("initial_sync").and_then(|n| r.boolean(n, &child(&p, "initial_sync"))).unwrap_or(false),
            exec: m.get("exec").map(|n| canonical::hook(&n.to_json())),
        });
    }
    Some(Develop { watch: rules })
}
