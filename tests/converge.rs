//! `up` on a running project, as root: only what changed is recreated (compose's config
//! hash), `restart: true` dependents follow their dependency, `--scale`, orphans,
//! `--force-recreate`, `--no-recreate`, `--no-deps`, and `down -v`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::*;

const SLEEP: &str = r#"command: ["sleep", "100000"]
stop_signal: SIGKILL"#;

fn stack(extra_service: &str) -> String {
    let db = service("db", &format!("{SLEEP}\nenvironment:\n  V: \"${{DBV:-1}}\"\nvolumes: [\"data:/data\"]"));
    let web = service(
        "web",
        &format!(
            "{SLEEP}\nenvironment:\n  W: \"${{WV:-1}}\"\ndepends_on:\n  db: {{condition: service_started, restart: true}}"
        ),
    );
    let other = service(extra_service, SLEEP);
    format!("{db}{web}{other}volumes:\n  data: {{}}\n")
}

/// `up -d ARGS` with `env`; its progress lines and warnings.
fn up(project: &Project, env: &[(&str, &str)], args: &[&str]) -> String {
    let mut all = vec!["--progress", "plain", "up", "-d"];
    all.extend_from_slice(args);
    let out = project.command(&all).envs(env.iter().copied()).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "up -d {args:?}: {text}\n{}", project.supervisor_log());
    text
}

/// The PIDs of the project's containers, by name.
fn pids(project: &Project, names: &[&str]) -> Vec<Option<i32>> {
    names.iter().map(|n| project.pid_of(n)).collect()
}

#[test]
fn up_on_a_running_project_changes_only_what_changed() {
    let _host = HOST_FIREWALL.lock().unwrap_or_else(|e| e.into_inner());
    let project = Project::new("bconv", &stack("other"));
    let names = ["bconv-db-1", "bconv-web-1", "bconv-other-1"];
    let first = up(&project, &[], &[]);
    assert!(first.contains("Container bconv-web-1  Started"), "{first}");
    let start = pids(&project, &names);
    assert!(start.iter().all(Option::is_some), "{start:?}");

    let again = up(&project, &[], &[]);
    assert!(again.contains("Container bconv-db-1  Running") && !again.contains("Recreated"), "{again}");
    assert_eq!(pids(&project, &names), start, "an unchanged stack keeps every container");

    // One service's environment changed: only it is recreated.
    let web_changed = up(&project, &[("WV", "2")], &[]);
    assert!(web_changed.contains("Container bconv-web-1  Recreated"), "{web_changed}");
    let now = pids(&project, &names);
    assert_eq!((now[0], now[2]), (start[0], start[2]), "db and other kept");
    assert_ne!(now[1], start[1], "web recreated");

    // The dependency changed: it is recreated and web (`restart: true`) restarted with it.
    let db_changed = up(&project, &[("WV", "2"), ("DBV", "2")], &[]);
    assert!(db_changed.contains("Container bconv-db-1  Recreated"), "{db_changed}");
    assert!(db_changed.contains("Container bconv-web-1  Restarted"), "{db_changed}");
    let after = pids(&project, &names);
    assert!(after[0] != now[0] && after[1] != now[1] && after[2] == start[2], "{now:?} -> {after:?}");
    let env = project.sh("db", "echo $V");
    assert_eq!(env.1.trim(), "2", "the recreated db has the new value");

    // --no-recreate keeps a changed service; --force-recreate recreates an unchanged one.
    let kept = up(&project, &[("WV", "3"), ("DBV", "2")], &["--no-recreate"]);
    assert!(!kept.contains("Recreated"), "{kept}");
    assert_eq!(pids(&project, &names), after);
    let forced = up(&project, &[("WV", "2"), ("DBV", "2")], &["--force-recreate", "--no-deps", "other"]);
    assert!(forced.contains("Container bconv-other-1  Recreated") && !forced.contains("bconv-db-1"), "{forced}");
    let forced_pids = pids(&project, &names);
    assert!(forced_pids[2] != after[2] && forced_pids[..2] == after[..2], "{after:?} -> {forced_pids:?}");
}

