//! The container's root: an overlay of the image layers with a private upper directory, the
//! host image's read-only binds, the kernel filesystems, /dev, the init layer's files and the
//! volumes, then `pivot_root` into it.
//!
//! Every mount is made inside the container's own mount namespace after `/` was made rslave,
//! so none of them propagates to the host and all of them vanish with the namespace: a
//! container that dies, even by SIGKILL, leaves no mount behind.

use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use super::path::{Kind, Root, fd_path};
use super::{Context, Failure, dev, kernfs, volumes};
use crate::runtime::spec::ContainerSpec;
use crate::runtime::state::ContainerDirs;

/// Mount data beyond a page is refused by the kernel.
const PAGE: usize = 4096;

/// Everything that does not depend on the container's cgroup: done while the parent makes the
/// cgroup and places the process in it (a write to `cgroup.procs` can wait a whole RCU grace
/// period).
pub(super) fn prepare(spec: &ContainerSpec, dirs: &ContainerDirs) -> Result<Root, Failure> {
    // Nothing mounted from here on may propagate back to the host (and pivot_root refuses a
    // shared root).
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_SLAVE, None::<&str>)
        .context(|| "make / rslave".into())?;
    mount_overlay(spec, dirs)?;
    let root = Root::open(&dirs.rootfs())?;
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
    volumes::mount_all(&root, &spec.mounts)?;
    volumes::init_layer(&root, dirs)?;
    if !spec.privileged {
        kernfs::mask(&root)?;
    }
    Ok(root)
}

/// The rest, once the process is in its cgroup and its cgroup namespace (the parent makes the
/// cgroup while this process prepares): the cgroup hierarchies, then `pivot_root`.
pub(super) fn finish(root: Root, spec: &ContainerSpec, dirs: &ContainerDirs) -> Result<(), Failure> {
    kernfs::mount_cgroups(&root, &spec.id)?;
    drop(root);
    pivot(&dirs.rootfs())?;
    if spec.read_only {
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .context(|| "make the root file system read-only".into())?;
    }
    Ok(())
}

fn mount_overlay(spec: &ContainerSpec, dirs: &ContainerDirs) -> Result<(), Failure> {
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
    nix::unistd::chdir(&spec.rootfs.layer_root).context(|| format!("chdir {}", spec.rootfs.layer_root.display()))?;
    let target = dirs.rootfs();
    let mut mounted = mount(Some("overlay"), &target, Some("overlay"), MsFlags::empty(), Some(data.as_str()));
    if mounted == Err(nix::errno::Errno::EINVAL)
        && let Some(durable) = data.strip_suffix(",volatile")
    {
        // A kernel before 5.10 has no `volatile`: an unmount that syncs is only slower.
        mounted = mount(Some("overlay"), &target, Some("overlay"), MsFlags::empty(), Some(durable));
    }
    nix::unistd::chdir("/").context(|| "chdir /".into())?;
    mounted.context(|| "mount the overlay root file system".into())
}

/// Bind-mounts `source` (a host path) at `target` in the root, optionally read-only.
pub(super) fn bind(root: &Root, source: &str, target: &str, read_only: bool, kind: Kind) -> Result<(), Failure> {
    let at = root.ensure(target, kind)?;
    mount(Some(source), fd_path(&at).as_str(), None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
        .context(|| format!("bind {source} at {target}"))?;
    if read_only {
        remount_read_only(root, target, MsFlags::empty())?;
    }
    Ok(())
}

/// Remounts the mount at `target` read-only, keeping `keep` flags.
pub(super) fn remount_read_only(root: &Root, target: &str, keep: MsFlags) -> Result<(), Failure> {
    // Resolve again: the descriptor from before the mount refers to the covered directory.
    let at = root.lookup(target)?.ok_or_else(|| Failure(format!("{target} vanished")))?;
    mount(
        None::<&str>,
        fd_path(&at).as_str(),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | keep,
        None::<&str>,
    )
    .context(|| format!("make {target} read-only"))
}

/// Makes the mount at `target` and every mount under it read-only, nosuid, nodev and noexec
/// with one `mount_setattr(2)` (Linux 5.12) rather than a remount each; on an older kernel,
/// remounts `target` and each of `submounts` (paths in the root) one by one.
pub(super) fn seal_tree(root: &Root, target: &str, submounts: &[String]) -> Result<(), Failure> {
    let at = root.lookup(target)?.ok_or_else(|| Failure(format!("{target} vanished")))?;
    let attr = libc::mount_attr {
        attr_set: libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV | libc::MOUNT_ATTR_NOEXEC,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: `at` is an open descriptor, the path is a NUL-terminated empty string (with
    // AT_EMPTY_PATH the call acts on the descriptor itself), and `attr` is a live, initialised
    // mount_attr whose size is passed along; the kernel only reads it.
    let result = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            at.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            &raw const attr,
            size_of::<libc::mount_attr>(),
        )
    };
    if result == 0 {
        return Ok(());
    }
    match nix::errno::Errno::last() {
        nix::errno::Errno::ENOSYS => {
            for submount in submounts {
                remount_read_only(root, submount, kernfs::NO_SUID_DEV_EXEC)?;
            }
            remount_read_only(root, target, kernfs::NO_SUID_DEV_EXEC)
        }
        e => Err(Failure(format!("make {target} read-only: {e}"))),
    }
}

fn pivot(rootfs: &std::path::Path) -> Result<(), Failure> {
    nix::unistd::chdir(rootfs).context(|| "chdir to the root file system".into())?;
    // pivot_root(".", ".") stacks the old root on top of the new one at "/"; detaching it
    // leaves only the container's root. No directory is needed for the old root.
    nix::unistd::pivot_root(".", ".").context(|| "pivot_root".into())?;
    mount(None::<&str>, ".", None::<&str>, MsFlags::MS_SLAVE | MsFlags::MS_REC, None::<&str>)
        .context(|| "make the old root rslave".into())?;
    umount2(".", MntFlags::MNT_DETACH).context(|| "detach the old root".into())?;
    nix::unistd::chdir("/").context(|| "chdir /".into())
}
