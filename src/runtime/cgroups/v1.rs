//! The v1 side: `berth-<id>` at the root of each controller hierarchy, limits and freezing
//! through libcgroups' v1 manager.
//!
//! The cgroup sits directly under each hierarchy's root (as crun's cgroupfs manager puts it)
//! rather than under a shared `berth` parent: a parent made and removed with its containers
//! doubled the mkdir and rmdir work (twenty cgroupfs operations, about 0.4 ms a container) and
//! a parent kept forever would be a cgroup left on the host.
//!
//! Building that manager costs about a millisecond (it parses /proc/self/mountinfo and
//! /proc/self/cgroup again for each of its twelve controllers), which is a tenth of a whole
//! container run. So the hot path — making the directories, the device policy, joining,
//! removing — is plain file work here, and the manager is built, once per container, only for
//! what has logic behind it: limits, freezing, statistics.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libcgroups::common::{CgroupManager, ControllerOpt, FreezerState};
use libcgroups::v1::manager::Manager;
use oci_spec::runtime::LinuxResources;

use super::mounts::{CgroupMount, MOUNTINFO, host_cgroup_mounts};
use super::resources;
use super::stats::{self, CgroupStats};
use super::{CgroupError, kill_each, read_optional, v1_name, write_file};
use crate::runtime::spec::Resources;

/// The files a new cpuset cgroup starts with empty; a process cannot join until they are filled.
const CPUSET_FILES: [&str; 2] = ["cpuset.cpus", "cpuset.mems"];

/// The v1 memsw file; absent when the kernel does no swap accounting.
const MEMSW_LIMIT: &str = "memory.memsw.limit_in_bytes";

/// The controllers libcgroups' v1 manager knows, by their kernel names.
const CONTROLLERS: [&str; 12] = [
    "blkio",
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "freezer",
    "hugetlb",
    "memory",
    "net_cls",
    "net_prio",
    "perf_event",
    "pids",
];

/// Docker's device policy (moby `oci/devices_linux.go`, runc's allowed list): no device at
/// all, then mknod of any node, and read/write of null, zero, full, random, urandom, tty,
/// console, ptmx, the pts and tun. Without it CAP_MKNOD would let a container make and open the
/// host's disks.
pub(super) const DEVICE_RULES: [(&str, &str); 13] = [
    ("devices.deny", "a *:* rwm"),
    ("devices.allow", "c *:* m"),
    ("devices.allow", "b *:* m"),
    ("devices.allow", "c 1:3 rwm"),
    ("devices.allow", "c 1:5 rwm"),
    ("devices.allow", "c 1:7 rwm"),
    ("devices.allow", "c 1:8 rwm"),
    ("devices.allow", "c 1:9 rwm"),
    ("devices.allow", "c 5:0 rwm"),
    ("devices.allow", "c 5:1 rwm"),
    ("devices.allow", "c 5:2 rwm"),
    ("devices.allow", "c 136:* rwm"),
    ("devices.allow", "c 10:200 rwm"),
];

/// A container's cgroup in the v1 hierarchies.
pub(super) struct V1Cgroup {
    /// `berth-<id>`, relative to each controller's mount point.
    relative: PathBuf,
    /// Each mounted controller libcgroups knows and its `<mount>/berth-<id>` (co-mounted
    /// controllers share a directory), by controller name.
    dirs: Vec<(&'static str, PathBuf)>,
    /// `<unified mount>/berth-<id>` on a hybrid host: a cgroup in the controller-less v2 tree
    /// that only carries the device program, so the device policy holds twice (the v1
    /// controller and the BPF program) and the v2 enforcement is exercised on such hosts too.
    unified: Option<PathBuf>,
    /// libcgroups' manager, built on first use.
    manager: OnceLock<Manager>,
}

impl std::fmt::Debug for V1Cgroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V1Cgroup").field("relative", &self.relative).field("dirs", &self.dirs).finish_non_exhaustive()
    }
}

impl V1Cgroup {
    /// The cgroup's paths in every mounted controller, whether or not they exist yet.
    fn locate(id: &str) -> Result<Self, CgroupError> {
        let relative = PathBuf::from(v1_name(id));
        let dirs = host_controller_mounts()?.iter().map(|(name, mount)| (*name, mount.join(&relative))).collect();
        let unified = host_unified_mount()?.map(|mount| mount.join(&relative));
        Ok(Self { relative, dirs, unified, manager: OnceLock::new() })
    }

