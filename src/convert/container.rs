//! The service's container: image, command, environment, resources, security context, hooks.

use serde_json::{Map, Value as Json, json};

use super::workload::Pod;
use super::{Ctx, files, network, probes, volumes};
use crate::spec::Service;

/// Kubernetes expands `$(VAR)` in env values, command and args, and reads `$$` as `$`;
/// compose already interpolated these, so every `$` left is literal.
pub(super) fn escape(s: &str) -> String {
    s.replace('$', "$$")
}

fn escaped(items: &[String]) -> Json {
    json!(items.iter().map(|s| escape(s)).collect::<Vec<_>>())
}

/// The container of a service, adding its volumes to `pod`.
pub(super) fn container(ctx: &mut Ctx<'_>, service: &Service, pod: &mut Pod) -> Json {
    let svc = service.name.as_str();
    let mut c = Map::new();
    c.insert("name".into(), json!(ctx.names[svc]));
    c.insert("image".into(), json!(image(ctx, service)));
    match &service.entrypoint {
        Some(e) if e.is_empty() => ctx.warn(
            svc,
            "entrypoint",
            "an empty entrypoint (reset) cannot be expressed: Kubernetes uses the image's entrypoint",
        ),
        Some(e) => {
            c.insert("command".into(), escaped(e));
        }
        None => {}
    }
    if let Some(cmd) = &service.command {
        // An empty command means the image's, as an absent `args` does.
        if !cmd.is_empty() {
            c.insert("args".into(), escaped(cmd));
        }
    }
    if let Some(dir) = service.working_dir.as_deref().filter(|d| !d.is_empty()) {
        c.insert("workingDir".into(), json!(dir));
    }
    let (env, env_from) = files::environment(ctx, service);
    if !env.is_empty() {
        c.insert("env".into(), Json::Array(env));
    }
    if let Some(from) = env_from {
        c.insert("envFrom".into(), json!([from]));
    }
    let ports = network::container_ports(service);
    if !ports.is_empty() {
        c.insert("ports".into(), Json::Array(ports));
    }
    if let Some(r) = resources(ctx, service) {
        c.insert("resources".into(), r);
    }
    let mounts = volumes::mounts(ctx, service, pod);
    if !mounts.is_empty() {
        c.insert("volumeMounts".into(), Json::Array(mounts));
    }
    probes::add(ctx, service, &mut c);
    if let Some(l) = lifecycle(ctx, service) {
        c.insert("lifecycle".into(), l);
    }
    let sc = security_context(ctx, service);
    if !sc.is_empty() {
        c.insert("securityContext".into(), Json::Object(sc));
    }
    if service.stdin_open {
        c.insert("stdin".into(), json!(true));
    }
    if service.tty {
        c.insert("tty".into(), json!(true));
    }
    if let Some(policy) = pull_policy(ctx, service) {
        c.insert("imagePullPolicy".into(), json!(policy));
    }
    Json::Object(c)
}

/// The image; a build-only service gets the name berth tags its build with.
fn image(ctx: &mut Ctx<'_>, service: &Service) -> String {
    match (&service.image, &service.build) {
        (Some(image), Some(_)) => {
            let msg = format!("not converted: push {image} to a registry the cluster pulls from");
            ctx.warn(&service.name, "build", msg);
            image.clone()
        }
        (Some(image), None) => image.clone(),
        (None, _) => {
            let image = format!("{}-{}", ctx.project.name, service.name);
            let msg = format!("not converted and no image: the manifests name {image:?}; build, push and rename it");
            ctx.warn(&service.name, "build", msg);
            image
        }
    }
}

