//! `init: true`: berth's own minimal init as the container's PID 1, like docker's tini. It
//! runs the service's process as its only child, forwards every signal it receives to it,
//! reaps every orphan that the kernel re-parents to it, and exits with the child's status
//! (128 + signal when the child was killed).
//!
//! It never execs, so it stays non-dumpable: the container cannot reach berth's binary
//! through /proc/1/exe (CVE-2019-5736). Before it reaps it gives up every capability, sets
//! `no_new_privs` and runs under the container's seccomp filter; with a non-root service user
//! it takes that user's uid and gid, which is what lets it still signal its child.

use std::convert::Infallible;
use std::os::fd::BorrowedFd;

use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};

use caps::{CapSet, CapsHashSet};
use nix::unistd::{Gid, Uid};

use super::{Context, Failure, SYNC_FD, fail, process};
use crate::runtime::seccomp::Programs;
use crate::runtime::spawner::exit_now;
use crate::runtime::spec::Process;

pub(super) fn run(
    sync: BorrowedFd<'_>,
    service: &Process,
    seccomp: Option<&Programs>,
    exec: impl FnOnce() -> Result<Infallible, Failure>,
) -> Result<Infallible, Failure> {
    let all = SigSet::all();
    // Blocked from before the fork, so no signal can slip between fork and the wait loop.
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&all), None).context(|| "sigprocmask".into())?;
    // SAFETY: this process has a single thread, so the child may run ordinary code.
    match unsafe { fork() }.context(|| "fork the init's child".into())? {
        ForkResult::Child => {
            let result = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
                .context(|| "sigprocmask".into())
                .and_then(|()| exec());
            fail(sync, result)
        }
        ForkResult::Parent { child } => {
            let confined = nix::sys::prctl::set_name(c"init")
                .context(|| "prctl(PR_SET_NAME)".into())
                .and_then(|()| confine(service, seccomp))
                // The child reports exec failures itself; the parent's copy must not keep the
                // socket open past the child's exec.
                .and_then(|()| nix::unistd::close(SYNC_FD).context(|| "close the sync socket".into()));
            if let Err(failure) = confined {
                let _ = kill(child, Signal::SIGKILL);
                fail(sync, Err(failure))
            }
            supervise(child, &all)
        }
    }
}

/// No capabilities in any set, `no_new_privs`, the service user's ids when it is not root,
/// then the seccomp filter.
fn confine(service: &Process, seccomp: Option<&Programs>) -> Result<(), Failure> {
    // Only what this kernel knows: asking about a newer capability is EINVAL.
    for cap in caps::runtime::thread_all_supported() {
        if caps::has_cap(None, CapSet::Bounding, cap).context(|| format!("read {cap} in the bounding set"))? {
            caps::drop(None, CapSet::Bounding, cap).context(|| format!("drop {cap} from the bounding set"))?;
        }
    }
    nix::sys::prctl::set_no_new_privs().context(|| "prctl(PR_SET_NO_NEW_PRIVS)".into())?;
    // A user the container cannot resolve fails the child with the real message; the init
    // then stays root, without capabilities.
    if let Ok(user) = process::user(service)
        && user.uid != 0
    {
        nix::unistd::setgroups(&[]).context(|| "setgroups".into())?;
        let gid = Gid::from_raw(user.gid);
        nix::unistd::setresgid(gid, gid, gid).context(|| format!("setgid {}", user.gid))?;
        let uid = Uid::from_raw(user.uid);
        nix::unistd::setresuid(uid, uid, uid).context(|| format!("setuid {}", user.uid))?;
    }
    let none = CapsHashSet::new();
    for set in [CapSet::Effective, CapSet::Permitted, CapSet::Inheritable] {
        caps::set(None, set, &none).context(|| format!("clear the {set:?} capabilities"))?;
    }
    caps::clear(None, CapSet::Ambient).context(|| "clear the ambient capabilities".into())?;
    if let Some(programs) = seccomp {
        programs.install().context(|| "install the init's seccomp filter".into())?;
    }
    Ok(())
}

fn supervise(child: Pid, all: &SigSet) -> ! {
    loop {
        let Ok(signal) = all.wait() else { continue };
        if signal != Signal::SIGCHLD {
            let _ = kill(child, signal);
            continue;
        }
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == child => exit_now(code),
                Ok(WaitStatus::Signaled(pid, signal, _)) if pid == child => exit_now(128 + signal as i32),
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    }
}
