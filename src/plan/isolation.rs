//! Namespaces, sysctls and cgroup limits.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use crate::runtime::spec::{NamespaceMode, Namespaces, Resources};
use crate::spec::model::ResourceLimits;
use crate::spec::{Project, Service};

use super::{PlanError, invalid, joined_namespace, other_str};

/// docker's CFS period when a CPU count is given: 100ms.
const CPU_PERIOD: u64 = 100_000;

/// Where each namespace comes from: `network_mode`, `pid`, `ipc` and `uts`.
///
/// `network_mode` is `host`, `none`, `service:NAME`, `container:NAME`, or anything else (the
/// default bridge or a network's name), which is a network namespace of the container's own.
pub(super) fn namespaces(project: &Project, service: &Service) -> Result<Namespaces, PlanError> {
    let net = match service.network_mode.as_deref().unwrap_or("") {
        "host" => NamespaceMode::Host,
        "none" => NamespaceMode::None,
        mode => joined_namespace(project, service, "network_mode", mode)?.unwrap_or_default(),
    };
    let pid = match service.pid.as_deref().unwrap_or("") {
        "" => NamespaceMode::Private,
        "host" => NamespaceMode::Host,
        mode => joined_namespace(project, service, "pid", mode)?.ok_or_else(|| {
            invalid(service, "pid", format!("invalid mode {mode:?}: expected host, service:NAME or container:NAME"))
        })?,
    };
    let ipc = match service.ipc.as_deref().unwrap_or("") {
        // `none` and `private` differ in docker only in whether /dev/shm is mounted.
        "" | "private" | "shareable" | "none" => NamespaceMode::Private,
        "host" => NamespaceMode::Host,
        mode => joined_namespace(project, service, "ipc", mode)?.ok_or_else(|| {
            invalid(
                service,
                "ipc",
                format!("invalid mode {mode:?}: expected private, shareable, host, service:NAME or container:NAME"),
            )
        })?,
    };
    let uts = match other_str(service, "uts").unwrap_or("") {
        "" => NamespaceMode::Private,
        "host" => NamespaceMode::Host,
        mode => return Err(invalid(service, "uts", format!("invalid mode {mode:?}: expected host"))),
    };
    Ok(Namespaces { net, pid, ipc, uts })
}

/// The sysctls runc lets a container set: those of the IPC namespace...
const IPC_SYSCTLS: [&str; 8] = [
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

fn is_ipc_sysctl(name: &str) -> bool {
    IPC_SYSCTLS.contains(&name) || name.starts_with("fs.mqueue.")
}

/// `sysctls`, checked as runc checks them: only sysctls of a namespace the container does not
/// share with the host (IPC ones, `fs.mqueue.*`, `net.*`, `kernel.domainname`).
///
/// A container with a network namespace of its own also gets docker's two defaults unless it
/// sets them: unprivileged ports from 0 and ping for every group, so a non-root process can
/// bind port 80 and ping without capabilities.
pub(super) fn sysctls(service: &Service, ns: &Namespaces) -> Result<BTreeMap<String, String>, PlanError> {
    let mut out = BTreeMap::new();
    if matches!(ns.net, NamespaceMode::Private | NamespaceMode::None) {
        out.insert("net.ipv4.ip_unprivileged_port_start".to_owned(), "0".to_owned());
        out.insert("net.ipv4.ping_group_range".to_owned(), "0 2147483647".to_owned());
    }
    for (name, value) in &service.sysctls {
        let refuse = |why: &str| Err(invalid(service, "sysctls", format!("sysctl {name:?} {why}")));
        if is_ipc_sysctl(name) {
            if ns.ipc == NamespaceMode::Host {
                return refuse("is not allowed in the host's IPC namespace (ipc: host)");
            }
        } else if name.starts_with("net.") {
            if ns.net == NamespaceMode::Host {
                return refuse("is not allowed in the host's network namespace (network_mode: host)");
            }
        } else if name == "kernel.domainname" {
            if ns.uts == NamespaceMode::Host {
                return refuse("is not allowed in the host's UTS namespace (uts: host)");
            }
        } else {
            return refuse("is not in a separate kernel namespace");
        }
        out.insert(name.clone(), value.clone());
    }
    Ok(out)
}

/// An integer key kept in `other` (compose's canonical form types it; a string is parsed).
fn other_int(service: &Service, key: &str) -> Result<Option<i64>, PlanError> {
    match service.other.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Number(n)) => {
            n.as_i64().map(Some).ok_or_else(|| invalid(service, key, format!("{n} is not an integer")))
        }
        Some(Json::String(s)) => {
            s.trim().parse().map(Some).map_err(|_| invalid(service, key, format!("{s:?} is not an integer")))
        }
        Some(other) => Err(invalid(service, key, format!("{other} is not an integer"))),
    }
}

