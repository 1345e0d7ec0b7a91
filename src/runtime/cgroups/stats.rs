//! The figures berth reports about a container's cgroup, taken from libcgroups' statistics, or
//! read from the few files that hold them when libcgroups cannot read everything it wants.

use std::path::Path;

use libcgroups::stats::Stats;

use super::{CgroupError, keyed_value, read_optional};

/// Nanoseconds per USER_HZ tick, the unit of v1 `cpuacct.stat` (USER_HZ is 100 on Linux).
const NS_PER_TICK: u64 = 10_000_000;

/// Limits at or above this are the kernel's "no limit" (v1 writes 2^63 less a page, v2 `max`).
const UNLIMITED: u64 = 1 << 62;

/// A container's resource use, in the units `docker stats` computes from.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CgroupStats {
    /// CPU time used by all processes since the cgroup was made, in nanoseconds.
    pub cpu_total_ns: u64,
    /// Of that, in user mode.
    pub cpu_user_ns: u64,
    /// Of that, in the kernel.
    pub cpu_system_ns: u64,
    /// Memory charged to the cgroup now, page cache included, in bytes.
    pub memory_usage: u64,
    /// Highest memory usage seen, in bytes; 0 when the kernel does not track it (v2 before 5.19).
    pub memory_max_usage: u64,
    /// The hard memory limit in bytes; `None` when unlimited.
    pub memory_limit: Option<u64>,
    /// Inactive page cache in bytes, which docker subtracts from the usage it shows.
    pub memory_inactive_file: u64,
    /// Processes (v2: tasks) in the cgroup now.
    pub pids_current: u64,
    /// The pids limit; `None` when unlimited.
    pub pids_limit: Option<u64>,
    /// Processes the OOM killer has killed in the cgroup so far.
    pub oom_kills: u64,
}

fn limit(value: u64) -> Option<u64> {
    (value > 0 && value < UNLIMITED).then_some(value)
}

/// From libcgroups' v1 statistics: CPU time is nanoseconds per core in `cpuacct.usage_all`,
/// USER_HZ ticks in `cpuacct.stat`.
pub(super) fn from_v1(s: &Stats, oom_kills: u64) -> CgroupStats {
    let usage = &s.cpu.usage;
    let per_core_or_ticks = |per_core: &[u64], ticks: u64| {
        if per_core.is_empty() { ticks.saturating_mul(NS_PER_TICK) } else { per_core.iter().sum() }
    };
    CgroupStats {
        cpu_total_ns: usage.usage_total,
        cpu_user_ns: per_core_or_ticks(&usage.per_core_usage_user, usage.usage_user),
        cpu_system_ns: per_core_or_ticks(&usage.per_core_usage_kernel, usage.usage_kernel),
        memory_usage: s.memory.memory.usage,
        memory_max_usage: s.memory.memory.max_usage,
        memory_limit: limit(s.memory.memory.limit),
        memory_inactive_file: s.memory.stats.get("total_inactive_file").copied().unwrap_or(0),
        pids_current: s.pids.current,
        pids_limit: limit(s.pids.limit),
        oom_kills,
    }
}

/// From libcgroups' v2 statistics, whose CPU times are `cpu.stat`'s microseconds.
pub(super) fn from_v2(s: &Stats, oom_kills: u64) -> CgroupStats {
    let usage = &s.cpu.usage;
    CgroupStats {
        cpu_total_ns: usage.usage_total.saturating_mul(1000),
        cpu_user_ns: usage.usage_user.saturating_mul(1000),
        cpu_system_ns: usage.usage_kernel.saturating_mul(1000),
        memory_usage: s.memory.memory.usage,
        memory_max_usage: s.memory.memory.max_usage,
        memory_limit: limit(s.memory.memory.limit),
        memory_inactive_file: s.memory.stats.get("inactive_file").copied().unwrap_or(0),
        pids_current: s.pids.current,
        pids_limit: limit(s.pids.limit),
        oom_kills,
    }
}

