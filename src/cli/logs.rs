//! `berth logs`: the project's container output from the supervisor's log files, lines of all
//! containers merged in time order, `name  | line` as compose prints them. Output is bytes and is
//! printed as it was written; a line stored in pieces (over 16 KiB, or cut by the end of the
//! stream) is printed whole, as `docker logs` reassembles partial messages.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Failure, GlobalOptions};
use crate::supervisor::logs::{self, Line};
use crate::supervisor::{self, SupervisorRecord};
use crate::timing::rfc3339;

/// `berth logs`.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Keep printing new lines (across restarts) until the project goes down or Ctrl-C.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Lines from the end of each container's log (`all` for every line).
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Only lines since this time: RFC 3339 (`2026-12-07T22:00:00Z`), a Unix timestamp in
    /// seconds, or a duration ago (`10m`).
    #[arg(long)]
    pub since: Option<String>,
    /// Only lines before this time (the same forms as --since).
    #[arg(long)]
    pub until: Option<String>,
    /// Show each line's time (RFC 3339).
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Plain prefixes.
    #[arg(long)]
    pub no_color: bool,
    /// No `name |` prefixes.
    #[arg(long)]
    pub no_log_prefix: bool,
    /// Only these services.
    pub services: Vec<String>,
}

/// compose's prefix colours, in order of first appearance.
const COLORS: [&str; 6] = ["36", "33", "32", "35", "34", "31"];

/// How lines are printed.
#[derive(Debug, Clone, Copy)]
pub(super) struct Style {
    /// `name | ` prefixes.
    pub prefix: bool,
    /// Coloured prefixes.
    pub color: bool,
    /// RFC 3339 times.
    pub timestamps: bool,
}

/// The logs of some of a project's containers, read incrementally.
#[derive(Debug)]
pub(super) struct LogView {
    files: BTreeMap<String, PathBuf>,
    offsets: BTreeMap<String, u64>,
    width: usize,
    style: Style,
    /// Containers whose last printed line is still unfinished: what follows continues it.
    midline: BTreeSet<String>,
}

impl LogView {
    /// The logs of `services` (all when empty) of `project`: every replica's file.
    pub(super) fn new(root: &Path, project: &crate::spec::Project, services: &[String], style: Style) -> LogView {
        let dir = supervisor::project_dir(root, &project.name).join("logs");
        let mut files = BTreeMap::new();
        for (name, service) in &project.services {
            if !services.is_empty() && !services.contains(name) {
                continue;
            }
            for index in 1..=service.replicas().max(1) {
                let container = crate::plan::container_name(project, service, u32::try_from(index).unwrap_or(1));
                files.insert(short_name(&project.name, &container), dir.join(format!("{container}.log")));
            }
        }
        let width = files.keys().map(|n| n.chars().count()).max().unwrap_or(0);
        LogView { files, offsets: BTreeMap::new(), width, style, midline: BTreeSet::new() }
    }

    /// Shows the output of the lifecycle hooks of `services` (all when empty) too, each
    /// container's as `<name> ->`, as compose's attached `up` does.
    pub(super) fn add_hooks(&mut self, root: &Path, project: &crate::spec::Project, services: &[String]) {
        let dir = supervisor::project_dir(root, &project.name);
        for (name, service) in &project.services {
            let hooked = ["post_start", "pre_stop"].iter().any(|k| service.other.contains_key(*k));
            if !hooked || (!services.is_empty() && !services.contains(name)) {
                continue;
            }
            for index in 1..=service.replicas().max(1) {
                let container = crate::plan::container_name(project, service, u32::try_from(index).unwrap_or(1));
                let shown = format!("{} ->", short_name(&project.name, &container));
                self.add_file(&shown, logs::hooks_log(&dir, &container));
            }
        }
    }

    /// Shows `path` (a log in the same format) under `name` too.
    pub(super) fn add_file(&mut self, name: &str, path: PathBuf) {
        self.files.insert(name.to_owned(), path);
        self.width = self.files.keys().map(|n| n.chars().count()).max().unwrap_or(0);
    }

    /// The short names of the containers shown.
    pub(super) fn names(&self) -> Vec<String> {
        self.files.keys().cloned().collect()
    }

