//! The IPv4 networks the host already routes, from `/proc/net/route` (the calling thread's
//! network namespace): a subnet for a new bridge must overlap none of them, or containers could
//! not reach what the host reaches there.

use ipnet::Ipv4Net;

/// The routing table's text.
pub const PROC_NET_ROUTE: &str = "/proc/net/route";

/// The destination networks of every route in `text` (the format of /proc/net/route), the
/// default route left out: it overlaps everything and says nothing about a subnet.
pub fn routed_networks(text: &str) -> Vec<Ipv4Net> {
    let mut found = Vec::new();
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(destination), Some(mask)) = (fields.get(1), fields.get(7)) else { continue };
        let (Some(destination), Some(mask)) = (parse_hex_address(destination), parse_hex_address(mask)) else {
            continue;
        };
        let Ok(prefix) = ipnet::ipv4_mask_to_prefix(mask) else { continue };
        if prefix == 0 {
            continue;
        }
        if let Ok(net) = Ipv4Net::new(destination, prefix) {
            found.push(net.trunc());
        }
    }
    found
}

/// The host's routed networks; none when the table cannot be read.
pub fn host_routed_networks() -> Vec<Ipv4Net> {
    std::fs::read_to_string(PROC_NET_ROUTE).map(|text| routed_networks(&text)).unwrap_or_default()
}

/// An address as the kernel prints it there: eight hex digits of the in-memory (network order)
/// value read as a host-order integer, so little-endian on x86.
fn parse_hex_address(field: &str) -> Option<std::net::Ipv4Addr> {
    let raw = u32::from_str_radix(field, 16).ok()?;
    Some(std::net::Ipv4Addr::from(raw.to_ne_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
garbage line
";

    #[test]
    fn routes_are_read_without_the_default_route() {
        if cfg!(target_endian = "big") {
            return;
        }
        let nets = routed_networks(TABLE);
        assert_eq!(nets, ["192.168.0.0/24".parse::<Ipv4Net>().unwrap(), "172.17.0.0/16".parse().unwrap()]);
    }
}
