//! Volumes on disk: `<root>/volumes/<name>/_data` holds what containers see, and
//! `<root>/volumes/<name>/berth.json` what docker records about a volume (driver, labels, when
//! it was made). Written when a volume is first made (by `up` for the stack's named volumes, by
//! a container's start for the rest), so `volume ls`, `inspect`, `rm` and `prune` can show and
//! remove whatever is left. Directories from before the record existed still list: what can be
//! inferred is.
//!
//! `_data` is written by containers and therefore hostile: removal goes by descriptor (see
//! [`tree`]); names from the command line are checked against docker's name pattern before
//! they touch a path.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::runtime::spec::MountKind;

/// The record's file name, beside `_data`.
pub const META_FILE: &str = "berth.json";
/// The only driver.
pub const DRIVER: &str = "local";
/// The label docker (23+) puts on anonymous volumes; `volume prune` without `-a` removes only
/// volumes that carry it.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";
/// compose's labels on the volumes it makes.
pub const PROJECT_LABEL: &str = "com.docker.compose.project";
/// The volume's key in the stack file.
pub const VOLUME_LABEL: &str = "com.docker.compose.volume";
/// The version of the tool that made it.
pub const VERSION_LABEL: &str = "com.docker.compose.version";

/// A volume store failure.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// No volume has this name (docker's wording).
    #[error("get {0}: no such volume")]
    NotFound(String),
    /// Containers, running or stopped, use the volume (docker's wording and id list).
    #[error("remove {name}: volume is in use - [{}]", .ids.join(", "))]
    InUse {
        /// The volume.
        name: String,
        /// The containers using it.
        ids: Vec<String>,
    },
    /// A file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Removing the volume's tree failed at an entry.
    #[error("remove volume {name}: {entry}: {source}")]
    Remove {
        /// The volume.
        name: String,
        /// The entry's name.
        entry: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The containers' records could not be read.
    #[error("read the containers' records: {0}")]
    Containers(String),
}

fn io(path: &Path, source: std::io::Error) -> VolumeError {
    VolumeError::Io { path: path.to_path_buf(), source }
}

/// What berth records about a volume, in `berth.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeMeta {
    /// Its name (the directory's).
    pub name: String,
    /// Always `local`.
    pub driver: String,
    /// The project that made it, when known.
    #[serde(default)]
    pub project: Option<String>,
    /// Made for a mount without a source or an image's `VOLUME`.
    #[serde(default)]
    pub anonymous: bool,
    /// RFC 3339, seconds, UTC.
    pub created_at: String,
    /// docker's labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Driver options (`driver_opts`); docker shows `null` when there are none.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// One volume as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// Its record, read or inferred.
    pub meta: VolumeMeta,
    /// The host directory containers mount (`_data`).
    pub mountpoint: PathBuf,
    /// Ids of the containers (running or stopped) that mount it.
    pub used_by: Vec<String>,
}

/// Where volumes live under the state root.
pub fn volumes_dir(state_root: &Path) -> PathBuf {
    state_root.join("volumes")
}

/// docker's volume name pattern, `[a-zA-Z0-9][a-zA-Z0-9_.-]+`: anything else is no volume, and
/// never becomes a path.
pub fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() >= 2
        && bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Anonymous volumes have docker's 64-hex-digit names.
