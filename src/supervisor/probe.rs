//! Running health probes: each one an exec process in the container, its output captured, killed
//! at its timeout; the results drive the container's [`Tracker`].

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::io::unix::AsyncFd;

use super::Shared;
use super::health::{HealthPlan, OUTPUT_LIMIT, Tracker};
use super::status::health_text;
use crate::runtime::container::send_signal;
use crate::runtime::exec::{self, Target};
use crate::runtime::spec::{ContainerSpec, Process};

/// Probes the container until the task is aborted (when the container exits), or, with
/// `end_when_unhealthy`, until the container turns unhealthy.
pub async fn run(shared: Arc<Shared>, spec: ContainerSpec, pid: i32, plan: HealthPlan, end_when_unhealthy: bool) {
    let started = Instant::now();
    let target = Arc::new(Target::running(spec, pid));
    let mut tracker = Tracker::new(plan);
    loop {
        let (passed, output) = probe(&shared, &target, tracker.plan()).await;
        let pause = tracker.record(passed, output, started.elapsed());
        let (health, streak, output) = (tracker.health, tracker.failing_streak, tracker.last_output.clone());
        shared.status.update(&target.spec.name, |c| {
            c.health = health_text(Some(health));
            c.health_output = output;
        });
        shared.status.refresh_health(&target.spec.service);
        let _ = streak;
        if end_when_unhealthy && health == super::health::Health::Unhealthy {
            return;
        }
        tokio::time::sleep(pause).await;
    }
}

/// One probe: whether it passed (exit 0 within the timeout), and its output.
async fn probe(shared: &Arc<Shared>, target: &Arc<Target>, plan: &HealthPlan) -> (bool, String) {
    let base = &target.spec.process;
    let process = Process {
        args: plan.argv.clone(),
        env: base.env.clone(),
        user: base.user.clone(),
        additional_groups: base.additional_groups.clone(),
        cwd: base.cwd.clone(),
        tty: false,
        stdin_open: false,
        capabilities: base.capabilities.clone(),
        no_new_privileges: base.no_new_privileges,
        seccomp: base.seccomp.clone(),
        rlimits: base.rlimits.clone(),
    };
    let (read_end, write_end) = match nix::unistd::pipe() {
        Ok(pipe) => pipe,
        Err(e) => return (false, format!("probe: pipe: {e}")),
    };
    let started = {
        let shared = Arc::clone(shared);
        let target = Arc::clone(target);
        tokio::task::spawn_blocking(move || {
            let null = std::fs::File::open("/dev/null").map_err(|e| e.to_string())?;
            let stdio = [null.as_raw_fd(), write_end.as_raw_fd(), write_end.as_raw_fd()];
            exec::start(&shared.spawner, &target, process, Some(stdio)).map_err(|e| e.to_string())
        })
        .await
    };
    let started = match started {
        Ok(Ok(started)) => started,
        Ok(Err(e)) => return (false, e),
        Err(e) => return (false, e.to_string()),
    };
    let passed = match wait(started.pidfd.try_clone(), plan.timeout).await {
        Some(()) => started.wait().is_ok_and(|s| s.code == 0),
        None => {
            let _ = send_signal(&started.pidfd, Signal::SIGKILL);
            let _ = started.wait();
            return (false, format!("Health check exceeded timeout ({:?})", plan.timeout));
        }
    };
    (passed, read_output(read_end))
}

/// Waits for the process behind `pidfd` to exit, at most `timeout`.
async fn wait(pidfd: std::io::Result<OwnedFd>, timeout: Duration) -> Option<()> {
    let pidfd = pidfd.ok()?;
    // SAFETY: the AsyncFd owns the pidfd for its whole registration and closes it on drop.
    let exited = unsafe { AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE) }.ok()?;
    tokio::time::timeout(timeout, exited.readable()).await.ok().and_then(Result::ok).map(|_| ())
}

/// What the probe wrote, up to docker's limit. Non-blocking: the probe has exited, but a
/// grandchild it left behind could still hold the pipe open.
fn read_output(read_end: OwnedFd) -> String {
    let flags = nix::fcntl::OFlag::O_NONBLOCK;
    let _ = nix::fcntl::fcntl(&read_end, nix::fcntl::FcntlArg::F_SETFL(flags));
    let mut text = Vec::new();
    let _ = std::fs::File::from(read_end).take(OUTPUT_LIMIT as u64).read_to_end(&mut text);
    String::from_utf8_lossy(&text).into_owned()
}
