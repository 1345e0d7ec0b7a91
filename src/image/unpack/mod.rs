//! Layer unpacking: one OCI image layer (a tar stream, optionally gzip- or zstd-compressed)
//! becomes one directory that overlayfs can use as a `lowerdir`.
//!
//! Every layer is hostile. All writes go through a directory fd for the destination: parents are
//! resolved with `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)` and the final
//! component is created with `*at` calls that never follow it, so no entry, symlink or hard link
//! reaches outside the destination. Path rules:
//! - a leading `/` is stripped, as docker and GNU tar do: `/etc/x` lands at `<dest>/etc/x`, and a
//!   hard link to `/etc/passwd` means the layer's own `etc/passwd`;
//! - `.` and empty components are dropped, `..` is applied lexically and refused if it would climb
//!   above the layer root;
//! - a parent component may be a symlink from this layer only if it resolves inside the layer;
//!   absolute and climbing-out symlinks are refused (docker re-roots them instead; well-formed
//!   layers never write through their own symlinks);
//! - entries naming the layer root (`./`) are skipped, as docker does; missing parents are created
//!   as root-owned 0755 directories.
//!
//! Owners are the tar's numeric uid/gid, never mapped through the host's passwd.

use std::cell::Cell;
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::{self, BufReader, Cursor, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, open, openat};
use nix::sys::stat::{Mode, SFlag, futimens, makedev, mkdirat, mknodat};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, fchownat, linkat, symlinkat};
use tar::EntryType;

mod fsops;

use fsops::{fd_meta, fsetxattr, is_dir, mkdir_755, remove_tree, resolve, special_meta};

/// Read-ahead for the layer stream; large reads keep syscalls and decoder calls rare.
const STREAM_BUF: usize = 1 << 20;
/// Most tar metadata (long names, PAX records) allowed before one entry: the tar crate buffers it
/// in memory, so a decompression bomb could otherwise exhaust memory.
const META_BUDGET: u64 = 16 << 20;
const OPAQUE_XATTR: &CStr = c"trusted.overlay.opaque";
const WHITEOUT: &[u8] = b".wh.";
const WHITEOUT_META: &[u8] = b".wh..wh.";
const WHITEOUT_OPAQUE: &[u8] = b".wh..wh..opq";
/// Overlay metadata is ours to write; a layer shipping it could forge whiteouts or redirects.
const FORBIDDEN_XATTRS: [&[u8]; 2] = [b"trusted.overlay.", b"user.overlay."];
const DIR_FLAGS: OFlag = OFlag::O_DIRECTORY.union(OFlag::O_NOFOLLOW).union(OFlag::O_CLOEXEC);

/// Compression of a layer blob, as recognised from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar stream.
    None,
    /// gzip (`1f 8b`).
    Gzip,
    /// zstd (`28 b5 2f fd`).
    Zstd,
}

impl Compression {
    /// Recognises the compression from the first bytes of a blob (plain tar when unknown).
    pub fn detect(magic: &[u8]) -> Self {
        match magic {
            [0x1f, 0x8b, ..] => Self::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Self::Zstd,
            _ => Self::None,
        }
    }
}

/// What one [`unpack`] call wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnpackStats {
    /// Tar entries processed, whiteout markers included.
    pub entries: u64,
    /// Bytes of regular-file content written.
    pub bytes: u64,
    /// `.wh.<name>` markers turned into overlayfs whiteouts (char device 0/0).
    pub whiteouts: u64,
    /// `.wh..wh..opq` markers turned into `trusted.overlay.opaque=y`.
    pub opaque_dirs: u64,
}