    /// Creates the directories and applies the limits; undoes the directories when a limit fails.
    pub(super) fn create(id: &str, resources: &Resources) -> Result<Self, CgroupError> {
        let cgroup = Self::locate(id)?;
        let mut plan = resources::plan(resources)?;
        resources::check_available(&plan.needs, |name| cgroup.dir(name).is_some())?;
        // The root memory cgroup has the memsw files exactly when swap accounting is on.
        let memory_root = cgroup.dir("memory").and_then(Path::parent);
        if plan.sets_swap() && !memory_root.is_some_and(|root| root.join(MEMSW_LIMIT).exists()) {
            plan.drop_swap();
        }
        if let Err(e) =
            cgroup.make_dirs().and_then(|()| cgroup.limit_devices()).and_then(|()| cgroup.apply(&plan.linux))
        {
            let _ = cgroup.remove();
            return Err(e);
        }
        Ok(cgroup)
    }

    /// The cgroup, when its directory exists in at least one controller.
    pub(super) fn open(id: &str) -> Result<Option<Self>, CgroupError> {
        let cgroup = Self::locate(id)?;
        let exists = cgroup.distinct_dirs().any(Path::exists);
        Ok(exists.then_some(cgroup))
    }

    /// The cgroup's directory in `controller`, when that controller is mounted.
    fn dir(&self, controller: &str) -> Option<&Path> {
        self.dirs.iter().find(|(c, _)| *c == controller).map(|(_, d)| d.as_path())
    }

    /// Each directory once, even where controllers are co-mounted (`cpu,cpuacct`), then the
    /// unified tree's.
    pub(super) fn distinct_dirs(&self) -> impl Iterator<Item = &Path> {
        self.dirs
            .iter()
            .enumerate()
            .filter(|(i, (_, d))| !self.dirs[..*i].iter().any(|(_, earlier)| earlier == d))
            .map(|(_, (_, d))| d.as_path())
            .chain(self.unified.as_deref())
    }

    /// mkdir `berth-<id>` in every hierarchy, the cpuset filled.
    fn make_dirs(&self) -> Result<(), CgroupError> {
        for dir in self.distinct_dirs() {
            super::mkdir(dir)?;
            if self.dir("cpuset") == Some(dir) {
                fill_cpuset(dir)?;
            }
        }
        Ok(())
    }

    fn manager(&self) -> Result<&Manager, CgroupError> {
        if let Some(manager) = self.manager.get() {
            return Ok(manager);
        }
        let manager = Manager::new(&self.relative).map_err(|source| self.error(source))?;
        Ok(self.manager.get_or_init(|| manager))
    }

    fn error(&self, source: libcgroups::v1::manager::V1ManagerError) -> CgroupError {
        CgroupError::V1 { path: self.relative.clone(), source }
    }

    /// Writes [`DEVICE_RULES`], when the devices controller is mounted, and attaches the same
    /// rules as a BPF program to the unified tree's cgroup, when there is one.
    fn limit_devices(&self) -> Result<(), CgroupError> {
        if let Some(dir) = &self.unified {
            super::attach_device_program(dir)?;
        }
        let Some(dir) = self.dir("devices") else { return Ok(()) };
        DEVICE_RULES.iter().try_for_each(|(file, rule)| write_file(&dir.join(file), rule))
    }

    /// Applies the limits through libcgroups; nothing to do (and no manager to build) when
    /// there are none.
    fn apply(&self, linux: &LinuxResources) -> Result<(), CgroupError> {
        if *linux == LinuxResources::default() {
            return Ok(());
        }
        let opt =
            ControllerOpt { resources: linux, disable_oom_killer: false, oom_score_adj: None, freezer_state: None };
        self.manager()?.apply(&opt).map_err(|source| self.error(source))
    }

    pub(super) fn freeze(&self, frozen: bool) -> Result<(), CgroupError> {
        if self.dir("freezer").is_none() {
            return Err(CgroupError::ControllerUnavailable {
                controller: "freezer",
                key: if frozen { "pause" } else { "unpause" },
            });
        }
        let state = if frozen { FreezerState::Frozen } else { FreezerState::Thawed };
        self.manager()?.freeze(state).map_err(|source| self.error(source))
    }

    pub(super) fn is_frozen(&self) -> Result<bool, CgroupError> {
        let Some(dir) = self.dir("freezer") else { return Ok(false) };
        let path = dir.join("freezer.state");
        let state = std::fs::read_to_string(&path).map_err(|source| CgroupError::Io {
            op: "read",
            path: path.clone(),
            source,
        })?;
        Ok(state.trim() == "FROZEN")
    }

