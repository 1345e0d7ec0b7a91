//! The kill-point sweep, as root: every point of `berth::fault::POINTS` is driven — the command
//! run with `BERTH_KILL_POINT` naming it dies there by SIGKILL — and then a re-run and `down`
//! must leave the machine as it was: no berth link, namespace, mount, cgroup, firewall rule or
//! process more than before, no container directory, every JSON record whole, no stray
//! temporary file, and the image store verified. Run under the kernel-tests lock:
//! `flock /tmp/berth-kernel-tests.lock cargo test --test kill_points -- --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::fs::File;
use std::net::TcpListener;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use support::{IMAGE, NO_UPSTREAM, busybox_root, is_alive};

const PROJECT: &str = "bkill";

/// A project directory and a state root of this test's own.
struct Env {
    root: PathBuf,
    dir: tempfile::TempDir,
    /// The bridges this state root's networks were given and the containers it held, seen so
    /// far: the host's links, rules and cgroups are checked for these (other checkouts may
    /// run stacks of their own meanwhile).
    bridges: std::cell::RefCell<BTreeSet<String>>,
}

impl Env {
    fn new(root: PathBuf, compose: &str) -> Env {
        let dir = tempfile::Builder::new().prefix("berth-kill-").tempdir().unwrap();
        std::fs::write(dir.path().join("compose.yaml"), compose).unwrap();
        std::fs::write(dir.path().join("Dockerfile"), format!("FROM {IMAGE}\nRUN echo built > /built\n")).unwrap();
        Env { root, dir, bridges: std::cell::RefCell::new(BTreeSet::new()) }
    }

    /// Notes the bridges the state root's network records name now, and its containers.
    fn observe(&self) {
        for entry in std::fs::read_dir(self.root.join("containers")).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let id = name.strip_prefix(".removing-").and_then(|n| n.split('-').next()).unwrap_or(&name);
            self.bridges.borrow_mut().insert(format!("berth-{id}"));
        }
        for entry in std::fs::read_dir(self.root.join("networks")).into_iter().flatten().flatten() {
            let Ok(bytes) = std::fs::read(entry.path()) else { continue };
            let Ok(record) = serde_json::from_slice::<serde_json::Value>(&bytes) else { continue };
            if let Some(bridge) = record["bridge"].as_str() {
                self.bridges.borrow_mut().insert(bridge.to_owned());
            }
        }
    }

    fn command(&self, point: Option<&str>, args: &[&str]) -> Command {
        self.observe();
        let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
        command
            .arg("--root")
            .arg(&self.root)
            .arg("-f")
            .arg(self.dir.path().join("compose.yaml"))
            .args(args)
            .env_remove(berth::fault::VARIABLE)
            .stdin(Stdio::null());
        if let Some(point) = point {
            command.env(berth::fault::VARIABLE, point);
        }
        command
    }

    /// Runs a command with `point` selected and checks it died there, by SIGKILL.
    fn killed_at(&self, point: &str, args: &[&str]) {
        let out = self.command(Some(point), args).output().unwrap();
        self.observe();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.signal(), Some(9), "{args:?} at {point}: {:?}\n{stderr}", out.status);
        assert!(stderr.contains(&format!("kill point {point}")), "{stderr}");
    }

    /// Runs a command, which must succeed.
    fn ok(&self, args: &[&str]) -> Output {
        let out = self.command(None, args).output().unwrap();
        self.observe();
        assert!(
            out.status.success(),
            "{args:?}: {:?}\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.supervisor_log()
        );
        out
    }

    fn project_dir(&self) -> PathBuf {
        self.root.join("projects").join(PROJECT)
    }

    fn supervisor_log(&self) -> String {
        std::fs::read_to_string(self.project_dir().join("supervisor.log")).unwrap_or_default()
    }

    /// Waits until the supervisor's log says it died at `point`, and for it to be gone.
    fn supervisor_killed_at(&self, point: &str) {
        let said = format!("kill point {point}");
        for _ in 0..300 {
            if self.supervisor_log().contains(&said) && supervisors(&self.root).is_empty() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the supervisor never reached {point}:\n{}", self.supervisor_log());
    }

    /// SIGKILLs the project's supervisor (a crash) and waits until it is gone.
    fn crash_supervisor(&self) {
        let record = std::fs::read(self.project_dir().join("supervisor.json")).unwrap();
        let record: serde_json::Value = serde_json::from_slice(&record).unwrap();
        let pid = i32::try_from(record["pid"].as_i64().unwrap()).unwrap();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
        for _ in 0..300 {
            if !is_alive(pid) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("supervisor {pid} survived SIGKILL");
    }
}

/// The supervisors of the state root `root`, by their command lines.
fn supervisors(root: &Path) -> Vec<i32> {
    let root = root.as_os_str().as_encoded_bytes();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
            args.contains(&&b"__supervise"[..]) && args.contains(&root) && is_alive(*pid)
        })
        .collect()
}

