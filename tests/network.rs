//! Project networks through `berth up -d` / `berth down`, as root: bridges and veths, the
//! embedded DNS server, published ports, outbound NAT, and cleanup. Containers run the busybox
//! image the test setup builds (tests/fixtures/make-images.sh); the UDP server runs Python from
//! the built-in host image.
//!
//! Traffic goes only to loopback, to container addresses, to the bridge's own address, and to an
//! "outside" network namespace the test makes itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

const IMAGE: &str = "berth-test/busybox:latest";

/// Tests that change the host's firewall policy run alone.
static HOST_FIREWALL: Mutex<()> = Mutex::new(());

fn state_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the network tests make bridges and firewall rules: run them as root"
        );
        let images = Path::new(env!("CARGO_TARGET_TMPDIR")).join("berth-test-images");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/make-images.sh");
        let out = Command::new("bash").arg(script).arg(&images).output().unwrap();
        assert!(out.status.success(), "building the test images failed:\n{}", String::from_utf8_lossy(&out.stderr));
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("berth-network-root");
        let out = Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("--root")
            .arg(&root)
            .args(["load", "-i"])
            .arg(images.join("busybox.docker.tar"))
            .output()
            .unwrap();
        assert!(out.status.success(), "berth load: {}", String::from_utf8_lossy(&out.stderr));
        root
    })
}

/// A project directory whose compose.yaml names the project; `down -t 0` on drop.
struct Project {
    dir: tempfile::TempDir,
    name: String,
}

impl Project {
    fn new(name: &str, services: &str) -> Project {
        let dir = tempfile::Builder::new().prefix("berth-net-").tempdir().unwrap();
        std::fs::write(dir.path().join("compose.yaml"), format!("name: {name}\nservices:\n{services}")).unwrap();
        Project { dir, name: name.to_owned() }
    }

    fn with_networks(self, networks: &str) -> Project {
        let path = self.dir.path().join("compose.yaml");
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("networks:\n");
        text.push_str(networks);
        std::fs::write(path, text).unwrap();
        self
    }

