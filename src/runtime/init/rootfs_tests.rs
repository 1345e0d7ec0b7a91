//! The exact sequence of mount, device and pivot steps for representative specs, recorded by
//! the fake [`Sys`] on a temporary root (no root privilege, nothing mounted).

use std::fs;
use std::path::{Path, PathBuf};

use super::*;
use crate::runtime::init::sys::fake::Recorder;
use crate::runtime::spec::{Mount, MountKind};

/// A state root with one container's directories, an image-like root file system and a host
/// directory to bind.
struct Fixture {
    state: tempfile::TempDir,
    host: tempfile::TempDir,
    dirs: ContainerDirs,
}

fn fixture() -> Fixture {
    let state = tempfile::tempdir().unwrap();
    let host = tempfile::tempdir().unwrap();
    let dirs = ContainerDirs::new(state.path(), "c1");
    let root = dirs.rootfs();
    for dir in ["etc", "proc/acpi", "proc/sys", "srv/data", "bin"] {
        fs::create_dir_all(root.join(dir)).unwrap();
    }
    fs::write(root.join("proc/kcore"), "").unwrap();
    fs::write(root.join("srv/data/seed"), "from the image\n").unwrap();
    fs::create_dir_all(&dirs.dir).unwrap();
    for name in ["hosts", "hostname", "resolv.conf"] {
        fs::write(dirs.init_file(name), "").unwrap();
    }
    fs::create_dir_all(host.path().join("data")).unwrap();
    fs::create_dir_all(state.path().join("volumes/v/_data")).unwrap();
    Fixture { state, host, dirs }
}

impl Fixture {
    fn spec(&self, mounts: Vec<Mount>, privileged: bool) -> ContainerSpec {
        let mut spec: ContainerSpec = serde_json::from_value(serde_json::json!({
            "id": "c1", "name": "p-app-1", "project": "p", "service": "app",
            "rootfs": { "layer_root": self.state.path().join("l"), "lower": ["L1"] },
            "process": { "args": ["true"], "env": [], "cwd": "/", "capabilities": [] },
            "hostname": "app",
            "namespaces": { "net": "private", "pid": "private", "ipc": "private", "uts": "private" },
            "etc": { "hosts": "", "hostname": "", "resolv_conf": "" },
            "shm_size": 65536,
        }))
        .unwrap();
        spec.mounts = mounts;
        spec.privileged = privileged;
        spec
    }

    /// The recorded calls with the temporary paths replaced by `$STATE` and `$HOST`.
    fn run(&self, spec: &ContainerSpec) -> (Vec<String>, Result<Root, Failure>) {
        let recorder = Recorder::leak(&self.dirs.rootfs());
        let result = prepare(recorder, spec, &self.dirs);
        let state = self.state.path().to_string_lossy().into_owned();
        let host = self.host.path().to_string_lossy().into_owned();
        let calls = recorder.calls().iter().map(|c| c.replace(&state, "$STATE").replace(&host, "$HOST")).collect();
        (calls, result)
    }
}

fn strings(lines: &[&str]) -> Vec<String> {
    lines.iter().map(|l| (*l).to_owned()).collect()
}

/// What every container gets before its volumes: rslave, overlay, /proc, /sys and /dev.
const BASE: [&str; 19] = [
    "mount - / - [MS_REC | MS_SLAVE] -",
    "chdir $STATE/l",
    "mount overlay / overlay [] lowerdir=$STATE/init-layer:L1,upperdir=$STATE/containers/c1/upper,workdir=$STATE/containers/c1/work",
    "chdir /",
    "mount proc /proc proc [MS_NOSUID | MS_NODEV | MS_NOEXEC] -",
    "mount sysfs /sys sysfs [MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC] -",
    "mount tmpfs /dev tmpfs [MS_NOSUID | MS_STRICTATIME] mode=755,size=65536k",
    "mknod /dev/null 1:3",
    "mknod /dev/zero 1:5",
    "mknod /dev/full 1:7",
    "mknod /dev/random 1:8",
    "mknod /dev/urandom 1:9",
    "mknod /dev/tty 5:0",
    "symlink /dev/fd -> /proc/self/fd",
    "symlink /dev/stdin -> /proc/self/fd/0",
    "symlink /dev/stdout -> /proc/self/fd/1",
    "symlink /dev/stderr -> /proc/self/fd/2",
    "symlink /dev/core -> /proc/kcore",
    "symlink /dev/ptmx -> pts/ptmx",
];

const DEV_MOUNTS: [&str; 3] = [
    "mount devpts /dev/pts devpts [MS_NOSUID | MS_NOEXEC] newinstance,ptmxmode=0666,mode=0620,gid=5",
    "mount shm /dev/shm tmpfs [MS_NOSUID | MS_NODEV | MS_NOEXEC] mode=1777,size=65536",
    "mount mqueue /dev/mqueue mqueue [MS_NOSUID | MS_NODEV | MS_NOEXEC] -",
];

fn init_layer_binds() -> Vec<String> {
    ["hosts", "hostname", "resolv.conf"]
        .iter()
        .flat_map(|n| {
            [format!("open_tree $STATE/containers/c1/{n}"), format!("move_mount $STATE/containers/c1/{n} /etc/{n}")]
        })
        .collect()
}

