//! Priming the kernel's cgroup attach lock, so that moving a new container into its cgroup does
//! not wait a whole RCU grace period on the critical path.
//!
//! Every write to `cgroup.procs` takes `cgroup_threadgroup_rwsem` for writing. That percpu
//! rwsem first switches its readers to the slow path with `rcu_sync_enter`, which sleeps for a
//! full RCU grace period (5-15 ms on this 2-CPU VM, more than a whole container run) when the
//! lock was idle; it then stays in writer mode until one more grace period after the last
//! writer. Measured here: the first attach after 50 ms of quiet takes 5-8 ms, an attach within
//! 20 ms of another takes 0.05 ms.
//!
//! So berth starts that wait as early as it can, on a background thread, by moving its own
//! process into the cgroup it is already in (a move to the same cgroup, which changes nothing
//! but takes the lock). The grace period then elapses while berth loads the project and builds
//! the container, and the container's own attach finds the lock in writer mode. crun and runc
//! pay the grace period in series. On a pure v2 host with Linux 5.7+ berth does not prime: its
//! processes are born in their cgroups (`CLONE_INTO_CGROUP`, see `birth`), so nothing waits for
//! the lock, and a priming write would only hold `cgroup_mutex` through the grace period and
//! make the container's cgroup `mkdir` wait for it.

use std::path::PathBuf;
use std::sync::OnceLock;

/// Starts the lock's switch in the background; returns at once. Best effort: any failure just
/// means the container's attach pays the wait itself.
pub fn prime_attach_lock() {
    static SKIP: OnceLock<bool> = OnceLock::new();
    if *SKIP.get_or_init(|| super::clone_into_cgroup_wanted() && super::birth::kernel_has_clone_into_cgroup()) {
        return;
    }
    static PROCS: OnceLock<Option<PathBuf>> = OnceLock::new();
    let Some(procs) = PROCS.get_or_init(own_procs_file) else { return };
    let pid = std::process::id().to_string();
    let _ = std::thread::Builder::new().name("berth-cgroup-prime".into()).spawn(move || {
        let _ = std::fs::write(procs, pid);
    });
}

/// `cgroup.procs` of the cgroup this process is in, in the first hierarchy found: a v1
/// controller's (`<n>:<controllers>:<path>` in /proc/self/cgroup) or the v2 tree's (`0::<path>`).
fn own_procs_file() -> Option<PathBuf> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let mounts = super::v1::host_controller_mounts().ok()?;
    for line in cgroups.lines() {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        let path = path.trim_start_matches('/');
        let mount = if controllers.is_empty() {
            // Only a pure v2 host's tree is used: a hybrid host's unified tree may sit anywhere.
            if mounts.is_empty() { Some(PathBuf::from(super::CGROUP_ROOT)) } else { None }
        } else {
            let first = controllers.split(',').next()?;
            mounts.iter().find(|(name, _)| *name == first).map(|(_, point)| point.clone())
        };
        if let Some(mount) = mount {
            return Some(mount.join(path).join("cgroup.procs"));
        }
    }
    None
}
