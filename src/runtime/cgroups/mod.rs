//! A container's cgroup: `berth-<id>` at each v1 hierarchy's root, `berth/<id>` in a v2 tree,
//! made and limited through youki's
//! `libcgroups`, plus what that crate leaves out (making the directories before any process
//! exists, OOM kill counters, `cgroup.kill`, waiting until a cgroup is empty, a fallback when its
//! all-or-nothing statistics cannot be read).
//!
//! Which hierarchy is used is decided at run time: a pure cgroup v2 host uses the unified tree;
//! v1 and hybrid hosts use the v1 controllers (a hybrid host's unified tree has no controllers).
//! On v1 the cgroup exists in every controller `libcgroups` knows and the host mounts, so that
//! its statistics and limits find the directories they read.

mod birth;
pub mod devices;
mod mounts;
mod prime;
mod resources;
mod stats;
mod undelegated;
mod v1;
mod v2;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_devices;
#[cfg(test)]
mod tests_live;

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use libcgroups::common::{CgroupSetup, GetCgroupSetupError};
use libcgroups::v1::manager::V1ManagerError;
use libcgroups::v2::manager::V2ManagerError;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub use birth::{NO_CLONE_INTO_CGROUP_ENV, clone_into_cgroup_wanted, kernel_has_clone_into_cgroup};
pub use mounts::{CgroupMount, host_cgroup_mounts};
pub use prime::prime_attach_lock;
pub use stats::CgroupStats;
pub use undelegated::undelegated_limits;

use crate::runtime::spec::Resources;

/// Directory under a v2 tree's root that holds every berth container's cgroup (the controllers
/// are delegated to it through its `cgroup.subtree_control`).
pub const BERTH_DIR: &str = "berth";

/// A container's cgroup directory at the root of each v1 hierarchy.
pub fn v1_name(id: &str) -> String {
    format!("{BERTH_DIR}-{id}")
}

/// Where the host mounts its cgroup hierarchies.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// How long [`ContainerCgroup::kill_all`] waits for the cgroup to empty before giving up.
const KILL_DEADLINE: Duration = Duration::from_secs(10);

/// The host's cgroup layout; decides which hierarchy a container's limits go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupMode {
    /// Only v1 controller hierarchies.
    V1,
    /// Only the unified (v2) hierarchy at `/sys/fs/cgroup`.
    V2,
    /// v1 controllers plus an empty unified tree at `/sys/fs/cgroup/unified`; berth uses the v1
    /// controllers since the unified tree cannot limit anything.
    Hybrid,
}

/// Tells the host's cgroup layout from the filesystem types under `/sys/fs/cgroup` (statfs).
pub fn detect() -> Result<CgroupMode, CgroupError> {
    let setup = libcgroups::common::get_cgroup_setup_with_root(Path::new(CGROUP_ROOT))
        .map_err(|source| CgroupError::Detect { path: PathBuf::from(CGROUP_ROOT), source })?;
    Ok(match setup {
        CgroupSetup::Legacy => CgroupMode::V1,
        CgroupSetup::Unified => CgroupMode::V2,
        CgroupSetup::Hybrid => CgroupMode::Hybrid,
    })
}

