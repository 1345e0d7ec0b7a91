//! Project networks through `berth up -d` / `berth down`, as root: bridges and veths, the
//! embedded DNS server, published ports, outbound NAT, and cleanup. Containers run the busybox
//! image the test setup builds (tests/fixtures/make-images.sh); the UDP server runs Python from
//! the built-in host image.
//!
//! Traffic goes only to loopback, to container addresses, to the bridge's own address, and to an
//! "outside" network namespace the test makes itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::process::Command;
use std::time::Duration;

use support::*;

#[test]
fn services_reach_each_other_by_name_and_alias_and_a_published_port_answers_on_the_host() {
    let _host = HOST_FIREWALL.lock().unwrap_or_else(|e| e.into_inner());
    let server = service(
        "server",
        &format!("{}\nnetworks:\n  default:\n    aliases: [srv]\nports: [\"18080:8080\"]", tcp_server(8080, "hello")),
    );
    let web = service("web", &format!("{IDLE}\nscale: 2"));
    let project = Project::new("bnetnames", &format!("{server}{web}{}", service("client", IDLE)));
    project.up();
    let (_, replicas) = project.sh("client", "nslookup -type=a web");
    let answers = replicas.lines().filter(|l| l.starts_with("Address: ") && !l.ends_with(":53")).count();
    assert_eq!(answers, 2, "both replicas of a scaled service:\n{replicas}");
    let oneoff = project.berth(&["run", "-T", "client", "nslookup", "server"]);
    let text = String::from_utf8_lossy(&oneoff.stdout);
    assert!(text.contains("Name:\tserver"), "a one-off container resolves the project's names:\n{text}");
    let hosts =
        project.sh("client", "cat /etc/resolv.conf; nslookup server; nslookup srv; nslookup bnetnames-server-1").1;
    let gateway = gateway_of(&project, "default");
    assert!(hosts.contains(&format!("nameserver {gateway}")), "{hosts}");
    assert_eq!(hosts.matches("Name:").count(), 3, "the service, its alias and the container name resolve:\n{hosts}");
    assert!(project.sh_until("client", "nc server 8080 </dev/null", "hello").contains("hello"));
    assert!(project.sh_until("client", "nc srv 8080 </dev/null", "hello").contains("hello"));
    assert_eq!(read_tcp(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 18080)).trim(), "hello", "through 127.0.0.1");
    assert_eq!(read_tcp(SocketAddrV4::new(gateway, 18080)).trim(), "hello", "through another host address");
    let bridge = bridge_of(&project, "default");
    project.down();
    assert!(leftovers(&bridge).is_empty(), "{:?}", leftovers(&bridge));
    assert!(leftovers("berth bnetnames ").is_empty(), "{:?}", leftovers("berth bnetnames "));
    assert!(!state_root().join("networks/bnetnames_default.json").exists());
}

#[test]
fn a_udp_port_round_trips_a_datagram_and_a_port_range_publishes_each_port() {
    let _host = HOST_FIREWALL.lock().unwrap_or_else(|e| e.into_inner());
    let echo = "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(('0.0.0.0', 9999))\n\
                while True:\n    data, peer = s.recvfrom(2048)\n    s.sendto(b'echo ' + data, peer)\n";
    let udp = format!(
        "  udp:\n    image: berth.invalid/host:latest\n{NO_UPSTREAM}    command: [\"python3\", \"-c\", {}]\n    ports: [\"18099:9999/udp\"]\n",
        serde_json::to_string(echo).unwrap()
    );
    let ranged = service(
        "ranged",
        r#"command: ["sh", "-c", "for p in 9000 9001 9002; do nc -ll -p $$p -e echo port-$$p & done; wait"]
ports: ["127.0.0.1:18110-18112:9000-9002"]"#,
    );
    let project = Project::new("bnetudp", &format!("{udp}{ranged}"));
    project.up();
    let mut answer = None;
    for _ in 0..150 {
        // A fresh source port each time: a datagram sent before the server listened leaves a
        // conntrack entry that would steer every later one of the same flow the same way.
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        socket.send_to(b"ping", "127.0.0.1:18099").unwrap();
        let mut buf = [0u8; 64];
        if let Ok((n, _)) = socket.recv_from(&mut buf) {
            answer = Some(String::from_utf8_lossy(&buf[..n]).into_owned());
            break;
        }
    }
    assert_eq!(answer.as_deref(), Some("echo ping"), "{}", project.supervisor_log());
    for (host, port) in [(18110, 9000), (18111, 9001), (18112, 9002)] {
        assert_eq!(read_tcp(SocketAddrV4::new(Ipv4Addr::LOCALHOST, host)).trim(), format!("port-{port}"));
    }
}

