//! A process in a running container: the spawner enters the container's PID namespace for
//! its clone, the clone enters the other namespaces through the container's pidfd, and this
//! process puts it in the container's cgroup before it goes on. It is a child of the caller,
//! so the caller gets its exit status directly.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use super::RuntimeError;
use super::cgroups::ContainerCgroup;
use super::container::{ExitStatus, go, wait_pidfd};
use super::spawner::Spawner;
use super::spec::{ContainerSpec, Process};
use super::state::{self, ContainerRecord};
use super::sync::{self, ExecRequest};

/// A running container as found on disk.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its spec (for its environment, user, capabilities).
    pub spec: ContainerSpec,
    /// Its state.
    pub record: ContainerRecord,
}

impl Target {
    /// The running container `spec` whose init is `pid`, as its supervisor knows it (no record
    /// read from disk): what health probes and lifecycle hooks exec into.
    pub fn running(spec: ContainerSpec, pid: i32) -> Target {
        let record = ContainerRecord {
            id: spec.id.clone(),
            name: spec.name.clone(),
            project: spec.project.clone(),
            service: spec.service.clone(),
            oneoff: false,
            pid,
            start_time: state::process_start_time(pid).unwrap_or(0),
            created: state::now(),
            exited: false,
            exit_code: 0,
            started_at: 0,
            finished_at: 0,
            health: String::new(),
            restarts: 0,
        };
        Target { spec, record }
    }
}

/// A started exec process.
#[derive(Debug)]
pub struct ExecProcess {
    /// Host PID.
    pub pid: i32,
    /// Its pidfd.
    pub pidfd: OwnedFd,
    /// The pty master, with a terminal.
    pub pty: Option<OwnedFd>,
}

impl ExecProcess {
    /// Waits for it to exit.
    pub fn wait(&self) -> Result<ExitStatus, RuntimeError> {
        wait_pidfd(&self.pidfd)
    }
}

/// Finds the running container `name`, or the newest running container of `service` in
/// `project` (replica `index`, one-off containers last).
pub fn find(state_root: &Path, project: &str, service: &str, index: u32) -> Result<Target, RuntimeError> {
    let wanted = format!("{project}-{service}-{index}");
    let mut candidates: Vec<Target> = state::list(state_root)?
        .into_iter()
        .filter_map(|f| Some(Target { spec: f.spec?, record: f.record? }))
        .filter(|t| t.record.project == project && t.record.service == service && t.record.is_running())
        .collect();
    candidates.sort_by_key(|t| (t.record.oneoff, t.record.name != wanted, std::cmp::Reverse(t.record.created)));
    candidates.into_iter().next().ok_or_else(|| RuntimeError::NotFound(format!("service {service:?} is not running")))
}

/// Starts `process` in `target`. `stdio` as for containers.
pub fn start(
    spawner: &Spawner,
    target: &Target,
    process: Process,
    stdio: Option<[RawFd; 3]>,
) -> Result<ExecProcess, RuntimeError> {
    let container_pidfd = pidfd_open(target.record.pid)?;
    // The PID may have been reused between reading the record and opening the pidfd.
    if !target.record.is_running() {
        return Err(RuntimeError::NotFound(format!("container {} is not running", target.record.name)));
    }
    let cgroup = ContainerCgroup::open(&target.record.id)?
        .ok_or_else(|| RuntimeError::NotFound(format!("container {} has no cgroup", target.record.name)))?;
    let (parent_end, child_end) = sync::socketpair().map_err(|e| RuntimeError::sys("socketpair", e))?;
    let mut fds = vec![child_end.as_raw_fd(), container_pidfd.as_raw_fd()];
    if let Some(stdio) = stdio {
        fds.extend(stdio);
    }
    // Born in the container's cgroup on a pure v2 host (see `cgroups::birth`), else attached.
    let clone_target = super::cgroups::clone_into_cgroup_wanted().then(|| cgroup.clone_target()).flatten();
    fds.extend(clone_target.as_ref().map(AsRawFd::as_raw_fd));
    let request = ExecRequest {
        service: target.spec.service.clone(),
        container: target.record.name.clone(),
        process,
        stdio: stdio.is_some(),
        cgroup_fd: clone_target.is_some(),
    };
    let spawned = spawner.exec(request, &fds)?;
    drop(child_end);
    let in_cgroup = spawned.in_cgroup;
    let mut started = ExecProcess { pid: spawned.pid, pidfd: spawned.pidfd, pty: None };
    let joined = if in_cgroup { Ok(()) } else { cgroup.add_process(started.pid) };
    let handshake = joined
        .map_err(RuntimeError::from)
        .and_then(|()| go(parent_end.as_fd(), &target.spec.service, &target.record.name))
        .map(|pty| started.pty = pty);
    if let Err(e) = handshake {
        let _ = super::container::send_signal(&started.pidfd, nix::sys::signal::Signal::SIGKILL);
        let _ = started.wait();
        return Err(e);
    }
    Ok(started)
}

/// A pidfd for `pid`.
pub fn pidfd_open(pid: i32) -> Result<OwnedFd, RuntimeError> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(RuntimeError::sys(format!("pidfd_open({pid})"), nix::Error::last()));
    }
    // SAFETY: the kernel returned a new descriptor this process owns.
    Ok(unsafe { OwnedFd::from_raw_fd(RawFd::try_from(fd).unwrap_or(-1)) })
}
