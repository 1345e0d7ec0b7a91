//! The init layer's files and the service's volumes, binds, tmpfs mounts, secrets and configs.

use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::fcntl::{AtFlags, OFlag};
use nix::mount::MsFlags;

use super::path::{Kind, Root, fd_path};
use super::{Context, Failure, copy_up, rootfs};
use crate::runtime::spec::{Mount, MountKind};
use crate::runtime::state::ContainerDirs;

/// /etc/hosts, /etc/hostname and /etc/resolv.conf from the container's own files, mounted
/// over the init layer's empty ones (see `runtime::init_layer`): the image is never written.
/// The init layer already shadows an image symlink at one of these paths (to a
/// systemd-resolved stub, say); one that still shows through is replaced by a file in the
/// container's upper layer first.
pub(super) fn init_layer(root: &Root, dirs: &ContainerDirs) -> Result<(), Failure> {
    drop(root.ensure("/etc", Kind::Dir)?);
    let etc = root.open_at("/etc", OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
    for name in ["hosts", "hostname", "resolv.conf"] {
        let is_link = nix::sys::stat::fstatat(etc.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW)
            .is_ok_and(|s| s.st_mode & libc::S_IFMT == libc::S_IFLNK);
        if is_link {
            nix::unistd::unlinkat(etc.as_fd(), name, nix::unistd::UnlinkatFlags::NoRemoveDir)
                .context(|| format!("replace the link /etc/{name}"))?;
        }
        let source = dirs.init_file(name);
        drop(rootfs::bind(root, &source.to_string_lossy(), &format!("/etc/{name}"), false, Kind::File)?);
    }
    Ok(())
}

pub(super) fn mount_all(root: &Root, dirs: &ContainerDirs, mounts: &[Mount]) -> Result<(), Failure> {
    for m in mounts {
        match &m.kind {
            MountKind::File { name, .. } => {
                // The copy in the container's own directory, read-only: the container can read
                // it and never change it, nor what berth writes there on its next start.
                // nosuid: the mode is the stack file's to choose, a set-id bit never acts.
                let at = root.ensure(&m.target, Kind::File)?;
                let source = dirs.dir.join(name);
                let attrs = libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV;
                rootfs::attach(root, rustix::fs::CWD, &source.to_string_lossy(), &at, attrs)
                    .context(|| format!("bind {} at {}", source.display(), m.target))?;
            }
            MountKind::Bind { source, create_host_path, propagation } => {
                if !source.exists() {
                    if !create_host_path {
                        return Err(Failure(format!(
                            "invalid mount config for type \"bind\": bind source path does not exist: {}",
                            source.display()
                        )));
                    }
                    fs::create_dir_all(source).context(|| format!("create {}", source.display()))?;
                }
                let kind = if source.is_dir() { Kind::Dir } else { Kind::File };
                let tree = rootfs::bind(root, &source.to_string_lossy(), &m.target, m.read_only, kind)?;
                set_propagation(root, &tree, &m.target, propagation.as_deref())?;
            }
            MountKind::Volume { name, dir, copy_up } => {
                if *copy_up {
                    copy_up_into(root, &m.target, dir).context(|| format!("copy {} into volume {name}", m.target))?;
                }
                drop(rootfs::bind(root, &dir.to_string_lossy(), &m.target, m.read_only, Kind::Dir)?);
            }
            MountKind::Tmpfs { size, mode } => {
                let at = root.ensure(&m.target, Kind::Dir)?;
                let mut data = format!("mode={:o}", mode.unwrap_or(0o1777));
                if let Some(size) = size {
                    data.push_str(&format!(",size={size}"));
                }
                let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
                if m.read_only {
                    flags |= MsFlags::MS_RDONLY;
                }
                root.sys()
                    .mount(Some("tmpfs"), &fd_path(&at), Some("tmpfs"), flags, Some(data.as_str()))
                    .context(|| format!("mount tmpfs at {}", m.target))?;
            }
        }
    }
    Ok(())
}

/// Sets the propagation of the bind just attached, through the attached tree's descriptor (no
/// second lookup of `target`).
fn set_propagation(root: &Root, tree: &OwnedFd, target: &str, propagation: Option<&str>) -> Result<(), Failure> {
    let flags = match propagation.unwrap_or("rprivate") {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        other => return Err(Failure(format!("{target}: unknown bind propagation {other:?}"))),
    };
    root.sys().mount(None, &fd_path(tree), None, flags, None).context(|| format!("set propagation of {target}"))
}

/// Docker's copy-up into a volume that is still empty, from descriptors on both sides (see
/// [`copy_up`]).
fn copy_up_into(root: &Root, target: &str, dir: &Path) -> std::io::Result<()> {
    let volume = copy_up::open_volume(dir)?;
    if !copy_up::is_empty(volume.as_fd())? {
        return Ok(());
    }
    let Some(image_dir) = root.lookup(target).map_err(|Failure(e)| std::io::Error::other(e))? else {
        return Ok(());
    };
    copy_up::copy(image_dir.as_fd(), volume.as_fd())
}
