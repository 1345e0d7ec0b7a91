//! Address management for project networks: which IPv4 subnet a network gets, its gateway, and
//! which address each container gets in it. Pure: the caller passes what is taken.
//!
//! Subnets come from docker's default pools, in docker's order — 172.17.0.0/16 to
//! 172.31.0.0/16, then the /20s of 192.168.0.0/16 — skipping every network the host already routes and every
//! subnet another berth network holds. An `ipam.config` entry of the stack file is taken as
//! given (subnet, gateway, ip_range, aux_addresses), after checks that name the network.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::spec::model::IpamPool;

/// docker's default address pools — 172.17.0.0/16 to 172.31.0.0/16, then the /20s of
/// 192.168.0.0/16 — as (base, prefix of each subnet carved from it).
pub const DEFAULT_POOLS: [(&str, u8); 5] = [
    ("172.17.0.0/16", 16),
    ("172.18.0.0/15", 16),
    ("172.20.0.0/14", 16),
    ("172.24.0.0/13", 16),
    ("192.168.0.0/16", 20),
];

/// A network's IPv4 addressing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Addressing {
    /// The subnet.
    pub subnet: Ipv4Net,
    /// The bridge's address, the containers' default gateway.
    pub gateway: Ipv4Addr,
    /// Where container addresses are taken from (the whole subnet unless `ip_range`).
    pub range: Ipv4Net,
    /// Addresses never handed out (`aux_addresses`).
    pub reserved: BTreeSet<Ipv4Addr>,
}

/// Why a network got no addressing, or a container no address.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IpamError {
    /// A value in `ipam.config` is not an address or a network.
    #[error("network {network:?}: ipam.config.{key} {value:?} is not an IPv4 {what}")]
    Invalid {
        /// The network's key in the stack file.
        network: String,
        /// `subnet`, `gateway`, `ip_range` or `aux_addresses.<name>`.
        key: String,
        /// The value given.
        value: String,
        /// `address` or `network (a.b.c.d/n)`.
        what: &'static str,
    },
    /// An address or range lies outside the subnet.
    #[error("network {network:?}: ipam.config.{key} {value} is outside the subnet {subnet}")]
    Outside {
        /// The network's key.
        network: String,
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// The subnet.
        subnet: Ipv4Net,
    },
    /// A subnet too small for a gateway and one container.
    #[error("network {network:?}: subnet {subnet} has no room for a gateway and a container")]
    TooSmall {
        /// The network's key.
        network: String,
        /// The subnet.
        subnet: Ipv4Net,
    },
    /// Every default pool subnet is routed by the host or held by another network.
    #[error(
        "network {network:?}: every subnet of berth's default pools (172.17-31.0.0/16, \
         192.168.0.0/16 as /20s) overlaps a host route or another network; give one with \
         ipam.config.subnet"
    )]
    PoolsExhausted {
        /// The network's key.
        network: String,
    },
    /// A requested subnet overlaps a host route or another berth network.
    #[error(
        "network {network:?}: subnet {subnet} overlaps {other}, which the host already routes or another network holds"
    )]
    Overlap {
        /// The network's key.
        network: String,
        /// The subnet asked for.
        subnet: Ipv4Net,
        /// What it overlaps.
        other: Ipv4Net,
    },
    /// A fixed address (`ipv4_address`) is outside the network or already taken.
    #[error("network {network:?}: address {address} is {why}")]
    Address {
        /// The network's key.
        network: String,
        /// The address.
        address: Ipv4Addr,
        /// `outside the subnet …`, `the gateway`, `already in use`.
        why: String,
    },
    /// No free address is left in the range.
    #[error("network {network:?}: no free address left in {range}")]
    Full {
        /// The network's key.
        network: String,
        /// The range.
        range: Ipv4Net,
    },
}

