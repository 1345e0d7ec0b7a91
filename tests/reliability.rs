//! Reliability, as root: output is bytes (nothing a container writes stops capture or breaks
//! its pipe), a line without a newline is never held whole, two `up -d` at once make one
//! supervisor, and a tree deeper than the descriptor limit inside a container does not stop
//! `down`. Run under the kernel-tests lock:
//! `flock /tmp/berth-kernel-tests.lock cargo test --test reliability -- --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::PathBuf;
use std::time::Duration;

use support::*;

fn project_dir(project: &Project) -> PathBuf {
    state_root().join("projects").join(&project.name)
}

/// Retries `check` (which returns what it saw when not yet satisfied) a bounded number of
/// times; panics with the last thing seen.
fn eventually<T>(what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let mut last = String::new();
    for _ in 0..600 {
        match check() {
            Ok(value) => return value,
            Err(seen) => last = seen,
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} never happened; last seen:\n{last}");
}

#[test]
fn binary_output_comes_back_byte_for_byte_and_the_container_keeps_writing() {
    let script = r#"printf 'a\377\376b\n'; printf 'c\377'; echo; printf 'x\\y\r\n' >&2; for i in 1 2 3; do echo line$$i || echo EPIPE >&2; done; echo done; exec sleep 100000"#;
    let project = Project::new(
        "brelbytes",
        &service("app", &format!("command: [\"sh\", \"-c\", {script:?}]\nstop_signal: SIGKILL")),
    );
    project.up();
    let want: &[u8] = b"a\xff\xfeb\nc\xff\nline1\nline2\nline3\ndone\n";
    let got = eventually("the last line in `berth logs`", || {
        let out = project.berth(&["logs", "--no-log-prefix"]);
        assert!(out.status.success(), "logs: {}", String::from_utf8_lossy(&out.stderr));
        // stderr's line may be merged after stdout's last one: wait for both, wherever they fall.
        let has = |want: &[u8]| out.stdout.windows(want.len()).any(|w| w == want);
        if has(b"done\n") && has(b"x\\y\r\n") {
            Ok(out.stdout)
        } else {
            Err(String::from_utf8_lossy(&out.stdout).into())
        }
    });
    // stderr is another pipe: where its line falls among stdout's is the reader's luck.
    let stderr_line: &[u8] = b"x\\y\r\n";
    let at = got.windows(stderr_line.len()).position(|w| w == stderr_line).expect("the stderr line");
    let stdout_only: Vec<u8> = [&got[..at], &got[at + stderr_line.len()..]].concat();
    assert_eq!(stdout_only, want, "{:?}", String::from_utf8_lossy(&got));
    // The container is still running: its writes after the bad byte did not fail.
    let (ok, text) = project.sh("app", "echo alive");
    assert!(ok && text.contains("alive"), "{text}");
    // With prefixes, each line is one container's.
    let out = project.berth(&["logs", "--no-color"]);
    let prefixed = out.stdout;
    for line in [&b"a\xff\xfeb"[..], b"c\xff", b"x\\y\r", b"line1", b"done"] {
        let prefixed_line = [&b"app-1 | "[..], line, b"\n"].concat();
        let found = prefixed.windows(prefixed_line.len()).any(|w| w == prefixed_line.as_slice());
        assert!(found, "{:?} in {:?}", String::from_utf8_lossy(line), String::from_utf8_lossy(&prefixed));
    }
    project.down();
}

/// Peak and current resident memory of a process, in KiB.
fn memory_kib(pid: i32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{name} missing in:\n{status}"))
    };
    (field("VmHWM:"), field("VmRSS:"))
}

#[test]
fn a_200_mb_line_without_a_newline_keeps_the_supervisor_small() {
    let script = "head -c 200000000 /dev/zero | tr '\\000' a; echo; echo finished; exec sleep 100000";
    let project = Project::new(
        "brelbig",
        &service("app", &format!("command: [\"sh\", \"-c\", {script:?}]\nstop_signal: SIGKILL")),
    );
    project.up();
    let supervisor = project.supervisor_pid();
    let log = project_dir(&project).join("logs/brelbig-app-1.log");
    eventually("the line after the 200 MB one in the log", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains(" stdout F finished\n") { Ok(()) } else { Err(format!("{} bytes", text.len())) }
    });
    let (peak, now) = memory_kib(supervisor);
    eprintln!("supervisor after a 200 MB line: VmHWM {peak} KiB, VmRSS {now} KiB");
    assert!(peak < 64 * 1024, "the supervisor peaked at {peak} KiB");
    // The line was kept as 16 KiB pieces, and rotation kept the files at their cap.
    let text = std::fs::read_to_string(&log).unwrap();
    let piece = text.lines().find(|l| l.contains(" stdout P ")).expect("a partial piece");
    assert_eq!(piece.rsplit(' ').next().map(str::len), Some(16 * 1024));
    assert!(project_dir(&project).join("logs/brelbig-app-1.log.1").exists(), "rotated");
    project.down();
}

