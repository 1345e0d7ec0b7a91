//! `depends_on` as init containers that wait for the dependency.
//!
//! Kubernetes starts a project's pods all at once, so the order compose keeps becomes waits
//! in the dependent's pod, each in the cheapest form that holds:
//!
//! * a dependency with a TCP port in its Service: a `busybox` loop on `nc -z <service> <port>`.
//!   A Service routes only to ready pods and readiness is the health check, so the port
//!   answering means "healthy" for `service_healthy` (and "started" for `service_started`, a
//!   little later than compose would go on). No access to the API is needed.
//! * `service_completed_successfully`: the dependency is a Job; `kubectl wait` for it to exist,
//!   then for `condition=complete`.
//! * a dependency without a TCP port: `kubectl rollout status` on its workload, which returns
//!   once its pods are ready (healthy when it has a health check, running otherwise).
//!
//! The `kubectl` waits run as a ServiceAccount whose Role may only read jobs, deployments and
//! statefulsets. Both images can be replaced (`x-berth-wait-image`, `x-berth-kubectl-image` at
//! the top level of the stack file), for clusters that pull from a private registry.

use serde_json::{Value as Json, json};

use super::names::dns_label;
use super::workload::Pod;
use super::{Ctx, Kind, dependencies};
use crate::graph::Condition;
use crate::spec::Service;

/// The image that waits for ports: it must have `sh`, `nc` and `sleep`.
pub const WAIT_IMAGE: &str = "busybox:1.36";
/// The image that waits for Jobs and rollouts: kubectl as its entrypoint is enough.
pub const KUBECTL_IMAGE: &str = "registry.k8s.io/kubectl:v1.33.0";

fn image(ctx: &Ctx<'_>, key: &str, default: &str) -> String {
    ctx.project.other.get(key).and_then(Json::as_str).unwrap_or(default).to_owned()
}

/// The ServiceAccount, Role and RoleBinding of the `kubectl` waits.
pub(super) fn waiter_name(ctx: &Ctx<'_>) -> String {
    dns_label(&format!("{}-waiter", ctx.project.name), 63)
}

/// Adds the init containers that wait for the service's dependencies.
pub(super) fn init_containers(ctx: &mut Ctx<'_>, service: &Service, pod: &mut Pod) {
    let svc = service.name.as_str();
    for (dep, d) in dependencies(ctx.project, service) {
        let Some(dep_service) = ctx.project.services.get(dep) else { continue };
        let key = format!("depends_on.{dep}");
        if dep_service.image.is_none() && dep_service.build.is_none() {
            ctx.warn(svc, &key, format!("{dep} is not converted: nothing to wait for"));
            continue;
        }
        let name = ctx.names[dep].clone();
        let kind = ctx.kinds[dep];
        let base = dns_label(&format!("wait-{name}"), 55);
        if kind == Kind::Job {
            if d.condition != Condition::CompletedSuccessfully {
                let msg = format!(
                    "{}: {dep} runs as a Job (another service waits for it to complete): waiting for it to complete",
                    d.condition
                );
                ctx.warn(svc, &key, msg);
            }
            kubectl_wait(
                ctx,
                pod,
                &base,
                "job",
                &name,
                &["wait", "--for=condition=complete", &format!("job/{name}"), "--timeout=-1s"],
            );
            continue;
        }
        if let Some(port) = ctx.wait_ports.get(dep).copied() {
            let script = format!("until nc -z -w 2 {name} {port}; do echo waiting for {name}:{port}; sleep 2; done");
            let image = image(ctx, "x-berth-wait-image", WAIT_IMAGE);
            pod.init_containers.push(json!({"name": base, "image": image, "command": ["sh", "-c", script]}));
            continue;
        }
        let resource = format!("{}/{name}", kind.as_str().to_ascii_lowercase());
        kubectl_wait(
            ctx,
            pod,
            &base,
            &kind.as_str().to_ascii_lowercase(),
            &name,
            &["rollout", "status", &resource, "--timeout=0s"],
        );
    }
}

/// Two kubectl init containers: one until the object exists (a `kubectl wait` on a missing
/// object fails at once, which would fail a Job's pod), then the wait itself.
fn kubectl_wait(ctx: &mut Ctx<'_>, pod: &mut Pod, base: &str, kind: &str, name: &str, args: &[&str]) {
    let image = image(ctx, "x-berth-kubectl-image", KUBECTL_IMAGE);
    let created = ["kubectl", "wait", "--for=create", &format!("{kind}/{name}"), "--timeout=-1s"];
    pod.init_containers.push(json!({"name": format!("{base}-exists"), "image": image, "command": created}));
    let mut command = vec!["kubectl"];
    command.extend_from_slice(args);
    pod.init_containers.push(json!({"name": base, "image": image, "command": command}));
    pod.service_account = true;
    ctx.needs_waiter = true;
}

/// The ServiceAccount the `kubectl` waits run as, allowed to read what they wait for.
pub(super) fn rbac(ctx: &mut Ctx<'_>) {
    let name = waiter_name(ctx);
    let namespace = match &ctx.options.namespace {
        Some(ns) => ns.clone(),
        None => {
            let msg = "the RoleBinding of the init containers that wait names its ServiceAccount in namespace \
                       \"default\": convert with --namespace to deploy elsewhere";
            ctx.warn_about(format!("project {:?}", ctx.project.name), "depends_on", msg);
            "default".to_owned()
        }
    };
    let meta = || ctx.metadata(&name, serde_json::Map::new());
    let objects = [
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta()}),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta(),
            "rules": [
                {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["apps"], "resources": ["deployments", "statefulsets"], "verbs": ["get", "list", "watch"]},
            ],
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta(),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        }),
    ];
    for o in objects {
        ctx.push(o);
    }
}
