//! A container's files seen from the host: `cp`, `commit` and `export`.
//!
//! Everything a container wrote is hostile: a symlink `/x -> /` in it must never make a host
//! path out of a container path. So no container path is ever joined onto a host path. Work
//! on a container's files runs in a thread of its own whose root is the container's (after
//! `unshare(CLONE_FS)`, so the rest of the process keeps the host's):
//!
//! - a running container: a private copy of its mount namespace (its root, volumes and init
//!   files as its processes see them) with every procfs detached, so no magic link
//!   (`/proc/1/root`) is left to jump out of it;
//! - a stopped one: its overlay root file system mounted in a private mount namespace of the
//!   thread's own, then `chroot`;
//! - its writable layer alone (`commit`): `chroot` into the upper directory.
//!
//! Every symlink, absolute or `..`, then resolves inside the container, as
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` would, for every path the thread touches —
//! including the paths the tar crate creates while it extracts. The namespaces die with the
//! thread, so no mount can leak.

pub mod archive;
pub mod commit;
pub mod copy;

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};

use crate::image::ImageError;
use crate::runtime::RuntimeError;
use crate::runtime::spec::ContainerSpec;
use crate::runtime::state::{self, ContainerDirs, ContainerRecord};

/// The kernel refuses mount data over a page.
const PAGE: usize = 4096;

/// Why work on a container's files failed.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// No such container, or no such path in it.
    #[error("{0}")]
    NotFound(String),
    /// A copy that docker's rules do not allow.
    #[error("{0}")]
    Invalid(String),
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: io::Error,
    },
    /// The image store failed.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The runtime failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

impl FsError {
    /// An I/O error while doing `what`.
    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        FsError::Io { what: what.into(), source }
    }
}

fn sys(what: &str) -> impl FnOnce(nix::Error) -> FsError + '_ {
    move |e| FsError::io(what, e.into())
}

/// A container as found on disk: created, running or stopped.
#[derive(Debug, Clone)]
pub struct Container {
    /// Its directories.
    pub dirs: ContainerDirs,
    /// Its spec.
    pub spec: ContainerSpec,
    /// Its state, once it was started.
    pub record: Option<ContainerRecord>,
}

impl Container {
    /// The container's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Whether its process runs now.
    pub fn is_running(&self) -> bool {
        self.record.as_ref().is_some_and(ContainerRecord::is_running)
    }

    /// Its replica number (`<project>-<service>-<n>`); one-off containers have none.
    pub fn index(&self) -> Option<u32> {
        let prefix = format!("{}-{}-", self.spec.project, self.spec.service);
        self.spec.name.strip_prefix(&prefix).and_then(|n| n.parse().ok())
    }

    /// Made by `run`.
    pub fn is_oneoff(&self) -> bool {
        self.record.as_ref().map_or_else(|| self.index().is_none(), |r| r.oneoff)
    }
}

/// The containers of `service` in `project` (with a writable layer on disk), by replica
/// number, one-off containers last.
pub fn find(state_root: &Path, project: &str, service: &str) -> Result<Vec<Container>, FsError> {
    let mut found: Vec<Container> = state::list(state_root)?
        .into_iter()
        .filter_map(|f| Some(Container { spec: f.spec?, record: f.record, dirs: f.dirs }))
        .filter(|c| c.spec.project == project && c.spec.service == service && c.dirs.upper().is_dir())
        .collect();
    found.sort_by_key(|c| (c.is_oneoff(), c.index().unwrap_or(u32::MAX), std::cmp::Reverse(c.spec.name.clone())));
    Ok(found)
}

/// Which of a container's trees a piece of work sees as `/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// What its processes see, mounts included, while it runs; its root file system (image
    /// layers, init layer and writable layer) while it is stopped — writable when `writable`.
    Live {
        /// Writes go to the container (a stopped one's writable layer).
        writable: bool,
    },
    /// Its writable layer alone, as overlayfs keeps it.
    Upper,
}

/// Runs `work` in a thread whose root directory is `container`'s `view` (see the module docs),
/// with `/` as its working directory.
pub fn with_root<R: Send>(
    container: &Container,
    view: View,
    work: impl FnOnce() -> Result<R, FsError> + Send,
) -> Result<R, FsError> {
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                let mounted = enter(container, view)?;
                let result = work();
                // Unmounted whether the work succeeded or not.
                let unmounted = mounted.map_or(Ok(()), Mounted::unmount);
                result.and_then(|r| unmounted.map(|()| r))
            })
            .join()
            .unwrap_or_else(|_| Err(FsError::io("the copy thread", io::Error::other("panicked"))))
    })
}

