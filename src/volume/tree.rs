//! Removing a directory tree that containers wrote, by descriptor only.
//!
//! The tree is hostile: it may hold symlinks to `/`, directories swapped for links while we
//! work, or chains deeper than the descriptor limit. Every step is an `openat`/`unlinkat`
//! relative to an open directory with `O_NOFOLLOW`, so no link is ever followed; at most
//! [`OPEN_LEVELS`] directories stay open, and a level whose descriptor was closed is reopened
//! name by name from the nearest open ancestor and checked to be the same inode.

use std::collections::HashSet;
use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, fstat, openat, statat, unlinkat};
use rustix::io::Errno;

/// How many levels of the walk keep their directory open.
const OPEN_LEVELS: usize = 32;

/// A failed step: what it was done to, and the error number.
#[derive(Debug)]
pub(super) struct TreeError {
    /// The entry's name (not a path: the tree may be deeper than any path).
    pub what: String,
    /// The error.
    pub errno: Errno,
}

impl TreeError {
    fn new(name: &CStr, errno: Errno) -> Self {
        TreeError { what: name.to_string_lossy().into_owned(), errno }
    }
}

/// One directory on the way down.
#[derive(Debug)]
struct Level {
    /// Its name in its parent.
    name: CString,
    /// Open while it is among the deepest [`OPEN_LEVELS`] levels (the first level always).
    fd: Option<OwnedFd>,
    /// Identity, to check a reopened level is still the same directory.
    ino: u64,
    /// Subdirectories still to empty; `None` until the directory has been read.
    pending: Option<Vec<CString>>,
}

/// Removes `name` (a directory) under `parent` with everything in it, never following a
/// symlink and never leaving the file system it is on. Returns the bytes of the files
/// removed, each inode counted once (docker's measure of reclaimed space).
pub(super) fn remove_tree(parent: BorrowedFd<'_>, name: &CStr) -> Result<u64, TreeError> {
    let fd = open_dir(parent, name).map_err(|e| TreeError::new(name, e))?;
    let stat = fstat(&fd).map_err(|e| TreeError::new(name, e))?;
    let dev = stat.st_dev;
    let mut walk = Walk { bytes: 0, seen: HashSet::new() };
    let mut stack = vec![Level { name: name.to_owned(), fd: Some(fd), ino: stat.st_ino, pending: None }];
    while !stack.is_empty() {
        reopen(&mut stack)?;
        let (child, fd) = {
            let Some(top) = stack.last_mut() else { break };
            let Some(dir) = top.fd.as_ref() else { return Err(TreeError::new(&top.name, Errno::BADF)) };
            if top.pending.is_none() {
                top.pending = Some(walk.empty_files(dir.as_fd())?);
            }
            match top.pending.as_mut().and_then(Vec::pop) {
                None => (None, None),
                Some(child) => match open_dir(dir.as_fd(), &child) {
                    Ok(fd) => (Some(child), Some(fd)),
                    // Swapped for a link or a file since it was read: remove that instead.
                    Err(Errno::LOOP | Errno::NOTDIR) => {
                        unlinkat(dir.as_fd(), child.as_c_str(), AtFlags::empty())
                            .map_err(|e| TreeError::new(&child, e))?;
                        continue;
                    }
                    Err(Errno::NOENT) => continue,
                    Err(e) => return Err(TreeError::new(&child, e)),
                },
            }
        };
        if let (Some(child), Some(fd)) = (child, fd) {
            let st = fstat(&fd).map_err(|e| TreeError::new(&child, e))?;
            if st.st_dev != dev {
                return Err(TreeError::new(&child, Errno::XDEV));
            }
            stack.push(Level { name: child, fd: Some(fd), ino: st.st_ino, pending: None });
            // The first level stays open: every reopen starts there at the latest.
            if stack.len() > OPEN_LEVELS + 1 {
                let index = stack.len() - OPEN_LEVELS - 1;
                stack[index].fd = None;
            }
            continue;
        }
        // The top is empty now: remove it from its parent.
        let done = stack.pop().map(|l| l.name).unwrap_or_default();
        if stack.is_empty() {
            unlinkat(parent, done.as_c_str(), AtFlags::REMOVEDIR).map_err(|e| TreeError::new(&done, e))?;
        } else {
            reopen(&mut stack)?;
            let Some(up) = stack.last().and_then(|l| l.fd.as_ref()) else {
                return Err(TreeError::new(&done, Errno::BADF));
            };
            unlinkat(up.as_fd(), done.as_c_str(), AtFlags::REMOVEDIR).map_err(|e| TreeError::new(&done, e))?;
        }
    }
    Ok(walk.bytes)
}

