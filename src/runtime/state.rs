//! A container's record on disk, so any later berth process (exec, ps, down, the next run
//! after a crash) can find it, check whether it still runs, and clean up after it.
//!
//! Layout, under the state root: `containers/<id>/` holds `upper/` and `work/` (overlayfs), the
//! init layer's `hosts`, `hostname` and `resolv.conf`, the secrets and configs bound into the
//! container (`file-<n>`), `spec.json` and `state.json`. `mnt/` is
//! the one mount point every container's root is mounted on, each inside its own mount
//! namespace, so nothing leaks onto the host when a container dies. `spare/` keeps a few emptied
//! container directories for reuse (see `spare_dirs`).
//!
//! As few directories as possible: on ext4 mounted with `discard` (this VM's root) removing a
//! directory waits for a synchronous discard of its block.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::RuntimeError;
use super::spare_dirs;
use super::spec::{ContainerSpec, FileSource, MountKind};

/// A container's directories on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerDirs {
    /// `containers/<id>`.
    pub dir: PathBuf,
    /// The state root.
    state_root: PathBuf,
}

impl ContainerDirs {
    /// The directories of container `id` under `state_root`.
    pub fn new(state_root: &Path, id: &str) -> Self {
        ContainerDirs { dir: containers_dir(state_root).join(id), state_root: state_root.to_path_buf() }
    }

    fn spares(&self) -> PathBuf {
        self.state_root.join("spare")
    }

    /// overlayfs upper directory.
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }

    /// overlayfs work directory.
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }

    /// Mount point of the root filesystem, inside the container's mount namespace (`mnt`,
    /// shared by all containers).
    pub fn rootfs(&self) -> PathBuf {
        self.state_root.join("mnt")
    }

    /// The init layer shared by all containers (see `init_layer`).
    pub fn init_layer(&self) -> PathBuf {
        self.state_root.join("init-layer")
    }

    /// One of the container's own init files, mounted over the init layer's: `hosts`,
    /// `hostname` or `resolv.conf`.
    pub fn init_file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Whether the container ran before and kept its writable layer (see `Container::retire`).
    pub fn ran_before(&self) -> bool {
        self.upper().is_dir() && self.work().is_dir()
    }

    /// Creates the directories and writes the init layer's files. A container that ran before
    /// (see `Container::retire`) keeps its writable layer.
    pub fn create(&self, spec: &ContainerSpec) -> Result<(), RuntimeError> {
        let ran_before = self.ran_before();
        if !ran_before && !spare_dirs::take(&self.spares(), &self.dir) {
            crate::secure_fs::private_dir(&self.dir).map_err(|e| RuntimeError::io(&self.dir, e))?;
            for dir in [self.upper(), self.work()] {
                fs::create_dir(&dir).map_err(|e| RuntimeError::io(&dir, e))?;
            }
        }
        let init_layer = self.init_layer();
        super::init_layer::ensure(&init_layer).map_err(|e| RuntimeError::io(&init_layer, e))?;
        let mount_point = self.rootfs();
        match fs::create_dir(&mount_point) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                return Err(RuntimeError::io(&mount_point, e));
            }
            _ => {}
        }
        for (name, text) in
            [("hosts", &spec.etc.hosts), ("hostname", &spec.etc.hostname), ("resolv.conf", &spec.etc.resolv_conf)]
        {
            let path = self.init_file(name);
            fs::write(&path, text).map_err(|e| RuntimeError::io(&path, e))?;
        }
        for mount in &spec.mounts {
            if let MountKind::File { name, source, uid, gid, mode } = &mount.kind {
                self.write_file(name, source, *uid, *gid, *mode)?;
            }
        }
        write_record(&self.dir.join("spec.json"), &serde_json::to_vec(spec).unwrap_or_default(), !spec.rootfs.volatile)
    }

    /// Writes the secret or config `name` (see [`MountKind::File`]) in the container's
    /// directory, anew each time the container is created: a restart sees the file as it is
    /// now. A host file that cannot be read is an error naming it.
    fn write_file(&self, name: &str, source: &FileSource, uid: u32, gid: u32, mode: u32) -> Result<(), RuntimeError> {
        let write = |fill: &mut dyn FnMut(&mut fs::File) -> std::io::Result<()>| {
            crate::secure_fs::write_owned_at(&self.dir, name, uid, gid, mode, fill)
                .map_err(|e| RuntimeError::io(self.dir.join(name), e))
        };
        match source {
            FileSource::Host(host) => {
                let mut file = fs::File::open(host).map_err(|e| RuntimeError::io(host, e))?;
                let meta = file.metadata().map_err(|e| RuntimeError::io(host, e))?;
                if !meta.is_file() {
                    return Err(RuntimeError::io(host, std::io::Error::other("not a regular file")));
                }
                write(&mut |to| std::io::copy(&mut file, to).map(drop))
            }
            FileSource::Inline(text) => write(&mut |to| to.write_all(text.as_bytes())),
        }
    }

    /// Removes everything (keeping the emptied directory as a spare when the pool has room); a
    /// directory already gone is fine.
    pub fn remove(&self) -> Result<(), RuntimeError> {
        // Two removers of one container (its supervisor and a `down`, say) must not both work
        // on it: a descriptor-relative removal follows the directory wherever the other one
        // renames it — into the spare pool, and on into the next container. The one whose
        // rename to a private name wins removes it; for the other it is already gone.
        static CLAIMS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let name = self.dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let claimed = !name.starts_with(REMOVING);
        let claim = if !claimed {
            self.dir.clone()
        } else {
            let n = CLAIMS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let claim = self.dir.with_file_name(format!("{REMOVING}{name}-{}-{n}", std::process::id()));
            match fs::rename(&self.dir, &claim) {
                Ok(()) => claim,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(RuntimeError::io(&self.dir, e)),
            }
        };
        // A remover killed from here on leaves the claimed directory: `finish_removals`.
        crate::fault::point("mid-removal");
        if spare_dirs::recycle(&self.spares(), &claim) {
            return Ok(());
        }
        // The writable layer is the container's: descriptor-relative, symlinks never followed,
        // any depth.
        // The layers before the records, so a removal that fails halfway leaves `spec.json`
        // for the next `down` to find — under the container's own name again.
        let removed = [claim.join("upper"), claim.join("work"), claim.clone()]
            .iter()
            .try_for_each(|tree| crate::fsutil::remove_tree(tree).map_err(|e| RuntimeError::io(tree, e)));
        if removed.is_err() && claimed {
            let _ = fs::rename(&claim, &self.dir);
        }
        removed
    }
}

