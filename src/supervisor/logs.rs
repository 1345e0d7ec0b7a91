//! Container output, captured: each container's stdout and stderr are pipes the supervisor reads,
//! and every line goes to `<project dir>/logs/<container>.log` as `NANOS STREAM KIND TEXT`, where
//! NANOS is the Unix time in nanoseconds it was read, STREAM is `stdout` or `stderr`, KIND is `F`
//! for a whole line (its newline dropped) or `P` for a piece of one (docker's partial message:
//! a line is cut every [`MAX_LINE`] bytes, and output that ends without a newline ends with a
//! piece), and TEXT is the bytes, escaped so that any bytes round-trip: `\\`, `\n`, `\r`, and
//! `\xHH` for each byte that is not part of valid UTF-8; everything else as it is. The file is
//! thus UTF-8 text, one record a line, readable with grep.
//!
//! The pipes are drained whatever happens to the file (a full disk drops output, never stops
//! the reader), so a container never gets EPIPE or blocks on a full pipe because of its logs.
//! A record the disk cut part way is cut off again (no half record), the records dropped are
//! counted, and once there is room the log says how many were lost and why.
//! One file per container name, appended to across restarts, so `logs -f` follows a service
//! through them.
//! At its size cap (the service's `logging.options.max-size`, else [`MAX_SIZE`]) the file is
//! renamed to `.log.1`, older ones shifted up to `max-file` files in all, and a new one begun;
//! `logging.driver: none` keeps nothing.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::io::AsyncReadExt;

/// The size at which a container's log is rotated (docker's json-file has no cap by default;
/// compose users ask for one).
pub const MAX_SIZE: u64 = 10 * 1024 * 1024;

/// The longest piece of output one record holds: docker's 16 KiB. A longer line is stored as
/// several partial records, and nothing more is ever held in memory per stream.
pub const MAX_LINE: usize = 16 * 1024;

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

/// Where the output of a container's lifecycle hooks goes, `<project dir>/logs/<name>.hooks.log`:
/// an attached `up` shows it (prefixed `<name> ->`, as compose does); `logs` does not.
pub fn hooks_log(project_dir: &Path, container: &str) -> PathBuf {
    project_dir.join("logs").join(format!("{container}.hooks.log"))
}

/// A container's log file, shared by its two streams.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    policy: LogPolicy,
    file: Option<Mutex<Writer>>,
}

/// The open file, and what a full disk made it drop.
#[derive(Debug)]
struct Writer {
    file: std::fs::File,
    /// Records not written since the last one that was (the disk was full).
    dropped: u64,
    /// Why the first of them was not.
    error: Option<std::io::Error>,
}

impl LogFile {
    /// Opens (appending) the log at `path`, kept as `policy` says.
    pub fn open(path: &Path, policy: LogPolicy) -> std::io::Result<Arc<LogFile>> {
        let file = if policy.discard {
            None
        } else {
            Some(Mutex::new(Writer { file: crate::secure_fs::append_private(path)?, dropped: 0, error: None }))
        };
        Ok(Arc::new(LogFile { path: path.to_path_buf(), policy, file }))
    }

    /// Writes one line of berth's own (the watch's summaries) as `stdout`.
    pub fn line(&self, text: &str) {
        self.write("stdout", text.trim_end_matches(['\n', '\r']).as_bytes(), false);
    }

