//! seccomp, the session keyring and the init's privileges, attacked for real from inside
//! containers, as root: `unshare -U -r` and `keyctl` are refused under docker's default
//! profile, ordinary workloads still run, `security_opt` and `privileged` switch the filter,
//! `exec` processes are filtered, and the `init: true` reaper holds no capability.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::*;

const IDLE: &str = r#"command: ["sleep", "100000"]"#;

/// A service on the host image (this machine's /usr: python3).
fn host_service(name: &str, extra: &str) -> String {
    let mut text = format!("  {name}:\n    image: berth.invalid/host:latest\n{NO_UPSTREAM}");
    for line in extra.lines().filter(|l| !l.trim().is_empty()) {
        text.push_str("    ");
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// A field of /proc/PID/status (the value after the tab).
fn status_field(pid: i32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let prefix = format!("{field}:");
    let line = status.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no {field} in {status}"));
    line[prefix.len()..].trim().to_owned()
}

fn seccomp_mode(project: &Project, service: &str) -> String {
    let (ok, text) = project.sh(service, "grep '^Seccomp:' /proc/self/status | cut -f2");
    assert!(ok, "{service}: {text}");
    text.trim().to_owned()
}

#[test]
fn default_profile_refuses_user_namespaces_and_ordinary_workloads_still_run() {
    let boxed = service("box", IDLE);
    let py = host_service("py", IDLE);
    let project = Project::new("bsecdefault", &format!("{boxed}{py}"));
    project.up();

    // The attack of the issue: a user namespace with root mapped, from a default container.
    let (ok, text) = project.sh("box", "unshare -U -r true");
    assert!(!ok && text.contains("Operation not permitted"), "unshare -U -r must be refused: {text}");
    let (ok, text) = project.sh("box", "unshare -m true");
    assert!(!ok, "unshare -m must be refused: {text}");

    // exec'd processes run under the filter, and so does the container's PID 1.
    assert_eq!(seccomp_mode(&project, "box"), "2");
    let pid = project.pid_of("bsecdefault-box-1").unwrap();
    assert_eq!(status_field(pid, "Seccomp"), "2", "PID 1 of the container");

    // Ordinary busybox workloads.
    let script = "set -e; ls / >/dev/null; ps >/dev/null; mkdir -p /tmp/www; echo served > /tmp/www/index.html; \
                  httpd -p 127.0.0.1:8080 -h /tmp/www; wget -qO- http://127.0.0.1:8080/; \
                  sh -c 'echo child' & wait; date >/dev/null; id -u; cat /proc/self/status | grep -c Cap";
    let (ok, text) = project.sh("box", script);
    assert!(ok && text.contains("served") && text.contains("child"), "busybox applets: {text}");

    // python3: threads, a subprocess, sockets and a clone without namespace flags.
    let program = "import os, socket, subprocess, threading\n\
                   t = threading.Thread(target=lambda: None); t.start(); t.join()\n\
                   out = subprocess.run(['sh', '-c', 'echo sub'], capture_output=True, text=True).stdout.strip()\n\
                   a, b = socket.socketpair(); a.send(b'pair'); got = b.recv(4).decode()\n\
                   s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); port = s.getsockname()[1]\n\
                   c = socket.create_connection(('127.0.0.1', port)); conn, _ = s.accept(); c.send(b'tcp')\n\
                   print('python', out, got, conn.recv(3).decode())\n";
    let out = project.berth(&["exec", "-T", "py", "python3", "-c", program]);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("python sub pair tcp"), "python3: {text}");

    // AF_VSOCK is one of the socket families docker's profile refuses.
    let vsock = "import socket\ntry:\n    socket.socket(40, socket.SOCK_STREAM)\n    print('vsock allowed')\n\
                 except OSError as e:\n    print('vsock errno', e.errno)\n";
    let out = project.berth(&["exec", "-T", "py", "python3", "-c", vsock]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "vsock errno 1");
    project.down();
}

/// keyctl(2) from python's ctypes: prints the session keyring's id, and whether a key
/// of the given description is found from the session keyring.
const KEYCTL_PROBE: &str = "import ctypes, os, sys\n\
libc = ctypes.CDLL(None, use_errno=True)\n\
libc.syscall.restype = ctypes.c_long\n\
sid = libc.syscall(250, 0, -3, 0)\n\
print('session', sid if sid >= 0 else 'errno%d' % ctypes.get_errno())\n\
found = libc.syscall(250, 10, -3, b'user', sys.argv[1].encode(), 0)\n\
print('search', found if found >= 0 else 'errno%d' % ctypes.get_errno())\n";

#[test]
fn a_container_cannot_reach_the_callers_session_keyring() {
    // This thread gets a session keyring of its own holding a key; berth, started from here,
    // inherits it, as a container would without a keyring of its own.
    // SAFETY: keyctl(JOIN_SESSION_KEYRING, NULL) reads no memory.
    let joined = unsafe { libc::syscall(libc::SYS_keyctl, 1, std::ptr::null::<libc::c_char>()) };
    assert!(joined > 0, "join a session keyring: {}", std::io::Error::last_os_error());
    let description = format!("berth-seccomp-test-{}", std::process::id());
    let c_type = c"user";
    let c_desc = std::ffi::CString::new(description.clone()).unwrap();
    let payload = b"secret";
    // SAFETY: add_key reads the two strings and the payload, all live for the call.
    let key = unsafe {
        libc::syscall(libc::SYS_add_key, c_type.as_ptr(), c_desc.as_ptr(), payload.as_ptr(), payload.len(), -3)
    };
    assert!(key > 0, "add_key: {}", std::io::Error::last_os_error());

    // Control: a host process started from here finds the key, so the probe can see a leak.
    let host =
        std::process::Command::new("/usr/bin/python3").args(["-c", KEYCTL_PROBE, &description]).output().unwrap();
    let host = String::from_utf8_lossy(&host.stdout).into_owned();
    assert!(host.contains(&format!("search {key}")), "the host probe must find the key: {host}");

    let unconfined = host_service("open", &format!("{IDLE}\nsecurity_opt: [\"seccomp=unconfined\"]"));
    let confined = host_service("closed", IDLE);
    let project = Project::new("bseckeys", &format!("{unconfined}{confined}"));
    project.up();
    for (service, want_search) in [("open", "search errno126"), ("closed", "search errno1")] {
        let out = project.berth(&["exec", "-T", service, "python3", "-c", KEYCTL_PROBE, &description]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{service}: {text}{}", String::from_utf8_lossy(&out.stderr));
        // ENOKEY without a filter (a keyring of its own), EPERM under docker's profile.
        assert!(text.contains(want_search), "{service}: {text}");
        assert!(!text.contains(&format!("session {joined}")), "{service} shares the caller's keyring: {text}");
    }
    // The container's own first process has a keyring of its own too.
    let pid = project.pid_of("bseckeys-open-1").unwrap();
    let theirs = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(theirs.contains("Seccomp:\t0"), "unconfined PID 1: {theirs}");
    project.down();
    // SAFETY: keyctl(INVALIDATE, key) takes no pointers.
    unsafe { libc::syscall(libc::SYS_keyctl, 21, key) };
}

#[test]
fn security_opt_and_privileged_switch_the_filter_and_a_custom_profile_applies() {
    let unconfined = service("unconfined", &format!("{IDLE}\nsecurity_opt: [\"seccomp=unconfined\"]"));
    let privileged = service("privileged", &format!("{IDLE}\nprivileged: true"));
    let custom = service("custom", &format!("{IDLE}\nsecurity_opt: [\"seccomp=profiles/deny-mkdir.json\"]"));
    let nnp = service("nnp", &format!("{IDLE}\nsecurity_opt: [\"no-new-privileges:true\"]"));
    let project = Project::new("bsecopts", &format!("{unconfined}{privileged}{custom}{nnp}"));
    std::fs::create_dir_all(project.dir().join("profiles")).unwrap();
    std::fs::write(
        project.dir().join("profiles/deny-mkdir.json"),
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#,
    )
    .unwrap();
    project.up();
    assert_eq!(seccomp_mode(&project, "unconfined"), "0");
    assert_eq!(seccomp_mode(&project, "privileged"), "0");
    assert_eq!(seccomp_mode(&project, "custom"), "2");
    assert_eq!(seccomp_mode(&project, "nnp"), "2");
    let (ok, text) = project.sh("unconfined", "unshare -U -r true && echo inside");
    assert!(ok && text.contains("inside"), "unconfined: {text}");
    let (ok, text) = project.sh("custom", "mkdir /tmp/denied");
    assert!(!ok && text.contains("Permission denied"), "the profile's errnoRet: {text}");
    let (ok, text) = project.sh("custom", "touch /tmp/file && unshare -U -r true && echo allowed");
    assert!(ok && text.contains("allowed"), "the rest is allowed by the custom profile: {text}");
    let (ok, text) = project.sh("nnp", "unshare -U -r true");
    assert!(!ok, "no-new-privileges still filters: {text}");
    project.down();
}

#[test]
fn a_bad_profile_fails_up_naming_the_file_and_key() {
    let custom = service("custom", &format!("{IDLE}\nsecurity_opt: [\"seccomp=bad.json\"]"));
    let project = Project::new("bsecbad", &custom);
    std::fs::write(
        project.dir().join("bad.json"),
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_SOMETIMES"}]}"#,
    )
    .unwrap();
    let out = project.berth(&["up", "-d"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "up must fail: {err}");
    assert!(err.contains("bad.json") && err.contains("syscalls[0].action"), "{err}");
}

#[test]
fn the_init_reaper_has_no_capabilities_and_still_forwards_signals() {
    let script = r#"command: ["sh", "-c", "trap 'echo got TERM; exit 0' TERM; while true; do sleep 0.1; done"]"#;
    let root = service("root", &format!("{script}\ninit: true"));
    let user = service("user", &format!("{script}\ninit: true\nuser: \"1000:1000\""));
    let project = Project::new("bsecinit", &format!("{root}{user}"));
    project.up();
    for service in ["root", "user"] {
        let pid = project.pid_of(&format!("bsecinit-{service}-1")).unwrap();
        assert_eq!(status_field(pid, "Name"), "init", "{service}: PID 1 is berth's init");
        assert_eq!(status_field(pid, "CapEff"), "0000000000000000", "{service}");
        assert_eq!(status_field(pid, "CapPrm"), "0000000000000000", "{service}");
        assert_eq!(status_field(pid, "CapBnd"), "0000000000000000", "{service}");
        assert_eq!(status_field(pid, "NoNewPrivs"), "1", "{service}");
        assert_eq!(status_field(pid, "Seccomp"), "2", "{service}");
        assert_eq!(seccomp_mode(&project, service), "2", "{service}: exec");
        // The child runs with the service's capabilities, not the init's.
        let (ok, text) = project.sh(service, "grep CapBnd /proc/self/status");
        assert!(ok && !text.contains("0000000000000000"), "{service}: {text}");
        // A stop reaches the child through the init (a long timeout: a lost signal would
        // end in SIGKILL and no message).
        let out = project.berth(&["stop", "-t", "60", service]);
        assert!(out.status.success(), "stop {service}: {}", String::from_utf8_lossy(&out.stderr));
        let logs = String::from_utf8_lossy(&project.berth(&["logs", service]).stdout).into_owned();
        assert!(logs.contains("got TERM"), "{service}: the init forwarded SIGTERM: {logs}");
    }
    project.down();
}
