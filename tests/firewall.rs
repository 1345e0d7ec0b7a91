//! berth's firewall rules for real, as root — never in the host's network namespace: every
//! namespace here (the test's "host", its containers, an "outside" peer) is a thread that
//! unshared its own, and commands run from that thread inherit it. Traffic goes only to
//! loopback and to addresses of these namespaces; they vanish with their threads and sockets,
//! and no namespace is named, so nothing outlives the test even when an assertion fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use berth::network::firewall::{Backend, FirewallError, NetworkRules, PortRule, Protocol};

/// How long a client waits before calling a peer unreachable: only a bound on a failing test
/// (or on a check that traffic is blocked), never a measurement.
const PATIENCE: Duration = Duration::from_secs(10);
const BLOCKED: Duration = Duration::from_secs(2);

type Job = Box<dyn FnOnce() + Send>;

/// A network namespace of the test's own: a thread that unshared it and runs jobs sent to it.
struct Netns {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    tid: i32,
}

impl Netns {
    fn new() -> Netns {
        assert!(nix::unistd::geteuid().is_root(), "the firewall tests create network namespaces: run them as root");
        let (jobs, queue) = mpsc::channel::<Job>();
        let (ready, started) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let unshared = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET);
            let failed = unshared.is_err();
            ready.send(unshared.map(|()| nix::unistd::gettid().as_raw())).unwrap();
            if failed {
                return;
            }
            for job in queue {
                job();
            }
        });
        let tid = started.recv().unwrap().expect("unshare(CLONE_NEWNET)");
        let ns = Netns { jobs: Some(jobs), thread: Some(thread), tid };
        // The tests' safety rests on this: a child spawned from the thread is in its namespace,
        // not in the host's.
        let own = ns.run(|| std::fs::read_link("/proc/thread-self/ns/net").unwrap());
        let host = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
        assert_ne!(own, host);
        assert_eq!(ns.sh("readlink /proc/self/ns/net").trim(), own.to_str().unwrap());
        ns.sh("ip link set lo up");
        ns
    }

    /// Runs `f` on the namespace's thread.
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        let job = Box::new(move || {
            let _ = tx.send(catch_unwind(AssertUnwindSafe(f)));
        });
        self.jobs.as_ref().unwrap().send(job).unwrap();
        rx.recv().unwrap().unwrap_or_else(|panic| resume_unwind(panic))
    }

    /// Runs a firewall operation in the namespace — never in the test's own, the host's.
    fn firewall(&self, backend: Backend, op: impl FnOnce(Backend) -> Result<(), FirewallError> + Send + 'static) {
        self.run(move || op(backend)).unwrap();
    }

    /// Runs a shell script in the namespace; its standard output.
    fn sh(&self, script: &str) -> String {
        let script = script.to_owned();
        self.run(move || {
            let out = Command::new("sh").arg("-c").arg(&script).output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "`{script}` failed: {stderr}");
            String::from_utf8(out.stdout).unwrap()
        })
    }

    /// Connects to `to` and returns what a whoami server there says: the client's address as
    /// it saw it.
    fn tcp(&self, to: &str, patience: Duration) -> std::io::Result<String> {
        let to: SocketAddr = to.parse().unwrap();
        let mut stream = self.run(move || TcpStream::connect_timeout(&to, patience))?;
        stream.set_read_timeout(Some(PATIENCE))?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        Ok(answer)
    }

    /// Sends a datagram to `to` and returns the answer of the whoami server there.
    fn udp(&self, to: &str) -> std::io::Result<String> {
        let to: SocketAddr = to.parse().unwrap();
        let socket = self.run(|| UdpSocket::bind("0.0.0.0:0"))?;
        socket.set_read_timeout(Some(PATIENCE))?;
        socket.send_to(b"who", to)?;
        let mut buf = [0; 64];
        let (len, _) = socket.recv_from(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf[..len]).into_owned())
    }

    /// A TCP server in the namespace that tells each client its address.
    fn tcp_whoami(&self, at: &str) -> Server {
        let at: SocketAddr = at.parse().unwrap();
        let listener = Arc::new(self.run(move || TcpListener::bind(at)).unwrap());
        let serving = Arc::clone(&listener);
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while let Ok((mut stream, peer)) = serving.accept() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let _ = stream.write_all(peer.ip().to_string().as_bytes());
            }
        });
        Server { fd: listener.as_raw_fd(), _socket: Box::new(listener), stop, thread: Some(thread) }
    }

    /// A UDP server in the namespace that answers each datagram with its sender's address.
    fn udp_whoami(&self, at: &str) -> Server {
        let at: SocketAddr = at.parse().unwrap();
        let socket = Arc::new(self.run(move || UdpSocket::bind(at)).unwrap());
        let serving = Arc::clone(&socket);
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut buf = [0; 64];
            while let Ok((_, peer)) = serving.recv_from(&mut buf) {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let _ = serving.send_to(peer.ip().to_string().as_bytes(), peer);
            }
        });
        Server { fd: socket.as_raw_fd(), _socket: Box::new(socket), stop, thread: Some(thread) }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Closing the queue ends the thread, and with it the namespace once no socket holds it.
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A server thread; dropping it shuts its socket down, which wakes the thread, and joins it.
struct Server {
    fd: i32,
    _socket: Box<dyn Send>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = nix::sys::socket::shutdown(self.fd, nix::sys::socket::Shutdown::Both);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The test's world: a "host" with bridge `berthbrtest0` (172.30.0.0/24: containers c1 .2 and
/// c2 .3) and the internal bridge `berthbrtest1` (172.31.0.0/24: c3 .2), and an "outside" peer
/// on a veth, 192.0.2.2 to the host's 192.0.2.1, with a route to the normal network through
/// the host (as a LAN neighbour could have).
struct Lab {
    c1: Netns,
    c2: Netns,
    c3: Netns,
    outside: Netns,
    host: Netns,
}

impl Lab {
    fn new() -> Lab {
        let lab =
            Lab { host: Netns::new(), c1: Netns::new(), c2: Netns::new(), c3: Netns::new(), outside: Netns::new() };
        lab.host.sh(&format!(
            "set -e
             for b in 0 1; do ip link add berthbrtest$b type bridge; ip link set berthbrtest$b up; done
             ip addr add 172.30.0.1/24 dev berthbrtest0
             ip addr add 172.31.0.1/24 dev berthbrtest1
             ip link add vc1 type veth peer name eth0 netns {c1}
             ip link add vc2 type veth peer name eth0 netns {c2}
             ip link add vc3 type veth peer name eth0 netns {c3}
             ip link set vc1 master berthbrtest0 up
             ip link set vc2 master berthbrtest0 up
             ip link set vc3 master berthbrtest1 up
             for p in vc1 vc2 vc3; do ip link set dev $p type bridge_slave hairpin on; done
             ip link add vout type veth peer name eth0 netns {outside}
             ip addr add 192.0.2.1/24 dev vout
             ip link set vout up",
            c1 = lab.c1.tid,
            c2 = lab.c2.tid,
            c3 = lab.c3.tid,
            outside = lab.outside.tid,
        ));
        for (ns, address, gateway) in [
            (&lab.c1, "172.30.0.2", "172.30.0.1"),
            (&lab.c2, "172.30.0.3", "172.30.0.1"),
            (&lab.c3, "172.31.0.2", "172.31.0.1"),
        ] {
            ns.sh(&format!(
                "ip addr add {address}/24 dev eth0 && ip link set eth0 up && ip route add default via {gateway}"
            ));
        }
        lab.outside
            .sh("ip addr add 192.0.2.2/24 dev eth0 && ip link set eth0 up && ip route add 172.30.0.0/24 via 192.0.2.1");
        lab
    }
}

/// The network of c1 and c2.
fn normal() -> NetworkRules<'static> {
    NetworkRules {
        project: "fwtest",
        network: "fwtest_default",
        bridge: "berthbrtest0",
        subnet: "172.30.0.0/24".parse().unwrap(),
        gateway: Ipv4Addr::new(172, 30, 0, 1),
        internal: false,
    }
}

