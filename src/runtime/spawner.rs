//! The spawner: a small single-threaded process forked from `main` before tokio (or any other
//! thread) exists, which clones containers and exec processes on request.
//!
//! Cloning from a multithreaded process is unsafe: the child inherits locks other threads held
//! (the allocator's among them) and may deadlock before it reaches `execve`, and `setns` into a
//! mount namespace is refused outright. The spawner has one thread, so its clones run ordinary
//! Rust code until `execve`. It clones with `CLONE_PARENT`, so every container is a child of the
//! process that asked for it (the supervisor or the CLI), which reaps it through the pidfd the
//! spawner passes back.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;

use nix::sched::CloneFlags;
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid, fork};

use super::RuntimeError;
use super::init;
use super::sync::{self, CreateRequest, ExecRequest, Reply, Request};

/// The handle on a running spawner.
#[derive(Debug)]
pub struct Spawner {
    socket: Mutex<Option<OwnedFd>>,
    pid: Pid,
}

/// A process the spawner cloned.
#[derive(Debug)]
pub struct Spawned {
    /// Host PID.
    pub pid: i32,
    /// A pidfd for it: wait, signal, and `setns` through this, never through the PID.
    pub pidfd: OwnedFd,
}

impl Spawner {
    /// Forks the spawner. Refused unless this process has exactly one thread.
    pub fn start() -> Result<Spawner, RuntimeError> {
        let threads = std::fs::read_dir("/proc/self/task").map(|d| d.count()).unwrap_or(0);
        if threads != 1 {
            return Err(RuntimeError::Spawner(format!(
                "the spawner must be forked while berth has one thread (it has {threads})"
            )));
        }
        let (ours, theirs) = sync::socketpair().map_err(|e| RuntimeError::sys("socketpair", e))?;
        // SAFETY: this process has a single thread (checked above), so the child starts with no
        // lock held by anyone and may run ordinary code.
        match unsafe { fork() }.map_err(|e| RuntimeError::sys("fork the spawner", e))? {
            ForkResult::Child => {
                drop(ours);
                serve(theirs)
            }
            ForkResult::Parent { child } => {
                drop(theirs);
                Ok(Spawner { socket: Mutex::new(Some(ours)), pid: child })
            }
        }
    }

    /// Clones a container. `fds` are the descriptors [`Request::Create`] documents.
    pub fn create(&self, request: CreateRequest, fds: &[RawFd]) -> Result<Spawned, RuntimeError> {
        self.call(&Request::Create(Box::new(request)), fds)
    }

    /// Clones a process into a running container. `fds` as [`Request::Exec`] documents.
    pub fn exec(&self, request: ExecRequest, fds: &[RawFd]) -> Result<Spawned, RuntimeError> {
        self.call(&Request::Exec(Box::new(request)), fds)
    }

    fn call(&self, request: &Request, fds: &[RawFd]) -> Result<Spawned, RuntimeError> {
        let guard = self.socket.lock().map_err(|_| RuntimeError::Spawner("lock poisoned".into()))?;
        let socket = guard.as_ref().ok_or_else(|| RuntimeError::Spawner("closed".into()))?;
        sync::send_json(socket.as_fd(), request, fds).map_err(|e| RuntimeError::sys("send to the spawner", e))?;
        let answer = sync::recv_json::<Reply>(socket.as_fd()).map_err(|e| RuntimeError::sys("spawner reply", e))?;
        match answer {
            Some((Reply::Spawned { pid }, mut fds)) if fds.len() == 1 => {
                Ok(Spawned { pid, pidfd: fds.pop().ok_or_else(|| RuntimeError::Spawner("no pidfd".into()))? })
            }
            Some((Reply::Failed { message }, _)) => Err(RuntimeError::Spawner(message)),
            Some(_) => Err(RuntimeError::Spawner("malformed reply".into())),
            None => Err(RuntimeError::Spawner("the spawner exited".into())),
        }
    }
}

impl Drop for Spawner {
    fn drop(&mut self) {
        // Closing the socket ends the spawner's loop; reap it so no zombie is left.
        if let Ok(socket) = self.socket.get_mut() {
            drop(socket.take());
        }
        let _ = waitpid(self.pid, None);
    }
}

/// The spawner's loop: one request, one clone, one reply.
fn serve(socket: OwnedFd) -> ! {
    // The spawner lives exactly as long as the process that forked it.
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    let own_pid_ns = File::open("/proc/self/ns/pid").ok();
    // Read once here, while the parent loads the project, and inherited by every container
    // process forked from here (see `cgroups::mounts`).
    let _ = crate::runtime::cgroups::host_cgroup_mounts();
    crate::runtime::seccomp::warm();
    loop {
        let (request, fds) = match sync::recv_json::<Request>(socket.as_fd()) {
            Ok(Some(message)) => message,
            Ok(None) | Err(_) => exit_now(0),
        };
        let result = match request {
            Request::Create(request) => spawn_container(*request, fds),
            Request::Exec(request) => spawn_exec(*request, fds, own_pid_ns.as_ref()),
        };
        let sent = match result {
            Ok((pid, pidfd)) => sync::send_json(socket.as_fd(), &Reply::Spawned { pid }, &[pidfd.as_raw_fd()]),
            Err(message) => sync::send_json(socket.as_fd(), &Reply::Failed { message }, &[]),
        };
        if sent.is_err() {
            exit_now(0);
        }
    }
}