/// Everything that can go wrong; each message names the cgroup directory or the file.
#[derive(thiserror::Error, Debug)]
pub enum CgroupError {
    /// The cgroup layout under `/sys/fs/cgroup` is not one berth knows.
    #[error("cannot tell the cgroup layout under {}: {source}", path.display())]
    Detect {
        /// The cgroup mount root.
        path: PathBuf,
        /// Why.
        source: GetCgroupSetupError,
    },
    /// The container id cannot be a cgroup directory name.
    #[error("container id {id:?} cannot name a cgroup: {reason}")]
    InvalidId {
        /// The id.
        id: String,
        /// Why not.
        reason: &'static str,
    },
    /// A limit needs a controller the host does not offer.
    #[error("{controller}: controller not available (needed by {key})")]
    ControllerUnavailable {
        /// The controller (`memory`, `cpu`, `cpuset`, `pids`, `freezer`).
        controller: &'static str,
        /// The [`Resources`] field or the operation that needs it.
        key: &'static str,
    },
    /// A limit's value cannot be written.
    #[error("{key}: {value} {reason}")]
    InvalidValue {
        /// The [`Resources`] field.
        key: &'static str,
        /// Its value, as given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The root given for a v2 tree is not one.
    #[error("{} is not a cgroup v2 hierarchy: {} is missing", root.display(), root.join("cgroup.controllers").display())]
    NotCgroup2 {
        /// The supposed mount point.
        root: PathBuf,
    },
    /// A cgroup file or directory operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done (`create`, `read`, `write`, `remove`).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// `libcgroups` failed on a v1 cgroup.
    #[error("v1 cgroup {} (in each controller): {source}", path.display())]
    V1 {
        /// The cgroup's path relative to each controller's mount point.
        path: PathBuf,
        /// Why.
        source: V1ManagerError,
    },
    /// `libcgroups` failed on a v2 cgroup.
    #[error("cgroup {}: {source}", path.display())]
    V2 {
        /// The cgroup directory.
        path: PathBuf,
        /// Why.
        source: V2ManagerError,
    },
    /// A cgroup file did not have the shape the kernel documents.
    #[error("{}: unexpected content {content:?}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The offending text.
        content: String,
    },
    /// Processes survived SIGKILL for 10 seconds (stuck in the kernel).
    #[error("cgroup {}: processes {pids:?} still alive {}s after SIGKILL", path.display(), KILL_DEADLINE.as_secs())]
    KillTimeout {
        /// The cgroup directory.
        path: PathBuf,
        /// What is still there.
        pids: Vec<i32>,
    },
}

/// One container's cgroup, on whichever hierarchy the host offers. Holds only paths: any berth
/// process can [`open`](Self::open) the same cgroup again.
#[derive(Debug)]
pub struct ContainerCgroup {
    id: String,
    tree: Tree,
}

#[derive(Debug)]
enum Tree {
    V1(v1::V1Cgroup),
    V2(v2::V2Cgroup),
}

impl ContainerCgroup {
    /// Creates the cgroup `berth/<id>` (in every v1 controller, or in the v2 tree) and applies
    /// limits, before any process is in it, so the container's first instruction already runs
    /// limited.
    pub fn create(id: &str, resources: &Resources) -> Result<Self, CgroupError> {
        check_id(id)?;
        let tree = match detect()? {
            CgroupMode::V2 => Tree::V2(v2::V2Cgroup::create(Path::new(CGROUP_ROOT), id, resources)?),
            CgroupMode::V1 | CgroupMode::Hybrid => Tree::V1(v1::V1Cgroup::create(id, resources)?),
        };
        Ok(Self { id: id.to_owned(), tree })
    }

    /// [`create`](Self::create) in the v2 tree mounted at `root`: a hybrid host's
    /// `/sys/fs/cgroup/unified`, or a directory laid out like a cgroup2 mount in tests.
    pub fn create_v2_at(root: &Path, id: &str, resources: &Resources) -> Result<Self, CgroupError> {
        check_id(id)?;
        Ok(Self { id: id.to_owned(), tree: Tree::V2(v2::V2Cgroup::create(root, id, resources)?) })
    }

    /// Finds an existing container's cgroup, for another berth process (exec, stats, down);
    /// `None` when it does not exist in any hierarchy.
    pub fn open(id: &str) -> Result<Option<Self>, CgroupError> {
        check_id(id)?;
        let tree = match detect()? {
            CgroupMode::V2 => v2::V2Cgroup::open(Path::new(CGROUP_ROOT), id).map(Tree::V2),
            CgroupMode::V1 | CgroupMode::Hybrid => v1::V1Cgroup::open(id)?.map(Tree::V1),
        };
        Ok(tree.map(|tree| Self { id: id.to_owned(), tree }))
    }

