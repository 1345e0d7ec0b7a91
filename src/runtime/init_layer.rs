//! The init layer: one read-only overlay layer, shared by every container, stacked above the
//! image's layers with the empty files and directories a container's mounts land on —
//! `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`, `/proc`, `/sys`, `/dev` — as docker's
//! `-init` layer does.
//!
//! Without it the first bind over `/etc/hosts` in an image that lacks the file made overlayfs
//! copy `/etc` up and create the file in the container's upper directory: a directory block
//! allocated and, at removal, freed (a synchronous discard on this VM's ext4) for every
//! container. With it nothing is written to the upper directory until the container writes.
//!
//! As with docker, the layer's directories sit above the image's, so the merged `/etc`, `/dev`,
//! `/proc` and `/sys` show the layer's owner and mode (root, 0755).

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// The files in the layer, all empty.
const FILES: [&str; 3] = ["etc/hosts", "etc/hostname", "etc/resolv.conf"];
/// The directories in the layer.
const DIRS: [&str; 4] = ["etc", "proc", "sys", "dev"];

/// Makes the layer at `dir` unless it is there; concurrent callers are safe (it is built
/// aside and renamed into place).
pub fn ensure(dir: &Path) -> io::Result<()> {
    if is_complete(dir) {
        return Ok(());
    }
    let parent = dir.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent)?;
    // One staging directory per call: a supervisor starts many containers at once, and calls
    // from its threads must not build in (and clobber) the same one.
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let building = parent.join(format!(".init-layer-{}-{call}", std::process::id()));
    let built = build(&building).and_then(|()| {
        if dir.exists() && !is_complete(dir) {
            // An incomplete layer from a crash; no container uses one.
            fs::remove_dir_all(dir)?;
        }
        fs::rename(&building, dir)
    });
    match built {
        Ok(()) => Ok(()),
        // Another berth process made it first.
        Err(_) if is_complete(dir) => {
            let _ = fs::remove_dir_all(&building);
            Ok(())
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&building);
            Err(e)
        }
    }
}

/// Whether the layer is all there: its last-made file exists.
fn is_complete(dir: &Path) -> bool {
    dir.join(FILES[FILES.len() - 1]).is_file()
}

fn build(at: &Path) -> io::Result<()> {
    if at.exists() {
        fs::remove_dir_all(at)?;
    }
    fs::DirBuilder::new().mode(0o755).create(at)?;
    for sub in DIRS {
        fs::DirBuilder::new().mode(0o755).create(at.join(sub))?;
    }
    for file in FILES {
        fs::OpenOptions::new().write(true).create_new(true).mode(0o644).open(at.join(file))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_layer_has_empty_mount_targets_and_is_made_once() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("init-layer");
        ensure(&dir).unwrap();
        for file in FILES {
            let meta = fs::metadata(dir.join(file)).unwrap();
            assert!(meta.is_file() && meta.len() == 0, "{file}");
            assert_eq!(meta.permissions().mode() & 0o777, 0o644, "{file}");
        }
        for sub in DIRS {
            assert_eq!(fs::metadata(dir.join(sub)).unwrap().permissions().mode() & 0o777, 0o755, "{sub}");
        }
        fs::write(dir.join("etc/marker"), "").unwrap();
        ensure(&dir).unwrap();
        assert!(dir.join("etc/marker").exists(), "a complete layer is left alone");
        let leftovers: Vec<_> = fs::read_dir(root.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("init-layer")]);
    }

    #[test]
    fn threads_of_one_process_make_the_layer_together() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("init-layer");
        std::thread::scope(|scope| {
            let all: Vec<_> = (0..8).map(|_| scope.spawn(|| ensure(&dir))).collect();
            for one in all {
                one.join().unwrap().unwrap();
            }
        });
        assert!(is_complete(&dir));
        let leftovers: Vec<_> = fs::read_dir(root.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("init-layer")], "no staging directory left");
    }
}