/// The addressing of network `network` (its key, for messages): from its first `ipam.config`
/// entry when it gives a subnet, else the first default-pool subnet that overlaps nothing in
/// `taken` (host routes and other berth networks).
pub fn addressing(network: &str, config: Option<&IpamPool>, taken: &[Ipv4Net]) -> Result<Addressing, IpamError> {
    let Some(subnet) = config.and_then(|c| c.subnet.as_deref()) else {
        return Ok(defaults(free_subnet(network, taken)?));
    };
    let subnet = parse_net(network, "subnet", subnet)?.trunc();
    if let Some(other) = taken.iter().find(|t| overlaps(t, &subnet)) {
        return Err(IpamError::Overlap { network: network.into(), subnet, other: *other });
    }
    if subnet.prefix_len() > 30 {
        return Err(IpamError::TooSmall { network: network.into(), subnet });
    }
    let mut addressing = defaults(subnet);
    let config = config.cloned().unwrap_or_default();
    if let Some(range) = config.ip_range.as_deref() {
        let range_net = parse_net(network, "ip_range", range)?.trunc();
        if !subnet.contains(&range_net) {
            return Err(outside(network, "ip_range", range, subnet));
        }
        addressing.range = range_net;
    }
    if let Some(gateway) = config.gateway.as_deref() {
        let address = parse_address(network, "gateway", gateway)?;
        if !usable(&subnet, address) {
            return Err(outside(network, "gateway", gateway, subnet));
        }
        addressing.gateway = address;
    }
    for (name, value) in &config.aux_addresses {
        let key = format!("aux_addresses.{name}");
        let address = parse_address(network, &key, value)?;
        if !subnet.contains(&address) {
            return Err(outside(network, &key, value, subnet));
        }
        addressing.reserved.insert(address);
    }
    Ok(addressing)
}

/// The first default-pool subnet that overlaps nothing in `taken`.
pub fn free_subnet(network: &str, taken: &[Ipv4Net]) -> Result<Ipv4Net, IpamError> {
    for (base, prefix) in DEFAULT_POOLS {
        let base: Ipv4Net = base.parse().unwrap_or_default();
        let Ok(mut candidates) = base.subnets(prefix) else { continue };
        if let Some(free) = candidates.find(|c| !taken.iter().any(|t| overlaps(t, c))) {
            return Ok(free);
        }
    }
    Err(IpamError::PoolsExhausted { network: network.into() })
}

impl Addressing {
    /// An address for a container: `fixed` (`ipv4_address`) when given and free, else the lowest
    /// free address of the range, never the gateway, a reserved address, the network address or
    /// the broadcast address.
    pub fn assign(
        &self,
        network: &str,
        fixed: Option<Ipv4Addr>,
        in_use: &BTreeSet<Ipv4Addr>,
    ) -> Result<Ipv4Addr, IpamError> {
        let refuse = |address, why: String| IpamError::Address { network: network.into(), address, why };
        if let Some(address) = fixed {
            return if !usable(&self.subnet, address) {
                Err(refuse(address, format!("outside the subnet {} or not a host address", self.subnet)))
            } else if address == self.gateway {
                Err(refuse(address, "the network's gateway".into()))
            } else if in_use.contains(&address) || self.reserved.contains(&address) {
                Err(refuse(address, "already in use".into()))
            } else {
                Ok(address)
            };
        }
        self.range
            .hosts()
            .filter(|a| usable(&self.subnet, *a))
            .find(|a| *a != self.gateway && !self.reserved.contains(a) && !in_use.contains(a))
            .ok_or(IpamError::Full { network: network.into(), range: self.range })
    }
}

/// A subnet with its first host address as the gateway and the whole subnet as the range.
fn defaults(subnet: Ipv4Net) -> Addressing {
    let gateway = subnet.hosts().next().unwrap_or(subnet.network());
    Addressing { subnet, gateway, range: subnet, reserved: BTreeSet::new() }
}

/// A host address of `subnet`: inside it, neither its network nor its broadcast address.
fn usable(subnet: &Ipv4Net, address: Ipv4Addr) -> bool {
    subnet.contains(&address) && address != subnet.network() && address != subnet.broadcast()
}

fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn parse_net(network: &str, key: &str, value: &str) -> Result<Ipv4Net, IpamError> {
    value.parse().map_err(|_| IpamError::Invalid {
        network: network.into(),
        key: key.into(),
        value: value.into(),
        what: "network (a.b.c.d/n)",
    })
}

fn parse_address(network: &str, key: &str, value: &str) -> Result<Ipv4Addr, IpamError> {
    value.parse().map_err(|_| IpamError::Invalid {
        network: network.into(),
        key: key.into(),
        value: value.into(),
        what: "address",
    })
}

