//! Filesystem steps confined to a root descriptor, shared by the COPY sources and destinations.
//!
//! A build reads from and writes into trees it does not trust (an image's filesystem, another
//! stage's output), so a path inside one is never joined onto its host path: it is resolved by
//! `openat2` relative to a descriptor of the tree, either as if that descriptor were `/`
//! (`RESOLVE_IN_ROOT`: an absolute symlink such as `/app -> /` stays in the tree) or strictly
//! below it (`RESOLVE_BENEATH`: a symlink leaving it fails). Single names below a resolved
//! directory are then created with calls that never follow the last component.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{
    AtFlags, Dir, FileType, Gid, Mode, OFlags, ResolveFlags, Uid, fchmod, fchown, fstat, mkdirat, openat2, statat,
    unlinkat,
};
use rustix::io::Errno;

/// How often a resolution interrupted by a concurrent rename (`EAGAIN`) is retried.
const RESOLVE_RETRIES: usize = 64;
/// Symlinks followed while making a destination path, as the kernel's limit.
const MAX_SYMLINKS: usize = 40;
/// The largest /etc/passwd or /etc/group read from an image.
const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// How a path is resolved relative to the tree's descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Symlinks are followed as if the descriptor were `/`.
    InRoot,
    /// Symlinks are followed only while they stay below the descriptor.
    Beneath,
}

/// Opens `rel` (relative; empty for the descriptor itself) below `base` with `flags`.
pub(crate) fn open(base: BorrowedFd<'_>, rel: &Path, flags: OFlags, scope: Scope) -> Result<OwnedFd, Errno> {
    let rel: &Path = if rel.as_os_str().is_empty() { Path::new(".") } else { rel };
    let resolve = match scope {
        Scope::InRoot => ResolveFlags::IN_ROOT,
        Scope::Beneath => ResolveFlags::BENEATH,
    } | ResolveFlags::NO_MAGICLINKS;
    let flags =
        if flags.contains(OFlags::PATH) { flags | OFlags::CLOEXEC } else { flags | OFlags::CLOEXEC | OFlags::NOCTTY };
    let mut tries = 0;
    loop {
        match openat2(base, rel, flags, Mode::empty(), resolve) {
            Err(Errno::AGAIN | Errno::INTR) if tries < RESOLVE_RETRIES => tries += 1,
            other => return other,
        }
    }
}

/// Opens a directory path as `O_PATH | O_DIRECTORY`.
pub(crate) fn open_dir(base: BorrowedFd<'_>, rel: &Path, scope: Scope) -> Result<OwnedFd, Errno> {
    open(base, rel, OFlags::PATH | OFlags::DIRECTORY, scope)
}

/// Opens the single name `name` in `dir` without following a symlink.
pub(crate) fn open_child(dir: BorrowedFd<'_>, name: &OsStr, flags: OFlags) -> Result<OwnedFd, Errno> {
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    // openat2 refuses O_PATH with anything but O_DIRECTORY, O_NOFOLLOW and O_CLOEXEC.
    let extra = if flags.contains(OFlags::PATH) { OFlags::empty() } else { OFlags::NOCTTY };
    openat2(dir, name, flags | OFlags::NOFOLLOW | OFlags::CLOEXEC | extra, Mode::empty(), resolve)
}

/// Owner and mode given to a directory made here.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewDir {
    pub owner: (u32, u32),
    pub mode: u32,
}

/// The directory `rel` below `base` (`O_PATH`), made with its missing parents when missing.
/// Missing parents get `parents`; the last directory gets `last`.
pub(crate) fn ensure_dir(
    base: BorrowedFd<'_>,
    rel: &Path,
    scope: Scope,
    parents: NewDir,
    last: NewDir,
) -> Result<OwnedFd, Errno> {
    match open_dir(base, rel, scope) {
        Err(Errno::NOENT) => {}
        other => return other,
    }
    if scope == Scope::InRoot {
        return make_path_in_root(base, rel, parents, last);
    }
    let (Some(name), Some(parent)) = (rel.file_name(), rel.parent()) else {
        return Err(Errno::NOENT);
    };
    let dir = ensure_dir(base, parent, scope, parents, parents)?;
    make_dir(dir.as_fd(), name, last)?;
    open_dir(base, rel, scope)
}

