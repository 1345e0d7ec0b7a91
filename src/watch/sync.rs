//! `develop.watch` sync: host files written straight into a running container's filesystem from
//! the host side, so sync needs no `tar` in the image, works for non-root container users and
//! removes deleted files.
//!
//! The container owns its filesystem, so nothing in it is trusted. Every path inside it is
//! resolved with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` relative to a descriptor of
//! the container's root (`/proc/<pid>/root`), never by joining strings onto that path: an
//! absolute symlink such as `/app -> /` would then resolve against the host's root (docker cp's
//! CVE-2019-14271, runc's CVE-2021-30465). Below a resolved directory only single names are
//! used, with calls that do not follow a symlink in the last component (`mkdirat`, `renameat`,
//! `unlinkat`, `O_CREAT | O_EXCL | O_NOFOLLOW`, `openat2(RESOLVE_NO_SYMLINKS)`), and owners and
//! modes are set on descriptors. Writes land wherever the path is in the container's view: its
//! overlay upper directory or a volume mounted in it.

use std::ffi::{CString, OsStr};
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{
    AtFlags, Dir, FileType, Gid, Mode, OFlags, ResolveFlags, Stat, Uid, chownat, fchmod, fchown, fstat, mkdirat,
    openat, openat2, readlinkat, renameat, statat, symlinkat, unlinkat,
};
use rustix::io::Errno;

use crate::runtime::user::{UserError, resolve_user};

/// The largest /etc/passwd or /etc/group read from a container.
const MAX_CONFIG_BYTES: u64 = 4 << 20;
/// How deep `remove` descends into a container's directories (each level holds a descriptor).
const MAX_DEPTH: usize = 256;
/// How often a resolution interrupted by a concurrent rename (`EAGAIN`) is retried.
const RESOLVE_RETRIES: usize = 64;

/// Why a sync step failed; container paths are as the container sees them.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// `/proc/<pid>/root` could not be opened (the container is gone, or not ours to reach).
    #[error("cannot reach the filesystem of container process {pid}: {source}")]
    Root {
        /// The container's host PID.
        pid: i32,
        /// The cause.
        source: io::Error,
    },
    /// The container's `user:` could not be resolved in its /etc/passwd and /etc/group.
    #[error("container user {user:?}: {source}")]
    User {
        /// `user:` as written.
        user: String,
        /// The cause.
        source: UserError,
    },
    /// A container path that sync refuses (relative, with `..`, or the root where a name is
    /// needed).
    #[error("container path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A host file could not be read.
    #[error("read {}: {source}", path.display())]
    Source {
        /// The host path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// An operation inside the container failed.
    #[error("{op} {path} in the container: {source}")]
    Container {
        /// What was being done (`resolve`, `create`, `write`, `remove`, …).
        op: &'static str,
        /// The container path.
        path: String,
        /// The cause.
        source: io::Error,
    },
}

fn in_container(op: &'static str, path: &str) -> impl FnOnce(Errno) -> SyncError {
    move |e| SyncError::Container { op, path: path.to_owned(), source: e.into() }
}

fn from_host(path: &Path) -> impl FnOnce(io::Error) -> SyncError {
    move |source| SyncError::Source { path: path.to_owned(), source }
}

/// A running container's filesystem, reached from the host through /proc/<pid>/root.
#[derive(Debug)]
pub struct SyncTarget {
    /// `O_PATH | O_DIRECTORY` descriptor of the container's root.
    root: OwnedFd,
    /// Owner of everything written; `None` keeps the writer's own (tests).
    owner: Option<(u32, u32)>,
}

