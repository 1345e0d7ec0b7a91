//! Ports, expose and network aliases as Kubernetes Services named like the service, so the
//! names that work inside berth work in the cluster.

use std::collections::BTreeSet;

use serde_json::{Map, Value as Json, json};

use super::names::{dns_label, is_dns_label};
use super::{Ctx, dependencies};
use crate::spec::Service;

/// `expose: 1000-65535` would make a Service of thousands of ports; ranges stop here.
const MAX_RANGE: u32 = 100;

/// One port a service listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Port {
    port: u16,
    /// `TCP`, `UDP` or `SCTP`.
    protocol: String,
    published: Option<String>,
    host_ip: Option<String>,
    name: Option<String>,
    app_protocol: Option<String>,
}

/// `ports` then `expose`, one entry per container port and protocol.
fn ports(service: &Service) -> (Vec<Port>, Vec<String>) {
    let mut out: Vec<Port> = Vec::new();
    let mut problems = Vec::new();
    for p in &service.ports {
        out.push(Port {
            port: p.target,
            protocol: p.protocol.to_ascii_uppercase(),
            published: p.published.clone().filter(|s| !s.is_empty()),
            host_ip: p.host_ip.clone().filter(|s| !s.is_empty()),
            name: p.name.clone(),
            app_protocol: p.app_protocol.clone(),
        });
    }
    for e in &service.expose {
        let (range, proto) = e.split_once('/').unwrap_or((e, "tcp"));
        let (lo, hi) = range.split_once('-').unwrap_or((range, range));
        let (Ok(lo), Ok(hi)) = (lo.trim().parse::<u16>(), hi.trim().parse::<u16>()) else {
            problems.push(format!("{e:?} is not a port or range: left out"));
            continue;
        };
        if u32::from(hi).saturating_sub(u32::from(lo)) >= MAX_RANGE {
            problems.push(format!("{e}: only the first {MAX_RANGE} ports of the range are listed"));
        }
        for port in (lo..=hi).take(MAX_RANGE as usize) {
            let protocol = proto.to_ascii_uppercase();
            out.push(Port { port, protocol, published: None, host_ip: None, name: None, app_protocol: None });
        }
    }
    let mut seen = BTreeSet::new();
    out.retain(|p| seen.insert((p.port, p.protocol.clone())));
    (out, problems)
}

/// The container's `ports` list.
pub(super) fn container_ports(service: &Service) -> Vec<Json> {
    ports(service)
        .0
        .iter()
        .map(|p| {
            let mut m = Map::new();
            m.insert("containerPort".into(), json!(p.port));
            m.insert("protocol".into(), json!(p.protocol));
            Json::Object(m)
        })
        .collect()
}

/// An IANA service name, what a Service port's name must be.
fn is_port_name(s: &str) -> bool {
    s.len() <= 15 && is_dns_label(s) && !s.contains("--") && s.bytes().any(|b| b.is_ascii_lowercase())
}

/// The DNS names other containers reach this service by besides its own: network aliases,
/// `container_name`, and the aliases other services' `links` give it.
fn aliases(ctx: &Ctx<'_>, service: &Service) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = service
        .networks
        .values()
        .flatten()
        .flat_map(|n| n.aliases.iter().cloned())
        .chain(service.container_name.clone().filter(|c| !c.is_empty()))
        .collect();
    for other in ctx.project.services.values() {
        for link in &other.links {
            if let Some((target, alias)) = link.split_once(':')
                && target == service.name
            {
                out.insert(alias.to_owned());
            }
        }
    }
    out.remove(&service.name);
    out
}

/// The service's Kubernetes Service, and one per alias with the same selector and ports.
pub(super) fn services(ctx: &mut Ctx<'_>, service: &Service) {
    let svc = service.name.as_str();
    let (ports, problems) = ports(service);
    for p in problems {
        ctx.warn(svc, "expose", p);
    }
    for (key, net) in &service.networks {
        let Some(net) = net else { continue };
        for (field, set) in [("ipv4_address", &net.ipv4_address), ("ipv6_address", &net.ipv6_address)] {
            if set.as_deref().is_some_and(|s| !s.is_empty()) {
                ctx.warn(svc, "networks", format!("{key}.{field}: pods get addresses from the cluster: left out"));
            }
        }
    }
    let aliases = aliases(ctx, service);
    if ports.is_empty() {
        // A Job that dependents wait to complete needs no name; one they wait to start might.
        let depended_on = ctx
            .project
            .services
            .values()
            .any(|s| dependencies(ctx.project, s).get(svc).is_some_and(|d| !super::waits_for_completion(d)));
        if !aliases.is_empty() || depended_on {
            let msg = "no ports or expose, so no Service: other pods cannot reach it by name, and dependents \
                       wait for its rollout instead of its port (list its ports under expose)";
            ctx.warn(svc, "expose", msg);
        }
        return;
    }
    let service_type = match service.other.get("x-berth-service-type").and_then(Json::as_str) {
        None | Some("ClusterIP") => "ClusterIP",
        Some("NodePort") => "NodePort",
        Some("LoadBalancer") => "LoadBalancer",
        Some(other) => {
            let msg = format!("{other:?}: expected ClusterIP, NodePort or LoadBalancer; ClusterIP is used");
            ctx.warn(svc, "x-berth-service-type", msg);
            "ClusterIP"
        }
    };
    let spec_ports = service_ports(ctx, svc, &ports, service_type);
    let internal_ports: Vec<Json> = spec_ports
        .iter()
        .map(|p| {
            let mut p = p.clone();
            if let Some(m) = p.as_object_mut() {
                m.remove("nodePort");
            }
            p
        })
        .collect();
    if let Some(p) = ports.iter().find(|p| p.protocol == "TCP") {
        ctx.wait_ports.insert(svc.to_owned(), p.port);
    }
    let name = ctx.names[svc].clone();
    let mut names = vec![name.clone()];
    let taken: BTreeSet<String> = ctx.names.values().cloned().collect();
    for alias in aliases {
        if !is_dns_label(&alias) {
            let msg = format!(
                "alias {alias:?} is not a valid Service name (lowercase letters, digits, '-'): \
                 no Service answers to it (a Kubernetes Service named {:?} would)",
                dns_label(&alias, 63)
            );
            ctx.warn(svc, "networks.aliases", msg);
        } else if taken.contains(&alias) {
            ctx.warn(svc, "networks.aliases", format!("alias {alias:?} is another service's name: left out"));
        } else {
            names.push(alias);
        }
    }
    for (i, n) in names.into_iter().enumerate() {
        // Aliases are names inside the cluster; only the service's own Service publishes
        // (two could not take the same node port).
        let (kind, ports) =
            if i == 0 { (service_type, spec_ports.clone()) } else { ("ClusterIP", internal_ports.clone()) };
        let mut spec = Map::new();
        spec.insert("type".into(), json!(kind));
        spec.insert("selector".into(), Json::Object(ctx.selector(svc)));
        spec.insert("ports".into(), Json::Array(ports));
        let obj = json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": ctx.metadata(&n, ctx.selector(svc)),
            "spec": spec,
        });
        ctx.push(obj);
    }
}

