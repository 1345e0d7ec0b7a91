//! A project's networks made and removed, and a container's place on them: the glue between the
//! stack file, IPAM, the network store, netlink and the firewall.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::Path;

use ipnet::Ipv4Net;
use sha2::{Digest, Sha256};

use super::firewall::{self, FirewallError, NetworkRules};
use super::ipam::{self, IpamError};
use super::netlink::{self, NetlinkError};
use super::store::{Lease, NetworkRecord, NetworkStore, StoreError};
use crate::runtime::spec::{ContainerSpec, Endpoint};
use crate::spec::{Project, Service};

/// Why a network or an endpoint could not be made.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// Addressing.
    #[error(transparent)]
    Ipam(#[from] IpamError),
    /// Links and addresses.
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    /// Packet filter rules.
    #[error(transparent)]
    Firewall(#[from] FirewallError),
    /// The network store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stack file value berth cannot honour.
    #[error("network {network:?}: {key}: {message}")]
    Invalid {
        /// The network's key in the stack file.
        network: String,
        /// The offending key.
        key: String,
        /// Why.
        message: String,
    },
    /// `external: true` names a network that does not exist.
    #[error("network {0} declared as external, but could not be found (berth can join only networks berth made)")]
    ExternalMissing(String),
    /// Several removals failed; each is named (the rest were done).
    #[error("{}", .0.join("; "))]
    Several(Vec<String>),
}

/// `driver_opts` keys berth honours, with docker's names.
const MTU_OPTION: &str = "com.docker.network.driver.mtu";
const HOST_BINDING_OPTION: &str = "com.docker.network.bridge.host_binding_ipv4";

/// The bridge of network `name`: `berthbr` and 8 hex digits of its name's hash (15 bytes, the
/// kernel's limit).
pub fn bridge_name(name: &str) -> String {
    let digest = Sha256::digest(name.as_bytes());
    format!("berthbr{}", digest.iter().take(4).map(|b| format!("{b:02x}")).collect::<String>())
}

/// The host end of a container's `index`th veth: `berthv`, 8 hex digits of its id, the index.
pub fn veth_name(container_id: &str, index: usize) -> String {
    let short: String = container_id.chars().take(8).collect();
    format!("berthv{short}{}", index % 10)
}

/// The networks `services` attach to, made (bridge, address, firewall rules) when missing and
/// recorded first, keyed by their key in the stack file. External networks are looked up.
pub fn ensure_networks<'a>(
    state_root: &Path,
    project: &Project,
    keys: impl IntoIterator<Item = &'a str>,
) -> Result<BTreeMap<String, NetworkRecord>, NetworkError> {
    let store = NetworkStore::lock(state_root)?;
    let mut existing = store.all()?;
    let mut made = BTreeMap::new();
    let mut to_create = Vec::new();
    for key in keys.into_iter().collect::<BTreeSet<_>>() {
        let Some(network) = project.networks.get(key) else { continue };
        let name = if network.name.is_empty() { format!("{}_{key}", project.name) } else { network.name.clone() };
        if let Some(record) = existing.iter().find(|r| r.name == name) {
            if !network.external {
                to_create.push(record.clone());
            }
            made.insert(key.to_owned(), record.clone());
            continue;
        }
        if network.external {
            return Err(NetworkError::ExternalMissing(name));
        }
        if let Some(driver) = network.driver.as_deref().filter(|d| !d.is_empty() && *d != "bridge") {
            return Err(NetworkError::Invalid {
                network: key.into(),
                key: "driver".into(),
                message: format!("driver {driver:?} is not supported (berth makes bridge networks)"),
            });
        }
        let options = driver_options(network);
        let mtu = match options.get(MTU_OPTION) {
            Some(text) => Some(text.parse::<u32>().map_err(|_| NetworkError::Invalid {
                network: key.into(),
                key: format!("driver_opts.{MTU_OPTION}"),
                message: format!("{text:?} is not an MTU"),
            })?),
            None => None,
        };
        let host_binding = match options.get(HOST_BINDING_OPTION) {
            Some(text) => Some(text.parse::<Ipv4Addr>().map_err(|_| NetworkError::Invalid {
                network: key.into(),
                key: format!("driver_opts.{HOST_BINDING_OPTION}"),
                message: format!("{text:?} is not an IPv4 address"),
            })?),
            None => None,
        };
        let mut taken: Vec<Ipv4Net> = super::routes::host_routed_networks();
        taken.extend(existing.iter().map(|r| r.addressing.subnet));
        let pool = network.ipam.as_ref().and_then(|i| i.config.first());
        let addressing = ipam::addressing(&name, pool, &taken)?;
        let record = NetworkRecord {
            bridge: bridge_name(&name),
            name,
            project: project.name.clone(),
            key: key.to_owned(),
            addressing,
            internal: network.internal,
            mtu,
            host_binding,
        };
        store.save(&record)?;
        existing.push(record.clone());
        to_create.push(record.clone());
        made.insert(key.to_owned(), record);
    }
    if !to_create.is_empty() {
        netlink::run(None, |host, _| async move {
            for record in &to_create {
                let gateway = Ipv4Net::new(record.addressing.gateway, record.addressing.subnet.prefix_len())
                    .unwrap_or(record.addressing.subnet);
                netlink::ensure_bridge(&host, &record.bridge, gateway, record.mtu).await?;
            }
            Ok(())
        })?;
        let firewall = firewall::detect()?;
        for record in made.values().filter(|r| r.project == project.name) {
            firewall.add_network(&NetworkRules {
                project: &record.project,
                network: &record.name,
                bridge: &record.bridge,
                subnet: record.addressing.subnet,
                gateway: record.addressing.gateway,
                internal: record.internal,
            })?;
        }
    }
    Ok(made)
}