impl SyncTarget {
    /// Opens the root of the container whose PID 1 is host process `pid` and resolves `user`
    /// (`name`, `uid`, `name:group`, `uid:gid`; `""` is root) to the owner of the files written,
    /// with the container's own /etc/passwd and /etc/group, as its process was started.
    pub fn open(pid: i32, user: &str) -> Result<SyncTarget, SyncError> {
        if pid <= 0 {
            return Err(SyncError::Root { pid, source: io::Error::from(io::ErrorKind::InvalidInput) });
        }
        let root = rustix::fs::open(
            format!("/proc/{pid}/root"),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| SyncError::Root { pid, source: e.into() })?;
        let mut target = SyncTarget { root, owner: None };
        let passwd = target.read_config("/etc/passwd")?;
        let group = target.read_config("/etc/group")?;
        let resolved = resolve_user(user, &[], passwd.as_deref(), group.as_deref())
            .map_err(|source| SyncError::User { user: user.to_owned(), source })?;
        target.owner = Some((resolved.uid, resolved.gid));
        Ok(target)
    }

    /// Any directory as the root (tests, or a root filesystem that is not running).
    pub fn from_dir(root: OwnedFd, owner: Option<(u32, u32)>) -> SyncTarget {
        SyncTarget { root, owner }
    }

    /// The uid and gid files are written with, `None` when they keep the writer's.
    pub fn owner(&self) -> Option<(u32, u32)> {
        self.owner
    }

    /// Copies host `source` (a file, or a directory recursively) to absolute container path
    /// `target`. Missing parents are created (0755, owned by the container user); a file is
    /// written to a temporary name in its directory and renamed over `target`, so readers see
    /// the old or the new content, never part of it; the host file's mode bits are kept and the
    /// owner is the container user. Host symlinks are copied as symlinks, sockets, FIFOs and
    /// devices are skipped. Symlinks in the container are followed *inside* its root on the way
    /// to `target` (and at `target` itself when it is an existing directory a directory is
    /// copied into); below that, an entry of another type than the host's is replaced.
    /// Returns the number of files (and symlinks) written.
    pub fn copy_in(&self, source: &Path, target: &str) -> Result<usize, SyncError> {
        self.copy_in_from(source, source, target)
    }

    /// [`copy_in`](Self::copy_in) of `source`, a path in the watched host tree `tree` (the
    /// rule's path, which is followed as configured). Below `tree` no symlink is followed on
    /// the host: each name is opened with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` from
    /// its parent's descriptor, so a link in the tree (`src/cfg -> /etc`) or one swapped in
    /// while sync runs cannot make it read a host file outside the tree (`ELOOP`).
    pub fn copy_in_from(&self, tree: &Path, source: &Path, target: &str) -> Result<usize, SyncError> {
        let (parent, name) = open_host(tree, source)?;
        let host = Host { dir: parent.as_fd(), name: &name, path: source };
        let parts = components(target)?;
        let meta = host.stat()?;
        if is_type(&meta, FileType::Directory) {
            // An existing directory, or a symlink to one inside the root, is copied into.
            match self.resolve(&parts, OFlags::RDONLY | OFlags::DIRECTORY) {
                Ok(dir) => {
                    // The host directory's mode, but never on the container's root.
                    if !parts.is_empty() {
                        fchmod(&dir, mode_of(&meta)).map_err(in_container("chmod", target))?;
                    }
                    let from = host.open(OFlags::RDONLY | OFlags::DIRECTORY)?;
                    return self.copy_children(dir.as_fd(), from.as_fd(), source, target);
                }
                Err(Errno::NOENT | Errno::NOTDIR) => {}
                Err(e) => return Err(in_container("resolve", target)(e)),
            }
        }
        let Some((name, parent)) = parts.split_last() else {
            return Err(SyncError::InvalidPath { path: target.to_owned(), reason: "only a directory can go to /" });
        };
        let dir = self.ensure_dir(parent, target)?;
        self.copy_entry(dir.as_fd(), name, &host, &meta, target)
    }

