//! The v1 side: `berth/<id>` in each controller hierarchy, limits and freezing through
//! libcgroups' v1 manager.

use std::path::{Path, PathBuf};

use libcgroups::common::{CgroupManager, ControllerOpt, FreezerState};
use libcgroups::v1::ControllerType;
use libcgroups::v1::manager::Manager;
use oci_spec::runtime::LinuxResources;

use super::resources;
use super::stats::{self, CgroupStats};
use super::{BERTH_DIR, CgroupError, kill_each, make_leaf, read_optional, remove_parent_if_empty, write_file};
use crate::runtime::spec::Resources;

/// The files a new cpuset cgroup starts with empty; a process cannot join until they are filled.
const CPUSET_FILES: [&str; 2] = ["cpuset.cpus", "cpuset.mems"];

/// The v1 memsw file; absent when the kernel does no swap accounting.
const MEMSW_LIMIT: &str = "memory.memsw.limit_in_bytes";

/// A container's cgroup in the v1 hierarchies.
#[derive(Debug)]
pub(super) struct V1Cgroup {
    /// `berth/<id>`, relative to each controller's mount point.
    relative: PathBuf,
    /// Each mounted controller libcgroups knows and its `<mount>/berth/<id>` (co-mounted
    /// controllers share a directory).
    dirs: Vec<(ControllerType, PathBuf)>,
}

impl V1Cgroup {
    /// The cgroup's paths in every mounted controller, whether or not they exist yet.
    fn locate(id: &str) -> Result<Self, CgroupError> {
        let relative = Path::new(BERTH_DIR).join(id);
        let mounts =
            libcgroups::v1::util::list_supported_mount_points().map_err(|source| CgroupError::Mounts { source })?;
        let mut dirs: Vec<(ControllerType, PathBuf)> =
            mounts.into_iter().map(|(controller, mount)| (controller, mount.join(&relative))).collect();
        dirs.sort_by_key(|(controller, _)| controller.to_string());
        Ok(Self { relative, dirs })
    }

    /// Creates the directories and applies the limits; undoes the directories when a limit fails.
    pub(super) fn create(id: &str, resources: &Resources) -> Result<Self, CgroupError> {
        let cgroup = Self::locate(id)?;
        let mut plan = resources::plan(resources)?;
        resources::check_available(&plan.needs, |name| cgroup.dir(name).is_some())?;
        // The root memory cgroup has the memsw files exactly when swap accounting is on.
        let memory_root = cgroup.dir("memory").and_then(|d| d.ancestors().nth(2));
        if plan.sets_swap() && !memory_root.is_some_and(|root| root.join(MEMSW_LIMIT).exists()) {
            plan.drop_swap();
        }
        if let Err(e) = cgroup.make_dirs().and_then(|()| cgroup.apply(&plan.linux)) {
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
        self.dirs.iter().find(|(c, _)| c.to_string() == controller).map(|(_, d)| d.as_path())
    }

    /// Each directory once, even where controllers are co-mounted (`cpu,cpuacct`).
    pub(super) fn distinct_dirs(&self) -> impl Iterator<Item = &Path> {
        self.dirs
            .iter()
            .enumerate()
            .filter(|(i, (_, d))| !self.dirs[..*i].iter().any(|(_, earlier)| earlier == d))
            .map(|(_, (_, d))| d.as_path())
    }

    /// mkdir `berth` and `berth/<id>` in every hierarchy, cpusets filled.
    fn make_dirs(&self) -> Result<(), CgroupError> {
        for dir in self.distinct_dirs() {
            let parent = dir.parent().unwrap_or(dir);
            if self.dir("cpuset") == Some(dir) {
                make_leaf(parent, dir, || fill_cpuset(parent))?;
                fill_cpuset(dir)?;
            } else {
                make_leaf(parent, dir, || Ok(()))?;
            }
        }
        Ok(())
    }

    fn manager(&self) -> Result<Manager, CgroupError> {
        Manager::new(&self.relative).map_err(|source| self.error(source))
    }

    fn error(&self, source: libcgroups::v1::manager::V1ManagerError) -> CgroupError {
        CgroupError::V1 { path: self.relative.clone(), source }
    }

    fn apply(&self, linux: &LinuxResources) -> Result<(), CgroupError> {
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

    /// Removes the directories (libcgroups kills any straggler first), then each `berth`
    /// parent that no other container uses.
    pub(super) fn remove(&self) -> Result<(), CgroupError> {
        self.manager()?.remove().map_err(|source| self.error(source))?;
        for dir in self.distinct_dirs() {
            if let Some(parent) = dir.parent() {
                remove_parent_if_empty(parent);
            }
        }
        Ok(())
    }
}

/// Copies the parent's CPUs and memory nodes into an empty cpuset cgroup, as the kernel refuses
/// processes (ENOSPC) in a cpuset without them.
fn fill_cpuset(dir: &Path) -> Result<(), CgroupError> {
    let Some(parent) = dir.parent() else { return Ok(()) };
    for file in CPUSET_FILES {
        let path = dir.join(file);
        let current = std::fs::read_to_string(&path).map_err(|source| CgroupError::Io {
            op: "read",
            path: path.clone(),
            source,
        })?;
        if !current.trim().is_empty() {
            continue;
        }
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
