//! The control socket, `<root>/projects/<project>/control.sock`, mode 0600: the CLI's way to
//! reach a running supervisor. One connection per request: the client writes one JSON line, a
//! [`Request`], and the supervisor answers with one JSON line, a [`Reply`].

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

use super::status::ContainerStatus;
use super::{Shared, SupervisorError, UpReport, UpRequest};

/// The longest request line the supervisor reads. An `up` carries the CLI's environment and
/// possibly a stack file read from stdin, so this is generous; it bounds what a stuck or hostile
/// client can make the supervisor buffer.
pub const MAX_REQUEST: usize = 16 << 20;

/// What the CLI asks of a running supervisor. Timeouts are stop timeouts in seconds; `None` is
/// each service's own (`stop_grace_period`, else compose's 10 s). An empty service list means
/// every service.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Is a supervisor answering? Replies [`Reply::Pong`].
    Ping,
    /// The containers as the supervisor sees them: [`Reply::Containers`].
    Ps,
    /// `up` on a running project: [`Reply::Up`].
    Up(Box<UpRequest>),
    /// `down`: stop and remove the containers and networks (`volumes`: anonymous volumes too),
    /// then the supervisor ends. Replies [`Reply::Stopping`] before it starts.
    Down { timeout: Option<u64>, volumes: bool },
    /// Ctrl-C of an attached `up`: stop the containers but keep them, then end.
    Halt { timeout: Option<u64> },
    /// `stop`: [`Reply::Done`].
    Stop { timeout: Option<u64>, services: Vec<String> },
    /// `restart`: [`Reply::Done`].
    Restart { timeout: Option<u64>, services: Vec<String> },
    /// `start` of stopped, kept containers: [`Reply::Done`].
    Start { services: Vec<String> },
    /// `rm` of the stopped containers (`volumes`: their anonymous volumes too):
    /// [`Reply::Removed`].
    Rm { volumes: bool, services: Vec<String> },
    /// `kill`; `signal` by its name (`SIGTERM`): [`Reply::Done`].
    Kill { signal: String, services: Vec<String> },
    /// Start `develop.watch` with the last `up`'s loading: [`Reply::Done`].
    Watch { services: Vec<String> },
    /// Stop watching: [`Reply::Done`].
    Unwatch,
}

/// The supervisor's answer to one [`Request`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Reply {
    Pong,
    /// `down` or `halt` was accepted; the supervisor ends when it is done.
    Stopping,
    /// The order was carried out.
    Done,
    Containers(Vec<ContainerStatus>),
    Up(Box<UpReport>),
    /// The names of the removed containers.
    Removed(Vec<String>),
    /// The request was refused or failed; the message is for the user.
    Error(String),
}

/// Why a request line was refused.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("request of {0} bytes or more is over the limit of {MAX_REQUEST}")]
    TooLong(usize),
    #[error("bad request: {0}")]
    Json(#[from] serde_json::Error),
}

/// Decodes one request line (a trailing newline is allowed). Any bytes give `Ok` or `Err`.
pub fn decode_request(line: &[u8]) -> Result<Request, ControlError> {
    if line.len() > MAX_REQUEST {
        return Err(ControlError::TooLong(line.len()));
    }
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    Ok(serde_json::from_slice(line)?)
}

/// Where a project's control socket lives.
pub fn socket_path(project_dir: &Path) -> PathBuf {
    project_dir.join("control.sock")
}

/// Binds the socket (replacing one a dead supervisor left), readable by root only.
pub fn bind(project_dir: &Path) -> Result<UnixListener, SupervisorError> {
    let path = socket_path(project_dir);
    let _ = std::fs::remove_file(&path);
    let io = |source| SupervisorError::Io { path: path.clone(), source };
    let listener = UnixListener::bind(&path).map_err(io)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    Ok(listener)
}

/// How the supervisor is told to end.
#[derive(Debug, Clone, Copy, Default)]
pub struct Exit {
    /// The containers' stop timeout, when one was given.
    pub timeout: Option<Duration>,
    /// `down`: remove the containers and networks. Otherwise (`halt`: Ctrl-C of an attached
    /// `up`) they are kept, stopped, for `start` or the next `up`.
    pub remove: bool,
    /// `down -v`: anonymous volumes too.
    pub volumes: bool,
}

/// Answers requests, each in a task of its own, until one says `down` or `halt`. Orders that
/// change containers take turns; `ps` and `ping` never wait for them.
pub async fn serve_until_down(listener: UnixListener, shared: &Arc<Shared>) -> Exit {
    let (down_sender, mut down) = tokio::sync::mpsc::channel(1);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                tokio::spawn(answer(stream, Arc::clone(shared), down_sender.clone()));
            }
            Some(timeout) = down.recv() => return timeout,
        }
    }
}

