//! `berth volume ls|inspect|rm|prune` and `berth volumes` on volumes real containers made and
//! wrote, as root, in a state root of this file's own (so `prune` meets no other test's
//! volumes).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use support::*;

/// The tests prune this root: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| busybox_root("berth-volumes-root"))
}

/// A project in this file's state root; `down -t 0` and removal of its volumes on drop.
struct Stack {
    project: Project,
    volumes: Vec<String>,
}

impl Stack {
    fn new(name: &str, text: &str) -> Stack {
        Stack { project: Project::new(name, text), volumes: Vec::new() }
    }

    /// `sh -c "ulimit -n LIMIT; exec berth --root ROOT -f FILE ARGS…"` when `fd_limit` is set.
    fn run(&self, args: &[&str], fd_limit: Option<u32>) -> Output {
        let mut command = match fd_limit {
            Some(limit) => {
                let mut c = Command::new("sh");
                c.arg("-c").arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\"")).arg(env!("CARGO_BIN_EXE_berth"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_berth")),
        };
        command.arg("--root").arg(root()).arg("-f").arg(self.project.file()).args(args).stdin(Stdio::null());
        command.output().unwrap()
    }

    fn berth(&self, args: &[&str]) -> Output {
        self.run(args, None)
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.berth(args);
        assert!(
            out.status.success(),
            "berth {args:?}: {}\nsupervisor log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(root().join("projects").join(&self.project.name).join("supervisor.log"))
                .unwrap_or_default()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The volume mounted at `target` in the project's container, from its spec.
    fn volume_at(&self, target: &str) -> String {
        for entry in std::fs::read_dir(root().join("containers")).unwrap().flatten() {
            let Ok(text) = std::fs::read_to_string(entry.path().join("spec.json")) else { continue };
            let spec: serde_json::Value = serde_json::from_str(&text).unwrap();
            if spec["project"] != self.project.name.as_str() {
                continue;
            }
            for mount in spec["mounts"].as_array().unwrap() {
                if mount["target"] == target {
                    return mount["kind"]["volume"]["name"].as_str().expect("a volume mount").to_owned();
                }
            }
        }
        panic!("no container of {} mounts a volume at {target}", self.project.name);
    }

    /// The id of the project's container.
    fn container_id(&self) -> String {
        for entry in std::fs::read_dir(root().join("containers")).unwrap().flatten() {
            let Ok(text) = std::fs::read_to_string(entry.path().join("spec.json")) else { continue };
            let spec: serde_json::Value = serde_json::from_str(&text).unwrap();
            if spec["project"] == self.project.name.as_str() {
                return spec["id"].as_str().unwrap().to_owned();
            }
        }
        panic!("no container of {}", self.project.name);
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.berth(&["down", "-t", "0", "-v"]);
        for name in &self.volumes {
            let _ = self.berth(&["volume", "rm", "-f", name]);
        }
    }
}

fn volume_dir(name: &str) -> PathBuf {
    root().join("volumes").join(name)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn volumes_are_listed_refused_while_in_use_pruned_when_anonymous_and_removed_by_name() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let app = service("app", &format!("{IDLE}\nvolumes:\n  - data:/data\n  - /anon"));
    let mut stack = Stack::new("bvolumes", &format!("{app}volumes:\n  data:\n    labels:\n      mine: \"yes\"\n"));
    stack.volumes.push("bvolumes_data".to_owned());
    stack.ok(&["up", "-d"]);
    let anonymous = stack.volume_at("/anon");
    stack.volumes.push(anonymous.clone());
    assert_eq!(anonymous.len(), 64, "docker's anonymous volume names: {anonymous}");
    stack.ok(&["exec", "-T", "app", "sh", "-c", "echo named > /data/f && echo anonymous > /anon/f"]);

    // `volume ls`: both, in docker's table; the named one with compose's labels and the stack's.
    let table = stack.ok(&["volume", "ls"]);
    assert!(table.starts_with("DRIVER    VOLUME NAME\n"), "{table}");
    assert!(
        table.contains("local     bvolumes_data\n") && table.contains(&format!("local     {anonymous}\n")),
        "{table}"
    );
    let lines = stack.ok(&["volume", "ls", "--format", "json", "--filter", "name=bvolumes_data"]);
    let named: serde_json::Value = serde_json::from_str(lines.trim()).unwrap();
    let labels = named["Labels"].as_str().unwrap();
    assert!(labels.contains("com.docker.compose.project=bvolumes"), "{labels}");
    assert!(labels.contains("com.docker.compose.volume=data") && labels.contains("mine=yes"), "{labels}");
    assert_eq!(named["Mountpoint"], volume_dir("bvolumes_data").join("_data").display().to_string());
    let in_use = stack.ok(&["volume", "ls", "-q", "--filter", "dangling=false"]);
    assert!(in_use.lines().any(|l| l == "bvolumes_data") && in_use.lines().any(|l| l == anonymous), "{in_use}");
    // compose's `volumes`: the project's labelled volumes (compose labels no anonymous one).
    assert_eq!(stack.ok(&["volumes", "-q"]), "bvolumes_data\n");
    assert_eq!(stack.ok(&["volumes", "-q", "app"]), "bvolumes_data\n");
    let inspect: serde_json::Value =
        serde_json::from_str(&stack.ok(&["volume", "inspect", "bvolumes_data", &anonymous])).unwrap();
    assert_eq!(inspect[0]["Name"], "bvolumes_data");
    assert_eq!(inspect[0]["Labels"]["com.docker.compose.project"], "bvolumes");
    assert_eq!(inspect[1]["Labels"]["com.docker.volume.anonymous"], "");

    // In use: docker's message, exit 1, nothing changed.
    let id = stack.container_id();
    for name in ["bvolumes_data", anonymous.as_str()] {
        let out = stack.berth(&["volume", "rm", "-f", name]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains(&format!("remove {name}: volume is in use - [{id}]")), "{}", stderr(&out));
    }
    assert_eq!(std::fs::read_to_string(volume_dir("bvolumes_data").join("_data/f")).unwrap(), "named\n");
    assert_eq!(std::fs::read_to_string(volume_dir(&anonymous).join("_data/f")).unwrap(), "anonymous\n");
    let out = stack.berth(&["volume", "prune", "-f", "-a"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(volume_dir("bvolumes_data").join("_data/f").exists() && volume_dir(&anonymous).join("_data/f").exists());

    // After `down` nothing uses them: dangling.
    stack.ok(&["down", "-t", "0"]);
    let dangling = stack.ok(&["volume", "ls", "-q", "--filter", "dangling=true"]);
    assert!(dangling.lines().any(|l| l == "bvolumes_data") && dangling.lines().any(|l| l == anonymous), "{dangling}");

    // `prune` (no -a): the anonymous one only, with its size ("anonymous\n" is 10 bytes).
    let pruned = stack.ok(&["volume", "prune", "-f"]);
    assert!(pruned.starts_with("Deleted Volumes:\n"), "{pruned}");
    assert!(pruned.lines().any(|l| l == anonymous) && !pruned.contains("bvolumes_data"), "{pruned}");
    assert!(pruned.ends_with("\n\nTotal reclaimed space: 10B\n"), "{pruned}");
    assert!(!volume_dir(&anonymous).exists());
    assert_eq!(stack.ok(&["volume", "prune", "-f"]), "Total reclaimed space: 0B\n");

    // By name.
    assert_eq!(stack.ok(&["volume", "rm", "bvolumes_data"]), "bvolumes_data\n");
    assert!(!volume_dir("bvolumes_data").exists());
    let out = stack.berth(&["volume", "rm", "bvolumes_data"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("get bvolumes_data: no such volume"), "{}", stderr(&out));
    assert_eq!(stack.ok(&["volume", "rm", "-f", "bvolumes_data"]), "bvolumes_data\n");
    let out = stack.berth(&["volume", "inspect", "bvolumes_data"]);
    assert_eq!((out.status.code(), String::from_utf8_lossy(&out.stdout).as_ref()), (Some(1), "[]\n"));
}

#[test]
fn a_hostile_volume_is_removed_without_following_its_links_or_running_out_of_descriptors() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let outside = tempfile::Builder::new().prefix("berth-volumes-outside-").tempdir().unwrap();
    let marker = outside.path().join("marker");
    std::fs::write(&marker, "keep me\n").unwrap();
    // Links to the host's root and to the marker's directory (a host path: it means nothing in
    // the container, everything to a host process that follows it), at the top and at the
    // bottom of a chain deeper than any descriptor budget.
    let script = format!(
        "cd /v && ln -s / root && ln -s {out} outside && i=0 && while [ $i -lt 1500 ]; do mkdir d && cd d && i=$((i+1)); done && ln -s / root && ln -s {out} outside && ln -s {out}/marker marker && echo bottom > f",
        out = outside.path().display()
    );
    let app = service("app", &format!("{IDLE}\nvolumes:\n  - evil:/v"));
    let mut stack = Stack::new("bvolevil", &format!("{app}volumes:\n  evil: {{}}\n"));
    stack.volumes.push("bvolevil_evil".to_owned());
    stack.ok(&["up", "-d"]);
    stack.ok(&["exec", "-T", "app", "sh", "-c", &script]);
    stack.ok(&["down", "-t", "0"]);
    let data = volume_dir("bvolevil_evil").join("_data");
    assert!(std::fs::symlink_metadata(data.join("root")).unwrap().file_type().is_symlink());
    let bottom = data.join("d/".repeat(1500));
    assert_eq!(std::fs::read_to_string(bottom.join("f")).unwrap(), "bottom\n", "the chain is 1500 deep");
    assert!(std::fs::symlink_metadata(bottom.join("marker")).unwrap().file_type().is_symlink());
    // 1500 levels and a fifth of the usual descriptor limit: a walk holding one per level fails.
    let out = stack.run(&["volume", "rm", "bvolevil_evil"], Some(200));
    assert!(out.status.success(), "volume rm: {}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "bvolevil_evil\n");
    assert!(!volume_dir("bvolevil_evil").exists(), "the volume is gone");
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "keep me\n", "the marker outside survives");
    assert!(Path::new("/etc/hostname").exists() && Path::new("/usr/bin").is_dir(), "the host's root is intact");
}
