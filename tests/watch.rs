//! `develop.watch` run by the supervisor, as root: sync into the container's filesystem
//! (deletes too, ignores honoured, a non-root user, an image without `tar`), sync+restart and
//! restart, a burst of writes as one action per rule, and stack-file edits converged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::*;

const SLEEP: &str = r#"command: ["sleep", "100000"]
stop_signal: SIGKILL"#;

/// The project's directory (beside its compose.yaml).
fn dir(project: &Project) -> PathBuf {
    project.file().parent().unwrap().to_path_buf()
}

fn watch_log(project: &Project) -> String {
    std::fs::read_to_string(state_root().join("projects").join(&project.name).join("logs/watch.log"))
        .unwrap_or_default()
}

/// Polls `check` (every 20 ms, for up to 20 s) until it holds; panics with `what` otherwise.
fn eventually(what: &str, project: &Project, mut check: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what} never happened; watch.log:\n{}\n{}", watch_log(project), project.supervisor_log());
}

fn cat(project: &Project, service: &str, path: &str) -> Option<String> {
    let (ok, out) = project.sh(service, &format!("cat {path}"));
    ok.then_some(out)
}

fn up_watch(project: &Project) {
    let out = project.command(&["up", "-d", "--watch"]).env("BERTH_WATCH_DEBOUNCE", "100ms").output().unwrap();
    assert!(
        out.status.success(),
        "up -d --watch: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        project.supervisor_log()
    );
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn sync_writes_deletes_and_ignores_and_restart_rules_restart() {
    let _host = HOST_FIREWALL.lock().unwrap_or_else(|e| e.into_inner());
    let app = service(
        "app",
        &format!(
            "{SLEEP}\ndevelop:\n  watch:\n    - path: ./src\n      target: /app\n      action: sync\n      ignore: [\"*.tmp\"]\n    - path: ./conf\n      target: /conf\n      action: sync+restart\n    - path: ./trigger\n      action: restart"
        ),
    );
    let project = Project::new("bwatchsync", &app);
    let root = dir(&project);
    write(&root.join("src/seed.txt"), "seed");
    write(&root.join("conf/app.conf"), "one");
    write(&root.join("trigger"), "0");
    up_watch(&project);
    eventually("the watch starting", &project, || watch_log(&project).contains("Watch enabled"));

    write(&root.join("src/hello.txt"), "hello");
    write(&root.join("src/deep/er/file.txt"), "deep");
    eventually("hello.txt synced", &project, || cat(&project, "app", "/app/hello.txt").as_deref() == Some("hello"));
    eventually("a nested file synced", &project, || {
        cat(&project, "app", "/app/deep/er/file.txt").as_deref() == Some("deep")
    });
    write(&root.join("src/hello.txt"), "hello again");
    eventually("an edit synced", &project, || cat(&project, "app", "/app/hello.txt").as_deref() == Some("hello again"));
    std::fs::remove_file(root.join("src/hello.txt")).unwrap();
    eventually("a deletion synced", &project, || cat(&project, "app", "/app/hello.txt").is_none());
    write(&root.join("src/scratch.tmp"), "ignored");
    write(&root.join("src/after.txt"), "after");
    eventually("the file after the ignored one", &project, || cat(&project, "app", "/app/after.txt").is_some());
    assert!(cat(&project, "app", "/app/scratch.tmp").is_none(), "an ignored file is not synced");

    let started = |project: &Project| -> u64 {
        let out = project.berth(&["ps", "--format", "json"]);
        let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        list.first().and_then(|c| c["StartedAt"].as_u64()).unwrap_or(0)
    };
    let before = started(&project);
    write(&root.join("conf/app.conf"), "two");
    eventually("sync+restart restarted the service", &project, || started(&project) > before);
    eventually("the restarted container has the new file", &project, || {
        cat(&project, "app", "/conf/app.conf").as_deref() == Some("two")
    });
    assert_eq!(cat(&project, "app", "/app/after.txt").as_deref(), Some("after"), "sync paths kept across restarts");
    let before = started(&project);
    write(&root.join("trigger"), "1");
    eventually("restart restarted the service", &project, || started(&project) > before);
}

#[test]
fn a_burst_is_one_action_per_rule_and_sync_needs_no_tar_nor_root() {
    let _host = HOST_FIREWALL.lock().unwrap_or_else(|e| e.into_inner());
    let app = service(
        "app",
        &format!(
            "{SLEEP}\nuser: \"1000:1000\"\ndevelop:\n  watch:\n    - path: ./a\n      target: /home/a\n      action: sync\n    - path: ./b\n      target: /home/b\n      action: sync"
        ),
    );
    let project = Project::new("bwatchburst", &app);
    let root = dir(&project);
    std::fs::create_dir_all(root.join("a")).unwrap();
    std::fs::create_dir_all(root.join("b")).unwrap();
    up_watch(&project);
    eventually("the watch starting", &project, || watch_log(&project).contains("Watch enabled"));
    // No tar in the image: sync never uses one.
    let out = project.berth(&["exec", "-T", "-u", "0", "app", "rm", "-f", "/bin/tar"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for i in 0..200 {
        std::fs::write(root.join(if i % 2 == 0 { "a" } else { "b" }).join(format!("f{i}")), i.to_string()).unwrap();
    }
    eventually("the last file of a synced", &project, || {
        cat(&project, "app", "/home/a/f198").as_deref() == Some("198")
    });
    eventually("the last file of b synced", &project, || {
        cat(&project, "app", "/home/b/f199").as_deref() == Some("199")
    });
    let (_, owner) = project.sh("app", "stat -c %u:%g /home/a/f0 /home/a");
    assert_eq!(owner.lines().collect::<Vec<_>>(), ["1000:1000", "1000:1000"], "owned by the container's user");
    let (_, count) = project.sh("app", "ls /home/a | wc -l; ls /home/b | wc -l");
    assert_eq!(count.split_whitespace().collect::<Vec<_>>(), ["100", "100"]);
    let log = watch_log(&project);
    let actions = log.lines().filter(|l| l.contains("Syncing service")).count();
    assert_eq!(actions, 2, "one action per rule for the burst:\n{log}");
}

#[test]
fn an_edit_of_the_stack_file_recreates_only_the_changed_service() {
    let _host = HOST_FIREWALL.lock().unwrap_or_else(|e| e.into_inner());
    let stack = |value: &str| {
        let web = service(
            "web",
            &format!(
                "{SLEEP}\nenvironment:\n  GREETING: {value}\ndevelop:\n  watch:\n    - path: ./src\n      target: /src\n      action: sync"
            ),
        );
        format!("{web}{}", service("db", SLEEP))
    };
    let project = Project::new("bwatchstack", &stack("one"));
    std::fs::create_dir_all(dir(&project).join("src")).unwrap();
    up_watch(&project);
    eventually("the watch starting", &project, || watch_log(&project).contains("Watch enabled"));
    let (web, db) = (project.pid_of("bwatchstack-web-1"), project.pid_of("bwatchstack-db-1"));
    project.rewrite("  web: [not, a, service\n");
    eventually("the invalid edit reported", &project, || watch_log(&project).contains("does not load"));
    assert_eq!(project.pid_of("bwatchstack-web-1"), web, "an invalid edit leaves the stack alone");
    project.rewrite(&stack("two"));
    eventually("web recreated", &project, || project.sh("web", "echo $GREETING").1.trim() == "two");
    assert_eq!(project.pid_of("bwatchstack-db-1"), db, "db untouched");
    eventually("the summary line", &project, || watch_log(&project).contains("bwatchstack-web-1 recreated"));
}

#[test]
fn initial_sync_and_the_sync_exec_hook() {
    let _host = HOST_FIREWALL.lock().unwrap_or_else(|e| e.into_inner());
    let app = service(
        "app",
        &format!(
            "{SLEEP}\ndevelop:\n  watch:\n    - path: ./seeded\n      target: /seeded\n      action: sync\n      initial_sync: true\n    - path: ./code\n      target: /code\n      action: sync+exec\n      exec:\n        command: [\"sh\", \"-c\", \"cat /code/main > /tmp/built\"]"
        ),
    );
    let project = Project::new("bwatchexec", &app);
    let root = dir(&project);
    write(&root.join("seeded/already.txt"), "there before up");
    std::fs::create_dir_all(root.join("code")).unwrap();
    up_watch(&project);
    eventually("the initial sync", &project, || {
        cat(&project, "app", "/seeded/already.txt").as_deref() == Some("there before up")
    });
    write(&root.join("code/main"), "version 2");
    eventually("the hook ran after the sync", &project, || {
        cat(&project, "app", "/tmp/built").as_deref() == Some("version 2")
    });
    eventually("the hook's summary", &project, || watch_log(&project).contains("exited with code 0"));
}