/// Processes running `__supervise` whose standard error is `project`'s supervisor.log and
/// whose parent is not one too (the spawner each supervisor forks shares both).
fn supervisors(project: &Project) -> Vec<i32> {
    let log = project_dir(project).join("supervisor.log");
    let mine = |pid: i32| {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let supervising = cmdline.split(|&b| b == 0).any(|arg| arg == b"__supervise");
        supervising && std::fs::read_link(format!("/proc/{pid}/fd/2")).is_ok_and(|target| target == log)
    };
    let parent = |pid: i32| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok()).unwrap_or(0)
    };
    let all: Vec<i32> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| mine(pid))
        .collect();
    all.iter().copied().filter(|&pid| !all.contains(&parent(pid))).collect()
}

/// The names of `project`'s containers on disk, from their records.
fn containers(project: &Project) -> Vec<String> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(state_root().join("containers")).unwrap().flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path().join("spec.json")) else { continue };
        let spec: serde_json::Value = serde_json::from_str(&text).unwrap();
        if spec["project"] == project.name.as_str() {
            names.push(spec["name"].as_str().unwrap_or_default().to_owned());
        }
    }
    names.sort();
    names
}

fn concurrent_ups(name: &str, services: usize) {
    let sleep = "command: [\"sleep\", \"100000\"]\nstop_signal: SIGKILL";
    let stack: String = (0..services).map(|i| service(&format!("s{i}"), sleep)).collect();
    let project = Project::new(name, &stack);
    let children: Vec<_> = (0..2)
        .map(|_| {
            project
                .command(&["--progress", "plain", "up", "-d"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<_> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    for out in &outputs {
        assert!(
            out.status.success(),
            "both `up -d` succeed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            project.supervisor_log()
        );
    }
    let running = supervisors(&project);
    assert_eq!(running, vec![project.supervisor_pid()], "one supervisor, the recorded one");
    let mut want: Vec<String> = (0..services).map(|i| format!("{name}-s{i}-1")).collect();
    want.sort();
    assert_eq!(containers(&project), want, "every container once");
    for container in &want {
        let pid = project.pid_of(container).unwrap_or_else(|| panic!("{container} has no process"));
        assert!(is_alive(pid), "{container} runs");
    }
    project.down();
    assert_eq!(supervisors(&project), Vec::<i32>::new(), "down leaves no supervisor");
    assert_eq!(containers(&project), Vec::<String>::new(), "down leaves no container");
}

#[test]
fn two_concurrent_ups_of_three_services_make_one_supervisor() {
    concurrent_ups("brelcon3", 3);
}

#[test]
fn two_concurrent_ups_of_ten_services_make_one_supervisor() {
    concurrent_ups("brelcon10", 10);
}

#[test]
fn a_tree_deeper_than_the_descriptor_limit_does_not_stop_down() {
    // 1,500 levels, made one `cd` at a time, with links out of the container on the way; the
    // supervisor and `down` run with 1,000 descriptors, fewer than the levels.
    let script = r#"mkdir /deep && cd /deep && for i in $$(seq 1500); do mkdir d && cd d || exit 1; if [ $$((i % 300)) = 0 ]; then ln -s / root; ln -s /etc/passwd pw; echo x > f; fi; done; touch /made; exec sleep 100000"#;
    let project = Project::new(
        "breldeep",
        &service("app", &format!("command: [\"sh\", \"-c\", {script:?}]\nstop_signal: SIGKILL")),
    );
    let limited = |args: &[&str]| {
        let mut command = project.command(args);
        // SAFETY: setrlimit is async-signal-safe and touches nothing of the parent's.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, || {
                nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, 1000, 1000)
                    .map_err(std::io::Error::from)
            });
        }
        command.output().unwrap()
    };
    let out = limited(&["up", "-d"]);
    assert!(out.status.success(), "up: {}\n{}", String::from_utf8_lossy(&out.stderr), project.supervisor_log());
    project.sh_until("app", "test -e /made && echo made", "made");
    let (ok, levels) = project.sh("app", "find /deep -type d | wc -l");
    assert!(ok && levels.trim() == "1501", "the tree is 1,500 deep: {levels}");
    let supervisor = project.supervisor_pid();
    let limits = std::fs::read_to_string(format!("/proc/{supervisor}/limits")).unwrap();
    let open_files = limits.lines().find(|l| l.starts_with("Max open files")).unwrap_or_default().to_owned();
    assert!(open_files.split_whitespace().any(|w| w == "1000"), "the supervisor runs limited: {open_files}");
    let bridge = bridge_of(&project, "default");
    let out = limited(&["down", "-t", "0"]);
    assert!(out.status.success(), "down: {}\n{}", String::from_utf8_lossy(&out.stderr), project.supervisor_log());
    assert_eq!(containers(&project), Vec::<String>::new(), "the container's directory is gone");
    assert_eq!(supervisors(&project), Vec::<i32>::new());
    assert_eq!(leftovers(&bridge), Vec::<String>::new(), "nothing of the network is left");
    // Nothing deep stayed behind in the pool of spare directories either.
    for entry in std::fs::read_dir(state_root().join("spare")).into_iter().flatten().flatten() {
        let upper = entry.path().join("upper");
        let kept: Vec<_> =
            std::fs::read_dir(&upper).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
        assert!(kept.is_empty(), "{} holds {kept:?}", upper.display());
    }
    assert!(std::path::Path::new("/etc/passwd").exists(), "links were not followed");
}

