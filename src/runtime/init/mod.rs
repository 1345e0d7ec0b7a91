//! What runs in a new container (or a process joining one) between the clone and `execve`.
//!
//! This code runs in a clone of the single-threaded spawner, so it may allocate and do ordinary
//! work; it must never return into the spawner's loop. Every failure is sent to the parent over
//! the sync socket as a sentence naming what failed, then the process exits 127.
//!
//! The order follows what the kernel requires: descriptors and signals first, then wait for the
//! parent to finish cgroups; then the cgroup namespace (so its root is the container's cgroup),
//! joined namespaces, host name; the root filesystem ([`rootfs`]); the terminal; and last the
//! identity and capabilities ([`process`]), which must come after everything needing privilege.

mod copy_up;
mod dev;
mod kernfs;
mod keyring;
mod loopback;
mod path;
mod process;
mod reaper;
mod rootfs;
mod sys;
mod volumes;

use std::convert::Infallible;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, sigprocmask};

use super::seccomp::Programs;
use super::spawner::exit_now;
use super::spec::NamespaceMode;
use super::sync::{self, CreateRequest, ExecRequest, FromChild, ToChild};

/// A setup failure: the sentence the user sees.
#[derive(Debug)]
pub(crate) struct Failure(pub(crate) String);

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Failure {
    fn new(message: impl Into<String>) -> Self {
        Failure(message.into())
    }
}

/// Adds what was being done to a low-level error.
trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, Failure>;
}

impl<T, E: std::fmt::Display> Context<T> for Result<T, E> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, Failure> {
        self.map_err(|e| Failure(format!("{}: {e}", what())))
    }
}

/// The sync socket's descriptor number in the child once descriptors are arranged.
const SYNC_FD: RawFd = 3;
/// Where a joining process keeps the container's pidfd until it has entered.
const TARGET_FD: RawFd = 4;

/// Entry point of a new container's first process. `seccomp` was compiled by the spawner.
pub(crate) fn container_main(request: CreateRequest, fds: Vec<OwnedFd>, seccomp: Option<&Programs>) -> ! {
    let sync = arranged_or_fail(fds, request.stdio, false);
    let result = prepare_process(request.die_with_parent).and_then(|()| container(&request, sync.as_fd(), seccomp));
    fail(sync.as_fd(), result)
}

/// Entry point of a process joining a running container.
pub(crate) fn exec_main(request: ExecRequest, fds: Vec<OwnedFd>, seccomp: Option<&Programs>) -> ! {
    let sync = arranged_or_fail(fds, request.stdio, true);
    let result = prepare_process(false).and_then(|()| join(&request, sync.as_fd(), seccomp));
    fail(sync.as_fd(), result)
}

/// The sync socket once descriptors are arranged; on failure, reports on whichever descriptor
/// holds the socket at that point.
fn arranged_or_fail(fds: Vec<OwnedFd>, stdio: bool, with_target: bool) -> OwnedFd {
    match arrange_fds(fds, stdio, with_target) {
        Ok(sync) => sync,
        Err((socket, failure)) => {
            // SAFETY: `socket` is the sync socket's descriptor, left open by arrange_fds.
            let socket = unsafe { BorrowedFd::borrow_raw(socket) };
            fail(socket, Err(failure))
        }
    }
}

fn fail(sync: BorrowedFd<'_>, result: Result<Infallible, Failure>) -> ! {
    let Err(Failure(message)) = result;
    let _ = sync::send_json(sync, &FromChild::Failed { message }, &[]);
    exit_now(127)
}

