//! `berth ps`: the project's containers, from its supervisor, or — when the supervisor is gone —
//! from the container records on disk, so it tells the truth after a crash too.

use std::time::Duration;

use super::{Failure, GlobalOptions, emit};
use crate::runtime::state;
use crate::supervisor::status::{ContainerStatus, now_nanos};
use crate::supervisor::{self, control};

/// `berth ps`.
#[derive(Debug, clap::Args)]
pub struct PsArgs {
    /// Show stopped containers too.
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only container ids.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Only service names.
    #[arg(long)]
    pub services: bool,
    /// `table` (default) or `json`.
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Only containers in this state (`running`, `exited`, `restarting`; repeatable).
    #[arg(long)]
    pub status: Vec<String>,
    /// Filter by a property: `status=STATE` (compose's only filter).
    #[arg(long, value_name = "KEY=VALUE")]
    pub filter: Option<String>,
    /// Do not truncate the COMMAND column.
    #[arg(long)]
    pub no_trunc: bool,
    /// Only these services.
    pub service_names: Vec<String>,
}

/// The project's containers as the supervisor sees them, else as the disk records them
/// (running, or stopped with the exit code and time each run ended with), and its one-off
/// containers from the disk.
pub(super) fn containers(global: &GlobalOptions, project: &str) -> Vec<ContainerStatus> {
    let root = global.state_root();
    let dir = supervisor::project_dir(&root, project);
    let from_supervisor = match control::request(&dir, &control::Request::Ps) {
        Some(control::Reply::Containers(containers)) => Some(containers),
        _ => None,
    };
    let supervised = from_supervisor.is_some();
    let Ok(found) = state::list(&root) else { return from_supervisor.unwrap_or_default() };
    let on_disk: Vec<ContainerStatus> = found
        .into_iter()
        .filter_map(|f| Some((f.spec?, f.record?)))
        .filter(|(spec, record)| spec.project == project && (record.oneoff || !supervised))
        .map(|(spec, record)| {
            let running = record.is_running();
            ContainerStatus {
                id: spec.id.clone(),
                name: spec.name.clone(),
                image: String::new(),
                command: shell_words::join(&spec.process.args),
                project: spec.project.clone(),
                service: spec.service.clone(),
                created: record.created,
                state: if running { "running" } else { "exited" }.into(),
                health: record.health.clone(),
                exit_code: if running { 0 } else { record.exit_code },
                started_at: if record.started_at > 0 {
                    record.started_at
                } else {
                    u128::from(record.created) * 1_000_000_000
                },
                finished_at: if running { 0 } else { record.finished_at },
                restarts: record.restarts,
                starts: Vec::new(),
                publishers: Vec::new(),
                health_output: String::new(),
            }
        })
        .collect();
    let mut list = from_supervisor.unwrap_or_default();
    list.extend(on_disk);
    list.sort_by(|a, b| a.name.cmp(&b.name));
    list
}

pub(super) fn ps(global: &GlobalOptions, args: &PsArgs) -> Result<(), Failure> {
    let mut status = args.status.clone();
    if let Some(filter) = &args.filter {
        match filter.split_once('=') {
            Some(("status", state)) => status.push(state.to_owned()),
            _ => {
                return Err(Failure {
                    code: super::EXIT_INVALID,
                    error: anyhow::anyhow!("invalid filter {filter:?}: only status=STATE is supported, as in compose"),
                });
            }
        }
    }
    let loaded = super::load_named(global)?;
    let mut list = containers(global, &loaded.project.name);
    list.retain(|c| {
        (args.all || c.state != "exited")
            && (status.is_empty() || status.contains(&c.state))
            && (args.service_names.is_empty() || args.service_names.contains(&c.service))
    });
    if args.services {
        let mut names: Vec<&str> = list.iter().map(|c| c.service.as_str()).collect();
        names.dedup();
        return emit(&names.iter().map(|n| format!("{n}\n")).collect::<String>());
    }
    if args.quiet {
        return emit(&list.iter().map(|c| format!("{}\n", c.id)).collect::<String>());
    }
    if args.format == "json" {
        let mut text = serde_json::to_string(&list).map_err(|e| Failure { code: 1, error: e.into() })?;
        text.push('\n');
        return emit(&text);
    }
    let now = now_nanos();
    let mut rows = vec![["NAME", "IMAGE", "COMMAND", "SERVICE", "CREATED", "STATUS", "PORTS"].map(String::from)];
    for c in &list {
        let created = Duration::from_secs(state::now().saturating_sub(c.created));
        rows.push([
            c.name.clone(),
            c.image.clone(),
            format!("{:?}", if args.no_trunc { c.command.clone() } else { truncate(&c.command, 20) }),
            c.service.clone(),
            format!("{} ago", human_duration(created)),
            status_text(c, now),
            c.publishers
                .iter()
                .map(|p| format!("{}:{}->{}/{}", p.url, p.published_port, p.target_port, p.protocol))
                .collect::<Vec<_>>()
                .join(", "),
        ]);
    }
    emit(&super::format::table(&rows))
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        format!("{}…", text.chars().take(max - 1).collect::<String>())
    }
}

/// docker's STATUS column.
fn status_text(c: &ContainerStatus, now: u128) -> String {
    let since = |at: u128| Duration::from_nanos(u64::try_from(now.saturating_sub(at)).unwrap_or(u64::MAX));
    match c.state.as_str() {
        "running" => {
            let health = match c.health.as_str() {
                "" => String::new(),
                "starting" => " (health: starting)".into(),
                other => format!(" ({other})"),
            };
            format!("Up {}{health}", human_duration(since(c.started_at)))
        }
        "restarting" => format!("Restarting ({}) {} ago", c.exit_code, human_duration(since(c.finished_at))),
        _ => format!("Exited ({}) {} ago", c.exit_code, human_duration(since(c.finished_at))),
    }
}

/// go-units `HumanDuration`, which docker prints durations with.
fn human_duration(d: Duration) -> String {
    let seconds = d.as_secs();
    let minutes = seconds / 60;
    // Rounded to the nearest hour, as go-units does.
    let hours = (seconds + 1800) / 3600;
    match () {
        () if seconds < 1 => "Less than a second".into(),
        () if seconds == 1 => "1 second".into(),
        () if seconds < 60 => format!("{seconds} seconds"),
        () if minutes == 1 => "About a minute".into(),
        () if minutes < 60 => format!("{minutes} minutes"),
        () if hours == 1 => "About an hour".into(),
        () if hours < 48 => format!("{hours} hours"),
        () if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        () if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        () if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        () => format!("{} years", hours / 24 / 365),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_like_docker() {
        assert_eq!(human_duration(Duration::from_millis(300)), "Less than a second");
        assert_eq!(human_duration(Duration::from_secs(1)), "1 second");
        assert_eq!(human_duration(Duration::from_secs(59)), "59 seconds");
        assert_eq!(human_duration(Duration::from_secs(90)), "About a minute");
        assert_eq!(human_duration(Duration::from_secs(600)), "10 minutes");
        assert_eq!(human_duration(Duration::from_secs(3600)), "About an hour");
        assert_eq!(human_duration(Duration::from_secs(5 * 3600)), "5 hours");
        assert_eq!(human_duration(Duration::from_secs(3 * 86400)), "3 days");
    }
}
