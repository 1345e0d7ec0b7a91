//! A layer directory in berth's overlayfs form (see `image::store`) written back as an OCI layer
//! tar, which the builder needs for a built layer's diff id and for pushing or saving images.
//!
//! The tar is deterministic (same tree ⇒ same bytes ⇒ same diff id): entries come in a fixed
//! order (each directory's names sorted bytewise, parents before children), and only what the
//! layer means is recorded: numeric owners, mode, mtime seconds, xattrs — no user names, atime
//! or ctime. Overlay metadata is translated, not copied: a whiteout (char device 0:0) becomes
//! `.wh.<name>`, an opaque directory gets `.wh..wh..opq`, and other `trusted.overlay.*` xattrs
//! (left by copy-up) are dropped.

use std::collections::HashMap;
use std::fs::{self, File, Metadata};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use tar::{EntryType, Header};

use crate::image::Digest;
use crate::image::digest::HashingWriter;

const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// Overlay bookkeeping (`trusted.` as root, `user.` with `userxattr`), never layer content.
const OVERLAY_XATTRS: [&[u8]; 2] = [b"trusted.overlay.", b"user.overlay."];
/// Overlay xattrs whose meaning lives outside the upper directory.
const OVERLAY_DEPENDENT: [&[u8]; 2] = [b".overlay.redirect", b".overlay.metacopy"];
const NAME_LEN: usize = 100;
const PREFIX_LEN: usize = 155;
/// How deep the walk descends (one open directory handle per level is never held, but the
/// recursion is bounded all the same).
const MAX_DEPTH: usize = 4096;

/// Streams a deterministic OCI layer tar of an overlay-form directory into `out`: entries sorted
/// by name, parents before children; whiteout → `<dir>/.wh.<name>` empty regular file; opaque
/// dir → the dir entry then `<dir>/.wh..wh..opq`; hard links within the layer as tar hardlinks;
/// uid/gid/mode/mtime from the files (mtime seconds), no atime/ctime, PAX headers for long names
/// and xattrs other than `trusted.overlay.*`; devices and fifos as such. Returns the number of
/// bytes written.
pub fn write_layer_tar(dir: &Path, out: impl Write) -> Result<u64, io::Error> {
    let mut tar = TarWriter { out: BufWriter::with_capacity(1 << 16, out), bytes: 0, links: HashMap::new() };
    tar.dir(dir, b"", 0)?;
    // End of archive: two zero blocks.
    tar.write(&[0u8; 1024])?;
    tar.out.flush()?;
    Ok(tar.bytes)
}

/// The diff id and tar size of a layer directory: [`write_layer_tar`] into a sha256 hasher (no
/// temporary file).
pub fn diff_id(dir: &Path) -> Result<(Digest, u64), io::Error> {
    let mut hash = HashingWriter::new(io::sink());
    let size = write_layer_tar(dir, &mut hash)?;
    Ok((hash.finish().0, size))
}

struct TarWriter<W: Write> {
    out: BufWriter<W>,
    bytes: u64,
    /// First name written for each multiply-linked inode, for the later ones' hard links.
    links: HashMap<(u64, u64), Vec<u8>>,
}

