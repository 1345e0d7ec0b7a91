//! The device program: its generation from rules (against the v1 controller's semantics) and,
//! as root, its enforcement on a real cgroup of the unified tree with no v1 policy around it.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::default_device_rules;
use super::devices::*;

fn rule(allow: bool, text: &str) -> DeviceRule {
    DeviceRule::parse(allow, text).unwrap()
}

#[test]
fn rules_parse_like_the_v1_files() {
    assert_eq!(
        rule(true, "c 136:* rwm"),
        DeviceRule { allow: true, kind: Some(b'c'), major: Some(136), minor: None, access: 7 }
    );
    assert_eq!(rule(false, "a *:* rwm"), DeviceRule { allow: false, kind: None, major: None, minor: None, access: 7 });
    assert_eq!(rule(true, "b *:* m").access, ACC_MKNOD);
    for bad in ["", "c 1:3", "x 1:3 rwm", "c 1-3 rwm", "c a:3 rwm", "c 1:3 rwx", "c 1:3 rwm extra"] {
        assert!(DeviceRule::parse(true, bad).is_err(), "{bad:?} should not parse");
    }
}

#[test]
fn docker_policy_compiles_to_the_expected_instructions() {
    let program = program(&[rule(false, "a *:* rwm"), rule(true, "c 1:3 rwm"), rule(true, "c *:* m")]);
    let expected = [
        // Prologue: type, access, major, minor.
        (LDX_W, 0x12, 0, 0),
        (AND32_K, 0x02, 0, 0xffff),
        (LDX_W, 0x13, 0, 0),
        (RSH32_K, 0x03, 0, 16),
        (LDX_W, 0x14, 4, 0),
        (LDX_W, 0x15, 8, 0),
        // `c *:* m`, the last rule, is tested first: char, and no access but mknod.
        (JNE_K, 0x02, 5, 2),
        (MOV32_X, 0x31, 0, 0),
        (AND32_K, 0x01, 0, 6),
        (JNE_K, 0x01, 2, 0),
        (MOV32_K, 0x00, 0, 1),
        (EXIT, 0, 0, 0),
        // `c 1:3 rwm`.
        (JNE_K, 0x02, 4, 2),
        (JNE_K, 0x04, 3, 1),
        (JNE_K, 0x05, 2, 3),
        (MOV32_K, 0x00, 0, 1),
        (EXIT, 0, 0, 0),
        // `a *:* rwm` deny: unconditional, and the end.
        (MOV32_K, 0x00, 0, 0),
        (EXIT, 0, 0, 0),
    ];
    let got: Vec<(u8, u8, i16, i32)> = program.iter().map(|i| (i.code, i.regs, i.off, i.imm)).collect();
    assert_eq!(got, expected);
}

#[test]
fn the_program_decides_as_the_v1_controller_does() {
    let policies = [
        default_device_rules(),
        vec![rule(true, "a *:* rwm"), rule(false, "b 8:* rw"), rule(true, "b 8:0 r")],
        vec![rule(true, "c 1:3 r"), rule(true, "c 1:3 w")],
        vec![],
    ];
    let mut checked = 0;
    for rules in &policies {
        let program = program(rules);
        for kind in [b'c', b'b'] {
            for (major, minor) in [(1, 3), (1, 5), (1, 11), (4, 64), (5, 2), (8, 0), (8, 1), (10, 200), (136, 7)] {
                for access in 1..=7 {
                    let want = decide(rules, kind, major, minor, access);
                    let got = interpret(&program, kind, major, minor, access);
                    assert_eq!(got, Some(want), "{rules:?}: {} {major}:{minor} access {access}", kind as char);
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 4 * 2 * 9 * 7);
}

#[test]
fn docker_policy_opens_the_standard_devices_only() {
    let rules = default_device_rules();
    assert_eq!(rules.len(), 13);
    let program = program(&rules);
    let rw = ACC_READ | ACC_WRITE;
    for (major, minor) in [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2), (136, 4), (10, 200)] {
        assert_eq!(interpret(&program, b'c', major, minor, rw), Some(true), "c {major}:{minor}");
    }
    // The serial console, kmsg, mem, a disk: made, never opened.
    for (kind, major, minor) in [(b'c', 4, 64), (b'c', 1, 11), (b'c', 1, 1), (b'b', 8, 0)] {
        assert_eq!(interpret(&program, kind, major, minor, ACC_MKNOD), Some(true));
        assert_eq!(interpret(&program, kind, major, minor, ACC_READ), Some(false));
        assert_eq!(interpret(&program, kind, major, minor, ACC_WRITE), Some(false));
    }
}

const UNIFIED: &str = "/sys/fs/cgroup/unified";

/// The unified tree, when this host has one and the test runs as root; else why not.
fn unified_tree() -> Result<PathBuf, String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("needs root".into());
    }
    let mounts = super::host_cgroup_mounts().map_err(|e| format!("mountinfo: {e}"))?;
    mounts
        .iter()
        .find(|m| m.fstype == "cgroup2")
        .map(|m| m.point.clone())
        .ok_or_else(|| format!("no cgroup2 mount on this host ({UNIFIED} or /sys/fs/cgroup)"))
}

/// Removes the test's cgroup once its process is gone, pass or fail.
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir(&self.0) {
            eprintln!("cannot remove {}: {e}", self.0.display());
        }
    }
}

/// Runs a shell that joins `dir` and opens /dev/null, then /dev/kmsg, reading each; returns
/// (stdout, stderr).
fn open_devices_in(dir: &Path) -> (String, String) {
    let script = format!(
        "echo 0 > {}/cgroup.procs || exit 9; (: < /dev/null) && echo null-opened; (: < /dev/kmsg) && echo kmsg-opened; exit 0",
        dir.display()
    );
    let out = Command::new("/bin/sh").arg("-c").arg(script).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "the shell could not join {}: {out:?}", dir.display());
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn the_program_denies_on_a_v2_cgroup_where_no_v1_policy_applies() {
    let root = match unified_tree() {
        Ok(root) => root,
        Err(why) => {
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
    let pid = std::process::id();
    let plain = Dir(root.join(format!("berth-test-devplain-{pid}")));
    let guarded = Dir(root.join(format!("berth-test-devbpf-{pid}")));
    std::fs::create_dir(&plain.0).unwrap();
    std::fs::create_dir(&guarded.0).unwrap();
    apply(&default_device_rules(), &guarded.0).expect("load and attach the device program");
    assert_eq!(attached(&guarded.0).unwrap(), 1);
    assert_eq!(attached(&plain.0).unwrap(), 0);

    // The test process's own v1 devices cgroup lets everything through: only the program
    // stands between the shell and /dev/kmsg.
    let (out, err) = open_devices_in(&plain.0);
    assert_eq!(out, "null-opened\nkmsg-opened\n", "without the program: {err}");
    let (out, err) = open_devices_in(&guarded.0);
    assert_eq!(out, "null-opened\n", "with the program: {err}");
    assert!(err.contains("Operation not permitted"), "kmsg refused with EPERM: {err}");
}
