//! COPY and ADD into an image's root filesystem, with docker's destination rules.
//!
//! The destination is the merged overlay of the stage being built, reached through a descriptor
//! of its root: every path in it is resolved with `RESOLVE_IN_ROOT` (so an image's `/app -> /`
//! or `../../x` symlinks stay in the image), and names are then created below the resolved
//! directory with calls that never follow the last component (see [`super::in_root`]).

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{
    AtFlags, Gid, Mode, OFlags, Timespec, Timestamps, Uid, chownat, futimens, openat, symlinkat, utimensat,
};
use rustix::io::Errno;

use super::context::{CopyError, Entry, Kind, Selected, SourceTree, errno, write_err};
use super::copy_archive;
use super::in_root::{self, NewDir, Scope, display};
use crate::runtime::user::resolve_user;

/// How COPY/ADD write what they copy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyOptions {
    /// `--chown`, resolved ([`resolve_chown`]); `None` is 0:0, never the source's owner.
    pub owner: Option<(u32, u32)>,
    /// `--chmod` (octal, [`parse_chmod`]) for files and copied directories.
    pub mode: Option<u32>,
    /// ADD: a local tar archive (plain, gzip or zstd) is extracted instead of copied.
    pub extract_archives: bool,
}

/// Parses a `--chmod` value: octal permission bits (`755`, `0644`, `4755`).
pub fn parse_chmod(spec: &str) -> Result<u32, CopyError> {
    u32::from_str_radix(spec, 8)
        .ok()
        .filter(|mode| !spec.is_empty() && *mode <= 0o7777)
        .ok_or_else(|| CopyError::Chmod { spec: spec.to_owned() })
}

/// Resolves a `--chown` value (`user`, `user:group`, `uid:gid`, names allowed) in the
/// destination root's /etc/passwd and /etc/group.
///
/// As BuildKit does: a name takes the uid and primary gid of its passwd entry, a number alone is
/// both uid and gid, and an explicit group is looked up in /etc/group (a number as is).
pub fn resolve_chown(dest_root: BorrowedFd<'_>, spec: &str) -> Result<(u32, u32), CopyError> {
    let read = |path: &str| {
        in_root::read_config(dest_root, Path::new(path)).map_err(|e| CopyError::Read {
            op: "read",
            path: format!("/{path}"),
            source: e.into(),
        })
    };
    let chown = |source| CopyError::Chown { spec: spec.to_owned(), source };
    let (user, group) = spec.split_once(':').unwrap_or((spec, ""));
    if group.is_empty()
        && let Ok(id) = user.parse::<u32>()
    {
        // The range check is resolve_user's.
        resolve_user(user, &[], None, None).map_err(chown)?;
        return Ok((id, id));
    }
    let passwd = read("etc/passwd")?;
    let groups = if group.is_empty() { None } else { read("etc/group")? };
    let found = resolve_user(spec, &[], passwd.as_deref(), groups.as_deref()).map_err(chown)?;
    Ok((found.uid, found.gid))
}

/// Docker's COPY semantics: dest is absolute (the engine joins WORKDIR already). If several
/// sources or dest ends with `/`, dest is a directory (created). A directory source copies its
/// *contents* into dest. A file source to an existing directory (or dest ending in `/`) goes
/// inside it, else dest names the file. Missing parent directories are created 0755 (owned by
/// `owner` when --chown, else root). Files keep the source's mode bits unless `mode`; the owner
/// is `owner` or 0:0. Symlinks inside copied directories are copied as symlinks; a selected
/// symlink is followed (within the tree). Ignored paths inside a copied directory are skipped.
/// With `extract_archives`, a local tar archive is extracted into dest instead (docker's ADD);
/// an entry that would land outside dest is refused. Returns the number of entries written.
pub fn copy(
    tree: &SourceTree,
    selected: &[Selected],
    dest_root: BorrowedFd<'_>,
    dest: &str,
    options: &CopyOptions,
) -> Result<usize, CopyError> {
    let dest_rel = dest_path(dest)?;
    let into_dir = selected.len() > 1 || names_dir(dest);
    let src_root = tree.open_root()?;
    let mut writer = Writer::new(dest_root, options);
    for sel in selected {
        let entries = tree.entries(src_root.as_fd(), sel)?;
        let Some((first, below)) = entries.split_first() else { continue };
        if first.kind == Kind::Dir {
            let mode = options.mode.unwrap_or(first.mode);
            writer.ensure_dir(&dest_rel, mode).map_err(|e| dir_err(&dest_rel, e))?;
            writer.written += 1;
            for entry in below {
                writer.entry(tree, src_root.as_fd(), sel, &dest_rel.join(&entry.rel), entry)?;
            }
            continue;
        }
        if options.extract_archives {
            let file = tree.open_file(src_root.as_fd(), sel, first)?;
            if let Some(archive) = copy_archive::sniff(file) {
                let extracted = copy_archive::extract(archive, &writer, &dest_rel, &sel.source)?;
                writer.written += extracted;
                continue;
            }
        }
        let target = match sel.path.file_name() {
            Some(name) if into_dir || writer.is_dir(&dest_rel) => dest_rel.join(name),
            _ => dest_rel.clone(),
        };
        if into_dir {
            writer.ensure_dir(&dest_rel, 0o755).map_err(|e| dir_err(&dest_rel, e))?;
        }
        writer.entry(tree, src_root.as_fd(), sel, &target, first)?;
    }
    Ok(writer.written)
}

