//! Limits a v2 host cannot honour because the tree above berth does not delegate their
//! controller (a container or a systemd unit whose parent's `cgroup.subtree_control` lacks it,
//! so the controller is missing from `cgroup.controllers` at berth's root). As podman does,
//! the container runs without them, and each such limit key is warned about once per berth
//! process; never silently. A controller that is delegated but cannot be enabled is an error.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Mutex;

use super::resources::{self, Need};
use super::{CGROUP_ROOT, CgroupError, CgroupMode};
use crate::runtime::spec::Resources;

/// The compose key a [`Resources`] field comes from (`cpus` sets both quota and period).
fn compose_key(need: &Need) -> &'static str {
    match need.key {
        "memory_limit" => "mem_limit",
        "memory_reservation" => "mem_reservation",
        "memory_swap" => "memswap_limit",
        "cpu_quota" | "cpu_period" => "cpus (cpu_quota, cpu_period)",
        "cpuset_cpus" | "cpuset_mems" => "cpuset",
        other => other,
    }
}

/// One warning per limit key, naming the controller and where it is missing.
pub(super) fn messages(root: &Path, missing: &[Need]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    missing
        .iter()
        .filter(|n| seen.insert(compose_key(n)))
        .map(|n| {
            format!(
                "{} is not applied: the {} controller is not delegated to {} (it is missing from {}; \
                 the parent cgroup's cgroup.subtree_control must enable it)",
                compose_key(n),
                n.controller,
                root.display(),
                root.join("cgroup.controllers").display()
            )
        })
        .collect()
}

/// Prints [`messages`] to stderr, each at most once in this process (a supervisor starts many
/// containers).
pub(super) fn warn(root: &Path, missing: &[Need]) {
    static WARNED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    for message in messages(root, missing) {
        let first = WARNED.lock().map(|mut w| w.insert(message.clone())).unwrap_or(true);
        if first {
            eprintln!("warning: {message}");
        }
    }
}

/// The warnings a container with `resources` would get on this host: empty on v1 and hybrid
/// hosts (a missing v1 controller is an error there) and when every controller is delegated.
/// For a caller that reports before the containers start (`up`, whose supervisor's own stderr
/// is its log).
pub fn undelegated_limits(resources: &Resources) -> Result<Vec<String>, CgroupError> {
    if super::detect()? != CgroupMode::V2 {
        return Ok(Vec::new());
    }
    let root = Path::new(CGROUP_ROOT);
    let path = root.join("cgroup.controllers");
    let available = std::fs::read_to_string(&path).map_err(|source| CgroupError::Io { op: "read", path, source })?;
    let plan = resources::plan(resources)?;
    let missing = resources::missing(&plan.needs, |name| available.split_ascii_whitespace().any(|a| a == name));
    Ok(messages(root, &missing))
}
