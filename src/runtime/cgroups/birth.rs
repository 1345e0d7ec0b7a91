//! Starting a process in its cgroup (`clone3` with `CLONE_INTO_CGROUP`, Linux 5.7+) instead of
//! moving it there by a `cgroup.procs` write: the write takes the kernel's attach lock, whose
//! first taker after a quiet spell waits an RCU grace period (see `prime`). Only a cgroup v2
//! directory can be named this way, so only pure v2 hosts use it; v1 and hybrid hosts attach
//! (primed), since their v1 hierarchies need the write anyway and the lock is the same one.

use std::os::fd::OwnedFd;

use super::{CgroupMode, ContainerCgroup, Tree};

/// Set (to anything) to turn `CLONE_INTO_CGROUP` off: containers and exec'd processes are
/// moved by a `cgroup.procs` write, as on a kernel older than 5.7. For tests of that path and
/// for comparing the two.
pub const NO_CLONE_INTO_CGROUP_ENV: &str = "BERTH_NO_CLONE_INTO_CGROUP";

/// Whether new processes should be born in their cgroup: a pure v2 host, and not turned off.
/// The kernel may still refuse (before 5.7); the spawner then clones plainly and says so.
pub fn clone_into_cgroup_wanted() -> bool {
    std::env::var_os(NO_CLONE_INTO_CGROUP_ENV).is_none() && super::detect().is_ok_and(|m| m == CgroupMode::V2)
}

/// Whether the running kernel is 5.7 or newer, the first with `CLONE_INTO_CGROUP`.
pub fn kernel_has_clone_into_cgroup() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").is_ok_and(|r| release_at_least(r.trim(), (5, 7)))
}

/// Whether a kernel release string (`6.1.0-28-amd64`, `5.4.0`) is at least `major.minor`.
pub(super) fn release_at_least(release: &str, (major, minor): (u32, u32)) -> bool {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let number = |p: Option<&str>| p.and_then(|p| p.parse::<u32>().ok());
    match (number(parts.next()), number(parts.next())) {
        (Some(a), Some(b)) => (a, b) >= (major, minor),
        _ => false,
    }
}

impl ContainerCgroup {
    /// A descriptor of the cgroup's directory for `CLONE_INTO_CGROUP` (an `O_PATH` open: the
    /// kernel takes any descriptor of the directory); `None` for a v1 cgroup, or when it cannot
    /// be opened, in which case the process is attached instead.
    pub fn clone_target(&self) -> Option<OwnedFd> {
        let Tree::V2(cgroup) = &self.tree else { return None };
        let flags = nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC;
        nix::fcntl::open(cgroup.dir(), flags, nix::sys::stat::Mode::empty()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::release_at_least;

    #[test]
    fn kernel_releases_compare_by_major_and_minor() {
        assert!(release_at_least("6.1.0-28-amd64", (5, 7)));
        assert!(release_at_least("5.7.0", (5, 7)));
        assert!(release_at_least("5.10.0-35-cloud-amd64", (5, 7)));
        assert!(!release_at_least("5.6.19", (5, 7)));
        assert!(!release_at_least("4.19.0-27-amd64", (5, 7)));
        assert!(!release_at_least("garbage", (5, 7)));
    }
}
