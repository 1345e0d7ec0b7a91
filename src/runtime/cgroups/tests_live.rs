//! Tests on the host's real cgroup hierarchies, as root. Each skips with a printed reason when
//! the host lacks what it needs, and removes what it made even when it fails.

use std::io::Write as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::sys::statfs::{CGROUP2_SUPER_MAGIC, statfs};

use super::*;

const MIB: u64 = 1 << 20;
const UNIFIED: &str = "/sys/fs/cgroup/unified";

/// A name no other test (or test process) uses, so the tests can run in parallel.
fn test_id() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("berth-test-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Kills the test's children and removes its cgroup on the way out, pass or fail.
struct Guard {
    id: String,
    v2_root: Option<PathBuf>,
    children: Vec<Child>,
}

impl Guard {
    fn spawn(&mut self, command: &mut Command) -> i32 {
        let child = command.spawn().unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        self.children.push(child);
        pid
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let cgroup = match &self.v2_root {
            Some(root) => ContainerCgroup::open_v2_at(root, &self.id),
            None => ContainerCgroup::open(&self.id),
        };
        if let Ok(Some(cgroup)) = cgroup
            && let Err(e) = cgroup.remove()
        {
            eprintln!("cleanup of cgroup {} failed: {e}", self.id);
        }
    }
}

fn skip_unless_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return false;
    }
    eprintln!("skipped: needs root to create cgroups");
    true
}

/// The v1 mount point of `controller`, when the host uses v1 controllers and mounts it.
fn v1_mount(controller: libcgroups::v1::ControllerType) -> Option<PathBuf> {
    libcgroups::v1::util::get_subsystem_mount_point(&controller).ok()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).trim().to_owned()
}

fn sleeper() -> Command {
    let mut command = Command::new("sleep");
    command.arg("100").stdin(Stdio::null());
    command
}

#[test]
fn v2_tree_freezes_kills_and_removes() {
    let root = Path::new(UNIFIED);
    if skip_unless_root() {
        return;
    }
    if !statfs(root).is_ok_and(|s| s.filesystem_type() == CGROUP2_SUPER_MAGIC) {
        eprintln!("skipped: no cgroup2 mount at {UNIFIED}");
        return;
    }
    let id = test_id();
    let mut guard = Guard { id: id.clone(), v2_root: Some(root.to_path_buf()), children: Vec::new() };
    let cgroup = ContainerCgroup::create_v2_at(root, &id, &Resources::default()).unwrap();
    let dir = root.join(BERTH_DIR).join(&id);
    assert_eq!(cgroup.dirs(), vec![dir.clone()]);
    assert!(dir.is_dir());

    let pid = guard.spawn(&mut sleeper());
    cgroup.add_process(pid).unwrap();
    assert_eq!(cgroup.pids().unwrap(), vec![pid]);
    assert!(read(Path::new(&format!("/proc/{pid}/cgroup"))).lines().any(|l| l == format!("0::/berth/{id}")));

    if dir.join("cgroup.freeze").exists() {
        cgroup.freeze().unwrap();
        assert!(cgroup.is_frozen().unwrap());
        assert!(read(&dir.join("cgroup.events")).lines().any(|l| l == "frozen 1"));
        cgroup.thaw().unwrap();
        assert!(!cgroup.is_frozen().unwrap());
        // `berth down` of a paused container: killing must not need a thaw first.
        cgroup.freeze().unwrap();
    } else {
        eprintln!("skipped freezing: {} has no cgroup.freeze (Linux < 5.2)", dir.display());
    }

    cgroup.kill_all().unwrap();
    let status = guard.children[0].wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    assert!(cgroup.pids().unwrap().is_empty());

    // A sub-cgroup the container made does not keep its cgroup alive.
    std::fs::create_dir(dir.join("nested")).unwrap();
    cgroup.remove().unwrap();
    assert!(!dir.exists());
    cgroup.remove().unwrap();
    assert!(ContainerCgroup::open_v2_at(root, &id).unwrap().is_none());
}

