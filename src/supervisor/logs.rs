//! Container output, captured: each container's stdout and stderr are pipes the supervisor reads,
//! and every line goes to `<project dir>/logs/<container>.log` as `NANOS STREAM TEXT`, where
//! NANOS is the Unix time in nanoseconds it was read and STREAM is `stdout` or `stderr`. One file
//! per container name, appended to across restarts, so `logs -f` follows a service through them.
//! At [`MAX_SIZE`] the file is renamed to `.log.1` (the previous `.1` is dropped) and a new one
//! begun.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::io::AsyncBufReadExt;

/// The size at which a container's log is rotated (docker's json-file has no cap by default;
/// compose users ask for one).
pub const MAX_SIZE: u64 = 10 * 1024 * 1024;

/// A container's log file, shared by its two streams.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    file: Mutex<std::fs::File>,
}

impl LogFile {
    /// Opens (appending) the log at `path`.
    pub fn open(path: &Path) -> std::io::Result<Arc<LogFile>> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Arc::new(LogFile { path: path.to_path_buf(), file: Mutex::new(file) }))
    }

    /// Writes one line.
    fn write(&self, stream: &str, line: &str) {
        let Ok(mut file) = self.file.lock() else { return };
        let now = super::status::now_nanos();
        let _ = writeln!(file, "{now} {stream} {}", line.trim_end_matches(['\n', '\r']));
        if file.metadata().is_ok_and(|m| m.len() >= MAX_SIZE) {
            let rotated = self.path.with_extension("log.1");
            if std::fs::rename(&self.path, &rotated).is_ok()
                && let Ok(fresh) = std::fs::OpenOptions::new().create(true).append(true).open(&self.path)
            {
                *file = fresh;
            }
        }
    }
}

/// Copies what a container writes to `pipe` into `log`, line by line, until the pipe closes.
pub fn capture(pipe: OwnedFd, stream: &'static str, log: Arc<LogFile>) {
    let Ok(receiver) = tokio::net::unix::pipe::Receiver::from_owned_fd(pipe) else { return };
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(receiver).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            log.write(stream, &line);
        }
    });
}

/// One line of a log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Unix nanoseconds.
    pub time: u128,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// The text, without its newline.
    pub text: String,
}

/// Parses a log line; `None` for anything else.
pub fn parse(line: &str) -> Option<Line> {
    let (time, rest) = line.split_once(' ')?;
    let (stream, text) = rest.split_once(' ').unwrap_or((rest, ""));
    Some(Line { time: time.parse().ok()?, stream: stream.to_owned(), text: text.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_the_file_rotates_at_its_cap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p-web-1.log");
        let log = LogFile::open(&path).expect("open");
        log.write("stdout", "hello world\n");
        let text = std::fs::read_to_string(&path).expect("read");
        let line = parse(text.lines().next().expect("a line")).expect("parses");
        assert_eq!((line.stream.as_str(), line.text.as_str()), ("stdout", "hello world"));
        assert!(line.time > 0);
        assert_eq!(parse("garbage"), None);
        let big = "x".repeat(1024 * 1024);
        for _ in 0..11 {
            log.write("stderr", &big);
        }
        assert!(dir.path().join("p-web-1.log.1").exists(), "rotated");
        assert!(std::fs::metadata(&path).expect("log").len() < MAX_SIZE);
    }
}