/// c3's internal network.
fn internal() -> NetworkRules<'static> {
    NetworkRules {
        network: "fwtest_back",
        bridge: "berthbrtest1",
        subnet: "172.31.0.0/24".parse().unwrap(),
        gateway: Ipv4Addr::new(172, 31, 0, 1),
        internal: true,
        ..normal()
    }
}

fn port(
    container: &'static str,
    protocol: Protocol,
    host: Option<Ipv4Addr>,
    host_port: u16,
    ip: [u8; 4],
) -> PortRule<'static> {
    PortRule {
        project: "fwtest",
        container,
        protocol,
        host_ip: host,
        host_port,
        container_ip: Ipv4Addr::from(ip),
        container_port: 80,
    }
}

/// c1's published ports: tcp 8080 and udp 5353 on every host address.
fn web_ports() -> [PortRule<'static>; 2] {
    [
        port("fwtest-web-1", Protocol::Tcp, None, 8080, [172, 30, 0, 2]),
        port("fwtest-web-1", Protocol::Udp, Some(Ipv4Addr::UNSPECIFIED), 5353, [172, 30, 0, 2]),
    ]
}

/// The ruleset as `iptables-save` prints it, without its timestamps and counters.
fn iptables_rules(ns: &Netns) -> String {
    let saved = ns.sh("iptables-save");
    saved
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| if l.starts_with(':') { l.rsplit_once(' ').map_or(l, |(chain, _)| chain) } else { l })
        .collect::<Vec<_>>()
        .join("\n")
}

