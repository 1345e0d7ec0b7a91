//! Paths a container can touch are never followed on the host side, as root, each attack
//! performed for real: symlinks planted in a shared volume during copy-up, symlinks in a
//! watched host tree and in the container during sync, and a write into a submount of a `:ro`
//! bind. Run under the kernel-tests lock:
//! `flock /tmp/berth-kernel-tests.lock cargo test --test attacks_paths -- --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use berth::watch::sync::SyncTarget;
use support::*;

/// How often the victim is restarted into the attacker's volume: each restart is one more
/// copy-up racing the attacker's links.
const COPY_UP_ROUNDS: usize = 40;

#[test]
fn copy_up_never_writes_through_links_planted_in_a_shared_volume() {
    let marker = PathBuf::from(format!("/tmp/berth-copyup-marker-{}", std::process::id()));
    let _ = fs::remove_file(&marker);
    // The attacker shares the named volume (at a path where its image has nothing, so it gets
    // no copy) and keeps it looking empty, then full of links named like the victim image's
    // /data files (`a`, `b`), pointing at a host path: a copy-up by path would write there.
    let plant =
        format!("while :; do rm -rf /vol/a /vol/b; ln -s {m} /vol/a; ln -s {m} /vol/b; done", m = marker.display());
    let attacker = service(
        "attacker",
        &format!("command: [\"sh\", \"-c\", {plant:?}]\nstop_signal: SIGKILL\nvolumes:\n  - shared:/vol"),
    );
    let victim =
        service("victim", "command: [\"sleep\", \"100000\"]\nstop_signal: SIGKILL\nvolumes:\n  - shared:/data");
    let project = Project::new("battackcopy", &format!("{attacker}{victim}volumes:\n  shared: {{}}\n"));
    project.berth(&["down", "-v", "-t", "0"]);
    project.up();
    let mut started = 0;
    for _ in 0..COPY_UP_ROUNDS {
        let out = project.berth(&["restart", "-t", "0", "victim"]);
        if out.status.success() {
            started += 1;
        } else {
            println!("a restart failed: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        assert!(!marker.exists(), "copy-up wrote through a planted link onto the host: {}", marker.display());
    }
    println!("copy-up raced the attacker's links {COPY_UP_ROUNDS} times ({started} restarts succeeded)");
    assert!(started > 0, "no restart succeeded: the race proves nothing");
    // A restart whose copy-up met a planted link fails (berth refuses to follow it): the last
    // round may have left the victim stopped. Its /data is looked at once it runs again.
    let mut running = false;
    for _ in 0..COPY_UP_ROUNDS {
        if project.berth(&["start", "victim"]).status.success() && project.sh("victim", "true").0 {
            running = true;
            break;
        }
        let _ = project.berth(&["restart", "-t", "0", "victim"]);
    }
    assert!(running, "the victim never ran again");
    assert!(!marker.exists(), "copy-up wrote through a planted link onto the host: {}", marker.display());
    let (ok, out) = project.sh("victim", "ls -l /data");
    println!("the victim's /data at the end:\n{out}");
    assert!(ok, "{out}");
    assert!(!marker.exists());
    let out = project.berth(&["down", "-v", "-t", "0"]);
    assert!(out.status.success(), "down -v: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn watch_sync_follows_no_host_link_out_of_the_tree_and_no_container_link_onto_the_host() {
    let app = service("app", "command: [\"sleep\", \"100000\"]\nstop_signal: SIGKILL");
    let project = Project::new("battacksync", &app);
    project.up();
    let pid = project.pid_of("battacksync-app-1").expect("the container's pid");
    let target = SyncTarget::open(pid, "").unwrap();

    // The watched tree holds a link to a directory outside it with a secret in it.
    let host = tempfile::tempdir().unwrap();
    let secret = tempfile::tempdir().unwrap();
    fs::write(secret.path().join("key"), "host secret 7c1d\n").unwrap();
    let tree = host.path().join("src");
    fs::create_dir(&tree).unwrap();
    fs::write(tree.join("ok"), "fine\n").unwrap();
    symlink(secret.path(), tree.join("out")).unwrap();
    symlink(secret.path().join("key"), tree.join("key")).unwrap();

    // What a file watcher reports for a change through the link, and a full sync of the tree.
    let through = target.copy_in_from(&tree, &tree.join("out/key"), "/app/out/key");
    assert!(through.is_err(), "sync read a host file through a link: {through:?}");
    assert_eq!(target.copy_in_from(&tree, &tree, "/app").unwrap(), 3);
    let (ok, out) = project.sh("app", "cat /app/ok; grep -rs 'host secret' /app; ls -l /app/out /app/key");
    assert!(ok || out.contains("fine"), "{out}");
    assert!(out.starts_with("fine\n"), "{out}");
    assert!(!out.contains("host secret 7c1d"), "the host secret reached the container:\n{out}");

    // A link the container makes to its / sends a sync write to the container's /, not the host's.
    let escape = format!("berth-sync-escape-{}", std::process::id());
    let (ok, out) = project.sh("app", "ln -s / /app/x");
    assert!(ok, "{out}");
    target.copy_in_from(&tree, &tree.join("ok"), &format!("/app/x/tmp/{escape}")).unwrap();
    assert!(!Path::new("/tmp").join(&escape).exists(), "a container link sent a sync write onto the host");
    let (ok, out) = project.sh("app", &format!("cat /tmp/{escape}"));
    assert!(ok && out == "fine\n", "{out}");
    project.down();
}

/// A tmpfs this test mounts on the host; unmounted on drop.
struct HostMount(PathBuf);

impl Drop for HostMount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn a_read_only_bind_is_read_only_in_its_submounts_too() {
    let host = tempfile::Builder::new().prefix("berth-robind-").tempdir().unwrap();
    let sub = host.path().join("sub");
    fs::create_dir(&sub).unwrap();
    nix::mount::mount(Some("berth-robind"), &sub, Some("tmpfs"), nix::mount::MsFlags::empty(), Some("size=1m"))
        .expect("mount a tmpfs under the bind source");
    let _mounted = HostMount(sub.clone());
    fs::write(sub.join("inside"), "submount\n").unwrap();
    fs::write(host.path().join("top"), "top\n").unwrap();

    let app = service(
        "app",
        &format!(
            "command: [\"sleep\", \"100000\"]\nstop_signal: SIGKILL\nvolumes:\n  - {}:/ro:ro",
            host.path().display()
        ),
    );
    let project = Project::new("battackro", &app);
    project.up();
    // The submount is there and readable, and neither it nor the top takes a write.
    let (ok, out) = project.sh("app", "cat /ro/top /ro/sub/inside");
    assert!(ok && out == "top\nsubmount\n", "{out}");
    let (ok, out) = project.sh("app", "echo x > /ro/sub/written");
    assert!(!ok && out.contains("Read-only file system"), "the submount took a write: {out}");
    let (ok, out) = project.sh("app", "echo x > /ro/written");
    assert!(!ok && out.contains("Read-only file system"), "the bind took a write: {out}");
    assert!(!sub.join("written").exists() && !host.path().join("written").exists());
    project.down();
}