    /// Writes one record: `bytes` (without their newline), a piece of a line when `partial`.
    fn write(&self, stream: &str, bytes: &[u8], partial: bool) {
        let Some(Ok(mut writer)) = self.file.as_ref().map(Mutex::lock) else { return };
        let now = super::status::now_nanos();
        if writer.dropped > 0 {
            // Room again: the gap is said where it is, in the log itself.
            let note = format!(
                "berth: {} record(s) of output were lost here: {}",
                writer.dropped,
                writer.error.as_ref().map(ToString::to_string).unwrap_or_default()
            );
            if append_whole(&mut writer.file, format_record(now, "stderr", false, note.as_bytes()).as_bytes()).is_err()
            {
                writer.dropped += 1;
                return;
            }
            writer.dropped = 0;
            writer.error = None;
        }
        let record = format_record(now, stream, partial, bytes);
        if let Err(e) = append_whole(&mut writer.file, record.as_bytes()) {
            // The pipe is still drained (the container never blocks or gets EPIPE); the record
            // is counted, and said once on the supervisor's own output — with `writeln!`, as
            // `eprintln!` panics when that output is on the full disk too, which ended this
            // reader and gave the container EPIPE.
            if writer.dropped == 0 {
                let _ = writeln!(
                    std::io::stderr(),
                    "berth: {}: {e}: output is dropped until there is room",
                    self.path.display()
                );
                writer.error = Some(e);
            }
            writer.dropped += 1;
            return;
        }
        if writer.file.metadata().is_ok_and(|m| m.len() >= self.policy.max_size)
            && let Some(fresh) = rotate(&self.path, self.policy.max_files)
        {
            writer.file = fresh;
        }
    }
}

/// Appends `record` whole or not at all: one `write` normally; when the disk fills part way,
/// the part written is cut off again, so a reader never sees half a record.
fn append_whole(file: &mut std::fs::File, record: &[u8]) -> std::io::Result<()> {
    let mut written = 0;
    while written < record.len() {
        match file.write(&record[written..]) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                if written > 0
                    && let Ok(meta) = file.metadata()
                {
                    let _ = file.set_len(meta.len().saturating_sub(written as u64));
                }
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Shifts `path` to `path.1` (and older ones up, `max_files` files in all) and opens a fresh
/// `path` for appending; with one file, `path` starts over.
pub fn rotate(path: &Path, max_files: u32) -> Option<std::fs::File> {
    let numbered = |n: u32| PathBuf::from(format!("{}.{n}", path.display()));
    for n in (1..max_files).rev() {
        let from = if n == 1 { path.to_path_buf() } else { numbered(n - 1) };
        let _ = std::fs::rename(from, numbered(n));
    }
    let mut options = std::fs::OpenOptions::new();
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, crate::secure_fs::FILE_MODE);
    options.create(true).append(true).truncate(false);
    if max_files <= 1 {
        options.append(false).write(true).truncate(true);
    }
    options.open(path).ok()
}

/// Keeps the supervisor's own output, `path` (`supervisor.log`, its standard output and error
/// as `up` opened them), under [`MAX_SIZE`] as container logs are kept: past the cap it becomes
/// `path.1` and a fresh file takes over both descriptors. Checked every few seconds: the
/// supervisor writes little, and a check per line would cost more than the writes.
pub async fn rotate_own_output(path: PathBuf) {
    use std::os::unix::fs::MetadataExt;
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        tick.tick().await;
        let Ok(on_disk) = std::fs::metadata(&path) else { continue };
        // Only when standard error is that file (a supervisor started otherwise is left alone).
        let ours =
            rustix::fs::fstat(std::io::stderr()).is_ok_and(|s| s.st_ino == on_disk.ino() && s.st_dev == on_disk.dev());
        if ours
            && on_disk.len() >= MAX_SIZE
            && let Some(fresh) = rotate(&path, LogPolicy::default().max_files)
        {
            let _ = nix::unistd::dup2_stdout(&fresh);
            let _ = nix::unistd::dup2_stderr(&fresh);
        }
    }
}

