#![allow(clippy::unwrap_used)]

use super::profile::{self, Action, Condition, Op, Resolved};
use super::*;
use crate::runtime::caps::DOCKER_DEFAULT_CAPS;

fn default_caps() -> Vec<String> {
    DOCKER_DEFAULT_CAPS.iter().map(|c| (*c).to_owned()).collect()
}

fn with(extra: &str) -> Vec<String> {
    let mut caps = default_caps();
    caps.push(extra.to_owned());
    caps
}

fn resolve_default(caps: &[String]) -> Resolved {
    profile::resolve(&profile::parse(DEFAULT_PROFILE).unwrap(), caps, (6, 1)).unwrap()
}

fn nr(name: &str) -> i64 {
    i64::from(name.parse::<syscalls::Sysno>().unwrap().id())
}

fn actions_for(resolved: &Resolved, name: &str) -> Vec<(Action, Vec<Condition>)> {
    resolved.rules.iter().filter(|r| r.syscall == nr(name)).map(|r| (r.action, r.conditions.clone())).collect()
}

fn unconditionally_allowed(resolved: &Resolved, name: &str) -> bool {
    actions_for(resolved, name).iter().any(|(a, c)| *a == Action::Allow && c.is_empty())
}

#[test]
fn the_default_profile_allows_ordinary_calls_and_refuses_namespaces_and_keys() {
    let r = resolve_default(&default_caps());
    assert_eq!(r.default, Action::Errno(1));
    for name in ["read", "openat", "execve", "mkdir", "wait4", "arch_prctl", "setresuid", "capset", "ptrace"] {
        assert!(unconditionally_allowed(&r, name), "{name}");
    }
    for name in ["unshare", "setns", "mount", "keyctl", "add_key", "request_key", "bpf", "init_module", "reboot"] {
        assert!(actions_for(&r, name).is_empty(), "{name} has a rule");
    }
    assert_eq!(actions_for(&r, "clone3"), vec![(Action::Errno(38), vec![])], "clone3 is ENOSYS, as docker has it");
    let clone = actions_for(&r, "clone");
    assert_eq!(clone.len(), 1);
    assert_eq!(clone[0].1, vec![Condition { index: 0, op: Op::MaskedEq(0x7E02_0000), value: 0 }]);
    // Socket families: everything but AF_ALG (38) and AF_VSOCK (40).
    let socket: Vec<Op> = actions_for(&r, "socket").iter().map(|(_, c)| c[0].op).collect();
    assert_eq!(socket, [Op::Lt, Op::Eq, Op::Gt]);
    assert_eq!(actions_for(&r, "personality").len(), 5);
}

#[test]
fn capabilities_unlock_their_calls() {
    let admin = resolve_default(&with("CAP_SYS_ADMIN"));
    for name in ["unshare", "setns", "mount", "clone", "clone3", "umount2", "sethostname"] {
        assert!(unconditionally_allowed(&admin, name), "{name} with CAP_SYS_ADMIN");
    }
    assert!(
        actions_for(&admin, "clone3").iter().all(|(a, _)| *a == Action::Allow),
        "no ENOSYS for clone3 with CAP_SYS_ADMIN"
    );
    assert!(actions_for(&admin, "clone").iter().all(|(_, c)| c.is_empty()), "no flag filter on clone");
    assert!(unconditionally_allowed(&resolve_default(&with("CAP_SYS_MODULE")), "finit_module"));
    assert!(unconditionally_allowed(&resolve_default(&with("CAP_SYS_TIME")), "settimeofday"));
    assert!(unconditionally_allowed(&resolve_default(&with("CAP_SYS_PTRACE")), "process_madvise"));
    assert!(!unconditionally_allowed(&resolve_default(&default_caps()), "process_madvise"));
    assert!(!unconditionally_allowed(&resolve_default(&default_caps()), "settimeofday"));
    // chroot needs CAP_SYS_CHROOT, one of docker's defaults: dropping it takes the call away.
    let no_chroot: Vec<String> = default_caps().into_iter().filter(|c| c != "CAP_SYS_CHROOT").collect();
    assert!(actions_for(&resolve_default(&no_chroot), "chroot").is_empty());
    assert!(unconditionally_allowed(&resolve_default(&default_caps()), "chroot"));
}