/// A heredoc source (`COPY <<EOF /dest`): writes `content` as file `name` per the same dest
/// rules (mode 0644 or --chmod).
pub fn write_inline(
    dest_root: BorrowedFd<'_>,
    dest: &str,
    name: &str,
    content: &[u8],
    options: &CopyOptions,
) -> Result<(), CopyError> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(CopyError::Dest { path: dest.to_owned(), reason: format!("bad heredoc file name {name:?}") });
    }
    let dest_rel = dest_path(dest)?;
    let writer = Writer::new(dest_root, options);
    let target = if names_dir(dest) || writer.is_dir(&dest_rel) { dest_rel.join(name) } else { dest_rel };
    let (parent, file_name) = writer.parent_of(&target)?;
    let mode = options.mode.unwrap_or(0o644);
    writer.write_file(parent.as_fd(), file_name, &target, mode, None, &mut io::Cursor::new(content))
}

/// The destination as a path relative to the root; it must be absolute.
fn dest_path(dest: &str) -> Result<PathBuf, CopyError> {
    if !dest.starts_with('/') {
        return Err(CopyError::Dest { path: dest.to_owned(), reason: "not an absolute path".into() });
    }
    if dest.contains('\0') {
        return Err(CopyError::Dest { path: dest.to_owned(), reason: "contains a NUL byte".into() });
    }
    Ok(in_root::clean(dest))
}

/// Docker treats `dest/` and `dest/.` as directories whatever exists.
fn names_dir(dest: &str) -> bool {
    dest.ends_with('/') || dest.ends_with("/.") || in_root::clean(dest).as_os_str().is_empty()
}

fn dir_err(path: &Path, e: Errno) -> CopyError {
    match e {
        Errno::NOTDIR | Errno::EXIST => {
            CopyError::Dest { path: display(path), reason: "it (or a parent) exists and is not a directory".into() }
        }
        e => write_err("create directory", path)(e),
    }
}

/// Writes into the destination root with the owner and mode rules of one COPY.
pub(crate) struct Writer<'a> {
    pub root: BorrowedFd<'a>,
    pub owner: (u32, u32),
    pub options: &'a CopyOptions,
    /// The last parent directory resolved: a directory's entries come together.
    cached: Option<(PathBuf, OwnedFd)>,
    written: usize,
}

impl<'a> Writer<'a> {
    fn new(root: BorrowedFd<'a>, options: &'a CopyOptions) -> Self {
        Writer { root, owner: options.owner.unwrap_or((0, 0)), options, cached: None, written: 0 }
    }

