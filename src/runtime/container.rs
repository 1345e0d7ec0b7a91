//! The parent's side of a container: directories and cgroup made before the clone, the
//! handshake with the new process, waiting, and removal. Every failure on the way in undoes
//! what was made, so a container that cannot start leaves nothing behind.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;

use nix::sys::signal::Signal;
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};

use super::RuntimeError;
use super::cgroups::ContainerCgroup;
use super::spawner::{Spawned, Spawner};
use super::spec::{ContainerSpec, MountKind, NamespaceMode};
use super::state::{self, ContainerDirs, ContainerRecord};
use super::sync::{self, CreateRequest, FromChild, ToChild};

/// How to start a container.
#[derive(Debug, Clone, Copy, Default)]
pub struct StartOptions {
    /// stdin, stdout and stderr for the process; `None` gives it /dev/null.
    pub stdio: Option<[RawFd; 3]>,
    /// SIGKILL the container when this process dies.
    pub die_with_parent: bool,
    /// A one-off container (`run`), not one of the service's replicas.
    pub oneoff: bool,
}

/// Places a container on its networks: given its network namespace (the process waits in it)
/// and its spec (`endpoints`), makes its interfaces. Supplied from above (the `launch` module)
/// so the runtime does not depend on the network layer; an error is its message.
pub type NetworkAttach<'a> = &'a dyn Fn(BorrowedFd<'_>, &ContainerSpec) -> Result<(), String>;

/// A started container, a child of this process.
#[derive(Debug)]
pub struct Container {
    /// What it is.
    pub spec: ContainerSpec,
    /// Its directories.
    pub dirs: ContainerDirs,
    /// Its PID 1, in berth's PID namespace.
    pub pid: i32,
    /// Its pidfd.
    pub pidfd: OwnedFd,
    /// Its cgroup.
    pub cgroup: ContainerCgroup,
    /// The pty master, when the process has a terminal.
    pub pty: Option<OwnedFd>,
    exit: Option<ExitStatus>,
    /// It ran before (a kept container started again): a failure to start it must not take
    /// its files.
    ran_before: bool,
}

/// A container made by [`Container::create`], its process waiting to exec.
#[derive(Debug)]
pub struct Created {
    container: Container,
    socket: OwnedFd,
    oneoff: bool,
}

impl Created {
    /// What it is.
    pub fn spec(&self) -> &ContainerSpec {
        &self.container.spec
    }

    /// Lets the process exec; when this returns, it has.
    pub fn start(self) -> Result<Container, RuntimeError> {
        let Created { mut container, socket, oneoff } = self;
        match go(socket.as_fd(), &container.spec.service, &container.spec.name) {
            Ok(pty) => container.pty = pty,
            Err(e) => {
                container.undo();
                return Err(e);
            }
        }
        crate::fault::point("before-record");
        // A container started again keeps its creation time, as docker's does, and its
        // restart count; and the last exit code anyone saw, which is the best `ps` can say
        // should this run end unseen (its supervisor killed).
        let previous = ContainerRecord::load(&container.dirs);
        let created = previous.as_ref().map_or_else(state::now, |r| r.created);
        let record = ContainerRecord {
            id: container.spec.id.clone(),
            name: container.spec.name.clone(),
            project: container.spec.project.clone(),
            service: container.spec.service.clone(),
            oneoff,
            pid: container.pid,
            start_time: state::process_start_time(container.pid).unwrap_or(0),
            created,
            exited: false,
            exit_code: previous.as_ref().map_or(0, |r| r.exit_code),
            started_at: state::now_nanos(),
            finished_at: 0,
            health: String::new(),
            restarts: previous.as_ref().map_or(0, |r| r.restarts),
        };
        record.save_as(&container.dirs, !container.spec.rootfs.volatile)?;
        Ok(container)
    }

    /// Kills the waiting process and removes the cgroup and the directories.
    pub fn destroy(self) -> Result<(), RuntimeError> {
        self.container.destroy()
    }

    /// Kills the waiting process and removes the cgroup, keeping the files (see
    /// [`Container::retire`]).
    pub fn retire(self) -> Result<ContainerSpec, RuntimeError> {
        self.container.retire()
    }
}

/// How a container's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    /// Exit code in the shell's convention: 128 + signal for a killed process.
    pub code: i32,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
    /// The kernel's OOM killer killed a process of the container.
    pub oom_killed: bool,
}