/// The name prefix of a container directory being removed (see [`ContainerDirs::remove`]).
const REMOVING: &str = ".removing-";

/// Removes the container directories whose remover died while removing them (claimed as
/// `.removing-<id>-<pid>-<n>` by a process that is gone): nobody else will. A claim whose
/// process still runs is left to it. Returns what could not be removed.
pub fn finish_removals(state_root: &Path) -> Vec<(PathBuf, std::io::Error)> {
    let Ok(entries) = fs::read_dir(containers_dir(state_root)) else { return Vec::new() };
    let mut failures = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(claim) = name.strip_prefix(REMOVING) else { continue };
        let owner = claim.rsplit('-').nth(1).and_then(|pid| pid.parse::<i32>().ok());
        if owner.is_some_and(is_alive) {
            continue;
        }
        // The container's tree: descriptor-relative, symlinks never followed, any depth.
        if let Err(e) = crate::fsutil::remove_tree(&entry.path()) {
            failures.push((entry.path(), e));
        }
    }
    failures
}

/// Where container directories live.
pub fn containers_dir(state_root: &Path) -> PathBuf {
    state_root.join("containers")
}

/// What a running container is, as recorded once its process started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRecord {
    /// Container id.
    pub id: String,
    /// Container name.
    pub name: String,
    /// Project.
    pub project: String,
    /// Service.
    pub service: String,
    /// Made by `run` rather than `up`.
    pub oneoff: bool,
    /// Host PID of the container's PID 1.
    pub pid: i32,
    /// That process's start time (clock ticks since boot), so a reused PID is not mistaken for it.
    pub start_time: u64,
    /// Unix time of creation, in seconds.
    pub created: u64,
    /// Its last run ended and it was kept, stopped: only its files remain.
    #[serde(default)]
    pub exited: bool,
    /// The last run's exit code, once `exited`.
    #[serde(default)]
    pub exit_code: i32,
    /// Unix nanoseconds the last run started.
    #[serde(default)]
    pub started_at: u128,
    /// Unix nanoseconds the last run ended, once `exited`.
    #[serde(default)]
    pub finished_at: u128,
    /// Its health as its supervisor last saw it (`starting`, `healthy`, `unhealthy`; empty
    /// without a health check), so `ps` tells it when the supervisor is gone.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub health: String,
    /// How many times its supervisor restarted it.
    #[serde(default)]
    pub restarts: u32,
}

impl ContainerRecord {
    /// Writes `state.json`, atomically: a reader sees the old record or the new one.
    pub fn save(&self, dirs: &ContainerDirs) -> Result<(), RuntimeError> {
        self.save_as(dirs, true)
    }

