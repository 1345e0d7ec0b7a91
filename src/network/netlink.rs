//! Links, addresses and routes over rtnetlink: the bridge of a network and a container's veth
//! pairs.
//!
//! A network namespace is a property of a thread, and a tokio task may move between threads,
//! so netlink work never runs on the caller's runtime: each operation gets a thread of its own
//! with a current-thread runtime. A container's side is configured from a socket opened after
//! that thread entered the container's namespace (netavark does the same); the host's side from
//! a socket opened before, so one thread does both ends of a container's links.
//!
//! Veths are never deleted one by one (the kernel waits for an RCU grace period, ~160 ms each):
//! the host end disappears with the container's network namespace.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, BorrowedFd};

use futures_util::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkMessage};
use rtnetlink::{Handle, LinkBridge, LinkBridgePort, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};

/// A netlink request that failed, with what berth was doing.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The kernel refused a request.
    #[error("{what}: {source}")]
    Request {
        /// What berth asked for.
        what: String,
        /// The kernel's answer.
        source: std::io::Error,
    },
    /// The netlink socket or the namespace switch failed.
    #[error("{what}: {source}")]
    Setup {
        /// What berth was doing.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
}

fn request(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetlinkError {
    move |e| NetlinkError::Request { what: what.into(), source: errno(e) }
}

/// The errno inside a netlink error, so callers can tell EEXIST and ENODEV apart.
fn errno(e: rtnetlink::Error) -> std::io::Error {
    match e {
        rtnetlink::Error::NetlinkError(message) => message.to_io(),
        other => std::io::Error::other(other.to_string()),
    }
}

fn is_errno(e: &NetlinkError, code: i32) -> bool {
    matches!(e, NetlinkError::Request { source, .. } if source.raw_os_error() == Some(code))
}

/// Runs `work` on a new thread with its own runtime and a netlink connection opened in the
/// host's namespace (the caller's); `container` is a second connection, opened after the
/// thread entered the namespace behind that fd, when given.
pub fn run<T, F, Fut>(container: Option<BorrowedFd<'_>>, work: F) -> Result<T, NetlinkError>
where
    T: Send,
    F: FnOnce(Handle, Option<Handle>) -> Fut + Send,
    Fut: Future<Output = Result<T, NetlinkError>>,
{
    let netns = container.map(|fd| fd.as_raw_fd());
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                let setup = |what: &str| {
                    let what = what.to_owned();
                    move |source| NetlinkError::Setup { what, source }
                };
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .build()
                    .map_err(setup("start a netlink runtime"))?;
                runtime.block_on(async move {
                    let (connection, host, _) = rtnetlink::new_connection().map_err(setup("open a netlink socket"))?;
                    tokio::spawn(connection);
                    let inside = match netns {
                        Some(fd) => {
                            // SAFETY: the fd is borrowed for the whole scope of this thread.
                            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
                            nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET)
                                .map_err(|e| setup("enter the container's network namespace")(e.into()))?;
                            let (connection, handle, _) =
                                rtnetlink::new_connection().map_err(setup("open a netlink socket in the container"))?;
                            tokio::spawn(connection);
                            Some(handle)
                        }
                        None => None,
                    };
                    work(host, inside).await
                })
            })
            .join()
            .unwrap_or_else(|_| {
                Err(NetlinkError::Setup { what: "netlink thread".into(), source: std::io::Error::other("panicked") })
            })
    })
}

/// A link's index by name, or `None` when there is none.
pub async fn link_index(handle: &Handle, name: &str) -> Result<Option<u32>, NetlinkError> {
    let mut links = handle.link().get().match_name(name.to_owned()).execute();
    match links.try_next().await {
        Ok(link) => Ok(link.map(|l| l.header.index)),
        Err(e) => {
            let e = request(format!("look up link {name}"))(e);
            if is_errno(&e, libc::ENODEV) { Ok(None) } else { Err(e) }
        }
    }
}

/// The names of all links whose name starts with `prefix`.
pub async fn link_names(handle: &Handle, prefix: &str) -> Result<Vec<String>, NetlinkError> {
    let mut links = handle.link().get().execute();
    let mut names = Vec::new();
    while let Some(link) = links.try_next().await.map_err(request("list links"))? {
        if let Some(name) = link_name(&link).filter(|n| n.starts_with(prefix)) {
            names.push(name);
        }
    }
    Ok(names)
}

fn link_name(link: &LinkMessage) -> Option<String> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(name) => Some(name.clone()),
        _ => None,
    })
}

/// Makes bridge `name` with `gateway` (address/prefix) on it and brings it up; a bridge left by
/// an earlier run is reused. Returns its index.
pub async fn ensure_bridge(
    handle: &Handle,
    name: &str,
    gateway: Ipv4Net,
    mtu: Option<u32>,
) -> Result<u32, NetlinkError> {
    if link_index(handle, name).await?.is_none() {
        // A bridge without an address of its own takes the lowest of its ports' and changes
        // it when ports come and go: containers' ARP entries for the gateway then point
        // nowhere until they expire. A fixed address, as docker sets.
        let mut bridge = LinkBridge::new(name).address(bridge_mac(name).to_vec());
        if let Some(mtu) = mtu {
            bridge = bridge.mtu(mtu);
        }
        match handle.link().add(bridge.build()).execute().await.map_err(request(format!("create bridge {name}"))) {
            Err(e) if !is_errno(&e, libc::EEXIST) => return Err(e),
            _ => {}
        }
    }
    let index = link_index(handle, name).await?.ok_or_else(|| NetlinkError::Request {
        what: format!("create bridge {name}"),
        source: std::io::Error::from_raw_os_error(libc::ENODEV),
    })?;
    add_address(handle, index, name, gateway).await?;
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(request(format!("bring bridge {name} up")))?;
    Ok(index)
}

