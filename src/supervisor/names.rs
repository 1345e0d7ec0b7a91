//! The names the embedded DNS server answers: one entry per container endpoint, changed as
//! containers start and stop, read on every query.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::RwLock;

use ipnet::Ipv4Net;

use crate::network::dns::Records;

/// One container on one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameEntry {
    /// The container's id.
    pub container: String,
    /// Its address on the network.
    pub address: Ipv4Addr,
    /// The network's kernel name.
    pub network: String,
    /// Lower-case names: container name, short id, service name, aliases.
    pub names: Vec<String>,
    /// Where its other queries go.
    pub upstreams: Vec<SocketAddr>,
}

/// The live table.
#[derive(Debug, Default)]
pub struct NameTable {
    entries: RwLock<Vec<NameEntry>>,
    /// Names of the project whether or not a container has them right now (service names,
    /// aliases): asked while their container restarts, they answer empty, never upstream.
    project_names: RwLock<BTreeSet<String>>,
    /// The project's networks by subnet, for clients the table does not list (one-off `run`
    /// containers): they share the network their address is on.
    subnets: RwLock<Vec<(Ipv4Net, String)>>,
    /// Upstreams for such clients: the host's.
    default_upstreams: Vec<SocketAddr>,
}

impl NameTable {
    /// A table that knows `names` (lower-cased) as the project's own, on networks `subnets`.
    pub fn new(
        names: impl IntoIterator<Item = String>,
        subnets: Vec<(Ipv4Net, String)>,
        default_upstreams: Vec<SocketAddr>,
    ) -> NameTable {
        NameTable {
            entries: RwLock::default(),
            project_names: RwLock::new(names.into_iter().map(|n| n.to_lowercase()).collect()),
            subnets: RwLock::new(subnets),
            default_upstreams,
        }
    }

    /// Makes `names` the project's own too, and `subnets` its networks: an `up` on the
    /// running project added services or networks.
    pub fn learn(&self, names: impl IntoIterator<Item = String>, subnets: Vec<(Ipv4Net, String)>) {
        if let Ok(mut known) = self.project_names.write() {
            known.extend(names.into_iter().map(|n| n.to_lowercase()));
        }
        if let Ok(mut known) = self.subnets.write() {
            for subnet in subnets {
                if !known.contains(&subnet) {
                    known.push(subnet);
                }
            }
        }
    }

    /// The networks `client` is on: its entries', else the one whose subnet holds it.
    fn networks_of(&self, table: &[NameEntry], client: Ipv4Addr) -> BTreeSet<String> {
        let listed: BTreeSet<String> =
            table.iter().filter(|e| e.address == client).map(|e| e.network.clone()).collect();
        if !listed.is_empty() {
            return listed;
        }
        let Ok(subnets) = self.subnets.read() else { return listed };
        subnets.iter().filter(|(net, _)| net.contains(&client)).map(|(_, name)| name.clone()).collect()
    }

    /// Adds a container's entries.
    pub fn add(&self, entries: Vec<NameEntry>) {
        if let Ok(mut table) = self.entries.write() {
            table.extend(entries);
        }
    }

    /// Removes a container's entries.
    pub fn remove(&self, container: &str) {
        if let Ok(mut table) = self.entries.write() {
            table.retain(|e| e.container != container);
        }
    }
}

impl Records for NameTable {
    fn lookup(&self, client: IpAddr, name: &str) -> Option<Vec<IpAddr>> {
        let IpAddr::V4(client) = client else { return None };
        let table = self.entries.read().ok()?;
        let shared = self.networks_of(&table, client);
        let mut known = self.project_names.read().is_ok_and(|names| names.contains(name));
        let mut found = Vec::new();
        for entry in table.iter().filter(|e| e.names.iter().any(|n| n == name)) {
            known = true;
            if shared.contains(&entry.network) && !found.contains(&IpAddr::V4(entry.address)) {
                found.push(IpAddr::V4(entry.address));
            }
        }
        // A name of the project on no network the client shares answers empty rather than
        // going upstream: it is not the outside world's name.
        known.then_some(found)
    }

    fn reverse(&self, client: IpAddr, address: IpAddr) -> Option<String> {
        let (IpAddr::V4(client), IpAddr::V4(address)) = (client, address) else { return None };
        let table = self.entries.read().ok()?;
        let shared = self.networks_of(&table, client);
        table
            .iter()
            .find(|e| e.address == address && shared.contains(&e.network))
            .and_then(|e| e.names.first().cloned())
    }

    fn upstreams(&self, client: IpAddr) -> Vec<SocketAddr> {
        let IpAddr::V4(client) = client else { return Vec::new() };
        let Ok(table) = self.entries.read() else { return Vec::new() };
        table
            .iter()
            .find(|e| e.address == client)
            .map_or_else(|| self.default_upstreams.clone(), |e| e.upstreams.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(container: &str, last: u8, network: &str, names: &[&str]) -> NameEntry {
        NameEntry {
            container: container.into(),
            address: Ipv4Addr::new(10, 0, 0, last),
            network: network.into(),
            names: names.iter().map(|n| n.to_string()).collect(),
            upstreams: vec![SocketAddr::from(([10, 9, 9, 9], 53))],
        }
    }

    #[test]
    fn names_resolve_only_on_shared_networks_and_every_replica_is_answered() {
        let table = NameTable::default();
        table.add(vec![entry("a", 2, "front", &["web", "p-web-1"]), entry("b", 3, "front", &["web", "p-web-2"])]);
        table.add(vec![entry("c", 4, "back", &["db"])]);
        table.add(vec![entry("d", 5, "front", &["client"])]);
        let client = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5));
        let web = table.lookup(client, "web").expect("known");
        assert_eq!(web.len(), 2);
        assert_eq!(table.lookup(client, "db"), Some(Vec::new()), "known but not shared: empty, not forwarded");
        assert_eq!(table.lookup(client, "example.org"), None);
        assert_eq!(table.reverse(client, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))).as_deref(), Some("web"));
        assert_eq!(table.upstreams(client).len(), 1);
        table.remove("a");
        assert_eq!(table.lookup(client, "web").expect("known").len(), 1);
        let subnet: Ipv4Net = "10.0.0.0/24".parse().expect("subnet");
        let table = NameTable::new(["Web".to_owned()], vec![(subnet, "front".into())], Vec::new());
        assert_eq!(table.lookup(client, "web"), Some(Vec::new()), "a service between two containers");
        table.add(vec![entry("a", 2, "front", &["web"])]);
        let oneoff = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9));
        assert_eq!(table.lookup(oneoff, "web").expect("known").len(), 1, "a one-off shares its subnet's network");
    }
}