#[test]
fn scale_orphans_and_volumes() {
    let _host = HOST_FIREWALL.lock().unwrap_or_else(|e| e.into_inner());
    let project = Project::new("bconvscale", &stack("other"));
    up(&project, &[], &[]);
    let web1 = project.pid_of("bconvscale-web-1");
    let scaled = up(&project, &[], &["--scale", "web=3"]);
    assert!(scaled.contains("Container bconvscale-web-3  Started"), "{scaled}");
    assert!(project.pid_of("bconvscale-web-2").is_some() && project.pid_of("bconvscale-web-3").is_some());
    assert_eq!(project.pid_of("bconvscale-web-1"), web1, "scaling up keeps the first replica");
    let down_to_one = up(&project, &[], &[]);
    assert!(down_to_one.contains("Container bconvscale-web-3  Removed"), "{down_to_one}");
    assert_eq!(project.pid_of("bconvscale-web-2"), None, "replica 2 removed");

    // A service renamed away is an orphan: warned about, then removed on request.
    let (ok, _) = project.sh("db", "echo kept > /data/file");
    assert!(ok);
    project.rewrite(&stack("renamed"));
    let warned = up(&project, &[], &[]);
    assert!(warned.contains("Found orphan containers ([bconvscale-other-1])"), "{warned}");
    assert!(project.pid_of("bconvscale-other-1").is_some(), "an orphan keeps running without --remove-orphans");
    let removed = up(&project, &[], &["--remove-orphans"]);
    assert!(removed.contains("Container bconvscale-other-1  Removed"), "{removed}");
    assert_eq!(project.pid_of("bconvscale-other-1"), None);
    let ps = String::from_utf8(project.berth(&["ps", "--services"]).stdout).unwrap();
    assert_eq!(ps.lines().collect::<Vec<_>>(), ["db", "renamed", "web"], "{ps}");

    // The named volume outlives `down`, and `down -v` removes it.
    let volume = state_root().join("volumes").join("bconvscale_data");
    let out = project.berth(&["down", "-t", "0"]);
    assert!(out.status.success());
    assert!(volume.join("_data/file").exists(), "down keeps named volumes");
    let out = project.berth(&["--progress", "plain", "down", "-v"]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.contains("Volume bconvscale_data  Removed"), "{text}");
    assert!(!volume.exists(), "down -v removes the project's volumes");
}

#[test]
fn scale_and_rm_on_the_running_project() {
    let _host = HOST_FIREWALL.lock().unwrap_or_else(|e| e.into_inner());
    let job = service("job", r#"command: ["sh", "-c", "exit 0"]"#);
    let project = Project::new("bconvrm", &format!("{}{job}", service("web", SLEEP)));
    up(&project, &[], &[]);
    let out = project.berth(&["--progress", "plain", "scale", "web=2"]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.contains("Container bconvrm-web-2  Started"), "{text}");
    assert!(project.pid_of("bconvrm-web-2").is_some());
    // The finished job is listed by `ps -a` until `rm` removes it.
    let mut listed = String::new();
    for _ in 0..200 {
        listed = String::from_utf8_lossy(&project.berth(&["ps", "-a"]).stdout).into_owned();
        if listed.contains("Exited (0)") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(listed.contains("bconvrm-job-1"), "{listed}");
    let out = project.berth(&["rm", "-f"]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.contains("Container bconvrm-job-1  Removed"), "{text}");
    assert!(!text.contains("web"), "running containers are not removed: {text}");
    let listed = String::from_utf8_lossy(&project.berth(&["ps", "-a"]).stdout).into_owned();
    assert!(!listed.contains("bconvrm-job-1") && listed.contains("bconvrm-web-2"), "{listed}");
}