    /// One round of killing: the first freezes around it so no process forks in between; every
    /// round thaws, since a frozen process only dies once thawed.
    pub(super) fn kill_round(&self, pids: &[i32], first: bool) {
        let manager = match self.dir("freezer") {
            Some(_) => self.manager().ok(),
            None => None,
        };
        if first && let Some(m) = &manager {
            let _ = m.freeze(FreezerState::Frozen);
        }
        kill_each(pids);
        if let Some(m) = &manager {
            let _ = m.freeze(FreezerState::Thawed);
        }
    }

    pub(super) fn stats(&self) -> Result<CgroupStats, CgroupError> {
        let oom_kills = self.oom_kills()?;
        match self.manager()?.stats() {
            Ok(s) => Ok(stats::from_v1(&s, oom_kills)),
            // libcgroups reads every file of every controller (memsw, kmem, blkio ...) and fails
            // when one is missing; berth's figures come from a few that are always there.
            Err(_) => stats::read_v1(|c| self.dir(c), oom_kills),
        }
    }

    pub(super) fn oom_kills(&self) -> Result<u64, CgroupError> {
        let Some(dir) = self.dir("memory") else { return Ok(0) };
        let path = dir.join("memory.oom_control");
        match read_optional(&path)? {
            Some(text) => Ok(super::keyed_value(&path, &text, "oom_kill")?.unwrap_or(0)),
            None if dir.exists() => Ok(0),
            None => Err(CgroupError::Io { op: "read", path, source: std::io::ErrorKind::NotFound.into() }),
        }
    }

    /// Removes the directories of a cgroup the caller emptied.
    pub(super) fn remove(&self) -> Result<(), CgroupError> {
        self.distinct_dirs().try_for_each(remove_empty)
    }
}

/// The host's [`controller_mounts`], worked out once per process.
pub(super) fn host_controller_mounts() -> Result<&'static [(&'static str, PathBuf)], CgroupError> {
    static FOUND: OnceLock<Vec<(&'static str, PathBuf)>> = OnceLock::new();
    if let Some(found) = FOUND.get() {
        return Ok(found);
    }
    let mounts = host_cgroup_mounts().map_err(|kind| CgroupError::Io {
        op: "read",
        path: MOUNTINFO.into(),
        source: kind.into(),
    })?;
    Ok(FOUND.get_or_init(|| controller_mounts(mounts)))
}

/// The mount point of the host's unified (v2) tree on a hybrid host, found once per process.
fn host_unified_mount() -> Result<Option<&'static Path>, CgroupError> {
    let mounts = host_cgroup_mounts().map_err(|kind| CgroupError::Io {
        op: "read",
        path: MOUNTINFO.into(),
        source: kind.into(),
    })?;
    Ok(mounts.iter().find(|m| m.fstype == "cgroup2").map(|m| m.point.as_path()))
}

/// (controller, mount point) of each controller in [`CONTROLLERS`] that a `cgroup` mount in
/// `mounts` carries, sorted by controller.
pub(super) fn controller_mounts(mounts: &[CgroupMount]) -> Vec<(&'static str, PathBuf)> {
    let mut found: Vec<(&'static str, PathBuf)> = Vec::new();
    for mount in mounts.iter().filter(|m| m.fstype == "cgroup") {
        for option in mount.options.split(',') {
            if let Some(name) = CONTROLLERS.iter().find(|c| **c == option)
                && !found.iter().any(|(c, _)| c == name)
            {
                found.push((*name, mount.point.clone()));
            }
        }
    }
    found.sort_by_key(|(name, _)| *name);
    found
}

/// rmdir of a cgroup whose processes were killed: the kernel may still be finishing the last
/// exit (EBUSY), so a few short retries; a directory already gone is fine.
fn remove_empty(dir: &Path) -> Result<(), CgroupError> {
    let mut pause = std::time::Duration::from_millis(1);
    for attempt in 0.. {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < 8 => {
                std::thread::sleep(pause);
                pause *= 2;
            }
            Err(source) => return Err(CgroupError::Io { op: "remove", path: dir.to_path_buf(), source }),
        }
    }
    Ok(())
}

/// Copies the parent's CPUs and memory nodes into an empty cpuset cgroup, as the kernel refuses
/// processes (ENOSPC) in a cpuset without them.
/// (A parent with `cgroup.clone_children` set fills them itself, with the same values.)
fn fill_cpuset(dir: &Path) -> Result<(), CgroupError> {
    let Some(parent) = dir.parent() else { return Ok(()) };
    for file in CPUSET_FILES {
        let path = dir.join(file);
        let from = parent.join(file);
        let value = std::fs::read_to_string(&from).map_err(|source| CgroupError::Io {
            op: "read",
            path: from.clone(),
            source,
        })?;
        write_file(&path, value.trim())?;
    }
    Ok(())
}