#[test]
fn networks_isolate_services_and_a_service_on_both_reaches_both() {
    let _host = HOST_FIREWALL.lock().unwrap_or_else(|e| e.into_inner());
    let front = service("front", &format!("{}\nnetworks: [front]", tcp_server(8080, "front")));
    let back = service("back", &format!("{}\nnetworks: [back]", tcp_server(8080, "back")));
    let both = service("both", &format!("{IDLE}\nnetworks: [front, back]"));
    let only_front = service("frontclient", &format!("{IDLE}\nnetworks: [front]"));
    let project =
        Project::new("bnetiso", &format!("{front}{back}{both}{only_front}")).with_networks("  front: {}\n  back: {}\n");
    project.up();
    assert!(project.sh_until("both", "nc front 8080 </dev/null", "front").contains("front"));
    assert!(project.sh_until("both", "nc back 8080 </dev/null", "back").contains("back"));
    assert!(project.sh_until("frontclient", "nc front 8080 </dev/null", "front").contains("front"));
    let (_, text) = project.sh("frontclient", "nslookup back");
    assert!(!text.contains("Name:"), "a service on another network must not resolve:\n{text}");
    // Not by address either: the back service's address, from its own /etc/hosts.
    let (_, hosts) = project.sh("back", "tail -n 1 /etc/hosts");
    let address = hosts.split_whitespace().next().unwrap().to_owned();
    let (reached, text) = project.sh("frontclient", &format!("nc -w 1 {address} 8080 </dev/null"));
    assert!(!reached || !text.contains("back"), "front reached back at {address}: {text}");
}

#[test]
fn after_the_server_restarts_the_client_resolves_it_again_and_connects() {
    let _host = HOST_FIREWALL.lock().unwrap_or_else(|e| e.into_inner());
    let server = service("server", &format!("{}\nrestart: always", tcp_server(8080, "again")));
    let project = Project::new("bnetrestart", &format!("{server}{}", service("client", IDLE)));
    project.up();
    assert!(project.sh_until("client", "nc server 8080 </dev/null", "again").contains("again"));
    let first = project.pid_of("bnetrestart-server-1").expect("the server runs");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(first), nix::sys::signal::Signal::SIGKILL).unwrap();
    let mut second = None;
    for _ in 0..200 {
        second = project.pid_of("bnetrestart-server-1").filter(|p| *p != first);
        if second.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(second.is_some(), "the server was not restarted:\n{}", project.supervisor_log());
    assert!(project.sh_until("client", "nslookup server && nc server 8080 </dev/null", "again").contains("again"));
}

#[test]
fn with_dockers_forward_drop_policy_containers_reach_each_other_and_the_outside_through_nat() {
    let _host = HOST_FIREWALL.lock().unwrap_or_else(|e| e.into_inner());
    if Command::new("iptables").arg("-V").output().is_err() {
        panic!("iptables is missing: the README's test command installs it");
    }
    let outside = Outside::new("berth-test-outside");
    let _docker = DockerRules::install();
    let project = Project::new(
        "bnetnat",
        &format!("{}{}", service("server", &tcp_server(8080, "inside")), service("client", IDLE)),
    );
    project.up();
    assert!(project.sh_until("client", "nc server 8080 </dev/null", "inside").contains("inside"));
    let text = project.sh_until("client", "nc 198.51.100.2 9000 </dev/null", "outside");
    assert!(text.contains("outside"));
    let peer = outside.peer.recv_timeout(Duration::from_secs(10)).expect("the outside host saw a connection");
    assert_eq!(peer.ip(), std::net::IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)), "masqueraded to the host's address");
}