/// Why a layer could not be unpacked; entry names are shown as written in the tar.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The destination is missing, not a directory or not empty.
    #[error("layer destination {} cannot be used: {reason}", path.display())]
    Destination { path: PathBuf, reason: String },
    /// The kernel lacks `openat2(2)`, which confined path resolution depends on.
    #[error("openat2(2) is unavailable (Linux 5.6+ is required); refusing to unpack without confined path resolution")]
    Openat2Unsupported,
    /// The start of the blob is unreadable or the decompressor could not start.
    #[error("cannot read the layer blob: {0}")]
    Blob(#[source] io::Error),
    /// The tar stream is unreadable, corrupt or carries oversized metadata.
    #[error("cannot read the layer tar (last good entry: {after}): {source}")]
    Stream { after: String, source: io::Error },
    /// The entry's contents could not be read in full.
    #[error("cannot read the contents of layer entry {entry:?}: {source}")]
    Contents { entry: String, source: io::Error },
    /// A `..` in the name climbs above the layer root.
    #[error("layer entry {entry:?} escapes the layer directory")]
    Escape { entry: String },
    /// A parent component is a symlink that leaves the layer or loops.
    #[error("layer entry {entry:?} would be written through a symlink that leaves the layer directory or loops")]
    SymlinkEscape { entry: String },
    /// A hard link's target lies outside the layer.
    #[error("layer entry {entry:?} is a hard link to {target:?}, which escapes the layer directory")]
    LinkEscape { entry: String, target: String },
    /// A hard link's target is missing or cannot be linked.
    #[error("cannot hard-link layer entry {entry:?} to {target:?}: {source}")]
    Link { entry: String, target: String, source: io::Error },
    /// The entry carries overlay metadata that only the unpacker may create.
    #[error("layer entry {entry:?} carries xattr {name:?}; overlay metadata must not come from an image layer")]
    ForbiddenXattr { entry: String, name: String },
    /// The entry is not a file, directory, link, device or FIFO (sparse files are refused too).
    #[error("layer entry {entry:?} has unsupported tar entry type {kind:?}")]
    UnsupportedType { entry: String, kind: char },
    /// A header field or name is malformed.
    #[error("layer entry {entry:?} is invalid: {reason}")]
    Invalid { entry: String, reason: String },
    /// A filesystem operation failed.
    #[error("cannot {op} for layer entry {entry:?}: {source}")]
    Fs { entry: String, op: &'static str, source: io::Error },
    /// An xattr from the layer could not be set.
    #[error("cannot set xattr {name:?} on layer entry {entry:?}: {source}")]
    Xattr { entry: String, name: String, source: io::Error },
}

/// Sniffs the first bytes (gzip `1f 8b`, zstd `28 b5 2f fd`, else plain tar) and returns a reader
/// of the uncompressed stream.
pub fn decompress<R: Read + Send + 'static>(mut reader: R) -> Result<Box<dyn Read + Send>, UnpackError> {
    let (mut magic, mut len) = ([0u8; 4], 0);
    // A short read must not misclassify the blob, so read until 4 bytes or EOF.
    while let Some(rest) = magic.get_mut(len..).filter(|r| !r.is_empty()) {
        match reader.read(rest) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(UnpackError::Blob(e)),
        }
    }
    let kind = Compression::detect(magic.get(..len).unwrap_or_default());
    let input = BufReader::with_capacity(STREAM_BUF, Cursor::new(magic).take(len as u64).chain(reader));
    Ok(match kind {
        Compression::None => Box::new(input),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(input).map_err(UnpackError::Blob)?),
    })
}

/// Unpacks an uncompressed layer tar stream into `dest`, which must exist and be empty.
/// On error `dest` holds a partial layer, which the caller must discard.
pub fn unpack(layer: impl Read, dest: &Path) -> Result<UnpackStats, UnpackError> {
    let mut unpacker = Unpacker::new(dest)?;
    let budget = Rc::new(Cell::new(META_BUDGET));
    let mut archive =
        tar::Archive::new(Budgeted { inner: BufReader::with_capacity(STREAM_BUF, layer), left: budget.clone() });
    let mut last = None;
    let stream = |last: &Option<Vec<u8>>, source| UnpackError::Stream {
        after: last.as_deref().map_or_else(|| "none".to_owned(), |l| format!("{:?}", show(l))),
        source,
    };
    for entry in archive.entries().map_err(|e| stream(&last, e))? {
        let mut entry = entry.map_err(|e| stream(&last, e))?;
        // Until the next entry is yielded, the tar crate may read this entry's data plus metadata.
        budget.set(entry.size().div_ceil(512).saturating_mul(512).saturating_add(META_BUDGET));
        let raw = entry.path_bytes().into_owned();
        unpacker.entry(&mut entry, &raw)?;
        last = Some(raw);
    }
    unpacker.finish()?;
    Ok(unpacker.stats)
}

/// Fails reads once the tar crate consumed more than `unpack` last allowed.
struct Budgeted<R> {
    inner: R,
    left: Rc<Cell<u64>>,
}

impl<R: Read> Read for Budgeted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.left.get();
        if left == 0 {
            return Err(io::Error::other(
                "more than 16 MiB of tar metadata (long names, PAX records) precede an entry",
            ));
        }
        let max = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(buf.get_mut(..max).unwrap_or_default())?;
        self.left.set(left.saturating_sub(n as u64));
        Ok(n)
    }
}

