//! The project commands built on the supervisor's state, as root: `ls`, `port`, `wait`,
//! `events` and `stats --total`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::BufRead;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use support::*;

/// A service that idles until killed, without a network of its own.
fn idle(name: &str) -> String {
    service(name, &format!("{IDLE}\nnetwork_mode: none\nstop_signal: SIGKILL"))
}

fn ok(project: &Project, args: &[&str]) -> String {
    let out = project.berth(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A background berth command, killed when the test ends however it ends (`events` follows
/// until it is stopped).
struct Background(std::process::Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `berth ls -a --format json`'s entry for `name`.
fn listed(project: &Project, all: bool) -> Option<serde_json::Value> {
    let args: &[&str] = if all { &["ls", "-a", "--format", "json"] } else { &["ls", "--format", "json"] };
    let list: Vec<serde_json::Value> = serde_json::from_str(&ok(project, args)).expect("ls --format json is JSON");
    list.into_iter().find(|p| p["Name"] == project.name.as_str())
}

#[test]
fn ls_shows_a_running_project_with_its_counts_and_stack_file_until_it_goes_down() {
    let _host = HOST_FIREWALL.lock().unwrap_or_else(|e| e.into_inner());
    let project = Project::new("bcmdls", &format!("{}{}", idle("web"), idle("worker")));
    project.up();
    let file = project.file().display().to_string();
    let entry = listed(&project, false).expect("the running project is listed");
    assert_eq!(entry, serde_json::json!({"Name": "bcmdls", "Status": "running(2)", "ConfigFiles": file}));
    let table = ok(&project, &["ls"]);
    assert!(table.starts_with("NAME                STATUS              CONFIG FILES\n"), "{table}");
    let row = table.lines().find(|l| l.starts_with("bcmdls ")).unwrap_or_else(|| panic!("no row: {table}"));
    assert_eq!(row.split_whitespace().collect::<Vec<_>>(), ["bcmdls", "running(2)", file.as_str()]);
    assert!(ok(&project, &["ls", "-q"]).lines().any(|l| l == "bcmdls"));

    // Per-service totals under the container rows.
    let stats = ok(&project, &["stats", "--no-stream", "--total"]);
    for service in ["web", "worker"] {
        let total = stats
            .lines()
            .find(|l| l.split_whitespace().take(2).eq(["total", service]))
            .unwrap_or_else(|| panic!("no total row for {service}:\n{stats}"));
        assert!(total.contains('%') && total.contains(" / "), "{total}");
    }
    assert_eq!(stats.lines().count(), 1 + 2 + 2, "header, two containers, two totals:\n{stats}");

    // A stopped service: only `-a` counts its exited container.
    ok(&project, &["stop", "worker"]);
    assert_eq!(listed(&project, false).unwrap()["Status"], "running(1)");
    assert_eq!(listed(&project, true).unwrap()["Status"], "exited(1), running(1)");
    ok(&project, &["stop"]);
    assert_eq!(listed(&project, false), None, "a stopped project is not running");
    assert_eq!(listed(&project, true).unwrap()["Status"], "exited(2)");

    project.down();
    assert_eq!(listed(&project, true), None, "gone after down");
    assert!(!ok(&project, &["ls", "-a"]).lines().any(|l| l.starts_with("bcmdls ")));
}

#[test]
fn port_prints_the_published_address_and_fails_for_a_port_not_published() {
    let _host = HOST_FIREWALL.lock().unwrap_or_else(|e| e.into_inner());
    let web = service("web", &format!("{}\nports: [\"18123:8080\"]\nstop_signal: SIGKILL", tcp_server(8080, "hi")));
    let project = Project::new("bcmdport", &web);
    project.up();
    assert_eq!(ok(&project, &["port", "web", "8080"]), "0.0.0.0:18123\n");
    assert_eq!(ok(&project, &["port", "--index", "1", "--protocol", "tcp", "web", "8080"]), "0.0.0.0:18123\n");
    for args in [&["port", "web", "9999"][..], &["port", "--protocol", "udp", "web", "8080"]] {
        let out = project.berth(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("no port") && stderr.contains("bcmdport-web-1"), "{stderr}");
        assert!(out.stdout.is_empty());
    }
    let out = project.berth(&["port", "--index", "2", "web", "8080"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no container found for web-2"));
    assert_eq!(project.berth(&["port", "nosuch", "80"]).status.code(), Some(2));
    project.down();
}

#[test]
fn wait_prints_each_exit_code_exits_with_it_and_can_take_the_project_down() {
    let _host = HOST_FIREWALL.lock().unwrap_or_else(|e| e.into_inner());
    let gate = tempfile::tempdir().unwrap();
    let job = service(
        "job",
        &format!(
            "command: [\"sh\", \"-c\", \"while [ ! -e /gate/go ]; do sleep 0.05; done; exit 3\"]\nnetwork_mode: none\nvolumes: [\"{}:/gate\"]",
            gate.path().display()
        ),
    );
    let project = Project::new("bcmdwait", &format!("{job}{}", idle("idle")));
    project.up();
    let list: Vec<serde_json::Value> = serde_json::from_str(&ok(&project, &["ps", "--format", "json"])).unwrap();
    let id = list.iter().find(|c| c["Service"] == "job").expect("job runs")["ID"].as_str().unwrap().to_owned();
    let waiting = project.command(&["wait", "job"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // The job is let go once `wait` runs; whether it saw the job running or already exited,
    // the answer is the same.
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(gate.path().join("go"), "").unwrap();
    let out = waiting.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("container \"{id}\" exited with status code 3\n"),
        "{stderr}"
    );
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(project.pid_of("bcmdwait-idle-1").is_some(), "wait leaves the project up");

    // Already exited: answered at once; --down-project then takes the project down.
    let out = project.berth(&["wait", "--down-project", "job"]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("container \"{id}\" exited with status code 3\n"));
    assert!(project.pid_of("bcmdwait-idle-1").is_none(), "the project is down");
    let out = project.berth(&["wait", "job"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no containers for project \"bcmdwait\""));
    assert_eq!(project.berth(&["wait", "nosuch"]).status.code(), Some(2));
}

#[test]
fn events_stream_start_and_die_with_the_exit_code_as_compose_prints_them() {
    let _host = HOST_FIREWALL.lock().unwrap_or_else(|e| e.into_inner());
    let job = service("job", "command: [\"sh\", \"-c\", \"sleep 0.2; exit 5\"]\nnetwork_mode: none");
    let project = Project::new("bcmdevents", &format!("{job}{}", idle("idle")));
    // Events from an earlier run of this test are older than this.
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs().to_string();
    let mut follow = Background(
        project
            .command(&["events", "--json", "--since", &since])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (tx, rx) = mpsc::channel();
    let stdout = follow.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let mut seen: Vec<serde_json::Value> = Vec::new();
    let next_until = |seen: &mut Vec<serde_json::Value>, done: &dyn Fn(&serde_json::Value) -> bool| loop {
        // Generous: a missing event fails the test rather than hanging it.
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| panic!("no more events; saw {seen:#?}"));
        let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        seen.push(event.clone());
        if done(&event) {
            return;
        }
    };
    project.up();
    next_until(&mut seen, &|e| e["action"] == "die" && e["service"] == "job");
    let die = seen.last().unwrap().clone();
    assert_eq!(die["type"], "container");
    assert_eq!(die["attributes"]["exitCode"], "5");
    assert_eq!(die["attributes"]["name"], "bcmdevents-job-1");
    assert_eq!(die["attributes"]["image"], IMAGE);
    let id = die["id"].as_str().unwrap();
    let actions: Vec<&str> = seen.iter().filter(|e| e["id"] == id).map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["create", "start", "die"], "{seen:#?}");
    assert!(seen.iter().any(|e| e["service"] == "idle" && e["action"] == "start"), "{seen:#?}");
    let time = die["time"].as_str().unwrap();
    assert!(time.contains('T') && (time.ends_with('Z') || time.contains('+') || time.rfind('-') > Some(10)), "{time}");
    let keys: Vec<&String> = die.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["action", "attributes", "id", "service", "time", "type"], "Go's map order");

    // down: the running container is stopped, then every container destroyed.
    project.down();
    next_until(&mut seen, &|e| e["action"] == "destroy" && e["service"] == "idle");
    let idle: Vec<&str> =
        seen.iter().filter(|e| e["service"] == "idle").map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(idle, ["create", "start", "die", "stop", "destroy"], "{seen:#?}");
    drop(follow);

    // Plain lines, read back from the file for a past window, and only the service asked for.
    let until = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let plain = ok(&project, &["events", "--since", &since, "--until", &format!("{until:.3}"), "job"]);
    let die_line =
        plain.lines().find(|l| l.contains(" container die ")).unwrap_or_else(|| panic!("no die line:\n{plain}"));
    assert!(
        die_line.ends_with(&format!(
            " container die {id} (execDuration={}, exitCode=5, image={IMAGE}, name=bcmdevents-job-1)",
            die["attributes"]["execDuration"].as_str().unwrap()
        )),
        "{die_line}"
    );
    let stamp = &die_line[..26];
    assert!(stamp.as_bytes()[10] == b' ' && stamp.as_bytes()[19] == b'.', "2006-01-02 15:04:05.000000: {stamp}");
    assert!(plain.lines().all(|l| !l.contains("bcmdevents-idle-1")), "only job's events:\n{plain}");
}
