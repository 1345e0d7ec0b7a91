//! ADD of a local tar archive: extracted into the destination directory instead of copied.
//!
//! Docker extracts in a chroot at the destination, so an archive can only write below it. Here
//! every entry's parent is resolved with `RESOLVE_BENEATH` relative to the destination
//! directory: a symlink from the archive (or already in the image) that leads out of it makes
//! the entry fail instead of writing elsewhere, and names with `..` above the destination or a
//! leading `/` are refused before anything is resolved.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Cursor, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Gid, Mode, Uid, chmodat, chownat, linkat, makedev, mknodat};
use rustix::io::Errno;
use tar::EntryType;

use super::context::{CopyError, write_err};
use super::copy::Writer;
use super::in_root::{self, Scope};
use crate::image::unpack::decompress;

/// A tar header block is 512 bytes.
const BLOCK: usize = 512;

/// The decompressed stream of `file` when it is a tar archive (plain, gzip or zstd), `None`
/// when it is anything else (then ADD copies it as a file).
pub(crate) fn sniff(file: File) -> Option<Box<dyn Read>> {
    let mut stream = decompress(file).ok()?;
    let mut block = vec![0u8; BLOCK];
    let mut len = 0;
    while len < BLOCK {
        match stream.read(&mut block[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    if len < BLOCK || !is_tar_header(&block) {
        return None;
    }
    Some(Box::new(Cursor::new(block).chain(stream)))
}

/// Docker decides by reading the first header; a valid header checksum is what makes one.
fn is_tar_header(block: &[u8]) -> bool {
    let Some(field) = block.get(148..156) else { return false };
    if block.iter().all(|b| *b == 0) {
        return false;
    }
    let text = String::from_utf8_lossy(field);
    let Ok(stored) = u32::from_str_radix(text.trim_matches(|c: char| c == ' ' || c == '\0'), 8) else {
        return false;
    };
    let sum: u32 =
        block.iter().enumerate().map(|(i, b)| if (148..156).contains(&i) { 32 } else { u32::from(*b) }).sum();
    sum == stored
}

/// Extracts the tar stream into `dest` (a directory, made when missing). Owners are the
/// archive's unless `--chown`, modes the archive's unless `--chmod`. Returns the entries written.
pub(crate) fn extract(
    archive: Box<dyn Read>,
    writer: &Writer<'_>,
    dest: &Path,
    name: &str,
) -> Result<usize, CopyError> {
    let dest_fd = writer.ensure_dir(dest, 0o755).map_err(write_err("create directory", dest))?;
    let refuse = |entry: &[u8], reason: &str| CopyError::Archive {
        archive: name.to_owned(),
        entry: String::from_utf8_lossy(entry).into_owned(),
        reason: reason.to_owned(),
    };
    let stream =
        |e: io::Error| CopyError::Archive { archive: name.to_owned(), entry: String::new(), reason: e.to_string() };
    let mut tar = tar::Archive::new(archive);
    let mut written = 0;
    for entry in tar.entries().map_err(stream)? {
        let mut entry = entry.map_err(stream)?;
        let raw = entry.path_bytes().into_owned();
        let kind = entry.header().entry_type();
        if !matches!(
            kind,
            EntryType::Regular
                | EntryType::Continuous
                | EntryType::Directory
                | EntryType::Symlink
                | EntryType::Link
                | EntryType::Char
                | EntryType::Block
                | EntryType::Fifo
        ) {
            // PAX and GNU metadata entries are applied by the tar crate; nothing else is content.
            continue;
        }
        let rel = normalize(&raw).map_err(|reason| refuse(&raw, reason))?;
        let (Some(file_name), Some(parent_rel)) = (rel.file_name(), rel.parent()) else {
            continue; // The archive's root directory.
        };
        // Whiteout markers would turn into deletions once the layer is read back.
        if file_name.as_bytes().starts_with(b".wh.") {
            continue;
        }
        let target = dest.join(&rel);
        let parents = writer.parents();
        let parent = in_root::ensure_dir(dest_fd.as_fd(), parent_rel, Scope::Beneath, parents, parents).map_err(
            |e| match e {
                Errno::XDEV | Errno::LOOP => refuse(&raw, "its parent is a symlink that leads out of the destination"),
                e => write_err("create directory", &target)(e),
            },
        )?;
        let header = entry.header();
        let bad = |what: &str| refuse(&raw, &format!("unreadable {what}"));
        let id = |v: u64| u32::try_from(v).ok().filter(|v| *v != u32::MAX);
        let owner = match writer.options.owner {
            Some(owner) => owner,
            None => (
                header.uid().ok().and_then(id).ok_or_else(|| bad("uid"))?,
                header.gid().ok().and_then(id).ok_or_else(|| bad("gid"))?,
            ),
        };
        let mode = writer.options.mode.unwrap_or(header.mode().map_err(|_| bad("mode"))? & 0o7777);
        let mtime = i64::try_from(header.mtime().map_err(|_| bad("mtime"))?).unwrap_or(0);
        let node = writer.with_owner(owner);
        let at = parent.as_fd();
        match kind {
            EntryType::Directory => node.dir(at, file_name, &target, mode)?,
            EntryType::Symlink => {
                let link = entry.link_name_bytes().ok_or_else(|| refuse(&raw, "symlink without a target"))?;
                let link = PathBuf::from(OsStr::from_bytes(&link));
                node.symlink(at, file_name, &target, &link, Some((mtime, 0)))?;
            }
            EntryType::Link => {
                let link = entry.link_name_bytes().ok_or_else(|| refuse(&raw, "hard link without a target"))?;
                let link_rel = normalize(&link).map_err(|reason| refuse(&raw, reason))?;
                hard_link(dest_fd.as_fd(), &link_rel, at, file_name).map_err(|e| match e {
                    Errno::XDEV | Errno::LOOP => refuse(&raw, "its link target leads out of the destination"),
                    e => write_err("hard-link", &target)(e),
                })?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let header = entry.header();
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                let ftype = match kind {
                    EntryType::Char => FileType::CharacterDevice,
                    EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                special(at, file_name, ftype, makedev(major, minor), owner, mode)
                    .map_err(write_err("create node", &target))?;
            }
            _ => node.write_file(at, file_name, &target, mode, Some((mtime, 0)), &mut entry)?,
        }
        written += 1;
    }
    Ok(written)
}

/// A tar name as a path below the destination: `./` and empty names dropped, `..` applied
/// lexically; a leading `/` or climbing above the destination is refused.
fn normalize(raw: &[u8]) -> Result<PathBuf, &'static str> {
    if raw.starts_with(b"/") {
        return Err("absolute names are refused");
    }
    if raw.contains(&0) {
        return Err("the name contains a NUL byte");
    }
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in raw.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                parts.pop().ok_or("the name climbs out of the destination")?;
            }
            _ => parts.push(part),
        }
    }
    Ok(parts.iter().map(|p| OsStr::from_bytes(p)).collect())
}

fn hard_link(dest: BorrowedFd<'_>, link: &Path, parent: BorrowedFd<'_>, name: &OsStr) -> Result<(), Errno> {
    let (Some(link_name), Some(link_parent)) = (link.file_name(), link.parent()) else {
        return Err(Errno::INVAL);
    };
    let from: OwnedFd = in_root::open_dir(dest, link_parent, Scope::Beneath)?;
    in_root::clear_for_file(parent, name)?;
    // Without AT_SYMLINK_FOLLOW a symlink target is linked itself, never followed.
    linkat(&from, link_name, parent, name, AtFlags::empty())
}

fn special(
    parent: BorrowedFd<'_>,
    name: &OsStr,
    ftype: FileType,
    dev: u64,
    (uid, gid): (u32, u32),
    mode: u32,
) -> Result<(), Errno> {
    in_root::clear_for_file(parent, name)?;
    mknodat(parent, name, ftype, Mode::from_raw_mode(0o600), dev)?;
    chownat(parent, name, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)), AtFlags::SYMLINK_NOFOLLOW)?;
    // The name was just made as a node, so following it cannot reach anything else.
    chmodat(parent, name, Mode::from_raw_mode(mode), AtFlags::empty())
}