/// A byte count kept in `other`; compose's canonical form has it as a decimal string.
fn other_bytes(service: &Service, key: &str) -> Result<Option<u64>, PlanError> {
    match other_int(service, key)? {
        None | Some(0) => Ok(None),
        Some(n) => u64::try_from(n).map(Some).map_err(|_| invalid(service, key, format!("{n} is not a byte count"))),
    }
}

/// cgroup limits, as compose fills docker's `Resources`: the service keys, then the
/// `deploy.resources` values, which win where both are set.
pub(super) fn resources(service: &Service) -> Result<Resources, PlanError> {
    let deploy = service.deploy.as_ref().and_then(|d| d.resources.as_ref());
    let limits = deploy.and_then(|r| r.limits.as_ref());
    let reservations = deploy.and_then(|r| r.reservations.as_ref());
    let positive = |l: Option<&ResourceLimits>, f: fn(&ResourceLimits) -> Option<u64>| l.and_then(f).filter(|v| *v > 0);

    let memory_limit = positive(limits, |l| l.memory).or(service.mem_limit.filter(|m| *m > 0));
    let memory_reservation = positive(reservations, |l| l.memory).or(other_bytes(service, "mem_reservation")?);
    let memory_swap = match other_int(service, "memswap_limit")? {
        None | Some(0) => None,
        Some(n) if n >= -1 => Some(n),
        Some(n) => {
            return Err(invalid(service, "memswap_limit", format!("{n} is not a byte count (use -1 for unlimited)")));
        }
    };

    let (cpus_key, cpus) = match limits.and_then(|l| l.cpus).filter(|c| *c != 0.0) {
        Some(c) => ("deploy.resources.limits.cpus", Some(c)),
        None => ("cpus", service.cpus.filter(|c| *c != 0.0)),
    };
    let quota = other_int(service, "cpu_quota")?.filter(|q| *q != 0);
    let period = match other_int(service, "cpu_period")?.filter(|p| *p != 0) {
        None => None,
        Some(p) => Some(u64::try_from(p).map_err(|_| invalid(service, "cpu_period", format!("{p} is not a period")))?),
    };
    let (cpu_quota, cpu_period) = match cpus {
        Some(cpus) => {
            // docker refuses both ways of saying it at once.
            if quota.is_some() || period.is_some() {
                let other = if quota.is_some() { "cpu_quota" } else { "cpu_period" };
                return Err(invalid(
                    service,
                    cpus_key,
                    format!("conflicting options: {cpus_key} and {other} cannot both be set"),
                ));
            }
            (Some(cpu_quota_for(service, cpus_key, cpus)?), Some(CPU_PERIOD))
        }
        None => (quota, period.or(quota.map(|_| CPU_PERIOD))),
    };

    let cpu_shares = match service.cpu_shares.filter(|s| *s != 0) {
        None => None,
        Some(s) => Some(u64::try_from(s).map_err(|_| invalid(service, "cpu_shares", format!("{s} is not a weight")))?),
    };
    let pids_limit = limits.and_then(|l| l.pids).filter(|p| *p > 0).or(service.pids_limit.filter(|p| *p != 0));
    Ok(Resources {
        memory_limit,
        memory_reservation,
        memory_swap,
        cpu_quota,
        cpu_period,
        cpu_shares,
        cpuset_cpus: service.cpuset.clone().filter(|c| !c.is_empty()),
        cpuset_mems: other_str(service, "cpuset_mems").map(str::to_owned),
        pids_limit,
    })
}

