//! The store commands of issue 22 through the `berth` binary, as root: `image save` read back
//! by `podman load` (a private podman store, vfs driver, under /tmp) and by `berth load`, a
//! podman-written archive loaded by berth, `image tag`, `image inspect` and `image history`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    assert!(nix::unistd::geteuid().is_root(), "the image tests make overlay layers: run them as root (CI does)");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("berth-test-images");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/make-images.sh");
    let out = Command::new("bash").arg(script).arg(&dir).output().unwrap();
    assert!(out.status.success(), "building the test images failed:\n{}", String::from_utf8_lossy(&out.stderr));
    dir
}

fn berth(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth")).arg("--root").arg(root).args(args).output().unwrap()
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "failed: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn state_root() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("berth-store-root-").tempdir().unwrap()
}

/// A podman with a store of its own, removed (images and all) on drop.
struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    fn new() -> Podman {
        Podman { dir: tempfile::Builder::new().prefix("berth-podman-").tempdir().unwrap() }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("podman")
            .arg("--root")
            .arg(self.dir.path().join("root"))
            .arg("--runroot")
            .arg(self.dir.path().join("run"))
            .args(["--storage-driver", "vfs"])
            .args(args)
            .output()
            .expect("podman is installed (apt-get install podman)")
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.run(&["rmi", "-a", "-f"]);
        let _ = self.run(&["system", "reset", "-f"]);
    }
}

#[test]
fn image_save_round_trips_through_podman_load_and_berth_load() {
    let images = fixtures();
    let root = state_root();
    let r = root.path();
    ok(berth(r, &["load", "-i", images.join("two-layer.docker.tar").to_str().unwrap()]));
    ok(berth(r, &["image", "tag", "berth-test/two-layer", "example.invalid/berth/saved:v2"]));
    let id = ok(berth(r, &["images", "-q"])).lines().find(|l| !l.is_empty()).map(str::to_owned);
    let inspect: serde_json::Value =
        serde_json::from_str(&ok(berth(r, &["image", "inspect", "example.invalid/berth/saved:v2"]))).unwrap();
    let full_id = inspect[0]["Id"].as_str().unwrap().to_owned();
    assert!(id.is_some());

    let out_dir = tempfile::Builder::new().prefix("berth-save-").tempdir().unwrap();
    let archive = out_dir.path().join("saved.tar");
    ok(berth(
        r,
        &["image", "save", "-o", archive.to_str().unwrap(), "berth-test/two-layer", "example.invalid/berth/saved:v2"],
    ));

    // podman reads it, with both names and the same image id (the config digest).
    let podman = Podman::new();
    let loaded = podman.run(&["load", "-i", archive.to_str().unwrap()]);
    assert!(loaded.status.success(), "podman load: {}", String::from_utf8_lossy(&loaded.stderr));
    let seen =
        ok(podman.run(&["image", "inspect", "--format", "{{.Id}} {{.RepoTags}}", "example.invalid/berth/saved:v2"]));
    assert!(seen.starts_with(full_id.trim_start_matches("sha256:")), "{seen} vs {full_id}");
    assert!(seen.contains("berth-test/two-layer:latest"), "{seen}");
    // The layers are right too: podman's own save of it loads into berth as the same image.
    let resaved = out_dir.path().join("podman.tar");
    ok(podman.run(&["save", "-o", resaved.to_str().unwrap(), "example.invalid/berth/saved:v2"]));

    for source in [&archive, &resaved] {
        let fresh = state_root();
        let text = ok(berth(fresh.path(), &["load", "-i", source.to_str().unwrap()]));
        assert!(text.contains("example.invalid/berth/saved:v2"), "{text}");
        let back: serde_json::Value =
            serde_json::from_str(&ok(berth(fresh.path(), &["image", "inspect", "example.invalid/berth/saved:v2"])))
                .unwrap();
        assert_eq!(back[0]["Id"], full_id.as_str(), "{}", source.display());
        assert_eq!(back[0]["RootFS"], inspect[0]["RootFS"]);
    }
    // An image that is not there: exit 2, nothing written.
    let missing = out_dir.path().join("missing.tar");
    let out = berth(r, &["image", "save", "-o", missing.to_str().unwrap(), "no-such-image"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!missing.exists());
    assert_eq!(std::fs::read_dir(out_dir.path()).unwrap().count(), 2, "no temporary file is left");
}

#[test]
fn tag_inspect_and_history_show_the_store() {
    let images = fixtures();
    let root = state_root();
    let r = root.path();
    ok(berth(r, &["load", "-i", images.join("two-layer.oci.tar").to_str().unwrap()]));
    let listed = ok(berth(r, &["images", "--format", "json"]));
    let json: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let id = json.as_array().unwrap().iter().find(|i| i["layers"] == 2).unwrap()["id"].as_str().unwrap().to_owned();
    ok(berth(r, &["image", "tag", &id[7..19], "local/tagged:1"]));
    let inspect: serde_json::Value =
        serde_json::from_str(&ok(berth(r, &["image", "inspect", "local/tagged:1"]))).unwrap();
    let doc = &inspect[0];
    assert_eq!(doc["Id"], id.as_str());
    assert!(doc["RepoTags"].as_array().unwrap().iter().any(|t| t == "local/tagged:1"), "{doc}");
    assert_eq!(doc["Config"]["Cmd"][0], "sh");
    assert_eq!(doc["Os"], "linux");
    assert_eq!(doc["RootFS"]["Layers"].as_array().unwrap().len(), 2);

    let history = ok(berth(r, &["image", "history", "local/tagged:1"]));
    let mut lines = history.lines();
    assert!(lines.next().unwrap().starts_with("IMAGE"), "{history}");
    assert!(lines.next().unwrap().starts_with(&id[7..19]), "{history}");
    assert!(history.contains("<missing>"), "{history}");
    let quiet = ok(berth(r, &["image", "history", "-q", "--no-trunc", "local/tagged:1"]));
    assert_eq!(quiet.lines().next(), Some(id.as_str()));

    let out = berth(r, &["image", "inspect", "local/tagged:1", "no-such-image"]);
    assert_eq!(out.status.code(), Some(1), "docker fails for a missing image, after printing the others");
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed.as_array().unwrap().len(), 1);
    assert_eq!(berth(r, &["image", "tag", "no-such-image", "x:1"]).status.code(), Some(2));
    assert_eq!(berth(r, &["image", "tag", "local/tagged:1", "Bad Name"]).status.code(), Some(2));
}