/// The Service's ports: each at its container port, so `name:port` means what it means inside
/// berth; published ports are reachable from outside only with NodePort or LoadBalancer.
fn service_ports(ctx: &mut Ctx<'_>, svc: &str, ports: &[Port], service_type: &str) -> Vec<Json> {
    let mut used_names = BTreeSet::new();
    let mut out = Vec::new();
    let published: Vec<String> = ports
        .iter()
        .filter_map(|p| {
            let ip = p.host_ip.as_ref().map(|ip| format!("{ip}:")).unwrap_or_default();
            p.published.as_ref().map(|h| format!("{ip}{h}:{}", p.port))
        })
        .collect();
    if service_type == "ClusterIP" && !published.is_empty() {
        let msg = format!(
            "{} published on the host: a ClusterIP Service is reachable inside the cluster only \
             (x-berth-service-type: NodePort or LoadBalancer publishes it)",
            published.join(", ")
        );
        ctx.warn(svc, "ports", msg);
    }
    for p in ports {
        let generated = format!("{}-{}", p.protocol.to_ascii_lowercase(), p.port);
        let name = p.name.clone().filter(|n| is_port_name(n) && !used_names.contains(n)).unwrap_or(generated);
        used_names.insert(name.clone());
        let mut m = Map::new();
        m.insert("name".into(), json!(name));
        m.insert("port".into(), json!(p.port));
        m.insert("targetPort".into(), json!(p.port));
        m.insert("protocol".into(), json!(p.protocol));
        if let Some(app) = &p.app_protocol {
            m.insert("appProtocol".into(), json!(app));
        }
        if let Some(ip) = p.host_ip.as_ref().filter(|_| service_type != "ClusterIP") {
            ctx.warn(svc, "ports", format!("{ip}:{}: a Service cannot bind one host address: left out", p.port));
        }
        match (service_type, p.published.as_deref()) {
            ("NodePort", Some(h)) => match h.parse::<u16>() {
                Ok(n) if (30000..=32767).contains(&n) => {
                    m.insert("nodePort".into(), json!(n));
                }
                _ => {
                    let msg = format!("{h}:{}: node ports lie in 30000-32767: Kubernetes picks one", p.port);
                    ctx.warn(svc, "ports", msg);
                }
            },
            ("LoadBalancer", Some(h)) if h != p.port.to_string() => {
                let msg = format!("{h}:{}: the load balancer listens on {} (the container port)", p.port, p.port);
                ctx.warn(svc, "ports", msg);
            }
            _ => {}
        }
        out.push(Json::Object(m));
    }
    out
}

/// Networks: pods share one flat network, so isolation between networks is not carried over.
pub(super) fn project_networks(ctx: &mut Ctx<'_>) {
    let used = ctx.project.used_resources().networks;
    let subject = format!("project {:?}", ctx.project.name);
    if used.len() > 1 {
        let list: Vec<&str> = used.iter().copied().collect();
        let msg = format!(
            "{}: pods share one cluster network, so these networks do not isolate services \
             from each other (a NetworkPolicy can)",
            list.join(", ")
        );
        ctx.warn_about(subject, "networks", msg);
    }
    for key in used {
        let Some(net) = ctx.project.networks.get(key) else { continue };
        let subject = format!("network {key:?}");
        let mut left = Vec::new();
        if net.driver.as_deref().is_some_and(|d| !d.is_empty() && d != "bridge") {
            left.push("driver");
        }
        if net.ipam.as_ref().is_some_and(|i| !i.config.is_empty() || i.driver.is_some()) {
            left.push("ipam");
        }
        if net.internal {
            left.push("internal");
        }
        if !net.labels.is_empty() {
            left.push("labels");
        }
        left.extend(net.other.keys().map(String::as_str).filter(|k| !k.starts_with("x-")));
        for k in left {
            ctx.warn_about(subject.clone(), k, "the cluster's network has no such setting: left out");
        }
    }
}