fn pull_policy(ctx: &mut Ctx<'_>, service: &Service) -> Option<&'static str> {
    match service.pull_policy.as_deref()? {
        "always" | "daily" | "weekly" => Some("Always"),
        "never" => Some("Never"),
        "missing" | "if_not_present" => Some("IfNotPresent"),
        other => {
            let msg = format!("{other:?} has no Kubernetes equivalent: the cluster's default applies");
            ctx.warn(&service.name, "pull_policy", msg);
            None
        }
    }
}

/// A byte count as a Kubernetes quantity, in binary units when exact.
pub(super) fn bytes_quantity(bytes: u64) -> String {
    for (shift, unit) in [(40, "Ti"), (30, "Gi"), (20, "Mi"), (10, "Ki")] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// CPUs as a quantity: whole cores, else millicores (at least 1m).
fn cpu_quantity(cpus: f64) -> Option<String> {
    if !cpus.is_finite() || cpus <= 0.0 {
        return None;
    }
    let milli = (cpus * 1000.0).round().max(1.0);
    // Bounded above by any real machine's CPU count; the cast cannot truncate in practice.
    #[allow(clippy::cast_possible_truncation)]
    let milli = milli.min(1e12) as u64;
    Some(if milli.is_multiple_of(1000) { (milli / 1000).to_string() } else { format!("{milli}m") })
}

/// `mem_limit`, `cpus`, `mem_reservation` and `deploy.resources` as limits and requests.
fn resources(ctx: &mut Ctx<'_>, service: &Service) -> Option<Json> {
    let res = service.deploy.as_ref().and_then(|d| d.resources.as_ref());
    let lim = res.and_then(|r| r.limits.as_ref());
    let req = res.and_then(|r| r.reservations.as_ref());
    let mut limits = Map::new();
    if let Some(cpu) = lim.and_then(|l| l.cpus).or(service.cpus).and_then(cpu_quantity) {
        limits.insert("cpu".into(), json!(cpu));
    }
    if let Some(mem) = lim.and_then(|l| l.memory).or(service.mem_limit) {
        limits.insert("memory".into(), json!(bytes_quantity(mem)));
    }
    let mut requests = Map::new();
    if let Some(cpu) = req.and_then(|r| r.cpus).and_then(cpu_quantity) {
        requests.insert("cpu".into(), json!(cpu));
    }
    let reservation = service.other.get("mem_reservation").and_then(|v| v.as_str()?.parse::<u64>().ok());
    if let Some(mem) = req.and_then(|r| r.memory).or(reservation) {
        requests.insert("memory".into(), json!(bytes_quantity(mem)));
    }
    for (which, l) in [("limits", lim), ("reservations", req)] {
        let Some(l) = l else { continue };
        if l.pids.is_some() {
            ctx.warn(
                &service.name,
                &format!("deploy.resources.{which}.pids"),
                "Kubernetes has no per-container process limit (the kubelet sets one per pod): left out",
            );
        }
        for key in l.other.keys() {
            let msg = "devices and generic resources need the cluster's device plugins (nvidia.com/gpu, …): left out";
            ctx.warn(&service.name, &format!("deploy.resources.{which}.{key}"), msg);
        }
    }
    let mut out = Map::new();
    if !limits.is_empty() {
        out.insert("limits".into(), Json::Object(limits));
    }
    if !requests.is_empty() {
        out.insert("requests".into(), Json::Object(requests));
    }
    (!out.is_empty()).then_some(Json::Object(out))
}

/// The container's securityContext: user, capabilities, read-only root, privileged, and
/// `no-new-privileges`.
fn security_context(ctx: &mut Ctx<'_>, service: &Service) -> Map<String, Json> {
    let mut sc = Map::new();
    if let Some(user) = service.user.as_deref().filter(|u| !u.is_empty()) {
        let (u, g) = match user.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (user, None),
        };
        let id = |s: &str| if s == "root" { Some(0) } else { s.parse::<i64>().ok() };
        match (id(u), g.map(id)) {
            (Some(uid), None) => {
                sc.insert("runAsUser".into(), json!(uid));
            }
            (Some(uid), Some(Some(gid))) => {
                sc.insert("runAsUser".into(), json!(uid));
                sc.insert("runAsGroup".into(), json!(gid));
            }
            _ => ctx.warn(
                &service.name,
                "user",
                format!("{user:?}: Kubernetes needs numeric user and group ids: the image's user runs"),
            ),
        }
    }
    let caps = |list: &[String]| -> Vec<String> {
        list.iter().map(|c| c.to_ascii_uppercase().trim_start_matches("CAP_").to_owned()).collect()
    };
    let mut capabilities = Map::new();
    if !service.cap_add.is_empty() {
        capabilities.insert("add".into(), json!(caps(&service.cap_add)));
    }
    if !service.cap_drop.is_empty() {
        capabilities.insert("drop".into(), json!(caps(&service.cap_drop)));
    }
    if !capabilities.is_empty() {
        sc.insert("capabilities".into(), Json::Object(capabilities));
    }
    if service.privileged {
        sc.insert("privileged".into(), json!(true));
    }
    if service.read_only {
        sc.insert("readOnlyRootFilesystem".into(), json!(true));
    }
    if let Some(opts) = service.other.get("security_opt").and_then(Json::as_array) {
        for opt in opts.iter().filter_map(Json::as_str) {
            match opt {
                "no-new-privileges" | "no-new-privileges:true" | "no-new-privileges=true" => {
                    sc.insert("allowPrivilegeEscalation".into(), json!(false));
                }
                "no-new-privileges:false" | "no-new-privileges=false" => {}
                _ => ctx.warn(
                    &service.name,
                    "security_opt",
                    format!("{opt:?}: SELinux, AppArmor and seccomp options are not converted: left out"),
                ),
            }
        }
    }
    sc
}

/// `post_start` and `pre_stop` hooks as the container's lifecycle handlers (one exec each).
fn lifecycle(ctx: &mut Ctx<'_>, service: &Service) -> Option<Json> {
    let mut out = Map::new();
    for (key, field) in [("post_start", "postStart"), ("pre_stop", "preStop")] {
        let Some(hooks) = service.other.get(key).and_then(Json::as_array) else { continue };
        let Some(first) = hooks.first() else { continue };
        if hooks.len() > 1 {
            ctx.warn(&service.name, key, "Kubernetes runs one handler: only the first hook is converted");
        }
        let command: Vec<String> = first
            .get("command")
            .and_then(Json::as_array)
            .map(|c| c.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        if command.is_empty() {
            ctx.warn(&service.name, key, "a hook without a command: left out");
            continue;
        }
        let extra: Vec<&str> =
            first.as_object().into_iter().flatten().map(|(k, _)| k.as_str()).filter(|k| *k != "command").collect();
        if !extra.is_empty() {
            let msg = format!("{}: a handler runs as the container does: left out", extra.join(", "));
            ctx.warn(&service.name, key, msg);
        }
        out.insert(field.into(), json!({"exec": {"command": command}}));
    }
    (!out.is_empty()).then_some(Json::Object(out))
}