    /// The same writer for entries owned by `owner` (archive entries keep their own).
    pub fn with_owner(&self, owner: (u32, u32)) -> Writer<'a> {
        Writer { root: self.root, owner, options: self.options, cached: None, written: 0 }
    }

    pub fn parents(&self) -> NewDir {
        NewDir { owner: self.owner, mode: 0o755 }
    }

    /// Whether `rel` is a directory in the destination, symlinks followed inside the root.
    fn is_dir(&self, rel: &Path) -> bool {
        in_root::open_dir(self.root, rel, Scope::InRoot).is_ok()
    }

    /// The directory `rel`, made with missing parents; a new last directory gets `mode`, an
    /// existing one is left as it is.
    pub fn ensure_dir(&self, rel: &Path, mode: u32) -> Result<OwnedFd, Errno> {
        let last = NewDir { owner: self.owner, mode };
        in_root::ensure_dir(self.root, rel, Scope::InRoot, self.parents(), last)
    }

    /// The parent directory of `target` (made when missing) and its last name.
    fn parent_of<'p>(&self, target: &'p Path) -> Result<(OwnedFd, &'p OsStr), CopyError> {
        let (Some(name), Some(parent)) = (target.file_name(), target.parent()) else {
            return Err(CopyError::Dest {
                path: display(target),
                reason: "only a directory can be copied to /".into(),
            });
        };
        let fd = self.ensure_dir(parent, 0o755).map_err(|e| dir_err(parent, e))?;
        Ok((fd, name))
    }

    /// Writes one source entry at `target`.
    fn entry(
        &mut self,
        tree: &SourceTree,
        src_root: BorrowedFd<'_>,
        sel: &Selected,
        target: &Path,
        entry: &Entry,
    ) -> Result<(), CopyError> {
        let (Some(name), Some(parent)) = (target.file_name(), target.parent()) else {
            return Err(CopyError::Dest {
                path: display(target),
                reason: "only a directory can be copied to /".into(),
            });
        };
        let parent_fd = match self.cached.take() {
            Some((path, fd)) if path == parent => fd,
            _ => self.ensure_dir(parent, 0o755).map_err(|e| dir_err(parent, e))?,
        };
        let mode = self.options.mode.unwrap_or(entry.mode);
        let mtime = Some(entry.mtime);
        match &entry.kind {
            Kind::Dir => self.dir(parent_fd.as_fd(), name, target, mode)?,
            Kind::File => {
                let mut from = tree.open_file(src_root, sel, entry)?;
                self.write_file(parent_fd.as_fd(), name, target, mode, mtime, &mut from)?;
            }
            Kind::Symlink(link) => self.symlink(parent_fd.as_fd(), name, target, link, mtime)?,
        }
        self.written += 1;
        self.cached = Some((parent.to_owned(), parent_fd));
        Ok(())
    }

    /// A directory at `name` in `parent`: an existing one (or a symlink to one inside the root,
    /// such as a merged-usr `/lib -> usr/lib`) is copied into, anything else is replaced.
    pub fn dir(&self, parent: BorrowedFd<'_>, name: &OsStr, target: &Path, mode: u32) -> Result<(), CopyError> {
        let meta = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW);
        let is_real_dir = meta.as_ref().is_ok_and(|st| rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir());
        if is_real_dir {
            let fd = in_root::open_child(parent, name, OFlags::RDONLY | OFlags::DIRECTORY)
                .map_err(write_err("open", target))?;
            return in_root::set_owner_mode(&fd, self.owner, mode)
                .map_err(write_err("set the owner and mode of", target));
        }
        if meta.is_ok() && self.is_dir(target) {
            return Ok(());
        }
        in_root::clear_for_file(parent, name).map_err(write_err("replace", target))?;
        in_root::make_dir(parent, name, NewDir { owner: self.owner, mode })
            .map_err(write_err("create directory", target))
    }

    /// Writes a regular file at `name` in `parent` from `from`.
    pub fn write_file(
        &self,
        parent: BorrowedFd<'_>,
        name: &OsStr,
        target: &Path,
        mode: u32,
        mtime: Option<(i64, i64)>,
        from: &mut dyn io::Read,
    ) -> Result<(), CopyError> {
        in_root::clear_for_file(parent, name).map_err(|e| match e {
            Errno::ISDIR => {
                CopyError::Dest { path: display(target), reason: "cannot overwrite a directory with a file".into() }
            }
            e => write_err("replace", target)(e),
        })?;
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = openat(parent, name, flags, Mode::from_raw_mode(0o600)).map_err(write_err("create", target))?;
        let mut to = File::from(fd);
        io::copy(from, &mut to).map_err(|e| write_err("write", target)(errno(&e)))?;
        to.flush().map_err(|e| write_err("write", target)(errno(&e)))?;
        let fd = OwnedFd::from(to);
        in_root::set_owner_mode(&fd, self.owner, mode).map_err(write_err("set the owner and mode of", target))?;
        if let Some(mtime) = mtime {
            futimens(&fd, &times(mtime)).map_err(write_err("set the mtime of", target))?;
        }
        Ok(())
    }

    /// A symlink at `name` in `parent`, pointing at `link` as written (never followed here).
    pub fn symlink(
        &self,
        parent: BorrowedFd<'_>,
        name: &OsStr,
        target: &Path,
        link: &Path,
        mtime: Option<(i64, i64)>,
    ) -> Result<(), CopyError> {
        in_root::clear_for_file(parent, name).map_err(|e| match e {
            Errno::ISDIR => {
                CopyError::Dest { path: display(target), reason: "cannot overwrite a directory with a symlink".into() }
            }
            e => write_err("replace", target)(e),
        })?;
        symlinkat(link, parent, name).map_err(write_err("create symlink", target))?;
        let (uid, gid) = self.owner;
        chownat(parent, name, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(write_err("set the owner of", target))?;
        if let Some(mtime) = mtime {
            utimensat(parent, name, &times(mtime), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(write_err("set the mtime of", target))?;
        }
        Ok(())
    }
}

fn times((secs, nanos): (i64, i64)) -> Timestamps {
    let t = Timespec { tv_sec: secs, tv_nsec: nanos };
    Timestamps { last_access: t, last_modification: t }
}

#[cfg(test)]
#[path = "copy_tests.rs"]
mod tests;
