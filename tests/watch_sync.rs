//! `develop.watch` sync into a running container from the host side, as root: files land in the
//! container's overlay and volumes, owned by its non-root user, and its symlinks cannot send a
//! write to the host.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use berth::watch::sync::SyncTarget;
use support::*;

#[test]
fn files_are_synced_into_a_running_container_as_its_user_and_removed() {
    let app = service(
        "app",
        "user: \"1000:1000\"\ncommand: [\"sleep\", \"100000\"]\nstop_signal: SIGKILL\nvolumes:\n  - data:/data",
    );
    let project = Project::new("bsyncuser", &format!("{app}volumes:\n  data: {{}}\n"));
    // A failed earlier run may have left the named volume.
    project.berth(&["down", "-v", "-t", "0"]);
    project.up();
    let pid = project.pid_of("bsyncuser-app-1").expect("the container's pid");
    let target = SyncTarget::open(pid, "1000:1000").unwrap();
    assert_eq!(target.owner(), Some((1000, 1000)));

    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("f"), "synced from the host\n").unwrap();
    std::fs::create_dir(host.path().join("sub")).unwrap();
    std::fs::write(host.path().join("sub/run.sh"), "#!/bin/sh\necho ran\n").unwrap();
    std::fs::set_permissions(host.path().join("sub/run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(target.copy_in(host.path(), "/app").unwrap(), 2);

    let (ok, out) = project.sh("app", "id -u; cat /app/f; stat -c %u:%g /app/f /app /app/sub; /app/sub/run.sh");
    assert!(ok, "{out}");
    assert_eq!(out, "1000\nsynced from the host\n1000:1000\n1000:1000\n1000:1000\nran\n");

    // An overwrite is seen whole; the volume gets the file too.
    std::fs::write(host.path().join("f"), "second version\n").unwrap();
    assert_eq!(target.copy_in(&host.path().join("f"), "/app/f").unwrap(), 1);
    assert_eq!(target.copy_in(&host.path().join("f"), "/data/nested/f").unwrap(), 1);
    let (ok, out) = project.sh("app", "cat /app/f /data/nested/f; ls -A /app; stat -c %u:%g /data/nested");
    assert!(ok, "{out}");
    assert_eq!(out, "second version\nsecond version\nf\nsub\n1000:1000\n");

    // A symlink the container user makes to / is the container's /, not the host's.
    let escape = format!("bsync-escape-{}", std::process::id());
    let (ok, out) = project.sh("app", "ln -s / /data/nested/evil && ln -s ../../../.. /data/nested/up");
    assert!(ok, "{out}");
    target.copy_in(&host.path().join("f"), &format!("/data/nested/evil/tmp/{escape}")).unwrap();
    target.copy_in(&host.path().join("f"), &format!("/data/nested/up/tmp/{escape}-up")).unwrap();
    assert!(!Path::new("/tmp").join(&escape).exists(), "a container symlink sent a write to the host");
    assert!(!Path::new("/tmp").join(format!("{escape}-up")).exists());
    let (ok, out) = project.sh("app", &format!("cat /tmp/{escape} /tmp/{escape}-up"));
    assert!(ok && out == "second version\nsecond version\n", "{out}");

    target.remove("/app").unwrap();
    target.remove("/data/nested/evil").unwrap();
    target.remove("/app/never/was").unwrap();
    let (ok, out) = project.sh("app", "ls -A /app 2>&1; ls /data/nested; test -d /bin && echo root intact");
    assert!(ok, "{out}");
    assert!(out.contains("No such file") && out.contains("\nf\nup\n") && out.ends_with("root intact\n"), "{out}");
    let out = project.berth(&["down", "-v", "-t", "0"]);
    assert!(out.status.success(), "down -v: {}", String::from_utf8_lossy(&out.stderr));
}