fn driver_options(network: &crate::spec::model::Network) -> BTreeMap<String, String> {
    let Some(serde_json::Value::Object(map)) = network.other.get("driver_opts") else { return BTreeMap::new() };
    map.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned))).collect()
}

/// Removes the networks project `project` made — bridges, firewall rules, records — and any
/// rule of the project left without a network (a crash between the two). Containers must be
/// gone first.
pub fn remove_networks(state_root: &Path, project: &str) -> Result<(), NetworkError> {
    let store = NetworkStore::lock(state_root)?;
    let mine: Vec<NetworkRecord> = store.all()?.into_iter().filter(|r| r.project == project).collect();
    // Every removal is tried, whatever failed before it: a second `down` then has only the
    // failures left to do, and the records of what failed are kept for it.
    let mut failures = Vec::new();
    if let Ok(firewall) = firewall::detect() {
        if let Err(e) = firewall.remove_project(project) {
            failures.push(format!("firewall rules of project {project}: {e}"));
        }
        if let Err(e) = firewall.remove_if_unused() {
            failures.push(format!("berth's firewall chains: {e}"));
        }
    }
    let mut kept = BTreeSet::new();
    if !mine.is_empty() {
        let bridges: Vec<(String, String)> = mine.iter().map(|r| (r.name.clone(), r.bridge.clone())).collect();
        let failed = netlink::run(None, |host, _| async move {
            let mut failed = Vec::new();
            for (name, bridge) in &bridges {
                if let Err(e) = netlink::delete_link(&host, bridge).await {
                    failed.push((name.clone(), format!("bridge {bridge} of network {name}: {e}")));
                }
            }
            Ok(failed)
        });
        match failed {
            Ok(failed) => {
                for (name, message) in failed {
                    kept.insert(name);
                    failures.push(message);
                }
            }
            Err(e) => {
                kept.extend(mine.iter().map(|r| r.name.clone()));
                failures.push(format!("bridges of project {project}: {e}"));
            }
        }
    }
    for record in mine.iter().filter(|r| !kept.contains(&r.name)) {
        if let Err(e) = store.forget(&record.name) {
            failures.push(format!("record of network {}: {e}", record.name));
        }
    }
    if failures.is_empty() { Ok(()) } else { Err(NetworkError::Several(failures)) }
}