/// Copies what a container writes to `pipe` into `log` until the pipe closes: whole lines,
/// and pieces of [`MAX_LINE`] bytes of longer ones, so at most that much is held. The pipe is
/// read to its end whatever the file does.
pub fn capture(pipe: OwnedFd, stream: &'static str, log: Arc<LogFile>) {
    let Ok(mut receiver) = tokio::net::unix::pipe::Receiver::from_owned_fd(pipe) else { return };
    tokio::spawn(async move {
        let mut splitter = Splitter::default();
        // 4 KiB a read: two streams per container add up, and a longer burst is only read in
        // more steps.
        let mut chunk = [0u8; 4096];
        loop {
            match receiver.read(&mut chunk).await {
                Ok(0) => break,
                Ok(n) => splitter.push(&chunk[..n], |bytes, partial| log.write(stream, bytes, partial)),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        splitter.finish(|bytes, partial| log.write(stream, bytes, partial));
    });
}

/// Cuts a byte stream into records: lines (without their newline) and pieces of
/// [`MAX_LINE`] bytes of longer ones.
#[derive(Debug, Default)]
pub struct Splitter {
    pending: Vec<u8>,
}

impl Splitter {
    /// Takes `bytes` and hands each record complete now to `emit` (its bytes, and whether it is
    /// a piece of a line).
    pub fn push(&mut self, mut bytes: &[u8], mut emit: impl FnMut(&[u8], bool)) {
        while !bytes.is_empty() {
            let room = MAX_LINE - self.pending.len();
            let window = &bytes[..bytes.len().min(room)];
            if let Some(newline) = window.iter().position(|&b| b == b'\n') {
                self.pending.extend_from_slice(&window[..newline]);
                emit(&self.pending, false);
                self.pending.clear();
                bytes = &bytes[newline + 1..];
            } else {
                self.pending.extend_from_slice(window);
                bytes = &bytes[window.len()..];
                if self.pending.len() == MAX_LINE {
                    emit(&self.pending, true);
                    self.pending.clear();
                }
            }
        }
    }

    /// The end of the stream: what is left is a piece without its newline.
    pub fn finish(&mut self, mut emit: impl FnMut(&[u8], bool)) {
        if !self.pending.is_empty() {
            emit(&self.pending, true);
            self.pending.clear();
        }
    }
}

/// One record as a line of the log file.
pub fn format_record(time: u128, stream: &str, partial: bool, bytes: &[u8]) -> String {
    let mut out = format!("{time} {stream} {} ", if partial { 'P' } else { 'F' });
    out.reserve(bytes.len() + 1);
    for chunk in bytes.utf8_chunks() {
        if !chunk.valid().contains(['\\', '\n', '\r']) {
            out.push_str(chunk.valid());
        } else {
            escape_into(&mut out, chunk.valid());
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out.push('\n');
    out
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// The bytes `escaped` stands for (see the module's note); an escape that is not one is kept
/// as it is.
pub fn unescape(escaped: &str) -> Vec<u8> {
    let bytes = escaped.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let (byte, width) = match bytes.get(i + 1) {
            Some(b'\\') => (b'\\', 2),
            Some(b'n') => (b'\n', 2),
            Some(b'r') => (b'\r', 2),
            Some(b'x') => match escaped.get(i + 2..i + 4).and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(b) => (b, 4),
                None => (b'\\', 1),
            },
            _ => (b'\\', 1),
        };
        out.push(byte);
        i += width;
    }
    out
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

/// One record of a log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Unix nanoseconds.
    pub time: u128,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// The bytes, without their newline.
    pub bytes: Vec<u8>,
    /// A piece of a line: no newline follows it.
    pub partial: bool,
}

/// Parses a record (a line of the file without its newline); `None` for anything else.
pub fn parse(line: &str) -> Option<Line> {
    let (time, rest) = line.split_once(' ')?;
    let (stream, rest) = rest.split_once(' ')?;
    let (kind, text) = rest.split_once(' ').unwrap_or((rest, ""));
    let partial = match kind {
        "F" => false,
        "P" => true,
        _ => return None,
    };
    Some(Line { time: time.parse().ok()?, stream: stream.to_owned(), bytes: unescape(text), partial })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_the_file_rotates_at_its_cap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p-web-1.log");
        let log = LogFile::open(&path, LogPolicy::default()).expect("open");
        log.line("hello world\n");
        let text = std::fs::read_to_string(&path).expect("read");
        let line = parse(text.lines().next().expect("a line")).expect("parses");
        assert_eq!((line.stream.as_str(), line.bytes.as_slice(), line.partial), ("stdout", &b"hello world"[..], false));
        assert!(line.time > 0);
        assert_eq!(parse("garbage"), None);
        assert_eq!(parse("12 stdout X text"), None);
        let big = "x".repeat(1024 * 1024);
        for _ in 0..11 {
            log.write("stderr", big.as_bytes(), false);
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
            log.line(&format!("line {i} {}", "y".repeat(100)));
        }
        assert!(dir.path().join("p-web-1.log.2").exists() && !dir.path().join("p-web-1.log.3").exists());
        let (none, _) = LogPolicy::of(Some(&serde_json::json!({"driver": "none"})));
        let quiet = LogFile::open(&dir.path().join("q.log"), none).expect("open");
        quiet.line("dropped");
        assert!(!dir.path().join("q.log").exists(), "driver none keeps nothing");
        let (_, warning) = LogPolicy::of(Some(&serde_json::json!({"driver": "syslog"})));
        assert!(warning.is_some_and(|w| w.contains("syslog")));
    }

    #[test]
    fn any_bytes_round_trip_through_a_record() {
        let all: Vec<u8> = (0..=255u8).collect();
        let samples: [&[u8]; 7] = [
            b"a\xff\xfeb",
            b"",
            b"back\\slash \\x41 not an escape",
            b"\r\n\t\0",
            "héllo ✓".as_bytes(),
            b"\xe2\x9c",
            &all,
        ];
        for bytes in samples {
            for partial in [false, true] {
                let record = format_record(7, "stderr", partial, bytes);
                assert!(record.ends_with('\n') && record.matches('\n').count() == 1, "one line: {record:?}");
                let line = parse(record.trim_end_matches('\n')).expect("parses");
                assert_eq!((line.bytes.as_slice(), line.partial, line.time), (bytes, partial, 7));
            }
        }
        // Text stays readable in the file.
        assert_eq!(format_record(1, "stdout", false, "héllo".as_bytes()), "1 stdout F héllo\n");
        assert_eq!(format_record(1, "stdout", true, b"a\xffb"), "1 stdout P a\\xffb\n");
    }

    fn split(chunks: &[&[u8]]) -> Vec<(Vec<u8>, bool)> {
        let mut splitter = Splitter::default();
        let mut out = Vec::new();
        for chunk in chunks {
            splitter.push(chunk, |b, p| out.push((b.to_vec(), p)));
        }
        splitter.finish(|b, p| out.push((b.to_vec(), p)));
        out
    }

    #[test]
    fn long_lines_are_cut_into_16_kib_pieces_as_docker_cuts_them() {
        let long = vec![b'a'; 40_000];
        let mut input = long.clone();
        input.extend_from_slice(b"\nshort\nend");
        // Fed in awkward chunks: the records do not depend on how the pipe was read.
        let chunks: Vec<&[u8]> = input.chunks(4093).collect();
        let records = split(&chunks);
        let shape: Vec<(usize, bool)> = records.iter().map(|(b, p)| (b.len(), *p)).collect();
        assert_eq!(shape, [(MAX_LINE, true), (MAX_LINE, true), (40_000 - 2 * MAX_LINE, false), (5, false), (3, true)]);
        let joined: Vec<u8> =
            records.iter().flat_map(|(b, p)| b.iter().copied().chain((!p).then_some(b'\n'))).collect();
        assert_eq!(joined, input, "pieces put back together are the output");
        // Exactly 16 KiB and its newline: a piece, then an empty end of line.
        let mut exact = vec![b'b'; MAX_LINE];
        exact.push(b'\n');
        assert_eq!(split(&[&exact]), [(vec![b'b'; MAX_LINE], true), (Vec::new(), false)]);
        assert_eq!(split(&[b"x\n\n"]), [(b"x".to_vec(), false), (Vec::new(), false)]);
    }

    #[test]
    fn a_stream_without_newlines_is_never_held_whole() {
        let mut splitter = Splitter::default();
        let mut records = 0usize;
        let chunk = [b'z'; 4096];
        for _ in 0..1000 {
            splitter.push(&chunk, |b, p| {
                assert!(p && b.len() == MAX_LINE);
                records += 1;
            });
            assert!(splitter.pending.capacity() <= 2 * MAX_LINE, "bounded buffer");
        }
        assert_eq!(records, 1000 * 4096 / MAX_LINE);
    }
}