#[test]
fn min_kernel_and_arches_are_honoured() {
    let profile = profile::parse(DEFAULT_PROFILE).unwrap();
    let old = profile::resolve(&profile, &default_caps(), (4, 4)).unwrap();
    assert!(actions_for(&old, "ptrace").is_empty(), "ptrace only from 4.8 without CAP_SYS_PTRACE");
    let r = resolve_default(&default_caps());
    if profile::NATIVE_ARCH == "amd64" {
        assert!(unconditionally_allowed(&r, "modify_ldt"));
    }
}

fn mistake(json: &str) -> String {
    let parsed = profile::parse(json).and_then(|p| profile::resolve(&p, &[], (6, 1)));
    let m = parsed.unwrap_err();
    format!("{}: {}", m.key, m.message)
}

#[test]
fn bad_profiles_name_the_key() {
    let cases = [
        (r#"{"defaultAction": "SCMP_ACT_NOPE"}"#, "defaultAction: unknown action \"SCMP_ACT_NOPE\""),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "X"}]}"#,
            "syscalls[0].action",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": 3}]}"#,
            "syscalls[0].action",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#,
            "syscalls[0].args[0].index",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_SOMETIMES"}]}]}"#,
            "syscalls[0].args[0].op",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"name": "a", "names": ["b"], "action": "SCMP_ACT_ALLOW"}]}"#,
            "syscalls[0].name",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}"#,
            "archMap",
        ),
        (r#"{"defaultAction": "SCMP_ACT_NOTIFY"}"#, "defaultAction: SCMP_ACT_NOTIFY is not supported"),
        (r#"{"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_NEW_LISTENER"]}"#, "flags[0]"),
        (r#"{"defaultAction": "SCMP_ACT_ALLOW""#, "(top level)"),
    ];
    for (json, want) in cases {
        let got = mistake(json);
        assert!(got.starts_with(want), "{json}\n got: {got}\nwant: {want}");
    }
}

#[test]
fn load_profile_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.json");
    std::fs::write(&path, r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": 1}]}"#)
        .unwrap();
    let err = load_profile(&path, "p.json").unwrap_err().to_string();
    assert!(err.starts_with("seccomp profile p.json: syscalls[0].action: invalid type"), "{err}");
    let err = load_profile(&dir.path().join("missing.json"), "missing.json").unwrap_err().to_string();
    assert!(err.starts_with("seccomp profile missing.json: "), "{err}");
}

#[test]
fn repeated_arguments_become_alternatives_and_unknown_names_are_skipped() {
    let json = r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["no_such_call", "personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
         "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]}]}"#;
    let r = profile::resolve(&profile::parse(json).unwrap(), &[], (6, 1)).unwrap();
    assert_eq!(r.rules.len(), 2);
    assert!(r.rules.iter().all(|rule| rule.action == Action::Errno(22) && rule.conditions.len() == 1));
}

#[test]
fn the_default_profile_compiles_to_two_programs_within_the_kernel_limit() {
    let started = std::time::Instant::now();
    let programs = compile_policy(&SeccompPolicy::Default, &default_caps()).unwrap();
    eprintln!("compiled docker's default profile in {:?}: {} instructions", started.elapsed(), programs.len());
    assert_eq!(programs.programs.len(), 2, "allowlist + clone3's ENOSYS");
    assert!(programs.programs.iter().all(|p| !p.is_empty() && p.len() <= 4096));
    assert!(compile_policy(&SeccompPolicy::Unconfined, &[]).unwrap().is_empty());
}

#[test]
fn programs_are_cached_per_policy_and_capabilities() {
    let process = |caps: Vec<String>, seccomp: SeccompPolicy| Process {
        args: vec!["true".into()],
        env: vec![],
        user: String::new(),
        additional_groups: vec![],
        cwd: "/".into(),
        tty: false,
        stdin_open: false,
        capabilities: caps,
        no_new_privileges: false,
        seccomp,
        rlimits: vec![],
    };
    let mut reversed = default_caps();
    reversed.reverse();
    let a = programs_for(&process(default_caps(), SeccompPolicy::Default)).unwrap().unwrap();
    let b = programs_for(&process(reversed, SeccompPolicy::Default)).unwrap().unwrap();
    assert!(Arc::ptr_eq(&a, &b), "the same set in another order is the same key");
    let c = programs_for(&process(with("CAP_SYS_ADMIN"), SeccompPolicy::Default)).unwrap().unwrap();
    assert!(!Arc::ptr_eq(&a, &c));
    assert!(programs_for(&process(default_caps(), SeccompPolicy::Unconfined)).unwrap().is_none());
}

/// Runs `probe` in a forked child under `programs` (with `no_new_privs`, so no privilege is
/// needed) and returns the child's exit code.
fn under(programs: &Programs, probe: fn() -> i32) -> i32 {
    // SAFETY: the child only makes raw system calls and leaves with _exit.
    match unsafe { nix::unistd::fork() }.unwrap() {
        nix::unistd::ForkResult::Child => {
            let code =
                if nix::sys::prctl::set_no_new_privs().is_err() || programs.install().is_err() { 100 } else { probe() };
            // SAFETY: _exit takes no pointers.
            unsafe { libc::_exit(code) }
        }
        nix::unistd::ForkResult::Parent { child } => match nix::sys::wait::waitpid(child, None).unwrap() {
            nix::sys::wait::WaitStatus::Exited(_, code) => code,
            other => panic!("probe child: {other:?}"),
        },
    }
}

fn errno_of(r: libc::c_long) -> i32 {
    if r < 0 { nix::Error::last() as i32 } else { 0 }
}

// The probes make raw calls with no pointers, or with null ones the kernel checks.
fn unshare_user() -> i32 {
    // SAFETY: see above.
    errno_of(unsafe { libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER) })
}

fn socket_of(family: libc::c_int) -> i32 {
    // SAFETY: see above.
    errno_of(unsafe { libc::syscall(libc::SYS_socket, family, libc::SOCK_STREAM, 0) })
}

fn clone3_null() -> i32 {
    // SAFETY: see above.
    errno_of(unsafe { libc::syscall(libc::SYS_clone3, 0usize, 0usize) })
}

fn keyctl_session_id() -> i32 {
    // SAFETY: see above.
    errno_of(unsafe { libc::syscall(libc::SYS_keyctl, 0, -3, 0) })
}

fn personality_query() -> i32 {
    // SAFETY: see above.
    errno_of(unsafe { libc::syscall(libc::SYS_personality, 0xffff_ffffu64) })
}

fn getpid() -> i32 {
    // SAFETY: see above.
    errno_of(unsafe { libc::syscall(libc::SYS_getpid) })
}

#[test]
fn the_compiled_default_refuses_namespaces_vsock_and_clone3_and_allows_the_rest() {
    let programs = compile_policy(&SeccompPolicy::Default, &default_caps()).unwrap();
    assert_eq!(under(&programs, unshare_user), libc::EPERM, "unshare(CLONE_NEWUSER)");
    assert_eq!(under(&programs, || socket_of(libc::AF_VSOCK)), libc::EPERM, "socket(AF_VSOCK)");
    assert_eq!(under(&programs, || socket_of(libc::AF_ALG)), libc::EPERM, "socket(AF_ALG)");
    assert_eq!(under(&programs, clone3_null), libc::ENOSYS, "clone3");
    assert_eq!(under(&programs, keyctl_session_id), libc::EPERM, "keyctl");
    assert_eq!(under(&programs, personality_query), 0, "personality(query)");
    assert_eq!(under(&programs, getpid), 0);
    assert_eq!(under(&programs, || socket_of(libc::AF_UNIX)), 0, "socket(AF_UNIX)");
    // With CAP_SYS_ADMIN the namespace calls are the capability's business again.
    let admin = compile_policy(&SeccompPolicy::Default, &with("CAP_SYS_ADMIN")).unwrap();
    assert_ne!(under(&admin, clone3_null), libc::ENOSYS, "clone3 reaches the kernel with CAP_SYS_ADMIN");
}
