//! Cleaning up after a project whose supervisor is gone (killed with SIGKILL, or the machine
//! state left by a crash): everything is found from the records on disk and the kernel's own
//! tables, so nothing depends on the dead process's memory.

use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;

use super::SupervisorError;
use crate::network::setup;
use crate::runtime::state;

/// Kills and removes every container of `project` still on disk, then its networks, firewall
/// rules and the supervisor's files.
pub fn clean(root: &Path, project: &str) -> Result<(), SupervisorError> {
    for found in state::list(root)? {
        let Some(spec) = &found.spec else { continue };
        if spec.project != project {
            continue;
        }
        if let Some(record) = found.record.as_ref().filter(|r| r.is_running()) {
            kill_and_wait(record.pid);
        }
        if let Ok(Some(cgroup)) = crate::runtime::cgroups::ContainerCgroup::open(&spec.id) {
            let _ = cgroup.kill_all();
            let _ = cgroup.remove();
        }
        found.dirs.remove()?;
        let _ = setup::release(root, spec);
    }
    setup::remove_networks(root, project)?;
    let dir = super::project_dir(root, project);
    let _ = std::fs::remove_file(dir.join("supervisor.json"));
    let _ = std::fs::remove_file(super::control::socket_path(&dir));
    Ok(())
}

/// SIGKILLs a process that is not our child and waits for it to be gone.
pub fn kill_and_wait(pid: i32) {
    // SAFETY: pidfd_open with a PID and no flags; the result is checked.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let Ok(raw) = i32::try_from(raw) else { return };
    if raw < 0 {
        return;
    }
    // SAFETY: a new descriptor that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(raw) };
    let _ = crate::runtime::container::send_signal(&pidfd, Signal::SIGKILL);
    let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    let _ = poll(&mut fds, PollTimeout::from(10_000u16));
}