    /// Removes `target` (a file, a symlink — never what it points to — or a directory with
    /// everything in it) inside the container. A missing path is fine.
    pub fn remove(&self, target: &str) -> Result<(), SyncError> {
        let parts = components(target)?;
        let Some((name, parent)) = parts.split_last() else {
            return Err(SyncError::InvalidPath { path: target.to_owned(), reason: "refusing to remove /" });
        };
        match self.resolve(parent, OFlags::PATH | OFlags::DIRECTORY) {
            Ok(dir) => remove_tree(dir.as_fd(), name, target, 0),
            Err(Errno::NOENT | Errno::NOTDIR) => Ok(()),
            Err(e) => Err(in_container("resolve", target)(e)),
        }
    }

    /// Opens `parts` (relative to the container's root) with `flags`, every symlink resolved
    /// as if the root were `/`, magic links refused.
    fn resolve(&self, parts: &[&str], flags: OFlags) -> Result<OwnedFd, Errno> {
        let rel = if parts.is_empty() { ".".to_owned() } else { parts.join("/") };
        let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
        let mut tries = 0;
        loop {
            match openat2(&self.root, &rel, with_defaults(flags), Mode::empty(), resolve) {
                Err(Errno::AGAIN | Errno::INTR) if tries < RESOLVE_RETRIES => tries += 1,
                other => return other,
            }
        }
    }

    /// The directory `parts`, made (with its missing parents) when missing; `O_PATH`.
    fn ensure_dir(&self, parts: &[&str], target: &str) -> Result<OwnedFd, SyncError> {
        let flags = OFlags::PATH | OFlags::DIRECTORY;
        match self.resolve(parts, flags) {
            Err(Errno::NOENT) => {}
            other => return other.map_err(in_container("resolve", target)),
        }
        let Some((name, parent)) = parts.split_last() else {
            return Err(in_container("resolve", target)(Errno::NOENT));
        };
        let dir = self.ensure_dir(parent, target)?;
        self.make_dir(dir.as_fd(), name, Mode::from_raw_mode(0o755), target)?;
        self.resolve(parts, flags).map_err(in_container("resolve", target))
    }

    /// `mkdirat` of `name` in `parent`, then owner and `mode` set on the new directory; an
    /// existing entry is left alone.
    fn make_dir(&self, parent: BorrowedFd<'_>, name: &str, mode: Mode, path: &str) -> Result<(), SyncError> {
        match mkdirat(parent, name, Mode::from_raw_mode(0o700)) {
            Ok(()) => {}
            Err(Errno::EXIST) => return Ok(()),
            Err(e) => return Err(in_container("create", path)(e)),
        }
        let dir = open_child(parent, name, OFlags::RDONLY | OFlags::DIRECTORY).map_err(in_container("open", path))?;
        self.chown(&dir, path)?;
        fchmod(&dir, mode).map_err(in_container("chmod", path))
    }

