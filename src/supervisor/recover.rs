//! Cleaning up after a project whose supervisor is gone (killed with SIGKILL, or the machine
//! state left by a crash): everything is found from the records on disk and the kernel's own
//! tables, so nothing depends on the dead process's memory.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;

use super::SupervisorError;
use crate::network::setup;
use crate::runtime::state;

/// Kills and removes every container of `project` still on disk, then its networks, firewall
/// rules and the supervisor's files. A failure stops nothing: everything else is still removed,
/// and the error names every failure (what failed is still recorded, for the next try).
pub fn clean(root: &Path, project: &str) -> Result<(), SupervisorError> {
    let mut failures: Vec<String> =
        state::finish_removals(root).into_iter().map(|(dir, e)| format!("{}: {e}", dir.display())).collect();
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
        if let Err(e) = found.dirs.remove() {
            failures.push(format!("container {}: {e}", spec.name));
            continue;
        }
        let _ = setup::release(root, spec);
    }
    crate::fault::point("before-networks");
    if let Err(e) = setup::remove_networks(root, project) {
        failures.push(e.to_string());
    }
    let dir = super::project_dir(root, project);
    // Records whose writer was killed before renaming them.
    for records in [dir.clone(), root.join("networks")] {
        crate::fsutil::remove_stale_temporaries(&records, None);
    }
    let _ = std::fs::remove_file(dir.join("supervisor.json"));
    let _ = std::fs::remove_file(super::control::socket_path(&dir));
    if failures.is_empty() { Ok(()) } else { Err(SupervisorError::Other(failures.join("\n"))) }
}

/// Ends the runs of `project`'s containers a dead supervisor left behind (their processes,
/// cgroups and port rules) and records them as stopped, exit code 137 as if killed: a
/// supervisor that starts next adopts them, with their files, as docker's containers survive
/// its daemon. A directory that never got a record (a creation the crash interrupted) goes.
/// Networks stay.
pub fn reap(root: &Path, project: &str) -> Result<(), SupervisorError> {
    // Removals a killed command left half done are finished (their failures are `down`'s to
    // report).
    let _ = state::finish_removals(root);
    for found in state::list(root)? {
        let Some(spec) = &found.spec else { continue };
        if spec.project != project {
            continue;
        }
        // Whatever the record says, nothing of the container may run on: a process made for
        // a restart (recorded as exited) or one whose record was never written (killed
        // between its exec and its record) is in the container's cgroup.
        let kill_cgroup = || {
            if let Ok(Some(cgroup)) = crate::runtime::cgroups::ContainerCgroup::open(&spec.id) {
                let _ = cgroup.kill_all();
                let _ = cgroup.remove();
            }
        };
        let Some(record) = &found.record else {
            kill_cgroup();
            remove_container(root, spec, false);
            continue;
        };
        if record.exited {
            kill_cgroup();
            continue;
        }
        if record.is_running() {
            kill_and_wait(record.pid);
        }
        crate::fault::point("mid-reap");
        kill_cgroup();
        if let Ok(firewall) = crate::network::firewall::detect() {
            let _ = firewall.remove_container(project, &spec.name);
        }
        state::ContainerRecord::mark_exited(&found.dirs, 137)?;
    }
    Ok(())
}

/// Removes a container that holds no kernel objects any more (stopped): its files, its
/// addresses and, with `volumes`, its anonymous volumes.
pub fn remove_container(root: &Path, spec: &crate::runtime::spec::ContainerSpec, volumes: bool) {
    let _ = state::ContainerDirs::new(root, &spec.id).remove();
    let _ = setup::release(root, spec);
    if volumes {
        remove_volumes(root, &crate::plan::mounts::anonymous_volumes(spec));
    }
}

/// Removes volumes by name: `<root>/volumes/<name>`, its data and its metadata.
pub fn remove_volumes(root: &Path, names: &[String]) {
    for name in names {
        // By descriptor: the tree is the containers'.
        if let Err(e) = crate::volume::remove_unchecked(root, name) {
            eprintln!("berth: remove volume {name}: {e}");
        }
    }
}

/// SIGKILLs a process that is not our child and waits (up to 10 s) for it to be gone.
pub fn kill_and_wait(pid: i32) {
    let Ok(pidfd) = crate::runtime::exec::pidfd_open(pid) else { return };
    let _ = crate::runtime::container::send_signal(&pidfd, Signal::SIGKILL);
    wait_on(&pidfd, PollTimeout::from(10_000u16));
}

/// Waits until process `pid` (not our child) is gone.
pub fn wait_for_exit(pid: i32) {
    if let Ok(pidfd) = crate::runtime::exec::pidfd_open(pid) {
        wait_on(&pidfd, PollTimeout::NONE);
    }
}

fn wait_on(pidfd: &OwnedFd, timeout: PollTimeout) {
    let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    let _ = poll(&mut fds, timeout);
}
