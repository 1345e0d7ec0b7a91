//! Host-side attacks (issue 20 items 1, 4, 6), performed for real as root through `berth up -d`:
//! an unprivileged host user going for a container's setuid copy of a shell and for the
//! project's records; a container opening a host device node it made; an internal network's
//! container resolving an outside name; the gateway resolver asked from outside its bridge.
//!
//! Run under the kernel-tests lock: `flock /tmp/berth-kernel-tests.lock cargo test --test
//! attacks_host -- --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

use support::{HOST_FIREWALL, IDLE, IMAGE, Outside, Project, gateway_of, service, state_root};

const ATTACKER: &str = "berth-attacker";

/// The unprivileged host user, removed on the way out.
struct Attacker {
    uid: u32,
    gid: u32,
}

impl Attacker {
    fn create() -> Attacker {
        let _ = Command::new("userdel").arg(ATTACKER).output();
        let out = Command::new("useradd").args(["-M", "-s", "/bin/sh", ATTACKER]).output().unwrap();
        assert!(out.status.success(), "useradd: {}", String::from_utf8_lossy(&out.stderr));
        let id = |flag: &str| -> u32 {
            let out = Command::new("id").args([flag, ATTACKER]).output().unwrap();
            String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
        };
        Attacker { uid: id("-u"), gid: id("-g") }
    }

    /// `sh -c script` as the attacker: (success, stdout + stderr).
    fn sh(&self, script: &str) -> (bool, String) {
        let out = Command::new("/bin/sh").arg("-c").arg(script).uid(self.uid).gid(self.gid).output().unwrap();
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    }
}

impl Drop for Attacker {
    fn drop(&mut self) {
        let out = Command::new("userdel").arg(ATTACKER).output();
        if !out.is_ok_and(|o| o.status.success()) {
            eprintln!("cannot remove the user {ATTACKER}: remove it by hand");
        }
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

/// The directory of the container named `name`, from the specs under the state root.
fn container_dir(name: &str) -> PathBuf {
    for entry in std::fs::read_dir(state_root().join("containers")).unwrap().flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path().join("spec.json")) else { continue };
        let spec: serde_json::Value = serde_json::from_str(&text).unwrap();
        if spec["name"] == name {
            return entry.path();
        }
    }
    panic!("no container {name} under {}", state_root().display());
}