/// The order a service's networks are attached in: `priority` highest first, then by key,
/// as compose sorts them; the first one carries the default route.
pub fn attachment_order(service: &Service) -> Vec<&str> {
    let mut keys: Vec<(&str, i64)> = service
        .networks
        .iter()
        .map(|(key, attachment)| (key.as_str(), attachment.as_ref().and_then(|a| a.priority).unwrap_or(0)))
        .collect();
    keys.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    keys.into_iter().map(|(key, _)| key).collect()
}

/// Gives `spec` (planned for `service`) its endpoints on `networks`, each with an address
/// leased under the store's lock, and rewrites its /etc/hosts and /etc/resolv.conf for them:
/// its own address under its host name, and the embedded DNS server at the first network's
/// gateway. A one-off (`run`) gets no service name or aliases, as in compose.
pub fn attach_spec(
    state_root: &Path,
    spec: &mut ContainerSpec,
    service: &Service,
    networks: &BTreeMap<String, NetworkRecord>,
    oneoff: bool,
) -> Result<(), NetworkError> {
    let store = NetworkStore::lock(state_root)?;
    let mut endpoints = Vec::new();
    for (index, key) in attachment_order(service).into_iter().enumerate() {
        let Some(record) = networks.get(key) else { continue };
        let attachment = service.networks.get(key).and_then(Option::as_ref);
        let fixed = match attachment.and_then(|a| a.ipv4_address.as_deref()) {
            Some(text) => Some(text.parse::<Ipv4Addr>().map_err(|_| NetworkError::Invalid {
                network: key.into(),
                key: format!("services.{}.networks.{key}.ipv4_address", service.name),
                message: format!("{text:?} is not an IPv4 address"),
            })?),
            None => None,
        };
        let mut leases = store.leases(&record.name)?;
        let in_use: BTreeSet<Ipv4Addr> = leases.keys().copied().collect();
        let address = record.addressing.assign(&record.name, fixed, &in_use)?;
        leases.insert(address, Lease { container: spec.id.clone(), since: crate::runtime::state::now() });
        store.save_leases(&record.name, &leases)?;
        let interface = attachment
            .and_then(|a| a.other.get("interface_name"))
            .and_then(|v| v.as_str())
            .map_or_else(|| format!("eth{index}"), str::to_owned);
        let mut names = vec![spec.name.clone(), spec.id.chars().take(12).collect()];
        if !oneoff {
            names.push(service.name.clone());
            names.extend(attachment.map(|a| a.aliases.clone()).unwrap_or_default());
        }
        names.dedup();
        endpoints.push(Endpoint {
            network: record.name.clone(),
            bridge: record.bridge.clone(),
            interface,
            host_veth: veth_name(&spec.id, index),
            address: Ipv4Net::new(address, record.addressing.subnet.prefix_len()).unwrap_or(record.addressing.subnet),
            gateway: record.addressing.gateway,
            mtu: record.mtu,
            names,
        });
    }
    if let Some(first) = endpoints.first() {
        spec.etc.hosts = hosts_for(&spec.etc.hosts, first.gateway, first.address.addr(), &spec.hostname);
        spec.etc.resolv_conf = resolv_conf_for(&spec.etc.resolv_conf, first.gateway);
    }
    spec.endpoints = endpoints;
    Ok(())
}

/// Gives up the addresses `spec` held.
pub fn release(state_root: &Path, spec: &ContainerSpec) -> Result<(), NetworkError> {
    if spec.endpoints.is_empty() {
        return Ok(());
    }
    let store = NetworkStore::lock(state_root)?;
    for endpoint in &spec.endpoints {
        store.release(&endpoint.network, &spec.id)?;
    }
    Ok(())
}

