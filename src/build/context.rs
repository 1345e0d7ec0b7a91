//! The sources of COPY and ADD: the build context (filtered by its `.dockerignore`) or the root
//! filesystem of another stage or image (`COPY --from`), both read-only.
//!
//! A tree is only ever read through a descriptor of its root, with symlinks resolved inside it
//! (see [`super::in_root`]): a context may hold `link -> /etc`, and a stage's root is whatever
//! its RUN steps made it, so following a symlink by its host path could read the host's files
//! into the image.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, OFlags, fstat, readlinkat, statat};
use rustix::io::Errno;

use super::glob;
use super::in_root::{self, Scope, display};
use crate::image::Digest;
use crate::image::digest::HashingWriter;
use crate::runtime::user::UserError;
use crate::watch::rules::{PatternError, Patterns};

/// How deep a copied directory may nest; deeper trees are refused rather than recursed into.
const MAX_DEPTH: usize = 512;

/// Why a COPY or ADD failed. Sources are named as written in the Dockerfile, tree paths and
/// destinations as absolute paths inside their tree.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The context or root directory cannot be opened.
    #[error("cannot open the source tree {}: {source}", path.display())]
    Tree { path: PathBuf, source: io::Error },
    /// The `.dockerignore` cannot be read or has a bad pattern.
    #[error("ignore file {}: {reason}", path.display())]
    IgnoreFile { path: PathBuf, reason: String },
    /// A source matched nothing (docker's wording).
    #[error("failed to compute cache key: {:?} not found", display(&in_root::clean(pattern)))]
    NotFound { pattern: String },
    /// A source pattern is malformed.
    #[error("source {pattern:?}: bad pattern: {reason}")]
    BadPattern { pattern: String, reason: String },
    /// A source path cannot be read.
    #[error("cannot {op} source {path}: {source}")]
    Read { op: &'static str, path: String, source: io::Error },
    /// A destination operation failed.
    #[error("cannot {op} {path}: {source}")]
    Write { op: &'static str, path: String, source: io::Error },
    /// A destination that cannot take the sources.
    #[error("destination {path:?}: {reason}")]
    Dest { path: String, reason: String },
    /// A `--chmod` value that is not octal permission bits.
    #[error("--chmod={spec}: only octal permission bits (such as 755) are supported")]
    Chmod { spec: String },
    /// `--chown` names a user or group the destination does not have.
    #[error("--chown={spec}: {source}")]
    Chown { spec: String, source: UserError },
    /// An ADD archive entry that is malformed or would land outside the destination.
    #[error("ADD {archive}: entry {entry:?}: {reason}")]
    Archive { archive: String, entry: String, reason: String },
}

pub(crate) fn read_err(op: &'static str, path: &Path) -> impl FnOnce(Errno) -> CopyError {
    let path = display(path);
    move |e| CopyError::Read { op, path, source: e.into() }
}

pub(crate) fn write_err(op: &'static str, path: &Path) -> impl FnOnce(Errno) -> CopyError {
    let path = display(path);
    move |e| CopyError::Write { op, path, source: e.into() }
}

/// Where COPY/ADD sources come from: the build context (with .dockerignore) or another stage's /
/// image's root (`COPY --from`), read-only.
#[derive(Debug)]
pub struct SourceTree {
    dir: PathBuf,
    ignore: Patterns,
}

/// One path a source argument matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    /// The source argument as written.
    pub source: String,
    /// The matched path relative to the tree's root (empty for the root itself).
    pub path: PathBuf,
    /// Whether it is a directory (after following a symlink inside the tree).
    pub is_dir: bool,
}

/// What a copied path is; symlinks below a selected path are copied as symlinks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    File,
    Symlink(PathBuf),
}

/// One path to copy: a selected path itself (`rel` empty) or something below it.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub rel: PathBuf,
    pub kind: Kind,
    /// Permission bits with set-id and sticky.
    pub mode: u32,
    pub mtime: (i64, i64),
}

impl SourceTree {
    /// The build context dir. Ignore file: `<dockerfile path>.dockerignore` when it exists next
    /// to the Dockerfile, else `<context>/.dockerignore` (docker's rule).
    pub fn context(dir: &Path, dockerfile: Option<&Path>) -> Result<SourceTree, CopyError> {
        let mut candidates = Vec::new();
        if let Some(dockerfile) = dockerfile {
            let mut name = dockerfile.as_os_str().to_owned();
            name.push(".dockerignore");
            candidates.push(dir.join(name));
        }
        candidates.push(dir.join(".dockerignore"));
        for candidate in candidates {
            let bad = |reason: String| CopyError::IgnoreFile { path: candidate.clone(), reason };
            match std::fs::read(&candidate) {
                Ok(bytes) => {
                    let patterns = Patterns::parse_ignore_file(&String::from_utf8_lossy(&bytes));
                    let ignore = Patterns::new(patterns).map_err(|e: PatternError| bad(e.to_string()))?;
                    return Ok(SourceTree { dir: dir.to_owned(), ignore });
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(bad(e.to_string())),
            }
        }
        Ok(SourceTree::root(dir))
    }

    /// A root filesystem (merged view of a built stage or image, mounted by the engine); no
    /// ignore file; symlinks resolve INSIDE this root.
    pub fn root(dir: &Path) -> SourceTree {
        SourceTree { dir: dir.to_owned(), ignore: Patterns::default() }
    }

    /// The tree's host directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn open_root(&self) -> Result<OwnedFd, CopyError> {
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        rustix::fs::open(&self.dir, flags, rustix::fs::Mode::empty())
            .map_err(|e| CopyError::Tree { path: self.dir.clone(), source: e.into() })
    }

