//! Tar streams of a tree, and their extraction, in whatever root the calling thread has (see
//! the module above): the same code reads a container's files and the host's.
//!
//! Reading never follows a symlink below the top (`-L` follows the top only, as docker's
//! does): every name is `lstat`ed, files are opened `O_NOFOLLOW | O_NONBLOCK` and checked to be
//! the regular file they were (a FIFO swapped in would block, a device could do anything).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

use super::FsError;

/// How deep a tree is walked.
const MAX_DEPTH: usize = 1024;

/// How a tree is archived.
#[derive(Debug, Clone, Copy, Default)]
pub struct TarOptions {
    /// Follow the top path when it is a symlink (`cp -L`, or a path ending in `/`).
    pub follow_top: bool,
    /// Leave out whatever is on another file system than the top (mounts: `export`).
    pub one_filesystem: bool,
}

/// Writes the tree at `path` into `out` as a tar stream whose entries are named below `name`
/// (`None`: the directory's contents at the archive's top, without an entry for itself).
pub fn write_tree(path: &Path, name: Option<&Path>, options: TarOptions, out: impl Write) -> Result<(), FsError> {
    let err = |e: io::Error| FsError::io(format!("archive {}", path.display()), e);
    let meta = if options.follow_top { fs::metadata(path) } else { fs::symlink_metadata(path) }.map_err(err)?;
    let mut walker =
        Walker { tar: tar::Builder::new(out), links: HashMap::new(), options, dev: meta.dev(), top: path.to_owned() };
    match name {
        Some(name) => walker.entry(path, &meta, name, 0, options.follow_top),
        None if meta.is_dir() => walker.children(path, Path::new(""), 0),
        None => Err(io::Error::other("not a directory")),
    }
    .map_err(err)?;
    walker.tar.into_inner().and_then(|mut w| w.flush()).map_err(err)
}

struct Walker<W: Write> {
    tar: tar::Builder<W>,
    links: HashMap<(u64, u64), PathBuf>,
    options: TarOptions,
    dev: u64,
    top: PathBuf,
}

impl<W: Write> Walker<W> {
    fn children(&mut self, dir: &Path, name: &Path, depth: usize) -> io::Result<()> {
        if depth >= MAX_DEPTH {
            return Err(io::Error::other(format!("{}: directories nest too deep", self.top.display())));
        }
        let mut names: Vec<_> = fs::read_dir(dir)?.map(|e| e.map(|e| e.file_name())).collect::<Result<_, _>>()?;
        names.sort();
        for child in names {
            let path = dir.join(&child);
            let meta = match fs::symlink_metadata(&path) {
                Ok(meta) => meta,
                // Removed while the walk went on (a running container).
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if self.options.one_filesystem && meta.dev() != self.dev {
                continue;
            }
            self.entry(&path, &meta, &name.join(&child), depth + 1, false)?;
        }
        Ok(())
    }

    fn entry(&mut self, path: &Path, meta: &fs::Metadata, name: &Path, depth: usize, follow: bool) -> io::Result<()> {
        let kind = meta.file_type();
        let mut header = Header::new_gnu();
        header.set_mode(meta.mode() & 0o7777);
        header.set_uid(u64::from(meta.uid()));
        header.set_gid(u64::from(meta.gid()));
        header.set_mtime(u64::try_from(meta.mtime()).unwrap_or(0));
        header.set_size(0);
        if kind.is_dir() {
            header.set_entry_type(EntryType::Directory);
            self.tar.append_data(&mut header, name, io::empty())?;
            return self.children(path, name, depth);
        }
        if kind.is_symlink() {
            header.set_entry_type(EntryType::Symlink);
            let target = fs::read_link(path)?;
            return self.tar.append_link(&mut header, name, target);
        }
        if kind.is_file() {
            if meta.nlink() > 1 {
                let key = (meta.dev(), meta.ino());
                if let Some(first) = self.links.get(&key).cloned() {
                    header.set_entry_type(EntryType::Link);
                    return self.tar.append_link(&mut header, name, first);
                }
                self.links.insert(key, name.to_owned());
            }
            let flags = if follow { libc::O_NONBLOCK } else { libc::O_NOFOLLOW | libc::O_NONBLOCK };
            let file = File::options().read(true).custom_flags(flags | libc::O_NOCTTY).open(path)?;
            let opened = file.metadata()?;
            if !opened.is_file() || opened.ino() != meta.ino() {
                return Err(io::Error::other(format!("{}: replaced while it was archived", path.display())));
            }
            header.set_entry_type(EntryType::Regular);
            header.set_size(meta.len());
            // A file that shrinks meanwhile is padded, one that grows is cut: the header's size
            // is the one written.
            let data = file.take(meta.len()).chain(io::repeat(0)).take(meta.len());
            return self.tar.append_data(&mut header, name, data);
        }
        let entry_type = if kind.is_char_device() {
            EntryType::Char
        } else if kind.is_block_device() {
            EntryType::Block
        } else if kind.is_fifo() {
            EntryType::Fifo
        } else {
            // Sockets cannot be in a tar; docker leaves them out too.
            return Ok(());
        };
        header.set_entry_type(entry_type);
        if matches!(entry_type, EntryType::Char | EntryType::Block) {
            header.set_device_major(libc::major(meta.rdev()))?;
            header.set_device_minor(libc::minor(meta.rdev()))?;
        }
        self.tar.append_data(&mut header, name, io::empty())
    }
}

/// Extracts the tar stream `input` into the directory `dir`. Entries never land outside `dir`
/// (the tar crate refuses `..` and follows no symlink out of it); owners are the archive's
/// with `keep_owners` (`cp -a`), else the caller's.
pub fn extract(input: impl Read, dir: &Path, keep_owners: bool) -> Result<(), FsError> {
    let mut archive = tar::Archive::new(input);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_preserve_ownerships(keep_owners);
    archive.set_overwrite(true);
    archive.unpack(dir).map_err(|e| FsError::io(format!("extract into {}", dir.display()), e))
}