    /// Prints what the logs hold now (each container's last `tail` lines since `since`).
    pub(super) fn catch_up(
        &mut self,
        tail: Option<usize>,
        since: Option<u128>,
        until: Option<u128>,
    ) -> Result<(), Failure> {
        let mut lines: Vec<(String, Line)> = Vec::new();
        for (name, path) in &self.files {
            let (mut mine, end) = read_from(path, 0);
            mine.retain(|l| since.is_none_or(|s| l.time >= s) && until.is_none_or(|u| l.time < u));
            if let Some(n) = tail {
                mine.drain(..tail_start(&mine, n));
            }
            self.offsets.insert(name.clone(), end);
            lines.extend(mine.into_iter().map(|l| (name.clone(), l)));
        }
        self.print(lines)
    }

    /// Prints the lines written since the last call; whether there were any.
    pub(super) fn poll(&mut self) -> Result<bool, Failure> {
        let mut fresh: Vec<(String, Line)> = Vec::new();
        for (name, path) in &self.files {
            let offset = self.offsets.get(name).copied().unwrap_or(0);
            // A file smaller than where we were was rotated: start it again.
            let size = std::fs::metadata(path).map_or(0, |m| m.len());
            let (mine, end) = read_from(path, if size < offset { 0 } else { offset });
            self.offsets.insert(name.clone(), end);
            fresh.extend(mine.into_iter().map(|l| (name.clone(), l)));
        }
        let any = !fresh.is_empty();
        self.print(fresh)?;
        Ok(any)
    }

    fn print(&mut self, lines: Vec<(String, Line)>) -> Result<(), Failure> {
        let colors: BTreeMap<String, &str> = self.files.keys().cloned().zip(COLORS.iter().cycle().copied()).collect();
        let mut out = Vec::new();
        for (name, pieces) in whole_lines(lines) {
            let Some(first) = pieces.first() else { continue };
            if !self.midline.remove(&name) {
                if self.style.prefix {
                    let prefix = format!("{name:<w$} | ", w = self.width);
                    if self.style.color {
                        let color = colors.get(&name).unwrap_or(&"0");
                        out.extend_from_slice(format!("\x1b[{color}m{prefix}\x1b[0m").as_bytes());
                    } else {
                        out.extend_from_slice(prefix.as_bytes());
                    }
                }
                if self.style.timestamps {
                    out.extend_from_slice(format!("{} ", rfc3339(first.time)).as_bytes());
                }
            }
            for piece in &pieces {
                out.extend_from_slice(&piece.bytes);
            }
            if pieces.last().is_some_and(|p| p.partial) {
                self.midline.insert(name);
            } else {
                out.push(b'\n');
            }
        }
        if out.is_empty() {
            return Ok(());
        }
        let mut stdout = std::io::stdout().lock();
        match stdout.write_all(&out).and_then(|()| stdout.flush()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
            _ => Ok(()),
        }
    }
}