/// The slow path of [`ensure_dir`] in a root: docker makes a missing destination wherever the
/// image's symlinks point (`/app -> /srv/app` makes `/srv/app`), so the path is walked one name
/// at a time, each symlink restarting the walk from the root at its target, as the kernel would
/// resolve it under `RESOLVE_IN_ROOT`. Only single names are opened, never followed.
fn make_path_in_root(root: BorrowedFd<'_>, rel: &Path, parents: NewDir, last: NewDir) -> Result<OwnedFd, Errno> {
    let mut todo: Vec<PathBuf> = rel.iter().rev().map(PathBuf::from).collect();
    let mut real = PathBuf::new();
    let mut cur = open_dir(root, Path::new(""), Scope::InRoot)?;
    let mut hops = 0;
    while let Some(name) = todo.pop() {
        let name = name.as_os_str();
        match statat(&cur, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => match FileType::from_raw_mode(st.st_mode) {
                FileType::Directory => {}
                FileType::Symlink => {
                    hops += 1;
                    if hops > MAX_SYMLINKS {
                        return Err(Errno::LOOP);
                    }
                    let link = rustix::fs::readlinkat(&cur, name, Vec::new())?;
                    let link = Path::new(OsStr::from_bytes(link.as_bytes()));
                    // `real` holds no symlinks, so `..` in a relative target is lexical.
                    let target = if link.is_absolute() { clean_path(link) } else { clean_path(&real.join(link)) };
                    todo.extend(target.iter().rev().map(PathBuf::from));
                    real = PathBuf::new();
                    cur = open_dir(root, Path::new(""), Scope::InRoot)?;
                    continue;
                }
                _ => return Err(Errno::NOTDIR),
            },
            Err(Errno::NOENT) => make_dir(cur.as_fd(), name, if todo.is_empty() { last } else { parents })?,
            Err(e) => return Err(e),
        }
        cur = open_child(cur.as_fd(), name, OFlags::PATH | OFlags::DIRECTORY)?;
        real.push(name);
    }
    Ok(cur)
}

/// `path` with `.` dropped and `..` applied lexically, never above the root; relative.
fn clean_path(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::Normal(name) => out.push(name),
            std::path::Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// `mkdirat` of `name` in `parent` with the owner and exact mode (no umask) of `new`; an
/// existing entry is left alone.
pub(crate) fn make_dir(parent: BorrowedFd<'_>, name: &OsStr, new: NewDir) -> Result<(), Errno> {
    match mkdirat(parent, name, Mode::from_raw_mode(0o700)) {
        Ok(()) => {}
        Err(Errno::EXIST) => return Ok(()),
        Err(e) => return Err(e),
    }
    let dir = open_child(parent, name, OFlags::RDONLY | OFlags::DIRECTORY)?;
    set_owner_mode(&dir, new.owner, new.mode)
}

/// chown first: it clears set-id bits, which the mode then restores.
pub(crate) fn set_owner_mode(fd: &OwnedFd, owner: (u32, u32), mode: u32) -> Result<(), Errno> {
    fchown(fd, Some(Uid::from_raw(owner.0)), Some(Gid::from_raw(owner.1)))?;
    fchmod(fd, Mode::from_raw_mode(mode & 0o7777))
}

/// Makes room for a new non-directory `name` in `dir`: a file, symlink or node there is
/// removed; a directory is `EISDIR` (a file never silently replaces a directory tree).
pub(crate) fn clear_for_file(dir: BorrowedFd<'_>, name: &OsStr) -> Result<(), Errno> {
    match statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e),
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => Err(Errno::ISDIR),
        Ok(_) => match unlinkat(dir, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(e),
        },
    }
}

/// The names in directory `dir` (any descriptor of it), sorted bytewise, without `.` and `..`.
pub(crate) fn list(dir: BorrowedFd<'_>) -> Result<Vec<PathBuf>, Errno> {
    let readable = open(dir, Path::new(""), OFlags::RDONLY | OFlags::DIRECTORY, Scope::Beneath)?;
    let mut names = Vec::new();
    for entry in Dir::read_from(&readable)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(PathBuf::from(OsStr::from_bytes(name)));
        }
    }
    names.sort_by(|a, b| a.as_os_str().as_bytes().cmp(b.as_os_str().as_bytes()));
    Ok(names)
}

/// A small regular file of the tree (/etc/passwd), `None` when missing. It is pinned with
/// `O_PATH` and checked before it is opened for reading: opening a FIFO would block and opening
/// a device node may have effects of its own. Files over 4 MiB are refused (`EFBIG`).
pub(crate) fn read_config(root: BorrowedFd<'_>, rel: &Path) -> Result<Option<String>, Errno> {
    let pinned = match open(root, rel, OFlags::PATH, Scope::InRoot) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        Err(e) => return Err(e),
    };
    if FileType::from_raw_mode(fstat(&pinned)?.st_mode) != FileType::RegularFile {
        return Err(Errno::INVAL);
    }
    // The host's /proc reopens exactly the inode the O_PATH descriptor pins.
    let reopen = format!("/proc/self/fd/{}", pinned.as_raw_fd());
    let fd = rustix::fs::open(reopen, OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY, Mode::empty())?;
    let mut text = Vec::new();
    File::from(fd)
        .take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO))?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(Errno::FBIG);
    }
    Ok(Some(String::from_utf8_lossy(&text).into_owned()))
}

/// An absolute build path cleaned as `filepath.Clean("/" + path)` does, as a relative path:
/// `.` and empty names dropped, `..` applied lexically and never above the root.
pub(crate) fn clean(path: &str) -> PathBuf {
    PathBuf::from(crate::spec::volumes::clean_absolute(path).trim_start_matches('/'))
}

/// `rel` as the tree shows it: `/a/b`.
pub(crate) fn display(rel: &Path) -> String {
    format!("/{}", rel.display())
}
