//! Published ports: the host port held by a bound socket, the traffic carried by DNAT rules.
//!
//! No process per port (docker-proxy costs ~4 MB each). The process that owns the container —
//! the supervisor, or a foreground `run` — binds each host port without listening: that
//! reserves it (a second stack asking for it gets docker's "port is already allocated"), picks
//! ephemeral and ranged ports, and frees it when the process lets go. Packets never reach the
//! socket: the nat table rewrites them before local delivery.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::OwnedFd;

use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrIn};

use super::firewall::Protocol;
use crate::spec::ports::PortMapping;

/// A published port, held.
#[derive(Debug)]
pub struct Published {
    /// TCP, UDP or SCTP.
    pub protocol: Protocol,
    /// The host address; `None` for all of them.
    pub host_ip: Option<Ipv4Addr>,
    /// The host port.
    pub host_port: u16,
    /// The container port.
    pub container_port: u16,
    _reservation: OwnedFd,
}

/// A port that cannot be published.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// Something else holds it.
    #[error("Bind for {address} failed: port is already allocated ({source})")]
    Allocated {
        /// Address and port.
        address: String,
        /// The kernel's reason.
        source: nix::Error,
    },
    /// A value berth cannot publish.
    #[error("port {spec}: {message}")]
    Unsupported {
        /// The mapping.
        spec: String,
        /// Why.
        message: String,
    },
}

/// Holds the host side of each mapping: the given port, the first free one of a range, or an
/// ephemeral one; on the mapping's `host_ip`, else `default_host_ip`, else all addresses.
/// IPv6 host addresses are skipped (berth's networks are IPv4 only).
pub fn publish(mappings: &[PortMapping], default_host_ip: Option<Ipv4Addr>) -> Result<Vec<Published>, PortError> {
    let mut held = Vec::new();
    for mapping in mappings {
        let spec = || format!("{}:{}/{}", mapping.published.as_deref().unwrap_or(""), mapping.target, mapping.protocol);
        let host_ip = match mapping.host_ip.as_deref().filter(|h| !h.is_empty()) {
            Some(text) => match text.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
                Ok(std::net::IpAddr::V4(ip)) => Some(ip),
                Ok(std::net::IpAddr::V6(_)) => continue,
                Err(_) => {
                    return Err(PortError::Unsupported { spec: spec(), message: format!("bad host address {text:?}") });
                }
            },
            None => default_host_ip,
        }
        .filter(|ip| !ip.is_unspecified());
        let protocol = match mapping.protocol.as_str() {
            "tcp" | "" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "sctp" => Protocol::Sctp,
            other => {
                return Err(PortError::Unsupported { spec: spec(), message: format!("unknown protocol {other:?}") });
            }
        };
        let (first, last) = match mapping.published.as_deref().filter(|p| !p.is_empty()) {
            None => (0, 0),
            Some(text) => {
                let parse = |s: &str| {
                    s.trim().parse::<u16>().map_err(|_| PortError::Unsupported {
                        spec: spec(),
                        message: format!("bad published port {text:?}"),
                    })
                };
                match text.split_once('-') {
                    Some((a, b)) => (parse(a)?, parse(b)?),
                    None => (parse(text)?, parse(text)?),
                }
            }
        };
        let mut last_error = None;
        let mut reserved = None;
        for port in first..=last.max(first) {
            match reserve(protocol, host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED), port) {
                Ok(found) => {
                    reserved = Some(found);
                    break;
                }
                Err(e) => last_error = Some((port, e)),
            }
        }
        let Some((fd, host_port)) = reserved else {
            let (port, source) = last_error.unwrap_or((first, nix::Error::EADDRINUSE));
            let address = format!("{}:{port}", host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED));
            return Err(PortError::Allocated { address, source });
        };
        held.push(Published { protocol, host_ip, host_port, container_port: mapping.target, _reservation: fd });
    }
    Ok(held)
}

/// Binds (without listening) a socket of `protocol` to `ip:port`; port 0 picks one.
fn reserve(protocol: Protocol, ip: Ipv4Addr, port: u16) -> Result<(OwnedFd, u16), nix::Error> {
    let (kind, proto) = match protocol {
        Protocol::Tcp => (SockType::Stream, None),
        Protocol::Udp => (SockType::Datagram, None),
        Protocol::Sctp => (SockType::SeqPacket, Some(socket::SockProtocol::Sctp)),
    };
    let fd = socket::socket(AddressFamily::Inet, kind, SockFlag::SOCK_CLOEXEC, proto)?;
    socket::bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::from(SocketAddrV4::new(ip, port)))?;
    let bound: SockaddrIn = socket::getsockname(std::os::fd::AsRawFd::as_raw_fd(&fd))?;
    Ok((fd, bound.port()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(published: Option<&str>, target: u16, protocol: &str) -> PortMapping {
        PortMapping {
            name: None,
            mode: "ingress".into(),
            host_ip: Some("127.0.0.1".into()),
            target,
            published: published.map(str::to_owned),
            protocol: protocol.into(),
            app_protocol: None,
        }
    }

    #[test]
    fn an_ephemeral_port_is_picked_and_a_held_port_is_refused_with_dockers_words() {
        let held = publish(&[mapping(None, 80, "tcp")], None).expect("ephemeral");
        assert_ne!(held[0].host_port, 0);
        assert_eq!(held[0].host_ip, Some(Ipv4Addr::LOCALHOST));
        let again = held[0].host_port.to_string();
        let err = publish(&[mapping(Some(&again), 80, "tcp")], None).expect_err("taken");
        assert!(err.to_string().contains("port is already allocated"), "{err}");
        assert!(err.to_string().starts_with(&format!("Bind for 127.0.0.1:{again} failed")), "{err}");
    }

    #[test]
    fn a_range_takes_the_next_free_port_and_udp_is_separate_from_tcp() {
        let first = publish(&[mapping(None, 53, "udp")], None).expect("udp");
        let port = first[0].host_port;
        let range = format!("{port}-{}", port.saturating_add(5));
        let next = publish(&[mapping(Some(&range), 53, "udp")], None).expect("range");
        assert!(next[0].host_port > port);
        let tcp = publish(&[mapping(Some(&port.to_string()), 53, "tcp")], None).expect("tcp on the udp port");
        assert_eq!(tcp[0].host_port, port);
    }
}
