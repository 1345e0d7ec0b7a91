//! `init: true`: berth's own minimal init as the container's PID 1, like docker's tini. It
//! runs the service's process as its only child, forwards every signal it receives to it,
//! reaps every orphan that the kernel re-parents to it, and exits with the child's status
//! (128 + signal when the child was killed).
//!
//! It never execs, so it stays non-dumpable: the container cannot reach berth's binary
//! through /proc/1/exe (CVE-2019-5736).

use std::convert::Infallible;
use std::os::fd::BorrowedFd;

use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};

use super::{Context, Failure, SYNC_FD, fail};
use crate::runtime::spawner::exit_now;

pub(super) fn run(
    sync: BorrowedFd<'_>,
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
            // The child reports exec failures itself; the parent's copy must not keep the
            // socket open past the child's exec.
            let _ = nix::unistd::close(SYNC_FD);
            let _ = nix::sys::prctl::set_name(c"init");
            supervise(child, &all)
        }
    }
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
