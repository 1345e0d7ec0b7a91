//! `berth logs`: the project's container output from the supervisor's log files, lines of all
//! containers merged in time order, `name  | line` as compose prints them.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Failure, GlobalOptions, load_project};
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
    /// Only lines since this time: a Unix timestamp in seconds, or a duration ago (`10m`).
    #[arg(long)]
    pub since: Option<String>,
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
        LogView { files, offsets: BTreeMap::new(), width, style }
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
    pub(super) fn catch_up(&mut self, tail: Option<usize>, since: Option<u128>) -> Result<(), Failure> {
        let mut lines: Vec<(String, Line)> = Vec::new();
        for (name, path) in &self.files {
            let (mut mine, end) = read_from(path, 0);
            mine.retain(|l| since.is_none_or(|s| l.time >= s));
            if let Some(n) = tail {
                mine.drain(..mine.len().saturating_sub(n));
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

    fn print(&self, mut lines: Vec<(String, Line)>) -> Result<(), Failure> {
        lines.sort_by_key(|(_, l)| l.time);
        let colors: BTreeMap<&String, &str> = self.files.keys().zip(COLORS.iter().cycle().copied()).collect();
        let mut out = String::new();
        for (name, line) in &lines {
            if self.style.prefix {
                let prefix = format!("{name:<w$} | ", w = self.width);
                if self.style.color {
                    out.push_str(&format!("\x1b[{}m{prefix}\x1b[0m", colors.get(name).unwrap_or(&"0")));
                } else {
                    out.push_str(&prefix);
                }
            }
            if self.style.timestamps {
                out.push_str(&rfc3339(line.time));
                out.push(' ');
            }
            out.push_str(&line.text);
            out.push('\n');
        }
        if out.is_empty() { Ok(()) } else { super::emit(&out) }
    }
}

pub(super) fn logs(global: &GlobalOptions, args: &LogsArgs) -> Result<(), Failure> {
    let loaded = load_project(&global.project_options())?;
    let project = &loaded.project;
    let root = global.state_root();
    let invalid = |e: String| Failure { code: super::EXIT_INVALID, error: anyhow::anyhow!(e) };
    let tail = match args.tail.as_str() {
        "all" | "-1" => None,
        n => Some(n.parse::<usize>().map_err(|_| invalid(format!("--tail: {n:?} is not a number")))?),
    };
    let since = args.since.as_deref().map(parse_since).transpose().map_err(invalid)?;
    let style = Style {
        prefix: !args.no_log_prefix,
        color: !args.no_color && std::io::stdout().is_terminal(),
        timestamps: args.timestamps,
    };
    let mut view = LogView::new(&root, project, &args.services, style);
    view.catch_up(tail, since)?;
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

/// The complete lines of `path` from byte `offset`, and the offset after the last of them.
fn read_from(path: &Path, offset: u64) -> (Vec<Line>, u64) {
    let (lines, end) = logs::complete_lines_from(path, offset);
    (lines.iter().filter_map(|l| logs::parse(l)).collect(), end)
}

/// `db-1` for `myapp-db-1`, as compose prefixes lines.
fn short_name(project: &str, container: &str) -> String {
    container.strip_prefix(&format!("{project}-")).unwrap_or(container).to_owned()
}

/// `--since`: Unix seconds, or a duration before now.
fn parse_since(text: &str) -> Result<u128, String> {
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(u128::from(seconds) * 1_000_000_000);
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
    fn prefixes_drop_the_project_and_since_takes_seconds_or_a_duration() {
        assert_eq!(short_name("shop", "shop-db-1"), "db-1");
        assert_eq!(short_name("shop", "custom"), "custom");
        assert_eq!(parse_since("10"), Ok(10_000_000_000));
        assert!(parse_since("1m").is_ok_and(|t| t > 0));
        assert!(parse_since("yesterday").is_err());
    }
}