fn container(request: &CreateRequest, sync: BorrowedFd<'_>, seccomp: Option<&Programs>) -> Result<Infallible, Failure> {
    let spec = &request.spec;
    for (kind, pid) in &request.join {
        let flag = match kind.as_str() {
            "net" => CloneFlags::CLONE_NEWNET,
            "ipc" => CloneFlags::CLONE_NEWIPC,
            "uts" => CloneFlags::CLONE_NEWUTS,
            _ => continue,
        };
        let ns = File::open(format!("/proc/{pid}/ns/{kind}")).context(|| format!("open the {kind} namespace"))?;
        setns(&ns, flag).context(|| format!("join the {kind} namespace"))?;
    }
    if spec.namespaces.uts == NamespaceMode::Private {
        nix::unistd::sethostname(&spec.hostname).context(|| format!("set host name {:?}", spec.hostname))?;
        if !spec.domainname.is_empty() {
            set_domainname(&spec.domainname)?;
        }
    }
    if matches!(spec.namespaces.net, NamespaceMode::Private | NamespaceMode::None) {
        loopback::bring_up()?;
    }
    // The root is built while the parent moves this process into its cgroup.
    let root = rootfs::prepare(&sys::KERNEL, spec, &request.dirs)?;
    crate::timing::phase("child prepared");
    wait_for_go(sync)?;
    crate::timing::phase("child go");
    // After the parent placed this process in its cgroup: the namespace's root is that cgroup.
    unshare(CloneFlags::CLONE_NEWCGROUP).context(|| "create the cgroup namespace".into())?;
    rootfs::finish(root, spec, &request.dirs)?;
    crate::timing::phase("child finished");
    open_terminal(spec.process.tty, sync)?;
    keyring::join_new()?;
    if spec.init {
        reaper::run(sync, &spec.process, seccomp, || process::exec(&spec.process, seccomp))
    } else {
        process::exec(&spec.process, seccomp)
    }
}

fn join(request: &ExecRequest, sync: BorrowedFd<'_>, seccomp: Option<&Programs>) -> Result<Infallible, Failure> {
    wait_for_go(sync)?;
    // SAFETY: TARGET_FD was placed by arrange_fds and is owned by nothing else.
    let target = unsafe { OwnedFd::from_raw_fd(TARGET_FD) };
    let flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWCGROUP;
    setns(&target, flags).context(|| format!("enter container {}", request.container))?;
    drop(target);
    nix::unistd::chdir("/").context(|| "chdir /".into())?;
    open_terminal(request.process.tty, sync)?;
    keyring::join_new()?;
    process::exec(&request.process, seccomp)
}

/// Makes this process the leader of a new session; with a terminal, allocates a pty in the
/// container's own devpts, hands the master to the parent and makes the slave stdio.
fn open_terminal(tty: bool, sync: BorrowedFd<'_>) -> Result<bool, Failure> {
    nix::unistd::setsid().context(|| "setsid".into())?;
    if !tty {
        return Ok(false);
    }
    let (master, slave) = dev::open_pty()?;
    sync::send_json(sync, &FromChild::Pty, &[master.as_raw_fd()]).context(|| "send the pty".into())?;
    drop(master);
    for target in 0..3 {
        // SAFETY: dup2 onto the standard descriptors, which this process owns.
        let r = unsafe { libc::dup2(slave.as_raw_fd(), target) };
        if r < 0 {
            return Err(Failure::new(format!("dup2 pty: {}", nix::Error::last())));
        }
    }
    // SAFETY: TIOCSCTTY takes an int argument; fd 0 is the slave just installed.
    if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } < 0 {
        return Err(Failure::new(format!("set the controlling terminal: {}", nix::Error::last())));
    }
    Ok(true)
}

fn wait_for_go(sync: BorrowedFd<'_>) -> Result<(), Failure> {
    match sync::recv_json::<ToChild>(sync) {
        Ok(Some((ToChild::Go, _))) => Ok(()),
        // The parent is gone: nothing to report to.
        Ok(None) => exit_now(1),
        Err(e) => Err(Failure::new(format!("wait for the parent: {e}"))),
    }
}

/// Signals back to defaults (Rust ignores SIGPIPE, and `execve` keeps ignored signals), the
/// mask empty, and the process non-dumpable until `execve`: while it runs berth's code its
/// /proc/PID/exe is berth's binary (CVE-2019-5736).
fn prepare_process(die_with_parent: bool) -> Result<(), Failure> {
    nix::sys::prctl::set_dumpable(false).context(|| "prctl(PR_SET_DUMPABLE)".into())?;
    for signal in Signal::iterator() {
        if matches!(signal, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // SAFETY: installing SIG_DFL runs no code of ours in signal context.
        unsafe { nix::sys::signal::signal(signal, SigHandler::SigDfl) }
            .context(|| format!("reset the handler of {signal}"))?;
    }
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None).context(|| "sigprocmask".into())?;
    if die_with_parent {
        nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).context(|| "prctl(PR_SET_PDEATHSIG)".into())?;
    }
    Ok(())
}

