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
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;
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
    /// It was born in the cgroup whose descriptor came with the request (`CLONE_INTO_CGROUP`);
    /// `false` when none came or the kernel cannot, and the caller must move it there itself.
    pub in_cgroup: bool,
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
            Some((Reply::Spawned { pid, in_cgroup }, mut fds)) if fds.len() == 1 => {
                let pidfd = fds.pop().ok_or_else(|| RuntimeError::Spawner("no pidfd".into()))?;
                Ok(Spawned { pid, pidfd, in_cgroup })
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
            Ok((pid, pidfd, in_cgroup)) => {
                sync::send_json(socket.as_fd(), &Reply::Spawned { pid, in_cgroup }, &[pidfd.as_raw_fd()])
            }
            Err(message) => sync::send_json(socket.as_fd(), &Reply::Failed { message }, &[]),
        };
        if sent.is_err() {
            exit_now(0);
        }
    }
}

/// A clone's result as the spawner replies it: PID, pidfd, born in the requested cgroup.
type Reply3 = (i32, OwnedFd, bool);

fn spawn_container(request: CreateRequest, mut fds: Vec<OwnedFd>) -> Result<Reply3, String> {
    // Taken off the list the child arranges; the child closes it with every other stray
    // descriptor before it execs.
    let cgroup = if request.cgroup_fd { fds.pop() } else { None };
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
    let cloned = clone_in(flags.bits() as u64, cgroup.as_ref());
    if let Ok((Cloned::Child, _)) = cloned {
        init::container_main(request, fds, seccomp.as_deref())
    }
    if let Some(own) = restore {
        restore_pid_ns(&own);
    }
    match cloned.map_err(|e| format!("clone: {e}"))? {
        (Cloned::Child, _) => exit_now(1),
        (Cloned::Parent { pid, pidfd }, in_cgroup) => Ok((pid, pidfd, in_cgroup)),
    }
}

fn spawn_exec(request: ExecRequest, mut fds: Vec<OwnedFd>, own_pid_ns: Option<&File>) -> Result<Reply3, String> {
    let cgroup = if request.cgroup_fd { fds.pop() } else { None };
    let target = fds.get(1).ok_or("exec request without a pidfd")?;
    let own = own_pid_ns.ok_or("cannot open the spawner's PID namespace")?;
    let seccomp =
        super::seccomp::programs_for(&request.process).map_err(|e| format!("service {:?}: {e}", request.service))?;
    nix::sched::setns(target, CloneFlags::CLONE_NEWPID).map_err(|e| format!("enter the PID namespace: {e}"))?;
    let cloned = clone_in(0, cgroup.as_ref());
    if let Ok((Cloned::Child, _)) = cloned {
        init::exec_main(request, fds, seccomp.as_deref())
    }
    restore_pid_ns(own);
    match cloned.map_err(|e| format!("clone: {e}"))? {
        (Cloned::Child, _) => exit_now(1),
        (Cloned::Parent { pid, pidfd }, in_cgroup) => Ok((pid, pidfd, in_cgroup)),
    }
}

/// Set once the kernel refused `CLONE_INTO_CGROUP`: later clones go straight to the attach.
static NO_CLONE_INTO_CGROUP: AtomicBool = AtomicBool::new(false);

/// clone3 into `cgroup` (a cgroup v2 directory) when given and the kernel can, else a plain
/// clone3; the flag says which happened.
fn clone_in(flags: u64, cgroup: Option<&OwnedFd>) -> nix::Result<(Cloned, bool)> {
    clone_maybe_into_cgroup(&Kernel, flags, cgroup.map(AsRawFd::as_raw_fd), &NO_CLONE_INTO_CGROUP)
}

/// The clone3 system call, behind a seam so the fallback below is unit-tested without a kernel
/// that lacks `CLONE_INTO_CGROUP`.
trait Clone3Syscall {
    /// clone3 with `flags` (plus `CLONE_PARENT | CLONE_PIDFD`) and `clone_args.cgroup`.
    fn clone3(&self, flags: u64, cgroup: Option<RawFd>) -> nix::Result<Cloned>;
}

/// The running kernel.
struct Kernel;

impl Clone3Syscall for Kernel {
    fn clone3(&self, flags: u64, cgroup: Option<RawFd>) -> nix::Result<Cloned> {
        clone3(flags, cgroup)
    }
}