    /// [`open`](Self::open) in the v2 tree mounted at `root`.
    pub fn open_v2_at(root: &Path, id: &str) -> Result<Option<Self>, CgroupError> {
        check_id(id)?;
        Ok(v2::V2Cgroup::open(root, id).map(|c| Self { id: id.to_owned(), tree: Tree::V2(c) }))
    }

    /// The container id the cgroup is named after.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The hierarchy the cgroup lives in ([`CgroupMode::V1`] also on hybrid hosts).
    pub fn mode(&self) -> CgroupMode {
        match self.tree {
            Tree::V1(_) => CgroupMode::V1,
            Tree::V2(_) => CgroupMode::V2,
        }
    }

    /// The cgroup's directories: one per distinct v1 controller mount, or the one v2 directory.
    pub fn dirs(&self) -> Vec<PathBuf> {
        match &self.tree {
            Tree::V1(c) => c.distinct_dirs().map(Path::to_path_buf).collect(),
            Tree::V2(c) => vec![c.dir().to_path_buf()],
        }
    }

    /// Moves a process (all its threads) into the cgroup, in every hierarchy. Fails rather than
    /// re-creating a cgroup that was removed meanwhile.
    pub fn add_process(&self, pid: i32) -> Result<(), CgroupError> {
        for file in self.procs_files() {
            write_file(&file, &pid.to_string())?;
        }
        Ok(())
    }

    /// The `cgroup.procs` files a process must be written to (one per distinct v1 controller
    /// mount, one on v2), for a spawner that moves its child itself, e.g. between fork and exec.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs().into_iter().map(|d| d.join("cgroup.procs")).collect()
    }

    /// Pauses every process; returns once the kernel reports the cgroup frozen.
    pub fn freeze(&self) -> Result<(), CgroupError> {
        match &self.tree {
            Tree::V1(c) => c.freeze(true),
            Tree::V2(c) => c.freeze(true),
        }
    }

    /// Resumes a paused cgroup.
    pub fn thaw(&self) -> Result<(), CgroupError> {
        match &self.tree {
            Tree::V1(c) => c.freeze(false),
            Tree::V2(c) => c.freeze(false),
        }
    }

    /// Whether the cgroup is paused (v1 `freezer.state` FROZEN, v2 `cgroup.events` frozen 1);
    /// a cgroup still freezing is not.
    pub fn is_frozen(&self) -> Result<bool, CgroupError> {
        match &self.tree {
            Tree::V1(c) => c.is_frozen(),
            Tree::V2(c) => c.is_frozen(),
        }
    }

    /// SIGKILLs every process and returns once the cgroup is empty: `cgroup.kill` on v2 when the
    /// kernel has it, else each pid from `cgroup.procs` in rounds until none is left (on v1 the
    /// first round runs frozen so nothing forks meanwhile, and a frozen cgroup is thawed so the
    /// kill lands). A cgroup that is already gone is empty.
    pub fn kill_all(&self) -> Result<(), CgroupError> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(2);
        let mut round = 0;
        loop {
            let pids = self.pids()?;
            if pids.is_empty() {
                return Ok(());
            }
            if start.elapsed() > KILL_DEADLINE {
                let path = self.dirs().into_iter().next().unwrap_or_default();
                return Err(CgroupError::KillTimeout { path, pids });
            }
            match &self.tree {
                Tree::V1(c) => c.kill_round(&pids, round == 0),
                Tree::V2(c) => c.kill_round(&pids)?,
            }
            round += 1;
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// The processes in the cgroup and its descendants, sorted; empty when the cgroup is gone.
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let mut pids = Vec::new();
        for dir in self.dirs() {
            pids.extend(pids_in(&dir)?);
        }
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    /// CPU, memory, pids and OOM figures for `berth stats` and `inspect`.
    pub fn stats(&self) -> Result<CgroupStats, CgroupError> {
        match &self.tree {
            Tree::V1(c) => c.stats(),
            Tree::V2(c) => c.stats(),
        }
    }

    /// How many processes the kernel's OOM killer has killed in this cgroup so far (v1
    /// `memory.oom_control`, v2 `memory.events` `oom_kill`): tells an OOM kill from any other
    /// SIGKILL when the container's process dies. 0 without a memory controller.
    pub fn oom_kills(&self) -> Result<u64, CgroupError> {
        match &self.tree {
            Tree::V1(c) => c.oom_kills(),
            Tree::V2(c) => c.oom_kills(),
        }
    }

    /// Kills what is left and removes the cgroup's directories (nested ones first), then the
    /// `berth` parent of a v2 cgroup when no other container is in it. Idempotent: a cgroup
    /// already gone is fine.
    pub fn remove(&self) -> Result<(), CgroupError> {
        if self.remove_if_idle() {
            return Ok(());
        }
        self.kill_all()?;
        for dir in self.dirs() {
            remove_descendants(&dir)?;
        }
        match &self.tree {
            Tree::V1(c) => c.remove(),
            Tree::V2(c) => c.remove(),
        }
    }
}