impl Container {
    /// Creates and starts a container: when this returns, its process has exec'd.
    pub fn start(
        spawner: &Spawner,
        state_root: &Path,
        spec: ContainerSpec,
        options: StartOptions,
        attach: NetworkAttach<'_>,
    ) -> Result<Container, RuntimeError> {
        Container::create(spawner, state_root, spec, options, attach)?.start()
    }

    /// Creates a container whose process waits, with its root, cgroup and network ready, for
    /// [`Created::start`] to let it exec: OCI's create, which lets a restart do its work
    /// during the back-off.
    pub fn create(
        spawner: &Spawner,
        state_root: &Path,
        spec: ContainerSpec,
        options: StartOptions,
        attach: NetworkAttach<'_>,
    ) -> Result<Created, RuntimeError> {
        let dirs = ContainerDirs::new(state_root, &spec.id);
        let join = joined_namespaces(state_root, &spec)?;
        let ran_before = dirs.ran_before();
        // A kept container that fails to start again keeps its files for the next try.
        let undo_dirs = || {
            if !ran_before {
                let _ = dirs.remove();
            }
        };
        prepare(&dirs, &spec).inspect_err(|_| undo_dirs())?;
        crate::timing::phase("dirs");
        // On a pure v2 host the cgroup comes first and the process is born in it (see
        // `cgroups::birth`); elsewhere the child builds its root while this process makes its
        // cgroup, and is moved into it after.
        let early = if super::cgroups::clone_into_cgroup_wanted() {
            let cgroup = ContainerCgroup::create(&spec.id, &spec.resources).inspect_err(|_| undo_dirs())?;
            crate::timing::phase("cgroup created");
            Some(cgroup)
        } else {
            None
        };
        let target = early.as_ref().and_then(ContainerCgroup::clone_target);
        let (spawned, parent_end) = match spawn(spawner, &spec, &dirs, join, options, target) {
            Ok(spawned) => spawned,
            Err(e) => {
                if let Some(cgroup) = &early {
                    let _ = cgroup.remove();
                }
                undo_dirs();
                return Err(e);
            }
        };
        crate::timing::phase("spawned");
        let cgroup = match early.map_or_else(|| ContainerCgroup::create(&spec.id, &spec.resources), Ok) {
            Ok(cgroup) => cgroup,
            Err(e) => {
                let _ = send_signal(&spawned.pidfd, Signal::SIGKILL);
                let _ = wait_pidfd(&spawned.pidfd);
                undo_dirs();
                return Err(e.into());
            }
        };
        if let Err(e) = attach_network(&spawned, &spec, attach) {
            let _ = cgroup.kill_all();
            let _ = send_signal(&spawned.pidfd, Signal::SIGKILL);
            let _ = wait_pidfd(&spawned.pidfd);
            let _ = cgroup.remove();
            undo_dirs();
            return Err(e);
        }
        let in_cgroup = spawned.in_cgroup;
        let container =
            Container { spec, dirs, pid: spawned.pid, pidfd: spawned.pidfd, cgroup, pty: None, exit: None, ran_before };
        if in_cgroup {
            crate::timing::phase("born in cgroup");
            return Ok(Created { container, socket: parent_end, oneoff: options.oneoff });
        }
        // Starts the attach lock's grace period now, so it runs alongside the child's setup
        // (see `cgroups::prime`).
        super::cgroups::prime_attach_lock();
        crate::timing::phase("cgroup created");
        // The process builds its root meanwhile; if that failed, it may be gone already and
        // its own report says more than the cgroup's ESRCH.
        if let Err(e) = container.cgroup.add_process(container.pid) {
            let e =
                reported_failure(parent_end.as_fd(), &container.spec.service, &container.spec.name).unwrap_or(e.into());
            container.undo();
            return Err(e);
        }
        crate::timing::phase("cgroup joined");
        Ok(Created { container, socket: parent_end, oneoff: options.oneoff })
    }