struct Walk {
    bytes: u64,
    seen: HashSet<(u64, u64)>,
}

impl Walk {
    /// Unlinks every entry of `dir` that is not a directory and returns the directories' names.
    fn empty_files(&mut self, dir: BorrowedFd<'_>) -> Result<Vec<CString>, TreeError> {
        let mut subdirs = Vec::new();
        let entries = Dir::read_from(dir).map_err(|e| TreeError { what: ".".into(), errno: e })?;
        for entry in entries {
            let entry = entry.map_err(|e| TreeError { what: ".".into(), errno: e })?;
            let name = entry.file_name();
            if name.to_bytes() == b"." || name.to_bytes() == b".." {
                continue;
            }
            let st = match statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(TreeError::new(name, e)),
            };
            if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                subdirs.push(name.to_owned());
                continue;
            }
            self.bytes += counted(&mut self.seen, &st);
            match unlinkat(dir, name, AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => return Err(TreeError::new(name, e)),
            }
        }
        Ok(subdirs)
    }
}

/// A file's size the first time its inode is met (hard links count once), as docker counts.
fn counted(seen: &mut HashSet<(u64, u64)>, st: &rustix::fs::Stat) -> u64 {
    let size = u64::try_from(st.st_size).unwrap_or(0);
    // Removing one link lowers the count of the others: remember every inode that had more.
    let key = (st.st_dev, st.st_ino);
    if seen.contains(&key) {
        return 0;
    }
    if st.st_nlink > 1 {
        seen.insert(key);
    }
    size
}

fn open_dir(parent: BorrowedFd<'_>, name: &CStr) -> Result<OwnedFd, Errno> {
    openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )
}

/// Opens the top of the stack again when its descriptor was closed: name by name from the
/// nearest open level, each checked against the inode seen on the way down. The deepest
/// [`OPEN_LEVELS`] levels reopened stay open, so the way back up reopens rarely.
fn reopen(stack: &mut [Level]) -> Result<(), TreeError> {
    let depth = stack.len();
    if stack[depth - 1].fd.is_some() {
        return Ok(());
    }
    let Some(start) = stack.iter().rposition(|l| l.fd.is_some()) else {
        return Err(TreeError::new(&stack[0].name, Errno::BADF));
    };
    let keep_from = depth.saturating_sub(OPEN_LEVELS);
    let mut current: Option<OwnedFd> = None;
    for index in start + 1..depth {
        let fd = {
            let from = match current.as_ref() {
                Some(fd) => fd.as_fd(),
                None => stack[index - 1]
                    .fd
                    .as_ref()
                    .map(AsFd::as_fd)
                    .ok_or_else(|| TreeError::new(&stack[index - 1].name, Errno::BADF))?,
            };
            open_dir(from, &stack[index].name).map_err(|e| TreeError::new(&stack[index].name, e))?
        };
        let st = fstat(&fd).map_err(|e| TreeError::new(&stack[index].name, e))?;
        if st.st_ino != stack[index].ino {
            // Renamed under us: some other directory now has this name. Stop rather than
            // remove what we did not walk into.
            return Err(TreeError::new(&stack[index].name, Errno::STALE));
        }
        if index >= keep_from {
            let dup = fd
                .try_clone()
                .map_err(|e| TreeError::new(&stack[index].name, Errno::from_io_error(&e).unwrap_or(Errno::IO)))?;
            stack[index].fd = Some(dup);
        }
        current = Some(fd);
    }
    Ok(())
}
