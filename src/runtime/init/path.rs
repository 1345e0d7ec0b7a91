//! Paths inside the container's root, resolved as if the root were `/`: an image's symlink
//! (`/etc/resolv.conf -> /run/...`, or a hostile `/data -> /`) can never lead a mount or a write
//! outside the root. Everything goes through `openat2(RESOLVE_IN_ROOT)` on a descriptor of
//! the root, and mounts target `/proc/self/fd/N` of the resolved descriptor.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::{Mode, mkdirat};

use super::sys::Sys;
use super::{Context, Failure};

/// An open root directory.
#[derive(Debug)]
pub(super) struct Root {
    fd: OwnedFd,
    sys: &'static dyn Sys,
}

/// What to create at the end of a path that does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Dir,
    File,
}

impl Root {
    pub(super) fn open(sys: &'static dyn Sys, path: &Path) -> Result<Root, Failure> {
        let fd = nix::fcntl::open(path, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
            .context(|| format!("open {}", path.display()))?;
        Ok(Root { fd, sys })
    }

    /// The system calls that change mounts and make devices.
    pub(super) fn sys(&self) -> &'static dyn Sys {
        self.sys
    }

    /// Resolves `target` (absolute in the container) to an `O_PATH` descriptor, or `None`.
    pub(super) fn lookup(&self, target: &str) -> Result<Option<OwnedFd>, Failure> {
        match self.resolve(relative(target), OFlag::O_PATH) {
            Ok(fd) => Ok(Some(fd)),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(Failure(format!("resolve {target}: {e}"))),
        }
    }

    /// Resolves `target`, creating missing directories (mode 755) and, when missing, the last
    /// component as `kind`. The usual case — only the last component missing — costs one failed
    /// lookup, the parent's lookup, the creation and the final lookup.
    pub(super) fn ensure(&self, target: &str, kind: Kind) -> Result<OwnedFd, Failure> {
        let parts: Vec<&str> = relative(target).split('/').filter(|p| !p.is_empty() && *p != ".").collect();
        self.ensure_parts(&parts, kind, target)
    }

    fn ensure_parts(&self, parts: &[&str], kind: Kind, target: &str) -> Result<OwnedFd, Failure> {
        let rel = parts.join("/");
        match self.resolve(&rel, OFlag::O_PATH) {
            Err(Errno::ENOENT) => {}
            other => return other.context(|| format!("resolve {target}")),
        }
        let Some((name, parent)) = parts.split_last() else {
            return Err(Failure(format!("resolve {target}: the root is missing")));
        };
        let dir = self.ensure_parts(parent, Kind::Dir, target)?;
        match kind {
            Kind::File => {
                let how = OpenHow::new()
                    .flags(OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
                    .mode(Mode::from_bits_truncate(0o644))
                    .resolve(ResolveFlag::RESOLVE_IN_ROOT);
                drop(openat2(dir.as_fd(), *name, how).context(|| format!("create {target}"))?);
            }
            Kind::Dir => match mkdirat(dir.as_fd(), *name, Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(Failure(format!("create {target}: {e}"))),
            },
        }
        self.resolve(&rel, OFlag::O_PATH).context(|| format!("open {target}"))
    }

    /// Opens `target` with `flags` (e.g. `O_RDONLY | O_DIRECTORY`).
    pub(super) fn open_at(&self, target: &str, flags: OFlag) -> Result<OwnedFd, Failure> {
        self.resolve(relative(target), flags).context(|| format!("open {target}"))
    }

    fn resolve(&self, rel: &str, flags: OFlag) -> nix::Result<OwnedFd> {
        let rel = if rel.is_empty() { "." } else { rel };
        let how = OpenHow::new().flags(flags | OFlag::O_CLOEXEC).resolve(ResolveFlag::RESOLVE_IN_ROOT);
        loop {
            match openat2(self.fd.as_fd(), rel, how) {
                Err(Errno::EAGAIN | Errno::EINTR) => continue,
                other => return other,
            }
        }
    }
}

/// `/proc/self/fd/N` for a descriptor: the path a mount can target without re-resolving.
pub(super) fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

fn relative(target: &str) -> &str {
    target.trim_start_matches('/')
}
