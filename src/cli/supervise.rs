//! Talking to a project's supervisor: the project lock, finding a running supervisor,
//! starting one (the hidden `__supervise` command) and sending it orders.

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Command as Process, Stdio};

use anyhow::anyhow;

use super::{Failure, GlobalOptions};
use crate::runtime::spawner::Spawner;
use crate::supervisor::control::{Reply, Request};
use crate::supervisor::{self, SupervisorRecord, UpReport, UpRequest, control, recover};

/// The environment variable that carries the readiness pipe's descriptor to the supervisor.
const READY_FD_VAR: &str = "BERTH_READY_FD";

/// A failure with exit status 1.
pub(super) fn failure(e: impl Into<anyhow::Error>) -> Failure {
    Failure { code: 1, error: e.into() }
}

/// Takes `project`'s lock, which every command that changes the project holds while it does,
/// waiting (and saying so) while another command holds it. The supervisor never holds it: it
/// takes its orders one at a time on its control socket.
pub(super) fn lock_project(global: &GlobalOptions, project: &str) -> Result<crate::fsutil::ProjectLock, Failure> {
    let dir = supervisor::project_dir(&global.state_root(), project);
    crate::fsutil::ProjectLock::acquire(&dir, || {
        eprintln!("Waiting for another berth command on project {project} to finish...");
    })
    .map_err(|e| failure(anyhow!("locking project {project}: {e}")))
}

/// The project directory of `project` when its supervisor runs and answers; a supervisor
/// that runs but does not answer is killed (its leftovers are cleaned by the fresh start).
pub(super) fn running_supervisor(root: &std::path::Path, project: &str) -> Option<std::path::PathBuf> {
    let record = SupervisorRecord::load(root, project).filter(SupervisorRecord::is_running)?;
    let dir = supervisor::project_dir(root, project);
    if control::request(&dir, &Request::Ping).is_some() {
        return Some(dir);
    }
    recover::kill_and_wait(record.pid);
    None
}

/// `up` on a running project: the supervisor changes what differs.
pub(super) fn converge(dir: &std::path::Path, request: &UpRequest) -> Result<UpReport, Failure> {
    match control::request(dir, &Request::Up(Box::new(request.clone()))) {
        Some(Reply::Up(report)) => Ok(*report),
        Some(other) => Err(failure(unexpected(other))),
        None => Err(failure(anyhow!("the project's supervisor stopped answering"))),
    }
}

/// A reply that is not the one the request asks for: the supervisor's error, or a mismatch.
pub(super) fn unexpected(reply: Reply) -> anyhow::Error {
    match reply {
        Reply::Error(error) => anyhow!("{error}"),
        other => anyhow!("unexpected answer from the supervisor: {other:?}"),
    }
}

/// Starts the project's supervisor with `request` on its standard input and waits for its
/// report.
pub(super) fn start_supervisor(
    global: &GlobalOptions,
    root: &std::path::Path,
    project: &str,
    request: &UpRequest,
) -> Result<UpReport, Failure> {
    let dir = supervisor::project_dir(root, project);
    // A supervisor that died left containers running: they end now, kept, stopped, for the
    // new one to adopt.
    recover::reap(root, project).map_err(failure)?;
    crate::secure_fs::private_dir(&dir).map_err(failure)?;
    let _ = super::ls::record_config_files(&dir, &request.options);
    let log = crate::secure_fs::create_private(&dir.join("supervisor.log")).map_err(failure)?;
    let (read_end, write_end) = nix::unistd::pipe().map_err(failure)?;
    nix::fcntl::fcntl(&read_end, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC)).map_err(failure)?;
    let mut command = Process::new("/proc/self/exe");
    command.arg("--root").arg(root);
    if let Some(progress) = &global.progress {
        command.arg("--progress").arg(progress);
    }
    // `ps` and `top` show the supervisor as `berth` (argv[0] here, its comm in `supervise`).
    std::os::unix::process::CommandExt::arg0(&mut command, "berth");
    command
        .arg("__supervise")
        .env(READY_FD_VAR, write_end.as_raw_fd().to_string())
        .stdin(Stdio::piped())
        .stdout(log.try_clone().map_err(failure)?)
        .stderr(log);
    let ready_fd = write_end.as_raw_fd();
    // The supervisor outlives this command: it must not inherit what this command was given
    // (a caller's lock file, say, which it would then hold for the project's life). Only the
    // standard descriptors and the ready pipe cross the exec.
    // SAFETY: the closure runs in the forked child before exec and makes only two
    // async-signal-safe system calls, touching no memory of the parent's.
    unsafe { std::os::unix::process::CommandExt::pre_exec(&mut command, move || only_stdio_and(ready_fd)) };
    let mut child = command.spawn().map_err(failure)?;
    drop(write_end);
    crate::fault::point("after-spawn");
    if let Some(mut stdin) = child.stdin.take() {
        serde_json::to_writer(&mut stdin, request).map_err(failure)?;
    }
    let answer = read_answer(std::fs::File::from(read_end), &mut child).map_err(failure)?;
    let answer = answer.trim();
    if answer.starts_with('{') {
        return serde_json::from_str(answer).map_err(|e| failure(anyhow!("the supervisor's answer: {e}")));
    }
    let reason = if answer.is_empty() {
        format!("the supervisor exited without starting; see {}", dir.join("supervisor.log").display())
    } else {
        answer.to_owned()
    };
    Err(failure(anyhow!("{reason}")))
}

/// The supervisor's one-line report. The pipe's write end outlives the supervisor in its
/// spawner, so its death is noticed by waiting for it, not by end of file.
fn read_answer(mut pipe: std::fs::File, child: &mut std::process::Child) -> std::io::Result<String> {
    use std::os::fd::AsFd;
    let mut answer = Vec::new();
    loop {
        let mut fds = [nix::poll::PollFd::new(pipe.as_fd(), nix::poll::PollFlags::POLLIN)];
        let ready = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u16)).unwrap_or(0);
        if ready > 0 {
            let mut chunk = [0u8; 4096];
            let n = pipe.read(&mut chunk)?;
            answer.extend_from_slice(&chunk[..n]);
            if n == 0 || answer.ends_with(b"\n") {
                break;
            }
        } else if child.try_wait()?.is_some() {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// In a child about to exec: marks every descriptor above the standard three close-on-exec,
/// except `keep`.
fn only_stdio_and(keep: i32) -> std::io::Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags on descriptors.
    if unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: clears FD_CLOEXEC on one descriptor of this process; no memory is touched.
    if unsafe { libc::fcntl(keep, libc::F_SETFD, 0) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The hidden `__supervise` command `up -d` starts.
pub(super) fn supervise(global: &GlobalOptions, spawner: Spawner) -> Result<u8, Failure> {
    let _ = nix::unistd::setsid();
    // Run as /proc/self/exe, its comm would be `exe`.
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    let _ = unsafe { libc::prctl(libc::PR_SET_NAME, c"berth".as_ptr()) };
    let ready = std::env::var(READY_FD_VAR).ok().and_then(|v| v.parse::<i32>().ok()).map(|fd| {
        // SAFETY: `up` passed this descriptor, open and ours alone, for exactly this use.
        std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) })
    });
    // SAFETY: single-threaded here apart from the spawner, which reads no environment.
    unsafe { std::env::remove_var(READY_FD_VAR) };
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text).map_err(failure)?;
    let request: UpRequest = serde_json::from_str(&text).map_err(|e| failure(anyhow!("the up request: {e}")))?;
    supervisor::run(&global.state_root(), request, spawner, ready).map_err(failure)?;
    Ok(0)
}