/// /etc/hosts with `host-gateway` resolved to the gateway and the container's own line, as
/// docker writes it (`ADDRESS\tHOSTNAME`).
fn hosts_for(planned: &str, gateway: Ipv4Addr, own: Ipv4Addr, hostname: &str) -> String {
    let mut hosts = String::with_capacity(planned.len() + 32);
    for line in planned.lines() {
        match line.split_once('\t') {
            Some(("host-gateway", name)) => hosts.push_str(&format!("{gateway}\t{name}\n")),
            _ => {
                hosts.push_str(line);
                hosts.push('\n');
            }
        }
    }
    hosts.push_str(&format!("{own}\t{hostname}\n"));
    hosts
}

/// resolv.conf with the embedded DNS server as the only nameserver (docker writes 127.0.0.11;
/// berth's server listens on the gateway), `search` and `options` kept.
fn resolv_conf_for(planned: &str, gateway: Ipv4Addr) -> String {
    let mut text: String = planned
        .lines()
        .filter(|line| line.split_whitespace().next() != Some("nameserver"))
        .map(|line| format!("{line}\n"))
        .collect();
    text.insert_str(0, &format!("nameserver {gateway}\n"));
    text
}

/// The upstream resolvers of a container's DNS queries: the service's `dns:` servers, else the
/// host's nameservers — loopback ones included, since the server runs in the host's namespace.
pub fn upstreams(service: &Service, host_resolv_conf: &str) -> Vec<std::net::SocketAddr> {
    let servers: Vec<String> = if service.dns.is_empty() {
        host_resolv_conf
            .lines()
            .filter_map(|line| {
                let mut words = line.split_whitespace();
                (words.next() == Some("nameserver")).then(|| words.next().map(str::to_owned)).flatten()
            })
            .collect()
    } else {
        service.dns.clone()
    };
    servers
        .iter()
        .filter_map(|s| s.split('%').next()?.parse::<std::net::IpAddr>().ok())
        .map(|ip| std::net::SocketAddr::new(ip, 53))
        .take(3)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_names_fit_and_carry_the_prefix() {
        let bridge = bridge_name("myproject_default");
        assert!(bridge.starts_with("berthbr") && bridge.len() == 15, "{bridge}");
        assert_ne!(bridge, bridge_name("myproject_back"));
        let veth = veth_name("0123456789abcdef0123456789abcdef", 1);
        assert_eq!(veth, "berthv012345671");
        assert!(veth.len() <= 15);
    }

    #[test]
    fn hosts_get_the_gateway_for_host_gateway_and_the_own_line_last() {
        let planned = "127.0.0.1\tlocalhost\nhost-gateway\thost.docker.internal\n1.2.3.4\tother\n";
        let hosts = hosts_for(planned, Ipv4Addr::new(172, 18, 0, 1), Ipv4Addr::new(172, 18, 0, 2), "web");
        assert_eq!(hosts, "127.0.0.1\tlocalhost\n172.18.0.1\thost.docker.internal\n1.2.3.4\tother\n172.18.0.2\tweb\n");
    }

    #[test]
    fn resolv_conf_names_only_the_embedded_server_and_keeps_search_and_options() {
        let planned = "search example.com\nnameserver 10.0.0.1\nnameserver 10.0.0.2\noptions ndots:2\n";
        assert_eq!(
            resolv_conf_for(planned, Ipv4Addr::new(172, 18, 0, 1)),
            "nameserver 172.18.0.1\nsearch example.com\noptions ndots:2\n"
        );
    }

    #[test]
    fn upstreams_are_the_services_dns_else_the_hosts_including_loopback() {
        let mut service = Service::default();
        let host = "nameserver 127.0.0.53\nnameserver 10.1.1.1\nsearch x\n";
        let got: Vec<String> = upstreams(&service, host).iter().map(ToString::to_string).collect();
        assert_eq!(got, ["127.0.0.53:53", "10.1.1.1:53"]);
        service.dns = vec!["9.9.9.9".into(), "not an address".into()];
        let got: Vec<String> = upstreams(&service, host).iter().map(ToString::to_string).collect();
        assert_eq!(got, ["9.9.9.9:53"]);
    }
}
