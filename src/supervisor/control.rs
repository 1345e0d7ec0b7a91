//! The control socket, `<root>/projects/<project>/control.sock`, mode 0600: the CLI's way to
//! reach a running supervisor. One line per request.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

use super::{Shared, SupervisorError};

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

/// Answers requests until one says `down`; returns its stop timeout, if it gave one.
pub async fn serve_until_down(listener: UnixListener, shared: &std::sync::Arc<Shared>) -> Option<Duration> {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let (read, mut write) = stream.into_split();
        let mut line = String::new();
        if tokio::io::BufReader::new(read).read_line(&mut line).await.is_err() {
            continue;
        }
        let mut words = line.split_whitespace();
        match words.next() {
            Some("down") => {
                let secs = words.next().and_then(|w| w.parse::<u64>().ok());
                let _ = write.write_all(b"stopping\n").await;
                return secs.map(Duration::from_secs);
            }
            Some("ping") => {
                let _ = write.write_all(b"pong\n").await;
            }
            Some(command @ ("stop" | "start" | "restart")) => {
                // `stop TIMEOUT|- [SERVICE…]`, `start [SERVICE…]`, `restart TIMEOUT|- [SERVICE…]`.
                let timeout = if command == "start" { None } else { words.next().and_then(|w| w.parse().ok()) };
                let services: Vec<String> = words.map(str::to_owned).collect();
                let done = match command {
                    "start" => super::start_stopped(shared, &services).await,
                    _ => {
                        super::stop_or_restart(
                            shared,
                            &services,
                            timeout.map(Duration::from_secs),
                            command == "restart",
                        )
                        .await
                    }
                };
                let reply = match done {
                    Ok(()) => "ok\n".to_owned(),
                    Err(e) => format!("error: {e}\n"),
                };
                let _ = write.write_all(reply.as_bytes()).await;
            }
            Some("kill") => {
                // `kill SIGNAL [SERVICE…]`.
                let signal = words.next().and_then(|w| w.parse::<nix::sys::signal::Signal>().ok());
                let services: Vec<String> = words.map(str::to_owned).collect();
                let reply = match signal.map(|s| super::kill(shared, &services, s)) {
                    Some(Ok(_)) => "ok\n".to_owned(),
                    Some(Err(e)) => format!("error: {e}\n"),
                    None => "error: unknown signal\n".to_owned(),
                };
                let _ = write.write_all(reply.as_bytes()).await;
            }
            Some("ps") => {
                let mut text = serde_json::to_string(&shared.status.containers()).unwrap_or_default();
                text.push('\n');
                let _ = write.write_all(text.as_bytes()).await;
            }
            _ => {
                let _ = write.write_all(b"error: unknown request\n").await;
            }
        }
    }
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