/// Reads the v1 figures directly; a missing file (controller or kernel feature absent) counts 0.
pub(super) fn read_v1<'a>(dir: impl Fn(&str) -> Option<&'a Path>, oom_kills: u64) -> Result<CgroupStats, CgroupError> {
    let mut stats = CgroupStats { oom_kills, ..CgroupStats::default() };
    if let Some(d) = existing(dir("cpuacct"))? {
        stats.cpu_total_ns = single(&d.join("cpuacct.usage"))?.unwrap_or(0);
        match (single(&d.join("cpuacct.usage_user"))?, single(&d.join("cpuacct.usage_sys"))?) {
            (Some(user), Some(system)) => (stats.cpu_user_ns, stats.cpu_system_ns) = (user, system),
            _ => {
                let path = d.join("cpuacct.stat");
                let text = read_optional(&path)?.unwrap_or_default();
                let ticks = |key| keyed_value(&path, &text, key).map(|v| v.unwrap_or(0).saturating_mul(NS_PER_TICK));
                (stats.cpu_user_ns, stats.cpu_system_ns) = (ticks("user")?, ticks("system")?);
            }
        }
    }
    if let Some(d) = existing(dir("memory"))? {
        stats.memory_usage = single(&d.join("memory.usage_in_bytes"))?.unwrap_or(0);
        stats.memory_max_usage = single(&d.join("memory.max_usage_in_bytes"))?.unwrap_or(0);
        stats.memory_limit = single(&d.join("memory.limit_in_bytes"))?.and_then(limit);
        stats.memory_inactive_file = stat_value(&d.join("memory.stat"), "total_inactive_file")?;
    }
    if let Some(d) = existing(dir("pids"))? {
        (stats.pids_current, stats.pids_limit) = pids(d)?;
    }
    Ok(stats)
}

/// Reads the v2 figures directly; a missing file (controller not enabled) counts 0.
pub(super) fn read_v2(dir: &Path, oom_kills: u64) -> Result<CgroupStats, CgroupError> {
    let mut stats = CgroupStats { oom_kills, ..CgroupStats::default() };
    let Some(dir) = existing(Some(dir))? else {
        return Err(CgroupError::Io {
            op: "read",
            path: dir.to_path_buf(),
            source: std::io::ErrorKind::NotFound.into(),
        });
    };
    let cpu_stat = dir.join("cpu.stat");
    let text = read_optional(&cpu_stat)?.unwrap_or_default();
    let usec = |key| keyed_value(&cpu_stat, &text, key).map(|v| v.unwrap_or(0).saturating_mul(1000));
    (stats.cpu_total_ns, stats.cpu_user_ns, stats.cpu_system_ns) =
        (usec("usage_usec")?, usec("user_usec")?, usec("system_usec")?);
    stats.memory_usage = single(&dir.join("memory.current"))?.unwrap_or(0);
    stats.memory_max_usage = single(&dir.join("memory.peak"))?.unwrap_or(0);
    stats.memory_limit = single(&dir.join("memory.max"))?.and_then(limit);
    stats.memory_inactive_file = stat_value(&dir.join("memory.stat"), "inactive_file")?;
    (stats.pids_current, stats.pids_limit) = pids(dir)?;
    Ok(stats)
}

/// The directory when it exists; an error when the cgroup itself is gone.
fn existing(dir: Option<&Path>) -> Result<Option<&Path>, CgroupError> {
    match dir {
        Some(d) if !d.is_dir() => {
            Err(CgroupError::Io { op: "read", path: d.to_path_buf(), source: std::io::ErrorKind::NotFound.into() })
        }
        other => Ok(other),
    }
}

fn pids(dir: &Path) -> Result<(u64, Option<u64>), CgroupError> {
    Ok((single(&dir.join("pids.current"))?.unwrap_or(0), single(&dir.join("pids.max"))?.and_then(limit)))
}

/// A one-number file; `max` is [`u64::MAX`]; `None` when the file is missing.
fn single(path: &Path) -> Result<Option<u64>, CgroupError> {
    let Some(text) = read_optional(path)? else { return Ok(None) };
    let text = text.trim();
    if text == "max" {
        return Ok(Some(u64::MAX));
    }
    text.parse().map(Some).map_err(|_| CgroupError::Parse { path: path.to_path_buf(), content: text.to_owned() })
}

fn stat_value(path: &Path, key: &str) -> Result<u64, CgroupError> {
    let text = read_optional(path)?.unwrap_or_default();
    Ok(keyed_value(path, &text, key)?.unwrap_or(0))
}