#[test]
fn names_berth_does_not_know_are_forwarded_to_the_services_dns_servers() {
    let _host = HOST_FIREWALL.lock().unwrap_or_else(|e| e.into_inner());
    let _outside = Outside::new("berth-test-resolver");
    let client = format!(
        "  client:\n    image: {IMAGE}\n    pull_policy: never\n    dns: [\"198.51.100.2\"]\n    dns_search: [\".\"]\n    {IDLE}\n"
    );
    let project = Project::new("bnetfwd", &format!("{client}{}", service("server", IDLE)));
    project.up();
    let text = project.sh_until("client", "nslookup -type=a somewhere.test", "198.51.100.77");
    assert!(text.contains("Name:\tsomewhere.test"), "{text}");
    let (_, text) = project.sh("client", "nslookup -type=a server");
    assert!(!text.contains("198.51.100.77"), "a project name is answered by berth, not upstream:\n{text}");
}

#[test]
fn down_after_the_supervisor_was_killed_leaves_nothing_and_up_works_again() {
    let _host = HOST_FIREWALL.lock().unwrap_or_else(|e| e.into_inner());
    let project = Project::new(
        "bnetkill",
        &format!(
            "{}{}",
            service("server", &format!("{}\nports: [\"18090:8080\"]", tcp_server(8080, "x"))),
            service("idle", IDLE)
        ),
    );
    project.up();
    let bridge = bridge_of(&project, "default");
    let supervisor = project.supervisor_pid();
    let containers = [project.pid_of("bnetkill-server-1").unwrap(), project.pid_of("bnetkill-idle-1").unwrap()];
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(supervisor), nix::sys::signal::Signal::SIGKILL).unwrap();
    project.down();
    assert!(leftovers(&bridge).is_empty(), "{:?}", leftovers(&bridge));
    assert!(leftovers("berth bnetkill ").is_empty(), "{:?}", leftovers("berth bnetkill "));
    for pid in containers.into_iter().chain([supervisor]) {
        assert!(!is_alive(pid), "process {pid} survived down");
    }
    project.up();
    assert_eq!(read_tcp(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 18090)).trim(), "x");
}

#[test]
fn network_modes_none_and_service_and_extra_hosts_with_host_gateway() {
    let _host = HOST_FIREWALL.lock().unwrap_or_else(|e| e.into_inner());
    let server = service(
        "server",
        &format!("{}\nextra_hosts: [\"host.docker.internal:host-gateway\"]", tcp_server(8080, "shared")),
    );
    let isolated = service("isolated", &format!("{IDLE}\nnetwork_mode: none"));
    // A joined network namespace takes the joined container's DNS settings: none of its own.
    let sidecar = format!(
        "  sidecar:\n    image: {IMAGE}\n    pull_policy: never\n    {IDLE}\n    network_mode: \"service:server\"\n"
    );
    let project = Project::new("bnetmodes", &format!("{server}{isolated}{sidecar}"));
    project.up();
    let (_, links) = project.sh("isolated", "ip -o link");
    assert!(links.contains("lo:") && links.contains("UP") && !links.contains("eth0"), "{links}");
    assert!(project.sh_until("sidecar", "nc 127.0.0.1 8080 </dev/null", "shared").contains("shared"));
    let gateway = gateway_of(&project, "default");
    let (_, resolv) = project.sh("sidecar", "cat /etc/resolv.conf; hostname");
    let (_, own) = project.sh("server", "cat /etc/resolv.conf; hostname");
    assert_eq!(resolv, own, "the joined container's resolver and name");
    assert!(resolv.contains(&format!("nameserver {gateway}")), "{resolv}");
    let (_, hosts) = project.sh("server", "cat /etc/hosts");
    assert!(hosts.contains(&format!("{gateway}\thost.docker.internal")), "{hosts}");
}