/// Runs `work` in a thread of its own on the host's files (the other end of a copy).
pub fn on_host<R: Send>(work: impl FnOnce() -> Result<R, FsError> + Send) -> Result<R, FsError> {
    std::thread::scope(|scope| {
        scope.spawn(work).join().unwrap_or_else(|_| Err(FsError::io("the copy thread", io::Error::other("panicked"))))
    })
}

/// A stopped container's root file system mounted for the thread.
struct Mounted {
    /// The host's root, to leave the container's by.
    host_root: OwnedFd,
    target: PathBuf,
}

impl Mounted {
    /// Leaves the container's root and unmounts it, before the thread ends: the namespace
    /// would take the mount with it, but only after the thread's exit has woken its joiner,
    /// and the container must not start on a writable layer that is still mounted here.
    fn unmount(self) -> Result<(), FsError> {
        nix::unistd::fchdir(self.host_root.as_fd()).map_err(sys("return to the host's root"))?;
        nix::unistd::chroot(".").map_err(sys("chroot to the host's root"))?;
        nix::mount::umount2(self.target.as_path(), nix::mount::MntFlags::empty())
            .map_err(|e| FsError::io(format!("unmount {}", self.target.display()), e.into()))
    }
}

/// Makes the calling thread's root `container`'s `view`; a stopped container's root file
/// system is mounted for it.
fn enter(container: &Container, view: View) -> Result<Option<Mounted>, FsError> {
    match view {
        View::Upper => {
            unshare(CloneFlags::CLONE_FS).map_err(sys("unshare the file system context"))?;
            chroot_at(&container.dirs.upper()).map(|()| None)
        }
        View::Live { writable } => {
            if let Some(ns) = running_mount_ns(container)? {
                return enter_running(&ns).map(|()| None);
            }
            unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_FS).map_err(sys("unshare the mount namespace"))?;
            mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_SLAVE, None::<&str>)
                .map_err(sys("make / rslave"))?;
            let target = container.dirs.rootfs();
            let host_root = rustix::fs::open(
                "/",
                rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(|e| FsError::io("open /", e.into()))?;
            mount_root(container, writable, &target)?;
            chroot_at(&target)?;
            Ok(Some(Mounted { host_root, target }))
        }
    }
}

fn chroot_at(dir: &Path) -> Result<(), FsError> {
    nix::unistd::chroot(dir).map_err(|e| FsError::io(format!("chroot {}", dir.display()), e.into()))?;
    nix::unistd::chdir("/").map_err(sys("chdir /"))
}

/// The mount namespace of the container's process while it runs (`None` when it does not),
/// opened so that a PID reused by another process is never mistaken for it: the pidfd is
/// opened first, the record's start time checked against the PID, and the pidfd checked still
/// alive once the namespace is open.
fn running_mount_ns(container: &Container) -> Result<Option<OwnedFd>, FsError> {
    let Some(record) = container.record.as_ref().filter(|r| r.is_running()) else { return Ok(None) };
    let pidfd = crate::runtime::exec::pidfd_open(record.pid)?;
    if !record.is_running() {
        return Ok(None);
    }
    let ns = rustix::fs::open(
        format!("/proc/{}/ns/mnt", record.pid),
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| FsError::io(format!("open the mount namespace of {}", container.name()), e.into()))?;
    let mut fds = [nix::poll::PollFd::new(pidfd.as_fd(), nix::poll::PollFlags::POLLIN)];
    let exited = nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO).map_err(sys("poll the pidfd"))? > 0;
    if exited {
        return Err(FsError::NotFound(format!("container {} stopped during the copy", container.name())));
    }
    Ok(Some(ns))
}

/// Enters a private copy of a running container's mount namespace (its root, volumes and
/// init files as its processes see them) and detaches every procfs in it.
///
/// A chroot alone is not enough here: procfs holds magic links (`/proc/<pid>/root`, `…/cwd`,
/// `…/fd/N`) that jump out of any root. A container's own procfs shows only its own PID
/// namespace, but one that shares the host's (`pid: host`) shows the host's processes, and a
/// symlink it plants at `/x -> /proc/1/root/etc` would otherwise send a copy into the host's
/// `/etc`. Without procfs in the view, no magic link is left to follow.
fn enter_running(ns: &OwnedFd) -> Result<(), FsError> {
    // The host's procfs, to read this thread's mount table from once the container's /proc
    // is all that paths reach.
    let host_proc = rustix::fs::open(
        "/proc",
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| FsError::io("open /proc", e.into()))?;
    unshare(CloneFlags::CLONE_FS).map_err(sys("unshare the file system context"))?;
    nix::sched::setns(ns.as_fd(), CloneFlags::CLONE_NEWNS).map_err(sys("enter the container's mount namespace"))?;
    // A copy of it, from which nothing propagates back to the container (nor into the copy).
    unshare(CloneFlags::CLONE_NEWNS).map_err(sys("unshare the mount namespace"))?;
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .map_err(sys("make / rprivate"))?;
    nix::unistd::chdir("/").map_err(sys("chdir /"))?;
    for _ in 0..2 {
        let procs = proc_mounts(&host_proc)?;
        if procs.is_empty() {
            return Ok(());
        }
        for target in procs.iter().rev() {
            // Detached, never followed: the path is the container's.
            match nix::mount::umount2(
                target.as_path(),
                nix::mount::MntFlags::MNT_DETACH | nix::mount::MntFlags::UMOUNT_NOFOLLOW,
            ) {
                Ok(()) | Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => {}
                Err(e) => return Err(FsError::io(format!("detach {}", target.display()), e.into())),
            }
        }
    }
    Err(FsError::Invalid("a procfs in the container's mount namespace could not be detached".to_owned()))
}