impl ContainerCgroup {
    /// The usual case: the container's PID namespace ended with its PID 1, so nothing is left
    /// and plain rmdirs succeed, without reading `cgroup.procs` and listing the directory in
    /// every hierarchy first. The kernel refuses (EBUSY) a directory that still has a process
    /// or a nested cgroup; since every process is in every v1 hierarchy, the first rmdir fails
    /// before anything is removed unless only nested cgroups are left. `false` when anything
    /// is left to the full removal.
    fn remove_if_idle(&self) -> bool {
        for dir in self.dirs() {
            match std::fs::remove_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(_) => return false,
            }
        }
        if let Tree::V2(c) = &self.tree {
            c.remove_parent_if_empty();
        }
        true
    }
}

/// Docker's device policy (the v1 rules) as parsed rules, for the BPF program.
pub fn default_device_rules() -> Vec<devices::DeviceRule> {
    v1::DEVICE_RULES
        .iter()
        .filter_map(|(file, text)| devices::DeviceRule::parse(*file == "devices.allow", text).ok())
        .collect()
}

/// Loads the device program and attaches it to the v2 cgroup `dir`: cgroup v2 has no devices
/// controller, so this program is the device policy there.
/// A directory that is not on a cgroup2 file system (a tree laid out like one in unit tests)
/// has no processes to guard.
fn attach_device_program(dir: &Path) -> Result<(), CgroupError> {
    let on_cgroup2 =
        nix::sys::statfs::statfs(dir).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC);
    if !on_cgroup2 {
        return Ok(());
    }
    // Loaded once per process and attached to every container's cgroup: the verifier's load
    // is about 0.14 ms, more than the attach. The descriptor is close-on-exec, and a cgroup
    // holds its own reference, so a removed cgroup releases only its attachment.
    static PROGRAM: std::sync::OnceLock<std::os::fd::OwnedFd> = std::sync::OnceLock::new();
    let error = |source| CgroupError::Io { op: "attach the device program to", path: dir.to_path_buf(), source };
    let program = match PROGRAM.get() {
        Some(program) => program,
        None => {
            let loaded = devices::load(&devices::program(&default_device_rules())).map_err(error)?;
            PROGRAM.get_or_init(|| loaded)
        }
    };
    devices::attach(program, dir).map_err(error)
}

/// Rejects ids that are not one plain path component: they would escape `berth/`.
fn check_id(id: &str) -> Result<(), CgroupError> {
    let reason = if id.is_empty() {
        "it is empty"
    } else if id == "." || id == ".." {
        "it is a relative directory name"
    } else if id.len() > 200 {
        "it is longer than 200 bytes"
    } else if !id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
        "only letters, digits, '-', '_' and '.' are allowed"
    } else {
        return Ok(());
    };
    Err(CgroupError::InvalidId { id: id.to_owned(), reason })
}

/// The pids in `dir` and below; a missing directory has none. (libcgroups' `get_all_pids`
/// stats every control file on the way, a hundred syscalls per container.)
fn pids_in(dir: &Path) -> Result<Vec<i32>, CgroupError> {
    let mut pids = Vec::new();
    collect_pids(dir, &mut pids)?;
    Ok(pids)
}

