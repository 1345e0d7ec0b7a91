//! A build leaves nothing behind (issue 21, item 6): its RUN steps run on the build's own
//! network, made for the build and removed when it ends — after success, after a failed step
//! and after Ctrl-C — and a build beside a running project leaves that project's network as it
//! was and working. Compared: berth's links, network namespaces, iptables and nft rules,
//! mounts, cgroups and network records, before and after.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use support::*;

/// The tests compare host-wide snapshots: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn write(project: &Project, rel: &str, text: &str) {
    std::fs::write(project.dir().join(rel), text).unwrap();
}

fn lines_with(command: &[&str], needle: &str) -> Vec<String> {
    let Ok(out) = Command::new(command[0]).args(&command[1..]).output() else { return Vec::new() };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.to_ascii_lowercase().contains(needle))
        // Packet counters change between two reads of one rule.
        .map(without_counters)
        .collect()
}

/// `:CHAIN POLICY [packets:bytes]` without the counters.
fn without_counters(line: &str) -> String {
    match line.rfind(" [") {
        Some(at) if line.starts_with(':') => line[..at].to_owned(),
        _ => line.to_owned(),
    }
}

/// Everything berth-named on the host, and berth's network records: what a build must leave
/// as it found it.
fn snapshot() -> Vec<String> {
    let mut found = Vec::new();
    found.extend(lines_with(&["ip", "-o", "link", "show"], "berth").into_iter().map(|l| {
        // `N: name@peer: <flags> ... state X`: the name is what counts (the index and the
        // state of a link may change under a running project).
        format!("link {}", l.split(": ").nth(1).unwrap_or_default())
    }));
    found.extend(lines_with(&["ip", "netns", "list"], "berth").into_iter().map(|l| format!("netns {l}")));
    found.extend(lines_with(&["iptables-save"], "berth").into_iter().map(|l| format!("iptables {l}")));
    found.extend(lines_with(&["nft", "list", "ruleset"], "berth").into_iter().map(|l| format!("nft {l}")));
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    found.extend(
        mounts.lines().filter(|l| l.contains("berth")).map(|l| format!("mount {}", l.split(' ').nth(4).unwrap())),
    );
    let cgroups =
        Command::new("find").args(["/sys/fs/cgroup", "-maxdepth", "4", "-iname", "*berth*"]).output().unwrap();
    found.extend(String::from_utf8_lossy(&cgroups.stdout).lines().map(|l| format!("cgroup {l}")));
    for dir in ["networks", "build-networks"] {
        if let Ok(entries) = std::fs::read_dir(state_root().join(dir)) {
            found.extend(entries.flatten().map(|e| format!("{dir}/{}", e.file_name().to_string_lossy())));
        }
    }
    found.sort();
    found
}

fn assert_same(before: &[String], after: &[String], when: &str) {
    let gone: Vec<_> = before.iter().filter(|l| !after.contains(l)).collect();
    let left: Vec<_> = after.iter().filter(|l| !before.contains(l)).collect();
    assert!(gone.is_empty() && left.is_empty(), "{when}:\nleft behind: {left:#?}\ntaken away: {gone:#?}");
}

fn build(project: &Project, ok: bool) -> String {
    let out = project.berth(&["build", "--no-cache"]);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.success(), ok, "berth build:\n{text}");
    text
}

/// A RUN that shows its interfaces (the build network's eth0) and one that writes a file.
const WITH_RUNS: &str =
    "FROM berth-test/busybox:latest\nRUN cat /proc/net/dev\nRUN echo built > /built && ls /sys/class/net\n";

#[test]
fn a_build_with_run_steps_and_no_up_leaves_nothing_behind_whether_it_succeeds_or_fails() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let project = Project::new("bnleak", "  app:\n    build: .\n");
    write(&project, "Dockerfile", WITH_RUNS);
    let before = snapshot();
    let out = build(&project, true);
    assert!(out.contains("eth0"), "the RUN had a network interface: {out}");
    assert_same(&before, &snapshot(), "after a successful build");

    write(&project, "Dockerfile", "FROM berth-test/busybox:latest\nRUN echo step one\nRUN exit 3\n");
    let out = build(&project, false);
    assert!(out.contains("exited with code 3"), "{out}");
    assert_same(&before, &snapshot(), "after a failed build");
}

#[test]
fn ctrl_c_during_a_run_step_removes_the_build_network() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let project = Project::new("bnint", "  app:\n    build: .\n");
    write(&project, "Dockerfile", "FROM berth-test/busybox:latest\nRUN echo sleeping && sleep 600\n");
    let before = snapshot();
    let log = project.dir().join("build.log");
    let mut child = project
        .command(&["build", "--no-cache"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // Waits for the RUN to run (its first line printed), bounded only so a broken build fails.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("  sleeping") {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the build ended early: {}",
            std::fs::read_to_string(&log).unwrap()
        );
        assert!(Instant::now() < deadline, "the RUN never started: {}", std::fs::read_to_string(&log).unwrap());
        std::thread::sleep(Duration::from_millis(50));
    }
    let during = snapshot();
    assert!(during.iter().any(|l| l.starts_with("build-networks/")), "the build holds a network: {during:#?}");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()), nix::sys::signal::SIGINT)
        .unwrap();
    let status = child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(130), "{text}");
    assert!(text.contains("interrupted"), "{text}");
    assert_same(&before, &snapshot(), "after Ctrl-C");
}

#[test]
fn a_build_beside_a_running_project_leaves_its_network_intact_and_working() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let services =
        format!("{}{}  app:\n    build: .\n", service("server", &tcp_server(8080, "pong")), service("client", IDLE));
    let project = Project::new("bnbeside", &services);
    write(&project, "Dockerfile", WITH_RUNS);
    let out = project.berth(&["up", "-d", "server", "client"]);
    assert!(out.status.success(), "up: {}", String::from_utf8_lossy(&out.stderr));
    project.sh_until("client", "nc server 8080 </dev/null", "pong");
    let record = std::fs::read(state_root().join("networks/bnbeside_default.json")).unwrap();
    let before = snapshot();
    assert!(before.iter().any(|l| l.contains("berth bnbeside net:")), "the project's rules are there: {before:#?}");

    build(&project, true);
    assert_same(&before, &snapshot(), "after a build beside the running project");
    assert_eq!(
        std::fs::read(state_root().join("networks/bnbeside_default.json")).unwrap(),
        record,
        "the project's network record is unchanged"
    );
    project.sh_until("client", "nc server 8080 </dev/null", "pong");
    project.down();
    assert!(leftovers("bnbeside").is_empty(), "{:?}", leftovers("bnbeside"));
}