#[test]
fn a_plain_container_gets_root_dev_proc_init_files_and_docker_masks() {
    let f = fixture();
    let (calls, result) = f.run(&f.spec(Vec::new(), false));
    result.unwrap();
    let mut want = strings(&BASE);
    want.extend(strings(&DEV_MOUNTS));
    want.extend(init_layer_binds());
    want.extend(strings(&[
        // Masks: a directory gets an empty read-only tmpfs, a file /dev/null.
        "mount tmpfs /proc/acpi tmpfs [MS_RDONLY] size=0",
        "mount /dev/null /proc/kcore - [MS_BIND] -",
        // Read-only paths: a sealed copy of their own tree over themselves, resolved once.
        "open_tree /proc/sys",
        "mount_setattr /proc/sys ro,nosuid,nodev,noexec recursive",
        "move_mount /proc/sys /proc/sys",
    ]));
    assert_eq!(calls, want);
}

#[test]
fn a_privileged_container_is_not_masked() {
    let f = fixture();
    let (calls, result) = f.run(&f.spec(Vec::new(), true));
    result.unwrap();
    assert!(calls.iter().all(|c| !c.contains("/proc/acpi") && !c.contains("/proc/sys")), "{calls:#?}");
    assert!(calls.last().unwrap().starts_with("move_mount $STATE/containers/c1/resolv.conf"));
}

#[test]
fn binds_volumes_and_tmpfs_follow_in_order_and_read_only_is_recursive_before_attaching() {
    let f = fixture();
    let volume = f.state.path().join("volumes/v/_data");
    let mounts = vec![
        Mount {
            kind: MountKind::Bind { source: f.host.path().join("data"), create_host_path: false, propagation: None },
            target: "/data".into(),
            read_only: true,
        },
        Mount {
            kind: MountKind::Volume { name: "v".into(), dir: volume.clone(), copy_up: true },
            target: "/srv/data".into(),
            read_only: false,
        },
        Mount { kind: MountKind::Tmpfs { size: Some(1024), mode: None }, target: "/run".into(), read_only: false },
    ];
    let (calls, result) = f.run(&f.spec(mounts, true));
    result.unwrap();
    let mut want = strings(&BASE);
    want.extend(strings(&DEV_MOUNTS));
    want.extend(strings(&[
        "open_tree $HOST/data",
        // Read-only on the detached copy, every submount included, before it is visible.
        "mount_setattr $HOST/data ro recursive",
        "move_mount $HOST/data /data",
        // Propagation through the attached tree's descriptor (docker's default: rprivate).
        "mount - $HOST/data - [MS_REC | MS_PRIVATE] -",
        "open_tree $STATE/volumes/v/_data",
        "move_mount $STATE/volumes/v/_data /srv/data",
        "mount tmpfs /run tmpfs [MS_NOSUID | MS_NODEV] mode=1777,size=1024",
    ]));
    want.extend(init_layer_binds());
    assert_eq!(calls, want);
    // The empty volume got the image's content (copied for real, from descriptors).
    assert_eq!(fs::read_to_string(volume.join("seed")).unwrap(), "from the image\n");
}

#[test]
fn an_image_symlink_cannot_send_a_bind_target_out_of_the_root() {
    let f = fixture();
    let outside = tempfile::tempdir().unwrap();
    let escape: PathBuf = outside.path().join("escape");
    // An image whose /data is an absolute link to the host's directory, and a relative one
    // climbing past the root.
    std::os::unix::fs::symlink(outside.path(), f.dirs.rootfs().join("data")).unwrap();
    // The same path inside the root, which is where the link leads when resolved in it.
    fs::create_dir_all(f.dirs.rootfs().join(outside.path().strip_prefix("/").unwrap())).unwrap();
    std::os::unix::fs::symlink("../../../../../../..", f.dirs.rootfs().join("up")).unwrap();
    let bind = |target: &str| Mount {
        kind: MountKind::Bind { source: f.host.path().join("data"), create_host_path: false, propagation: None },
        target: target.into(),
        read_only: false,
    };
    let (calls, result) = f.run(&f.spec(vec![bind("/data/escape"), bind("/up/tmp/escape")], true));
    result.unwrap();
    assert!(!escape.exists(), "a bind target was created outside the root");
    let moves: Vec<&String> = calls.iter().filter(|c| c.starts_with("move_mount $HOST")).collect();
    // The links resolve as if the root were `/`: both land inside it (shown from `/`).
    let inside = format!("{}/escape", outside.path().display());
    assert_eq!(moves, [&format!("move_mount $HOST/data {inside}"), "move_mount $HOST/data /tmp/escape"], "{calls:#?}");
    assert!(f.dirs.rootfs().join("tmp/escape").is_dir());
    assert!(Path::new(&f.dirs.rootfs()).join(outside.path().strip_prefix("/").unwrap()).join("escape").is_dir());
}

#[test]
fn pivot_detaches_the_old_root() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::leak(dir.path());
    pivot(recorder, dir.path()).unwrap();
    assert_eq!(
        recorder.calls(),
        strings(&["chdir /", "pivot_root . .", "mount - . - [MS_REC | MS_SLAVE] -", "umount .", "chdir /",])
    );
}
