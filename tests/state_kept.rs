//! Containers keep their state as docker's do (issue 18), as root with real containers: stop,
//! start, restart, Ctrl-C of an attached `up` and a killed supervisor lose nothing; a recreate
//! takes over anonymous volumes (`-V` renews them); `down -v` removes them; `run` without
//! `--rm` keeps its container.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::PathBuf;

use support::*;

fn ps(project: &Project) -> Vec<serde_json::Value> {
    let out = project.berth(&["ps", "-a", "--format", "json"]);
    assert!(out.status.success(), "ps: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("ps --format json is JSON")
}

fn entry(project: &Project, name: &str) -> serde_json::Value {
    let list = ps(project);
    list.iter().find(|c| c["Name"] == name).cloned().unwrap_or_else(|| panic!("no {name} in {list:?}"))
}

fn ok(project: &Project, args: &[&str]) -> String {
    let out = project.berth(args);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "berth {args:?}: {text}\n{}", project.supervisor_log());
    text
}

/// Polls `ps -a` until container `name` is in `state` (a container's own pace, not a timing
/// assertion: the poll gives up only after 20 s).
fn until_state(project: &Project, name: &str, state: &str) -> serde_json::Value {
    for _ in 0..400 {
        if let Some(c) = ps(project).into_iter().find(|c| c["Name"] == name && c["State"] == state) {
            return c;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("{name} never got to {state}: {:?}\n{}", ps(project), project.supervisor_log());
}

/// Waits (up to 20 s) for process `pid` to be gone, and fails if it is not.
fn gone(pid: i32) {
    for _ in 0..400 {
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("process {pid} is still there");
}

fn container_dir(id: &str) -> PathBuf {
    state_root().join("containers").join(id)
}

/// The anonymous volume names in a container's recorded spec.
fn anonymous_volumes(id: &str) -> Vec<String> {
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(container_dir(id).join("spec.json")).unwrap()).unwrap();
    spec["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["kind"]["volume"]["name"].as_str().map(str::to_owned))
        .filter(|n| n.len() == 64)
        .collect()
}

/// Every kernel object a running container has, found by its id: processes whose cgroup
/// names it, its cgroup directories, its host-side veth, mounts naming its directory.
fn kernel_objects(id: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let cgroup = std::fs::read_to_string(entry.path().join("cgroup")).unwrap_or_default();
        if cgroup.contains(id) {
            found.push(format!("process {}", entry.file_name().to_string_lossy()));
        }
        let mounts = std::fs::read_to_string(entry.path().join("mountinfo")).unwrap_or_default();
        if mounts.contains(id) {
            found.push(format!("mounts of process {}", entry.file_name().to_string_lossy()));
        }
    }
    let cgroups = std::process::Command::new("find").args(["/sys/fs/cgroup", "-name", &format!("*{id}*")]).output();
    found.extend(String::from_utf8_lossy(&cgroups.unwrap().stdout).lines().map(|l| format!("cgroup {l}")));
    found.extend(leftovers(&format!("berthv{}", &id[..8])));
    found
}

#[test]
fn stop_and_start_keep_the_writable_layer_restart_keeps_anonymous_volumes_and_a_stopped_container_holds_nothing() {
    let app = service("app", "command: [\"sleep\", \"100000\"]\nvolumes: [\"/data\"]");
    let project = Project::new("bkeeplayer", &app);
    project.up();
    let name = "bkeeplayer-app-1";
    let id = entry(&project, name)["ID"].as_str().unwrap().to_owned();
    let (wrote, text) = project.sh("app", "echo layer > /kept && echo volume > /data/kept");
    assert!(wrote, "{text}");
    assert!(!kernel_objects(&id).is_empty(), "a running container is found by the search");

    ok(&project, &["stop", "-t", "1", "app"]);
    let stopped = entry(&project, name);
    assert_eq!((stopped["State"].as_str(), stopped["ID"].as_str()), (Some("exited"), Some(id.as_str())));
    // sleep as PID 1 has no handler for SIGTERM, which the kernel drops: killed after -t.
    assert_eq!(stopped["ExitCode"], 137, "{stopped}");
    assert!(container_dir(&id).join("upper").join("kept").is_file(), "the writable layer is kept");
    assert_eq!(kernel_objects(&id), Vec::<String>::new(), "a stopped container holds no kernel object");

    ok(&project, &["start", "app"]);
    assert_eq!(entry(&project, name)["ID"], id.as_str(), "the same container runs again");
    assert_eq!(project.sh("app", "cat /kept /data/kept").1, "layer\nvolume\n");

    ok(&project, &["restart", "-t", "1", "app"]);
    assert_eq!(entry(&project, name)["ID"], id.as_str());
    assert_eq!(project.sh("app", "cat /kept /data/kept").1, "layer\nvolume\n");
    project.down();
}

#[test]
fn a_recreate_takes_over_anonymous_volumes_renew_gives_fresh_ones_and_down_v_removes_them() {
    let app = |value: &str| {
        service(
            "app",
            &format!("command: [\"sleep\", \"100000\"]\nenvironment: {{A: \"{value}\"}}\nvolumes: [\"/data\"]"),
        )
    };
    let project = Project::new("bkeeprecreate", &app("one"));
    project.up();
    let name = "bkeeprecreate-app-1";
    let first = entry(&project, name)["ID"].as_str().unwrap().to_owned();
    let volumes = anonymous_volumes(&first);
    assert_eq!(volumes.len(), 1, "one anonymous volume");
    assert!(project.sh("app", "echo precious > /data/db").0);

    project.rewrite(&app("two"));
    let text = ok(&project, &["up", "-d", "-t", "1"]);
    assert!(text.contains("Recreated"), "{text}");
    let second = entry(&project, name)["ID"].as_str().unwrap().to_owned();
    assert_ne!(first, second, "a new container");
    assert!(!container_dir(&first).exists(), "the old container is removed");
    assert_eq!(anonymous_volumes(&second), volumes, "the volume is taken over");
    assert_eq!(project.sh("app", "echo $A; cat /data/db").1, "two\nprecious\n");

    ok(&project, &["up", "-d", "-t", "1", "--force-recreate", "-V"]);
    let third = entry(&project, name)["ID"].as_str().unwrap().to_owned();
    let renewed = anonymous_volumes(&third);
    assert_ne!(renewed, volumes, "-V gives a fresh volume");
    let (there, text) = project.sh("app", "test -e /data/db");
    assert!(!there, "and it does not hold the old data: {text}");

    ok(&project, &["down", "-t", "1", "-v"]);
    for volume in renewed.iter().chain(&volumes) {
        let dir = state_root().join("volumes").join(volume);
        // compose's `-V` leaves the replaced volume to `volume prune`; `down -v` takes the
        // project's containers' own.
        if renewed.contains(volume) {
            assert!(!dir.exists(), "{} is left after down -v", dir.display());
        } else {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[test]
fn down_keeps_anonymous_volumes_without_v() {
    let project = Project::new("bkeepdown", &service("app", "command: [\"sleep\", \"100000\"]\nvolumes: [\"/data\"]"));
    project.up();
    let id = entry(&project, "bkeepdown-app-1")["ID"].as_str().unwrap().to_owned();
    let volumes = anonymous_volumes(&id);
    project.down();
    assert!(!container_dir(&id).exists(), "down removes the container");
    for volume in &volumes {
        let dir = state_root().join("volumes").join(volume);
        assert!(dir.is_dir(), "down keeps the anonymous volume {volume}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn ctrl_c_of_an_attached_up_stops_the_container_and_start_resumes_it_without_a_supervisor() {
    let project = Project::new("bkeepctrlc", &service("app", "command: [\"sleep\", \"100000\"]"));
    let mut up = project.command(&["up"]).stdout(std::process::Stdio::null()).spawn().unwrap();
    let name = "bkeepctrlc-app-1";
    let id = until_state(&project, name, "running")["ID"].as_str().unwrap().to_owned();
    assert!(project.sh("app", "echo before > /kept").0);
    let supervisor = project.supervisor_pid();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(i32::try_from(up.id()).unwrap()), nix::sys::signal::SIGINT)
        .unwrap();
    let status = up.wait().unwrap();
    assert_eq!(status.code(), Some(130), "compose's status after Ctrl-C");
    gone(supervisor);
    let stopped = entry(&project, name);
    assert_eq!((stopped["State"].as_str(), stopped["ID"].as_str()), (Some("exited"), Some(id.as_str())));

    ok(&project, &["start"]);
    assert_eq!(entry(&project, name)["ID"], id.as_str());
    assert_eq!(until_state(&project, name, "running")["ID"], id.as_str());
    assert_eq!(project.sh("app", "cat /kept").1, "before\n");
    project.down();
}

#[test]
fn ps_tells_exit_codes_after_the_supervisor_is_killed_and_start_still_works() {
    let one = service("one", "command: [\"sh\", \"-c\", \"exit 3\"]");
    let two = service("two", "command: [\"sleep\", \"100000\"]");
    let project = Project::new("bkeepkilled", &format!("{one}{two}"));
    project.up();
    until_state(&project, "bkeepkilled-one-1", "exited");
    ok(&project, &["stop", "-t", "1", "two"]);
    let supervisor = project.supervisor_pid();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(supervisor), nix::sys::signal::SIGKILL).unwrap();
    gone(supervisor);
    let one = entry(&project, "bkeepkilled-one-1");
    let two = entry(&project, "bkeepkilled-two-1");
    assert_eq!((one["State"].as_str(), one["ExitCode"].as_i64()), (Some("exited"), Some(3)), "{one}");
    assert_eq!((two["State"].as_str(), two["ExitCode"].as_i64()), (Some("exited"), Some(137)), "{two}");
    assert!(one["FinishedAt"].as_u64().unwrap() > 0 && two["FinishedAt"].as_u64().unwrap() > 0);
    ok(&project, &["start", "two"]);
    assert_eq!(until_state(&project, "bkeepkilled-two-1", "running")["ID"], two["ID"]);
    project.down();
}

#[test]
fn run_without_rm_keeps_its_container_until_down() {
    let project = Project::new("bkeeprun", &service("app", "command: [\"sleep\", \"100000\"]"));
    let out = project.berth(&["run", "-T", "--name", "bkeeprun-once", "app", "sh", "-c", "echo hi > /f; exit 4"]);
    assert_eq!(out.status.code(), Some(4), "{}", String::from_utf8_lossy(&out.stderr));
    let kept = entry(&project, "bkeeprun-once");
    assert_eq!((kept["State"].as_str(), kept["ExitCode"].as_i64()), (Some("exited"), Some(4)), "{kept}");
    let id = kept["ID"].as_str().unwrap().to_owned();
    assert!(container_dir(&id).join("upper").join("f").is_file());
    let out = project.berth(&["run", "-T", "--rm", "--name", "bkeeprun-gone", "app", "true"]);
    assert!(out.status.success());
    assert!(ps(&project).iter().all(|c| c["Name"] != "bkeeprun-gone"), "--rm removes it");
    project.down();
    assert!(!container_dir(&id).exists(), "down removes the one-off container");
    assert!(ps(&project).is_empty());
}

#[test]
fn bad_input_gets_composes_message_and_changes_nothing() {
    let app = service("app", "command: [\"sleep\", \"100000\"]");
    let other = service("other", "command: [\"sleep\", \"100000\"]");
    let project = Project::new("bkeepbad", &format!("{app}{other}"));
    let out = project.berth(&["start"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no container found for project \"bkeepbad\": not found"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(ps(&project).is_empty(), "start made nothing");
    ok(&project, &["up", "-d", "app"]);
    let out = project.berth(&["start", "other"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such service: \"other\": not found"));
    let before = entry(&project, "bkeepbad-app-1");
    let out = project.berth(&["rm", "app"]);
    assert_eq!(out.status.code(), Some(0), "compose's rm leaves running containers and succeeds");
    assert!(String::from_utf8_lossy(&out.stderr).contains("No stopped containers"));
    let after = entry(&project, "bkeepbad-app-1");
    assert_eq!((after["ID"].clone(), after["State"].as_str()), (before["ID"].clone(), Some("running")));
    assert_eq!(ps(&project).len(), 1, "nothing else appeared");
    project.down();
}
