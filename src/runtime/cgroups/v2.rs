//! The v2 side: `<root>/berth/<id>` in the unified tree, limits, freezing and statistics through
//! libcgroups' v2 manager; controller delegation, `cgroup.kill` and the OOM counter here.

use std::path::{Path, PathBuf};

use libcgroups::common::{CgroupManager, ControllerOpt, FreezerState};
use libcgroups::v2::manager::{Manager, V2ManagerError};
use libcgroups::v2::util::V2UtilError;

use super::resources;
use super::stats::{self, CgroupStats};
use super::{BERTH_DIR, CgroupError, kill_each, make_leaf, read_optional, remove_parent_if_empty, write_file};
use crate::runtime::spec::Resources;

/// A container's cgroup in a unified tree.
#[derive(Debug)]
pub(super) struct V2Cgroup {
    /// The tree's mount point.
    root: PathBuf,
    /// `berth/<id>`.
    relative: PathBuf,
    /// `<root>/berth/<id>`.
    dir: PathBuf,
}

impl V2Cgroup {
    fn locate(root: &Path, id: &str) -> Self {
        let relative = Path::new(BERTH_DIR).join(id);
        Self { root: root.to_path_buf(), dir: root.join(&relative), relative }
    }

    /// Delegates the controllers down to `berth`, creates the directory and applies the limits;
    /// undoes the directory when a limit fails.
    pub(super) fn create(root: &Path, id: &str, resources: &Resources) -> Result<Self, CgroupError> {
        let cgroup = Self::locate(root, id);
        let available: Vec<String> = match libcgroups::v2::util::get_available_controllers(root) {
            Ok(list) => list.iter().map(ToString::to_string).collect(),
            Err(V2UtilError::DoesNotExist(_)) => return Err(CgroupError::NotCgroup2 { root: root.to_path_buf() }),
            Err(e) => {
                let path = root.join("cgroup.controllers");
                return Err(CgroupError::Io { op: "read", path, source: std::io::Error::other(e) });
            }
        };
        let mut plan = resources::plan(resources)?;
        // A controller the tree above does not hand down (not in the root's cgroup.controllers)
        // cannot be had from here: its limits are dropped, each with a warning, as podman does.
        let missing = resources::missing(&plan.needs, |name| available.iter().any(|a| a == name));
        for need in &missing {
            plan.drop_controller(need.controller);
        }
        super::undelegated::warn(root, &missing);
        let required: Vec<&str> = plan.needs.iter().map(|n| n.controller).collect();

        let parent = root.join(BERTH_DIR);
        // Processes only ever live in the leaves, so `berth` may hand controllers down.
        make_leaf(&parent, &cgroup.dir, || {
            enable_controllers(root, &available, &required)?;
            enable_controllers(&parent, &available, &required)
        })?;
        // memory.swap.max exists only with swap accounting.
        if plan.sets_swap() && !cgroup.dir.join("memory.swap.max").exists() {
            plan.drop_swap();
        }
        let opt = ControllerOpt {
            resources: &plan.linux,
            disable_oom_killer: false,
            oom_score_adj: None,
            freezer_state: None,
        };
        let applied = cgroup
            .manager()
            .and_then(|m| m.apply(&opt).map_err(|source| cgroup.error(source)))
            .and_then(|()| super::attach_device_program(&cgroup.dir));
        if let Err(e) = applied {
            let _ = std::fs::remove_dir(&cgroup.dir);
            remove_parent_if_empty(&parent);
            return Err(e);
        }
        Ok(cgroup)
    }

    /// The cgroup, when its directory exists.
    pub(super) fn open(root: &Path, id: &str) -> Option<Self> {
        let cgroup = Self::locate(root, id);
        cgroup.dir.is_dir().then_some(cgroup)
    }

    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    fn manager(&self) -> Result<Manager, CgroupError> {
        Manager::new(self.root.clone(), self.relative.clone()).map_err(|source| self.error(source))
    }

    fn error(&self, source: V2ManagerError) -> CgroupError {
        CgroupError::V2 { path: self.dir.clone(), source }
    }

    pub(super) fn freeze(&self, frozen: bool) -> Result<(), CgroupError> {
        let state = if frozen { FreezerState::Frozen } else { FreezerState::Thawed };
        self.manager()?.freeze(state).map_err(|source| self.error(source))
    }

    pub(super) fn is_frozen(&self) -> Result<bool, CgroupError> {
        let path = self.dir.join("cgroup.events");
        let text = std::fs::read_to_string(&path).map_err(|source| CgroupError::Io {
            op: "read",
            path: path.clone(),
            source,
        })?;
        Ok(super::keyed_value(&path, &text, "frozen")? == Some(1))
    }

    /// One round of killing: `cgroup.kill` (Linux 5.14+) kills the whole subtree atomically,
    /// frozen or not; older kernels get a SIGKILL per listed pid.
    pub(super) fn kill_round(&self, pids: &[i32]) -> Result<(), CgroupError> {
        let kill_file = self.dir.join("cgroup.kill");
        if !kill_file.exists() {
            kill_each(pids);
            return Ok(());
        }
        match write_file(&kill_file, "1") {
            // Removed since the check: nothing left to kill.
            Err(CgroupError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    pub(super) fn stats(&self) -> Result<CgroupStats, CgroupError> {
        let oom_kills = self.oom_kills()?;
        match self.manager()?.stats() {
            Ok(s) => Ok(stats::from_v2(&s, oom_kills)),
            // libcgroups needs every controller enabled and the PSI files, which a kernel booted
            // with PSI off does not show; berth's figures come from the files that are there.
            Err(_) => stats::read_v2(&self.dir, oom_kills),
        }
    }

    pub(super) fn oom_kills(&self) -> Result<u64, CgroupError> {
        let path = self.dir.join("memory.events");
        match read_optional(&path)? {
            Some(text) => Ok(super::keyed_value(&path, &text, "oom_kill")?.unwrap_or(0)),
            None if self.dir.exists() => Ok(0),
            None => Err(CgroupError::Io { op: "read", path, source: std::io::ErrorKind::NotFound.into() }),
        }
    }

    /// Removes the directory (libcgroups kills any straggler first), then `berth` if no other
    /// container uses it.
    pub(super) fn remove(&self) -> Result<(), CgroupError> {
        self.manager()?.remove().map_err(|source| self.error(source))?;
        self.remove_parent_if_empty();
        Ok(())
    }

    /// Removes `berth/` once no container's cgroup is left in it.
    pub(super) fn remove_parent_if_empty(&self) {
        remove_parent_if_empty(&self.root.join(BERTH_DIR));
    }
}

/// Enables the available controllers in `dir`'s `cgroup.subtree_control`, one at a time as the
/// kernel rejects a whole write for one bad name. A controller no limit needs may fail (a
/// threaded subtree, a busy root): statistics then come from fewer files.
fn enable_controllers(dir: &Path, available: &[String], required: &[&str]) -> Result<(), CgroupError> {
    let path = dir.join("cgroup.subtree_control");
    let enabled = std::fs::read_to_string(&path).unwrap_or_default();
    for controller in available {
        if enabled.split_ascii_whitespace().any(|c| c == controller) {
            continue;
        }
        if let Err(e) = write_file(&path, &format!("+{controller}"))
            && required.contains(&controller.as_str())
        {
            return Err(e);
        }
    }
    Ok(())
}