/// `CLONE_INTO_CGROUP` (Linux 5.7+): the child starts in the cgroup `clone_args.cgroup` names,
/// so nobody writes `cgroup.procs` for it and nobody waits the attach lock's RCU grace period
/// (see `cgroups::prime`). A kernel without it refuses the call as a whole, having made no
/// child: 5.3-5.6 reject the unknown flag (EINVAL) or the larger `clone_args` with a non-zero
/// field past the ones they know (E2BIG); before 5.3 there is no clone3 at all (ENOSYS, and the
/// plain retry fails the same way). Any other error is the clone's own and is returned as is.
fn clone_maybe_into_cgroup(
    sys: &impl Clone3Syscall,
    flags: u64,
    cgroup: Option<RawFd>,
    unsupported: &AtomicBool,
) -> nix::Result<(Cloned, bool)> {
    if let Some(fd) = cgroup.filter(|_| !unsupported.load(Ordering::Relaxed)) {
        match sys.clone3(flags | CLONE_INTO_CGROUP, Some(fd)) {
            Ok(cloned) => return Ok((cloned, true)),
            Err(Errno::ENOSYS | Errno::E2BIG | Errno::EINVAL) => unsupported.store(true, Ordering::Relaxed),
            Err(e) => return Err(e),
        }
    }
    sys.clone3(flags, None).map(|cloned| (cloned, false))
}

/// `CLONE_INTO_CGROUP` from <linux/sched.h> (libc defines it for glibc targets only).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

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

