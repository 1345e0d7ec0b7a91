//! What a top-level volume's `driver` and `driver_opts` make of it. berth has docker's `local`
//! driver only, and of its mount types the two that need no network or device: `type: none`
//! with `o: bind` (the volume is a host directory, `device`) and `type: tmpfs`. Any other type
//! (`nfs`, `cifs`, `ext4`, ...) or driver is refused when the project is brought up, never
//! turned into an empty directory. `config` shows the keys as written, as compose does.

use std::path::{Path, PathBuf};

use super::error::{SpecError, Stage};
use super::model::{Project, Volume};
use super::yaml::Node;

/// Where a named volume's data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backing {
    /// A directory under the state root (no `driver_opts`).
    Directory,
    /// A host directory (`type: none`, `o: bind`, `device`), absolute.
    Bind(PathBuf),
    /// A tmpfs per container (`type: tmpfs`), with `o`'s `size` (bytes) and `mode`.
    Tmpfs {
        /// `size=`.
        size: Option<u64>,
        /// `mode=` (octal).
        mode: Option<u32>,
    },
}

/// Why a volume cannot be made: the key at fault (below the volume) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackingError {
    /// `driver`, or `driver_opts/<key>`.
    pub key: String,
    /// For the user.
    pub message: String,
}

fn refuse(key: &str, message: impl Into<String>) -> BackingError {
    BackingError { key: key.to_owned(), message: message.into() }
}

/// What `volume` is backed by. A relative `device` is taken from `project_dir`: compose
/// resolves it so with `driver: local` (the loader did), and berth does the same without a
/// driver, where compose 2.40 hands `./data` to the daemon as written and the mount fails.
pub fn backing(volume: &Volume, project_dir: &Path) -> Result<Backing, BackingError> {
    if volume.external {
        return Ok(Backing::Directory);
    }
    if let Some(driver) = volume.driver.as_deref().filter(|d| !d.is_empty() && *d != "local") {
        return Err(refuse(
            "driver",
            format!("volume driver {driver:?} is not available: berth has the local driver only"),
        ));
    }
    let Some(serde_json::Value::Object(opts)) = volume.other.get("driver_opts") else { return Ok(Backing::Directory) };
    if opts.is_empty() {
        return Ok(Backing::Directory);
    }
    let text = |key: &str| opts.get(key).map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned));
    if let Some(unknown) = opts.keys().find(|k| !matches!(k.as_str(), "type" | "o" | "device")) {
        return Err(refuse(
            &format!("driver_opts/{unknown}"),
            format!("unknown local volume option {unknown:?}: the local driver takes type, o and device"),
        ));
    }
    let options = text("o").unwrap_or_default();
    let options: Vec<&str> = options.split(',').map(str::trim).filter(|o| !o.is_empty()).collect();
    match text("type").as_deref() {
        Some("none") | None if options.iter().any(|o| matches!(*o, "bind" | "rbind")) => {
            if let Some(other) = options.iter().find(|o| !matches!(**o, "bind" | "rbind")) {
                return Err(refuse(
                    "driver_opts/o",
                    format!("mount option {other:?} is not supported for a bound volume (o: bind only)"),
                ));
            }
            let device = text("device")
                .filter(|d| !d.is_empty())
                .ok_or_else(|| refuse("driver_opts", "a bound volume (o: bind) needs device: the host directory"))?;
            let path = project_dir.join(&device);
            if !path.is_dir() {
                return Err(refuse(
                    "driver_opts/device",
                    format!("device {device:?} ({}) is not an existing directory", path.display()),
                ));
            }
            Ok(Backing::Bind(path))
        }
        Some("none") | None => Err(refuse(
            "driver_opts/o",
            "type none needs o: bind (a host directory); berth mounts no devices into volumes",
        )),
        Some("tmpfs") => {
            let (mut size, mut mode) = (None, None);
            for option in options {
                match option.split_once('=') {
                    Some(("size", value)) => {
                        size = Some(
                            super::units::parse_bytes(value)
                                .map_err(|e| refuse("driver_opts/o", format!("tmpfs size {value:?}: {e}")))?,
                        );
                    }
                    Some(("mode", value)) => {
                        mode = Some(u32::from_str_radix(value, 8).map_err(|_| {
                            refuse("driver_opts/o", format!("tmpfs mode {value:?} is not an octal number"))
                        })?);
                    }
                    _ => {
                        return Err(refuse(
                            "driver_opts/o",
                            format!("tmpfs option {option:?} is not supported: berth takes size= and mode="),
                        ));
                    }
                }
            }
            Ok(Backing::Tmpfs { size, mode })
        }
        Some(other) => Err(refuse(
            "driver_opts/type",
            format!(
                "volume type {other:?} is not supported: berth's local volumes are directories, host directories \
                 (type: none, o: bind) or tmpfs (type: tmpfs); it mounts no network or block filesystems"
            ),
        )),
    }
}

/// Every non-external volume of `project` that cannot be made, located in `doc`: what `up`
/// refuses before it makes anything.
pub fn check(project: &Project, doc: &Node) -> Vec<SpecError> {
    let mut errors = Vec::new();
    for (key, volume) in &project.volumes {
        if let Err(e) = backing(volume, &project.working_dir) {
            let pointer = format!("/volumes/{key}/{}", e.key);
            let path = format!("volumes.{key}.{}", e.key.replace('/', "."));
            let location = doc.locate(&pointer).location.clone();
            errors.push(SpecError::at(Stage::Semantic, &location, path, e.message));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn volume(driver: Option<&str>, opts: serde_json::Value) -> Volume {
        let mut v = Volume { driver: driver.map(str::to_owned), ..Volume::default() };
        v.other.insert("driver_opts".into(), opts);
        v
    }

    #[test]
    fn driver_opts_make_a_bind_a_tmpfs_or_an_error() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        std::fs::create_dir(dir.path().join("data")).unwrap_or_else(|e| panic!("mkdir: {e}"));
        let bind = volume(None, json!({"type": "none", "o": "bind", "device": "./data"}));
        assert_eq!(backing(&bind, dir.path()), Ok(Backing::Bind(dir.path().join("./data"))));
        let missing = volume(Some("local"), json!({"type": "none", "o": "bind", "device": "/nonexistent-berth"}));
        assert_eq!(backing(&missing, dir.path()).map_err(|e| e.key), Err("driver_opts/device".to_owned()));
        let tmpfs = volume(None, json!({"type": "tmpfs", "o": "size=5m,mode=700", "device": "tmpfs"}));
        assert_eq!(backing(&tmpfs, dir.path()), Ok(Backing::Tmpfs { size: Some(5 << 20), mode: Some(0o700) }));
        let nfs = volume(None, json!({"type": "nfs", "o": "addr=10.0.0.1,rw", "device": ":/export"}));
        let e = backing(&nfs, dir.path()).err().unwrap_or_else(|| panic!("nfs accepted"));
        assert_eq!(e.key, "driver_opts/type");
        assert!(e.message.contains("\"nfs\""), "{}", e.message);
        let uid = volume(None, json!({"type": "tmpfs", "o": "uid=1000"}));
        assert!(backing(&uid, dir.path()).is_err());
        let plain = Volume::default();
        assert_eq!(backing(&plain, dir.path()), Ok(Backing::Directory));
        let other = Volume { driver: Some("rexray".into()), ..Volume::default() };
        assert_eq!(backing(&other, dir.path()).map_err(|e| e.key), Err("driver".to_owned()));
    }
}