    fn chown(&self, fd: &OwnedFd, path: &str) -> Result<(), SyncError> {
        let Some((uid, gid)) = self.owner else { return Ok(()) };
        fchown(fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid))).map_err(in_container("chown", path))
    }

    /// Copies host entry `source` (described by `meta`) to `name` in the container directory
    /// `parent`.
    fn copy_entry(
        &self,
        parent: BorrowedFd<'_>,
        name: &str,
        source: &Host<'_>,
        meta: &Stat,
        path: &str,
    ) -> Result<usize, SyncError> {
        let kind = FileType::from_raw_mode(meta.st_mode);
        if kind == FileType::Directory {
            let from = source.open(OFlags::RDONLY | OFlags::DIRECTORY)?;
            let dir = match open_child(parent, name, OFlags::RDONLY | OFlags::DIRECTORY) {
                Ok(dir) => dir,
                Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => {
                    // Missing, or a file or symlink where the host has a directory.
                    remove_tree(parent, name, path, 0)?;
                    self.make_dir(parent, name, mode_of(meta), path)?;
                    open_child(parent, name, OFlags::RDONLY | OFlags::DIRECTORY).map_err(in_container("open", path))?
                }
                Err(e) => return Err(in_container("open", path)(e)),
            };
            fchmod(&dir, mode_of(meta)).map_err(in_container("chmod", path))?;
            self.copy_children(dir.as_fd(), from.as_fd(), source.path, path)
        } else if kind == FileType::RegularFile {
            // O_NONBLOCK: an entry swapped for a FIFO since the stat must not hang sync.
            let from = source.open(OFlags::RDONLY | OFlags::NONBLOCK)?;
            if !fstat(&from).is_ok_and(|st| is_type(&st, FileType::RegularFile)) {
                return Ok(0);
            }
            let mut from = File::from(from);
            let mode = mode_of(meta);
            self.replace(parent, name, path, |dir, temp| {
                let fd = openat(
                    dir,
                    temp,
                    OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )?;
                let mut to = File::from(fd);
                io::copy(&mut from, &mut to).map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO))?;
                let fd = OwnedFd::from(to);
                if let Some((uid, gid)) = self.owner {
                    fchown(&fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))?;
                }
                // After the chown, which clears set-id bits.
                fchmod(&fd, mode)
            })?;
            Ok(1)
        } else if kind == FileType::Symlink {
            let link = readlinkat(source.dir, source.name, Vec::new()).map_err(host_error(source.path))?;
            self.replace(parent, name, path, |dir, temp| {
                symlinkat(link.as_c_str(), dir, temp)?;
                if let Some((uid, gid)) = self.owner {
                    let fd = open_child(dir, temp, OFlags::PATH)?;
                    let flags = AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW;
                    chownat(&fd, "", Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)), flags)?;
                }
                Ok(())
            })?;
            Ok(1)
        } else {
            Ok(0)
        }
    }

    /// Copies the entries of the host directory `from` (at `source`) into the container
    /// directory `dir`.
    fn copy_children(
        &self,
        dir: BorrowedFd<'_>,
        from: BorrowedFd<'_>,
        source: &Path,
        path: &str,
    ) -> Result<usize, SyncError> {
        let mut written = 0;
        let mut names = Vec::new();
        for entry in Dir::read_from(from).map_err(host_error(source))? {
            let entry = entry.map_err(host_error(source))?;
            let bytes = entry.file_name().to_bytes();
            if bytes != b"." && bytes != b".." {
                names.push(OsStr::from_bytes(bytes).to_owned());
            }
        }
        for file_name in names {
            let child_source = source.join(&file_name);
            let Some(name) = file_name.to_str() else {
                return Err(SyncError::Source {
                    path: child_source,
                    source: io::Error::other("the name is not UTF-8"),
                });
            };
            let host = Host { dir: from, name: &file_name, path: &child_source };
            let meta = match host.stat() {
                Ok(meta) => meta,
                // Removed since the listing: the next batch says so.
                Err(SyncError::Source { source, .. }) if source.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let child = format!("{}/{name}", path.trim_end_matches('/'));
            written += self.copy_entry(dir, name, &host, &meta, &child)?;
        }
        Ok(written)
    }

    /// Makes `name` in `dir` atomically: `make` creates a fresh temporary name, which is then
    /// renamed over `name`. A directory in the way is removed first; the temporary name is
    /// removed when anything fails.
    fn replace(
        &self,
        dir: BorrowedFd<'_>,
        name: &str,
        path: &str,
        mut make: impl FnMut(BorrowedFd<'_>, &str) -> Result<(), Errno>,
    ) -> Result<(), SyncError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut tries = 0;
        let temp = loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let temp = format!(".{}.berth-sync.{}.{n}", truncated(name), std::process::id());
            match make(dir, &temp) {
                Ok(()) => break temp,
                Err(Errno::EXIST) if tries < RESOLVE_RETRIES => tries += 1,
                // Not ours to remove: someone else made that name.
                Err(Errno::EXIST) => return Err(in_container("write", path)(Errno::EXIST)),
                Err(e) => {
                    let _ = unlinkat(dir, &temp, AtFlags::empty());
                    return Err(in_container("write", path)(e));
                }
            }
        };
        let result = match renameat(dir, &temp, dir, name) {
            Err(Errno::ISDIR | Errno::NOTEMPTY | Errno::EXIST) => remove_tree(dir, name, path, 0)
                .and_then(|()| renameat(dir, &temp, dir, name).map_err(in_container("rename", path))),
            other => other.map_err(in_container("rename", path)),
        };
        if result.is_err() {
            let _ = unlinkat(dir, &temp, AtFlags::empty());
        }
        result
    }

    /// A small configuration file of the container (/etc/passwd), `None` when missing. Only a
    /// regular file is opened for reading: the name is resolved to an `O_PATH` descriptor and
    /// checked first, because opening a FIFO would block and opening a device node (a container
    /// with `CAP_MKNOD` can make one of a host disk; its device cgroup does not bind us) may have
    /// effects of its own. A file over 4 MiB is refused.
    fn read_config(&self, path: &str) -> Result<Option<String>, SyncError> {
        let parts = components(path)?;
        let pinned = match self.resolve(&parts, OFlags::PATH) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(in_container("open", path)(e)),
        };
        let stat = fstat(&pinned).map_err(in_container("stat", path))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(in_container("read", path)(Errno::INVAL));
        }
        // The host's /proc reopens exactly the inode the O_PATH descriptor pins.
        let reopen = format!("/proc/self/fd/{}", pinned.as_raw_fd());
        let fd = rustix::fs::open(reopen, OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY, Mode::empty())
            .map_err(in_container("open", path))?;
        let mut text = Vec::new();
        File::from(fd).take(MAX_CONFIG_BYTES + 1).read_to_end(&mut text).map_err(|source| SyncError::Container {
            op: "read",
            path: path.to_owned(),
            source,
        })?;
        if text.len() as u64 > MAX_CONFIG_BYTES {
            return Err(in_container("read", path)(Errno::FBIG));
        }
        Ok(Some(String::from_utf8_lossy(&text).into_owned()))
    }
}

