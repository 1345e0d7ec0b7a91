//! berth's [`Resources`] as the OCI `LinuxResources` libcgroups applies, with the controllers
//! each limit needs so a missing one is reported by the key that asked for it.

use oci_spec::runtime::{LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};

use super::CgroupError;
use crate::runtime::spec::Resources;

/// Docker's and the kernel's default CFS period, used when only a quota is given.
const DEFAULT_CPU_PERIOD: u64 = 100_000;

/// A controller a limit needs, and the [`Resources`] field that set the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Need {
    /// Controller name, the same on v1 and v2.
    pub controller: &'static str,
    /// The field, for the error message.
    pub key: &'static str,
}

/// What to apply, and which controllers that takes.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    /// The limits in libcgroups' terms.
    pub linux: LinuxResources,
    /// Controllers the limits need, in field order.
    pub needs: Vec<Need>,
}

impl Plan {
    /// Whether any limit needs a swap limit written.
    pub fn sets_swap(&self) -> bool {
        self.linux.memory().is_some_and(|m| m.swap().is_some())
    }

    /// Forgets every limit that needs `controller` (one the host does not delegate), and returns
    /// the keys that set them.
    pub fn drop_controller(&mut self, controller: &str) -> Vec<Need> {
        let (dropped, kept) = self.needs.iter().partition(|n| n.controller == controller);
        self.needs = kept;
        match controller {
            "memory" => {
                self.linux.set_memory(None);
            }
            "pids" => {
                self.linux.set_pids(None);
            }
            "cpu" | "cpuset" => {
                if let Some(cpu) = self.linux.cpu_mut() {
                    if controller == "cpu" {
                        cpu.set_quota(None).set_period(None).set_shares(None);
                    } else {
                        cpu.set_cpus(None).set_mems(None);
                    }
                }
            }
            _ => {}
        }
        dropped
    }

    /// Forgets the swap limit: the kernel has no swap accounting, so there is no file to write it
    /// to and no swap to limit beyond what the memory limit already bounds.
    pub fn drop_swap(&mut self) {
        if let Some(memory) = self.linux.memory_mut() {
            memory.set_swap(None);
        }
    }
}

/// Converts the limits, normalising berth's "unlimited" spellings (0, -1) to absent fields and
/// rejecting values the kernel would refuse with a less helpful EINVAL.
pub(super) fn plan(r: &Resources) -> Result<Plan, CgroupError> {
    let mut needs = Vec::new();
    let mut need = |controller, key| needs.push(Need { controller, key });
    let mut linux = LinuxResources::default();

    let limit = positive_bytes("memory_limit", r.memory_limit)?;
    let reservation = positive_bytes("memory_reservation", r.memory_reservation)?;
    let swap = match r.memory_swap {
        None | Some(0) => None,
        Some(-1) if limit.is_none() => None, // unlimited swap is the default
        Some(-1) => Some(-1),
        Some(s) if s < -1 => return Err(invalid("memory_swap", s, "is negative (use -1 for unlimited)")),
        Some(s) => match limit {
            None => return Err(invalid("memory_swap", s, "needs memory_limit to be set too")),
            Some(l) if s < l => {
                return Err(invalid("memory_swap", s, "is less than memory_limit (it counts memory plus swap)"));
            }
            Some(_) => Some(s),
        },
    };
    if limit.is_some() || reservation.is_some() || swap.is_some() {
        let mut memory = LinuxMemory::default();
        memory.set_limit(limit).set_reservation(reservation).set_swap(swap);
        linux.set_memory(Some(memory));
        for (key, set) in [
            ("memory_limit", limit.is_some()),
            ("memory_reservation", reservation.is_some()),
            ("memory_swap", swap.is_some()),
        ] {
            if set {
                need("memory", key);
            }
        }
    }

    let mut cpu = LinuxCpu::default();
    let quota = r.cpu_quota.filter(|&q| q != 0);
    if let Some(q) = quota {
        if q < -1 {
            return Err(invalid("cpu_quota", q, "is negative (use -1 for unlimited)"));
        }
        cpu.set_quota(Some(q));
        need("cpu", "cpu_quota");
    }
    let period = match r.cpu_period.filter(|&p| p != 0) {
        Some(p) if !(1_000..=1_000_000).contains(&p) => {
            return Err(invalid("cpu_period", p, "is outside 1000-1000000 microseconds"));
        }
        Some(p) => Some(p),
        None => quota.map(|_| DEFAULT_CPU_PERIOD),
    };
    if period.is_some() {
        cpu.set_period(period);
        need("cpu", "cpu_period");
    }
    if let Some(shares) = r.cpu_shares.filter(|&s| s != 0) {
        // The kernel clamps v1 shares to 2-262144; libcgroups clamps the v2 weight it derives.
        cpu.set_shares(Some(shares));
        need("cpu", "cpu_shares");
    }
    if let Some(cpus) = non_empty(&r.cpuset_cpus) {
        cpu.set_cpus(Some(cpus));
        need("cpuset", "cpuset_cpus");
    }
    if let Some(mems) = non_empty(&r.cpuset_mems) {
        cpu.set_mems(Some(mems));
        need("cpuset", "cpuset_mems");
    }
    if cpu != LinuxCpu::default() {
        linux.set_cpu(Some(cpu));
    }

    // 0 and -1 are both unlimited for berth; libcgroups would turn 0 into 1 (runc's rule).
    if let Some(max) = r.pids_limit.filter(|&p| p > 0) {
        let mut pids = LinuxPids::default();
        pids.set_limit(max);
        linux.set_pids(Some(pids));
        need("pids", "pids_limit");
    }

    Ok(Plan { linux, needs })
}

/// A byte count the kernel takes as a signed 64-bit value; 0 means unset.
fn positive_bytes(key: &'static str, value: Option<u64>) -> Result<Option<i64>, CgroupError> {
    match value {
        None | Some(0) => Ok(None),
        Some(v) => i64::try_from(v).map(Some).map_err(|_| invalid(key, v, "is larger than the kernel accepts")),
    }
}

fn non_empty(value: &Option<String>) -> Option<String> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned)
}

fn invalid(key: &'static str, value: impl ToString, reason: &'static str) -> CgroupError {
    CgroupError::InvalidValue { key, value: value.to_string(), reason }
}

/// The limits whose controller `available` does not list, in field order.
pub(super) fn missing(needs: &[Need], available: impl Fn(&str) -> bool) -> Vec<Need> {
    needs.iter().filter(|n| !available(n.controller)).copied().collect()
}

/// Fails on the first limit whose controller `available` does not list.
pub(super) fn check_available(needs: &[Need], available: impl Fn(&str) -> bool) -> Result<(), CgroupError> {
    match needs.iter().find(|n| !available(n.controller)) {
        Some(n) => Err(CgroupError::ControllerUnavailable { controller: n.controller, key: n.key }),
        None => Ok(()),
    }
}
