//! Docker's copy-up: a new, empty volume gets the image's content at its mount point, with
//! owners, modes and links kept.
//!
//! Both trees are hostile. The volume may be mounted in another running container that plants
//! a symlink (`etc -> /`, or a dangling `x -> /host/file`) at a name this copy is about to write,
//! and a plain `create`/`open` by path would follow it on the host. So nothing here takes a
//! path: each directory is a descriptor, each entry a single name below it, opened with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`, created with `O_CREAT | O_EXCL |
//! O_NOFOLLOW` or `mkdirat`, and owners and modes are set on descriptors. An entry that exists
//! already in the volume (someone raced us to it) is left as it is, never written through.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{
    AtFlags, FileType, Gid, Mode, OFlags, Uid, chownat, fstat, mkdirat, openat2, readlinkat, statat, symlinkat,
};
use rustix::io::Errno;

use crate::build::in_root::{list, open_child, set_owner_mode};

/// How deep the copy descends (each level holds two descriptors).
const MAX_DEPTH: usize = 256;

/// Whether the directory `dir` (any descriptor of it) has no entries.
pub(super) fn is_empty(dir: BorrowedFd<'_>) -> io::Result<bool> {
    Ok(list(dir)?.is_empty())
}

/// Copies the children of directory `from` into directory `to` and gives `to` the owner and
/// mode of `from`. A `from` that is not a directory copies nothing.
pub(super) fn copy(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> io::Result<()> {
    let source = fstat(from)?;
    if FileType::from_raw_mode(source.st_mode) != FileType::Directory {
        return Ok(());
    }
    // `to` may be an O_PATH descriptor, which fchown/fchmod refuse.
    let target = open_child_dir(to, OsStr::new("."))?;
    set_owner_mode(&target, (source.st_uid, source.st_gid), source.st_mode)?;
    let from = open_child_dir(from, OsStr::new("."))?;
    copy_children(from.as_fd(), target.as_fd(), 0)
}

fn open_child_dir(dir: BorrowedFd<'_>, name: &OsStr) -> Result<OwnedFd, Errno> {
    if name == "." {
        // "." is the descriptor itself: no component to follow.
        let resolve = rustix::fs::ResolveFlags::BENEATH | rustix::fs::ResolveFlags::NO_SYMLINKS;
        return openat2(dir, ".", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty(), resolve);
    }
    open_child(dir, name, OFlags::RDONLY | OFlags::DIRECTORY)
}

fn copy_children(from: BorrowedFd<'_>, to: BorrowedFd<'_>, depth: usize) -> io::Result<()> {
    if depth >= MAX_DEPTH {
        return Err(Errno::LOOP.into());
    }
    for name in list(from)? {
        let name = name.as_os_str();
        let meta = match statat(from, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(meta) => meta,
            Err(Errno::NOENT) => continue,
            Err(e) => return Err(e.into()),
        };
        let owner = (meta.st_uid, meta.st_gid);
        match FileType::from_raw_mode(meta.st_mode) {
            FileType::Symlink => {
                let link = readlinkat(from, name, Vec::new())?;
                match symlinkat(link.as_c_str(), to, name) {
                    Ok(()) => {}
                    Err(Errno::EXIST) => continue,
                    Err(e) => return Err(e.into()),
                }
                chownat(
                    to,
                    name,
                    Some(Uid::from_raw(owner.0)),
                    Some(Gid::from_raw(owner.1)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )?;
            }
            FileType::Directory => {
                match mkdirat(to, name, Mode::from_raw_mode(0o700)) {
                    Ok(()) => {}
                    Err(Errno::EXIST) => continue,
                    Err(e) => return Err(e.into()),
                }
                // The name just made is opened without following anything: if it was swapped
                // for a symlink in between, this fails instead of descending into the link.
                let target = open_child_dir(to, name)?;
                let source = open_child_dir(from, name)?;
                copy_children(source.as_fd(), target.as_fd(), depth + 1)?;
                set_owner_mode(&target, owner, meta.st_mode)?;
            }
            FileType::RegularFile => copy_file(from, to, name, owner, meta.st_mode)?,
            // Devices, fifos and sockets are not data; docker skips them too.
            _ => {}
        }
    }
    Ok(())
}

fn copy_file(from: BorrowedFd<'_>, to: BorrowedFd<'_>, name: &OsStr, owner: (u32, u32), mode: u32) -> io::Result<()> {
    // O_NONBLOCK: an entry swapped for a FIFO since the stat must not hang the start.
    let source = open_child(from, name, OFlags::RDONLY | OFlags::NONBLOCK)?;
    if FileType::from_raw_mode(fstat(&source)?.st_mode) != FileType::RegularFile {
        return Ok(());
    }
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let resolve = rustix::fs::ResolveFlags::BENEATH | rustix::fs::ResolveFlags::NO_SYMLINKS;
    let target = match openat2(to, name, flags, Mode::from_raw_mode(0o600), resolve) {
        Ok(fd) => fd,
        Err(Errno::EXIST) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let mut reader = File::from(source);
    let mut writer = File::from(target);
    io::copy(&mut reader, &mut writer)?;
    set_owner_mode(&OwnedFd::from(writer), owner, mode)?;
    Ok(())
}

/// Opens a host directory the copy writes into (a volume's `_data`), not following a final
/// symlink.
pub(super) fn open_volume(dir: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(dir, OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())?)
}

#[cfg(test)]
#[path = "copy_up_tests.rs"]
mod tests;
