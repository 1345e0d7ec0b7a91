//! A build step's root filesystem mounted on the host side, for COPY and ADD: an overlay of the
//! stage's layers with a fresh upper directory (which becomes the step's layer), and, for
//! `COPY --from`, the source image's layers merged read-only.
//!
//! The mounts are made by a thread of its own that first unshares its mount namespace and makes
//! every mount in it a slave: nothing it mounts propagates to the host, and everything it
//! mounted disappears with the namespace when the thread ends, whether the copy worked, failed
//! or panicked. No unmount can be forgotten.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};

use super::BuildError;

/// The kernel refuses mount data over a page.
const PAGE: usize = 4096;

/// Layers to stack: the store's directory of short links and the links, top layer first.
#[derive(Debug, Clone)]
pub struct LayerStack {
    /// The store's `l/`.
    pub layer_root: PathBuf,
    /// Short link names, top layer first (overlayfs `lowerdir` order).
    pub lower: Vec<String>,
}

/// Where a step's mounts go: directories in the store's staging area.
#[derive(Debug, Clone)]
pub struct Scratch {
    /// The overlay's upper directory: the new layer.
    pub upper: PathBuf,
    /// The overlay's work directory.
    pub work: PathBuf,
    /// Where the step's root is mounted.
    pub root: PathBuf,
    /// Where a read-only source is mounted, when one is.
    pub source: PathBuf,
    /// An empty directory: the only lower layer of an image with none (`scratch`).
    pub empty: PathBuf,
}

impl Scratch {
    /// Makes the directories under `dir` (which must exist, on the store's filesystem).
    pub fn create(dir: &Path) -> Result<Scratch, BuildError> {
        let scratch = Scratch {
            upper: dir.join("upper"),
            work: dir.join("work"),
            root: dir.join("root"),
            source: dir.join("source"),
            empty: dir.join("empty"),
        };
        for d in [&scratch.upper, &scratch.work, &scratch.root, &scratch.source, &scratch.empty] {
            std::fs::create_dir(d).map_err(|e| BuildError::io(d, e))?;
        }
        Ok(scratch)
    }
}

/// Mounts `stack` with `scratch.upper` as its writable layer at `scratch.root`, and `source`
/// (when given) read-only at `scratch.source`, then calls `work` with the two mount points in
/// a thread that has its own mount namespace.
pub fn with_mounted<R: Send>(
    stack: &LayerStack,
    source: Option<&LayerStack>,
    scratch: &Scratch,
    work: impl FnOnce(&Path, Option<&Path>) -> Result<R, BuildError> + Send,
) -> Result<R, BuildError> {
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                private_mounts()?;
                mount_overlay(stack, Some((&scratch.upper, &scratch.work)), &scratch.empty, &scratch.root)?;
                let source_root = match source {
                    Some(s) => Some(mount_read_only(s, scratch)?),
                    None => None,
                };
                work(&scratch.root, source_root.as_deref())
            })
            .join()
            .unwrap_or_else(|_| {
                Err(BuildError::Sys { what: "the copy thread panicked".into(), source: nix::Error::EIO })
            })
    })
}

/// Gives this thread a mount namespace of its own in which no mount propagates back.
fn private_mounts() -> Result<(), BuildError> {
    unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_FS)
        .map_err(|source| BuildError::Sys { what: "unshare the mount namespace".into(), source })?;
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_SLAVE, None::<&str>)
        .map_err(|source| BuildError::Sys { what: "make / rslave".into(), source })
}

/// A read-only view of `stack`: an overlay of two or more layers, the one layer itself, or an
/// empty directory for none (overlayfs wants two lower layers when it has no upper one).
fn mount_read_only(stack: &LayerStack, scratch: &Scratch) -> Result<PathBuf, BuildError> {
    match stack.lower.as_slice() {
        [] => Ok(scratch.empty.clone()),
        [one] => Ok(stack.layer_root.join(one)),
        _ => {
            mount_overlay(stack, None, &scratch.empty, &scratch.source)?;
            Ok(scratch.source.clone())
        }
    }
}

fn mount_overlay(
    stack: &LayerStack,
    upper: Option<(&Path, &Path)>,
    empty: &Path,
    target: &Path,
) -> Result<(), BuildError> {
    let mut data = Vec::with_capacity(PAGE);
    data.extend_from_slice(b"lowerdir=");
    if stack.lower.is_empty() {
        data.extend_from_slice(empty.as_os_str().as_bytes());
    }
    for (i, layer) in stack.lower.iter().enumerate() {
        if i > 0 {
            data.push(b':');
        }
        data.extend_from_slice(layer.as_bytes());
    }
    if let Some((upper, work)) = upper {
        data.extend_from_slice(b",upperdir=");
        data.extend_from_slice(upper.as_os_str().as_bytes());
        data.extend_from_slice(b",workdir=");
        data.extend_from_slice(work.as_os_str().as_bytes());
        // The upper directory becomes a layer on its own: no redirects to, and no metadata-only
        // copies of, files in the lower layers.
        data.extend_from_slice(b",redirect_dir=off,metacopy=off");
        // The layer is hashed and renamed into the store before anything uses it; a sync at
        // unmount would flush every dirty page of the host's disk for nothing.
        data.extend_from_slice(b",volatile");
    }
    if data.len() >= PAGE {
        return Err(BuildError::Sys {
            what: "the overlay mount data is over a page".into(),
            source: nix::Error::E2BIG,
        });
    }
    let data = String::from_utf8_lossy(&data).into_owned();
    // Relative lowerdir entries keep the data short: resolved against the layer links. This
    // thread has its own working directory (CLONE_FS above).
    nix::unistd::chdir(&stack.layer_root)
        .map_err(|source| BuildError::Sys { what: format!("chdir {}", stack.layer_root.display()), source })?;
    let mut mounted = mount(Some("overlay"), target, Some("overlay"), MsFlags::empty(), Some(data.as_str()));
    if mounted == Err(nix::errno::Errno::EINVAL)
        && let Some(durable) = data.strip_suffix(",volatile")
    {
        mounted = mount(Some("overlay"), target, Some("overlay"), MsFlags::empty(), Some(durable));
    }
    let _ = nix::unistd::chdir("/");
    mounted
        .map_err(|source| BuildError::Sys { what: format!("mount the build overlay at {}", target.display()), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_land_in_the_upper_directory_and_no_mount_outlives_the_thread() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: mounting an overlay needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let lower = dir.path().join("layers/base");
        std::fs::create_dir_all(&lower).unwrap();
        std::fs::write(lower.join("old"), "old").unwrap();
        let scratch_dir = dir.path().join("step");
        std::fs::create_dir(&scratch_dir).unwrap();
        let scratch = Scratch::create(&scratch_dir).unwrap();
        let stack = LayerStack { layer_root: dir.path().join("layers"), lower: vec!["base".into()] };
        let seen = with_mounted(&stack, Some(&stack), &scratch, |root, source| {
            std::fs::write(root.join("new"), "new").unwrap();
            Ok((std::fs::read_to_string(root.join("old")).unwrap(), source.map(Path::to_path_buf)))
        })
        .unwrap();
        assert_eq!(seen.0, "old", "the lower layer shows through");
        assert_eq!(seen.1, Some(lower), "one layer is its own read-only view");
        assert_eq!(std::fs::read_to_string(scratch.upper.join("new")).unwrap(), "new");
        assert!(!scratch.upper.join("old").exists(), "an unchanged file stays below");
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains(&scratch.root.display().to_string()), "{mounts}");
    }
}