/// Puts stdio on 0–2 (or /dev/null), the sync socket on 3, a joining process's target pidfd on
/// 4, and closes every other descriptor inherited from the spawner: a container sees only 0–2
/// once it execs (CVE-2024-21626). Every step is checked: a descriptor left in place would
/// reach the container. On failure, returns the descriptor the sync socket is on.
fn arrange_fds(fds: Vec<OwnedFd>, stdio: bool, with_target: bool) -> Result<OwnedFd, (RawFd, Failure)> {
    let originals: Vec<RawFd> = fds.into_iter().map(IntoRawFd::into_raw_fd).collect();
    let report = originals.first().copied().unwrap_or(-1);
    // Move everything high first so the dup2s below cannot clobber one another.
    let mut high = Vec::with_capacity(originals.len());
    for &fd in &originals {
        // SAFETY: F_DUPFD_CLOEXEC on a descriptor this process owns.
        let moved = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 100) };
        checked(moved, report, || format!("move descriptor {fd}"))?;
        high.push(moved);
    }
    let report = high.first().copied().unwrap_or(-1);
    let wanted = 1 + usize::from(with_target) + if stdio { 3 } else { 0 };
    if high.len() < wanted {
        return Err((report, Failure::new(format!("expected {wanted} descriptors, got {}", high.len()))));
    }
    let mut next = 1 + usize::from(with_target);
    // Left open where it lands: close_range below closes it unless it is one of 0-4, which
    // the dup2s overwrite.
    let null = match stdio {
        true => None,
        false => Some(
            File::open("/dev/null")
                .map(IntoRawFd::into_raw_fd)
                .map_err(|e| (report, Failure::new(format!("open /dev/null: {e}"))))?,
        ),
    };
    for std_fd in 0..3 {
        let source = match null {
            Some(null) => null,
            None => {
                next += 1;
                high[next - 1]
            }
        };
        // SAFETY: dup2 between descriptors this process owns.
        checked(unsafe { libc::dup2(source, std_fd) }, report, || format!("dup2 onto descriptor {std_fd}"))?;
    }
    // SAFETY: as above; the copies at 3 and 4 are close-on-exec.
    checked(unsafe { libc::dup3(high[0], SYNC_FD, libc::O_CLOEXEC) }, report, || "dup3 the sync socket".into())?;
    let report = SYNC_FD;
    if with_target {
        // SAFETY: as above.
        let r = unsafe { libc::dup3(high[1], TARGET_FD, libc::O_CLOEXEC) };
        checked(r, report, || "dup3 the container's pidfd".into())?;
    }
    let first_free = if with_target { TARGET_FD + 1 } else { SYNC_FD + 1 };
    // SAFETY: close_range closes this process's own descriptors from first_free up.
    let closed = unsafe { libc::syscall(libc::SYS_close_range, first_free as libc::c_uint, libc::c_uint::MAX, 0) };
    checked(if closed < 0 { -1 } else { 0 }, report, || "close_range".into())?;
    // SAFETY: SYNC_FD was installed just above and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(SYNC_FD) })
}

/// A raw call's result: negative is the failure in errno, reported on `report`.
fn checked(r: libc::c_int, report: RawFd, what: impl FnOnce() -> String) -> Result<(), (RawFd, Failure)> {
    if r < 0 { Err((report, Failure::new(format!("{}: {}", what(), nix::Error::last())))) } else { Ok(()) }
}

fn set_domainname(name: &str) -> Result<(), Failure> {
    // SAFETY: setdomainname reads exactly `len` bytes from a live buffer.
    let r = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    if r < 0 {
        return Err(Failure::new(format!("set domain name {name:?}: {}", nix::Error::last())));
    }
    Ok(())
}
