//! The workload of a service: a Deployment, a StatefulSet or a Job, its pod and restart policy.

use std::collections::BTreeSet;

use serde_json::{Map, Value as Json, json};

use super::names::{dns_label, is_dns1123_label, labels_and_annotations};
use super::volumes::{named_volumes, volume_users};
use super::{Ctx, Kind, container, dependencies, leftovers, waits, waits_for_completion};
use crate::spec::Service;

/// What the parts of a pod spec collect while the container is built.
#[derive(Debug, Default)]
pub(crate) struct Pod {
    pub volumes: Vec<Json>,
    pub claim_templates: Vec<Json>,
    pub init_containers: Vec<Json>,
    /// The pod reads the API (waits for Jobs or rollouts).
    pub service_account: bool,
    /// Some volume is a claim that a rolling update would have two pods attach.
    pub uses_claims: bool,
    names: BTreeSet<String>,
}

impl Pod {
    /// Adds a volume, named after `hint` and unique in the pod; returns its name.
    pub fn add_volume(&mut self, hint: &str, source: Json) -> String {
        let base = dns_label(hint, 55);
        let mut name = base.clone();
        let mut n = 2;
        while self.names.contains(&name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        self.names.insert(name.clone());
        // `name` first reads better; serde_json keeps insertion order.
        let mut volume = Map::new();
        volume.insert("name".into(), json!(name));
        if let Json::Object(map) = source {
            volume.extend(map);
        }
        self.volumes.push(Json::Object(volume));
        name
    }

    /// Reserves a claim template's name; false when it already was.
    pub fn claim(&mut self, name: &str) -> bool {
        self.names.insert(name.to_owned())
    }
}

/// Decides each service's workload: a Job when a dependent waits for it to complete, a
/// StatefulSet when it runs one replica and is the only one to mount its named volumes (a
/// claim template gives the pod its own claim, which no other service could share), else a
/// Deployment.
pub(super) fn assign_kinds(ctx: &mut Ctx<'_>) {
    let project = ctx.project;
    let jobs: BTreeSet<&str> = project
        .services
        .values()
        .flat_map(|s| dependencies(project, s))
        .filter(|(_, d)| waits_for_completion(d))
        .map(|(name, _)| name)
        .collect();
    let users = volume_users(ctx);
    for s in project.services.values() {
        let volumes = named_volumes(s);
        let alone = volumes.iter().all(|v| {
            users.get(v).is_some_and(|u| u.len() == 1) && !project.volumes.get(*v).is_some_and(|x| x.external)
        });
        let kind = if jobs.contains(s.name.as_str()) {
            Kind::Job
        } else if !volumes.is_empty() && alone && s.replicas() == 1 {
            Kind::StatefulSet
        } else {
            Kind::Deployment
        };
        ctx.kinds.insert(s.name.clone(), kind);
    }
}

/// Adds the service's workload.
pub(super) fn workload(ctx: &mut Ctx<'_>, service: &Service) {
    let svc = service.name.as_str();
    let name = ctx.names[svc].clone();
    let kind = ctx.kinds[svc];
    let mut pod = Pod::default();
    let container = container::container(ctx, service, &mut pod);
    waits::init_containers(ctx, service, &mut pod);
    leftovers::warn(ctx, service);

    let (user_labels, mut annotations) = labels_and_annotations(ctx, svc, &service.labels);
    if let Some(extra) = service.other.get("annotations").and_then(Json::as_object) {
        for (k, v) in extra {
            let text = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            annotations.insert(k.clone(), json!(text));
        }
    }
    let mut labels = user_labels;
    labels.extend(ctx.selector(svc));
    let mut template_meta = Map::new();
    template_meta.insert("labels".into(), Json::Object(labels.clone()));
    if !annotations.is_empty() {
        template_meta.insert("annotations".into(), Json::Object(annotations));
    }
    let restart = restart_policy(ctx, service, kind);
    let spec = pod_spec(ctx, service, container, &mut pod, restart.pod_policy);
    let template = json!({"metadata": template_meta, "spec": spec});

    let replicas = service.replicas();
    let mut w = Map::new();
    let mut ws = Map::new();
    match kind {
        Kind::Deployment | Kind::StatefulSet => {
            w.insert("apiVersion".into(), json!("apps/v1"));
            ws.insert("replicas".into(), json!(replicas));
            if kind == Kind::StatefulSet {
                ws.insert("serviceName".into(), json!(name));
            }
            ws.insert("selector".into(), json!({"matchLabels": ctx.selector(svc)}));
            if kind == Kind::Deployment && pod.uses_claims {
                // A rolling update would start the new pod while the old one holds the claim.
                ws.insert("strategy".into(), json!({"type": "Recreate"}));
            }
            ws.insert("template".into(), template);
            if !pod.claim_templates.is_empty() {
                ws.insert("volumeClaimTemplates".into(), Json::Array(std::mem::take(&mut pod.claim_templates)));
            }
        }
        Kind::Job => {
            w.insert("apiVersion".into(), json!("batch/v1"));
            if replicas != 1 {
                ws.insert("completions".into(), json!(replicas));
                ws.insert("parallelism".into(), json!(replicas));
            }
            ws.insert("backoffLimit".into(), json!(restart.backoff_limit));
            ws.insert("template".into(), template);
        }
    }
    w.insert("kind".into(), json!(kind.as_str()));
    w.insert("metadata".into(), ctx.metadata(&name, labels));
    w.insert("spec".into(), Json::Object(ws));
    ctx.push(Json::Object(w));
}

/// What a compose restart policy becomes.
struct Restart {
    /// `restartPolicy` of a Job's pods (Deployments and StatefulSets only allow Always).
    pod_policy: Option<&'static str>,
    backoff_limit: u64,
}

/// `restart` and `deploy.restart_policy` as far as Kubernetes can express them.
fn restart_policy(ctx: &mut Ctx<'_>, service: &Service, kind: Kind) -> Restart {
    let svc = service.name.as_str();
    let policy = service.deploy.as_ref().and_then(|d| d.restart_policy.as_ref());
    let (key, written): (&str, Option<String>) = match (service.restart.as_deref(), policy) {
        (Some(r), _) => ("restart", Some(r.to_owned())),
        (None, Some(p)) => (
            "deploy.restart_policy",
            p.condition.as_deref().map(|c| match c {
                "none" => "no".to_owned(),
                "any" => "always".to_owned(),
                other => match p.max_attempts {
                    Some(n) => format!("{other}:{n}"),
                    None => other.to_owned(),
                },
            }),
        ),
        (None, None) => ("restart", None),
    };
    if let Some(p) = policy {
        let mut left = Vec::new();
        if p.delay.is_some() {
            left.push("delay");
        }
        if p.window.is_some() {
            left.push("window");
        }
        if p.max_attempts.is_some() && kind != Kind::Job {
            left.push("max_attempts");
        }
        if !left.is_empty() {
            let msg = format!("{}: Kubernetes restarts with its own back-off: left out", left.join(", "));
            ctx.warn(svc, "deploy.restart_policy", msg);
        }
    }
    let written = written.unwrap_or_default();
    let (mode, attempts) = match written.split_once(':') {
        Some((m, n)) => (m, n.parse::<u64>().ok()),
        None => (written.as_str(), None),
    };
    match kind {
        Kind::Deployment | Kind::StatefulSet => {
            if matches!(mode, "no" | "on-failure") {
                let msg = format!(
                    "{written:?}: a {}'s pods always restart; a one-shot service becomes a Job only when a dependent waits for it to complete",
                    kind.as_str()
                );
                ctx.warn(svc, key, msg);
            }
            Restart { pod_policy: None, backoff_limit: 0 }
        }
        Kind::Job => match mode {
            "on-failure" => {
                if attempts.is_none() {
                    ctx.warn(svc, key, "unlimited retries: the Job retries 6 times, Kubernetes' default");
                }
                Restart { pod_policy: Some("OnFailure"), backoff_limit: attempts.unwrap_or(6) }
            }
            "always" | "unless-stopped" => {
                let msg = format!(
                    "{written:?}: a dependent waits for it to complete, so it runs as a Job, which is not restarted after it succeeds"
                );
                ctx.warn(svc, key, msg);
                Restart { pod_policy: Some("OnFailure"), backoff_limit: 6 }
            }
            _ => Restart { pod_policy: Some("Never"), backoff_limit: 0 },
        },
    }
}

/// The pod spec around the container: init containers, host namespaces, DNS, hosts, node
/// selection, pod security settings and volumes.
fn pod_spec(
    ctx: &mut Ctx<'_>,
    service: &Service,
    container: Json,
    pod: &mut Pod,
    restart: Option<&'static str>,
) -> Json {
    let svc = service.name.as_str();
    let mut spec = Map::new();
    if !pod.init_containers.is_empty() {
        spec.insert("initContainers".into(), Json::Array(std::mem::take(&mut pod.init_containers)));
    }
    spec.insert("containers".into(), json!([container]));
    if let Some(policy) = restart {
        spec.insert("restartPolicy".into(), json!(policy));
    }
    if pod.service_account {
        spec.insert("serviceAccountName".into(), json!(waits::waiter_name(ctx)));
    }
    if service.init == Some(true) {
        // The pod's pause process becomes PID 1 and reaps zombies, as docker's init does.
        spec.insert("shareProcessNamespace".into(), json!(true));
    }
    if let Some(host) = service.hostname.as_deref().filter(|h| !h.is_empty()) {
        if is_dns1123_label(host) {
            spec.insert("hostname".into(), json!(host));
        } else {
            ctx.warn(svc, "hostname", format!("{host:?} is not a DNS label, as a pod's hostname must be: left out"));
        }
    }
    match service.network_mode.as_deref() {
        Some("host") => {
            spec.insert("hostNetwork".into(), json!(true));
            spec.insert("dnsPolicy".into(), json!("ClusterFirstWithHostNet"));
        }
        Some(mode) if !mode.is_empty() && mode != "bridge" && mode != "default" => {
            let msg = format!(
                "{mode:?}: pods get their own network namespace; share one by putting containers in one pod: left out"
            );
            ctx.warn(svc, "network_mode", msg);
        }
        _ => {}
    }
    for (key, value, field) in [("pid", service.pid.as_deref(), "hostPID"), ("ipc", service.ipc.as_deref(), "hostIPC")]
    {
        match value {
            Some("host") => {
                spec.insert(field.into(), json!(true));
            }
            Some("" | "private" | "shareable") | None => {}
            Some(other) => ctx.warn(svc, key, format!("{other:?}: only the host's namespace can be shared: left out")),
        }
    }
    let dns = dns_config(service);
    if !dns.is_empty() {
        spec.insert("dnsConfig".into(), Json::Object(dns));
    }
    let aliases = host_aliases(ctx, service);
    if !aliases.is_empty() {
        spec.insert("hostAliases".into(), Json::Array(aliases));
    }
    if let Some(selector) = platform(ctx, service) {
        spec.insert("nodeSelector".into(), selector);
    }
    let sc = pod_security(ctx, service);
    if !sc.is_empty() {
        spec.insert("securityContext".into(), Json::Object(sc));
    }
    if let Some(grace) = service.stop_grace_period {
        spec.insert("terminationGracePeriodSeconds".into(), json!(super::probes::ceil_secs(grace.0)));
    }
    if !pod.volumes.is_empty() {
        spec.insert("volumes".into(), Json::Array(std::mem::take(&mut pod.volumes)));
    }
    Json::Object(spec)
}

/// `dns`, `dns_search` and `dns_opt`, added to the cluster's DNS settings (replacing them would
/// lose the Service names).
fn dns_config(service: &Service) -> Map<String, Json> {
    let mut dns = Map::new();
    if !service.dns.is_empty() {
        dns.insert("nameservers".into(), json!(service.dns));
    }
    if !service.dns_search.is_empty() {
        dns.insert("searches".into(), json!(service.dns_search));
    }
    if let Some(opts) = service.other.get("dns_opt").and_then(Json::as_array) {
        let options: Vec<Json> = opts
            .iter()
            .filter_map(Json::as_str)
            .map(|o| match o.split_once(':') {
                Some((n, v)) => json!({"name": n, "value": v}),
                None => json!({"name": o}),
            })
            .collect();
        dns.insert("options".into(), Json::Array(options));
    }
    dns
}

/// `extra_hosts` as hostAliases, one per address.
fn host_aliases(ctx: &mut Ctx<'_>, service: &Service) -> Vec<Json> {
    let mut by_ip: std::collections::BTreeMap<&str, Vec<&str>> = std::collections::BTreeMap::new();
    for (host, ips) in &service.extra_hosts {
        for ip in ips {
            if ip.parse::<std::net::IpAddr>().is_ok() {
                by_ip.entry(ip.as_str()).or_default().push(host.as_str());
            } else {
                let msg =
                    format!("{host}={ip}: Kubernetes takes addresses only (host-gateway has no equivalent): left out");
                ctx.warn(&service.name, "extra_hosts", msg);
            }
        }
    }
    by_ip.into_iter().map(|(ip, hosts)| json!({"ip": ip, "hostnames": hosts})).collect()
}

/// `platform: os/arch[/variant]` as a node selector on the well-known node labels.
fn platform(ctx: &mut Ctx<'_>, service: &Service) -> Option<Json> {
    let p = service.other.get("platform")?.as_str()?;
    let mut parts = p.split('/');
    let (os, arch, variant) = (parts.next()?, parts.next(), parts.next());
    if variant.is_some() {
        ctx.warn(&service.name, "platform", format!("{p}: the variant has no node label: left out"));
    }
    let mut sel = Map::new();
    sel.insert("kubernetes.io/os".into(), json!(os));
    if let Some(arch) = arch {
        sel.insert("kubernetes.io/arch".into(), json!(arch));
    }
    Some(Json::Object(sel))
}

/// The pod's securityContext: numeric `group_add` and `sysctls`.
fn pod_security(ctx: &mut Ctx<'_>, service: &Service) -> Map<String, Json> {
    let mut sc = Map::new();
    if let Some(groups) = service.other.get("group_add").and_then(Json::as_array) {
        let mut ids = Vec::new();
        for g in groups {
            let text = g.as_str().map_or_else(|| g.to_string(), str::to_owned);
            match text.parse::<i64>() {
                Ok(id) => ids.push(id),
                Err(_) => ctx.warn(
                    &service.name,
                    "group_add",
                    format!("{text:?}: Kubernetes needs numeric group ids: left out"),
                ),
            }
        }
        if !ids.is_empty() {
            sc.insert("supplementalGroups".into(), json!(ids));
        }
    }
    if !service.sysctls.is_empty() {
        let list: Vec<Json> = service.sysctls.iter().map(|(k, v)| json!({"name": k, "value": v})).collect();
        sc.insert("sysctls".into(), Json::Array(list));
    }
    sc
}