#[test]
fn v2_tree_without_controllers_runs_without_their_limits() {
    let root = Path::new(UNIFIED);
    if skip_unless_root() {
        return;
    }
    let controllers = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
    if !statfs(root).is_ok_and(|s| s.filesystem_type() == CGROUP2_SUPER_MAGIC)
        || controllers.split_ascii_whitespace().any(|c| c == "memory")
    {
        eprintln!("skipped: needs a cgroup2 mount at {UNIFIED} without the memory controller (a hybrid host)");
        return;
    }
    let id = test_id();
    let _guard = Guard { id: id.clone(), v2_root: Some(root.to_path_buf()), children: Vec::new() };
    let resources = Resources { memory_limit: Some(64 * MIB), ..Resources::default() };
    // Warned about (stderr) and dropped: the cgroup is made, without a memory.max.
    let cgroup = ContainerCgroup::create_v2_at(root, &id, &resources).unwrap();
    let dir = root.join(BERTH_DIR).join(&id);
    assert!(dir.is_dir());
    assert!(!dir.join("memory.max").exists());
    cgroup.remove().unwrap();
    assert!(!dir.exists());
}

/// Skips unless the host uses v1 controllers and mounts each of `controllers`.
fn skip_unless_v1(controllers: &[libcgroups::v1::ControllerType]) -> bool {
    if skip_unless_root() {
        return true;
    }
    if detect().ok() == Some(CgroupMode::V2) {
        eprintln!("skipped: the host is pure cgroup v2");
        return true;
    }
    if let Some(missing) = controllers.iter().find(|c| v1_mount(**c).is_none()) {
        eprintln!("skipped: cgroup v1 controller {missing} is not mounted");
        return true;
    }
    false
}

#[test]
fn v1_limits_freezer_kill_and_remove() {
    use libcgroups::v1::ControllerType::{Cpu, CpuSet, Freezer, Memory, Pids};
    if skip_unless_v1(&[Memory, Pids, Cpu, CpuSet, Freezer]) {
        return;
    }
    let id = test_id();
    let mut guard = Guard { id: id.clone(), v2_root: None, children: Vec::new() };
    let resources = Resources {
        memory_limit: Some(64 * MIB),
        pids_limit: Some(20),
        cpu_quota: Some(50_000),
        cpu_period: Some(100_000),
        cpu_shares: Some(512),
        cpuset_cpus: Some("0".to_owned()),
        ..Resources::default()
    };
    let cgroup = ContainerCgroup::create(&id, &resources).unwrap();
    assert_eq!(cgroup.mode(), CgroupMode::V1);
    let dir = |c| v1_mount(c).unwrap().join(v1_name(&id));
    assert_eq!(read(&dir(Memory).join("memory.limit_in_bytes")), (64 * MIB).to_string());
    assert_eq!(read(&dir(Pids).join("pids.max")), "20");
    assert_eq!(read(&dir(Cpu).join("cpu.cfs_quota_us")), "50000");
    assert_eq!(read(&dir(Cpu).join("cpu.cfs_period_us")), "100000");
    assert_eq!(read(&dir(Cpu).join("cpu.shares")), "512");
    assert_eq!(read(&dir(CpuSet).join("cpuset.cpus")), "0");
    // Filled from the parent, or no process could join.
    assert!(!read(&dir(CpuSet).join("cpuset.mems")).is_empty());

    let pid = guard.spawn(&mut sleeper());
    cgroup.add_process(pid).unwrap();
    for file in cgroup.procs_files() {
        assert_eq!(read(&file), pid.to_string(), "{}", file.display());
    }
    let proc_cgroup = read(Path::new(&format!("/proc/{pid}/cgroup")));
    for controller in ["memory", "pids", "freezer"] {
        let line = format!(":{controller}:/berth-{id}");
        assert!(proc_cgroup.lines().any(|l| l.ends_with(&line)), "{line} not in {proc_cgroup}");
    }
    let again = ContainerCgroup::open(&id).unwrap().unwrap();
    assert_eq!(again.procs_files(), cgroup.procs_files());
    assert_eq!(again.pids().unwrap(), vec![pid]);

    let stats = cgroup.stats().unwrap();
    assert_eq!((stats.pids_current, stats.pids_limit), (1, Some(20)));
    assert_eq!(stats.memory_limit, Some(64 * MIB));
    assert_eq!(stats.oom_kills, 0);

    cgroup.freeze().unwrap();
    assert!(cgroup.is_frozen().unwrap());
    assert_eq!(read(&dir(Freezer).join("freezer.state")), "FROZEN");
    cgroup.thaw().unwrap();
    assert!(!cgroup.is_frozen().unwrap());
    // Killing a paused container: kill_all thaws so the SIGKILL lands.
    cgroup.freeze().unwrap();
    cgroup.kill_all().unwrap();
    let status = guard.children[0].wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");

    std::fs::create_dir(dir(Memory).join("nested")).unwrap();
    cgroup.remove().unwrap();
    for d in cgroup.dirs() {
        assert!(!d.exists(), "{} still exists", d.display());
    }
    cgroup.remove().unwrap();
    assert!(ContainerCgroup::open(&id).unwrap().is_none());
}