    /// Whether the path (relative to the root) is excluded by the ignore file.
    fn ignored(&self, rel: &Path, is_dir: bool) -> bool {
        // With `!` exceptions an excluded directory may still hold included paths.
        !rel.as_os_str().is_empty()
            && self.ignore.matches(&rel.to_string_lossy())
            && !(is_dir && self.ignore.has_exceptions())
    }

    /// Expands COPY source arguments (relative to the tree's root; leading `/` and `./` allowed;
    /// `..` cannot leave the root) with Go `filepath.Match` wildcards (`*`, `?`, `[...]`), sorted;
    /// an excluded (ignored) path never matches. A source that matches nothing is an error
    /// naming it.
    pub fn select(&self, sources: &[String]) -> Result<Vec<Selected>, CopyError> {
        let root = self.open_root()?;
        let mut out = Vec::new();
        for source in sources {
            let bad = |reason: String| CopyError::BadPattern { pattern: source.clone(), reason };
            let parts: Vec<String> = in_root::clean(source).iter().map(|p| p.to_string_lossy().into_owned()).collect();
            let mut found: Vec<PathBuf> = vec![PathBuf::new()];
            for part in &parts {
                let mut next = Vec::new();
                if glob::has_meta(part) {
                    glob::validate(part).map_err(bad)?;
                    for dir in &found {
                        let fd = match in_root::open_dir(root.as_fd(), dir, Scope::InRoot) {
                            Ok(fd) => fd,
                            Err(Errno::NOENT | Errno::NOTDIR) => continue,
                            Err(e) => return Err(read_err("open", dir)(e)),
                        };
                        for name in in_root::list(fd.as_fd()).map_err(read_err("list", dir))? {
                            if glob::matches(part, &name.to_string_lossy()) {
                                next.push(dir.join(name));
                            }
                        }
                    }
                } else {
                    next = found.iter().map(|dir| dir.join(part)).collect();
                }
                found = next;
            }
            let before = out.len();
            for path in found {
                let is_dir = match in_root::open(root.as_fd(), &path, OFlags::PATH, Scope::InRoot) {
                    Ok(fd) => {
                        let st = fstat(&fd).map_err(read_err("stat", &path))?;
                        FileType::from_raw_mode(st.st_mode) == FileType::Directory
                    }
                    Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => continue,
                    Err(e) => return Err(read_err("open", &path)(e)),
                };
                if !self.ignored(&path, is_dir) {
                    out.push(Selected { source: source.clone(), path, is_dir });
                }
            }
            if out.len() == before {
                return Err(CopyError::NotFound { pattern: source.clone() });
            }
            out[before..].sort_by(|a, b| a.path.as_os_str().as_bytes().cmp(b.path.as_os_str().as_bytes()));
        }
        Ok(out)
    }