/// The mount points of every procfs in this thread's mount namespace, shortest first.
fn proc_mounts(host_proc: &OwnedFd) -> Result<Vec<PathBuf>, FsError> {
    let fd = rustix::fs::openat(
        host_proc,
        "thread-self/mountinfo",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| FsError::io("open the mount table", e.into()))?;
    let mut text = String::new();
    io::Read::read_to_string(&mut std::fs::File::from(fd), &mut text)
        .map_err(|e| FsError::io("read the mount table", e))?;
    let mut found: Vec<PathBuf> = text
        .lines()
        .filter_map(|line| {
            let (fields, rest) = line.split_once(" - ")?;
            let fstype = rest.split(' ').next()?;
            let target = fields.split(' ').nth(4)?;
            (fstype == "proc").then(|| PathBuf::from(unescape(target)))
        })
        .collect();
    found.sort_by_key(|p| p.as_os_str().len());
    Ok(found)
}

/// A mountinfo field with its `\ooo` escapes (space, tab, newline, backslash) decoded.
fn unescape(field: &str) -> std::ffi::OsString {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u8::from_str_radix(d, 8).ok());
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    std::os::unix::ffi::OsStringExt::from_vec(out)
}

/// Mounts a stopped container's root file system at `target`: read-only with its writable
/// layer as the top lower layer, or with it as the upper layer when `writable` (as the
/// container mounts it). Volumes and the init files are not mounted.
fn mount_root(container: &Container, writable: bool, target: &Path) -> Result<(), FsError> {
    let dirs = &container.dirs;
    let rootfs = &container.spec.rootfs;
    let mut data = Vec::with_capacity(PAGE);
    data.extend_from_slice(b"lowerdir=");
    if !writable {
        data.extend_from_slice(dirs.upper().as_os_str().as_bytes());
        data.push(b':');
    }
    data.extend_from_slice(dirs.init_layer().as_os_str().as_bytes());
    for layer in &rootfs.lower {
        data.push(b':');
        data.extend_from_slice(layer.as_bytes());
    }
    if writable {
        data.extend_from_slice(b",upperdir=");
        data.extend_from_slice(dirs.upper().as_os_str().as_bytes());
        data.extend_from_slice(b",workdir=");
        data.extend_from_slice(dirs.work().as_os_str().as_bytes());
        if rootfs.self_contained {
            data.extend_from_slice(b",redirect_dir=off,metacopy=off");
        }
    }
    if data.len() >= PAGE {
        return Err(FsError::Invalid(format!("the overlay mount data of {} is over a page", container.name())));
    }
    let data = String::from_utf8_lossy(&data).into_owned();
    // The image's lowerdir entries are relative to the layer links (this thread has its own
    // working directory).
    nix::unistd::chdir(&rootfs.layer_root)
        .map_err(|e| FsError::io(format!("chdir {}", rootfs.layer_root.display()), e.into()))?;
    let flags = if writable { MsFlags::empty() } else { MsFlags::MS_RDONLY };
    mount(Some("overlay"), target, Some("overlay"), flags, Some(data.as_str()))
        .map_err(|e| FsError::io(format!("mount the root file system of {}", container.name()), e.into()))
}

/// `path` as a path in a container: absolute (docker reads a relative one from `/`).
pub fn container_path(path: &str) -> PathBuf {
    if path.starts_with('/') { PathBuf::from(path) } else { Path::new("/").join(path) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_unescaped() {
        assert_eq!(unescape(r"/a\040b/c\011d\134e"), std::ffi::OsString::from("/a b/c\td\\e"));
        assert_eq!(unescape(r"/plain\04"), std::ffi::OsString::from(r"/plain\04"));
    }
}
