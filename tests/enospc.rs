//! A full disk (issue 21, item 7): berth's state root on a small tmpfs that fills during an
//! image's unpacking, a build (COPY, and a RUN's writes) and a container's log writes. Each
//! time: a clear error (ENOSPC named), nothing half-made (no staging, no image named, no
//! container, no build network, no half log record), the image store consistent, and the same
//! command working again once there is room. The pull case is in tests/pull.rs (it needs the
//! registry harness there).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::*;

const NO_SPACE: &str = "No space left on device";

fn berth(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth")).arg("--root").arg(root).args(args).stdin(Stdio::null()).output().unwrap()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn load(root: &Path) -> Output {
    let tar = test_images().join("busybox.docker.tar");
    berth(root, &["load", "-i", tar.to_str().unwrap()])
}

/// Entries of `dir` under the state root (none when it does not exist).
fn entries(root: &Path, dir: &str) -> Vec<String> {
    std::fs::read_dir(root.join(dir))
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

fn assert_nothing_half_made(root: &Path, when: &str) {
    let problems = store_problems(root);
    assert!(problems.is_empty(), "{when}: the store is not consistent: {problems:#?}");
    let containers = entries(root, "containers");
    assert!(containers.iter().all(|c| c.starts_with('.')), "{when}: containers left: {containers:?}");
    let networks: Vec<_> = entries(root, "networks").into_iter().filter(|n| n.ends_with(".json")).collect();
    assert!(networks.is_empty(), "{when}: networks left: {networks:?}");
    let builds: Vec<_> = entries(root, "build-networks");
    assert!(builds.is_empty(), "{when}: build networks left: {builds:?}");
}

#[test]
fn a_full_disk_while_unpacking_a_layer_is_a_clear_error_and_a_retry_with_room_works() {
    // The docker archive's layer is an uncompressed 2.1 MB tar: its blob fits, its unpacked
    // copy does not.
    let tmpfs = SmallTmpfs::mount("3m");
    let root = tmpfs.path().join("root");
    let out = load(&root);
    let said = text(&out);
    assert!(!out.status.success(), "load on a full disk succeeded: {said}");
    assert!(said.contains(NO_SPACE), "{said}");
    println!("ENOSPC unpack: {}", said.trim());
    assert_nothing_half_made(&root, "after the failed load");
    let images = berth(&root, &["images"]);
    assert!(images.status.success(), "images: {}", text(&images));
    assert!(!text(&images).contains("berth-test/busybox"), "no image is named: {}", text(&images));

    tmpfs.resize("16m");
    let out = load(&root);
    assert!(out.status.success(), "load with room: {}", text(&out));
    assert_nothing_half_made(&root, "after the load with room");
}

#[test]
fn a_full_disk_during_a_build_is_a_clear_error_and_leaves_no_image_container_or_network() {
    let tmpfs = SmallTmpfs::mount("12m");
    let root = tmpfs.path().join("root");
    let out = load(&root);
    assert!(out.status.success(), "load: {}", text(&out));
    let project = tempfile::Builder::new().prefix("berth-enospc-build-").tempdir().unwrap();
    let file = project.path().join("compose.yaml");
    std::fs::write(&file, "name: benospc\nservices:\n  app:\n    build: .\n").unwrap();
    let build = |dockerfile: &str| {
        std::fs::write(project.path().join("Dockerfile"), dockerfile).unwrap();
        berth(&root, &["-f", file.to_str().unwrap(), "build", "--no-cache"])
    };

    // COPY: berth's own writes fill the disk.
    std::fs::write(project.path().join("big.bin"), vec![7u8; 32 << 20]).unwrap();
    let out = build("FROM berth-test/busybox:latest\nCOPY big.bin /big.bin\n");
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("Dockerfile:2: COPY") && said.contains(NO_SPACE), "{said}");
    println!("ENOSPC build COPY: {}", said.lines().last().unwrap_or_default());
    assert_nothing_half_made(&root, "after the COPY that filled the disk");

    // RUN: the container's writes fill it; its container and the build network go.
    std::fs::remove_file(project.path().join("big.bin")).unwrap();
    let out = build("FROM berth-test/busybox:latest\nRUN dd if=/dev/zero of=/fill bs=1M count=64\n");
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains(NO_SPACE) && said.contains("Dockerfile:2: RUN"), "{said}");
    println!("ENOSPC build RUN: {}", said.lines().last().unwrap_or_default());
    assert_nothing_half_made(&root, "after the RUN that filled the disk");
    let images = text(&berth(&root, &["images"]));
    assert!(!images.contains("benospc"), "no image is named after a failed build: {images}");

    let out = build("FROM berth-test/busybox:latest\nRUN echo fits > /fits\n");
    assert!(out.status.success(), "a build that fits: {}", text(&out));
    let out = berth(&root, &["-f", file.to_str().unwrap(), "down"]);
    assert!(out.status.success(), "down: {}", text(&out));
    assert_nothing_half_made(&root, "after a build that fits");
}