impl<W: Write> TarWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.out.write_all(data)?;
        self.bytes += data.len() as u64;
        Ok(())
    }

    /// Everything below `path`, whose name in the tar is `prefix` (empty for the root).
    fn dir(&mut self, path: &Path, prefix: &[u8], depth: usize) -> io::Result<()> {
        if depth >= MAX_DEPTH {
            return Err(io::Error::other(format!("{}: directories nest too deep", path.display())));
        }
        // Sorted by the names the tar shows, so a whiteout sorts as `.wh.<name>`.
        let mut children = Vec::new();
        for entry in fs::read_dir(path)? {
            let name = entry?.file_name();
            let meta = fs::symlink_metadata(path.join(&name))?;
            let mut key = Vec::new();
            if is_whiteout(&meta) {
                key.extend_from_slice(b".wh.");
            }
            key.extend_from_slice(name.as_bytes());
            children.push((key, name, meta));
        }
        children.sort_by(|a, b| a.0.cmp(&b.0));
        for (shown, name, meta) in children {
            let child = path.join(&name);
            let mut rel = prefix.to_vec();
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(&shown);
            let kind = meta.file_type();
            if kind.is_dir() {
                let mut dir_name = rel.clone();
                dir_name.push(b'/');
                let xattrs = xattrs(&child)?;
                self.entry(&meta, EntryType::Directory, &dir_name, None, &xattrs, 0)?;
                if is_opaque(&child)? {
                    let mut marker = rel.clone();
                    marker.extend_from_slice(b"/.wh..wh..opq");
                    self.entry(&meta, EntryType::Regular, &marker, None, &[], 0)?;
                }
                self.dir(&child, &rel, depth + 1)?;
            } else if is_whiteout(&meta) {
                self.entry(&meta, EntryType::Regular, &rel, None, &[], 0)?;
            } else if kind.is_file() {
                if meta.nlink() > 1 {
                    let key = (meta.dev(), meta.ino());
                    if let Some(first) = self.links.get(&key).cloned() {
                        self.entry(&meta, EntryType::Link, &rel, Some(&first), &[], 0)?;
                        continue;
                    }
                    self.links.insert(key, rel.clone());
                }
                self.file(&child, &meta, &rel)?;
            } else if kind.is_symlink() {
                let target = fs::read_link(&child)?.into_os_string().into_vec();
                self.entry(&meta, EntryType::Symlink, &rel, Some(&target), &xattrs(&child)?, 0)?;
            } else if kind.is_char_device() || kind.is_block_device() || kind.is_fifo() {
                let entry_type = if kind.is_char_device() {
                    EntryType::Char
                } else if kind.is_block_device() {
                    EntryType::Block
                } else {
                    EntryType::Fifo
                };
                self.entry(&meta, entry_type, &rel, None, &xattrs(&child)?, 0)?;
            }
            // Sockets cannot be in a tar; docker leaves them out too.
        }
        Ok(())
    }

    fn file(&mut self, path: &Path, meta: &Metadata, rel: &[u8]) -> io::Result<()> {
        let size = meta.len();
        self.entry(meta, EntryType::Regular, rel, None, &xattrs(path)?, size)?;
        let file = File::options().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path)?;
        let copied = io::copy(&mut file.take(size), &mut self.out)?;
        if copied != size {
            return Err(io::Error::other(format!("{}: the file shrank while it was archived", path.display())));
        }
        self.bytes += size;
        let pad = (512 - size % 512) % 512;
        self.write(&vec![0u8; usize::try_from(pad).unwrap_or(0)])
    }

    /// One header (preceded by a PAX header when needed).
    fn entry(
        &mut self,
        meta: &Metadata,
        kind: EntryType,
        name: &[u8],
        link: Option<&[u8]>,
        xattrs: &[(Vec<u8>, Vec<u8>)],
        size: u64,
    ) -> io::Result<()> {
        let mut header = Header::new_ustar();
        header.set_entry_type(kind);
        header.set_mode(meta.mode() & 0o7777);
        header.set_uid(u64::from(meta.uid()));
        header.set_gid(u64::from(meta.gid()));
        header.set_mtime(u64::try_from(meta.mtime()).unwrap_or(0));
        header.set_size(size);
        if matches!(kind, EntryType::Char | EntryType::Block) {
            let rdev = meta.rdev();
            header.set_device_major(libc::major(rdev))?;
            header.set_device_minor(libc::minor(rdev))?;
        }
        let mut pax: Vec<(Vec<u8>, &[u8])> = Vec::new();
        let ustar = header.as_ustar_mut().ok_or_else(|| io::Error::other("not a ustar header"))?;
        match split_name(name) {
            Some((prefix, rest)) => {
                ustar.prefix[..prefix.len()].copy_from_slice(prefix);
                ustar.name[..rest.len()].copy_from_slice(rest);
            }
            None => {
                ustar.name.copy_from_slice(&name[..NAME_LEN]);
                pax.push((b"path".to_vec(), name));
            }
        }
        if let Some(link) = link {
            if link.len() <= NAME_LEN {
                ustar.linkname[..link.len()].copy_from_slice(link);
            } else {
                ustar.linkname.copy_from_slice(&link[..NAME_LEN]);
                pax.push((b"linkpath".to_vec(), link));
            }
        }
        for (key, value) in xattrs {
            let mut record = b"SCHILY.xattr.".to_vec();
            record.extend_from_slice(key);
            pax.push((record, value));
        }
        header.set_cksum();
        if !pax.is_empty() {
            self.pax(name, &pax)?;
        }
        self.write(header.as_bytes())
    }

    /// A PAX extended header (`x`) with `records`, for the entry named `name`.
    fn pax(&mut self, name: &[u8], records: &[(Vec<u8>, &[u8])]) -> io::Result<()> {
        let mut body = Vec::new();
        for (key, value) in records {
            // "<len> <key>=<value>\n", where <len> counts itself.
            let rest = key.len() + value.len() + 3;
            let mut len = rest + 1;
            while len != rest + len.to_string().len() {
                len = rest + len.to_string().len();
            }
            body.extend_from_slice(len.to_string().as_bytes());
            body.push(b' ');
            body.extend_from_slice(key);
            body.push(b'=');
            body.extend_from_slice(value);
            body.push(b'\n');
        }
        let mut header = Header::new_ustar();
        header.set_entry_type(EntryType::XHeader);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_size(body.len() as u64);
        // Go's naming; readers that do not know PAX extract it as a plain file.
        let base = name.rsplit(|b| *b == b'/').find(|p| !p.is_empty()).unwrap_or(b"entry");
        let mut pax_name = b"PaxHeaders.0/".to_vec();
        pax_name.extend_from_slice(base);
        pax_name.truncate(NAME_LEN);
        let ustar = header.as_ustar_mut().ok_or_else(|| io::Error::other("not a ustar header"))?;
        ustar.name[..pax_name.len()].copy_from_slice(&pax_name);
        header.set_cksum();
        self.write(header.as_bytes())?;
        self.write(&body)?;
        let pad = (512 - body.len() % 512) % 512;
        self.write(&vec![0u8; pad])
    }
}