/// The names of absolute container path `target`, `.` and empty ones dropped. `..` is refused:
/// compose's targets never have it, and it would make the parent of the last name ambiguous.
fn components(target: &str) -> Result<Vec<&str>, SyncError> {
    let invalid = |reason| Err(SyncError::InvalidPath { path: target.to_owned(), reason });
    if !target.starts_with('/') {
        return invalid("not absolute");
    }
    if target.contains('\0') {
        return invalid("contains a NUL byte");
    }
    let parts: Vec<&str> = target.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    if parts.contains(&"..") {
        return invalid("contains `..`");
    }
    Ok(parts)
}

/// Opens the single name `name` in `dir` without following any symlink (`ELOOP` for one).
fn open_child(dir: BorrowedFd<'_>, name: &str, flags: OFlags) -> Result<OwnedFd, Errno> {
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    openat2(dir, name, with_defaults(flags | OFlags::NOFOLLOW), Mode::empty(), resolve)
}

/// `flags` with `O_CLOEXEC`, and `O_NOCTTY` unless `O_PATH` (which `openat2` refuses with any
/// flag but `O_DIRECTORY`, `O_NOFOLLOW` and `O_CLOEXEC`).
fn with_defaults(flags: OFlags) -> OFlags {
    if flags.contains(OFlags::PATH) { flags | OFlags::CLOEXEC } else { flags | OFlags::CLOEXEC | OFlags::NOCTTY }
}