    /// Everything copying `selected` writes: the path itself (followed if a symlink), then for
    /// a directory everything below it that is not ignored, parents before children, sorted.
    pub(crate) fn entries(&self, root: BorrowedFd<'_>, selected: &Selected) -> Result<Vec<Entry>, CopyError> {
        let fd = in_root::open(root, &selected.path, OFlags::PATH, Scope::InRoot)
            .map_err(read_err("open", &selected.path))?;
        let st = fstat(&fd).map_err(read_err("stat", &selected.path))?;
        let kind = match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => Kind::Dir,
            FileType::RegularFile => Kind::File,
            _ => return Err(read_err("copy", &selected.path)(Errno::INVAL)),
        };
        let mut out = vec![Entry { rel: PathBuf::new(), kind, mode: st.st_mode & 0o7777, mtime: mtime(&st) }];
        if out[0].kind == Kind::Dir {
            self.walk(root, &selected.path, Path::new(""), 0, &mut out)?;
        }
        Ok(out)
    }

    fn walk(
        &self,
        root: BorrowedFd<'_>,
        base: &Path,
        rel: &Path,
        depth: usize,
        out: &mut Vec<Entry>,
    ) -> Result<(), CopyError> {
        let here = join(base, rel);
        if depth >= MAX_DEPTH {
            return Err(read_err("copy", &here)(Errno::LOOP));
        }
        // The selected path itself may be a symlink (followed); nothing below it is.
        let mut flags = OFlags::PATH | OFlags::DIRECTORY;
        if depth > 0 {
            flags |= OFlags::NOFOLLOW;
        }
        let fd = in_root::open(root, &here, flags, Scope::InRoot).map_err(read_err("open", &here))?;
        let mut children = Vec::new();
        for name in in_root::list(fd.as_fd()).map_err(read_err("list", &here))? {
            let child = rel.join(&name);
            let path = base.join(&child);
            let st = match statat(&fd, &name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(read_err("stat", &path)(e)),
            };
            let ftype = FileType::from_raw_mode(st.st_mode);
            let is_dir = ftype == FileType::Directory;
            let ignored = self.ignore.matches(&path.to_string_lossy());
            if ignored && !(is_dir && self.ignore.has_exceptions()) {
                continue;
            }
            let kind = match ftype {
                FileType::Directory => Kind::Dir,
                FileType::RegularFile => Kind::File,
                FileType::Symlink => {
                    let target = readlinkat(&fd, &name, Vec::new()).map_err(read_err("read the link", &path))?;
                    Kind::Symlink(PathBuf::from(std::ffi::OsStr::from_bytes(target.as_bytes())))
                }
                // Sockets, FIFOs and devices are not build content.
                _ => continue,
            };
            children.push((Entry { rel: child, kind, mode: st.st_mode & 0o7777, mtime: mtime(&st) }, ignored));
        }
        // One descriptor per level would run out on deep trees.
        drop(fd);
        for (entry, ignored) in children {
            let (at, is_dir, child) = (out.len(), entry.kind == Kind::Dir, entry.rel.clone());
            out.push(entry);
            if is_dir {
                self.walk(root, base, &child, depth + 1, out)?;
                // An excluded directory is only there for the exceptions below it.
                if ignored && out.len() == at + 1 {
                    out.truncate(at);
                }
            }
        }
        Ok(())
    }

    /// Checksum of everything the selection would copy (relative names, file type, mode bits,
    /// symlink targets, content; not mtimes or owners), skipping ignored paths inside
    /// directories. Unchanged files give the same checksum.
    pub fn checksum(&self, selected: &[Selected]) -> Result<Digest, CopyError> {
        let root = self.open_root()?;
        let mut hash = HashingWriter::new(io::sink());
        for sel in selected {
            field(&mut hash, b"selected");
            field(&mut hash, sel.path.as_os_str().as_bytes());
            for entry in self.entries(root.as_fd(), sel)? {
                field(&mut hash, entry.rel.as_os_str().as_bytes());
                field(&mut hash, &entry.mode.to_le_bytes());
                match &entry.kind {
                    Kind::Dir => field(&mut hash, b"d"),
                    Kind::Symlink(target) => {
                        field(&mut hash, b"l");
                        field(&mut hash, target.as_os_str().as_bytes());
                    }
                    Kind::File => {
                        let path = join(&sel.path, &entry.rel);
                        let mut file = self.open_file(root.as_fd(), sel, &entry)?;
                        let len = file.metadata().map_err(|e| read_err("stat", &path)(errno(&e)))?.len();
                        field(&mut hash, b"f");
                        field(&mut hash, &len.to_le_bytes());
                        let copied = io::copy(&mut Read::take(&mut file, len), &mut hash)
                            .map_err(|e| read_err("read", &path)(errno(&e)))?;
                        if copied != len {
                            // The file shrank while it was read.
                            return Err(read_err("read", &path)(Errno::AGAIN));
                        }
                    }
                }
            }
        }
        Ok(hash.finish().0)
    }

    /// Opens a regular file entry for reading; the selected path itself follows symlinks inside
    /// the tree, anything below it does not.
    pub(crate) fn open_file(&self, root: BorrowedFd<'_>, sel: &Selected, entry: &Entry) -> Result<File, CopyError> {
        let path = join(&sel.path, &entry.rel);
        let mut flags = OFlags::RDONLY | OFlags::NONBLOCK;
        if !entry.rel.as_os_str().is_empty() {
            flags |= OFlags::NOFOLLOW;
        }
        let fd = in_root::open(root, &path, flags, Scope::InRoot).map_err(read_err("open", &path))?;
        let st = fstat(&fd).map_err(read_err("stat", &path))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(read_err("read", &path)(Errno::INVAL));
        }
        Ok(File::from(fd))
    }
}

fn mtime(st: &rustix::fs::Stat) -> (i64, i64) {
    (st.st_mtime, i64::try_from(st.st_mtime_nsec).unwrap_or(0))
}

/// `base/rel`, without the trailing `/` that joining an empty `rel` would add.
pub(crate) fn join(base: &Path, rel: &Path) -> PathBuf {
    if rel.as_os_str().is_empty() { base.to_owned() } else { base.join(rel) }
}

pub(crate) fn errno(e: &io::Error) -> Errno {
    Errno::from_io_error(e).unwrap_or(Errno::IO)
}

/// Length-prefixed, so that no two different sequences of fields hash alike.
fn field(hash: &mut HashingWriter<io::Sink>, bytes: &[u8]) {
    // A sink does not fail.
    let _ = hash.write_all(&(bytes.len() as u64).to_le_bytes());
    let _ = hash.write_all(bytes);
}

#[cfg(test)]
#[path = "context_tests.rs"]
pub(crate) mod tests;