/// The ustar `(prefix, name)` split of a name, when it fits in those fields.
fn split_name(name: &[u8]) -> Option<(&[u8], &[u8])> {
    if name.len() <= NAME_LEN {
        return Some((&[], name));
    }
    // The name field must hold what follows the last usable `/` (a directory's trailing `/`
    // cannot be the split point).
    let limit = name.len().min(PREFIX_LEN + 1);
    let at = name[..limit].iter().rposition(|b| *b == b'/')?;
    let (prefix, rest) = (&name[..at], &name[at + 1..]);
    (!rest.is_empty() && rest.len() <= NAME_LEN && !prefix.is_empty()).then_some((prefix, rest))
}

/// overlayfs marks a deleted name with a character device 0:0.
fn is_whiteout(meta: &Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

fn is_opaque(path: &Path) -> io::Result<bool> {
    let mut value = [0u8; 8];
    match rustix::fs::lgetxattr(path, OPAQUE_XATTR, &mut value[..]) {
        Ok(n) => Ok(value.get(..n) == Some(b"y")),
        Err(rustix::io::Errno::NODATA | rustix::io::Errno::NOTSUP | rustix::io::Errno::RANGE) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The xattrs of `path` (not followed) that are layer content, sorted by name.
fn xattrs(path: &Path) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let size = match rustix::fs::llistxattr_query(path) {
        Ok(0) | Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
        Ok(size) => size,
        Err(e) => return Err(e.into()),
    };
    let mut list = Vec::with_capacity(size);
    rustix::fs::llistxattr(path, rustix::buffer::spare_capacity(&mut list))?;
    let mut out = Vec::new();
    for name in list.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        if OVERLAY_XATTRS.iter().any(|p| name.starts_with(p)) {
            // These make the upper directory depend on the lower ones (a renamed directory's
            // contents, a copied-up file's data), which a layer cannot express.
            if OVERLAY_DEPENDENT.iter().any(|suffix| name.ends_with(suffix)) {
                return Err(io::Error::other(format!(
                    "{}: carries overlay xattr {}; mount the build overlay with redirect_dir=off,metacopy=off",
                    path.display(),
                    String::from_utf8_lossy(name)
                )));
            }
            continue;
        }
        let name_str = std::ffi::OsStr::from_bytes(name);
        let len = match rustix::fs::lgetxattr_query(path, name_str) {
            Ok(len) => len,
            // Removed between the listing and now.
            Err(rustix::io::Errno::NODATA) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut value = Vec::with_capacity(len);
        if len > 0 {
            rustix::fs::lgetxattr(path, name_str, rustix::buffer::spare_capacity(&mut value))?;
        }
        out.push((name.to_vec(), value));
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
#[path = "layer_tar_tests.rs"]
mod tests;
