//! The container's root: an overlay of the image layers with a private upper directory, the
//! host image's read-only binds, the kernel filesystems, /dev, the init layer's files and the
//! volumes, then `pivot_root` into it.
//!
//! Every mount is made inside the container's own mount namespace after `/` was made rslave,
//! so none of them propagates to the host and all of them vanish with the namespace: a
//! container that dies, even by SIGKILL, leaves no mount behind.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::mount::{MntFlags, MsFlags};

use super::path::{Kind, Root};
use super::sys::Sys;
use super::{Context, Failure, dev, kernfs, volumes};
use crate::runtime::spec::ContainerSpec;
use crate::runtime::state::ContainerDirs;

/// Mount data beyond a page is refused by the kernel.
const PAGE: usize = 4096;

/// `mount_setattr` flags of a read-only kernel-file-system view.
pub(super) const SEALED: u64 =
    libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV | libc::MOUNT_ATTR_NOEXEC;

/// Everything that does not depend on the container's cgroup: done while the parent makes the
/// cgroup and places the process in it (a write to `cgroup.procs` can wait a whole RCU grace
/// period).
pub(super) fn prepare(sys: &'static dyn Sys, spec: &ContainerSpec, dirs: &ContainerDirs) -> Result<Root, Failure> {
    // Nothing mounted from here on may propagate back to the host (and pivot_root refuses a
    // shared root).
    sys.mount(None, "/", None, MsFlags::MS_REC | MsFlags::MS_SLAVE, None).context(|| "make / rslave".into())?;
    mount_overlay(sys, spec, dirs)?;
    let root = Root::open(sys, &dirs.rootfs())?;
    for host in &spec.rootfs.host_binds {
        let target = host.to_string_lossy();
        bind(&root, &host.to_string_lossy(), &target, true, Kind::Dir)?;
    }
    kernfs::mount_proc(&root)?;
    kernfs::write_sysctls(&root, &spec.sysctls)?;
    kernfs::mount_sys(&root)?;
    dev::populate(&root, spec.shm_size)?;
    // Volumes before the init layer's files: a volume at /etc must not hide them (docker
    // sorts mounts by depth the same way).
    volumes::mount_all(&root, dirs, &spec.mounts)?;
    volumes::init_layer(&root, dirs)?;
    if !spec.privileged {
        kernfs::mask(&root)?;
    }
    Ok(root)
}

/// The rest, once the process is in its cgroup and its cgroup namespace (the parent makes the
/// cgroup while this process prepares): the cgroup hierarchies, then `pivot_root`.
pub(super) fn finish(root: Root, spec: &ContainerSpec, dirs: &ContainerDirs) -> Result<(), Failure> {
    let sys = root.sys();
    kernfs::mount_cgroups(&root, &spec.id)?;
    drop(root);
    pivot(sys, &dirs.rootfs())?;
    if spec.read_only {
        sys.mount(None, "/", None, MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY, None)
            .context(|| "make the root file system read-only".into())?;
    }
    Ok(())
}

