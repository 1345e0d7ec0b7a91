//! Container output, captured: each container's stdout and stderr are pipes the supervisor reads,
//! and every line goes to `<project dir>/logs/<container>.log` as `NANOS STREAM TEXT`, where
//! NANOS is the Unix time in nanoseconds it was read and STREAM is `stdout` or `stderr`. One file
//! per container name, appended to across restarts, so `logs -f` follows a service through them.
//! At its size cap (the service's `logging.options.max-size`, else [`MAX_SIZE`]) the file is
//! renamed to `.log.1`, older ones shifted up to `max-file` files in all, and a new one begun;
//! `logging.driver: none` keeps nothing.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::io::AsyncBufReadExt;

/// The size at which a container's log is rotated (docker's json-file has no cap by default;
/// compose users ask for one).
pub const MAX_SIZE: u64 = 10 * 1024 * 1024;

/// How a service's output is kept: compose's `logging:` (`driver`, `options.max-size`,
/// `options.max-file`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogPolicy {
    /// Nothing is kept (`driver: none`).
    pub discard: bool,
    /// The size at which the file rotates.
    pub max_size: u64,
    /// How many files are kept, the current one included (at least 1: then the file starts
    /// over).
    pub max_files: u32,
}

impl Default for LogPolicy {
    fn default() -> Self {
        LogPolicy { discard: false, max_size: MAX_SIZE, max_files: 2 }
    }
}

impl LogPolicy {
    /// The policy of a service's `logging:` value; every driver but `none` writes berth's own
    /// file (a warning says so for drivers berth does not have).
    pub fn of(logging: Option<&serde_json::Value>) -> (LogPolicy, Option<String>) {
        let mut policy = LogPolicy::default();
        let Some(logging) = logging else { return (policy, None) };
        let mut warning = None;
        match logging.get("driver").and_then(serde_json::Value::as_str) {
            Some("none") => policy.discard = true,
            None | Some("json-file" | "local" | "") => {}
            Some(other) => {
                warning = Some(format!("logging driver {other:?} is not supported; logs go to berth's files"))
            }
        }
        let options = logging.get("options");
        let option = |key: &str| {
            options
                .and_then(|o| o.get(key))
                .and_then(|v| v.as_str().map(str::to_owned).or_else(|| v.as_u64().map(|n| n.to_string())))
        };
        if let Some(size) = option("max-size") {
            match crate::spec::units::parse_bytes(&size) {
                Ok(bytes) if bytes > 0 => policy.max_size = bytes,
                _ => warning = Some(format!("logging max-size {size:?} is not a size; using {MAX_SIZE} bytes")),
            }
        }
        if let Some(files) = option("max-file") {
            match files.parse::<u32>() {
                Ok(n) if n >= 1 => policy.max_files = n,
                _ => warning = Some(format!("logging max-file {files:?} is not a positive number")),
            }
        }
        (policy, warning)
    }
}

/// A container's log file, shared by its two streams.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    policy: LogPolicy,
    file: Option<Mutex<std::fs::File>>,
}

impl LogFile {
    /// Opens (appending) the log at `path`, kept as `policy` says.
    pub fn open(path: &Path, policy: LogPolicy) -> std::io::Result<Arc<LogFile>> {
        let file = if policy.discard { None } else { Some(Mutex::new(crate::secure_fs::append_private(path)?)) };
        Ok(Arc::new(LogFile { path: path.to_path_buf(), policy, file }))
    }

    /// Writes one line of berth's own (the watch's summaries) as `stdout`.
    pub fn line(&self, text: &str) {
        self.write("stdout", text);
    }

    /// Writes one line.
    fn write(&self, stream: &str, line: &str) {
        let Some(Ok(mut file)) = self.file.as_ref().map(Mutex::lock) else { return };
        let now = super::status::now_nanos();
        let _ = writeln!(file, "{now} {stream} {}", line.trim_end_matches(['\n', '\r']));
        if file.metadata().is_ok_and(|m| m.len() >= self.policy.max_size) {
            let numbered = |n: u32| PathBuf::from(format!("{}.{n}", self.path.display()));
            for n in (1..self.policy.max_files).rev() {
                let from = if n == 1 { self.path.clone() } else { numbered(n - 1) };
                let _ = std::fs::rename(from, numbered(n));
            }
            let mut options = std::fs::OpenOptions::new();
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, crate::secure_fs::FILE_MODE);
            options.create(true).append(true).truncate(false);
            if self.policy.max_files == 1 {
                // No older file is kept: the file starts over.
                options.append(false).write(true).truncate(true);
            }
            if let Ok(fresh) = options.open(&self.path) {
                *file = fresh;
            }
        }
    }
}

/// Copies what a container writes to `pipe` into `log`, line by line, until the pipe closes.
pub fn capture(pipe: OwnedFd, stream: &'static str, log: Arc<LogFile>) {
    let Ok(receiver) = tokio::net::unix::pipe::Receiver::from_owned_fd(pipe) else { return };
    tokio::spawn(async move {
        // 1 KiB, not the default 8: two per container add up, and a longer line is only read
        // in more steps.
        let mut lines = tokio::io::BufReader::with_capacity(1024, receiver).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            log.write(stream, &line);
        }
    });
}

/// The complete lines (without their newline) of the file at `path` from byte `offset`, and
/// the offset after the last of them: a line still being written waits for the next read. For
/// files appended to while they are followed (container logs, the events file).
pub fn complete_lines_from(path: &Path, offset: u64) -> (Vec<String>, u64) {
    use std::io::{BufRead, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else { return (Vec::new(), offset) };
    if file.seek(SeekFrom::Start(offset)).is_err() {
        return (Vec::new(), offset);
    }
    let mut reader = std::io::BufReader::new(file);
    let mut lines = Vec::new();
    let mut end = offset;
    let mut buf = String::new();
    while let Ok(n) = reader.read_line(&mut buf) {
        if n == 0 || !buf.ends_with('\n') {
            break;
        }
        end += n as u64;
        lines.push(buf.trim_end_matches('\n').to_owned());
        buf.clear();
    }
    (lines, end)
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
        let log = LogFile::open(&path, LogPolicy::default()).expect("open");
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

    #[test]
    fn logging_options_set_the_cap_and_the_number_of_files() {
        let logging = serde_json::json!({"driver": "json-file", "options": {"max-size": "1k", "max-file": "3"}});
        let (policy, warning) = LogPolicy::of(Some(&logging));
        assert_eq!((policy.max_size, policy.max_files, warning), (1024, 3, None));
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p-web-1.log");
        let log = LogFile::open(&path, policy).expect("open");
        for i in 0..100 {
            log.write("stdout", &format!("line {i} {}", "y".repeat(100)));
        }
        assert!(dir.path().join("p-web-1.log.2").exists() && !dir.path().join("p-web-1.log.3").exists());
        let (none, _) = LogPolicy::of(Some(&serde_json::json!({"driver": "none"})));
        let quiet = LogFile::open(&dir.path().join("q.log"), none).expect("open");
        quiet.write("stdout", "dropped");
        assert!(!dir.path().join("q.log").exists(), "driver none keeps nothing");
        let (_, warning) = LogPolicy::of(Some(&serde_json::json!({"driver": "syslog"})));
        assert!(warning.is_some_and(|w| w.contains("syslog")));
    }
}