fn spawn_container(request: CreateRequest, fds: Vec<OwnedFd>) -> Result<(i32, OwnedFd), String> {
    let mut flags = CloneFlags::CLONE_NEWNS;
    let ns = &request.spec.namespaces;
    use super::spec::NamespaceMode::{None as NoNet, Private};
    if matches!(ns.net, Private | NoNet) {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    if ns.pid == Private {
        flags |= CloneFlags::CLONE_NEWPID;
    }
    if ns.ipc == Private {
        flags |= CloneFlags::CLONE_NEWIPC;
    }
    if ns.uts == Private {
        flags |= CloneFlags::CLONE_NEWUTS;
    }
    // Compiled here, before the clone, so the spawner's cache serves later containers.
    let seccomp = super::seccomp::programs_for(&request.spec.process)
        .map_err(|e| format!("service {:?}: {e}", request.spec.service))?;
    // Joining another container's PID namespace must happen before the clone: it only
    // affects children.
    let joined_pid = request.join.iter().find(|(kind, _)| kind == "pid").map(|(_, pid)| *pid);
    let restore = match joined_pid {
        Some(pid) => Some(enter_pid_ns_for_children(pid)?),
        None => None,
    };
    let cloned = clone3(flags.bits() as u64);
    if let Ok(Cloned::Child) = cloned {
        init::container_main(request, fds, seccomp.as_deref())
    }
    if let Some(own) = restore {
        restore_pid_ns(&own);
    }
    match cloned.map_err(|e| format!("clone: {e}"))? {
        Cloned::Child => exit_now(1),
        Cloned::Parent { pid, pidfd } => Ok((pid, pidfd)),
    }
}

fn spawn_exec(request: ExecRequest, fds: Vec<OwnedFd>, own_pid_ns: Option<&File>) -> Result<(i32, OwnedFd), String> {
    let target = fds.get(1).ok_or("exec request without a pidfd")?;
    let own = own_pid_ns.ok_or("cannot open the spawner's PID namespace")?;
    let seccomp =
        super::seccomp::programs_for(&request.process).map_err(|e| format!("service {:?}: {e}", request.service))?;
    nix::sched::setns(target, CloneFlags::CLONE_NEWPID).map_err(|e| format!("enter the PID namespace: {e}"))?;
    let cloned = clone3(0);
    if let Ok(Cloned::Child) = cloned {
        init::exec_main(request, fds, seccomp.as_deref())
    }
    restore_pid_ns(own);
    match cloned.map_err(|e| format!("clone: {e}"))? {
        Cloned::Child => exit_now(1),
        Cloned::Parent { pid, pidfd } => Ok((pid, pidfd)),
    }
}

/// Back to the spawner's own PID namespace for later clones (the parent's side only: the
/// child lives in the other namespace). Failing here would put every later container in the
/// wrong namespace, so the spawner gives up instead.
fn restore_pid_ns(own: &File) {
    if nix::sched::setns(own, CloneFlags::CLONE_NEWPID).is_err() {
        exit_now(1);
    }
}

fn enter_pid_ns_for_children(pid: i32) -> Result<File, String> {
    let own = File::open("/proc/self/ns/pid").map_err(|e| format!("open own PID namespace: {e}"))?;
    let target = File::open(format!("/proc/{pid}/ns/pid")).map_err(|e| format!("open PID namespace of {pid}: {e}"))?;
    nix::sched::setns(&target, CloneFlags::CLONE_NEWPID).map_err(|e| format!("enter PID namespace of {pid}: {e}"))?;
    Ok(own)
}

enum Cloned {
    Child,
    Parent { pid: i32, pidfd: OwnedFd },
}

/// `struct clone_args` of clone3(2), version 0 plus `set_tid` and `cgroup` (size 88).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// clone3 with `CLONE_PARENT | CLONE_PIDFD` plus `flags`, like fork otherwise.
fn clone3(flags: u64) -> nix::Result<Cloned> {
    let mut pidfd: RawFd = -1;
    let args = CloneArgs {
        flags: flags | libc::CLONE_PARENT as u64 | libc::CLONE_PIDFD as u64,
        pidfd: std::ptr::addr_of_mut!(pidfd) as u64,
        ..CloneArgs::default()
    };
    // SAFETY: clone3 with no CLONE_VM and no stack behaves like fork: the child gets a copy of
    // this single-threaded process's memory, so it may run ordinary code. `args` and `pidfd`
    // outlive the call.
    let ret = unsafe { libc::syscall(libc::SYS_clone3, std::ptr::addr_of!(args), size_of::<CloneArgs>()) };
    match ret {
        -1 => Err(nix::Error::last()),
        0 => Ok(Cloned::Child),
        pid => {
            // SAFETY: on success the kernel stored a new pidfd that this process now owns.
            let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
            Ok(Cloned::Parent { pid: i32::try_from(pid).unwrap_or(-1), pidfd })
        }
    }
}

/// Leaves at once: no destructors, no atexit handlers (they belong to the parent's copy).
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit takes no pointers and never returns.
    unsafe { libc::_exit(code) }
}