    /// [`ContainerRecord::save`], fsynced only when `durable` (see
    /// [`crate::fsutil::write_atomic_unsynced`] for the containers that are not).
    pub fn save_as(&self, dirs: &ContainerDirs, durable: bool) -> Result<(), RuntimeError> {
        write_record(&dirs.dir.join("state.json"), &serde_json::to_vec(self).unwrap_or_default(), durable)
    }

    /// `state.json` of `dirs`, when there is a readable one.
    pub fn load(dirs: &ContainerDirs) -> Option<ContainerRecord> {
        fs::read(dirs.dir.join("state.json")).ok().and_then(|b| serde_json::from_slice(&b).ok())
    }

    /// Whether the recorded process still runs.
    pub fn is_running(&self) -> bool {
        !self.exited && process_start_time(self.pid) == Some(self.start_time)
    }

    /// Records that the run ended with `code` now, so `ps -a` can say so without the
    /// supervisor.
    pub fn mark_exited(dirs: &ContainerDirs, code: i32) -> Result<(), RuntimeError> {
        ContainerRecord::modify(dirs, |record| {
            record.exited = true;
            record.exit_code = code;
            record.finished_at = now_nanos();
        })
    }

    /// Changes `state.json` of `dirs` (when there is one) and writes it back, durably, when
    /// that changed it. Changes of one process never interleave: the supervisor's threads (a
    /// container's watcher, its health probe) change different fields of one record.
    pub fn modify(dirs: &ContainerDirs, change: impl FnOnce(&mut ContainerRecord)) -> Result<(), RuntimeError> {
        static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(mut record) = ContainerRecord::load(dirs) else { return Ok(()) };
        let before = record.clone();
        change(&mut record);
        if record == before { Ok(()) } else { record.save(dirs) }
    }
}

/// Unix time in nanoseconds.
pub fn now_nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

/// One container directory as found on disk.
#[derive(Debug, Clone)]
pub struct Found {
    /// Its directories.
    pub dirs: ContainerDirs,
    /// Its spec, when readable.
    pub spec: Option<ContainerSpec>,
    /// Its state, when the process was started.
    pub record: Option<ContainerRecord>,
}

impl Found {
    /// Whether its process runs now.
    pub fn is_running(&self) -> bool {
        self.record.as_ref().is_some_and(ContainerRecord::is_running)
    }

    /// A container that ran and was kept, stopped (its process may have died without the
    /// supervisor noticing: a record that says running for a process that is gone counts).
    pub fn is_stopped(&self) -> bool {
        self.record.is_some() && !self.is_running()
    }
}

/// Every container directory under the state root, newest first.
pub fn list(state_root: &Path) -> Result<Vec<Found>, RuntimeError> {
    let root = containers_dir(state_root);
    let entries = match fs::read_dir(&root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(RuntimeError::io(&root, e)),
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        // Being removed by someone: no longer a container anyone may adopt or remove.
        if entry.file_name().to_string_lossy().starts_with(REMOVING) {
            continue;
        }
        let dirs = ContainerDirs { dir: entry.path(), state_root: state_root.to_path_buf() };
        let spec = fs::read(dirs.dir.join("spec.json")).ok().and_then(|b| serde_json::from_slice(&b).ok());
        let record: Option<ContainerRecord> =
            fs::read(dirs.dir.join("state.json")).ok().and_then(|b| serde_json::from_slice(&b).ok());
        found.push(Found { dirs, spec, record });
    }
    found.sort_by_key(|f| std::cmp::Reverse(f.record.as_ref().map_or(0, |r| r.created)));
    Ok(found)
}

/// The start time of a process (field 22 of /proc/PID/stat), or `None` when it is gone.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// Whether process `pid` exists and has not exited (a zombie, whose parent has yet to reap
/// it, has: its pidfd already said so).
pub fn is_alive(pid: i32) -> bool {
    crate::fsutil::is_alive(pid)
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn write_record(path: &Path, data: &[u8], durable: bool) -> Result<(), RuntimeError> {
    let written = if durable {
        crate::fsutil::write_atomic(path, data)
    } else {
        crate::fsutil::write_atomic_unsynced(path, data)
    };
    written.map_err(|e| RuntimeError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_of_this_process_is_stable_and_of_a_dead_pid_is_none() {
        let me = std::process::id() as i32;
        let first = process_start_time(me);
        assert!(first.is_some());
        assert_eq!(first, process_start_time(me));
        assert_eq!(process_start_time(i32::MAX), None);
    }
}
