//! The harness of the stack tests (network.rs, lifecycle.rs): a project directory driven
//! through the berth binary, an "outside" host in a network namespace of the test's own (with a
//! TCP listener and a DNS resolver), Docker's filter rules, and what to look for after `down`.
// Each test binary compiles this module and uses only part of it.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

pub const IMAGE: &str = "berth-test/busybox:latest";

/// Tests that change the host's firewall policy run alone.
pub static HOST_FIREWALL: Mutex<()> = Mutex::new(());

pub fn state_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| busybox_root("berth-network-root"))
}

/// A state root `name` under the test target directory with the busybox test image loaded
/// (built from Debian's busybox-static by tests/fixtures/make-images.sh). Needs root.
pub fn busybox_root(name: &str) -> PathBuf {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests create namespaces, mounts, cgroups, bridges and firewall rules: run them as root (CI does)"
    );
    let images = Path::new(env!("CARGO_TARGET_TMPDIR")).join("berth-test-images");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/make-images.sh");
    let out = Command::new("bash").arg(script).arg(&images).output().unwrap();
    assert!(out.status.success(), "building the test images failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("--root")
        .arg(&root)
        .args(["load", "-i"])
        .arg(images.join("busybox.docker.tar"))
        .output()
        .unwrap();
    assert!(out.status.success(), "berth load: {}", String::from_utf8_lossy(&out.stderr));
    root
}

/// A project directory whose compose.yaml names the project; `down -t 0` on drop.
pub struct Project {
    dir: tempfile::TempDir,
    pub name: String,
    /// Extra environment for every berth command (and so for the supervisor).
    pub env: Vec<(&'static str, &'static str)>,
}

impl Project {
    pub fn new(name: &str, services: &str) -> Project {
        let dir = tempfile::Builder::new().prefix("berth-net-").tempdir().unwrap();
        std::fs::write(dir.path().join("compose.yaml"), format!("name: {name}\nservices:\n{services}")).unwrap();
        Project { dir, name: name.to_owned(), env: Vec::new() }
    }

    /// Replaces the stack file's services.
    pub fn rewrite(&self, services: &str) {
        std::fs::write(self.dir.path().join("compose.yaml"), format!("name: {}\nservices:\n{services}", self.name))
            .unwrap();
    }

    pub fn with_networks(self, networks: &str) -> Project {
        let path = self.dir.path().join("compose.yaml");
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("networks:\n");
        text.push_str(networks);
        std::fs::write(path, text).unwrap();
        self
    }

    /// The project's directory (the stack file's, and a build context).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The project's stack file.
    pub fn file(&self) -> PathBuf {
        self.dir.path().join("compose.yaml")
    }

