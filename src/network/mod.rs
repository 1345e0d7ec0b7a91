//! Project networks: a bridge per network made over netlink, addresses from IPAM, a veth pair
//! per container and network, packet-filter rules for NAT and published ports, and the
//! embedded DNS server the project's supervisor runs.

pub mod dns;
pub mod firewall;
pub mod ipam;
pub mod netlink;
pub mod ports;
pub mod routes;
pub mod setup;
pub mod store;