/// clone3 with `CLONE_PARENT | CLONE_PIDFD` plus `flags`, like fork otherwise; `cgroup` is the
/// directory descriptor `CLONE_INTO_CGROUP` takes.
fn clone3(flags: u64, cgroup: Option<RawFd>) -> nix::Result<Cloned> {
    let mut pidfd: RawFd = -1;
    let args = CloneArgs {
        flags: flags | libc::CLONE_PARENT as u64 | libc::CLONE_PIDFD as u64,
        pidfd: std::ptr::addr_of_mut!(pidfd) as u64,
        cgroup: cgroup.and_then(|fd| u64::try_from(fd).ok()).unwrap_or(0),
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::cell::RefCell;

    use super::*;

    /// A clone3 that answers from a script and records what it was asked; "cloned" stands for
    /// a parent's success (with a pidfd of /dev/null), so nothing is forked.
    struct Scripted {
        answers: RefCell<Vec<nix::Result<()>>>,
        calls: RefCell<Vec<(u64, Option<RawFd>)>>,
    }

    impl Scripted {
        fn new(answers: Vec<nix::Result<()>>) -> Self {
            Self { answers: RefCell::new(answers), calls: RefCell::new(Vec::new()) }
        }
    }

    impl Clone3Syscall for Scripted {
        fn clone3(&self, flags: u64, cgroup: Option<RawFd>) -> nix::Result<Cloned> {
            self.calls.borrow_mut().push((flags, cgroup));
            self.answers.borrow_mut().remove(0)?;
            Ok(Cloned::Parent { pid: 42, pidfd: File::open("/dev/null").unwrap().into() })
        }
    }

    fn run(sys: &Scripted, cgroup: Option<RawFd>, unsupported: &AtomicBool) -> nix::Result<bool> {
        clone_maybe_into_cgroup(sys, 0x10, cgroup, unsupported).map(|(_, in_cgroup)| in_cgroup)
    }

    #[test]
    fn a_kernel_with_clone_into_cgroup_starts_the_child_in_its_cgroup() {
        let sys = Scripted::new(vec![Ok(())]);
        let unsupported = AtomicBool::new(false);
        assert!(run(&sys, Some(7), &unsupported).unwrap());
        assert_eq!(*sys.calls.borrow(), vec![(0x10 | CLONE_INTO_CGROUP, Some(7))]);
        assert!(!unsupported.load(Ordering::Relaxed));
    }

    #[test]
    fn an_older_kernel_falls_back_to_a_plain_clone_and_remembers() {
        // 5.3-5.6 refuse the flag (EINVAL) or the cgroup field (E2BIG); before 5.3, ENOSYS.
        for refusal in [Errno::EINVAL, Errno::E2BIG, Errno::ENOSYS] {
            let sys = Scripted::new(vec![Err(refusal), Ok(()), Ok(())]);
            let unsupported = AtomicBool::new(false);
            assert!(!run(&sys, Some(7), &unsupported).unwrap(), "{refusal}");
            assert_eq!(*sys.calls.borrow(), vec![(0x10 | CLONE_INTO_CGROUP, Some(7)), (0x10, None)], "{refusal}");
            assert!(unsupported.load(Ordering::Relaxed));
            // The next clone does not try again.
            assert!(!run(&sys, Some(7), &unsupported).unwrap());
            assert_eq!(sys.calls.borrow().last(), Some(&(0x10, None)));
            assert_eq!(sys.calls.borrow().len(), 3);
        }
    }

    #[test]
    fn other_clone_errors_are_returned_without_a_retry() {
        let sys = Scripted::new(vec![Err(Errno::EAGAIN)]);
        let unsupported = AtomicBool::new(false);
        assert_eq!(run(&sys, Some(7), &unsupported), Err(Errno::EAGAIN));
        assert_eq!(sys.calls.borrow().len(), 1);
        assert!(!unsupported.load(Ordering::Relaxed));
    }

    #[test]
    fn without_a_cgroup_descriptor_the_clone_is_plain() {
        let sys = Scripted::new(vec![Ok(())]);
        assert!(!run(&sys, None, &AtomicBool::new(false)).unwrap());
        assert_eq!(*sys.calls.borrow(), vec![(0x10, None)]);
    }

    /// The real kernel: a child cloned into a cgroup v2 directory finds itself there, with no
    /// `cgroup.procs` write. This host's unified tree (hybrid, or pure v2) takes it.
    #[test]
    fn the_running_kernel_clones_into_a_cgroup2_directory() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root to make a cgroup");
            return;
        }
        let Some(root) = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"].into_iter().find(|p| {
            nix::sys::statfs::statfs(*p).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        }) else {
            eprintln!("skipped: no cgroup2 mount");
            return;
        };
        let dir = std::path::Path::new(root).join(format!("berth-clone-test-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        let fd = File::open(&dir).unwrap();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned().into_bytes();
        // CLONE_PARENT makes the child the test runner's sibling, which this process cannot
        // wait for: the child reports on a pipe.
        let (report_read, report_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let unsupported = AtomicBool::new(false);
        let cloned = clone_maybe_into_cgroup(&Kernel, 0, Some(fd.as_raw_fd()), &unsupported);
        if let Ok((Cloned::Child, _)) = cloned {
            // The child of a multithreaded test process: only system calls and stack memory
            // (another thread may have held the allocator's lock at the clone). Reports 0 only
            // when /proc/self/cgroup names the directory.
            let mut buf = [0u8; 4096];
            // SAFETY: a NUL-terminated path and flags.
            let fd = unsafe { libc::open(c"/proc/self/cgroup".as_ptr(), libc::O_RDONLY) };
            // SAFETY: reads into a stack buffer at most its length.
            let len = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            let text = &buf[..usize::try_from(len).unwrap_or(0)];
            let found = text.windows(name.len()).any(|w| w == name.as_slice());
            let report = [if found { b'0' } else { b'3' }];
            // SAFETY: writes one byte from a stack buffer to the pipe's write end.
            unsafe { libc::write(report_write.as_raw_fd(), report.as_ptr().cast(), 1) };
            exit_now(0);
        }
        let (Cloned::Parent { pidfd, .. }, in_cgroup) = cloned.unwrap() else { unreachable!() };
        drop(report_write);
        let mut report = Vec::new();
        std::io::Read::read_to_end(&mut File::from(report_read), &mut report).unwrap();
        // A pidfd turns readable once the process has left its cgroup and exited (the pipe
        // closes earlier in the exit); then the cgroup is empty and can go.
        let mut poll = [nix::poll::PollFd::new(pidfd.as_fd(), nix::poll::PollFlags::POLLIN)];
        nix::poll::poll(&mut poll, nix::poll::PollTimeout::NONE).unwrap();
        drop(pidfd);
        let removed = std::fs::remove_dir(&dir);
        if super::super::cgroups::kernel_has_clone_into_cgroup() {
            assert!(in_cgroup, "Linux 5.7+ takes CLONE_INTO_CGROUP");
            assert_eq!(report, b"0", "the child was not in {}", dir.display());
            removed.unwrap();
        } else {
            assert!(!in_cgroup);
        }
    }
}