fn collect_pids(dir: &Path, pids: &mut Vec<i32>) -> Result<(), CgroupError> {
    let procs = dir.join("cgroup.procs");
    let Some(text) = read_optional(&procs)? else { return Ok(()) };
    for line in text.lines() {
        let pid =
            line.trim().parse().map_err(|_| CgroupError::Parse { path: procs.clone(), content: line.to_owned() })?;
        pids.push(pid);
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        // Removed between the two reads.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(CgroupError::Io { op: "read", path: dir.to_path_buf(), source }),
    };
    for entry in entries.flatten() {
        // cgroupfs reports each entry's type, so this costs no stat.
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            collect_pids(&entry.path(), pids)?;
        }
    }
    Ok(())
}

/// SIGKILLs each pid; one that already exited is not an error.
fn kill_each(pids: &[i32]) {
    for &pid in pids {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// Creates a directory; one that already exists is fine (a retried or concurrent create).
fn mkdir(path: &Path) -> Result<(), CgroupError> {
    match std::fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(CgroupError::Io { op: "create", path: path.to_path_buf(), source }),
    }
}

/// Makes `parent` (then readies it) and `dir` in it. Another berth process may remove the empty
/// parent at any moment (its last container went), so a vanished parent is made again.
fn make_leaf(parent: &Path, dir: &Path, ready_parent: impl Fn() -> Result<(), CgroupError>) -> Result<(), CgroupError> {
    let mut attempts = 0;
    loop {
        match mkdir(parent).and_then(|()| ready_parent()).and_then(|()| mkdir(dir)) {
            Err(e) if is_not_found(&e) && attempts < 5 => attempts += 1,
            other => return other,
        }
    }
}

/// Whether a file or directory was missing.
fn is_not_found(e: &CgroupError) -> bool {
    matches!(e, CgroupError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
}

/// Removes the sub-cgroups a container made inside its own (cgroupfs lets rmdir remove a
/// directory holding only control files), deepest first, so the cgroup itself can go.
fn remove_descendants(dir: &Path) -> Result<(), CgroupError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(CgroupError::Io { op: "read", path: dir.to_path_buf(), source }),
    };
    for entry in entries {
        let entry = entry.map_err(|source| CgroupError::Io { op: "read", path: dir.to_path_buf(), source })?;
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            let child = entry.path();
            remove_descendants(&child)?;
            match std::fs::remove_dir(&child) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(CgroupError::Io { op: "remove", path: child, source }),
            }
        }
    }
    Ok(())
}

/// Removes the `berth` parent once the last container's cgroup is gone; another container's
/// cgroup (ENOTEMPTY, EBUSY) or a concurrent removal (ENOENT) leaves it be.
fn remove_parent_if_empty(parent: &Path) {
    let _ = std::fs::remove_dir(parent);
}

/// Writes a cgroup control file, which must exist (the kernel makes them; nothing is created).
fn write_file(path: &Path, value: &str) -> Result<(), CgroupError> {
    use std::io::Write as _;
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|source| CgroupError::Io { op: "write", path: path.to_path_buf(), source })
}

/// Reads a cgroup file; `Ok(None)` when it does not exist (controller or feature absent).
fn read_optional(path: &Path) -> Result<Option<String>, CgroupError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CgroupError::Io { op: "read", path: path.to_path_buf(), source }),
    }
}

/// The value of `key` in a flat-keyed cgroup file (`key value` lines), if present.
fn keyed_value(path: &Path, text: &str, key: &str) -> Result<Option<u64>, CgroupError> {
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        if fields.next() == Some(key) {
            let value = fields.next().and_then(|v| v.parse().ok());
            return match value {
                Some(v) => Ok(Some(v)),
                None => Err(CgroupError::Parse { path: path.to_path_buf(), content: line.to_owned() }),
            };
        }
    }
    Ok(None)
}
