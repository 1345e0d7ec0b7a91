//! The control socket, `<root>/projects/<project>/control.sock`, mode 0600: the CLI's way to
//! reach a running supervisor. One line per request.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

use super::{Shared, SupervisorError, UpRequest};

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
    let mut line = String::new();
    if tokio::io::BufReader::new(read).read_line(&mut line).await.is_err() {
        return;
    }
    let (command, rest) = line.trim_end().split_once(' ').unwrap_or((line.trim_end(), ""));
    let mut words = rest.split_whitespace();
    let reply = match command {
        "down" | "halt" => {
            // `down [TIMEOUT|- [v]]`, `halt [TIMEOUT|-]`.
            let timeout = words.next().and_then(|w| w.parse::<u64>().ok()).map(Duration::from_secs);
            let volumes = words.next() == Some("v");
            let _ = write.write_all(b"stopping\n").await;
            let _ = down.send(Exit { timeout, remove: command == "down", volumes }).await;
            return;
        }
        "ping" => "pong".to_owned(),
        "ps" => serde_json::to_string(&shared.status.containers()).unwrap_or_default(),
        "up" => {
            // `up JSON`: an UpRequest.
            match serde_json::from_str::<UpRequest>(rest) {
                Ok(request) => {
                    let _turn = shared.orders.lock().await;
                    let done = super::converge::up(&shared, request.clone()).await;
                    match done.and_then(|report| super::converge::remember(&shared, &request).map(|()| report)) {
                        Ok(report) => serde_json::to_string(&report).unwrap_or_default(),
                        Err(e) => format!("error: {e}"),
                    }
                }
                Err(e) => format!("error: bad request: {e}"),
            }
        }
        "stop" | "start" | "restart" => {
            // `stop TIMEOUT|- [SERVICE…]`, `start [SERVICE…]`, `restart TIMEOUT|- [SERVICE…]`.
            let timeout = if command == "start" { None } else { words.next().and_then(|w| w.parse().ok()) };
            let services: Vec<String> = words.map(str::to_owned).collect();
            let _turn = shared.orders.lock().await;
            let done = match command {
                "start" => super::orders::start_stopped(&shared, &services).await,
                _ => {
                    let timeout = timeout.map(Duration::from_secs);
                    super::orders::stop_or_restart(&shared, &services, timeout, command == "restart").await
                }
            };
            match done {
                Ok(()) => "ok".to_owned(),
                Err(e) => format!("error: {e}"),
            }
        }
        "rm" => {
            // `rm v|- [SERVICE…]`: removes the stopped containers of the services (with `v`
            // their anonymous volumes too).
            let volumes = words.next() == Some("v");
            let services: Vec<&str> = words.collect();
            let _turn = shared.orders.lock().await;
            let wanted = |spec: &crate::runtime::spec::ContainerSpec| {
                services.is_empty() || services.contains(&spec.service.as_str())
            };
            let removed = shared.remove_kept(wanted, volumes);
            serde_json::to_string(&removed).unwrap_or_default()
        }
        "watch" => {
            // `watch [SERVICE…]`: start `develop.watch` with the last `up`'s loading.
            let services: Vec<String> = words.map(str::to_owned).collect();
            let request = shared.last_up.lock().ok().and_then(|r| r.clone());
            match request {
                Some(mut request) => {
                    request.services = services;
                    request.watch = true;
                    match super::watching::start(&shared, &request) {
                        Ok(()) => "ok".to_owned(),
                        Err(e) => format!("error: {e}"),
                    }
                }
                None => "error: the project has not been brought up".to_owned(),
            }
        }
        "unwatch" => {
            super::watching::stop(&shared);
            "ok".to_owned()
        }
        "kill" => {
            // `kill SIGNAL [SERVICE…]`.
            let signal = words.next().and_then(|w| w.parse::<nix::sys::signal::Signal>().ok());
            let services: Vec<String> = words.map(str::to_owned).collect();
            match signal.map(|s| super::orders::kill(&shared, &services, s)) {
                Some(Ok(_)) => "ok".to_owned(),
                Some(Err(e)) => format!("error: {e}"),
                None => "error: unknown signal".to_owned(),
            }
        }
        _ => "error: unknown request".to_owned(),
    };
    let _ = write.write_all(format!("{reply}\n").as_bytes()).await;
}

/// compose's default stop timeout.
pub const DEFAULT_STOP_SECS: u64 = 10;

/// Sends one request and returns the first line of the answer; `None` when no supervisor
/// listens.
pub fn request(project_dir: &Path, text: &str) -> Option<String> {
    let mut stream = std::os::unix::net::UnixStream::connect(socket_path(project_dir)).ok()?;
    stream.write_all(format!("{text}\n").as_bytes()).ok()?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).ok()?;
    Some(line.trim_end().to_owned())
}