/// A container interface's MAC address: 02:42 and its IPv4 address.
pub fn container_mac(address: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = address.octets();
    [0x02, 0x42, a, b, c, d]
}

/// A stable, locally administered unicast MAC address for bridge `name`.
pub fn bridge_mac(name: &str) -> [u8; 6] {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(name.as_bytes());
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&digest[..6]);
    mac[0] = (mac[0] & 0xfe) | 0x02;
    mac
}

async fn add_address(handle: &Handle, index: u32, link: &str, address: Ipv4Net) -> Result<(), NetlinkError> {
    match handle
        .address()
        .add(index, IpAddr::V4(address.addr()), address.prefix_len())
        .execute()
        .await
        .map_err(request(format!("add address {address} to {link}")))
    {
        Err(e) if !is_errno(&e, libc::EEXIST) => Err(e),
        _ => Ok(()),
    }
}

/// Deletes link `name`; one already gone is fine.
pub async fn delete_link(handle: &Handle, name: &str) -> Result<(), NetlinkError> {
    let Some(index) = link_index(handle, name).await? else { return Ok(()) };
    match handle.link().del(index).execute().await.map_err(request(format!("delete link {name}"))) {
        Err(e) if !is_errno(&e, libc::ENODEV) => Err(e),
        _ => Ok(()),
    }
}

/// One of a container's interfaces: a veth whose host end is a port of a bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// The host end's name (`berthv…`).
    pub host_name: String,
    /// The name inside the container (`eth0`, …).
    pub name: String,
    /// The bridge the host end joins.
    pub bridge: String,
    /// The container's address and the network's prefix.
    pub address: Ipv4Net,
    /// The link's MTU (the bridge's).
    pub mtu: Option<u32>,
}

/// Creates a container's veths with their inner ends made directly in its namespace (no move,
/// no rename), addresses them, brings them and `lo` up and routes by default through
/// `gateway`. `container` is the container's side of [`run`]; `netns` the namespace's fd.
pub async fn attach(
    host: &Handle,
    container: &Handle,
    netns: BorrowedFd<'_>,
    interfaces: &[Interface],
    gateway: Option<Ipv4Addr>,
) -> Result<(), NetlinkError> {
    let lo = link_index(container, "lo").await?;
    if let Some(lo) = lo {
        container
            .link()
            .set(LinkUnspec::new_with_index(lo).up().build())
            .execute()
            .await
            .map_err(request("bring lo up"))?;
    }
    for interface in interfaces {
        let bridge = link_index(host, &interface.bridge).await?.ok_or_else(|| NetlinkError::Request {
            what: format!("find bridge {}", interface.bridge),
            source: std::io::Error::from_raw_os_error(libc::ENODEV),
        })?;
        // The MAC follows the address, as docker makes it (02:42 and the four bytes): a
        // container restarted at an address another had a moment ago is reached at once, not
        // when its neighbours' ARP entries for that address expire (a minute).
        let mut peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name(interface.name.clone())
            .address(container_mac(interface.address.addr()).to_vec())
            .setns_by_fd(netns.as_raw_fd());
        let mut veth = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(interface.host_name.clone())
            .controller(bridge)
            .up();
        if let Some(mtu) = interface.mtu {
            peer = peer.mtu(mtu);
            veth = veth.mtu(mtu);
        }
        let veth = veth.set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build()))).build();
        let what = format!("create veth {} for {}", interface.host_name, interface.bridge);
        match host.link().add(veth.clone()).execute().await.map_err(request(what.clone())) {
            // The host end's name is the container's own: a container started again at once
            // (`restart -t 0`) can find its previous run's veth still there, while the kernel
            // has yet to tear down the old namespace (which removes the pair). It is stale:
            // removed, and the pair made again.
            Err(e) if is_errno(&e, libc::EEXIST) => {
                delete_link(host, &interface.host_name).await?;
                host.link().add(veth).execute().await.map_err(request(what))?;
            }
            other => other?,
        }
        // Hairpin: a container reaching its own published port through a host address gets
        // the packet back out of the port it came in by.
        if let Some(port) = link_index(host, &interface.host_name).await? {
            host.link()
                .set_port(LinkBridgePort::new(port).hairpin(true).build())
                .execute()
                .await
                .map_err(request(format!("hairpin mode on {}", interface.host_name)))?;
        }
        let index = link_index(container, &interface.name).await?.ok_or_else(|| NetlinkError::Request {
            what: format!("find {} in the container", interface.name),
            source: std::io::Error::from_raw_os_error(libc::ENODEV),
        })?;
        add_address(container, index, &interface.name, interface.address).await?;
        container
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(request(format!("bring {} up", interface.name)))?;
    }
    if let Some(gateway) = gateway {
        let route = RouteMessageBuilder::<Ipv4Addr>::new().gateway(gateway).build();
        container.route().add(route).execute().await.map_err(request(format!("route through {gateway}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bridge_mac_is_stable_unicast_and_locally_administered() {
        let mac = bridge_mac("berthbr00000000");
        assert_eq!(mac, bridge_mac("berthbr00000000"));
        assert_ne!(mac, bridge_mac("berthbr00000001"));
        assert_eq!(mac[0] & 0x01, 0, "unicast");
        assert_eq!(mac[0] & 0x02, 0x02, "locally administered");
        assert_eq!(container_mac(Ipv4Addr::new(172, 17, 0, 3)), [0x02, 0x42, 172, 17, 0, 3]);
    }
}
