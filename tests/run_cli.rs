//! compose's `run` and `exec` flags, as root, through the berth binary: dependencies started
//! first (and not with `--no-deps`), `-d`, `-p` answered on the host's loopback, `-v`, and
//! `run -it` / `exec -it` under a pseudo-terminal; `version`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::Command;

use support::*;

fn ok(project: &Project, args: &[&str]) -> String {
    let out = project.berth(args);
    assert!(out.status.success(), "{args:?}: {}\n{}", String::from_utf8_lossy(&out.stderr), project.supervisor_log());
    String::from_utf8(out.stdout).unwrap()
}

/// The names of the project's containers that run, from `ps --format json`.
fn running(project: &Project) -> Vec<String> {
    let text = ok(project, &["ps", "--format", "json"]);
    let rows: Vec<serde_json::Value> = if text.trim_start().starts_with('[') {
        serde_json::from_str(&text).unwrap()
    } else {
        text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    rows.iter().filter(|r| r["State"] == "running").map(|r| r["Name"].as_str().unwrap().to_owned()).collect()
}

fn app_with_db(name: &str) -> Project {
    Project::new(name, &format!("{}{}", service("db", IDLE), service("app", "depends_on: [db]\ncommand: [\"true\"]")))
}

#[test]
fn run_starts_the_dependencies_first_and_no_deps_does_not() {
    let project = app_with_db("berth-run-deps");
    let out = ok(&project, &["run", "--rm", "app", "sh", "-c", "echo from-app"]);
    assert_eq!(out.trim(), "from-app");
    assert_eq!(running(&project), vec!["berth-run-deps-db-1".to_owned()], "run started its dependency");
    project.down();

    let project = app_with_db("berth-run-nodeps");
    let out = ok(&project, &["run", "--rm", "--no-deps", "app", "sh", "-c", "echo alone"]);
    assert_eq!(out.trim(), "alone");
    assert!(running(&project).is_empty(), "--no-deps started {:?}", running(&project));
}

#[test]
fn run_detached_prints_the_name_and_keeps_the_container_running() {
    let project = Project::new("berth-run-detach", &service("app", IDLE));
    let out = ok(&project, &["run", "-d", "--no-deps", "--name", "berth-run-detach-one", "app"]);
    assert_eq!(out.trim(), "berth-run-detach-one");
    let pid = project.pid_of("berth-run-detach-one").expect("the detached container runs");
    assert!(is_alive(pid), "its process {pid} is gone");
    let out = ok(&project, &["ps", "-a", "--format", "json"]);
    assert!(out.contains("berth-run-detach-one"), "ps -a does not list it: {out}");
    let out = ok(&project, &["ps", "--filter", "status=running", "--no-trunc"]);
    assert!(out.contains("berth-run-detach-one"), "ps --filter status=running: {out}");
    assert!(out.contains("while :; do sleep 0.1; done"), "ps --no-trunc cut the command: {out}");
    let out = ok(&project, &["ps", "--filter", "status=exited"]);
    assert!(!out.contains("berth-run-detach-one"), "ps --filter status=exited lists a running one: {out}");
    let bad = project.berth(&["ps", "--filter", "name=x"]);
    assert_eq!(bad.status.code(), Some(2), "an unknown ps filter is bad input");
    // `-p NAME down` with no stack file finds the project by its name, as compose does.
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("--root")
        .arg(state_root())
        .args(["-p", "berth-run-detach", "down", "-t", "0"])
        .current_dir("/")
        .output()
        .unwrap();
    assert!(out.status.success(), "-p NAME down: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("berth-run-detach-one"), "down did not remove it");
    assert!(!is_alive(pid), "down left the detached one-off running");
}

#[test]
fn run_publish_is_answered_on_the_host_loopback() {
    let port = 18_931;
    let project = Project::new("berth-run-publish", &service("app", "ports: [\"18932:9000\"]"));
    let server = ["nc", "-ll", "-p", "8080", "-e", "echo", "from-run"];
    let mut args = vec!["run", "-d", "-p", "127.0.0.1:18931:8080", "app"];
    args.extend(server);
    ok(&project, &args);
    assert_eq!(read_tcp(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).trim(), "from-run");
    // Without -P the service's own ports stay unpublished, as in compose.
    assert!(
        std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, 18_932)).is_err(),
        "run published the service's ports without -P"
    );
    project.down();
}