#[test]
fn a_removal_that_fails_stops_nothing_else_and_a_second_down_finishes() {
    let script = "echo kept > /stuck; touch /made; exec sleep 100000";
    let project = Project::new(
        "brelfail",
        &service("app", &format!("command: [\"sh\", \"-c\", {script:?}]\nstop_signal: SIGKILL")),
    );
    project.up();
    project.sh_until("app", "test -e /made && echo made", "made");
    let id = std::fs::read_dir(state_root().join("containers"))
        .unwrap()
        .flatten()
        .find(|e| std::fs::read_to_string(e.path().join("spec.json")).is_ok_and(|t| t.contains("\"brelfail-app-1\"")))
        .expect("the container's directory")
        .path();
    let stuck = id.join("upper/stuck");
    // An immutable file: not even root can remove it until the flag is cleared.
    let chattr = std::process::Command::new("chattr").arg("+i").arg(&stuck).output().unwrap();
    if !chattr.status.success() {
        panic!("cannot make a file immutable here: {}", String::from_utf8_lossy(&chattr.stderr));
    }
    let bridge = bridge_of(&project, "default");
    let first = project.berth(&["down", "-t", "0"]);
    let said = String::from_utf8_lossy(&first.stderr).into_owned();
    let cleared = std::process::Command::new("chattr").arg("-i").arg(&stuck).output().unwrap();
    assert!(cleared.status.success(), "chattr -i: {}", String::from_utf8_lossy(&cleared.stderr));
    assert_eq!(first.status.code(), Some(1), "the failure is reported: {said}");
    assert!(said.contains("brelfail-app-1"), "the failed container is named: {said}");
    assert_eq!(leftovers(&bridge), Vec::<String>::new(), "the network went anyway");
    assert_eq!(supervisors(&project), Vec::<i32>::new(), "the supervisor went anyway");
    assert_eq!(containers(&project), vec!["brelfail-app-1".to_owned()], "what failed is still recorded");
    let second = project.berth(&["down", "-t", "0"]);
    assert!(second.status.success(), "second down: {}", String::from_utf8_lossy(&second.stderr));
    assert_eq!(containers(&project), Vec::<String>::new(), "the second down finished the job");
    assert!(!id.exists(), "{} is gone", id.display());
}