async fn answer(stream: tokio::net::UnixStream, shared: Arc<Shared>, down: tokio::sync::mpsc::Sender<Exit>) {
    let (read, mut write) = stream.into_split();
    // One byte over the limit is read, so that decode_request sees the line is too long rather
    // than a truncated (and possibly valid) prefix of it.
    let mut line = Vec::new();
    let limited = read.take(MAX_REQUEST as u64 + 1);
    if tokio::io::BufReader::new(limited).read_until(b'\n', &mut line).await.is_err() {
        return;
    }
    let request = match decode_request(&line) {
        Ok(request) => request,
        Err(e) => return send(&mut write, &Reply::Error(e.to_string())).await,
    };
    let reply = match request {
        Request::Down { timeout, volumes } => {
            let timeout = timeout.map(Duration::from_secs);
            // The containers stop here, each after its `pre_stop` hooks: one that fails ends
            // `down` with its message, that container still running, as in compose.
            if let Err(e) = stop_with_hooks(&shared, timeout).await {
                return send(&mut write, &Reply::Error(e.to_string())).await;
            }
            send(&mut write, &Reply::Stopping).await;
            let _ = down.send(Exit { timeout, remove: true, volumes }).await;
            return;
        }
        Request::Halt { timeout } => {
            let timeout = timeout.map(Duration::from_secs);
            // Ctrl-C ends the project whatever a `pre_stop` hook says.
            if let Err(e) = stop_with_hooks(&shared, timeout).await {
                eprintln!("berth: {e}");
            }
            send(&mut write, &Reply::Stopping).await;
            let _ = down.send(Exit { timeout, remove: false, volumes: false }).await;
            return;
        }
        Request::Ping => Reply::Pong,
        Request::Ps => Reply::Containers(shared.status.containers()),
        Request::Up(request) => {
            let _turn = shared.orders.lock().await;
            let done = super::converge::up(&shared, (*request).clone()).await;
            match done.and_then(|report| super::converge::remember(&shared, &request).map(|()| report)) {
                Ok(report) => Reply::Up(Box::new(report)),
                Err(e) => Reply::Error(e.to_string()),
            }
        }
        Request::Start { services } => {
            let _turn = shared.orders.lock().await;
            done(super::orders::start_stopped(&shared, &services).await)
        }
        Request::Stop { timeout, services } => stop_or_restart(&shared, &services, timeout, false).await,
        Request::Restart { timeout, services } => stop_or_restart(&shared, &services, timeout, true).await,
        Request::Rm { volumes, services } => {
            let _turn = shared.orders.lock().await;
            let wanted =
                |spec: &crate::runtime::spec::ContainerSpec| services.is_empty() || services.contains(&spec.service);
            Reply::Removed(shared.remove_kept(wanted, volumes))
        }
        Request::Watch { services } => {
            // `develop.watch` runs with the last `up`'s loading.
            let last = shared.last_up.lock().ok().and_then(|r| r.clone());
            match last {
                Some(mut request) => {
                    request.services = services;
                    request.watch = true;
                    done(super::watching::start(&shared, &request))
                }
                None => Reply::Error("the project has not been brought up".to_owned()),
            }
        }
        Request::Unwatch => {
            super::watching::stop(&shared);
            Reply::Done
        }
        Request::Kill { signal, services } => match signal.parse::<Signal>() {
            Ok(signal) => done(super::orders::kill(&shared, &services, signal).map(drop)),
            Err(_) => Reply::Error(format!("unknown signal {signal:?}")),
        },
    };
    send(&mut write, &reply).await;
}

async fn stop_with_hooks(shared: &Arc<Shared>, timeout: Option<Duration>) -> Result<(), SupervisorError> {
    let _turn = shared.orders.lock().await;
    super::watching::stop(shared);
    super::orders::stop_services(shared, &[], timeout, super::orders::Hooks::Run).await
}

async fn stop_or_restart(shared: &Arc<Shared>, services: &[String], timeout: Option<u64>, restart: bool) -> Reply {
    let _turn = shared.orders.lock().await;
    done(super::orders::stop_or_restart(shared, services, timeout.map(Duration::from_secs), restart).await)
}

fn done<E: std::fmt::Display>(result: Result<(), E>) -> Reply {
    match result {
        Ok(()) => Reply::Done,
        Err(e) => Reply::Error(e.to_string()),
    }
}

async fn send(write: &mut tokio::net::unix::OwnedWriteHalf, reply: &Reply) {
    let mut line = serde_json::to_vec(reply).unwrap_or_default();
    line.push(b'\n');
    let _ = write.write_all(&line).await;
}

/// compose's default stop timeout.
pub const DEFAULT_STOP_SECS: u64 = 10;

/// Sends one request and returns the supervisor's reply; `None` when no supervisor listens.
/// A reply that cannot be read is an [`Reply::Error`].
pub fn request(project_dir: &Path, request: &Request) -> Option<Reply> {
    let mut stream = std::os::unix::net::UnixStream::connect(socket_path(project_dir)).ok()?;
    let mut line = serde_json::to_vec(request).ok()?;
    line.push(b'\n');
    stream.write_all(&line).ok()?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).ok()?;
    Some(
        serde_json::from_str(answer.trim_end())
            .unwrap_or_else(|e| Reply::Error(format!("the supervisor's answer {:?}: {e}", answer.trim_end()))),
    )
}

#[cfg(test)]
#[path = "control_tests.rs"]
mod tests;