fn outside(network: &str, key: &str, value: &str, subnet: Ipv4Net) -> IpamError {
    IpamError::Outside { network: network.into(), key: key.into(), value: value.into(), subnet }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> Ipv4Net {
        text.parse().unwrap()
    }

    fn ip(text: &str) -> Ipv4Addr {
        text.parse().unwrap()
    }

    #[test]
    fn the_first_free_default_subnet_is_chosen_around_host_routes_and_other_networks() {
        assert_eq!(free_subnet("default", &[]).unwrap(), net("172.17.0.0/16"));
        // docker0 and a host LAN inside 172.16.0.0/12, plus another berth network.
        let taken = [net("172.17.0.0/16"), net("172.18.5.0/24"), net("172.19.0.0/16")];
        assert_eq!(free_subnet("default", &taken).unwrap(), net("172.20.0.0/16"));
        // A host route covering all of 172.16.0.0/12 sends it to 192.168.0.0/16 in /20s,
        // around the host's 192.168.0.0/24.
        let taken = [net("172.16.0.0/12"), net("192.168.0.0/24")];
        assert_eq!(free_subnet("default", &taken).unwrap(), net("192.168.16.0/20"));
        let everything = [net("172.16.0.0/12"), net("192.168.0.0/16")];
        let err = free_subnet("back", &everything).unwrap_err();
        assert!(matches!(err, IpamError::PoolsExhausted { .. }));
        assert!(err.to_string().contains("\"back\"") && err.to_string().contains("ipam.config.subnet"));
    }

    #[test]
    fn a_default_network_gets_its_first_address_as_gateway_and_hands_out_the_next_ones() {
        let addressing = addressing("default", None, &[]).unwrap();
        assert_eq!(addressing.gateway, ip("172.17.0.1"));
        let mut in_use = BTreeSet::new();
        for expected in ["172.17.0.2", "172.17.0.3", "172.17.0.4"] {
            let address = addressing.assign("default", None, &in_use).unwrap();
            assert_eq!(address, ip(expected));
            in_use.insert(address);
        }
        // A container that went away frees its address for the next one.
        in_use.remove(&ip("172.17.0.3"));
        assert_eq!(addressing.assign("default", None, &in_use).unwrap(), ip("172.17.0.3"));
    }

    #[test]
    fn a_given_ipam_config_is_honoured_and_checked() {
        let pool = IpamPool {
            subnet: Some("10.5.0.0/24".into()),
            ip_range: Some("10.5.0.128/25".into()),
            gateway: Some("10.5.0.254".into()),
            aux_addresses: [("printer".to_string(), "10.5.0.129".to_string())].into(),
        };
        let front = addressing("front", Some(&pool), &[net("172.17.0.0/16")]).unwrap();
        assert_eq!(front.subnet, net("10.5.0.0/24"));
        assert_eq!(front.gateway, ip("10.5.0.254"));
        // The range's first host is .129, reserved; so .130.
        assert_eq!(front.assign("front", None, &BTreeSet::new()).unwrap(), ip("10.5.0.130"));
        assert_eq!(front.assign("front", Some(ip("10.5.0.7")), &BTreeSet::new()).unwrap(), ip("10.5.0.7"));

        let with = |f: &dyn Fn(&mut IpamPool)| {
            let mut p = pool.clone();
            f(&mut p);
            addressing("front", Some(&p), &[net("10.9.0.0/16")]).unwrap_err().to_string()
        };
        let err = with(&|p| p.gateway = Some("10.6.0.1".into()));
        assert!(err.contains("ipam.config.gateway 10.6.0.1 is outside the subnet 10.5.0.0/24"), "{err}");
        let err = with(&|p| p.subnet = Some("10.5.0.0".into()));
        assert!(err.contains("ipam.config.subnet \"10.5.0.0\" is not an IPv4 network"), "{err}");
        let err = with(&|p| p.ip_range = Some("10.5.1.0/25".into()));
        assert!(err.contains("ip_range 10.5.1.0/25 is outside"), "{err}");
        let err = with(&|p| p.subnet = Some("10.9.3.0/24".into()));
        assert!(err.contains("overlaps 10.9.0.0/16"), "{err}");
        let err = with(&|p| {
            p.subnet = Some("10.5.0.0/31".into());
            p.ip_range = None;
            p.gateway = None;
            p.aux_addresses.clear();
        });
        assert!(err.contains("no room"), "{err}");
    }

    #[test]
    fn fixed_addresses_are_refused_when_taken_or_outside_and_a_full_range_says_so() {
        let addressing =
            addressing("db", Some(&IpamPool { subnet: Some("10.1.0.0/30".into()), ..Default::default() }), &[])
                .unwrap();
        let in_use = BTreeSet::new();
        let refuse = |a: &str, in_use: &BTreeSet<Ipv4Addr>| {
            addressing.assign("db", Some(ip(a)), in_use).unwrap_err().to_string()
        };
        assert!(refuse("10.1.0.1", &in_use).contains("gateway"));
        assert!(refuse("10.1.0.3", &in_use).contains("not a host address"), "broadcast");
        assert!(refuse("10.2.0.2", &in_use).contains("outside"));
        let in_use: BTreeSet<_> = [ip("10.1.0.2")].into();
        assert!(refuse("10.1.0.2", &in_use).contains("already in use"));
        let err = addressing.assign("db", None, &in_use).unwrap_err();
        assert_eq!(err, IpamError::Full { network: "db".into(), range: net("10.1.0.0/30") });
    }
}