fn nft_rules(ns: &Netns) -> String {
    ns.sh("nft list ruleset")
}

/// The nft backend is tested where `nft` is installed, and says so where it is not.
fn nft_available() -> bool {
    let found = Command::new("nft").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("SKIPPED: the nft backend's tests need the nft binary (apt-get install nftables)");
    }
    found
}

/// The traffic a project's networks must allow, and block, once berth's rules are in; then
/// their removal, which must leave the ruleset as `rules` showed it before.
fn traffic_scenario(backend: Backend, lab: &Lab, rules: fn(&Netns) -> String) {
    let before = rules(&lab.host);
    let outside_server = lab.outside.tcp_whoami("192.0.2.2:9000");
    let web = lab.c1.tcp_whoami("0.0.0.0:80");
    let web_udp = lab.c1.udp_whoami("0.0.0.0:80");
    let admin = lab.c2.tcp_whoami("0.0.0.0:80");
    let resolver = lab.host.tcp_whoami("172.30.0.1:53");
    let resolver_udp = lab.host.udp_whoami("172.30.0.1:53");
    let back = lab.c3.tcp_whoami("0.0.0.0:80");

    let fw = |op: fn(Backend) -> Result<(), FirewallError>| lab.host.firewall(backend, op);
    fw(|b| b.add_network(&normal()));
    fw(|b| b.add_network(&internal()));
    fw(|b| b.add_ports(&web_ports()));
    fw(|b| b.add_ports(&[port("fwtest-admin-1", Protocol::Tcp, Some(Ipv4Addr::LOCALHOST), 9090, [172, 30, 0, 3])]));
    let sorted = |text: String| {
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        lines.sort();
        lines
    };
    let installed = sorted(rules(&lab.host));
    // Idempotent: the same network and ports again leave one copy of each rule (replaced, so
    // perhaps in another order).
    fw(|b| b.add_network(&normal()));
    fw(|b| b.add_ports(&web_ports()));
    assert_eq!(sorted(rules(&lab.host)), installed);
    assert_eq!(lab.host.sh("cat /proc/sys/net/ipv4/ip_forward").trim(), "1");
    assert_eq!(lab.host.sh("cat /proc/sys/net/ipv4/conf/berthbrtest0/route_localnet").trim(), "1");

    // Out to the world, masqueraded as the host's address.
    assert_eq!(lab.c1.tcp("192.0.2.2:9000", PATIENCE).unwrap(), "192.0.2.1");
    // The DNS server on the gateway.
    assert_eq!(lab.c1.tcp("172.30.0.1:53", PATIENCE).unwrap(), "172.30.0.2");
    assert_eq!(lab.c1.udp("172.30.0.1:53").unwrap(), "172.30.0.2");
    // ... and for its own bridge only: not for the host itself (through lo), another network's
    // containers, or a routed host.
    assert!(lab.host.tcp("172.30.0.1:53", BLOCKED).is_err());
    assert!(lab.c3.tcp("172.30.0.1:53", BLOCKED).is_err());
    assert!(lab.outside.tcp("172.30.0.1:53", BLOCKED).is_err());
    // Container to container on the bridge.
    assert_eq!(lab.c1.tcp("172.30.0.3:80", PATIENCE).unwrap(), "172.30.0.2");

    // Published: from the host's loopback (masqueraded to the gateway), from the host to its
    // own address, from outside (client address kept), and back in from the bridge (hairpin).
    assert_eq!(lab.host.tcp("127.0.0.1:8080", PATIENCE).unwrap(), "172.30.0.1");
    assert_eq!(lab.host.tcp("192.0.2.1:8080", PATIENCE).unwrap(), "192.0.2.1");
    assert_eq!(lab.outside.tcp("192.0.2.1:8080", PATIENCE).unwrap(), "192.0.2.2");
    assert_eq!(lab.c2.tcp("192.0.2.1:8080", PATIENCE).unwrap(), "172.30.0.1");
    assert_eq!(lab.c1.tcp("192.0.2.1:8080", PATIENCE).unwrap(), "172.30.0.1");
    assert_eq!(lab.outside.udp("192.0.2.1:5353").unwrap(), "192.0.2.2");
    assert_eq!(lab.host.udp("127.0.0.1:5353").unwrap(), "172.30.0.1");
    // Published on 127.0.0.1 only.
    assert_eq!(lab.host.tcp("127.0.0.1:9090", PATIENCE).unwrap(), "172.30.0.1");
    assert!(lab.outside.tcp("192.0.2.1:9090", BLOCKED).is_err());

    // Blocked: unpublished ports routed to directly from outside, and the internal network in
    // both directions.
    assert!(lab.outside.tcp("172.30.0.2:80", BLOCKED).is_err());
    assert!(lab.c3.tcp("192.0.2.2:9000", BLOCKED).is_err());
    assert!(lab.c1.tcp("172.31.0.2:80", BLOCKED).is_err());

    fw(|b| b.remove_container("fwtest", "fwtest-web-1"));
    assert!(lab.host.tcp("127.0.0.1:8080", BLOCKED).is_err());
    assert_eq!(lab.host.tcp("127.0.0.1:9090", PATIENCE).unwrap(), "172.30.0.1", "another container's port stays");
    fw(|b| b.remove_network("fwtest", "fwtest_back"));
    fw(|b| b.remove_project("fwtest"));
    fw(|b| b.remove_if_unused());
    assert_eq!(rules(&lab.host), before);
    drop((outside_server, web, web_udp, admin, resolver, resolver_udp, back));
}

