//! The `*at` system calls every write goes through: `openat2` resolution that cannot leave the
//! layer, creation of missing directories, removal without following symlinks, and owner, mode,
//! xattr and time setters for entries reached by fd or by name.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::{FchmodatFlags, Mode, SFlag, UtimensatFlags, fchmod, fchmodat, fstatat, mkdirat, utimensat};
use nix::unistd::{UnlinkatFlags, fchown, fchownat, unlinkat};

use super::{DIR_FLAGS, Meta, UnpackError, fs, invalid, xattr_err};

/// Opens `path` below `dir` without leaving it: no absolute or escaping symlinks, no magic links,
/// no mount crossings.
pub(super) fn resolve(dir: BorrowedFd<'_>, path: &[u8], flags: OFlag) -> nix::Result<OwnedFd> {
    let resolve = ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS | ResolveFlag::RESOLVE_NO_XDEV;
    let how = OpenHow::new().flags(flags | OFlag::O_CLOEXEC).resolve(resolve);
    let mut attempts = 0;
    loop {
        match openat2(dir, path, how) {
            // The kernel saw a concurrent rename or mount somewhere and asks for a retry.
            Err(Errno::EAGAIN) if attempts < 16 => attempts += 1,
            other => return other,
        }
    }
}

/// Removes `name` and everything below it. Depth is attacker-controlled, so there is no recursion
/// and no fd per level: each directory is reopened from `parent` with symlinks forbidden.
pub(super) fn remove_tree(parent: BorrowedFd<'_>, name: &[u8]) -> nix::Result<()> {
    match unlinkat(parent, name, UnlinkatFlags::NoRemoveDir) {
        Err(Errno::EISDIR) => {}
        other => return other,
    }
    let how = OpenHow::new()
        .flags(DIR_FLAGS | OFlag::O_RDONLY)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_NO_XDEV);
    let open_below = |path: &[Vec<u8>]| openat2(parent, path.join(&b'/').as_slice(), how);
    let mut path = vec![name.to_vec()];
    let mut cur = open_below(&path)?;
    let mut pending = vec![list(cur.as_fd())?];
    while let Some(children) = pending.last_mut() {
        if let Some(child) = children.pop() {
            match unlinkat(cur.as_fd(), child.as_c_str(), UnlinkatFlags::NoRemoveDir) {
                Ok(()) | Err(Errno::ENOENT) => {}
                Err(Errno::EISDIR) => {
                    path.push(child.into_bytes());
                    cur = open_below(&path)?;
                    pending.push(list(cur.as_fd())?);
                }
                Err(e) => return Err(e),
            }
            continue;
        }
        pending.pop();
        let done = path.pop().unwrap_or_default();
        if path.is_empty() {
            return unlinkat(parent, done.as_slice(), UnlinkatFlags::RemoveDir);
        }
        cur = open_below(&path)?;
        unlinkat(cur.as_fd(), done.as_slice(), UnlinkatFlags::RemoveDir)?;
    }
    Ok(())
}

fn list(dir: BorrowedFd<'_>) -> nix::Result<Vec<CString>> {
    let mut handle = Dir::openat(dir, c".", DIR_FLAGS | OFlag::O_RDONLY, Mode::empty())?;
    let names = handle.iter().map(|item| item.map(|i| i.file_name().to_owned()));
    names.filter(|n| n.as_ref().map_or(true, |n| !matches!(n.to_bytes(), b"." | b".."))).collect()
}

pub(super) fn is_dir(dir: BorrowedFd<'_>, name: &[u8]) -> bool {
    fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)
        .is_ok_and(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR)
}

pub(super) fn mkdir_755(dir: BorrowedFd<'_>, name: &[u8]) -> nix::Result<()> {
    let mode = Mode::from_bits_truncate(0o755);
    match mkdirat(dir, name, mode) {
        // A fixed mode whatever the umask; the name is the directory we just made.
        Ok(()) => fchmodat(dir, name, mode, FchmodatFlags::FollowSymlink),
        Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Owner, mode and xattrs of a file or directory, through its fd.
pub(super) fn fd_meta(fd: BorrowedFd<'_>, meta: &Meta, raw: &[u8]) -> Result<(), UnpackError> {
    // chown clears setuid bits and security.capability, so it goes first.
    fchown(fd, Some(meta.uid), Some(meta.gid)).map_err(fs(raw, "set the owner"))?;
    fchmod(fd, meta.mode).map_err(fs(raw, "set the mode"))?;
    for (key, value) in &meta.xattrs {
        fsetxattr(fd, key, value).map_err(xattr_err(raw, key))?;
    }
    Ok(())
}

/// Metadata of a symlink or special file, by name: opening a FIFO blocks and opening a device
/// reaches its driver, so these never get an fd.
pub(super) fn special_meta(
    parent: &OwnedFd,
    name: &[u8],
    meta: &Meta,
    symlink: bool,
    raw: &[u8],
) -> Result<(), UnpackError> {
    let dir = parent.as_fd();
    fchownat(dir, name, Some(meta.uid), Some(meta.gid), AtFlags::AT_SYMLINK_NOFOLLOW)
        .map_err(fs(raw, "set the owner"))?;
    if !symlink {
        // We just created this name as a node, so following it cannot go anywhere else.
        fchmodat(dir, name, meta.mode, FchmodatFlags::FollowSymlink).map_err(fs(raw, "set the mode"))?;
    }
    if !meta.xattrs.is_empty() {
        let mut path = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
        path.extend_from_slice(name);
        let path = CString::new(path).map_err(|_| invalid(raw, "the name contains a NUL byte"))?;
        for (key, value) in &meta.xattrs {
            // SAFETY: both strings are NUL-terminated and `value` is readable for its length.
            let rc = unsafe { libc::lsetxattr(path.as_ptr(), key.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
            Errno::result(rc).map_err(xattr_err(raw, key))?;
        }
    }
    utimensat(dir, name, &meta.mtime, &meta.mtime, UtimensatFlags::NoFollowSymlink).map_err(fs(raw, "set the mtime"))
}

pub(super) fn fsetxattr(fd: BorrowedFd<'_>, name: &CStr, value: &[u8]) -> nix::Result<()> {
    // SAFETY: `name` is NUL-terminated, `value` is readable for its length and `fd` is open.
    let rc = unsafe { libc::fsetxattr(fd.as_raw_fd(), name.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    Errno::result(rc).map(drop)
}