#[test]
fn an_internal_network_has_no_way_out_and_ipam_config_sets_the_subnet() {
    let _host = HOST_FIREWALL.lock().unwrap_or_else(|e| e.into_inner());
    let _outside = Outside::new("berth-test-internal");
    let server = service("server", &format!("{}\nnetworks: [private]", tcp_server(8080, "private")));
    let client = service("client", &format!("{IDLE}\nnetworks: [private]"));
    let project = Project::new("bnetinternal", &format!("{server}{client}"))
        .with_networks("  private:\n    internal: true\n    ipam:\n      config:\n        - subnet: 10.213.0.0/24\n");
    project.up();
    assert_eq!(gateway_of(&project, "private"), Ipv4Addr::new(10, 213, 0, 1));
    let (_, hosts) = project.sh("client", "tail -n 1 /etc/hosts");
    assert!(hosts.starts_with("10.213.0."), "{hosts}");
    assert!(project.sh_until("client", "nc server 8080 </dev/null", "private").contains("private"));
    let (reached, text) = project.sh("client", "nc -w 1 198.51.100.2 9000 </dev/null");
    assert!(!reached && !text.contains("outside"), "an internal network reached the outside: {text}");
}

#[test]
fn an_up_that_fails_halfway_says_why_and_leaves_nothing_behind() {
    let _host = HOST_FIREWALL.lock().unwrap_or_else(|e| e.into_inner());
    // Another program holds the port the second wave asks for.
    let _holder = TcpListener::bind("0.0.0.0:18095").unwrap();
    let first = service("first", &tcp_server(8080, "a"));
    let second = service("second", &format!("{}\nports: [\"18095:8080\"]\ndepends_on: [first]", tcp_server(8080, "b")));
    let project = Project::new("bnetfail", &format!("{first}{second}"));
    let out = project.berth(&["up", "-d"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("second") && stderr.contains("18095") && stderr.contains("port is already allocated"),
        "{stderr}"
    );
    assert!(leftovers("berth bnetfail ").is_empty(), "{:?}", leftovers("berth bnetfail "));
    assert!(!state_root().join("networks/bnetfail_default.json").exists(), "the network record is gone");
    assert!(project.pid_of("bnetfail-first-1").is_none(), "the first container is gone");
    assert!(!state_root().join("projects/bnetfail/supervisor.json").exists(), "the supervisor is gone");
}

#[test]
fn the_nftables_backend_publishes_ports_and_masquerades_too() {
    let _host = HOST_FIREWALL.lock().unwrap_or_else(|e| e.into_inner());
    if Command::new("nft").arg("--version").output().is_err() {
        eprintln!(
            "SKIPPED the_nftables_backend_publishes_ports_and_masquerades_too: no nft binary (apt-get install nftables)"
        );
        return;
    }
    let outside = Outside::new("berth-test-nft");
    let server = service("server", &format!("{}\nports: [\"18097:8080\"]", tcp_server(8080, "nft")));
    let mut project = Project::new("bnetnft", &format!("{server}{}", service("client", IDLE)));
    project.env.push(("BERTH_FIREWALL", "nftables"));
    project.up();
    let ruleset =
        String::from_utf8_lossy(&Command::new("nft").args(["list", "table", "ip", "berth"]).output().unwrap().stdout)
            .into_owned();
    assert!(ruleset.contains("berth bnetnft"), "the rules are in nft's berth table:\n{ruleset}");
    assert_eq!(read_tcp(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 18097)).trim(), "nft");
    assert!(project.sh_until("client", "nc server 8080 </dev/null", "nft").contains("nft"));
    assert!(project.sh_until("client", "nc 198.51.100.2 9000 </dev/null", "outside").contains("outside"));
    let peer = outside.peer.recv_timeout(Duration::from_secs(10)).expect("the outside host saw a connection");
    assert_eq!(peer.ip(), std::net::IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)));
    project.down();
    let after =
        String::from_utf8_lossy(&Command::new("nft").args(["list", "ruleset"]).output().unwrap().stdout).into_owned();
    assert!(!after.contains("berth"), "down removed the table:\n{after}");
}