fn mount_overlay(sys: &dyn Sys, spec: &ContainerSpec, dirs: &ContainerDirs) -> Result<(), Failure> {
    let upper = dirs.upper();
    let work = dirs.work();
    let mut data = Vec::with_capacity(PAGE);
    data.extend_from_slice(b"lowerdir=");
    // The init layer on top of the image's (absolute; the image's are relative, see below).
    data.extend_from_slice(dirs.init_layer().as_os_str().as_bytes());
    for layer in &spec.rootfs.lower {
        data.push(b':');
        data.extend_from_slice(layer.as_bytes());
    }
    data.extend_from_slice(b",upperdir=");
    data.extend_from_slice(upper.as_os_str().as_bytes());
    data.extend_from_slice(b",workdir=");
    data.extend_from_slice(work.as_os_str().as_bytes());
    if spec.rootfs.self_contained {
        data.extend_from_slice(b",redirect_dir=off,metacopy=off");
    }
    if spec.rootfs.volatile {
        data.extend_from_slice(b",volatile");
    }
    if data.len() >= PAGE {
        return Err(Failure(format!("the overlay mount data is {} bytes, over the kernel's limit", data.len())));
    }
    let data = String::from_utf8_lossy(&data).into_owned();
    // Short, relative lowerdir entries: resolved against the layer links directory.
    sys.chdir(&spec.rootfs.layer_root).context(|| format!("chdir {}", spec.rootfs.layer_root.display()))?;
    let target = dirs.rootfs().to_string_lossy().into_owned();
    let mut mounted = sys.mount(Some("overlay"), &target, Some("overlay"), MsFlags::empty(), Some(data.as_str()));
    if mounted == Err(nix::errno::Errno::EINVAL)
        && let Some(durable) = data.strip_suffix(",volatile")
    {
        // A kernel before 5.10 has no `volatile`: an unmount that syncs is only slower.
        mounted = sys.mount(Some("overlay"), &target, Some("overlay"), MsFlags::empty(), Some(durable));
    }
    sys.chdir(std::path::Path::new("/")).context(|| "chdir /".into())?;
    mounted.context(|| "mount the overlay root file system".into())
}

/// Bind-mounts `source` (a host path) and every mount below it at `target` in the root; with
/// `read_only`, every one of those mounts is read-only, submounts included. The tree is cloned
/// detached (`open_tree`), made read-only there (`mount_setattr(AT_RECURSIVE)`) and attached
/// on the descriptor `target` resolved to (`move_mount`): the target is looked up once, in
/// the root, and the mount is never writable in the container, not even for a moment.
/// Returns the attached tree (its `/proc/self/fd` path names the new mount).
pub(super) fn bind(root: &Root, source: &str, target: &str, read_only: bool, kind: Kind) -> Result<OwnedFd, Failure> {
    let at = root.ensure(target, kind)?;
    let attrs = if read_only { libc::MOUNT_ATTR_RDONLY } else { 0 };
    attach(root, rustix::fs::CWD, source, &at, attrs).context(|| format!("bind {source} at {target}"))
}

/// A copy of the mount tree at `path` below `dir` with `attrs` set on every mount of it,
/// attached on `at`.
pub(super) fn attach(
    root: &Root,
    dir: std::os::fd::BorrowedFd<'_>,
    path: &str,
    at: &OwnedFd,
    attrs: u64,
) -> nix::Result<OwnedFd> {
    let sys = root.sys();
    let tree = sys.clone_tree(dir, path)?;
    if attrs != 0 {
        sys.set_attr(tree.as_fd(), attrs, true)?;
    }
    sys.move_tree(tree.as_fd(), at.as_fd())?;
    Ok(tree)
}

/// Makes the mount at `target` and every mount under it read-only, nosuid, nodev and noexec
/// with one `mount_setattr(2)`.
pub(super) fn seal_tree(root: &Root, target: &str) -> Result<(), Failure> {
    let at = root.lookup(target)?.ok_or_else(|| Failure(format!("{target} vanished")))?;
    root.sys().set_attr(at.as_fd(), SEALED, true).context(|| format!("make {target} read-only"))
}

fn pivot(sys: &dyn Sys, rootfs: &std::path::Path) -> Result<(), Failure> {
    sys.chdir(rootfs).context(|| "chdir to the root file system".into())?;
    // pivot_root(".", ".") stacks the old root on top of the new one at "/"; detaching it
    // leaves only the container's root. No directory is needed for the old root.
    sys.pivot_root(".", ".").context(|| "pivot_root".into())?;
    sys.mount(None, ".", None, MsFlags::MS_SLAVE | MsFlags::MS_REC, None)
        .context(|| "make the old root rslave".into())?;
    sys.umount(".", MntFlags::MNT_DETACH).context(|| "detach the old root".into())?;
    sys.chdir(std::path::Path::new("/")).context(|| "chdir /".into())
}

#[cfg(test)]
#[path = "rootfs_tests.rs"]
mod tests;
