//! Small file-system primitives every module shares: records replaced durably, trees removed
//! without trusting what is in them, and per-project locks.

use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io::{self, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawDir, SeekFrom};
use rustix::io::Errno;

/// Replaces the file at `path` with `bytes` so that a crash or power loss leaves either the
/// old record or the new one, never a mix: a temporary file beside it is written and fsynced,
/// renamed over `path`, and the directory fsynced so the rename itself is on disk. Records are
/// created 0600 (they may name secrets from the stack file).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(path, bytes, true)
}

/// [`write_atomic`] without the fsyncs, for the records of a container that does not outlive
/// a host crash (a `run --rm` one-off, whose overlay is mounted `volatile` too): the rename
/// still leaves a reader the old record or the new one when berth itself dies, but nothing
/// waits for the disk. After a power loss such a record may be empty, and an unreadable
/// record is what `down` already cleans up; two fsyncs are a tenth of a one-off's start.
pub fn write_atomic_unsynced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(path, bytes, false)
}

fn replace(path: &Path, bytes: &[u8], durable: bool) -> io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    remove_stale_temporaries(dir, Some(name));
    // Unique per process and call: two writers of one record never share a temporary file.
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(crate::secure_fs::FILE_MODE)
            .custom_flags(libc::O_CLOEXEC)
            .open(&tmp)?;
        file.write_all(bytes)?;
        if durable {
            file.sync_all()?;
        }
        crate::fault::point("before-rename");
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if durable { File::open(dir)?.sync_all() } else { Ok(()) }
}

