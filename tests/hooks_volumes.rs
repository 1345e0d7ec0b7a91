//! Lifecycle hooks, `volumes_from` and local volumes' `driver_opts` (issue 19), as root with
//! real containers: a `post_start` hook's file is there for the service and its dependents, a
//! `pre_stop` hook runs on stop, restart and down (not on kill), failing hooks fail their order
//! as compose's do; `volumes_from` shares every volume and bind, read-only or writable; a
//! bound volume is its host directory, a tmpfs volume has its size, and an nfs volume is
//! refused with its file, line and key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;

use support::*;

fn ok(project: &Project, args: &[&str]) -> String {
    let out = project.berth(args);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "berth {args:?}: {text}\n{}", project.supervisor_log());
    text
}

fn fails(project: &Project, args: &[&str]) -> String {
    let out = project.berth(args);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "berth {args:?} should fail: {text}");
    text
}

fn state_of(project: &Project, name: &str) -> String {
    let out = project.berth(&["ps", "-a", "--format", "json"]);
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("ps --format json is JSON");
    list.iter().find(|c| c["Name"] == name).map(|c| c["State"].as_str().unwrap_or("").to_owned()).unwrap_or_default()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn post_start_runs_before_dependents_and_pre_stop_before_each_stop() {
    let hooked = service(
        "app",
        &format!(
            r#"{IDLE}
user: "1000"
environment: {{BASE: base}}
volumes: ["./shared:/shared"]
post_start:
  - command: ["sh", "-c", "sleep 1; echo \"$$HOOK $$BASE $$(id -u) $$(pwd)\" > /tmp/started; echo start >> /shared/log"]
    user: root
    working_dir: /etc
    environment: {{HOOK: hooked}}
  - command: ["sh", "-c", "grep CapEff /proc/self/status > /tmp/caps"]
    user: root
  - command: ["sh", "-c", "grep CapEff /proc/self/status > /tmp/caps-privileged"]
    user: root
    privileged: true
pre_stop:
  - command: ["sh", "-c", "echo stop >> /shared/log"]
    user: root
"#
        ),
    );
    let dependent = service(
        "after",
        &format!(
            r#"{IDLE}
depends_on: [app]
volumes: ["./shared:/shared"]
entrypoint: ["sh", "-c", "cp /shared/log /shared/seen-by-dependent; exec \"$$@\"", "--"]
"#
        ),
    );
    let project = Project::new("berth-hooks", &format!("{hooked}{dependent}"));
    std::fs::create_dir(project.dir().join("shared")).unwrap();
    let log = project.dir().join("shared/log");
    ok(&project, &["up", "-d"]);
    // The hook ran as its own user, in its own directory, with its environment over the
    // service's.
    let (_, started) = project.sh("app", "cat /tmp/started");
    assert_eq!(started.trim(), "hooked base 0 /etc", "post_start's file as the service sees it");
    // `privileged` gives the hook every capability the kernel has.
    let caps = |file: &str| {
        let (_, text) = project.sh("app", &format!("cat {file}"));
        let hex = text.split_whitespace().nth(1).unwrap_or_else(|| panic!("{file}: {text}")).to_owned();
        u64::from_str_radix(&hex, 16).unwrap_or_else(|e| panic!("{file}: {text}: {e}"))
    };
    let (plain, privileged) = (caps("/tmp/caps"), caps("/tmp/caps-privileged"));
    assert!(plain & privileged == plain && privileged != plain, "plain {plain:x}, privileged {privileged:x}");
    assert_ne!(privileged & (1 << 21), 0, "CAP_SYS_ADMIN when privileged: {privileged:x}");
    // The dependent started after the hooks, the first of which slept.
    assert_eq!(read(&project.dir().join("shared/seen-by-dependent")), "start\n");
    assert_eq!(read(&log), "start\n");

    ok(&project, &["stop", "app"]);
    assert_eq!(read(&log), "start\nstop\n", "pre_stop runs on stop");
    ok(&project, &["start", "app"]);
    assert_eq!(read(&log), "start\nstop\nstart\n", "post_start runs on start");
    ok(&project, &["restart", "app"]);
    assert_eq!(read(&log), "start\nstop\nstart\nstop\nstart\n", "restart runs both");
    ok(&project, &["kill", "app"]);
    for _ in 0..400 {
        if state_of(&project, "berth-hooks-app-1") == "exited" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(state_of(&project, "berth-hooks-app-1"), "exited");
    assert_eq!(read(&log), "start\nstop\nstart\nstop\nstart\n", "kill runs no pre_stop");
    ok(&project, &["start", "app"]);
    ok(&project, &["down", "-t", "1"]);
    assert_eq!(read(&log), "start\nstop\nstart\nstop\nstart\nstart\nstop\n", "down runs pre_stop");
}

#[test]
fn failing_hooks_fail_their_order_as_compose_does() {
    let bad = service(
        "bad",
        &format!(
            r#"{IDLE}
post_start:
  - command: ["sh", "-c", "echo failing; exit 3"]
  - command: ["touch", "/tmp/never"]
"#
        ),
    );
    let dependent = service("dependent", &format!("{IDLE}\ndepends_on: [bad]\n"));
    let project = Project::new("berth-hookfail", &format!("{bad}{dependent}"));
    let text = fails(&project, &["up", "-d"]);
    assert!(text.contains("service \"bad\": post_start hook exited with status 3"), "{text}");
    // berth's failed `up` leaves nothing half-made: the dependent never started.
    assert_ne!(state_of(&project, "berth-hookfail-dependent-1"), "running", "{text}");

    let stopper = service(
        "stopper",
        &format!(
            r#"{IDLE}
pre_stop:
  - command: ["sh", "-c", "exit 4"]
"#
        ),
    );
    project.rewrite(&stopper);
    ok(&project, &["up", "-d", "--remove-orphans"]);
    let text = fails(&project, &["stop"]);
    assert!(text.contains("service \"stopper\": pre_stop hook exited with status 4"), "{text}");
    assert_eq!(state_of(&project, "berth-hookfail-stopper-1"), "running", "a failed pre_stop stops nothing");
    let text = fails(&project, &["down", "-t", "1"]);
    assert!(text.contains("pre_stop hook exited with status 4"), "{text}");
    assert_eq!(state_of(&project, "berth-hookfail-stopper-1"), "running", "nor does down");
    // An exited container runs no pre_stop: kill, then down.
    ok(&project, &["kill", "stopper"]);
    for _ in 0..400 {
        if state_of(&project, "berth-hookfail-stopper-1") != "running" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    ok(&project, &["down", "-t", "1"]);
}

#[test]
fn volumes_from_shares_every_volume_read_only_or_writable() {
    let source = service(
        "src",
        &format!(
            r#"{IDLE}
volumes: ["named:/named", "/anon", "./data:/bind"]
tmpfs: ["/private"]
"#
        ),
    );
    let reader = service("reader", &format!("{IDLE}\nvolumes_from: [\"src:ro\"]\n"));
    let writer = service("writer", &format!("{IDLE}\nvolumes_from: [src]\n"));
    let project = Project::new("berth-volfrom", &format!("{source}{reader}{writer}volumes:\n  named:\n"));
    std::fs::create_dir(project.dir().join("data")).unwrap();
    std::fs::write(project.dir().join("data/f"), "from the host\n").unwrap();
    ok(&project, &["up", "-d"]);
    let (written, text) = project.sh("src", "echo n > /named/n && echo a > /anon/a");
    assert!(written, "{text}");

    let (read_ok, text) = project.sh("reader", "cat /named/n /anon/a /bind/f");
    assert!(read_ok, "{text}");
    assert_eq!(text, "n\na\nfrom the host\n");
    for target in ["/named", "/anon", "/bind"] {
        let (wrote, text) = project.sh("reader", &format!("touch {target}/x"));
        assert!(!wrote && text.contains("Read-only file system"), "{target} is writable with :ro: {text}");
    }
    let (private, _) = project.sh("reader", "test -d /private");
    assert!(!private, "a tmpfs is not shared");

    let (wrote, text) = project.sh("writer", "echo w > /named/w && echo w > /anon/w && echo w > /bind/w");
    assert!(wrote, "{text}");
    assert_eq!(project.sh("src", "cat /named/w /anon/w").1, "w\nw\n");
    assert_eq!(read(&project.dir().join("data/w")), "w\n");

    // `container:` names any container, here with :rw.
    let by_name = service("byname", &format!("{IDLE}\nvolumes_from: [\"container:berth-volfrom-src-1:rw\"]\n"));
    project.rewrite(&format!("{source}{reader}{writer}{by_name}volumes:\n  named:\n"));
    ok(&project, &["up", "-d"]);
    let (wrote, text) = project.sh("byname", "cat /named/n && touch /named/by-name");
    assert!(wrote, "{text}");
    ok(&project, &["down", "-v", "-t", "1"]);
}

#[test]
fn driver_opts_bind_a_host_directory_size_a_tmpfs_and_refuse_nfs() {
    let user = service(
        "user",
        &format!(
            r#"{IDLE}
volumes: ["bound:/bound", "scratch:/scratch"]
"#
        ),
    );
    let volumes = "volumes:
  bound:
    name: berth-driver-opts-bound
    driver_opts: {type: none, o: bind, device: ./data}
  scratch:
    driver_opts: {type: tmpfs, o: size=5m, device: tmpfs}
";
    let project = Project::new("berth-drvopts", &format!("{user}{volumes}"));
    std::fs::create_dir(project.dir().join("data")).unwrap();
    std::fs::write(project.dir().join("data/f"), "host data\n").unwrap();
    ok(&project, &["up", "-d"]);
    assert_eq!(project.sh("user", "cat /bound/f").1, "host data\n");
    let (wrote, text) = project.sh("user", "echo from-container > /bound/g");
    assert!(wrote, "{text}");
    assert_eq!(read(&project.dir().join("data/g")), "from-container\n", "writes land in ./data");
    let listed = ok(&project, &["volume", "ls", "-q"]);
    assert!(listed.lines().any(|l| l == "berth-driver-opts-bound"), "name: is honoured: {listed}");
    let (_, df) = project.sh("user", "df -k /scratch | tail -n 1");
    let total: Vec<&str> = df.split_whitespace().collect();
    assert_eq!(total.get(1), Some(&"5120"), "a 5 MiB tmpfs: {df}");
    ok(&project, &["down", "-v", "-t", "1"]);
    assert_eq!(read(&project.dir().join("data/f")), "host data\n", "down -v leaves the host directory alone");

    let nfs_volumes = "volumes:
  bound:
    driver_opts:
      type: nfs
      o: addr=127.0.0.1,rw
      device: \":/export\"
  scratch:
";
    project.rewrite(&format!("{user}{nfs_volumes}"));
    let text = fails(&project, &["up", "-d"]);
    let line = format!("compose.yaml:{}", 2 + user.lines().count() + 4);
    assert!(text.contains(&line), "names the line of type ({line}): {text}");
    assert!(text.contains("volumes.bound.driver_opts.type") && text.contains("\"nfs\""), "{text}");
    assert_eq!(state_of(&project, "berth-drvopts-user-1"), "", "no container was made");
    let volumes = ok(&project, &["volume", "ls", "-q"]);
    assert!(!volumes.lines().any(|v| v.starts_with("berth-drvopts_")), "no volume was made: {volumes}");
    // `config` shows it as written, as compose does.
    ok(&project, &["config"]);
}

#[test]
fn an_attached_up_shows_hook_output_and_ctrl_c_runs_pre_stop() {
    let app = service(
        "app",
        &format!(
            r#"{IDLE}
volumes: ["./shared:/shared"]
post_start:
  - command: ["sh", "-c", "echo hook says hello; echo and to stderr >&2"]
pre_stop:
  - command: ["sh", "-c", "echo stop >> /shared/log"]
"#
        ),
    );
    let project = Project::new("berth-hookattach", &app);
    std::fs::create_dir(project.dir().join("shared")).unwrap();
    let mut up = project.command(&["up", "--no-color"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let stdout = up.stdout.take().unwrap();
    // A guard, not a timing assertion: should the lines never come, `up` is interrupted after a
    // minute so the reader below meets EOF and the test fails with what was printed.
    let (done, guard) = std::sync::mpsc::channel::<()>();
    let pid = nix::unistd::Pid::from_raw(i32::try_from(up.id()).unwrap());
    let watchdog = std::thread::spawn(move || {
        if guard.recv_timeout(std::time::Duration::from_secs(60)).is_err() {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::SIGINT);
        }
    });
    // Lines as they come, until both hook lines were shown (the reader ends at EOF if `up`
    // ends first, and the assertion below then shows what was printed).
    let mut seen = Vec::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
        let Ok(line) = line else { break };
        seen.push(line);
        let shown = |text: &str| seen.iter().any(|l| l.starts_with("app-1 ->") && l.ends_with(text));
        if shown("| hook says hello") && shown("| and to stderr") {
            break;
        }
    }
    let _ = done.send(());
    watchdog.join().unwrap();
    assert!(seen.iter().any(|l| l.starts_with("app-1 ->") && l.ends_with("| hook says hello")), "{seen:?}");
    assert!(seen.iter().any(|l| l.starts_with("app-1 ->") && l.ends_with("| and to stderr")), "{seen:?}");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(i32::try_from(up.id()).unwrap()), nix::sys::signal::SIGINT)
        .unwrap();
    let status = up.wait().unwrap();
    assert_eq!(status.code(), Some(130), "compose's status after Ctrl-C");
    assert_eq!(read(&project.dir().join("shared/log")), "stop\n", "Ctrl-C runs pre_stop");
    let logs = ok(&project, &["logs"]);
    assert!(!logs.contains("hook says hello"), "`logs` leaves hook output out, as compose's does: {logs}");
    ok(&project, &["down", "-t", "1"]);
}
