//! The project lifecycle under the supervisor, as root: depends_on conditions with health
//! checks, `up --wait`, restart policies, and `ps`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::*;

/// `berth ps -a --format json`, parsed.
fn ps(project: &Project) -> Vec<serde_json::Value> {
    let out = project.berth(&["ps", "-a", "--format", "json"]);
    assert!(out.status.success(), "ps: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("ps --format json is JSON")
}

fn container<'a>(list: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    list.iter().find(|c| c["Name"] == name).unwrap_or_else(|| panic!("no {name} in {list:?}"))
}

#[test]
fn up_wait_starts_a_healthy_db_then_a_migration_then_the_api_and_ps_shows_it() {
    let _host = HOST_FIREWALL.lock().unwrap_or_else(|e| e.into_inner());
    let db = service(
        "db",
        r#"command: ["sh", "-c", "sleep 0.5; touch /tmp/ready; exec sleep 100000"]
healthcheck:
  test: ["CMD", "test", "-f", "/tmp/ready"]
  interval: 30s"#,
    );
    let migrate = service(
        "migrate",
        r#"command: ["sh", "-c", "sleep 0.2; echo migrated"]
depends_on:
  db: {condition: service_healthy}"#,
    );
    let api = service(
        "api",
        &format!(
            "{IDLE}\ndepends_on:\n  db: {{condition: service_healthy}}\n  migrate: {{condition: service_completed_successfully}}"
        ),
    );
    let project = Project::new("blifeorder", &format!("{db}{migrate}{api}"));
    let out = project.berth(&["up", "-d", "--wait"]);
    assert!(out.status.success(), "up --wait: {}\n{}", String::from_utf8_lossy(&out.stderr), project.supervisor_log());
    let list = ps(&project);
    let (db, migrate, api) = (
        container(&list, "blifeorder-db-1"),
        container(&list, "blifeorder-migrate-1"),
        container(&list, "blifeorder-api-1"),
    );
    assert_eq!((db["State"].as_str(), db["Health"].as_str()), (Some("running"), Some("healthy")));
    assert_eq!((migrate["State"].as_str(), migrate["ExitCode"].as_i64()), (Some("exited"), Some(0)));
    assert_eq!(api["State"], "running");
    let at = |c: &serde_json::Value, key: &str| c[key].as_u64().unwrap();
    assert!(at(db, "StartedAt") < at(migrate, "StartedAt"), "db before migrate");
    assert!(at(migrate, "FinishedAt") <= at(api, "StartedAt"), "the api after the migration finished");
    // The migration waited for db's health, which takes the half second db sleeps.
    assert!(at(migrate, "StartedAt") - at(db, "StartedAt") >= 500_000_000, "{db} {migrate}");
    let table = String::from_utf8(project.berth(&["ps"]).stdout).unwrap();
    assert!(table.contains("(healthy)") && !table.contains("migrate"), "ps hides exited containers:\n{table}");
}