    /// A berth command on this project, not yet run.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
        command
            .arg("--root")
            .arg(state_root())
            .arg("-f")
            .arg(self.dir.path().join("compose.yaml"))
            .args(args)
            .envs(self.env.iter().copied())
            .stdin(Stdio::null());
        command
    }

    pub fn berth(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    pub fn up(&self) {
        let out = self.berth(&["up", "-d"]);
        assert!(out.status.success(), "up -d: {}\n{}", String::from_utf8_lossy(&out.stderr), self.supervisor_log());
    }

    pub fn supervisor_log(&self) -> String {
        std::fs::read_to_string(state_root().join("projects").join(&self.name).join("supervisor.log"))
            .unwrap_or_default()
    }

    pub fn down(&self) {
        let out = self.berth(&["down", "-t", "1"]);
        assert!(out.status.success(), "down: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// `berth exec -T SERVICE sh -c SCRIPT`: status and output.
    pub fn sh(&self, service: &str, script: &str) -> (bool, String) {
        let out = self.berth(&["exec", "-T", service, "sh", "-c", script]);
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }

    /// Runs `script` in `service` until its output contains `want` (servers restart their
    /// `nc` between connections); panics with the last output after many tries.
    pub fn sh_until(&self, service: &str, script: &str, want: &str) -> String {
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
    pub fn pid_of(&self, name: &str) -> Option<i32> {
        for entry in std::fs::read_dir(state_root().join("containers")).ok()?.flatten() {
            let Ok(text) = std::fs::read_to_string(entry.path().join("state.json")) else { continue };
            let state: serde_json::Value = serde_json::from_str(&text).unwrap();
            if state["name"] == name {
                // A kept (stopped) container has no process.
                if state["exited"] == true {
                    return None;
                }
                return state["pid"].as_i64().and_then(|p| i32::try_from(p).ok());
            }
        }
        None
    }

    pub fn supervisor_pid(&self) -> i32 {
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
pub const NO_UPSTREAM: &str = "    dns: [\"127.0.0.1\"]\n    dns_search: [\".\"]\n";

pub fn service(name: &str, extra: &str) -> String {
    let mut text = format!("  {name}:\n    image: {IMAGE}\n    pull_policy: never\n{NO_UPSTREAM}");
    for line in extra.lines().filter(|l| !l.trim().is_empty()) {
        text.push_str("    ");
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// A persistent TCP server: each connection reads `reply`, then the server closes it.
pub fn tcp_server(port: u16, reply: &str) -> String {
    format!(r#"command: ["nc", "-ll", "-p", "{port}", "-e", "echo", "{reply}"]"#)
}

pub const IDLE: &str = r#"command: ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done"]"#;

/// Reads what a TCP server at `address` sends, retrying while it is between connections.
pub fn read_tcp(address: SocketAddrV4) -> String {
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
pub fn leftovers(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let links = Command::new("ip").args(["-o", "link", "show"]).output().unwrap();
    found.extend(String::from_utf8_lossy(&links.stdout).lines().filter(|l| l.contains(needle)).map(str::to_owned));
    if let Ok(rules) = Command::new("iptables-save").output() {
        found.extend(String::from_utf8_lossy(&rules.stdout).lines().filter(|l| l.contains(needle)).map(str::to_owned));
    }
    found
}

pub fn bridge_of(project: &Project, key: &str) -> String {
    let path = state_root().join("networks").join(format!("{}_{key}.json", project.name));
    let record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    record["bridge"].as_str().unwrap().to_owned()
}

pub fn gateway_of(project: &Project, key: &str) -> Ipv4Addr {
    let path = state_root().join("networks").join(format!("{}_{key}.json", project.name));
    let record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    record["addressing"]["gateway"].as_str().unwrap().parse().unwrap()
}

/// An "outside" host: a network namespace with a veth to the host, 198.51.100.2/30 inside and
/// 198.51.100.1/30 on the host, and a TCP listener inside that records who connects.
pub struct Outside {
    name: String,
    pub peer: std::sync::mpsc::Receiver<std::net::SocketAddr>,
    /// How many queries its DNS resolver has received.
    pub dns_queries: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Outside {
    pub fn new(name: &str) -> Outside {
        let ip = |args: &[&str]| {
            let out = Command::new("ip").args(args).output().unwrap();
            assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        ip(&["netns", "add", name]);
        // From here on a failure still removes the namespace.
        let mut outside =
            Outside { name: name.to_owned(), peer: std::sync::mpsc::channel().1, dns_queries: Default::default() };
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
        let queries = outside.dns_queries.clone();
        std::thread::spawn(move || {
            let ns = std::fs::File::open(path).unwrap();
            nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let socket = UdpSocket::bind("198.51.100.2:53").unwrap();
            bound_tx.send(()).unwrap();
            let mut buf = [0u8; 512];
            while let Ok((n, peer)) = socket.recv_from(&mut buf) {
                queries.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = socket.send_to(&dns_answer(&buf[..n], OUTSIDE_NAME_ADDRESS), peer);
            }
        });
        bound_rx.recv().unwrap();
        outside.peer = rx;
        outside
    }
}

/// What the outside resolver answers to every A query.
pub const OUTSIDE_NAME_ADDRESS: [u8; 4] = [198, 51, 100, 77];

/// A DNS reply to `query` (one question) with one A record for `address`; AAAA and other
/// types get no records.
pub fn dns_answer(query: &[u8], address: [u8; 4]) -> Vec<u8> {
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
pub struct DockerRules {
    forward_policy: String,
}

impl DockerRules {
    pub fn install() -> DockerRules {
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

/// Whether a process runs (a zombie waiting for init to reap it does not).
pub fn is_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z')))
        .is_some_and(|zombie| !zombie)
}

/// A small tmpfs at a berth-named directory under /tmp (the state root of ENOSPC tests);
/// unmounted on drop (lazily if something still holds it).
pub struct SmallTmpfs {
    dir: tempfile::TempDir,
}

impl SmallTmpfs {
    pub fn mount(size: &str) -> SmallTmpfs {
        assert!(nix::unistd::geteuid().is_root(), "mounting a tmpfs needs root: run the ENOSPC tests as root");
        let dir = tempfile::Builder::new().prefix("berth-enospc-").tempdir_in("/tmp").unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "berth-enospc"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "mount tmpfs: {}", String::from_utf8_lossy(&out.stderr));
        SmallTmpfs { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Gives the filesystem a new size (room again after a full disk).
    pub fn resize(&self, size: &str) {
        let out =
            Command::new("mount").args(["-o", &format!("remount,size={size}")]).arg(self.dir.path()).output().unwrap();
        assert!(out.status.success(), "remount tmpfs: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Free bytes.
    pub fn free(&self) -> u64 {
        let stat = nix::sys::statvfs::statvfs(self.dir.path()).unwrap();
        stat.blocks_available() * stat.fragment_size()
    }
}

impl Drop for SmallTmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount").arg(self.dir.path()).status().is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
        }
    }
}

/// What is wrong with the image store under `root`, as a list (empty: consistent): staging
/// left behind (something half-made), a blob whose content is not its digest, a named image
/// without its record, an image without one of its layers.
pub fn store_problems(root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let images = root.join("images");
    // Read before `Store::open`, which clears the staging of dead processes.
    if let Ok(entries) = std::fs::read_dir(images.join("tmp")) {
        problems.extend(entries.flatten().map(|e| format!("staging left: {}", e.path().display())));
    }
    if let Ok(entries) = std::fs::read_dir(images.join("blobs/sha256")) {
        for entry in entries.flatten() {
            let bytes = std::fs::read(entry.path()).unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if berth::image::Digest::of(&bytes).hex() != name {
                problems.push(format!("blob {name} does not hash to its name ({} bytes)", bytes.len()));
            }
        }
    }
    let store = match berth::image::Store::open(root) {
        Ok(store) => store,
        Err(e) => return vec![format!("the store does not open: {e}")],
    };
    match store.names() {
        Ok(names) => {
            for name in names.keys() {
                if !matches!(store.resolve(name), Ok(Some(_))) {
                    problems.push(format!("name {name} has no image record"));
                }
            }
        }
        Err(e) => problems.push(format!("names: {e}")),
    }
    match store.list() {
        Ok(list) => {
            for (record, _) in list {
                for layer in &record.layers {
                    if !store.has_layer(&layer.diff_id) {
                        problems.push(format!("image {} lacks layer {}", record.id, layer.diff_id));
                    }
                }
            }
        }
        Err(e) => problems.push(format!("records: {e}")),
    }
    problems
}

/// The fixture images directory (tests/fixtures/make-images.sh's output), built if needed.
pub fn test_images() -> PathBuf {
    busybox_root("berth-network-root");
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("berth-test-images")
}