#[test]
fn the_supervisor_inherits_no_descriptor_of_its_caller_and_is_named_berth() {
    use std::os::unix::process::CommandExt;
    let project = Project::new("brelfds", &service("app", "command: [\"sleep\", \"100000\"]\nstop_signal: SIGKILL"));
    // `flock FILE berth up -d` gives berth an open lock; a supervisor that kept it would hold
    // the lock for the project's life (and deadlock the caller's next `flock FILE berth down`).
    let dir = tempfile::tempdir().unwrap();
    let lock_path = dir.path().join("caller.lock");
    let lock = std::fs::File::create(&lock_path).unwrap();
    let lock_fd = std::os::fd::AsRawFd::as_raw_fd(&lock);
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
    let mut command = project.command(&["up", "-d"]);
    // SAFETY: the closure only clears FD_CLOEXEC on a descriptor of the forked child.
    unsafe { command.pre_exec(move || inherit(lock_fd)) };
    let out = command.output().unwrap();
    assert!(out.status.success(), "up -d: {}", String::from_utf8_lossy(&out.stderr));
    drop(lock);
    let supervisor = project.supervisor_pid();
    let held: Vec<String> = std::fs::read_dir(format!("/proc/{supervisor}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|p| p.display().to_string())
        .filter(|p| p.contains("caller.lock"))
        .collect();
    assert!(held.is_empty(), "the supervisor holds its caller's descriptors: {held:?}");
    let free = std::fs::File::open(&lock_path).unwrap();
    rustix::fs::flock(&free, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        .expect("the caller's lock is free once the caller let it go");
    let comm = std::fs::read_to_string(format!("/proc/{supervisor}/comm")).unwrap();
    assert_eq!(comm.trim(), "berth");
    let cmdline = std::fs::read(format!("/proc/{supervisor}/cmdline")).unwrap();
    assert!(cmdline.starts_with(b"berth\0"), "{:?}", String::from_utf8_lossy(&cmdline));
    project.down();
}

/// Lets `fd` cross the exec, as `flock FILE COMMAND` passes its lock.
fn inherit(fd: i32) -> std::io::Result<()> {
    // SAFETY: clears FD_CLOEXEC on one descriptor of this process; no memory is touched.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// `berth ps -a --format json`, by container name.
fn ps_json(project: &Project) -> std::collections::BTreeMap<String, serde_json::Value> {
    let out = project.berth(&["ps", "-a", "--format", "json"]);
    assert!(out.status.success(), "ps: {}", String::from_utf8_lossy(&out.stderr));
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    list.into_iter().map(|c| (c["Name"].as_str().unwrap().to_owned(), c)).collect()
}

#[test]
fn ps_after_the_supervisor_is_killed_tells_exit_codes_health_and_restarts() {
    let services = [
        service("web", &format!("{IDLE}\nhealthcheck:\n  test: [\"CMD\", \"true\"]\n  interval: 300ms")),
        service("crash", "command: [\"sh\", \"-c\", \"exit 3\"]\nrestart: always"),
        service("once", "command: [\"sh\", \"-c\", \"exit 5\"]"),
    ]
    .concat();
    let project = Project::new("brelps", &services);
    project.up();
    // What the supervisor says, once the health check passed and the crash loop went round.
    let seen = eventually("web healthy, crash restarted twice, once exited", || {
        let all = ps_json(&project);
        let text = format!("{all:#?}");
        let web = all.get("brelps-web-1").ok_or_else(|| text.clone())?;
        let crash = all.get("brelps-crash-1").ok_or_else(|| text.clone())?;
        let once = all.get("brelps-once-1").ok_or_else(|| text.clone())?;
        let restarts = crash["Restarts"].as_u64().unwrap();
        if web["Health"] == "healthy" && restarts >= 2 && once["State"] == "exited" { Ok(restarts) } else { Err(text) }
    });
    let supervisor = project.supervisor_pid();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(supervisor), nix::sys::signal::Signal::SIGKILL).unwrap();
    eventually("the supervisor gone", || if is_alive(supervisor) { Err(supervisor.to_string()) } else { Ok(()) });
    // Now from the records on disk alone.
    let all = ps_json(&project);
    let text = format!("{all:#?}");
    let web = &all["brelps-web-1"];
    assert_eq!(web["State"], "running", "{text}");
    assert_eq!(web["Health"], "healthy", "{text}");
    let crash = &all["brelps-crash-1"];
    assert!(crash["Restarts"].as_u64().unwrap() >= seen, "{seen} restarts seen before: {text}");
    assert_eq!(crash["ExitCode"], 3, "{text}");
    assert_eq!(crash["State"], "exited", "{text}");
    let once = &all["brelps-once-1"];
    assert_eq!((once["State"].as_str(), once["ExitCode"].as_i64()), (Some("exited"), Some(5)), "{text}");
    // The table says the same.
    let out = project.berth(&["ps", "-a"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("Exited (3)") && table.contains("Exited (5)") && table.contains("(healthy)"), "{table}");
    project.down();
}