#[test]
fn an_unhealthy_dependency_fails_up_with_its_name_and_its_last_probe_output() {
    let _host = HOST_FIREWALL.lock().unwrap_or_else(|e| e.into_inner());
    let db = service(
        "db",
        &format!(
            "{IDLE}\nhealthcheck:\n  test: [\"CMD-SHELL\", \"echo not accepting connections; exit 1\"]\n  interval: 1s\n  retries: 1"
        ),
    );
    let api = service("api", &format!("{IDLE}\ndepends_on:\n  db: {{condition: service_healthy}}"));
    let project = Project::new("blifeunhealthy", &format!("{db}{api}"));
    let out = project.berth(&["up", "-d"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("\"db\"") && stderr.contains("unhealthy") && stderr.contains("not accepting connections"),
        "{stderr}"
    );
    assert!(project.pid_of("blifeunhealthy-db-1").is_none(), "a failed up removes what it started");
}

#[test]
fn on_failure_gives_up_after_its_retries_and_no_stays_down() {
    let _host = HOST_FIREWALL.lock().unwrap_or_else(|e| e.into_inner());
    let flaky = service("flaky", "command: [\"sh\", \"-c\", \"exit 3\"]\nrestart: on-failure:2");
    let once = service("once", "command: [\"sh\", \"-c\", \"exit 4\"]\nrestart: \"no\"");
    let project = Project::new("blifepolicy", &format!("{flaky}{once}{}", service("idle", IDLE)));
    project.up();
    let mut list = ps(&project);
    for _ in 0..200 {
        if container(&list, "blifepolicy-flaky-1")["State"] == "exited" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
        list = ps(&project);
    }
    let flaky = container(&list, "blifepolicy-flaky-1");
    assert_eq!(
        (flaky["State"].as_str(), flaky["ExitCode"].as_i64(), flaky["Restarts"].as_u64()),
        (Some("exited"), Some(3), Some(2))
    );
    let once = container(&list, "blifepolicy-once-1");
    assert_eq!(
        (once["State"].as_str(), once["ExitCode"].as_i64(), once["Restarts"].as_u64()),
        (Some("exited"), Some(4), Some(0))
    );
    // docker's back-off: 100 ms before the first restart, 200 ms before the second.
    let starts: Vec<u64> = flaky["Starts"].as_array().unwrap().iter().map(|t| t.as_u64().unwrap()).collect();
    assert_eq!(starts.len(), 3, "{flaky}");
    assert!(starts[1] - starts[0] >= 100_000_000, "{starts:?}");
    assert!(starts[2] - starts[1] >= 200_000_000, "{starts:?}");
}

#[test]
fn down_stops_dependents_before_their_dependencies_each_with_its_stop_signal() {
    let _host = HOST_FIREWALL.lock().unwrap_or_else(|e| e.into_inner());
    let shared = tempfile::tempdir().unwrap();
    let dir = shared.path().display();
    let on_signal = |name: &str, signal: &str| {
        format!(
            "command: [\"sh\", \"-c\", \"trap 'echo {name} >> /order/stopped; exit 0' {signal}; while :; do sleep 0.05; done\"]\nvolumes: [\"{dir}:/order\"]"
        )
    };
    let db = service("db", &format!("{}\nstop_signal: SIGUSR1", on_signal("db", "USR1")));
    let api = service("api", &format!("{}\ndepends_on: [db]", on_signal("api", "TERM")));
    let project = Project::new("blifestop", &format!("{db}{api}"));
    project.up();
    let out = project.berth(&["down"]);
    assert!(out.status.success(), "down: {}", String::from_utf8_lossy(&out.stderr));
    let order = std::fs::read_to_string(shared.path().join("stopped")).unwrap();
    assert_eq!(order, "api\ndb\n", "the dependent first, each on its own stop signal");
}

#[test]
fn logs_follow_a_service_across_its_restarts() {
    use std::io::BufRead;
    let _host = HOST_FIREWALL.lock().unwrap_or_else(|e| e.into_inner());
    let ticker = service(
        "ticker",
        "command: [\"sh\", \"-c\", \"echo run-$$$$-out; echo run-err >&2; sleep 0.2; exit 1\"]\nrestart: always",
    );
    let project = Project::new("blifelogs", &ticker);
    project.up();
    let mut follow =
        project.command(&["logs", "-f", "--no-color", "ticker"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let reader = std::io::BufReader::new(follow.stdout.take().unwrap());
    let mut runs = 0;
    let mut seen = Vec::new();
    for line in reader.lines() {
        let line = line.unwrap();
        assert!(line.starts_with("ticker-1 | "), "compose's prefix: {line:?}");
        if line.ends_with("-out") {
            runs += 1;
        }
        seen.push(line);
        if runs == 3 {
            break;
        }
    }
    let _ = follow.kill();
    let _ = follow.wait();
    assert_eq!(runs, 3, "three runs followed: {seen:?}");
    assert!(seen.iter().any(|l| l.ends_with("run-err")), "stderr is captured too: {seen:?}");
    let out = project.berth(&["logs", "--tail", "1", "-t", "--no-color", "ticker"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 1, "{text}");
    let stamp = text.trim_start_matches("ticker-1 | ").split(' ').next().unwrap();
    assert!(stamp.ends_with('Z') && stamp.contains('T'), "an RFC 3339 time: {text}");
}

#[test]
fn attached_up_with_exit_code_from_exits_with_that_services_code_and_leaves_nothing() {
    let _host = HOST_FIREWALL.lock().unwrap_or_else(|e| e.into_inner());
    let job = service("job", "command: [\"sh\", \"-c\", \"echo working; sleep 0.3; exit 7\"]");
    let project = Project::new("blifeabort", &format!("{job}{}", service("idle", IDLE)));
    let out = project.berth(&["up", "--abort-on-container-exit", "--exit-code-from", "job", "--no-color"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(7), "stdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("Attaching to") && stdout.contains("job-1  | working"), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Aborting on container exit"));
    assert!(project.pid_of("blifeabort-idle-1").is_none(), "the other container was stopped");
    // Stopped and kept, with the network, as compose leaves them; `down` takes everything.
    project.down();
    assert!(leftovers("berth blifeabort ").is_empty());
}

#[test]
fn ctrl_c_stops_an_attached_up_gracefully() {
    use std::io::BufRead;
    let _host = HOST_FIREWALL.lock().unwrap_or_else(|e| e.into_inner());
    let web = service(
        "web",
        "command: [\"sh\", \"-c\", \"trap 'echo bye; exit 0' TERM; echo ready; while :; do sleep 0.05; done\"]",
    );
    let project = Project::new("blifectrlc", &web);
    let mut up = project.command(&["up", "--no-color"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut lines = std::io::BufReader::new(up.stdout.take().unwrap()).lines();
    let ready = lines.by_ref().map(Result::unwrap).find(|l| l.ends_with("| ready"));
    assert!(ready.is_some(), "the container's output is attached");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(up.id()).unwrap()),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let status = up.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(rest.iter().any(|l| l.ends_with("| bye")), "the container got its stop signal: {rest:?}");
    assert!(project.pid_of("blifectrlc-web-1").is_none());
    project.down();
    assert!(leftovers("berth blifectrlc ").is_empty());
}

#[test]
fn stop_start_and_restart_act_on_the_named_services_only() {
    let _host = HOST_FIREWALL.lock().unwrap_or_else(|e| e.into_inner());
    let trapping = r#"command: ["sh", "-c", "trap 'exit 0' TERM; echo trapping; while :; do sleep 0.1; done"]"#;
    let project = Project::new("blifestopstart", &format!("{}{}", service("web", trapping), service("db", IDLE)));
    project.up();
    // A TERM before the trap is set would end the shell with 143, not 0.
    let mut logs = String::new();
    for _ in 0..200 {
        logs = String::from_utf8_lossy(&project.berth(&["logs", "web"]).stdout).into_owned();
        if logs.contains("trapping") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(logs.contains("trapping"), "web never set its trap: {logs:?}");
    let ok = |args: &[&str]| {
        let out = project.berth(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    ok(&["stop", "web"]);
    let list = ps(&project);
    let web = container(&list, "blifestopstart-web-1");
    assert_eq!(
        (web["State"].as_str(), web["ExitCode"].as_i64()),
        (Some("exited"), Some(0)),
        "stopped by its TERM trap"
    );
    assert_eq!(container(&list, "blifestopstart-db-1")["State"], "running");
    let db_started = container(&list, "blifestopstart-db-1")["StartedAt"].as_u64();
    ok(&["start", "web"]);
    let first = container(&ps(&project), "blifestopstart-web-1")["StartedAt"].as_u64().unwrap();
    assert_eq!(container(&ps(&project), "blifestopstart-web-1")["State"], "running");
    ok(&["restart", "web"]);
    let list = ps(&project);
    let web = container(&list, "blifestopstart-web-1");
    assert_eq!(web["State"], "running");
    assert!(web["StartedAt"].as_u64().unwrap() > first, "a new run");
    assert_eq!(container(&list, "blifestopstart-db-1")["StartedAt"].as_u64(), db_started, "db untouched");
    assert!(project.sh("web", "true").0, "exec reaches the restarted container");
    let out = project.berth(&["stop", "nosuch"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn kill_with_a_fatal_signal_turns_the_restart_policy_off_and_a_harmless_one_does_not() {
    let _host = HOST_FIREWALL.lock().unwrap_or_else(|e| e.into_inner());
    let hup = "command: [\"sh\", \"-c\", \"trap 'echo reloaded' HUP; while :; do sleep 0.05; done\"]\nrestart: always";
    let project = Project::new(
        "blifekill",
        &format!("{}{}", service("always", &format!("{IDLE}\nrestart: always")), service("reload", hup)),
    );
    project.up();
    let out = project.berth(&["kill", "always"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = project.berth(&["kill", "-s", "HUP", "reload"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut list = ps(&project);
    for _ in 0..200 {
        if container(&list, "blifekill-always-1")["State"] == "exited" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
        list = ps(&project);
    }
    // Longer than the first back-off: a restart would have happened by now.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let list = ps(&project);
    let always = container(&list, "blifekill-always-1");
    assert_eq!((always["State"].as_str(), always["ExitCode"].as_i64()), (Some("exited"), Some(137)), "{always}");
    let reload = container(&list, "blifekill-reload-1");
    assert_eq!((reload["State"].as_str(), reload["Restarts"].as_u64()), (Some("running"), Some(0)));
    let logs = String::from_utf8(project.berth(&["logs", "--no-color", "reload"]).stdout).unwrap();
    assert!(logs.contains("reloaded"), "{logs}");
    assert_eq!(project.berth(&["kill", "-s", "NOPE"]).status.code(), Some(2));
}

/// `ps -a --format json`'s entry for `name` once `ready` holds for it.
fn container_when(project: &Project, name: &str, ready: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    for _ in 0..300 {
        let list = ps(project);
        if let Some(found) = list.iter().find(|c| c["Name"] == name) {
            if ready(found) {
                return found.clone();
            }
            last = found.clone();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("{name} never got there: {last}\n{}", project.supervisor_log());
}

#[test]
fn a_restart_keeps_the_container_and_its_files_as_docker_does() {
    let _host = HOST_FIREWALL.lock().unwrap_or_else(|e| e.into_inner());
    let flaky = service(
        "flaky",
        r#"command: ["sh", "-c", "if [ -f /state ]; then echo second run; exec sleep 100000; fi; touch /state; exit 1"]
restart: on-failure
stop_signal: SIGKILL"#,
    );
    let project = Project::new("blifekeep", &flaky);
    project.up();
    let again = container_when(&project, "blifekeep-flaky-1", |c| c["Restarts"] == 1 && c["State"] == "running");
    let first_id = ps(&project)[0]["ID"].clone();
    assert_eq!(again["ID"], first_id, "the same container");
    let (ok, out) = project.sh("flaky", "ls /state");
    assert!(ok, "the file the first run wrote is still there: {out}");
    let logs = String::from_utf8_lossy(&project.berth(&["logs", "flaky"]).stdout).into_owned();
    assert!(logs.contains("second run"), "{logs}");
}

#[test]
fn the_opt_in_restart_of_an_unhealthy_container() {
    let _host = HOST_FIREWALL.lock().unwrap_or_else(|e| e.into_inner());
    let healing = service(
        "healing",
        r#"command: ["sh", "-c", "touch /tmp/healthy; exec sleep 100000"]
stop_signal: SIGKILL
x-berth-restart-on-unhealthy: true
healthcheck:
  test: ["CMD", "test", "-f", "/tmp/healthy"]
  interval: 100ms
  retries: 2"#,
    );
    let plain = service(
        "plain",
        r#"command: ["sh", "-c", "touch /tmp/healthy; exec sleep 100000"]
stop_signal: SIGKILL
healthcheck:
  test: ["CMD", "test", "-f", "/tmp/healthy"]
  interval: 100ms
  retries: 2"#,
    );
    let project = Project::new("blifeheal", &format!("{healing}{plain}"));
    let out = project.berth(&["up", "-d", "--wait"]);
    assert!(out.status.success(), "up --wait: {}", String::from_utf8_lossy(&out.stderr));
    for service in ["healing", "plain"] {
        let (ok, out) = project.sh(service, "rm /tmp/healthy");
        assert!(ok, "{out}");
    }
    let plain = container_when(&project, "blifeheal-plain-1", |c| c["Health"] == "unhealthy");
    assert_eq!(
        (plain["State"].as_str(), plain["Restarts"].as_u64()),
        (Some("running"), Some(0)),
        "docker only reports"
    );
    let healed = container_when(&project, "blifeheal-healing-1", |c| c["Restarts"] == 1 && c["Health"] == "healthy");
    assert_eq!(healed["State"], "running", "restarted and healthy again: {healed}");
}