#[test]
fn v1_oom_kill_is_counted() {
    use libcgroups::v1::ControllerType::Memory;
    if skip_unless_v1(&[Memory]) {
        return;
    }
    if !Path::new("/usr/bin/tail").exists() && !Path::new("/bin/tail").exists() {
        eprintln!("skipped: no tail to exhaust memory with");
        return;
    }
    let id = test_id();
    let mut guard = Guard { id: id.clone(), v2_root: None, children: Vec::new() };
    let limit = 16 * MIB;
    let resources = Resources {
        memory_limit: Some(limit),
        memory_swap: Some(i64::try_from(limit).unwrap()),
        ..Resources::default()
    };
    let cgroup = ContainerCgroup::create(&id, &resources).unwrap();
    assert_eq!(cgroup.oom_kills().unwrap(), 0);

    // The shell waits for a line so it is in the cgroup before anything is allocated; tail on
    // /dev/zero then buffers a line that never ends.
    let mut command = Command::new("sh");
    command.args(["-c", "read go; exec tail /dev/zero"]).stdin(Stdio::piped()).stdout(Stdio::null());
    let pid = guard.spawn(&mut command);
    cgroup.add_process(pid).unwrap();
    let mut stdin = guard.children[0].stdin.take().unwrap();
    stdin.write_all(b"go\n").unwrap();
    drop(stdin);
    let status = guard.children[0].wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    assert!(cgroup.oom_kills().unwrap() >= 1);
    assert!(cgroup.stats().unwrap().oom_kills >= 1);

    cgroup.remove().unwrap();
    assert!(cgroup.dirs().iter().all(|d| !d.exists()));
}

#[test]
fn v1_limit_the_kernel_refuses_is_named_and_leaves_nothing_behind() {
    use libcgroups::v1::ControllerType::CpuSet;
    if skip_unless_v1(&[CpuSet]) {
        return;
    }
    let id = test_id();
    let _guard = Guard { id: id.clone(), v2_root: None, children: Vec::new() };
    // No host has CPU 4095 online.
    let resources = Resources { cpuset_cpus: Some("4095".to_owned()), ..Resources::default() };
    let err = ContainerCgroup::create(&id, &resources).unwrap_err().to_string();
    eprintln!("{err}");
    assert!(err.contains(&format!("berth-{id}/cpuset.cpus")), "{err}");
    assert!(ContainerCgroup::open(&id).unwrap().is_none());
}
