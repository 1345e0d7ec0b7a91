//! One warning for each service key that the other parts do not carry over, so that nothing
//! is dropped silently.

use super::Ctx;
use crate::spec::Service;

/// Keys kept in [`Service::other`] that another part converts.
const CONVERTED_OTHER: &[&str] =
    &["mem_reservation", "security_opt", "post_start", "pre_stop", "annotations", "dns_opt", "group_add", "platform"];

/// Why a key that berth models has no equivalent here, or `None` when it is converted (or,
/// like `profiles`, already applied by the loader).
fn unsupported(service: &Service) -> Vec<(&'static str, String)> {
    let mut out: Vec<(&'static str, String)> = Vec::new();
    let add = |out: &mut Vec<(&'static str, String)>, key: &'static str, why: &str| out.push((key, why.to_owned()));
    if service.cpu_shares.is_some() {
        add(&mut out, "cpu_shares", "relative CPU weight: Kubernetes derives it from requests.cpu; left out");
    }
    if service.cpuset.as_deref().is_some_and(|c| !c.is_empty()) {
        add(&mut out, "cpuset", "pinning to CPUs needs the kubelet's static CPU manager: left out");
    }
    if service.pids_limit.is_some() {
        add(&mut out, "pids_limit", "the kubelet limits processes per pod, not per container: left out");
    }
    if !service.ulimits.is_empty() {
        add(&mut out, "ulimits", "Kubernetes cannot set rlimits: the node's limits apply");
    }
    if let Some(sig) = service.stop_signal.as_deref().filter(|s| !s.is_empty() && *s != "SIGTERM" && *s != "TERM") {
        out.push((
            "stop_signal",
            format!(
                "{sig}: pods are stopped with SIGTERM (the image's STOPSIGNAL applies where the runtime honours it)"
            ),
        ));
    }
    if !service.volumes_from.is_empty() {
        out.push((
            "volumes_from",
            format!("{}: pods cannot mount another pod's volumes: left out", service.volumes_from.join(", ")),
        ));
    }
    if service.develop.is_some() {
        add(&mut out, "develop", "a development-time key: left out");
    }
    if let Some(deploy) = &service.deploy {
        if !deploy.placement.is_empty() {
            add(&mut out, "deploy.placement", "swarm placement: use a nodeSelector or affinity: left out");
        }
        for (key, value) in &deploy.other {
            match (key.as_str(), value.as_str()) {
                ("mode", Some("replicated" | "replicated-job")) => {}
                ("mode", Some("global")) => add(
                    &mut out,
                    "deploy.mode",
                    "global: one pod per node is a DaemonSet, which berth does not write; a Deployment runs instead",
                ),
                _ => out.push(("deploy", format!("{key}: has no Kubernetes equivalent here: left out"))),
            }
        }
    }
    out
}

/// Warns about every key of the service that is not converted.
pub(super) fn warn(ctx: &mut Ctx<'_>, service: &Service) {
    for (key, why) in unsupported(service) {
        ctx.warn(&service.name, key, why);
    }
    for key in service.other.keys() {
        if key.starts_with("x-") || CONVERTED_OTHER.contains(&key.as_str()) {
            continue;
        }
        ctx.warn(&service.name, key, "has no Kubernetes equivalent: left out");
    }
}