    /// Waits for the container's PID 1 to exit.
    pub fn wait(&mut self) -> Result<ExitStatus, RuntimeError> {
        if let Some(exit) = self.exit {
            return Ok(exit);
        }
        let status = wait_pidfd(&self.pidfd)?;
        let oom_killed = self.cgroup.oom_kills().unwrap_or(0) > 0;
        let exit = ExitStatus { oom_killed, ..status };
        self.exit = Some(exit);
        Ok(exit)
    }

    /// Sends a signal to the container's PID 1.
    pub fn signal(&self, signal: Signal) -> Result<(), RuntimeError> {
        send_signal(&self.pidfd, signal)
    }

    /// Ends the container's run but keeps its files — the writable layer, its /etc files and
    /// spec — so [`Container::start`] with the returned spec runs it again, as docker restarts
    /// a container: kills whatever still runs, reaps PID 1, removes the cgroup.
    pub fn retire(mut self) -> Result<ContainerSpec, RuntimeError> {
        if self.exit.is_none() {
            let _ = self.cgroup.kill_all();
            let _ = send_signal(&self.pidfd, Signal::SIGKILL);
            let _ = self.wait();
        }
        self.cgroup.remove()?;
        Ok(self.spec)
    }

    /// What a failed start leaves: nothing of a new container, the files of a kept one.
    fn undo(self) {
        if self.ran_before {
            let _ = self.retire();
        } else {
            let _ = self.destroy();
        }
    }

    /// Kills whatever still runs, reaps PID 1 and removes the cgroup and the directories.
    pub fn destroy(mut self) -> Result<(), RuntimeError> {
        if self.exit.is_none() {
            let _ = self.cgroup.kill_all();
            let _ = send_signal(&self.pidfd, Signal::SIGKILL);
            let _ = self.wait();
        }
        // Two independent removals (rmdir in ten cgroup hierarchies; emptying the directory
        // into the spare pool, or removing it, where freed blocks may be discarded
        // synchronously): side by side.
        let (cgroup, dirs) = std::thread::scope(|scope| {
            let dirs = scope.spawn(|| self.dirs.remove());
            let cgroup = self.cgroup.remove();
            (cgroup, dirs.join())
        });
        crate::timing::phase("cgroup removed");
        cgroup?;
        dirs.unwrap_or_else(|_| Err(RuntimeError::sys("remove the container's directories", nix::Error::EIO)))
    }
}

/// Makes the container's interfaces (through `attach`) before its process goes on: the
/// process finds its network ready when it starts.
fn attach_network(spawned: &Spawned, spec: &ContainerSpec, attach: NetworkAttach<'_>) -> Result<(), RuntimeError> {
    if spec.endpoints.is_empty() {
        return Ok(());
    }
    let path = format!("/proc/{}/ns/net", spawned.pid);
    let netns = std::fs::File::open(&path).map_err(|e| RuntimeError::io(&path, e))?;
    attach(netns.as_fd(), spec).map_err(|message| RuntimeError::Network { container: spec.name.clone(), message })?;
    crate::timing::phase("network attached");
    Ok(())
}

/// Tells a process being set up to go on and waits until it execs: its pty master when it
/// made one, or the failure it reported, as an error naming the service and container.
pub(crate) fn go(socket: BorrowedFd<'_>, service: &str, container: &str) -> Result<Option<OwnedFd>, RuntimeError> {
    if let Err(e) = sync::send_json(socket, &ToChild::Go, &[]) {
        return Err(reported_failure(socket, service, container)
            .unwrap_or_else(|| RuntimeError::sys(format!("start {container}"), e)));
    }
    let mut pty = None;
    loop {
        match sync::recv_json::<FromChild>(socket).map_err(|e| RuntimeError::sys(format!("start {container}"), e))? {
            None => return Ok(pty),
            Some((FromChild::Pty, mut fds)) => pty = fds.pop(),
            Some((FromChild::Failed { message }, _)) => {
                return Err(RuntimeError::Start { service: service.into(), container: container.into(), message });
            }
        }
    }
}