pub fn looks_anonymous(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// The labels berth gives a volume a container of `project` mounts: docker's anonymous label
/// for an anonymous one; compose's project, key and version labels for a named one.
pub fn default_labels(name: &str, project: Option<&str>, key: Option<&str>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    if looks_anonymous(name) {
        labels.insert(ANONYMOUS_LABEL.to_owned(), String::new());
        return labels;
    }
    if let Some(project) = project {
        let key = key.or_else(|| name.strip_prefix(project).and_then(|k| k.strip_prefix('_'))).unwrap_or(name);
        labels.insert(PROJECT_LABEL.to_owned(), project.to_owned());
        labels.insert(VERSION_LABEL.to_owned(), env!("CARGO_PKG_VERSION").to_owned());
        labels.insert(VOLUME_LABEL.to_owned(), key.to_owned());
    }
    labels
}

/// A fresh record for `name`, created now.
pub fn new_meta(name: &str, project: Option<&str>, key: Option<&str>) -> VolumeMeta {
    VolumeMeta {
        name: name.to_owned(),
        driver: DRIVER.to_owned(),
        project: project.map(str::to_owned),
        anonymous: looks_anonymous(name),
        created_at: rfc3339_seconds(crate::runtime::state::now()),
        labels: default_labels(name, project, key),
        options: BTreeMap::new(),
    }
}

/// Makes the volume `meta.name` with this record when it has none yet; an existing record is
/// kept (the first maker's labels win, as docker keeps a volume's).
pub fn ensure(state_root: &Path, meta: &VolumeMeta) -> Result<(), VolumeError> {
    if !valid_name(&meta.name) {
        return Err(VolumeError::NotFound(meta.name.clone()));
    }
    let dir = volumes_dir(state_root).join(&meta.name);
    let data = dir.join("_data");
    std::fs::create_dir_all(&data).map_err(|e| io(&data, e))?;
    let path = dir.join(META_FILE);
    if path.exists() {
        return Ok(());
    }
    write_new(&dir, &serde_json::to_vec_pretty(meta).unwrap_or_default())
}

/// Makes the stack's named volumes (not external ones) that do not exist yet, with compose's
/// labels over the stack's own and `driver_opts` as options, as `up` does before it starts
/// containers.
pub fn ensure_project(state_root: &Path, project: &crate::spec::Project) -> Result<(), VolumeError> {
    for (key, volume) in project.volumes.iter().filter(|(_, v)| !v.external) {
        let name = if volume.name.is_empty() { format!("{}_{key}", project.name) } else { volume.name.clone() };
        let mut meta = new_meta(&name, Some(&project.name), Some(key));
        let mut labels = volume.labels.clone();
        labels.append(&mut meta.labels);
        meta.labels = labels;
        if let Some(serde_json::Value::Object(opts)) = volume.other.get("driver_opts") {
            meta.options = opts
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
                .collect();
        }
        ensure(state_root, &meta)?;
    }
    Ok(())
}

/// Makes the volumes a container mounts, recording the ones that are new. Called by the
/// runtime before a container starts; `dir` may be below `_data` (`volume.subpath`).
pub fn ensure_mounted(project: &str, kind: &MountKind) -> Result<(), VolumeError> {
    let MountKind::Volume { name, dir, .. } = kind else { return Ok(()) };
    // `<root>/volumes/<name>/_data[/subpath]`: the state root is above `volumes/<name>`.
    let volumes = dir
        .ancestors()
        .filter(|a| a.file_name().is_some_and(|n| n == name.as_str()))
        .filter_map(Path::parent)
        .find(|p| p.file_name().is_some_and(|n| n == "volumes"));
    match volumes {
        Some(volumes) if valid_name(name) => {
            let state_root = volumes.parent().unwrap_or(volumes);
            ensure(state_root, &new_meta(name, Some(project), None))?;
        }
        _ => {}
    }
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))
}

/// Every volume under the state root, by name, with the containers using each.
pub fn list(state_root: &Path) -> Result<Vec<Volume>, VolumeError> {
    let users = users(state_root)?;
    let dir = volumes_dir(state_root);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(&dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
        if !valid_name(&name) || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        out.push(load(&dir, &name, &users));
    }
    out.sort_by(|a, b| natural_cmp(&a.meta.name, &b.meta.name));
    Ok(out)
}

/// One volume, or [`VolumeError::NotFound`].
pub fn inspect(state_root: &Path, name: &str) -> Result<Volume, VolumeError> {
    let dir = volumes_dir(state_root);
    if !valid_name(name) || !dir.join(name).is_dir() {
        return Err(VolumeError::NotFound(name.to_owned()));
    }
    Ok(load(&dir, name, &users(state_root)?))
}

/// Removes a volume no container uses and returns the bytes it held; a volume in use is
/// refused and left as it was.
pub fn remove(state_root: &Path, name: &str) -> Result<u64, VolumeError> {
    let volume = inspect(state_root, name)?;
    if !volume.used_by.is_empty() {
        return Err(VolumeError::InUse { name: name.to_owned(), ids: volume.used_by });
    }
    remove_unchecked(state_root, name)
}

/// Removes a volume's directory whoever uses it (for `down -v`, after the containers are
/// gone); a volume already gone is 0 bytes.
pub fn remove_unchecked(state_root: &Path, name: &str) -> Result<u64, VolumeError> {
    if !valid_name(name) {
        return Err(VolumeError::NotFound(name.to_owned()));
    }
    let dir = volumes_dir(state_root);
    let volumes = match open_dir(&dir) {
        Ok(fd) => fd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io(&dir, e)),
    };
    let c_name = CString::new(name).map_err(|_| VolumeError::NotFound(name.to_owned()))?;
    let failed = |entry: &str, source: std::io::Error| VolumeError::Remove {
        name: name.to_owned(),
        entry: entry.to_owned(),
        source,
    };
    let volume = match rustix::fs::openat(
        &volumes,
        &c_name,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::NOFOLLOW,
        rustix::fs::Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(0),
        Err(e) => return Err(io(&dir.join(name), e.into())),
    };
    // `_data` first: its files are what docker counts as the volume's size, not the record.
    // By descriptor, the one remover every container tree goes through (`fsutil`).
    let bytes = crate::fsutil::remove_tree_reclaiming(volume.as_fd(), std::ffi::OsStr::new("_data"))
        .map_err(|e| failed("_data", e))?;
    drop(volume);
    crate::fsutil::remove_tree_reclaiming(volumes.as_fd(), std::ffi::OsStr::new(name)).map_err(|e| failed(name, e))?;
    Ok(bytes)
}