/// Removes the temporary files of [`write_atomic`] in `dir` (of the record `name` only, when
/// given) whose writer is dead: a writer killed before its rename leaves one, whole but
/// never to be renamed. A live writer's is left alone.
pub fn remove_stale_temporaries(dir: &Path, name: Option<&OsStr>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(rest) = file.to_str().and_then(|f| f.strip_prefix('.')).and_then(|f| f.strip_suffix(".tmp")) else {
            continue;
        };
        // `.<name>.<pid>.<n>.tmp`
        let mut parts = rest.rsplitn(3, '.');
        let (Some(_n), Some(pid), Some(record)) = (parts.next(), parts.next(), parts.next()) else { continue };
        if name.is_some_and(|name| name.to_str() != Some(record)) {
            continue;
        }
        let Ok(pid) = pid.parse::<i32>() else { continue };
        if !is_alive(pid) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Whether process `pid` exists and has not exited (a zombie, whose parent has yet to reap
/// it, has).
pub fn is_alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    stat.rfind(')').and_then(|end| stat[end + 1..].split_whitespace().next()).is_some_and(|s| s != "Z" && s != "X")
}

/// Removes the tree at `path` (a file, symlink or directory; gone already is fine) with
/// [`remove_tree_at`].
pub fn remove_tree(path: &Path) -> io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    let parent = match rustix::fs::open(parent, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    remove_tree_at(parent.as_fd(), name)
}

/// One directory on the way down: its name in its parent, its identity, and the
/// subdirectories still to remove.
struct Level {
    name: CString,
    id: (u64, u64),
    pending: Vec<CString>,
}

/// Removes `name` in the directory `parent` and everything under it, where a container may
/// have made the tree: symlinks are removed, never followed, and however deep the tree, at
/// most two descriptors are open (the walk holds one directory at a time, climbing back through
/// `..` checked against the recorded device and inode, so a directory moved during the walk
/// stops it rather than sending it elsewhere). std's `remove_dir_all` holds one descriptor per
/// level and fails with EMFILE below the descriptor limit.
pub fn remove_tree_at(parent: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    remove(parent, name, None)
}

/// [`remove_tree_at`] that also counts what it reclaims: the bytes of the files it removes,
/// each inode once (hard links count once, as docker counts a volume's size), and refuses to
/// walk into another file system (EXDEV: a mount inside a volume's data is not the volume's).
pub fn remove_tree_reclaiming(parent: BorrowedFd<'_>, name: &OsStr) -> io::Result<u64> {
    let mut tally = Tally::default();
    remove(parent, name, Some(&mut tally))?;
    Ok(tally.bytes)
}

/// What [`remove_tree_reclaiming`] counts.
#[derive(Default)]
struct Tally {
    bytes: u64,
    /// Inodes with more than one link, once counted: removing one link lowers the count of
    /// the others.
    seen: std::collections::HashSet<(u64, u64)>,
}

impl Tally {
    fn count(&mut self, stat: &rustix::fs::Stat) {
        let key = (stat.st_dev, stat.st_ino);
        if self.seen.contains(&key) {
            return;
        }
        if stat.st_nlink > 1 {
            self.seen.insert(key);
        }
        self.bytes += u64::try_from(stat.st_size).unwrap_or(0);
    }
}

fn remove(parent: BorrowedFd<'_>, name: &OsStr, mut tally: Option<&mut Tally>) -> io::Result<()> {
    let name = CString::new(name.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut current = match open_dir(parent, &name) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(()),
        Err(Errno::NOTDIR | Errno::LOOP) => return unlink(parent, &name, AtFlags::empty()),
        Err(e) => return Err(e.into()),
    };
    let top = identity(&current)?;
    let mut levels = vec![Level { id: top, pending: scan(&current, tally.as_deref_mut())?, name }];
    loop {
        let Some(level) = levels.last_mut() else { return Ok(()) };
        if let Some(sub) = level.pending.pop() {
            match open_dir(current.as_fd(), &sub) {
                Ok(child) => {
                    let id = identity(&child)?;
                    if tally.is_some() && id.0 != top.0 {
                        return Err(io::Error::from_raw_os_error(libc::EXDEV));
                    }
                    let pending = scan(&child, tally.as_deref_mut())?;
                    levels.push(Level { id, pending, name: sub });
                    current = child;
                }
                Err(Errno::NOENT) => {}
                Err(Errno::NOTDIR | Errno::LOOP) => unlink(current.as_fd(), &sub, AtFlags::empty())?,
                Err(e) => return Err(e.into()),
            }
            continue;
        }
        // Whatever appeared meanwhile (or a listing that skipped entries removed under it).
        let again = scan(&current, tally.as_deref_mut())?;
        if !again.is_empty() {
            level.pending = again;
            continue;
        }
        let done = levels.pop().map(|l| l.name).unwrap_or_default();
        let Some(above) = levels.last() else {
            drop(current);
            return unlink(parent, &done, AtFlags::REMOVEDIR);
        };
        let up = open_dir(current.as_fd(), c"..")?;
        if identity(&up)? != above.id {
            return Err(io::Error::other("a directory was moved while its tree was being removed"));
        }
        current = up;
        unlink(current.as_fd(), &done, AtFlags::REMOVEDIR)?;
    }
}

fn open_dir(parent: BorrowedFd<'_>, name: &CStr) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

fn identity(fd: &OwnedFd) -> io::Result<(u64, u64)> {
    let stat = rustix::fs::fstat(fd)?;
    Ok((stat.st_dev, stat.st_ino))
}

fn unlink(dir: BorrowedFd<'_>, name: &CStr, flags: AtFlags) -> io::Result<()> {
    match rustix::fs::unlinkat(dir, name, flags) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Removes every entry of `dir` that is not a directory (counted into `tally`, when given)
/// and returns the names of those that are.
fn scan(dir: &OwnedFd, mut tally: Option<&mut Tally>) -> io::Result<Vec<CString>> {
    rustix::fs::seek(dir, SeekFrom::Start(0))?;
    let mut buf = [MaybeUninit::<u8>::uninit(); 8192];
    let mut entries = RawDir::new(dir.as_fd(), &mut buf);
    let mut dirs = Vec::new();
    let mut files = Vec::new();
    while let Some(entry) = entries.next() {
        let entry = entry?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        let kind = match entry.file_type() {
            FileType::Unknown => match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(stat) => FileType::from_raw_mode(stat.st_mode),
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(e.into()),
            },
            kind => kind,
        };
        if kind == FileType::Directory { dirs.push(name.to_owned()) } else { files.push(name.to_owned()) }
    }
    for file in files {
        if let Some(tally) = tally.as_deref_mut() {
            match rustix::fs::statat(dir, &file, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(stat) => tally.count(&stat),
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        unlink(dir.as_fd(), &file, AtFlags::empty())?;
    }
    Ok(dirs)
}

/// An exclusive lock on a project: every command that changes a project holds it, so two
/// commands never act on one project at once. Released when dropped (or when the process
/// dies: the kernel drops a flock with its last descriptor).
#[derive(Debug)]
pub struct ProjectLock {
    _file: File,
}

impl ProjectLock {
    /// Locks `dir` (created if missing), waiting for a holder to finish; `waiting` is called
    /// once, before waiting, when another process holds it.
    pub fn acquire(dir: &Path, waiting: impl FnOnce()) -> io::Result<ProjectLock> {
        use rustix::fs::{FlockOperation, flock};
        std::fs::create_dir_all(dir)?;
        // CLOEXEC: the supervisor `up` starts must not inherit the lock and keep it forever.
        let file =
            std::fs::OpenOptions::new().read(true).custom_flags(libc::O_CLOEXEC | libc::O_DIRECTORY).open(dir)?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(Errno::WOULDBLOCK) => {
                waiting();
                loop {
                    match flock(&file, FlockOperation::LockExclusive) {
                        Ok(()) => break,
                        Err(Errno::INTR) => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            Err(e) => return Err(e.into()),
        }
        Ok(ProjectLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_whole_records_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        write_atomic(&path, b"{\"a\":1}").expect("first");
        write_atomic(&path, b"{\"b\":2}").expect("second");
        assert_eq!(std::fs::read(&path).expect("read"), b"{\"b\":2}");
        let names: Vec<_> = std::fs::read_dir(dir.path()).expect("list").flatten().map(|e| e.file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777, 0o600);
        let missing = dir.path().join("no/such/dir/x.json");
        assert!(write_atomic(&missing, b"x").is_err());
    }

    #[test]
    fn a_tree_deeper_than_the_descriptor_limit_is_removed() {
        let (soft, _) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).expect("rlimit");
        assert!(soft <= 100_000, "descriptor limit {soft} is too high to build a deeper tree here");
        let depth = soft + 100;
        // tmpfs when there is one: on this machine's ext4 (mounted `discard`) each rmdir waits
        // for the disk, which makes a deep tree take a minute.
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.expect("tempdir");
        // Built fd-relatively too: a path this long is over PATH_MAX.
        let top = dir.path().join("tree");
        std::fs::create_dir(&top).expect("mkdir");
        let mut fd = rustix::fs::open(&top, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).expect("open");
        for i in 0..depth {
            rustix::fs::mkdirat(&fd, c"d", Mode::from_raw_mode(0o755)).expect("mkdirat");
            if i % 500 == 0 {
                let file = rustix::fs::openat(&fd, c"f", OFlags::CREATE | OFlags::WRONLY, Mode::from_raw_mode(0o644))
                    .expect("file");
                drop(file);
                rustix::fs::symlinkat(c"/", &fd, c"link").expect("symlink");
            }
            fd = open_dir(fd.as_fd(), c"d").expect("descend");
        }
        drop(fd);
        remove_tree(&top).expect("removed");
        assert!(!top.exists());
        remove_tree(&top).expect("gone already is fine");
    }

    #[test]
    fn symlinks_to_outside_are_removed_not_followed() {
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("keep"), "sentinel").expect("write");
        std::fs::create_dir(outside.path().join("keepdir")).expect("mkdir");
        let dir = tempfile::tempdir().expect("tempdir");
        let tree = dir.path().join("upper");
        std::fs::create_dir_all(tree.join("a/b")).expect("mkdir");
        std::os::unix::fs::symlink(outside.path(), tree.join("a/b/out")).expect("symlink");
        std::os::unix::fs::symlink(outside.path().join("keep"), tree.join("file-link")).expect("symlink");
        std::os::unix::fs::symlink(outside.path(), dir.path().join("top-link")).expect("symlink");
        remove_tree(&tree).expect("removed");
        remove_tree(&dir.path().join("top-link")).expect("the link itself");
        assert!(!tree.exists() && !dir.path().join("top-link").exists());
        assert_eq!(std::fs::read_to_string(outside.path().join("keep")).expect("kept"), "sentinel");
        assert!(outside.path().join("keepdir").is_dir());
    }

    #[test]
    fn a_wide_tree_and_a_plain_file_are_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tree = dir.path().join("wide");
        for i in 0..300 {
            std::fs::create_dir_all(tree.join(format!("d{i}/e"))).expect("mkdir");
            std::fs::write(tree.join(format!("d{i}/e/f")), "x").expect("write");
        }
        remove_tree(&tree).expect("removed");
        assert!(!tree.exists());
        let file = dir.path().join("plain");
        std::fs::write(&file, "x").expect("write");
        remove_tree(&file).expect("removed");
        assert!(!file.exists());
    }

    #[test]
    fn the_project_lock_is_exclusive() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = ProjectLock::acquire(dir.path(), || panic!("free")).expect("lock");
        let (tx, rx) = std::sync::mpsc::channel();
        let path = dir.path().to_path_buf();
        let waiter = std::thread::spawn(move || {
            let told = tx.clone();
            let lock = ProjectLock::acquire(&path, move || {
                let _ = told.send("waiting");
            });
            let _ = tx.send("acquired");
            lock.is_ok()
        });
        assert_eq!(rx.recv().expect("a message"), "waiting");
        drop(first);
        assert_eq!(rx.recv().expect("a message"), "acquired");
        assert!(waiter.join().expect("thread"));
    }

    #[test]
    fn a_reclaiming_removal_counts_each_inode_once_and_follows_no_link() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = dir.path().join("outside");
        std::fs::write(&outside, vec![0u8; 1000]).expect("outside");
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("a/b")).expect("dirs");
        std::fs::write(tree.join("a/one"), vec![0u8; 100]).expect("one");
        std::fs::hard_link(tree.join("a/one"), tree.join("a/b/same")).expect("link");
        std::fs::write(tree.join("a/b/two"), vec![0u8; 20]).expect("two");
        std::os::unix::fs::symlink(&outside, tree.join("a/b/escape")).expect("symlink");
        let parent = File::open(dir.path()).expect("open");
        let bytes = remove_tree_reclaiming(parent.as_fd(), OsStr::new("tree")).expect("remove");
        let link = outside.as_os_str().len() as u64;
        assert_eq!(bytes, 100 + 20 + link, "the hard link once, the symlink as itself");
        assert!(!tree.exists());
        assert_eq!(std::fs::read(&outside).expect("outside kept").len(), 1000);
        assert_eq!(remove_tree_reclaiming(parent.as_fd(), OsStr::new("tree")).expect("gone"), 0);
    }

    #[test]
    fn stale_temporaries_of_dead_writers_go_and_live_ones_stay() {
        let dir = tempfile::tempdir().expect("tempdir");
        let me = std::process::id();
        let dead = i32::MAX;
        for name in
            [format!(".r.json.{dead}.0.tmp"), format!(".r.json.{me}.0.tmp"), format!(".other.json.{dead}.3.tmp")]
        {
            std::fs::write(dir.path().join(name), b"{}").expect("write");
        }
        remove_stale_temporaries(dir.path(), Some(OsStr::new("r.json")));
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .expect("list")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into())
            .collect();
        left.sort();
        assert_eq!(left, vec![format!(".other.json.{dead}.3.tmp"), format!(".r.json.{me}.0.tmp")]);
        remove_stale_temporaries(dir.path(), None);
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 1);
    }
}
