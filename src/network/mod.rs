//! Project networks: address management now; bridges and veth pairs over netlink, DNS,
//! published ports and NAT build on it (issue 5).

pub mod ipam;
pub mod routes;
