//! `cp`, `commit` and `export` (issue 22), as root with real containers: copies both ways into
//! running and stopped containers by docker's path rules, the symlink attacks performed (a
//! container's `/x -> /` and `/x -> /etc` must never send a copy to the host's files), a commit
//! that runs as a new service image, and an export without the container's mounts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};

use support::*;

fn ok(project: &Project, args: &[&str]) -> String {
    let out = project.berth(args);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "berth {args:?}: {text}\n{}", project.supervisor_log());
    text
}

fn sh_ok(project: &Project, service: &str, script: &str) -> String {
    let (success, text) = project.sh(service, script);
    assert!(success, "{service}: `{script}`: {text}");
    text
}

/// A path at the host's root that nothing else uses, for the attack tests to look for.
fn host_canary(name: &str) -> String {
    format!("berth-cp-attack-{name}-{}", std::process::id())
}

fn cp(project: &Project, args: &[&str]) -> std::process::Output {
    let mut all = vec!["cp"];
    all.extend_from_slice(args);
    project.berth(&all)
}

#[test]
fn cp_follows_dockers_path_rules_both_ways() {
    let project = Project::new("berthcprules", &service("box", IDLE));
    project.up();
    sh_ok(&project, "box", "mkdir -p /srv/sub && echo inside > /srv/sub/f && echo top > /srv/t");
    let host = tempfile::Builder::new().prefix("berth-cp-").tempdir().unwrap();
    let h = host.path();
    std::fs::write(h.join("file.txt"), "from the host\n").unwrap();
    std::fs::create_dir_all(h.join("tree/inner")).unwrap();
    std::fs::write(h.join("tree/inner/leaf"), "leaf\n").unwrap();
    let hs = |p: &str| h.join(p).to_str().unwrap().to_owned();

    // Into the container: a file to a missing name, into a directory, onto a file.
    ok(&project, &["cp", &hs("file.txt"), "box:/tmp/renamed"]);
    ok(&project, &["cp", &hs("file.txt"), "box:/srv"]);
    ok(&project, &["cp", &hs("file.txt"), "box:/srv/t"]);
    assert_eq!(sh_ok(&project, "box", "cat /tmp/renamed /srv/file.txt /srv/t"), "from the host\n".repeat(3));
    // A directory: made when missing, copied into an existing one, or its contents with `/.`.
    ok(&project, &["cp", &hs("tree"), "box:/made"]);
    ok(&project, &["cp", &hs("tree"), "box:/srv"]);
    ok(&project, &["cp", &format!("{}/.", hs("tree")), "box:/srv/sub"]);
    assert_eq!(
        sh_ok(&project, "box", "cat /made/inner/leaf /srv/tree/inner/leaf /srv/sub/inner/leaf"),
        "leaf\n".repeat(3)
    );
    // Errors as docker gives them.
    assert!(!cp(&project, &[&hs("file.txt"), "box:/no/such/dir/x"]).status.success(), "a missing parent");
    assert!(!cp(&project, &[&hs("file.txt"), "box:/missing-dir/"]).status.success(), "a missing DEST/");
    assert!(!cp(&project, &[&hs("tree"), "box:/srv/t"]).status.success(), "a directory onto a file");
    assert!(!cp(&project, &["box:/nope", &hs("x")]).status.success(), "a missing source");
    let both = cp(&project, &["box:/a", "box:/b"]);
    assert_eq!(both.status.code(), Some(2), "{both:?}");

    // Out of the container.
    ok(&project, &["cp", "box:/srv/sub/f", &hs("out-file")]);
    assert_eq!(std::fs::read_to_string(h.join("out-file")).unwrap(), "inside\n");
    ok(&project, &["cp", "box:/srv", &hs("out-dir")]);
    assert_eq!(std::fs::read_to_string(h.join("out-dir/sub/f")).unwrap(), "inside\n");
    std::fs::create_dir(h.join("existing")).unwrap();
    ok(&project, &["cp", "box:/srv", &hs("existing")]);
    assert!(h.join("existing/srv/sub/f").is_file());
    ok(&project, &["cp", "box:/srv/.", &hs("existing")]);
    assert!(h.join("existing/sub/f").is_file() && h.join("existing/t").is_file());

    // -a keeps owners; without it, a copy into the container belongs to root.
    std::fs::write(h.join("owned"), "x").unwrap();
    std::os::unix::fs::chown(h.join("owned"), Some(1234), Some(4321)).unwrap();
    ok(&project, &["cp", &hs("owned"), "box:/tmp/plain"]);
    ok(&project, &["cp", "-a", &hs("owned"), "box:/tmp/archived"]);
    assert_eq!(sh_ok(&project, "box", "stat -c %u:%g /tmp/plain /tmp/archived"), "0:0\n1234:4321\n");
    sh_ok(&project, "box", "echo x > /tmp/app-owned && chown 1000:2000 /tmp/app-owned");
    ok(&project, &["cp", "-a", "box:/tmp/app-owned", &hs("app-owned")]);
    let meta = std::fs::metadata(h.join("app-owned")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (1000, 2000));

    // Tar streams: `-` as SRC extracts stdin into a directory, as DEST writes the source.
    let mut child = project.command(&["cp", "box:/srv/sub", "-"]).stdout(Stdio::piped()).spawn().unwrap();
    let listing = Command::new("tar").arg("-tf").arg("-").stdin(child.stdout.take().unwrap()).output().unwrap();
    assert!(child.wait().unwrap().success());
    let names = String::from_utf8_lossy(&listing.stdout);
    assert!(names.lines().any(|l| l == "sub/f"), "{names}");
    let tarball = h.join("in.tar");
    let made = Command::new("tar").arg("-cf").arg(&tarball).arg("-C").arg(h).arg("tree").status().unwrap();
    assert!(made.success());
    let out = project.command(&["cp", "-", "box:/srv"]).stdin(std::fs::File::open(&tarball).unwrap()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(sh_ok(&project, "box", "cat /srv/tree/inner/leaf"), "leaf\n");
    project.down();
}

#[test]
fn a_symlink_in_the_container_never_sends_a_copy_to_the_host() {
    let services = format!("{}{}", service("box", IDLE), service("hostpid", &format!("{IDLE}\npid: host")));
    let project = Project::new("berthcpattack", &services);
    project.up();
    sh_ok(
        &project,
        "box",
        "ln -s / /rootlink && ln -s /etc /etclink && ln -s ../../../../../etc /srv-up && \
         echo container-only > /etc/berth-marker && echo container-host > /etc/hostname",
    );
    let host = tempfile::Builder::new().prefix("berth-cp-").tempdir().unwrap();
    let h = host.path();
    std::fs::write(h.join("payload"), "attack\n").unwrap();
    let payload = h.join("payload").to_str().unwrap().to_owned();
    let hs = |p: &str| h.join(p).to_str().unwrap().to_owned();

    let attack = |stage: &str| {
        let at_root = host_canary(&format!("{stage}-root"));
        let at_etc = host_canary(&format!("{stage}-etc"));
        let at_up = host_canary(&format!("{stage}-up"));
        ok(&project, &["cp", &payload, &format!("box:/rootlink/{at_root}")]);
        ok(&project, &["cp", &payload, &format!("box:/etclink/{at_etc}")]);
        ok(&project, &["cp", &payload, &format!("box:/srv-up/{at_up}")]);
        for host_path in [format!("/{at_root}"), format!("/etc/{at_etc}"), format!("/etc/{at_up}")] {
            let leaked = Path::new(&host_path).exists();
            let _ = std::fs::remove_file(&host_path);
            assert!(!leaked, "{stage}: the copy landed on the host at {host_path}");
        }
        (at_root, at_etc, at_up)
    };

    // Into a running container: every copy lands inside its root.
    let (at_root, at_etc, at_up) = attack("running");
    let inside = sh_ok(&project, "box", &format!("cat /{at_root} /etc/{at_etc} /etc/{at_up}"));
    assert_eq!(inside, "attack\n".repeat(3));

    // Out of it: the links resolve to the container's files, never the host's.
    ok(&project, &["cp", "box:/etclink/berth-marker", &hs("marker")]);
    assert_eq!(std::fs::read_to_string(h.join("marker")).unwrap(), "container-only\n");
    ok(&project, &["cp", "box:/rootlink/etc/hostname", &hs("hostname")]);
    assert_eq!(std::fs::read_to_string(h.join("hostname")).unwrap(), "container-host\n");
    ok(&project, &["cp", "-L", "box:/etclink", &hs("etc-copy")]);
    assert!(h.join("etc-copy/berth-marker").is_file(), "-L copies the container's /etc");
    ok(&project, &["cp", "box:/rootlink", &hs("link-copy")]);
    let link = std::fs::symlink_metadata(h.join("link-copy")).unwrap();
    assert!(link.file_type().is_symlink(), "without -L the link itself is copied");
    assert_eq!(std::fs::read_link(h.join("link-copy")).unwrap(), Path::new("/"));

    // A container in the host's PID namespace sees the host's processes in its /proc — berth's
    // own among them, as `/proc/self` — whose magic links (`/proc/self/root`) lead to the
    // host's root: they must lead nowhere.
    let secret = format!("/tmp/{}", host_canary("secret"));
    std::fs::write(&secret, "host secret\n").unwrap();
    sh_ok(&project, "hostpid", "ln -s /proc/self/root/tmp /hostlink && ln -s /proc/self/root /hostroot");
    let into = host_canary("hostpid");
    let _ = cp(&project, &[&payload, &format!("hostpid:/hostlink/{into}")]);
    let _ = cp(&project, &[&payload, &format!("hostpid:/hostroot/tmp/{into}")]);
    let leaked = Path::new(&format!("/tmp/{into}")).exists();
    let _ = std::fs::remove_file(format!("/tmp/{into}"));
    let name = Path::new(&secret).file_name().unwrap().to_str().unwrap().to_owned();
    let read = cp(&project, &[&format!("hostpid:/hostlink/{name}"), &hs("stolen")]);
    let read_direct = cp(&project, &[&format!("hostpid:/proc/self/root{secret}"), &hs("stolen-direct")]);
    let _ = std::fs::remove_file(&secret);
    assert!(!leaked, "a copy through /proc/self/root landed on the host");
    assert!(!read.status.success() && !h.join("stolen").exists(), "the host's file was read: {read:?}");
    assert!(!read_direct.status.success() && !h.join("stolen-direct").exists(), "{read_direct:?}");
    // Its own files still copy.
    ok(&project, &["cp", &payload, "hostpid:/tmp/fine"]);
    assert_eq!(sh_ok(&project, "hostpid", "cat /tmp/fine"), "attack\n");

    // The same against the stopped container, whose root is mounted for the copy.
    ok(&project, &["stop", "box"]);
    let (at_root, at_etc, at_up) = attack("stopped");
    ok(&project, &["cp", "box:/etclink/berth-marker", &hs("stopped-marker")]);
    assert_eq!(std::fs::read_to_string(h.join("stopped-marker")).unwrap(), "container-only\n");
    ok(&project, &["start", "box"]);
    let inside = sh_ok(&project, "box", &format!("cat /{at_root} /etc/{at_etc} /etc/{at_up}"));
    assert_eq!(inside, "attack\n".repeat(3), "the copies into the stopped container are in its layer");
    project.down();
}

#[test]
fn copies_into_a_stopped_container_are_there_when_it_starts() {
    let project = Project::new("berthcpstopped", &service("box", IDLE));
    project.up();
    sh_ok(&project, "box", "echo before > /kept");
    ok(&project, &["stop", "box"]);
    let host = tempfile::Builder::new().prefix("berth-cp-").tempdir().unwrap();
    let h = host.path();
    std::fs::write(h.join("new"), "copied while stopped\n").unwrap();
    std::fs::set_permissions(h.join("new"), std::fs::Permissions::from_mode(0o640)).unwrap();
    ok(&project, &["cp", h.join("new").to_str().unwrap(), "box:/data"]);
    ok(&project, &["cp", "box:/kept", h.join("kept").to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(h.join("kept")).unwrap(), "before\n");
    ok(&project, &["cp", "box:/data/a", h.join("image-file").to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(h.join("image-file")).unwrap(), "a\n", "the image's files show");
    ok(&project, &["start", "box"]);
    assert_eq!(sh_ok(&project, "box", "cat /data/new; stat -c %a /data/new"), "copied while stopped\n640\n");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains("berth-network-root/mnt"), "no mount of the copy is left: {mounts}");
    project.down();
}

#[test]
fn commit_makes_an_image_that_runs_as_a_new_service_image() {
    let project = Project::new(
        "berthcommit",
        &service("box", &format!("{IDLE}\nextra_hosts: [\"berth-commit-marker.invalid:10.9.8.7\"]")),
    );
    project.up();
    assert!(sh_ok(&project, "box", "cat /etc/hosts").contains("berth-commit-marker"));
    sh_ok(&project, "box", "echo changed > /hello && rm /etc/motd && rm -r /data && mkdir /data && echo c > /data/c");
    let image = "berth-test/committed:1";
    let id = ok(
        &project,
        &["commit", "-m", "a message", "-a", "Berth Test <t@example.invalid>", "-c", "ENV COMMITTED=yes", "box", image],
    );
    assert!(id.trim().starts_with("sha256:"), "{id}");
    project.down();

    let user = Project::new(
        "berthcommituser",
        &format!("  user:\n    image: {image}\n    pull_policy: never\n{NO_UPSTREAM}    {IDLE}\n"),
    );
    user.up();
    let seen = sh_ok(&user, "user", "cat /hello; echo $COMMITTED; ls /data; test -e /etc/motd || echo no-motd");
    assert_eq!(seen, "changed\nyes\nc\nno-motd\n");
    let hosts = sh_ok(&user, "user", "cat /etc/hosts");
    assert!(!hosts.contains("berth-commit-marker"), "the old container's /etc/hosts came along: {hosts}");
    user.down();

    let inspect: serde_json::Value = serde_json::from_str(&ok(&user, &["image", "inspect", image])).unwrap();
    assert_eq!(inspect[0]["Comment"], "a message");
    assert_eq!(inspect[0]["Author"], "Berth Test <t@example.invalid>");
    assert_eq!(inspect[0]["RepoTags"][0], image);
    assert_eq!(inspect[0]["RootFS"]["Layers"].as_array().unwrap().len(), 2);
    let history = ok(&user, &["image", "history", image]);
    assert!(history.contains("berth commit") && history.contains("a message"), "{history}");
    ok(&user, &["image", "rm", image]);
}

#[test]
fn export_writes_the_file_system_without_mounts() {
    let volume_dir = tempfile::Builder::new().prefix("berth-export-").tempdir().unwrap();
    std::fs::write(volume_dir.path().join("host-only"), "x").unwrap();
    let project = Project::new(
        "berthexport",
        &service("box", &format!("{IDLE}\nvolumes: [\"{}:/mnt/bound\"]", volume_dir.path().display())),
    );
    project.up();
    sh_ok(&project, "box", "echo exported > /exported");
    let out_dir = tempfile::Builder::new().prefix("berth-export-out-").tempdir().unwrap();
    let file = out_dir.path().join("fs.tar");
    ok(&project, &["export", "-o", file.to_str().unwrap(), "box"]);
    let listing = Command::new("tar").arg("-tf").arg(&file).output().unwrap();
    let names = String::from_utf8_lossy(&listing.stdout);
    for wanted in ["exported", "bin/busybox", "etc/passwd", "data/a"] {
        assert!(names.lines().any(|l| l.trim_end_matches('/') == wanted), "{wanted} missing:\n{names}");
    }
    assert!(!names.contains("host-only"), "a mount's content was exported");
    assert!(!names.lines().any(|l| l.starts_with("proc/")), "/proc's content was exported");
    // The stopped container exports the same files.
    ok(&project, &["stop", "box"]);
    let stopped = out_dir.path().join("stopped.tar");
    ok(&project, &["export", "-o", stopped.to_str().unwrap(), "box"]);
    let listing = Command::new("tar").arg("-tf").arg(&stopped).output().unwrap();
    let names = String::from_utf8_lossy(&listing.stdout);
    assert!(names.lines().any(|l| l == "exported"), "{names}");
    project.down();
}