#[test]
fn a_host_user_cannot_reach_a_containers_setuid_shell_or_the_projects_records() {
    let _host = HOST_FIREWALL.lock().unwrap_or_else(|e| e.into_inner());
    let root = state_root();
    // As an older berth left it: everything open.
    for dir in [root.to_path_buf(), root.join("containers"), root.join("images"), root.join("projects")] {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let script = "cp /bin/busybox /suid-sh && chmod 4755 /suid-sh && echo started-with-a-secret; \
                  trap 'exit 0' TERM; while :; do sleep 0.1; done";
    let project = Project::new(
        "battackperm",
        &service("box", &format!("environment: {{SECRET: hunter2}}\ncommand: [\"sh\", \"-c\", \"{script}\"]")),
    );
    project.up();
    // Tightened by the first command that used the root.
    assert_eq!(mode(root), 0o711);
    for dir in ["containers", "images", "projects", "networks", "volumes"] {
        assert_eq!(mode(&root.join(dir)), 0o700, "{dir}");
    }
    let dir = container_dir("battackperm-box-1");
    assert_eq!(mode(&dir), 0o700);
    let suid = dir.join("upper/suid-sh");
    project.sh_until("box", "ls -l /suid-sh", "rws");
    assert_eq!(mode(&suid), 0o4755, "the container made its setuid copy");
    let log = root.join("projects/battackperm/logs/battackperm-box-1.log");
    let network = root.join("networks/battackperm_default.json");
    let secrets = [dir.join("spec.json"), dir.join("state.json"), log.clone(), network.clone()];
    for file in &secrets {
        assert!(file.is_file(), "{} exists (as root)", file.display());
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    assert!(std::fs::read_to_string(dir.join("spec.json")).unwrap().contains("hunter2"));

    let attacker = Attacker::create();
    // The control: the attacker is a working user who can traverse up to the root.
    let (ok, text) = attacker.sh(&format!("cd {} && echo inside", root.display()));
    assert!(ok && text.contains("inside"), "the attacker cannot even reach the root, the test proves nothing: {text}");
    let (ok, text) = attacker.sh(&format!("{} sh -c 'id -u'", suid.display()));
    assert!(!ok && text.contains("Permission denied"), "the setuid shell ran: {text}");
    let (ok, text) = attacker.sh(&format!("cd {} && echo traversed", dir.display()));
    assert!(!ok && !text.contains("traversed"), "the container's directory is traversable: {text}");
    for file in &secrets {
        let (ok, text) = attacker.sh(&format!("cat {}", file.display()));
        assert!(!ok && text.contains("Permission denied"), "{} readable: {text}", file.display());
    }
    for listing in ["", "containers", "projects", "images", "volumes"] {
        let (ok, text) = attacker.sh(&format!("ls {}", root.join(listing).display()));
        assert!(!ok, "{listing:?} listable: {text}");
    }
}

#[test]
fn a_host_device_node_made_in_a_default_container_cannot_be_opened() {
    let _host = HOST_FIREWALL.lock().unwrap_or_else(|e| e.into_inner());
    let project = Project::new("battackdev", &service("box", IDLE));
    project.up();
    let id = container_dir("battackdev-box-1").file_name().unwrap().to_string_lossy().into_owned();
    // On this hybrid host: the program on the container's cgroup in the unified tree.
    let unified = berth::runtime::cgroups::host_cgroup_mounts()
        .unwrap()
        .iter()
        .find(|m| m.fstype == "cgroup2")
        .map(|m| {
            if m.point == Path::new("/sys/fs/cgroup") {
                m.point.join("berth").join(&id)
            } else {
                m.point.join(format!("berth-{id}"))
            }
        })
        .expect("a cgroup2 mount");
    assert_eq!(berth::runtime::cgroups::devices::attached(&unified).unwrap(), 1, "{}", unified.display());
    let (made, text) = project.sh("box", "mknod /tmp/ttyS0 c 4 64 && echo made");
    assert!(made && text.contains("made"), "mknod is allowed, as in docker: {text}");
    for (what, script) in [("write", "echo x > /tmp/ttyS0"), ("read", "head -c1 < /tmp/ttyS0")] {
        let (opened, text) = project.sh("box", script);
        assert!(!opened && text.contains("Operation not permitted"), "{what} of the serial console: {text}");
    }
    let (ok, text) = project.sh("box", "echo x > /dev/null && head -c1 /dev/zero | wc -c");
    assert!(ok && text.trim() == "1", "the standard devices work: {text}");
    project.down();
    assert!(!unified.exists(), "the unified cgroup (and with it the program) went with the container");
}

#[test]
fn an_internal_network_never_asks_upstream_and_still_resolves_the_project() {
    let _host = HOST_FIREWALL.lock().unwrap_or_else(|e| e.into_inner());
    let outside = Outside::new("berth-test-attackdns");
    // Upstream is the outside host's resolver: anything forwarded would reach it.
    let client = format!(
        "  client:\n    image: {IMAGE}\n    pull_policy: never\n    dns: [\"198.51.100.2\"]\n    dns_search: [\".\"]\n    {IDLE}\n    networks: [private]\n"
    );
    let server = service("server", &format!("{IDLE}\nnetworks: [private]"));
    let project = Project::new("battackdns", &format!("{client}{server}"))
        .with_networks("  private:\n    internal: true\n    ipam:\n      config:\n        - subnet: 10.214.0.0/24\n");
    project.up();
    let text = project.sh_until("client", "nslookup -type=a server", "10.214.0.");
    assert!(text.contains("Name:\tserver"), "{text}");
    let (_, text) = project.sh("client", "nslookup -type=a somewhere.test");
    assert!(!text.contains("198.51.100.77"), "an outside name was forwarded: {text}");
    assert!(text.contains("REFUSED"), "refused, not forwarded: {text}");
    assert_eq!(outside.dns_queries.load(Ordering::SeqCst), 0, "the outside resolver got a query");
}

#[test]
fn the_gateway_resolver_answers_nobody_outside_its_bridge() {
    let _host = HOST_FIREWALL.lock().unwrap_or_else(|e| e.into_inner());
    let project = Project::new("battackgw", &format!("{}{}", service("client", IDLE), service("server", IDLE)));
    project.up();
    let gateway = gateway_of(&project, "default");
    // The control: from the bridge, the resolver answers.
    let text = project.sh_until("client", &format!("nslookup -type=a server {gateway}"), "Name:\tserver");
    assert!(text.contains("Address"), "{text}");
    // From the host itself (through lo): the datagram is dropped, the connection never made.
    let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let query = [0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 6, b's', b'e', b'r', b'v', b'e', b'r', 0, 0, 1, 0, 1];
    socket.send_to(&query, (gateway, 53)).unwrap();
    let mut buf = [0u8; 512];
    let got = socket.recv_from(&mut buf);
    assert!(got.is_err(), "the host got an answer from the gateway resolver: {got:?}");
    let tcp = TcpStream::connect_timeout(&SocketAddr::from((gateway, 53)), Duration::from_secs(2));
    assert!(tcp.is_err(), "the host connected to the gateway resolver");
}
