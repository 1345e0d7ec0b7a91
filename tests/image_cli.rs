//! The image commands through the `berth` binary, as root, with images built by real tools
//! from local files (tests/fixtures/make-images.sh).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the image tests create device nodes and overlay mounts: run them as root (CI does)"
    );
}

/// The fixture images, built once per test run.
fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("berth-test-images");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/make-images.sh");
        let out = Command::new("bash").arg(script).arg(&dir).output().unwrap();
        assert!(out.status.success(), "building the test images failed:\n{}", String::from_utf8_lossy(&out.stderr));
        dir
    })
}

fn berth(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth")).arg("--root").arg(root).args(args).output().unwrap()
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "berth failed: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn state_root() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("berth-cli-root-").tempdir().unwrap()
}

#[test]
fn load_list_remove_and_prune_through_the_cli() {
    require_root();
    let images = fixtures();
    let root = state_root();
    let r = root.path();
    let loaded = ok(berth(r, &["load", "-i", images.join("busybox.docker.tar").to_str().unwrap()]));
    assert!(loaded.contains("Loaded image: berth-test/busybox:latest"), "{loaded}");
    ok(berth(r, &["load", "-i", images.join("two-layer.docker.tar").to_str().unwrap()]));

    let json: serde_json::Value = serde_json::from_str(&ok(berth(r, &["images", "--format", "json"]))).unwrap();
    let refs: Vec<&str> = json.as_array().unwrap().iter().filter_map(|i| i["reference"].as_str()).collect();
    assert!(refs.contains(&"docker.io/berth-test/busybox:latest"), "{refs:?}");
    assert!(refs.contains(&"docker.io/berth-test/two-layer:latest"), "{refs:?}");
    assert!(refs.contains(&"berth.invalid/host:latest"), "the host image is always listed: {refs:?}");
    for item in json.as_array().unwrap() {
        assert!(item["id"].as_str().unwrap().starts_with("sha256:"));
    }
    let table = ok(berth(r, &["images"]));
    assert!(table.starts_with("REPOSITORY"), "{table}");
    assert!(table.contains("berth-test/busybox"), "{table}");

    let removed = ok(berth(r, &["rmi", "berth-test/two-layer"]));
    assert!(
        removed.contains("Untagged: docker.io/berth-test/two-layer:latest") && removed.contains("Deleted: sha256:"),
        "{removed}"
    );
    let out = berth(r, &["rmi", "no-such-image"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such image"));

    ok(berth(r, &["rmi", "berth-test/busybox", "berth.invalid/host"]));
    let pruned = ok(berth(r, &["image", "prune"]));
    assert!(pruned.starts_with("Deleted"), "{pruned}");
    let layers = std::fs::read_dir(r.join("images/layers/sha256")).unwrap().count();
    let blobs = std::fs::read_dir(r.join("images/blobs/sha256")).unwrap().count();
    assert_eq!((layers, blobs), (0, 0), "nothing is left once every image is removed");
}

#[test]
fn import_reads_a_tarball_from_a_file_and_from_stdin() {
    require_root();
    let images = fixtures();
    let root = state_root();
    let id = ok(berth(
        root.path(),
        &["import", images.join("rootfs.tar").to_str().unwrap(), "local/rootfs:v1", "--cmd", "sh"],
    ));
    assert!(id.trim().starts_with("sha256:"), "{id}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("--root")
        .arg(root.path())
        .args(["import", "-", "local/rootfs:stdin"])
        .stdin(std::fs::File::open(images.join("rootfs.tar")).unwrap())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success());
    let json: serde_json::Value =
        serde_json::from_str(&ok(berth(root.path(), &["images", "--format", "json"]))).unwrap();
    let ids: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["repository"].as_str().is_some_and(|r| r.starts_with("local/rootfs")))
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{json}");
}

#[test]
fn a_state_root_on_overlayfs_is_refused_with_a_clear_error() {
    require_root();
    let base = tempfile::Builder::new().prefix("berth-ovl-").tempdir().unwrap();
    let b = base.path();
    for d in ["lower", "upper", "work", "merged"] {
        std::fs::create_dir(b.join(d)).unwrap();
    }
    // A private mount namespace: the overlay disappears with the shell, whatever happens.
    let script = format!(
        "mount -t overlay berth-test-ovl -o lowerdir={0}/lower,upperdir={0}/upper,workdir={0}/work {0}/merged && exec {1} --root {0}/merged images",
        b.display(),
        env!("CARGO_BIN_EXE_berth")
    );
    let out = Command::new("unshare").args(["-m", "--propagation", "private", "sh", "-c", &script]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("overlayfs") && err.contains("--root"), "{err}");
}
