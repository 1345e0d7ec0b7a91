//! The container runtime through `berth run` and `berth exec`, as root, with the busybox image
//! the test setup builds from Debian's busybox-static (tests/fixtures/make-images.sh).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

const IMAGE: &str = "berth-test/busybox:latest";

/// A state root with the busybox image loaded, shared by the tests of this binary.
fn state_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| support::busybox_root("berth-runtime-root"))
}

/// A project directory with a compose.yaml.
struct Stack {
    dir: tempfile::TempDir,
}

impl Stack {
    fn new(services: &str) -> Stack {
        let dir = tempfile::Builder::new().prefix("berth-rt-").tempdir().unwrap();
        let text = format!("services:\n{services}");
        std::fs::write(dir.path().join("compose.yaml"), text).unwrap();
        Stack { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
        cmd.arg("--root").arg(state_root()).arg("-f").arg(self.path().join("compose.yaml")).args(args);
        cmd
    }

    fn berth(&self, args: &[&str]) -> Output {
        self.command(args).stdin(Stdio::null()).output().unwrap()
    }

    /// `berth run -T SERVICE ARGS...`, which must succeed; its stdout.
    fn run_ok(&self, service: &str, args: &[&str]) -> String {
        let out = self.berth(&[&["run", "-T", service], args].concat());
        assert!(
            out.status.success(),
            "berth run {service} {args:?}: {}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Starts `berth run -T` in the background and waits until `berth exec` reaches it.
    fn start_background(&self, service: &str, args: &[&str]) -> Child {
        let child = self
            .command(&[&["run", "--rm", "-T", service], args].concat())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut child = child;
        for _ in 0..400 {
            if self.berth(&["exec", "-T", service, "true"]).status.success() {
                return child;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the background container of {service} never became reachable");
    }
}

impl Drop for Stack {
    /// `run` leaves the project's network for `down`, as compose does: take it down.
    fn drop(&mut self) {
        let _ = self.berth(&["down", "-t", "0"]);
    }
}

fn service(name: &str, extra: &str) -> String {
    let mut text = format!("  {name}:\n    image: {IMAGE}\n    pull_policy: never\n");
    for line in extra.lines().filter(|l| !l.trim().is_empty()) {
        text.push_str("    ");
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// A PID 1 that ends on SIGTERM (busybox `sleep` as PID 1 would ignore it).
const TERMINABLE: &str = "trap 'echo got TERM; exit 0' TERM; while :; do sleep 0.1; done";

/// Ends a background `berth run` the way a user would: SIGTERM, which berth forwards; then
/// berth removes the container.
fn stop(child: Child) -> Output {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    child.wait_with_output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_container_sees_only_its_own_processes_host_name_and_files() {
    let marker = tempfile::Builder::new().prefix("berth-host-marker-").tempfile().unwrap();
    let stack = Stack::new(&service("web", "hostname: web-host"));
    let ps = stack.run_ok("web", &["ps", "-o", "pid,comm"]);
    let rows: Vec<&str> = ps.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "ps sees only itself: {ps}");
    assert_eq!(rows[0].split_whitespace().next(), Some("1"), "ps is PID 1: {ps}");
    assert_eq!(stack.run_ok("web", &["hostname"]).trim(), "web-host");
    let probe = format!("test -e {} && echo visible || echo invisible", marker.path().display());
    assert_eq!(stack.run_ok("web", &["sh", "-c", &probe]).trim(), "invisible");
    let hosts = stack.run_ok("web", &["cat", "/etc/hosts", "/etc/hostname"]);
    assert!(hosts.contains("localhost") && hosts.contains("web-host"), "{hosts}");
}

#[test]
fn kernel_paths_are_masked_and_pid_1_has_only_stdio() {
    let stack = Stack::new(&service("app", ""));
    assert_eq!(stack.run_ok("app", &["sh", "-c", "cat /proc/kcore | wc -c"]).trim(), "0");
    let write = stack.berth(&["run", "-T", "app", "sh", "-c", "echo 1 > /proc/sysrq-trigger"]);
    assert!(!write.status.success(), "/proc/sysrq-trigger is read-only");
    let fds = stack.run_ok("app", &["ls", "/proc/1/fd"]);
    // ls is PID 1 here and holds the directory it lists as fd 3.
    assert_eq!(fds.split_whitespace().collect::<Vec<_>>(), ["0", "1", "2", "3"], "{fds}");
    let fds = stack.run_ok("app", &["sh", "-c", "ls /proc/1/fd; true"]);
    assert_eq!(fds.split_whitespace().collect::<Vec<_>>(), ["0", "1", "2"], "PID 1 (sh) has only stdio: {fds}");
}

fn cap_eff(stack: &Stack, service: &str) -> String {
    let status = stack.run_ok(service, &["grep", "CapEff", "/proc/self/status"]);
    status.split_whitespace().nth(1).unwrap().to_string()
}

#[test]
fn capabilities_are_dockers_default_set_and_follow_cap_add_and_cap_drop() {
    let services = [
        service("plain", ""),
        service("added", "cap_add: [NET_ADMIN]"),
        service("dropped", "cap_drop: [chown]"),
        service("user", "user: app"),
    ]
    .concat();
    let stack = Stack::new(&services);
    assert_eq!(cap_eff(&stack, "plain"), "00000000a80425fb", "docker's default set");
    assert_eq!(cap_eff(&stack, "added"), "00000000a80435fb", "plus CAP_NET_ADMIN (bit 12)");
    assert_eq!(cap_eff(&stack, "dropped"), "00000000a80425fa", "minus CAP_CHOWN (bit 0)");
    assert_eq!(cap_eff(&stack, "user"), "0000000000000000", "a non-root user has no effective capabilities");
    let ids = stack.run_ok("user", &["id"]);
    assert!(ids.contains("uid=1000(app)") && ids.contains("2000(extra)"), "{ids}");
}

#[test]
fn bind_mounts_and_named_volumes() {
    let stack = Stack::new(
        &[
            service("ro", "volumes: ['./data:/data:ro']"),
            service("rw", "volumes: ['./data:/data', 'cache:/cache', 'seeded:/etc']"),
            "volumes:\n  cache: {}\n  seeded: {}\n".to_string(),
        ]
        .concat(),
    );
    let refused = stack.berth(&["run", "-T", "ro", "touch", "/data/x"]);
    assert!(!refused.status.success(), "a read-only bind refuses writes");
    assert!(stderr(&refused).contains("Read-only file system"), "{}", stderr(&refused));
    stack.run_ok("rw", &["sh", "-c", "echo from-container > /data/x; echo kept > /cache/v"]);
    assert_eq!(std::fs::read_to_string(stack.path().join("data/x")).unwrap(), "from-container\n");
    assert_eq!(stack.run_ok("rw", &["cat", "/cache/v"]), "kept\n", "a named volume outlives its container");
    assert!(stack.run_ok("rw", &["cat", "/etc/motd"]).contains("welcome"), "a new volume is seeded from the image");
}

#[test]
fn exec_failures_name_the_service() {
    let stack = Stack::new(&service("svc", ""));
    let missing = stack.berth(&["run", "-T", "svc", "no-such-binary"]);
    assert_eq!(missing.status.code(), Some(127));
    let text = stderr(&missing);
    assert!(text.contains("\"svc\"") && text.contains("executable file not found"), "{text}");
    let user = stack.berth(&["run", "-T", "-u", "nosuchuser", "svc", "true"]);
    assert!(stderr(&user).contains("nosuchuser"), "{}", stderr(&user));
    let dir = stack.berth(&["run", "-T", "-w", "/etc/passwd", "svc", "true"]);
    assert!(stderr(&dir).contains("not a directory"), "{}", stderr(&dir));
    let code = stack.berth(&["run", "-T", "svc", "sh", "-c", "exit 7"]);
    assert_eq!(code.status.code(), Some(7), "the exit code is relayed");
}

#[test]
fn memory_limit_oom_kills_and_is_reported() {
    let stack = Stack::new(&service("hog", "mem_limit: 16m"));
    let out = stack.berth(&["run", "-T", "hog", "sh", "-c", "tail /dev/zero"]);
    assert_eq!(out.status.code(), Some(137), "{}", stderr(&out));
    assert!(stderr(&out).contains("OOMKilled"), "{}", stderr(&out));
}

#[test]
fn pids_limit_stops_a_fork_bomb() {
    let stack = Stack::new(&service("bomb", "pids_limit: 20"));
    // Fork until refused, then count the container's tasks with shell builtins only (a fork
    // would be refused too).
    let script = "(i=0; while [ $i -lt 60 ]; do sleep 30 & i=$((i+1)); done) 2>/dev/null; \
                  set -- /proc/[0-9]*; echo $#";
    let count: usize = stack.run_ok("bomb", &["sh", "-c", script]).trim().parse().unwrap();
    assert!(count <= 20, "at most 20 tasks, saw {count}");
}

#[test]
fn a_cpus_limit_caps_usage() {
    let stack = Stack::new(&service("spin", "cpus: 0.25"));
    // Spin for two seconds of wall time, then read the container's own cgroup CPU usage (ns).
    let script = "timeout 2 sh -c 'while :; do :; done'; cat /sys/fs/cgroup/cpuacct/cpuacct.usage 2>/dev/null \
                  || sed -n 's/^usage_usec //p' /sys/fs/cgroup/cpu.stat";
    let out = stack.run_ok("spin", &["sh", "-c", script]);
    let used: f64 = out.trim().parse().unwrap();
    let seconds = if used > 1e7 { used / 1e9 } else { used / 1e6 };
    // A quarter of a CPU for two seconds is 0.5 s; unlimited it would be about 2 s.
    assert!(seconds < 0.9, "cpus: 0.25 used {seconds:.2} s of CPU in 2 s");
    assert!(seconds > 0.1, "the loop ran ({seconds:.2} s)");
}

#[test]
fn exec_joins_the_container_and_relays_exit_codes() {
    let stack = Stack::new(&service("srv", "hostname: srv-host\nenvironment: [GREETING=hi]"));
    let child = stack.start_background("srv", &["sh", "-c", TERMINABLE]);
    let out = stack.berth(&["exec", "-T", "srv", "sh", "-c", "echo $GREETING $(hostname); exit 3"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hi srv-host");
    let ps = String::from_utf8(stack.berth(&["exec", "-T", "srv", "ps", "-o", "pid,args"]).stdout).unwrap();
    let first = ps.lines().nth(1).unwrap_or_default().to_string();
    assert!(first.trim_start().starts_with("1 ") && first.contains("trap"), "PID 1 is the service's shell: {ps}");
    // The shell PID 1 traps SIGTERM: berth forwards it.
    let out = stop(child);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("got TERM"));
}

#[test]
fn exec_and_run_with_a_terminal() {
    if Command::new("script").arg("--version").output().is_err() {
        panic!("`script` (bsdutils) is needed to drive a real pty");
    }
    let stack = Stack::new(&service("tty", ""));
    let cmd = |args: &str| {
        format!(
            "{} --root {} -f {} {args}",
            env!("CARGO_BIN_EXE_berth"),
            state_root().display(),
            stack.path().join("compose.yaml").display()
        )
    };
    let out = Command::new("script")
        .args(["-qec", &cmd("run tty sh -c 'tty; stty size; exit 5'"), "/dev/null"])
        .stdin(Stdio::piped())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("/dev/pts/0"), "a pty of the container's own devpts: {text}");
    assert_eq!(out.status.code(), Some(5), "{text}");
    let child = stack.start_background("tty", &["sh", "-c", TERMINABLE]);
    let mut script = Command::new("script")
        .args(["-qec", &cmd("exec tty sh"), "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    script.stdin.take().unwrap().write_all(b"tty; exit 4\n").unwrap();
    let out = script.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("/dev/pts/"), "{text}");
    assert_eq!(out.status.code(), Some(4), "{text}");
    stop(child);
}

#[test]
fn init_reaps_zombies_and_forwards_signals() {
    let stack = Stack::new(&service("reaper", "init: true"));
    // The inner shell exits at once, so its background sleep is re-parented to PID 1 and
    // becomes a zombie when it ends unless PID 1 reaps it.
    let script = "sh -c 'sleep 0.2 &'; sleep 1; cat /proc/[0-9]*/stat | awk '{print $3}' | sort | uniq -c";
    let states = stack.run_ok("reaper", &["sh", "-c", script]);
    assert!(!states.contains(" Z"), "no zombie left: {states}");
    let comm = stack.run_ok("reaper", &["cat", "/proc/1/comm"]);
    assert_eq!(comm.trim(), "init", "berth's init is PID 1");
    let child = stack.start_background("reaper", &["sh", "-c", TERMINABLE]);
    let out = stop(child);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("got TERM"), "init forwarded SIGTERM");
}

#[test]
fn read_only_root_and_tmpfs() {
    let stack = Stack::new(&service("ro", "read_only: true\ntmpfs: ['/scratch:size=1m']"));
    let out = stack.berth(&["run", "-T", "ro", "touch", "/x"]);
    assert!(stderr(&out).contains("Read-only file system"), "{}", stderr(&out));
    stack.run_ok("ro", &["sh", "-c", "echo ok > /scratch/f && echo ok > /tmp/f 2>/dev/null || true"]);
    let df = stack.run_ok("ro", &["df", "-k", "/scratch"]);
    assert!(df.contains("1024"), "a 1 MiB tmpfs: {df}");
    assert!(stack.run_ok("ro", &["cat", "/etc/resolv.conf"]).len() < 4096);
}

#[test]
fn pause_unpause_top_and_stats() {
    let stack = Stack::new(&service("worker", ""));
    let child = stack.start_background("worker", &["sh", "-c", TERMINABLE]);
    let out = |args: &[&str]| {
        let out = stack.berth(args);
        assert!(out.status.success(), "berth {args:?}: {}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    let top = out(&["top"]);
    assert!(
        top.lines().next().unwrap().contains("-worker-run-"),
        "a one-off is named <project>-<service>-run-<id>: {top}"
    );
    assert!(top.lines().nth(1).unwrap().starts_with("UID") && top.contains("trap"), "{top}");
    let stats = out(&["stats", "--no-stream", "worker"]);
    let row = stats.lines().nth(1).unwrap_or_default().to_string();
    assert!(stats.starts_with("CONTAINER ID") && row.contains("-worker-run-"), "{stats}");
    let pids: u64 = row.split_whitespace().last().unwrap().parse().unwrap();
    assert!((1..=3).contains(&pids), "the shell and at most a sleep or two: {stats}");

    out(&["pause"]);
    assert!(is_frozen(&stack), "pause froze the container");
    out(&["unpause", "worker"]);
    assert!(!is_frozen(&stack), "unpause thawed it");
    assert!(stack.berth(&["exec", "-T", "worker", "true"]).status.success(), "the container runs again");
    let unknown = stack.berth(&["top", "nope"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stop(child).status.success());
}

#[test]
fn a_one_off_root_is_volatile_writes_nothing_it_was_not_asked_to_and_leaves_no_directory() {
    let stack = Stack::new(&service("worker", ""));
    let child = stack.start_background("worker", &["sh", "-c", TERMINABLE]);
    let (id, record) = running_container(&stack);
    let dir = state_root().join("containers").join(&id);
    let upper: Vec<_> = std::fs::read_dir(dir.join("upper")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(upper.is_empty(), "/etc/hosts and friends land on the init layer, not the upper layer: {upper:?}");
    let pid = record.split("\"pid\":").nth(1).unwrap().split(',').next().unwrap().to_owned();
    let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let root = mountinfo.lines().find(|l| l.split(' ').nth(4) == Some("/")).unwrap();
    let init_layer = state_root().join("init-layer");
    assert!(root.contains(" - overlay "), "{root}");
    assert!(root.contains(&format!("lowerdir={}:", init_layer.display())), "the init layer is on top: {root}");
    assert!(root.contains("volatile"), "a one-off's overlay skips the sync at unmount: {root}");
    assert_eq!(std::fs::metadata(init_layer.join("etc/hosts")).unwrap().len(), 0, "the shared layer stays empty");
    // What the container writes goes to its upper layer, as ever.
    assert!(stack.berth(&["exec", "-T", "worker", "sh", "-c", "echo x > /written"]).status.success());
    assert!(dir.join("upper/written").is_file());

    assert!(stop(child).status.success());
    assert!(!dir.exists(), "the container directory is gone");
    let spares = std::fs::read_dir(state_root().join("spare")).map(|d| d.count()).unwrap_or(0);
    assert!(spares <= 8, "at most eight emptied directories are kept for reuse: {spares}");
    for spare in std::fs::read_dir(state_root().join("spare")).into_iter().flatten().flatten() {
        let upper = std::fs::read_dir(spare.path().join("upper"));
        // A spare may be taken by a concurrent test between the listing and this read.
        if let Ok(upper) = upper {
            assert_eq!(upper.count(), 0, "a kept directory is empty: {}", spare.path().display());
        }
    }
}

/// The id and `state.json` of the stack's only running container.
fn running_container(stack: &Stack) -> (String, String) {
    let project = stack.path().file_name().and_then(|n| n.to_str()).unwrap().to_lowercase();
    for entry in std::fs::read_dir(state_root().join("containers")).unwrap().flatten() {
        let Ok(state) = std::fs::read_to_string(entry.path().join("state.json")) else { continue };
        if state.contains(&format!("\"project\":\"{project}\"")) {
            return (entry.file_name().into_string().unwrap(), state);
        }
    }
    panic!("no running container of the stack");
}

/// Whether the stack's only running container is frozen: v1 `freezer.state`, or v2
/// `cgroup.events` on a host without v1 controllers.
fn is_frozen(stack: &Stack) -> bool {
    let (id, _) = running_container(stack);
    let v1 = format!("/sys/fs/cgroup/freezer/berth-{id}/freezer.state");
    if let Ok(text) = std::fs::read_to_string(&v1) {
        return text.trim() == "FROZEN";
    }
    let events = std::fs::read_to_string(format!("/sys/fs/cgroup/berth/{id}/cgroup.events")).unwrap();
    events.lines().any(|l| l == "frozen 1")
}
