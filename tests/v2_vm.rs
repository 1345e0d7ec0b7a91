//! The pure cgroup v2 suite: boots Debian's kernel under qemu with the unified hierarchy only
//! (tests/vm/run.sh, which builds the VM with tests/vm/build.sh) and runs tests/vm/suite.sh in
//! it against this build's berth binary. This host is hybrid, so only the VM exercises berth's
//! v2 code for real. Needs root (for nothing but building the test image), qemu-system-x86 and
//! apt access to linux-image-amd64; without them the test fails and says what is missing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

#[test]
fn the_v2_suite_passes_in_a_pure_cgroup_v2_vm() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the VM test builds its image with umoci as root: run it as root (CI does)"
    );
    let qemu = Command::new("qemu-system-x86_64").arg("--version").output();
    assert!(
        qemu.is_ok_and(|o| o.status.success()),
        "qemu-system-x86_64 is missing: apt-get install qemu-system-x86 (tests/run-all.sh does)"
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vm/run.sh");
    let out = Command::new("bash").arg(script).arg(env!("CARGO_BIN_EXE_berth")).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(stdout.contains("BERTH-VM-SUMMARY"), "the VM gave no summary:\n{stdout}\n{stderr}");
    assert!(out.status.success(), "checks failed in the v2 VM:\n{stdout}\n{stderr}");
}
