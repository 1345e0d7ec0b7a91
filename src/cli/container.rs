//! Commands on a project's running containers: `pause`, `unpause`, `stats` and `top`.
//!
//! They act on every running container of the project (replicas and `run` containers alike),
//! or of the services named, found in the state root; the cgroup does the work (freezer,
//! statistics, its process list).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::anyhow;

use super::{Failure, GlobalOptions, load_project};
use crate::runtime::cgroups::{CgroupStats, ContainerCgroup};
use crate::runtime::state::{self, ContainerRecord};

/// How long `stats` waits between the two readings a CPU percentage needs, and between
/// refreshes when streaming (docker's daemon samples once a second too).
const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// `berth pause` / `berth unpause`.
#[derive(Debug, clap::Args)]
pub struct PauseArgs {
    /// Services (default: all).
    pub services: Vec<String>,
}

/// `berth stats`.
#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// Print one reading and exit instead of refreshing every second.
    #[arg(long)]
    pub no_stream: bool,
    /// Do not shorten container ids.
    #[arg(long)]
    pub no_trunc: bool,
    /// After the containers, one row per service (`total` in the ID column) with the sums of
    /// its containers' CPU %, memory and PIDs.
    #[arg(long)]
    pub total: bool,
    /// Services (default: all).
    pub services: Vec<String>,
}

/// `berth top`.
#[derive(Debug, clap::Args)]
pub struct TopArgs {
    /// Services (default: all).
    pub services: Vec<String>,
}

/// A running container and its cgroup.
struct Running {
    record: ContainerRecord,
    cgroup: ContainerCgroup,
}

fn failure(e: impl Into<anyhow::Error>) -> Failure {
    Failure { code: 1, error: e.into() }
}

/// The project's running containers, of `services` when any are named, oldest first.
fn running(global: &GlobalOptions, services: &[String]) -> Result<Vec<Running>, Failure> {
    let loaded = load_project(&global.project_options())?;
    let project = &loaded.project;
    if let Some(unknown) = services.iter().find(|s| !project.services.contains_key(*s)) {
        return Err(Failure { code: super::EXIT_INVALID, error: anyhow!("no such service: {unknown:?}") });
    }
    let mut found = Vec::new();
    for entry in state::list(&global.state_root()).map_err(failure)? {
        let Some(record) = entry.record else { continue };
        let wanted = services.is_empty() || services.contains(&record.service);
        if record.project != project.name || !wanted || !record.is_running() {
            continue;
        }
        if let Some(cgroup) = ContainerCgroup::open(&record.id).map_err(failure)? {
            found.push(Running { record, cgroup });
        }
    }
    found.reverse();
    Ok(found)
}

/// `pause` (`frozen`) or `unpause`: compose prints each container's name as it goes.
pub(super) fn pause(global: &GlobalOptions, args: &PauseArgs, frozen: bool) -> Result<(), Failure> {
    let project = load_project(&global.project_options())?.project.name;
    let _lock = super::supervise::lock_project(global, &project)?;
    let containers = running(global, &args.services)?;
    let mut out = std::io::stdout().lock();
    for c in &containers {
        let done = if frozen { c.cgroup.freeze() } else { c.cgroup.thaw() };
        done.map_err(|e| failure(anyhow!("{}: {e}", c.record.name)))?;
        let _ = writeln!(out, "{}", c.record.name);
    }
    Ok(())
}

/// `stats`: docker's table, from two readings a second apart for the CPU column.
pub(super) fn stats(global: &GlobalOptions, args: &StatsArgs) -> Result<(), Failure> {
    let containers = running(global, &args.services)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let mut before = readings(&containers)?;
    let terminal = std::io::stdout().is_terminal();
    loop {
        std::thread::sleep(STATS_INTERVAL);
        let now = readings(&containers)?;
        let mut table =
            String::from("CONTAINER ID   NAME                 CPU %     MEM USAGE / LIMIT     MEM %     PIDS\n");
        let mut totals = super::stats_total::Totals::default();
        for (c, ((was, t0), (is, t1))) in containers.iter().zip(before.iter().zip(now.iter())) {
            let id = if args.no_trunc { c.record.id.as_str() } else { &c.record.id[..12.min(c.record.id.len())] };
            let reading = super::stats_total::Reading {
                cpu: cpu_percent(was, is, t1.duration_since(*t0), cores),
                used: is.memory_usage.saturating_sub(is.memory_inactive_file),
                limit: is.memory_limit.unwrap_or_else(host_memory),
                pids: is.pids_current,
            };
            table.push_str(&reading.row(id, &c.record.name));
            totals.add(&c.record.service, &reading);
        }
        if args.total {
            table.push_str(&totals.rows(host_memory()));
        }
        let mut out = std::io::stdout().lock();
        if terminal && !args.no_stream {
            // Home and clear, so the table refreshes in place.
            let _ = out.write_all(b"\x1b[H\x1b[2J");
        }
        let _ = out.write_all(table.as_bytes());
        let _ = out.flush();
        if args.no_stream {
            return Ok(());
        }
        before = now;
    }
}

fn readings(containers: &[Running]) -> Result<Vec<(CgroupStats, Instant)>, Failure> {
    containers
        .iter()
        .map(|c| c.cgroup.stats().map(|s| (s, Instant::now())).map_err(|e| failure(anyhow!("{}: {e}", c.record.name))))
        .collect()
}

/// docker's CPU %: CPU time used over wall time elapsed, where 100% is one core fully used.
fn cpu_percent(was: &CgroupStats, is: &CgroupStats, elapsed: Duration, cores: f64) -> f64 {
    let used = is.cpu_total_ns.saturating_sub(was.cpu_total_ns) as f64;
    let wall = elapsed.as_nanos() as f64;
    if wall == 0.0 { 0.0 } else { (used / wall * 100.0).min(cores * 100.0) }
}

/// MemTotal, the limit docker shows for a container without one.
fn host_memory() -> u64 {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// `top`: for each container, its name, then `ps -ef`-style lines for its processes.
pub(super) fn top(global: &GlobalOptions, args: &TopArgs) -> Result<(), Failure> {
    let containers = running(global, &args.services)?;
    let mut out = std::io::stdout().lock();
    for c in &containers {
        let pids = c.cgroup.pids().map_err(|e| failure(anyhow!("{}: {e}", c.record.name)))?;
        let rows: Vec<[String; 8]> = pids.iter().filter_map(|&pid| super::procs::ps_row(pid)).collect();
        let _ = writeln!(out, "{}", c.record.name);
        let _ = out.write_all(super::procs::table(&rows).as_bytes());
        let _ = writeln!(out);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_percent_is_cpu_time_over_wall_time() {
        let was = CgroupStats { cpu_total_ns: 1_000_000_000, ..CgroupStats::default() };
        let is = CgroupStats { cpu_total_ns: 1_500_000_000, ..CgroupStats::default() };
        let percent = cpu_percent(&was, &is, Duration::from_secs(1), 2.0);
        assert!((percent - 50.0).abs() < 1e-9, "{percent}");
        // Never more than every core fully used, and nothing over no time.
        assert!(
            (cpu_percent(
                &was,
                &CgroupStats { cpu_total_ns: 9_000_000_000, ..is.clone() },
                Duration::from_secs(1),
                2.0
            ) - 200.0)
                .abs()
                < 1e-9
        );
        assert_eq!(cpu_percent(&was, &is, Duration::ZERO, 2.0), 0.0);
    }
}