/// Ownership, permissions, time and xattrs of one entry.
struct Meta {
    uid: Uid,
    gid: Gid,
    mode: Mode,
    mtime: TimeSpec,
    xattrs: Vec<(CString, Vec<u8>)>,
}

/// What a name means under the OCI whiteout conventions.
enum Role<'a> {
    Normal,
    Skip,
    Opaque,
    Whiteout(&'a [u8]),
}

struct Unpacker {
    root: Rc<OwnedFd>,
    /// The last parent directory resolved: layers list a directory's children together.
    cached: Option<(Vec<u8>, Rc<OwnedFd>)>,
    /// Directory mtimes, applied last because creating children changes them.
    dir_times: Vec<(Vec<u8>, TimeSpec)>,
    buf: Vec<u8>,
    stats: UnpackStats,
}

impl Unpacker {
    fn new(dest: &Path) -> Result<Self, UnpackError> {
        let bad = |reason: String| UnpackError::Destination { path: dest.to_owned(), reason };
        let root = open(dest, OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|e| bad(format!("cannot open it as a directory: {e}")))?;
        let mut listing = std::fs::read_dir(dest).map_err(|e| bad(format!("cannot list it: {e}")))?;
        if listing.next().is_some() {
            return Err(bad("it is not empty; a layer unpacks only into a fresh directory".into()));
        }
        match resolve(root.as_fd(), b".", OFlag::O_PATH) {
            Err(Errno::ENOSYS) => return Err(UnpackError::Openat2Unsupported),
            Err(e) => return Err(bad(format!("openat2 fails on it: {e}"))),
            Ok(_) => {}
        }
        let root = Rc::new(root);
        Ok(Self { root, cached: None, dir_times: Vec::new(), buf: vec![0; 256 << 10], stats: UnpackStats::default() })
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>, raw: &[u8]) -> Result<(), UnpackError> {
        self.stats.entries += 1;
        let kind = entry.header().entry_type();
        if kind == EntryType::XGlobalHeader {
            return Ok(());
        }
        // Pre-POSIX tars mark directories as regular files whose name ends in a slash.
        let is_dir = kind == EntryType::Directory || (kind == EntryType::Regular && raw.ends_with(b"/"));
        let comps = normalize(raw)?;
        let meta = read_meta(entry, raw)?;
        let Some((&name, parents)) = comps.split_last() else {
            return if is_dir { Ok(()) } else { Err(invalid(raw, "a non-directory cannot replace the layer root")) };
        };
        match role(parents, name).map_err(|reason| invalid(raw, reason))? {
            Role::Skip => return Ok(()),
            Role::Opaque => return self.opaque(parents, raw),
            Role::Whiteout(hidden) => return self.whiteout(parents, hidden, &meta, raw),
            Role::Normal => {}
        }
        let parent = self.parent(parents, raw)?;
        let link_name = || entry.link_name_bytes().unwrap_or_default().into_owned();
        match kind {
            _ if is_dir => self.directory(&parent, &comps, &meta, raw),
            EntryType::Regular | EntryType::Continuous => self.file(entry, &parent, name, &meta, raw),
            EntryType::Symlink => {
                let target = link_name();
                if target.is_empty() {
                    return Err(invalid(raw, "the symlink target is empty"));
                }
                let made = self.create(&parent, name, |dir| symlinkat(target.as_slice(), dir, name));
                made.map_err(fs(raw, "create the symlink"))?;
                special_meta(&parent, name, &meta, true, raw)
            }
            EntryType::Link => self.hard_link(&parent, name, &link_name(), raw),
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let header = entry.header();
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                let (sflag, dev) = match kind {
                    EntryType::Char => (SFlag::S_IFCHR, makedev(major.into(), minor.into())),
                    EntryType::Block => (SFlag::S_IFBLK, makedev(major.into(), minor.into())),
                    _ => (SFlag::S_IFIFO, 0),
                };
                let made = self.create(&parent, name, |dir| mknodat(dir, name, sflag, Mode::S_IRUSR, dev));
                made.map_err(fs(raw, "create the device node or FIFO"))?;
                special_meta(&parent, name, &meta, false, raw)
            }
            other => Err(UnpackError::UnsupportedType { entry: show(raw), kind: char::from(other.as_byte()) }),
        }
    }

    fn directory(&mut self, parent: &OwnedFd, comps: &[&[u8]], meta: &Meta, raw: &[u8]) -> Result<(), UnpackError> {
        let name = comps.last().copied().unwrap_or(b".");
        match mkdirat(parent.as_fd(), name, Mode::S_IRWXU) {
            // Like tar, a later directory merges into an earlier one but replaces anything else.
            Err(Errno::EEXIST) if !is_dir(parent.as_fd(), name) => {
                self.clear(parent, name).and_then(|()| mkdirat(parent.as_fd(), name, Mode::S_IRWXU))
            }
            Err(Errno::EEXIST) => Ok(()),
            other => other,
        }
        .map_err(fs(raw, "create the directory"))?;
        let dir = openat(parent.as_fd(), name, DIR_FLAGS | OFlag::O_RDONLY, Mode::empty())
            .map_err(fs(raw, "open the directory"))?;
        fd_meta(dir.as_fd(), meta, raw)?;
        self.dir_times.push((comps.join(&b'/'), meta.mtime));
        Ok(())
    }

    fn file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        parent: &OwnedFd,
        name: &[u8],
        meta: &Meta,
        raw: &[u8],
    ) -> Result<(), UnpackError> {
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = self.create(parent, name, |dir| openat(dir, name, flags, Mode::S_IRUSR | Mode::S_IWUSR));
        let mut file = File::from(fd.map_err(fs(raw, "create the file"))?);
        let mut written = 0u64;
        loop {
            let n = match entry.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(UnpackError::Contents { entry: show(raw), source }),
            };
            file.write_all(self.buf.get(..n).unwrap_or_default()).map_err(|source| UnpackError::Fs {
                entry: show(raw),
                op: "write the file",
                source,
            })?;
            written += n as u64;
        }
        if written != entry.size() {
            let source = io::Error::new(io::ErrorKind::UnexpectedEof, format!("{written} of {} bytes", entry.size()));
            return Err(UnpackError::Contents { entry: show(raw), source });
        }
        self.stats.bytes += written;
        fd_meta(file.as_fd(), meta, raw)?;
        futimens(file.as_fd(), &meta.mtime, &meta.mtime).map_err(fs(raw, "set the mtime"))
    }

    fn hard_link(&mut self, parent: &OwnedFd, name: &[u8], target: &[u8], raw: &[u8]) -> Result<(), UnpackError> {
        let escape = || UnpackError::LinkEscape { entry: show(raw), target: show(target) };
        let tcomps = normalize(target).map_err(|_| escape())?;
        let Some((&tname, tparents)) = tcomps.split_last() else {
            return Err(invalid(raw, "a hard link cannot point at the layer root"));
        };
        let err = |e: Errno| match e {
            Errno::EXDEV | Errno::ELOOP => escape(),
            e => UnpackError::Link { entry: show(raw), target: show(target), source: e.into() },
        };
        let tdir = match tparents {
            [] => self.root.clone(),
            _ => Rc::new(resolve(self.root.as_fd(), &tparents.join(&b'/'), OFlag::O_PATH).map_err(err)?),
        };
        // Flags 0: a link to a symlink links the symlink itself, never what it points to.
        self.create(parent, name, |dir| linkat(tdir.as_fd(), tname, dir, name, AtFlags::empty())).map_err(err)
    }

    fn whiteout(&mut self, parents: &[&[u8]], hidden: &[u8], meta: &Meta, raw: &[u8]) -> Result<(), UnpackError> {
        let parent = self.parent(parents, raw)?;
        let at = parent.as_fd();
        self.clear(&parent, hidden)
            .and_then(|()| mknodat(at, hidden, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0)))
            .and_then(|()| fchownat(at, hidden, Some(meta.uid), Some(meta.gid), AtFlags::AT_SYMLINK_NOFOLLOW))
            .map_err(fs(raw, "create the overlay whiteout"))?;
        self.stats.whiteouts += 1;
        Ok(())
    }

    fn opaque(&mut self, dir: &[&[u8]], raw: &[u8]) -> Result<(), UnpackError> {
        let fd = match dir.split_last() {
            None => None,
            Some((&name, parents)) => {
                let parent = self.parent(parents, raw)?;
                let opened = mkdir_755(parent.as_fd(), name)
                    .and_then(|()| openat(parent.as_fd(), name, DIR_FLAGS | OFlag::O_RDONLY, Mode::empty()));
                Some(opened.map_err(fs(raw, "create or open the opaque directory"))?)
            }
        };
        let fd = fd.as_ref().map_or(self.root.as_fd(), |d| d.as_fd());
        fsetxattr(fd, OPAQUE_XATTR, b"y").map_err(fs(raw, "set trusted.overlay.opaque"))?;
        self.stats.opaque_dirs += 1;
        Ok(())
    }

    /// Runs `make`; if the name is taken, removes what is there (later entries win) and retries.
    fn create<T>(
        &mut self,
        parent: &OwnedFd,
        name: &[u8],
        make: impl Fn(BorrowedFd<'_>) -> nix::Result<T>,
    ) -> nix::Result<T> {
        match make(parent.as_fd()) {
            Err(Errno::EEXIST) => self.clear(parent, name).and_then(|()| make(parent.as_fd())),
            other => other,
        }
    }

    /// Removes `name` (recursively) if present.
    fn clear(&mut self, parent: &OwnedFd, name: &[u8]) -> nix::Result<()> {
        // The cached parent could lie under what is removed, or have been reached through it.
        self.cached = None;
        match remove_tree(parent.as_fd(), name) {
            Err(Errno::ENOENT) => Ok(()),
            other => other,
        }
    }

    /// Returns the parent directory as an `O_PATH` fd, creating missing components like docker.
    fn parent(&mut self, comps: &[&[u8]], raw: &[u8]) -> Result<Rc<OwnedFd>, UnpackError> {
        if comps.is_empty() {
            return Ok(self.root.clone());
        }
        let key = comps.join(&b'/');
        if let Some((cached, fd)) = &self.cached
            && *cached == key
        {
            return Ok(fd.clone());
        }
        let fd = match resolve(self.root.as_fd(), &key, OFlag::O_PATH | OFlag::O_DIRECTORY) {
            Err(Errno::ENOENT) => self.mkdir_all(comps, raw)?,
            other => other.map_err(|e| resolve_err(raw, e))?,
        };
        let fd = Rc::new(fd);
        self.cached = Some((key, fd.clone()));
        Ok(fd)
    }

    fn mkdir_all(&self, comps: &[&[u8]], raw: &[u8]) -> Result<OwnedFd, UnpackError> {
        // Prefix existence is monotone: binary-search the longest one that resolves, so deep
        // hostile paths cost O(n log n) lookups rather than O(n^2).
        let (mut found, mut missing, mut cur) = (0, comps.len(), None);
        while missing - found > 1 {
            let mid = found + (missing - found) / 2;
            let prefix = comps.get(..mid).unwrap_or_default().join(&b'/');
            match resolve(self.root.as_fd(), &prefix, OFlag::O_PATH | OFlag::O_DIRECTORY) {
                Ok(fd) => (found, cur) = (mid, Some(fd)),
                Err(Errno::ENOENT) => missing = mid,
                Err(e) => return Err(resolve_err(raw, e)),
            }
        }
        for &comp in comps.get(found..).unwrap_or_default() {
            let at = cur.as_ref().map_or(self.root.as_fd(), |d| d.as_fd());
            // NOFOLLOW: a name that exists yet did not resolve is a dangling symlink, never followed.
            let next = mkdir_755(at, comp).and_then(|()| openat(at, comp, DIR_FLAGS | OFlag::O_PATH, Mode::empty()));
            cur = Some(next.map_err(fs(raw, "create a missing parent directory"))?);
        }
        cur.ok_or_else(|| invalid(raw, "no parent directory"))
    }

    fn finish(&mut self) -> Result<(), UnpackError> {
        for (path, mtime) in &self.dir_times {
            match resolve(self.root.as_fd(), path, DIR_FLAGS | OFlag::O_RDONLY) {
                Ok(dir) => futimens(dir.as_fd(), mtime, mtime).map_err(fs(path, "set the directory mtime"))?,
                // A later entry replaced or removed this directory; its time no longer applies.
                Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP | Errno::EXDEV) => {}
                Err(e) => return Err(fs(path, "reopen the directory")(e)),
            }
        }
        Ok(())
    }
}

fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>, raw: &[u8]) -> Result<Meta, UnpackError> {
    let header = entry.header();
    let field = |what: &str, e: io::Error| invalid(raw, format!("unreadable {what}: {e}"));
    // u32::MAX is chown's "leave unchanged", which would silently keep the file root-owned.
    let id = |what: &str, v: u64| {
        u32::try_from(v)
            .ok()
            .filter(|v| *v != u32::MAX)
            .ok_or_else(|| invalid(raw, format!("{what} {v} is out of range")))
    };
    // The tar crate has already applied PAX uid/gid records to the header.
    let uid = id("uid", header.uid().map_err(|e| field("uid", e))?)?;
    let gid = id("gid", header.gid().map_err(|e| field("gid", e))?)?;
    let mode = header.mode().map_err(|e| field("mode", e))?;
    let secs = header.mtime().map_err(|e| field("mtime", e))?;
    let mut meta = Meta {
        uid: Uid::from_raw(uid),
        gid: Gid::from_raw(gid),
        mode: Mode::from_bits_truncate(mode & 0o7777),
        mtime: TimeSpec::new(i64::try_from(secs).map_err(|_| invalid(raw, "mtime is out of range"))?, 0),
        xattrs: Vec::new(),
    };
    for ext in entry.pax_extensions().map_err(|e| field("PAX header", e))?.into_iter().flatten() {
        let ext = ext.map_err(|e| field("PAX record", e))?;
        let key = ext.key_bytes();
        if key == b"mtime" {
            meta.mtime = parse_pax_time(ext.value_bytes()).unwrap_or(meta.mtime);
        } else if key.starts_with(b"GNU.sparse.") {
            return Err(invalid(raw, "sparse files are not supported in image layers"));
        } else if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
            if FORBIDDEN_XATTRS.iter().any(|p| name.starts_with(p)) {
                return Err(UnpackError::ForbiddenXattr { entry: show(raw), name: show(name) });
            }
            let name = CString::new(name).map_err(|_| invalid(raw, "an xattr name contains a NUL byte"))?;
            meta.xattrs.push((name, ext.value_bytes().to_vec()));
        }
    }
    Ok(meta)
}