/// Volume name → ids of the containers (running or stopped) that mount it, from their specs.
pub fn users(state_root: &Path) -> Result<BTreeMap<String, Vec<String>>, VolumeError> {
    let found = crate::runtime::state::list(state_root).map_err(|e| VolumeError::Containers(e.to_string()))?;
    let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for spec in found.iter().filter_map(|f| f.spec.as_ref()) {
        for mount in &spec.mounts {
            if let MountKind::Volume { name, .. } = &mount.kind {
                let ids = users.entry(name.clone()).or_default();
                if !ids.contains(&spec.id) {
                    ids.push(spec.id.clone());
                }
            }
        }
    }
    Ok(users)
}

/// The projects of the containers using each volume, for volumes made before records existed.
fn user_projects(state_root: &Path) -> BTreeMap<String, String> {
    let Ok(found) = crate::runtime::state::list(state_root) else { return BTreeMap::new() };
    let mut out = BTreeMap::new();
    for spec in found.iter().filter_map(|f| f.spec.as_ref()) {
        for mount in &spec.mounts {
            if let MountKind::Volume { name, .. } = &mount.kind {
                out.entry(name.clone()).or_insert_with(|| spec.project.clone());
            }
        }
    }
    out
}

fn load(volumes: &Path, name: &str, users: &BTreeMap<String, Vec<String>>) -> Volume {
    let dir = volumes.join(name);
    let meta = std::fs::read(dir.join(META_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice::<VolumeMeta>(&b).ok())
        .filter(|m| m.name == name)
        .unwrap_or_else(|| infer(volumes, name));
    Volume { meta, mountpoint: dir.join("_data"), used_by: users.get(name).cloned().unwrap_or_default() }
}

/// A record for a directory without one: the project from a container using it, the time from
/// the directory.
fn infer(volumes: &Path, name: &str) -> VolumeMeta {
    let state_root = volumes.parent().unwrap_or(volumes);
    let project = if looks_anonymous(name) { None } else { user_projects(state_root).remove(name) };
    let mut meta = new_meta(name, project.as_deref(), None);
    let mtime = std::fs::symlink_metadata(volumes.join(name))
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    meta.created_at = rfc3339_seconds(mtime);
    meta
}

/// RFC 3339 in UTC to the second, as docker shows a volume's `CreatedAt`.
pub fn rfc3339_seconds(seconds: u64) -> String {
    let full = crate::timing::rfc3339(u128::from(seconds) * 1_000_000_000);
    match full.split_once('.') {
        Some((whole, _)) => format!("{whole}Z"),
        None => full,
    }
}

/// Natural order (`v2` before `v10`), as docker sorts volume names.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, Some(_)) => return std::cmp::Ordering::Less,
            (Some(_), None) => return std::cmp::Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (na, nb) = (trim_zeros(&a[..da]), trim_zeros(&b[..db]));
                let order = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
                if order != std::cmp::Ordering::Equal {
                    return order;
                }
                a = &a[da..];
                b = &b[db..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn trim_zeros(digits: &[u8]) -> &[u8] {
    let zeros = digits.iter().take_while(|&&c| c == b'0').count();
    &digits[zeros.min(digits.len().saturating_sub(1))..]
}

fn open_dir(path: &Path) -> std::io::Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    Ok(rustix::fs::open(path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?)
}

/// Writes `berth.json` in `dir` unless it exists: a temporary file renamed without replacing,
/// so two containers starting on one new volume record it once, whole.
fn write_new(dir: &Path, data: &[u8]) -> Result<(), VolumeError> {
    let tmp = dir.join(format!(".{META_FILE}.{}.{:?}", std::process::id(), std::thread::current().id()));
    let mut file = std::fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
    file.write_all(data).map_err(|e| io(&tmp, e))?;
    drop(file);
    let path = dir.join(META_FILE);
    let fd = rustix::fs::CWD;
    let renamed = rustix::fs::renameat_with(fd, &tmp, fd, &path, rustix::fs::RenameFlags::NOREPLACE);
    let _ = std::fs::remove_file(&tmp);
    match renamed {
        Ok(()) | Err(rustix::io::Errno::EXIST) => Ok(()),
        Err(e) => Err(io(&path, e.into())),
    }
}

#[cfg(test)]
mod tests;