/// Removes `name` in `dir`: a directory with everything in it, anything else (symlinks
/// included) by `unlinkat`. Nothing is followed. Missing is fine.
fn remove_tree<N: AsRef<OsStr>>(dir: BorrowedFd<'_>, name: N, path: &str, depth: usize) -> Result<(), SyncError> {
    let name = name.as_ref();
    let stat = match statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => stat,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(in_container("stat", path)(e)),
    };
    if FileType::from_raw_mode(stat.st_mode) != FileType::Directory {
        return match unlinkat(dir, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(in_container("remove", path)(e)),
        };
    }
    if depth >= MAX_DEPTH {
        return Err(in_container("remove", path)(Errno::LOOP));
    }
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    let sub = openat2(dir, name, flags, Mode::empty(), resolve).map_err(in_container("open", path))?;
    // Names first, then removal: a directory changed while it is read may skip entries.
    let mut names: Vec<CString> = Vec::new();
    for entry in Dir::read_from(&sub).map_err(in_container("read", path))? {
        let entry = entry.map_err(in_container("read", path))?;
        let entry_name = entry.file_name();
        if entry_name.to_bytes() != b"." && entry_name.to_bytes() != b".." {
            names.push(entry_name.to_owned());
        }
    }
    for entry_name in names {
        let child = format!("{path}/{}", entry_name.to_string_lossy());
        remove_tree(sub.as_fd(), OsStr::from_bytes(entry_name.as_bytes()), &child, depth + 1)?;
    }
    match unlinkat(dir, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(in_container("remove", path)(e)),
    }
}

/// The permission bits (with set-id and sticky) of a host file.
fn mode_of(meta: &Stat) -> Mode {
    Mode::from_raw_mode(meta.st_mode & 0o7777)
}

fn is_type(meta: &Stat, kind: FileType) -> bool {
    FileType::from_raw_mode(meta.st_mode) == kind
}

fn host_error(path: &Path) -> impl FnOnce(Errno) -> SyncError {
    move |e| SyncError::Source { path: path.to_owned(), source: e.into() }
}

/// One name in a host directory, reached from the directory's descriptor.
struct Host<'a> {
    dir: BorrowedFd<'a>,
    name: &'a OsStr,
    /// The host path, for messages only.
    path: &'a Path,
}

impl Host<'_> {
    fn stat(&self) -> Result<Stat, SyncError> {
        statat(self.dir, self.name, AtFlags::SYMLINK_NOFOLLOW).map_err(host_error(self.path))
    }

    /// Opens the name itself, never a symlink (`ELOOP`).
    fn open(&self, flags: OFlags) -> Result<OwnedFd, SyncError> {
        let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        openat2(self.dir, self.name, with_defaults(flags | OFlags::NOFOLLOW), Mode::empty(), resolve)
            .map_err(host_error(self.path))
    }
}

/// The parent directory of `source` and its last name, where `source` is `tree` or a path
/// below it: `tree` is opened as configured, every name below it without following a symlink.
fn open_host(tree: &Path, source: &Path) -> Result<(OwnedFd, std::ffi::OsString), SyncError> {
    let invalid = |reason| SyncError::Source { path: source.to_owned(), source: io::Error::other(reason) };
    let rel = source.strip_prefix(tree).map_err(|_| invalid("outside the watched path"))?;
    let tree = fs::canonicalize(tree).map_err(from_host(tree))?;
    let (Some(top), Some(base)) = (tree.file_name(), tree.parent()) else {
        return Err(invalid("the watched path is /"));
    };
    let mut names = vec![top.to_owned()];
    for part in rel.components() {
        match part {
            Component::Normal(name) => names.push(name.to_owned()),
            Component::CurDir => {}
            _ => return Err(invalid("the path leaves the watched path")),
        }
    }
    let last = names.pop().ok_or_else(|| invalid("empty path"))?;
    let mut dir = rustix::fs::open(base, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(host_error(base))?;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    for name in names {
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        dir = openat2(&dir, &name, flags, Mode::empty(), resolve).map_err(host_error(source))?;
    }
    Ok((dir, last))
}

/// At most the first 64 bytes of `name` (on a character boundary), so the temporary name stays
/// under the 255-byte limit.
fn truncated(name: &str) -> &str {
    let mut end = name.len().min(64);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

#[cfg(test)]
mod tests;