/// Parses a PAX time such as `1700000000.25`; pre-1970 times fall back to the header's seconds.
fn parse_pax_time(value: &[u8]) -> Option<TimeSpec> {
    let text = std::str::from_utf8(value).ok()?;
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    if secs.is_empty() || !secs.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos = frac.bytes().chain(std::iter::repeat(b'0')).take(9).fold(0, |n, d| n * 10 + i64::from(d - b'0'));
    Some(TimeSpec::new(secs.parse().ok()?, nanos))
}

/// Splits a tar name into components below the layer root, applying `..` lexically.
fn normalize(raw: &[u8]) -> Result<Vec<&[u8]>, UnpackError> {
    if raw.contains(&0) {
        return Err(invalid(raw, "the name contains a NUL byte"));
    }
    let mut comps = Vec::new();
    for comp in raw.split(|b| *b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => drop(comps.pop().ok_or_else(|| UnpackError::Escape { entry: show(raw) })?),
            _ => comps.push(comp),
        }
    }
    Ok(comps)
}

fn role<'a>(parents: &[&[u8]], name: &'a [u8]) -> Result<Role<'a>, &'static str> {
    // AUFS keeps hard-link bookkeeping under `.wh..wh.plnk/`; it is not image content.
    if parents.iter().any(|p| p.starts_with(WHITEOUT_META)) {
        return Ok(Role::Skip);
    }
    if parents.iter().any(|p| p.starts_with(WHITEOUT)) {
        return Err("a whiteout marker cannot be a directory");
    }
    if name == WHITEOUT_OPAQUE {
        return Ok(Role::Opaque);
    }
    if name.starts_with(WHITEOUT_META) {
        return Ok(Role::Skip);
    }
    match name.strip_prefix(WHITEOUT) {
        None => Ok(Role::Normal),
        Some(b"" | b"." | b"..") => Err("the whiteout marker names no file"),
        Some(hidden) => Ok(Role::Whiteout(hidden)),
    }
}

fn show(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

fn invalid(raw: &[u8], reason: impl Into<String>) -> UnpackError {
    UnpackError::Invalid { entry: show(raw), reason: reason.into() }
}

fn fs<'a>(raw: &'a [u8], op: &'static str) -> impl FnOnce(Errno) -> UnpackError + 'a {
    move |e| UnpackError::Fs { entry: show(raw), op, source: e.into() }
}

fn xattr_err<'a>(raw: &'a [u8], name: &'a CStr) -> impl FnOnce(Errno) -> UnpackError + 'a {
    move |e| UnpackError::Xattr { entry: show(raw), name: show(name.to_bytes()), source: e.into() }
}

fn resolve_err(raw: &[u8], e: Errno) -> UnpackError {
    match e {
        Errno::EXDEV | Errno::ELOOP => UnpackError::SymlinkEscape { entry: show(raw) },
        Errno::ENOSYS => UnpackError::Openat2Unsupported,
        e => fs(raw, "resolve its parent directory inside the layer")(e),
    }
}

#[cfg(test)]
mod tests;