fn lines_with_berth(program: &str, args: &[&str]) -> Vec<String> {
    let Ok(out) = Command::new(program).args(args).output() else { return Vec::new() };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.to_lowercase().contains("berth"))
        .map(|l| {
            // Counters move on their own.
            let words: Vec<&str> = l.split_whitespace().collect();
            let mut kept = Vec::new();
            let mut skip = 0;
            for word in words {
                if skip > 0 {
                    skip -= 1;
                } else if word == "packets" || word == "bytes" {
                    skip = 1;
                } else if !(word.starts_with('[') && word.ends_with(']')) {
                    kept.push(word);
                }
            }
            kept.join(" ")
        })
        .collect()
}

/// berth's kernel objects on the host (links and rules of the test's own project and bridges),
/// and its processes for `root`.
fn host(root: &Path, bridges: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let ours = |line: &str| line.contains(PROJECT) || bridges.iter().any(|b| line.contains(b.as_str()));
    for line in lines_with_berth("ip", &["-o", "link", "show"]).into_iter().filter(|l| ours(l)) {
        let name = line.split(':').nth(1).unwrap_or_default().trim().to_owned();
        found.insert(format!("link {name}"));
    }
    for line in lines_with_berth("ip", &["netns", "list"]) {
        found.insert(format!("netns {line}"));
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for line in mountinfo.lines().filter(|l| l.to_lowercase().contains("berth")) {
        found.insert(format!("mount {}", line.split(' ').nth(4).unwrap_or_default()));
    }
    let mut cgroups = if bridges.is_empty() { Vec::new() } else { vec![(PathBuf::from("/sys/fs/cgroup"), 0)] };
    while let Some((dir, depth)) = cgroups.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                if bridges.contains(entry.file_name().to_string_lossy().as_ref()) {
                    found.insert(format!("cgroup {}", entry.path().display()));
                }
                if depth < 4 {
                    cgroups.push((entry.path(), depth + 1));
                }
            }
        }
    }
    let rules = [lines_with_berth("iptables-save", &[]), lines_with_berth("nft", &["list", "ruleset"])];
    found.extend(rules.concat().into_iter().filter(|l| ours(l)).map(|l| format!("rule {l}")));
    found.extend(supervisors(root).into_iter().map(|pid| format!("supervisor {pid}")));
    found
}

/// What is wrong with the state root: container directories left, records that do not
/// parse, temporary files left, a store that does not verify.
fn state_problems(root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for entry in std::fs::read_dir(root.join("containers")).into_iter().flatten().flatten() {
        problems.push(format!("container directory left: {}", entry.path().display()));
    }
    // Records live everywhere but inside layers, containers' trees and volumes.
    let skip = ["layers", "l", "upper", "work", "mnt", "spare", "volumes", "blobs", "init-layer"];
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                if !skip.contains(&name.as_str()) {
                    dirs.push(path);
                }
            } else if name.ends_with(".tmp") {
                problems.push(format!("temporary file left: {}", path.display()));
            } else if name.ends_with(".json")
                && let Err(e) = serde_json::from_slice::<serde_json::Value>(&std::fs::read(&path).unwrap())
            {
                problems.push(format!("{}: {e}", path.display()));
            }
        }
    }
    for entry in std::fs::read_dir(root.join("images/tmp")).into_iter().flatten().flatten() {
        problems.push(format!("image staging left: {}", entry.path().display()));
    }
    match berth::image::Store::open(root).and_then(|store| store.verify()) {
        Ok(()) => {}
        Err(e) => problems.push(format!("the image store: {e}")),
    }
    problems
}

fn stack() -> String {
    let service = |name: &str, extra: &str| {
        format!("  {name}:\n    image: {IMAGE}\n    pull_policy: never\n{NO_UPSTREAM}{extra}")
    };
    [
        format!("name: {PROJECT}\nservices:\n"),
        service("web", "    command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; while :; do sleep 0.1; done\"]\n"),
        service("crash", "    command: [\"sh\", \"-c\", \"sleep 0.2; exit 1\"]\n    restart: always\n"),
        format!("  app:\n    build: .\n    image: {PROJECT}-app:latest\n    pull_policy: build\n{NO_UPSTREAM}"),
        "    profiles: [\"build\"]\n".to_owned(),
    ]
    .concat()
}