/// Takes the project down however the test ends.
struct Down {
    root: std::path::PathBuf,
    file: std::path::PathBuf,
}

impl Drop for Down {
    fn drop(&mut self) {
        let _ = berth(&self.root, &["-f", self.file.to_str().unwrap(), "down", "-t", "0"]);
    }
}

/// One log record: `NANOS STREAM KIND TEXT`.
fn is_whole_record(line: &str) -> bool {
    let mut parts = line.splitn(4, ' ');
    let nanos = parts.next().is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    let stream = parts.next().is_some_and(|s| s == "stdout" || s == "stderr");
    let kind = parts.next().is_some_and(|k| k == "F" || k == "P");
    nanos && stream && kind && parts.next().is_some()
}

#[test]
fn a_full_disk_under_a_containers_log_keeps_it_running_and_the_log_says_what_was_lost() {
    let tmpfs = SmallTmpfs::mount("12m");
    let root = tmpfs.path().join("root");
    let out = load(&root);
    assert!(out.status.success(), "load: {}", text(&out));
    let project = tempfile::Builder::new().prefix("berth-enospc-logs-").tempdir().unwrap();
    let file = project.path().join("compose.yaml");
    // Lines of a known shape until writing fails; a write error ends it with code 3, which
    // the test would see as an exited container.
    let line = "x".repeat(200);
    std::fs::write(
        &file,
        format!(
            "name: benospclog\nservices:\n  app:\n    image: berth-test/busybox:latest\n    pull_policy: never\n    \
             logging:\n      options:\n        max-size: 1g\n    \
             command: [\"sh\", \"-c\", \"i=0; while echo \\\"line $$i {line}\\\"; do i=$$((i+1)); done; exit 3\"]\n"
        ),
    )
    .unwrap();
    let compose = |args: &[&str]| {
        let mut all = vec!["-f", file.to_str().unwrap()];
        all.extend_from_slice(args);
        berth(&root, &all)
    };
    // Declared after the tmpfs, so dropped (the project taken down) before it is unmounted.
    let _down = Down { root: root.clone(), file: file.clone() };
    let out = compose(&["up", "-d"]);
    assert!(out.status.success(), "up: {}", text(&out));
    // Bounded only so a broken setup fails: the container writes megabytes a second.
    let deadline = Instant::now() + Duration::from_secs(120);
    while tmpfs.free() > 64 * 1024 {
        assert!(Instant::now() < deadline, "the disk never filled: {} bytes free", tmpfs.free());
        std::thread::sleep(Duration::from_millis(100));
    }
    // Full now; the container goes on writing into the supervisor's pipe.
    std::thread::sleep(Duration::from_secs(1));
    let ps = text(&compose(&["ps", "--format", "json"]));
    assert!(
        ps.contains("benospclog-app-1") && ps.contains("\"State\":\"running\""),
        "the container runs on with the disk full: {ps}"
    );

    tmpfs.resize("64m");
    let deadline = Instant::now() + Duration::from_secs(60);
    let log_path = root.join("projects/benospclog/logs/benospclog-app-1.log");
    loop {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if log.contains("of output were lost here") {
            let note = log.lines().find(|l| l.contains("of output were lost here")).unwrap();
            assert!(note.contains(NO_SPACE), "{note}");
            println!("ENOSPC logs: {note}");
            break;
        }
        assert!(Instant::now() < deadline, "the log never said what was lost");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Every record but the last (which may be being written) is whole: the ones the disk
    // cut part way were taken back.
    let log = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    let broken: Vec<_> = lines[..lines.len() - 1].iter().filter(|l| !is_whole_record(l)).take(3).collect();
    assert!(broken.is_empty(), "half-written records: {broken:?}");
    let out = compose(&["down", "-t", "0"]);
    assert!(out.status.success(), "down: {}", text(&out));
    let ps = text(&compose(&["ps", "-a"]));
    assert!(!ps.contains("benospclog-app"), "{ps}");
    assert_nothing_half_made(&root, "after down");
}