#[test]
fn run_volume_binds_a_host_directory() {
    let project = Project::new("berth-run-volume", &service("app", "network_mode: none"));
    std::fs::write(project.dir().join("note.txt"), "written on the host\n").unwrap();
    let out = ok(&project, &["run", "--rm", "-v", "./:/mnt/host:ro", "app", "cat", "/mnt/host/note.txt"]);
    assert_eq!(out.trim(), "written on the host");
    let out = project.berth(&["run", "--rm", "-v", ".:/mnt/host:ro", "app", "touch", "/mnt/host/x"]);
    assert!(!out.status.success(), "a :ro bind was writable");
}

/// Runs `command` under a pseudo-terminal (util-linux `script`), feeding it `input`.
fn under_pty(command: &[String], input: &str) -> String {
    let line = shell_words::join(command);
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs commands under a pty");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{line}: {text}");
    text
}

fn berth_line(project: &Project, args: &[&str]) -> Vec<String> {
    let mut line = vec![
        env!("CARGO_BIN_EXE_berth").to_owned(),
        "--root".into(),
        state_root().display().to_string(),
        "-f".into(),
        project.file().display().to_string(),
    ];
    line.extend(args.iter().map(|s| (*s).to_owned()));
    line
}

#[test]
fn run_it_and_exec_it_work_under_a_terminal() {
    let project = Project::new("berth-run-tty", &service("app", &format!("{IDLE}\nnetwork_mode: none")));
    let text = under_pty(
        &berth_line(&project, &["run", "-it", "--rm", "app", "sh", "-c", "tty; read x; echo got-$x"]),
        "hello\n",
    );
    assert!(text.contains("/dev/pts/"), "run -it: no terminal in the container: {text}");
    assert!(text.contains("got-hello"), "run -it: stdin did not reach the container: {text}");
    project.up();
    let text =
        under_pty(&berth_line(&project, &["exec", "-it", "app", "sh", "-c", "tty; read x; echo got-$x"]), "again\n");
    assert!(text.contains("/dev/pts/"), "exec -it: no terminal in the container: {text}");
    assert!(text.contains("got-again"), "exec -it: stdin did not reach the container: {text}");
    // -t without a terminal on stdin still gives the process one.
    let out = ok(&project, &["exec", "-t", "app", "tty"]);
    assert!(out.contains("/dev/pts/"), "exec -t without a terminal: {out}");
}

#[test]
fn version_has_compose_forms() {
    let berth = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_berth")).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(berth(&["version"]), format!("berth version v{version}\n"));
    assert_eq!(berth(&["version", "--short"]), format!("{version}\n"));
    let json: serde_json::Value = serde_json::from_str(&berth(&["version", "--format", "json"])).unwrap();
    assert_eq!(json["version"], format!("v{version}"));
    let out = Command::new(env!("CARGO_BIN_EXE_berth")).args(["run", "--no-such-flag", "app"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "a bad flag exits 2");
    assert!(String::from_utf8_lossy(&out.stderr).contains("unexpected argument '--no-such-flag'"));
}

#[test]
fn logs_since_and_until_take_rfc3339() {
    let project = Project::new(
        "berth-run-logs",
        &service("app", "network_mode: none\ncommand: [\"sh\", \"-c\", \"echo logged-line; sleep 100\"]"),
    );
    project.up();
    let mut all = String::new();
    for _ in 0..100 {
        all = ok(&project, &["logs", "--no-log-prefix"]);
        if all.contains("logged-line") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(all.contains("logged-line"), "the line never reached the log: {all:?}");
    let since = ok(&project, &["logs", "--no-log-prefix", "--since", "2000-01-01T00:00:00Z"]);
    assert!(since.contains("logged-line"), "--since in RFC 3339 hid a later line: {since:?}");
    let until = ok(&project, &["logs", "--no-log-prefix", "--until", "2000-01-01T00:00:00Z"]);
    assert!(!until.contains("logged-line"), "--until in RFC 3339 showed a later line: {until:?}");
    let later = ok(&project, &["logs", "--no-log-prefix", "--until", "2999-01-01T00:00:00Z"]);
    assert!(later.contains("logged-line"), "--until in the future hid the line: {later:?}");
    project.down();
}