/// The CFS quota for a CPU count, as docker turns `NanoCPUs` into one (at least 0.01 CPU).
fn cpu_quota_for(service: &Service, key: &str, cpus: f64) -> Result<i64, PlanError> {
    // Whole microseconds of a 100ms period; the range check keeps the cast exact.
    let quota = (cpus * CPU_PERIOD as f64).round();
    if !(1000.0..=1e15).contains(&quota) {
        return Err(invalid(service, key, format!("{cpus} is not a CPU count from 0.01 up")));
    }
    #[allow(clippy::cast_possible_truncation)] // checked to be a whole number in i64's range above
    Ok(quota as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(f: impl FnOnce(&mut Service)) -> Service {
        let mut s = Service { name: "web".into(), ..Service::default() };
        f(&mut s);
        s
    }

    fn private() -> Namespaces {
        Namespaces::default()
    }

    #[test]
    fn namespaced_sysctls_are_allowed_and_dockers_defaults_added() {
        let s = svc(|s| {
            s.sysctls = BTreeMap::from([
                ("net.core.somaxconn".to_owned(), "1024".to_owned()),
                ("kernel.shmmax".to_owned(), "1".to_owned()),
                ("fs.mqueue.msg_max".to_owned(), "20".to_owned()),
                ("net.ipv4.ip_unprivileged_port_start".to_owned(), "1024".to_owned()),
            ])
        });
        let got = sysctls(&s, &private()).unwrap();
        assert_eq!(got["net.core.somaxconn"], "1024");
        assert_eq!(got["kernel.shmmax"], "1");
        assert_eq!(got["fs.mqueue.msg_max"], "20");
        assert_eq!(got["net.ipv4.ip_unprivileged_port_start"], "1024", "the service's value wins");
        assert_eq!(got["net.ipv4.ping_group_range"], "0 2147483647");
    }

    #[test]
    fn host_namespaces_refuse_their_sysctls() {
        let net = svc(|s| s.sysctls = BTreeMap::from([("net.ipv4.ip_forward".to_owned(), "1".to_owned())]));
        let host_net = Namespaces { net: NamespaceMode::Host, ..private() };
        let err = sysctls(&net, &host_net).unwrap_err().to_string();
        assert!(err.starts_with(r#"service "web": sysctls: sysctl "net.ipv4.ip_forward" is not allowed"#), "{err}");
        assert!(sysctls(&svc(|_| {}), &host_net).unwrap().is_empty(), "no defaults in the host's network");

        let ipc = svc(|s| s.sysctls = BTreeMap::from([("kernel.sem".to_owned(), "1 2 3 4".to_owned())]));
        let host_ipc = Namespaces { ipc: NamespaceMode::Host, ..private() };
        assert!(sysctls(&ipc, &host_ipc).unwrap_err().to_string().contains("\"kernel.sem\""));
        assert!(sysctls(&ipc, &host_net).is_ok(), "an IPC sysctl only cares about IPC");
        let joined = Namespaces { net: NamespaceMode::Container("db".into()), ..private() };
        assert!(!sysctls(&svc(|_| {}), &joined).unwrap().contains_key("net.ipv4.ping_group_range"));
    }

    #[test]
    fn host_wide_sysctls_are_refused() {
        for name in ["vm.swappiness", "kernel.pid_max", "fs.file-max", "kernel.hostname"] {
            let s = svc(|s| s.sysctls = BTreeMap::from([(name.to_owned(), "1".to_owned())]));
            let err = sysctls(&s, &private()).unwrap_err().to_string();
            assert_eq!(err, format!("service \"web\": sysctls: sysctl {name:?} is not in a separate kernel namespace"));
        }
    }
}