    fn berth(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("--root")
            .arg(state_root())
            .arg("-f")
            .arg(self.dir.path().join("compose.yaml"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn up(&self) {
        let out = self.berth(&["up", "-d"]);
        assert!(out.status.success(), "up -d: {}\n{}", String::from_utf8_lossy(&out.stderr), self.supervisor_log());
    }

    fn supervisor_log(&self) -> String {
        std::fs::read_to_string(state_root().join("projects").join(&self.name).join("supervisor.log"))
            .unwrap_or_default()
    }

    fn down(&self) {
        let out = self.berth(&["down", "-t", "1"]);
        assert!(out.status.success(), "down: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// `berth exec -T SERVICE sh -c SCRIPT`: status and output.
    fn sh(&self, service: &str, script: &str) -> (bool, String) {
        let out = self.berth(&["exec", "-T", service, "sh", "-c", script]);
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }

    /// Runs `script` in `service` until its output contains `want` (servers restart their
    /// `nc` between connections); panics with the last output after many tries.
    fn sh_until(&self, service: &str, script: &str, want: &str) -> String {
        let mut last = String::new();
        for _ in 0..100 {
            let (_, text) = self.sh(service, script);
            if text.contains(want) {
                return text;
            }
            last = text;
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{service}: `{script}` never printed {want:?}; last output:\n{last}");
    }

    /// The host PID of the running container named `name`.
    fn pid_of(&self, name: &str) -> Option<i32> {
        for entry in std::fs::read_dir(state_root().join("containers")).ok()?.flatten() {
            let Ok(text) = std::fs::read_to_string(entry.path().join("state.json")) else { continue };
            let state: serde_json::Value = serde_json::from_str(&text).unwrap();
            if state["name"] == name {
                return state["pid"].as_i64().and_then(|p| i32::try_from(p).ok());
            }
        }
        None
    }

    fn supervisor_pid(&self) -> i32 {
        let path = state_root().join("projects").join(&self.name).join("supervisor.json");
        let record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        i32::try_from(record["pid"].as_i64().unwrap()).unwrap()
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = self.berth(&["down", "-t", "0"]);
    }
}

/// Every test service forwards the names berth does not know to the host's loopback, where
/// nothing answers, and searches no domain: no test query leaves the machine.
const NO_UPSTREAM: &str = "    dns: [\"127.0.0.1\"]\n    dns_search: [\".\"]\n";

fn service(name: &str, extra: &str) -> String {
    let mut text = format!("  {name}:\n    image: {IMAGE}\n    pull_policy: never\n{NO_UPSTREAM}");
    for line in extra.lines().filter(|l| !l.trim().is_empty()) {
        text.push_str("    ");
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// A persistent TCP server: each connection reads `reply`, then the server closes it.
fn tcp_server(port: u16, reply: &str) -> String {
    format!(r#"command: ["nc", "-ll", "-p", "{port}", "-e", "echo", "{reply}"]"#)
}

const IDLE: &str = r#"command: ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done"]"#;

/// Reads what a TCP server at `address` sends, retrying while it is between connections.
fn read_tcp(address: SocketAddrV4) -> String {
    let mut last = String::new();
    for _ in 0..100 {
        match TcpStream::connect_timeout(&address.into(), Duration::from_secs(2)) {
            Ok(mut stream) => {
                stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut text = String::new();
                let _ = stream.read_to_string(&mut text);
                if !text.is_empty() {
                    return text;
                }
                last = "connected, read nothing".into();
            }
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing from {address}: {last}");
}

/// Names of the host's links and berth's rules that mention `needle`.
fn leftovers(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let links = Command::new("ip").args(["-o", "link", "show"]).output().unwrap();
    found.extend(String::from_utf8_lossy(&links.stdout).lines().filter(|l| l.contains(needle)).map(str::to_owned));
    if let Ok(rules) = Command::new("iptables-save").output() {
        found.extend(String::from_utf8_lossy(&rules.stdout).lines().filter(|l| l.contains(needle)).map(str::to_owned));
    }
    found
}

fn bridge_of(project: &Project, key: &str) -> String {
    let path = state_root().join("networks").join(format!("{}_{key}.json", project.name));
    let record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    record["bridge"].as_str().unwrap().to_owned()
}

fn gateway_of(project: &Project, key: &str) -> Ipv4Addr {
    let path = state_root().join("networks").join(format!("{}_{key}.json", project.name));
    let record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    record["addressing"]["gateway"].as_str().unwrap().parse().unwrap()
}

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
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut answer = None;
    for _ in 0..100 {
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

/// An "outside" host: a network namespace with a veth to the host, 198.51.100.2/30 inside and
/// 198.51.100.1/30 on the host, and a TCP listener inside that records who connects.
struct Outside {
    name: String,
    peer: std::sync::mpsc::Receiver<std::net::SocketAddr>,
}

impl Outside {
    fn new(name: &str) -> Outside {
        let ip = |args: &[&str]| {
            let out = Command::new("ip").args(args).output().unwrap();
            assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        ip(&["netns", "add", name]);
        // From here on a failure still removes the namespace.
        let mut outside = Outside { name: name.to_owned(), peer: std::sync::mpsc::channel().1 };
        ip(&["link", "add", "berthtout0", "type", "veth", "peer", "name", "berthtout1", "netns", name]);
        ip(&["addr", "add", "198.51.100.1/30", "dev", "berthtout0"]);
        ip(&["link", "set", "berthtout0", "up"]);
        ip(&["-n", name, "addr", "add", "198.51.100.2/30", "dev", "berthtout1"]);
        ip(&["-n", name, "link", "set", "berthtout1", "up"]);
        let (tx, rx) = std::sync::mpsc::channel();
        let (bound_tx, bound_rx) = std::sync::mpsc::channel();
        let path = format!("/run/netns/{name}");
        std::thread::spawn(move || {
            let ns = std::fs::File::open(path).unwrap();
            nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let listener = TcpListener::bind("198.51.100.2:9000").unwrap();
            bound_tx.send(()).unwrap();
            for stream in listener.incoming().flatten() {
                let _ = (&stream).write_all(b"outside\n");
                if tx.send(stream.peer_addr().unwrap()).is_err() {
                    return;
                }
            }
        });
        bound_rx.recv().unwrap();
        let path = format!("/run/netns/{name}");
        let (bound_tx, bound_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let ns = std::fs::File::open(path).unwrap();
            nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let socket = UdpSocket::bind("198.51.100.2:53").unwrap();
            bound_tx.send(()).unwrap();
            let mut buf = [0u8; 512];
            while let Ok((n, peer)) = socket.recv_from(&mut buf) {
                let _ = socket.send_to(&dns_answer(&buf[..n], OUTSIDE_NAME_ADDRESS), peer);
            }
        });
        bound_rx.recv().unwrap();
        outside.peer = rx;
        outside
    }
}

/// What the outside resolver answers to every A query.
const OUTSIDE_NAME_ADDRESS: [u8; 4] = [198, 51, 100, 77];

/// A DNS reply to `query` (one question) with one A record for `address`; AAAA and other
/// types get no records.
fn dns_answer(query: &[u8], address: [u8; 4]) -> Vec<u8> {
    let mut reply = query.to_vec();
    reply[2] |= 0x80; // QR: a response
    reply[3] = 0x80; // RA, NOERROR
    let question_end = 12 + query[12..].iter().position(|b| *b == 0).unwrap() + 1 + 4;
    reply.truncate(question_end);
    let qtype = u16::from_be_bytes([query[question_end - 4], query[question_end - 3]]);
    if qtype == 1 {
        reply[7] = 1; // ANCOUNT
        reply.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        reply.extend_from_slice(&address);
    }
    reply[8..12].fill(0); // NSCOUNT, ARCOUNT
    reply
}

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", "berthtout0"]).output();
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

/// Docker's filter rules as dockerd installs them: FORWARD policy DROP and its own chains.
struct DockerRules {
    forward_policy: String,
}

impl DockerRules {
    fn install() -> DockerRules {
        let save = Command::new("iptables").args(["-S", "FORWARD"]).output().expect("iptables");
        let text = String::from_utf8_lossy(&save.stdout);
        let forward_policy =
            text.lines().find_map(|l| l.strip_prefix("-P FORWARD ")).unwrap_or("ACCEPT").trim().to_owned();
        for args in [
            &["-N", "DOCKER-USER"][..],
            &["-A", "DOCKER-USER", "-j", "RETURN"],
            &["-N", "DOCKER-FORWARD"],
            &["-I", "FORWARD", "1", "-j", "DOCKER-USER"],
            &["-I", "FORWARD", "2", "-j", "DOCKER-FORWARD"],
            &["-P", "FORWARD", "DROP"],
        ] {
            let out = Command::new("iptables").args(args).output().unwrap();
            assert!(out.status.success(), "iptables {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        DockerRules { forward_policy }
    }
}

impl Drop for DockerRules {
    fn drop(&mut self) {
        for args in [
            &["-P", "FORWARD", self.forward_policy.as_str()][..],
            &["-D", "FORWARD", "-j", "DOCKER-USER"],
            &["-D", "FORWARD", "-j", "DOCKER-FORWARD"],
            &["-F", "DOCKER-USER"],
            &["-X", "DOCKER-USER"],
            &["-X", "DOCKER-FORWARD"],
        ] {
            let _ = Command::new("iptables").args(args).output();
        }
    }
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

/// Whether a process runs (a zombie waiting for init to reap it does not).
fn is_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z')))
        .is_some_and(|zombie| !zombie)
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