/// Rules as docker leaves them — `FORWARD` policy DROP, its chains first in `FORWARD`, its nat
/// jumps — and a host firewall that drops new connections to the host.
const DOCKER_LIKE: &str = "*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:DOCKER-USER - [0:0]
:DOCKER-FORWARD - [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-FORWARD
-A DOCKER-USER -j RETURN
COMMIT
*nat
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
COMMIT
";

fn docker_like(ns: &Netns) {
    ns.run(|| {
        let mut child = Command::new("iptables-restore").stdin(std::process::Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(DOCKER_LIKE.as_bytes()).unwrap();
        assert!(child.wait().unwrap().success());
    });
}

fn nothing(_: &Netns) {}

#[test]
fn iptables_rules_carry_traffic_through_a_docker_drop_policy_and_leave_no_trace() {
    let lab = Lab::new();
    docker_like(&lab.host);
    // Without berth's rules, docker's policy drops the containers' traffic.
    let outside_server = lab.outside.tcp_whoami("192.0.2.2:9000");
    lab.host.sh("echo 1 > /proc/sys/net/ipv4/ip_forward");
    assert!(lab.c1.tcp("192.0.2.2:9000", BLOCKED).is_err());
    drop(outside_server);
    traffic_scenario(Backend::Iptables, &lab, iptables_rules);
}

#[test]
fn nft_rules_carry_traffic_and_leave_no_trace() {
    if !nft_available() {
        return;
    }
    // No docker-like rules here: an accept in table ip berth cannot override a drop in another
    // table, which is why detect() prefers iptables wherever it exists.
    let lab = Lab::new();
    traffic_scenario(Backend::Nftables, &lab, nft_rules);
    assert_eq!(nft_rules(&lab.host), "", "the table is gone");
}

/// Removing project `a` leaves project `ab`'s rules alone, even a container of the same name.
fn projects_scenario(backend: Backend, setup: fn(&Netns), rules: fn(&Netns) -> String) {
    let host = Netns::new();
    setup(&host);
    host.sh("ip link add berthbrtesta type bridge && ip link add berthbrtestb type bridge");
    let before = rules(&host);
    let fw = |op: Box<dyn FnOnce(Backend) -> Result<(), FirewallError> + Send>| host.firewall(backend, op);
    let network = |project, network, bridge, subnet: &str| NetworkRules {
        project,
        network,
        bridge,
        subnet: subnet.parse().unwrap(),
        gateway: subnet.replace(".0/24", ".1").parse().unwrap(),
        internal: false,
    };
    let web = |project, container| PortRule {
        project,
        container,
        protocol: Protocol::Tcp,
        host_ip: None,
        host_port: if project == "a" { 8080 } else { 8081 },
        container_ip: Ipv4Addr::new(10, 9, 0, 2),
        container_port: 80,
    };
    fw(Box::new(move |b| b.add_network(&network("ab", "ab_default", "berthbrtestb", "10.9.1.0/24"))));
    fw(Box::new(move |b| b.add_ports(&[web("ab", "a-web-1"), web("ab", "ab-web-1")])));
    let ab_only = rules(&host);
    fw(Box::new(move |b| b.add_network(&network("a", "ab_default", "berthbrtesta", "10.9.0.0/24"))));
    fw(Box::new(move |b| b.add_ports(&[web("a", "a-web-1")])));
    let ab_lines =
        |text: &str| text.lines().filter(|l| l.contains("\"berth ab ")).map(str::to_owned).collect::<Vec<_>>();
    let ab_rules = ab_lines(&rules(&host));
    assert!(ab_rules.len() > 10, "{ab_rules:#?}");

    fw(Box::new(move |b| b.remove_container("a", "a-web-1")));
    fw(Box::new(move |b| b.remove_network("a", "ab_default")));
    assert_eq!(rules(&host), ab_only, "project a's rules are gone, ab's all there");
    fw(Box::new(move |b| b.add_network(&network("a", "a_default", "berthbrtesta", "10.9.0.0/24"))));
    fw(Box::new(move |b| b.add_ports(&[web("a", "a-web-1")])));
    fw(Box::new(move |b| b.remove_project("a")));
    fw(Box::new(move |b| b.remove_if_unused()));
    assert_eq!(rules(&host), ab_only, "project ab still uses berth's chains");
    assert_eq!(ab_lines(&rules(&host)), ab_rules);

    fw(Box::new(move |b| b.remove_project("ab")));
    fw(Box::new(move |b| b.remove_if_unused()));
    assert_eq!(rules(&host), before);
    // Removing what is not there is no error.
    fw(Box::new(move |b| b.remove_project("ab")));
    fw(Box::new(move |b| b.remove_if_unused()));
}

#[test]
fn iptables_project_removal_is_exact() {
    projects_scenario(Backend::Iptables, docker_like, iptables_rules);
}

#[test]
fn nft_project_removal_is_exact() {
    if nft_available() {
        projects_scenario(Backend::Nftables, nothing, nft_rules);
    }
}