/// The failure a process being set up already reported, if one is waiting on the socket.
fn reported_failure(socket: BorrowedFd<'_>, service: &str, container: &str) -> Option<RuntimeError> {
    let mut poll = [nix::poll::PollFd::new(socket, nix::poll::PollFlags::POLLIN)];
    if nix::poll::poll(&mut poll, nix::poll::PollTimeout::ZERO).ok()? == 0 {
        return None;
    }
    match sync::recv_json::<FromChild>(socket) {
        Ok(Some((FromChild::Failed { message }, _))) => {
            Some(RuntimeError::Start { service: service.into(), container: container.into(), message })
        }
        _ => None,
    }
}

/// What happened to a process, from its pidfd; reaps it.
pub fn wait_pidfd(pidfd: &OwnedFd) -> Result<ExitStatus, RuntimeError> {
    loop {
        match waitid(Id::PIDFd(pidfd.as_fd()), WaitPidFlag::WEXITED) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(ExitStatus { code, signal: None, oom_killed: false }),
            Ok(WaitStatus::Signaled(_, signal, _)) => {
                let signal = signal as i32;
                return Ok(ExitStatus { code: 128 + signal, signal: Some(signal), oom_killed: false });
            }
            Ok(_) | Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(RuntimeError::sys("wait for the container", e)),
        }
    }
}

/// `pidfd_send_signal`: never hits a recycled PID.
pub fn send_signal(pidfd: &OwnedFd, signal: Signal) -> Result<(), RuntimeError> {
    // SAFETY: pidfd_send_signal with a live pidfd, no siginfo, no flags.
    let r = unsafe {
        libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), signal as libc::c_int, std::ptr::null::<()>(), 0)
    };
    if r < 0 {
        return Err(RuntimeError::sys(format!("send {signal}"), nix::Error::last()));
    }
    Ok(())
}

fn prepare(dirs: &ContainerDirs, spec: &ContainerSpec) -> Result<(), RuntimeError> {
    dirs.create(spec)?;
    for mount in &spec.mounts {
        if let MountKind::Volume { dir, .. } = &mount.kind {
            crate::volume::ensure_mounted(&spec.project, &mount.kind)
                .map_err(|e| RuntimeError::io(dir, std::io::Error::other(e)))?;
        }
    }
    Ok(())
}

fn spawn(
    spawner: &Spawner,
    spec: &ContainerSpec,
    dirs: &ContainerDirs,
    join: Vec<(String, i32)>,
    options: StartOptions,
    cgroup: Option<OwnedFd>,
) -> Result<(Spawned, OwnedFd), RuntimeError> {
    let (parent_end, child_end) = sync::socketpair().map_err(|e| RuntimeError::sys("socketpair", e))?;
    let mut fds = vec![child_end.as_raw_fd()];
    if let Some(stdio) = options.stdio {
        fds.extend(stdio);
    }
    fds.extend(cgroup.as_ref().map(AsRawFd::as_raw_fd));
    let request = CreateRequest {
        spec: spec.clone(),
        dirs: dirs.clone(),
        join,
        stdio: options.stdio.is_some(),
        die_with_parent: options.die_with_parent,
        cgroup_fd: cgroup.is_some(),
    };
    let spawned = spawner.create(request, &fds)?;
    drop(child_end);
    Ok((spawned, parent_end))
}

/// Host PIDs of the containers whose namespaces this one shares.
fn joined_namespaces(state_root: &Path, spec: &ContainerSpec) -> Result<Vec<(String, i32)>, RuntimeError> {
    let ns = &spec.namespaces;
    let mut join = Vec::new();
    for (kind, mode) in [("net", &ns.net), ("pid", &ns.pid), ("ipc", &ns.ipc), ("uts", &ns.uts)] {
        if let NamespaceMode::Container(name) = mode {
            let found = state::list(state_root)?;
            let running =
                found.iter().filter_map(|f| f.record.as_ref()).find(|r| &r.name == name && r.is_running()).ok_or_else(
                    || {
                        RuntimeError::NotFound(format!(
                            "service {:?}: cannot share the {kind} namespace of container {name}: it is not running",
                            spec.service
                        ))
                    },
                )?;
            join.push((kind.to_string(), running.pid));
        }
    }
    Ok(join)
}