/// Drives `point`: its command is killed there, then re-run where that makes sense.
fn drive(env: &Env, point: &str, registry: &Registry) {
    let up = ["up", "-d"];
    match point {
        "up.after-volumes" | "up.after-spawn" => {
            env.killed_at(point, &up);
            env.ok(&up);
        }
        "supervisor.before-restart" => {
            env.command(Some(point), &up).output().unwrap();
            env.supervisor_killed_at(point);
            env.ok(&up);
        }
        "supervisor.mid-removal" => {
            let out = env.command(Some(point), &up).output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            // The supervisor removes the containers on `down`, and dies there; this `down`
            // finishes the job.
            env.ok(&["down", "-t", "0"]);
            env.supervisor_killed_at(point);
        }
        p if p.starts_with("supervisor.") => {
            let out = env.command(Some(point), &up).output().unwrap();
            assert!(!out.status.success(), "up with the supervisor killed at {point} succeeded");
            env.supervisor_killed_at(point);
            env.ok(&up);
        }
        "down.after-supervisor" => {
            env.ok(&up);
            env.killed_at(point, &["down", "-t", "0"]);
        }
        "down.mid-removal" | "down.before-networks" => {
            env.ok(&up);
            env.crash_supervisor();
            env.killed_at(point, &["down", "-t", "0"]);
        }
        "start.after-reap" => {
            env.ok(&up);
            env.crash_supervisor();
            env.killed_at(point, &["start"]);
            env.ok(&["start"]);
        }
        "stop.mid-reap" => {
            env.ok(&up);
            env.crash_supervisor();
            env.killed_at(point, &["stop"]);
            env.ok(&["stop"]);
        }
        "run.before-record" | "run.before-rename" => {
            env.killed_at(point, &["run", "--rm", "web", "true"]);
            env.ok(&["run", "--rm", "web", "true"]);
        }
        "pull.mid-unpack" | "pull.mid-commit" => {
            // A store without the image, so the pull unpacks.
            let fresh_root = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
            let fresh = Env::new(fresh_root.path().to_path_buf(), &stack());
            let reference = registry.reference();
            fresh.killed_at(point, &["pull", &reference]);
            fresh.ok(&["pull", &reference]);
            let problems = state_problems(&fresh.root);
            assert!(problems.is_empty(), "after {point}:\n{}", problems.join("\n"));
        }
        "build.after-run" | "build.mid-commit" => {
            env.killed_at(point, &["--profile", "build", "build", "--no-cache", "app"]);
            env.ok(&["--profile", "build", "build", "--no-cache", "app"]);
        }
        other => panic!("no way to drive {other}: add it here"),
    }
}

#[test]
fn every_kill_point_leaves_what_a_rerun_and_down_finish() {
    assert!(
        Path::new(REGISTRY).exists() && Command::new("skopeo").arg("--version").output().is_ok(),
        "{REGISTRY} and skopeo are needed for the pull points: apt-get install docker-registry skopeo"
    );
    let root = busybox_root("berth-kill-points-root");
    let env = Env::new(root.clone(), &stack());
    // Whatever an earlier, interrupted run left.
    let _ = env.command(None, &["down", "-v", "-t", "0"]).output();
    let registry = Registry::start();
    let before = host(&root, &env.bridges.borrow());
    assert!(state_problems(&root).is_empty(), "{:?}", state_problems(&root));
    let mut failures = Vec::new();
    let mut driven = BTreeSet::new();
    for (point, what) in berth::fault::POINTS {
        eprintln!("kill point {point}: {what}");
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            drive(&env, point, &registry);
            env.ok(&["down", "-v", "-t", "0"]);
            let after = host(&root, &env.bridges.borrow());
            let leaked: Vec<&String> = after.difference(&before).collect();
            assert!(leaked.is_empty(), "left on the host: {leaked:#?}");
            let problems = state_problems(&root);
            assert!(problems.is_empty(), "in the state root:\n{}", problems.join("\n"));
        }));
        match outcome {
            Ok(()) => {
                driven.insert(*point);
            }
            Err(e) => {
                let message = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                failures.push(format!("{point}: {message}"));
                // Whatever it left must not spoil the next point.
                let _ = env.command(None, &["down", "-v", "-t", "0"]).output();
                let _ = env.command(None, &["down", "-v", "-t", "0"]).output();
            }
        }
    }
    assert!(failures.is_empty(), "{} point(s) failed:\n{}", failures.len(), failures.join("\n\n"));
    let all: BTreeSet<&str> = berth::fault::POINTS.iter().map(|(p, _)| *p).collect();
    assert_eq!(driven, all, "every kill point is driven");
}

const REGISTRY: &str = "/usr/bin/docker-registry";

/// A docker-registry on 127.0.0.1 holding the busybox fixture as `busybox:latest`.
struct Registry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        let images = Path::new(env!("CARGO_TARGET_TMPDIR")).join("berth-test-images");
        let dir = tempfile::Builder::new().prefix("berth-registry-").tempdir_in("/tmp").unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("storage").display()
            ),
        )
        .unwrap();
        let log = File::create(dir.path().join("log")).unwrap();
        let child = Command::new(REGISTRY)
            .arg("serve")
            .arg(&config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let registry = Registry { child, port, _dir: dir };
        // skopeo retries nothing: wait for the registry to answer first (bounded).
        for _ in 0..300 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = Command::new("skopeo")
            .args(["copy", "--quiet", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:busybox", images.join("oci").display()))
            .arg(format!("docker://127.0.0.1:{port}/busybox:latest"))
            .output()
            .unwrap();
        assert!(out.status.success(), "skopeo copy: {}", String::from_utf8_lossy(&out.stderr));
        registry
    }

    fn reference(&self) -> String {
        format!("127.0.0.1:{}/busybox:latest", self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