pub(super) fn logs(global: &GlobalOptions, args: &LogsArgs) -> Result<(), Failure> {
    let loaded = super::load_named(global)?;
    let project = &loaded.project;
    let root = global.state_root();
    let invalid = |e: String| Failure { code: super::EXIT_INVALID, error: anyhow::anyhow!(e) };
    let tail = match args.tail.as_str() {
        "all" | "-1" => None,
        n => Some(n.parse::<usize>().map_err(|_| invalid(format!("--tail: {n:?} is not a number")))?),
    };
    let since = args.since.as_deref().map(parse_since).transpose().map_err(invalid)?;
    let until = args.until.as_deref().map(parse_since).transpose().map_err(invalid)?;
    if until.is_some() && args.follow {
        // compose follows until then; berth would have to stop following on time: not yet.
        return Err(invalid("--until with --follow is not supported yet".into()));
    }
    let style = Style {
        prefix: !args.no_log_prefix,
        color: !args.no_color && std::io::stdout().is_terminal(),
        timestamps: args.timestamps,
    };
    let mut view = LogView::new(&root, project, &args.services, style);
    view.catch_up(tail, since, until)?;
    if !args.follow {
        return Ok(());
    }
    loop {
        let any = view.poll()?;
        if !any && !SupervisorRecord::load(&root, &project.name).is_some_and(|r| r.is_running()) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Where the last `n` lines begin among `records`: a line's pieces count once.
fn tail_start(records: &[Line], n: usize) -> usize {
    let mut start = records.len();
    let mut lines = 0;
    for i in (0..records.len()).rev() {
        if i == 0 || !records[i - 1].partial {
            lines += 1;
            if lines > n {
                break;
            }
            start = i;
        }
    }
    start
}

/// The records of each container (in file order) joined into lines — a line's pieces up to
/// its last, or up to the end of what was read — in time order of their first pieces.
fn whole_lines(records: Vec<(String, Line)>) -> Vec<(String, Vec<Line>)> {
    let mut lines: Vec<(String, Vec<Line>)> = Vec::new();
    let mut open: BTreeMap<String, usize> = BTreeMap::new();
    for (name, record) in records {
        let partial = record.partial;
        let at = match open.get(&name) {
            Some(&at) => at,
            None => {
                lines.push((name.clone(), Vec::new()));
                lines.len() - 1
            }
        };
        lines[at].1.push(record);
        if partial {
            open.insert(name, at);
        } else {
            open.remove(&name);
        }
    }
    lines.sort_by_key(|(_, pieces)| pieces.first().map_or(0, |p| p.time));
    lines
}

/// The complete lines of `path` from byte `offset`, and the offset after the last of them.
fn read_from(path: &Path, offset: u64) -> (Vec<Line>, u64) {
    let (lines, end) = logs::complete_lines_from(path, offset);
    (lines.iter().filter_map(|l| logs::parse(l)).collect(), end)
}

/// `db-1` for `myapp-db-1`, as compose prefixes lines.
fn short_name(project: &str, container: &str) -> String {
    container.strip_prefix(&format!("{project}-")).unwrap_or(container).to_owned()
}

/// `--since` and `--until`: RFC 3339, Unix seconds, or a duration before now.
fn parse_since(text: &str) -> Result<u128, String> {
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(u128::from(seconds) * 1_000_000_000);
    }
    if text.contains('T') && text.contains('-') {
        let time = humantime::parse_rfc3339_weak(text).map_err(|e| format!("{text:?}: {e}"))?;
        return time
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .map_err(|_| format!("{text:?} is before 1970"));
    }
    let ago = crate::spec::units::parse_duration(text).map_err(|e| format!("--since {text:?}: {e}"))?;
    Ok(supervisor::status::now_nanos().saturating_sub(ago.as_nanos()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_print_as_rfc3339_in_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(1_795_411_671_655_240_850), "2026-11-23T05:27:51.655240850Z");
        assert_eq!(rfc3339(951_782_400_000_000_001), "2000-02-29T00:00:00.000000001Z");
    }

    #[test]
    fn pieces_join_into_lines_in_time_order() {
        let record = |time: u128, bytes: &[u8], partial: bool| Line {
            time,
            stream: "stdout".into(),
            bytes: bytes.to_vec(),
            partial,
        };
        let records = vec![
            ("a".to_owned(), record(1, b"long ", true)),
            ("a".to_owned(), record(4, b"line", false)),
            ("a".to_owned(), record(5, b"\xff", true)),
            ("b".to_owned(), record(2, b"between", false)),
        ];
        let pieces: Vec<Line> = records.iter().filter(|(n, _)| n == "a").map(|(_, l)| l.clone()).collect();
        assert_eq!((tail_start(&pieces, 1), tail_start(&pieces, 2), tail_start(&pieces, 0)), (2, 0, 3));
        assert_eq!(tail_start(&pieces, 9), 0);
        let lines = whole_lines(records);
        let shape: Vec<(&str, Vec<u8>)> =
            lines.iter().map(|(n, p)| (n.as_str(), p.iter().flat_map(|l| l.bytes.clone()).collect())).collect();
        assert_eq!(shape, [("a", b"long line".to_vec()), ("b", b"between".to_vec()), ("a", b"\xff".to_vec())]);
    }

    #[test]
    fn prefixes_drop_the_project_and_since_takes_seconds_or_a_duration() {
        assert_eq!(short_name("shop", "shop-db-1"), "db-1");
        assert_eq!(short_name("shop", "custom"), "custom");
        assert_eq!(parse_since("10"), Ok(10_000_000_000));
        assert!(parse_since("1m").is_ok_and(|t| t > 0));
        assert!(parse_since("yesterday").is_err());
        assert_eq!(parse_since("1970-01-01T00:00:10Z"), Ok(10_000_000_000));
        assert_eq!(parse_since("1970-01-01T00:00:10.5Z"), Ok(10_500_000_000));
    }
}
