//! `cp`: docker cp's rules for what lands where, and the copy itself as a tar stream from one
//! end's root to the other's (see the module above for how a container's root is entered).
//!
//! docker's rules (`docker cp --help`, `pkg/archive/copy.go`), SRC a file:
//! DEST missing → a file named DEST; DEST missing and ending in `/` → error; DEST a file →
//! overwritten; DEST a directory → DEST/basename(SRC). SRC a directory: DEST missing → made,
//! with SRC's contents; DEST a file → error; DEST a directory → DEST/basename(SRC), or SRC's
//! contents into DEST when SRC ends in `/.`. A symlink SRC is copied as a symlink unless `-L`
//! (or a trailing `/`); DEST symlinks are followed — inside the container's root.

use std::ffi::OsString;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::archive::{self, TarOptions};
use super::{Container, FsError, View, on_host, with_root};

/// One end of a copy.
#[derive(Debug, Clone, Copy)]
pub enum End<'a> {
    /// A path on the host.
    Host(&'a str),
    /// A path in a container.
    Container(&'a Container, &'a str),
    /// A tar stream on standard input or output (`-`).
    Stream,
}

/// `cp`'s flags.
#[derive(Debug, Clone, Copy, Default)]
pub struct CopyOptions {
    /// `-a`: owners as at the source; otherwise the copier's (root in a container).
    pub archive: bool,
    /// `-L`: follow a symlink SRC.
    pub follow_link: bool,
}

/// What is at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathInfo {
    /// Something is there.
    pub exists: bool,
    /// It is a directory (symlinks followed as the rule says).
    pub is_dir: bool,
    /// Its parent is a directory (for a DEST that does not exist).
    pub parent_is_dir: bool,
}

/// Where the stream is extracted, and what the source's top entry is called there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The directory the archive is extracted into.
    pub into: PathBuf,
    /// The name of the source's top entry; `None`: the source directory's contents go there.
    pub name: Option<OsString>,
}

/// Whether `path` asks for a directory's contents (`dir/.`).
fn wants_contents(path: &str) -> bool {
    path == "." || path.ends_with("/.")
}

/// `path` without its trailing `/` or `/.`, and its last name (`None` for `/` itself).
fn split(path: &str) -> (PathBuf, Option<OsString>) {
    let p = Path::new(path);
    let name = p.components().next_back().and_then(|c| match c {
        std::path::Component::Normal(n) => Some(n.to_owned()),
        _ => None,
    });
    (p.components().collect(), name)
}

/// docker's rules: where `src` goes for `dst`.
pub fn plan(src: &str, src_info: PathInfo, dst: &str, dst_info: PathInfo) -> Result<Plan, FsError> {
    if !src_info.exists {
        return Err(FsError::NotFound(format!("could not find the file {src}")));
    }
    if !src_info.is_dir && (src.ends_with('/') || wants_contents(src)) {
        return Err(FsError::Invalid(format!("{src}: not a directory")));
    }
    let (_, src_name) = split(src);
    let contents = src_info.is_dir && (wants_contents(src) || src_name.is_none());
    let (dst_path, dst_name) = split(dst);
    if dst_info.exists && dst_info.is_dir {
        return Ok(Plan { into: dst_path, name: if contents { None } else { src_name } });
    }
    if dst_info.exists && src_info.is_dir {
        return Err(FsError::Invalid(format!("cannot copy a directory to a file: {dst}")));
    }
    if !dst_info.exists && !src_info.is_dir && dst.ends_with('/') {
        return Err(FsError::Invalid(format!("destination directory {dst} does not exist")));
    }
    if !dst_info.parent_is_dir {
        return Err(FsError::NotFound(format!("no such directory: the parent of {dst}")));
    }
    let name = dst_name.ok_or_else(|| FsError::Invalid(format!("{dst}: not a directory")))?;
    let into = dst_path.parent().map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
    let into = if into.as_os_str().is_empty() { PathBuf::from(".") } else { into };
    Ok(Plan { into, name: Some(name) })
}

/// What is at `path` in the calling thread's root; `follow`: a symlink counts as its target.
fn info(path: &str, follow: bool) -> PathInfo {
    let meta = if follow { std::fs::metadata(path) } else { std::fs::symlink_metadata(path) };
    let (p, _) = split(path);
    let parent = match p.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        Some(_) => PathBuf::from("."),
        None => PathBuf::from("/"),
    };
    PathInfo {
        exists: meta.is_ok(),
        is_dir: meta.is_ok_and(|m| m.is_dir()),
        parent_is_dir: std::fs::metadata(parent).is_ok_and(|m| m.is_dir()),
    }
}

/// Runs `work` at `end` (the container's root, or the host's).
fn at<R: Send>(end: End<'_>, writable: bool, work: impl FnOnce() -> Result<R, FsError> + Send) -> Result<R, FsError> {
    match end {
        End::Container(c, _) => with_root(c, View::Live { writable }, work),
        End::Host(_) | End::Stream => on_host(work),
    }
}

fn path_of(end: End<'_>) -> String {
    match end {
        End::Host(p) => p.to_owned(),
        End::Container(_, p) => super::container_path(p).to_string_lossy().into_owned(),
        End::Stream => "-".to_owned(),
    }
}

/// Copies `src` to `dst` by docker's rules (one end is a container, or a stream).
pub fn copy(src: End<'_>, dst: End<'_>, options: CopyOptions) -> Result<(), FsError> {
    let (src_path, dst_path) = (path_of(src), path_of(dst));
    // A path that ends in `/` names a directory: the kernel follows a symlink there anyway.
    let follow = options.follow_link || src_path.ends_with('/') || wants_contents(&src_path);
    if let End::Stream = src {
        // A tar stream from stdin is extracted into DEST, which must be a directory.
        let dst_info = at(dst, false, || Ok(info(&dst_path, true)))?;
        if !dst_info.is_dir {
            return Err(FsError::Invalid(format!("destination {dst_path} must be a directory")));
        }
        let keep = options.archive;
        let stdin = io::stdin();
        return at(dst, true, move || archive::extract(stdin.lock(), Path::new(&dst_path), keep));
    }
    let src_info = at(src, false, || Ok(info(&src_path, follow)))?;
    let tar_options = TarOptions { follow_top: follow, one_filesystem: false };
    if let End::Stream = dst {
        let plan = plan(&src_path, src_info, ".", PathInfo { exists: true, is_dir: true, parent_is_dir: true })?;
        let name = plan.name.map(PathBuf::from);
        let out = io::stdout();
        return at(src, false, move || {
            let out = out.lock();
            archive::write_tree(Path::new(&src_path), name.as_deref(), tar_options, out)
        });
    }
    let dst_info = at(dst, false, || Ok(info(&dst_path, true)))?;
    let plan = plan(&src_path, src_info, &dst_path, dst_info)?;
    let (reader, writer) = io::pipe().map_err(|e| FsError::io("make a pipe", e))?;
    let name = plan.name.map(PathBuf::from);
    let keep = options.archive;
    std::thread::scope(|scope| {
        let sender = scope.spawn(move || {
            at(src, false, move || archive::write_tree(Path::new(&src_path), name.as_deref(), tar_options, writer))
        });
        let received = at(dst, true, move || {
            let mut reader = reader;
            let extracted = archive::extract(&mut reader, &plan.into, keep);
            // The tar reader stops at the first end-of-archive block; the writer's second one
            // must not hit a closed pipe.
            if extracted.is_ok() {
                drain(reader);
            }
            extracted
        });
        let sent = sender.join().unwrap_or_else(|_| Err(FsError::io("the copy", io::Error::other("panicked"))));
        // The receiver's error explains a sender's broken pipe.
        received.and(sent)
    })
}

/// Reads and discards the rest of a stream, so a tar's writer is not cut off by its reader
/// stopping at the end-of-archive blocks.
pub fn drain(mut input: impl Read) {
    let _ = io::copy(&mut input, &mut io::sink());
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIR: PathInfo = PathInfo { exists: true, is_dir: true, parent_is_dir: true };
    const FILE: PathInfo = PathInfo { exists: true, is_dir: false, parent_is_dir: true };
    const NONE: PathInfo = PathInfo { exists: false, is_dir: false, parent_is_dir: true };

    fn p(into: &str, name: Option<&str>) -> Plan {
        Plan { into: PathBuf::from(into), name: name.map(OsString::from) }
    }

    #[test]
    fn a_file_source_follows_dockers_rules() {
        assert_eq!(plan("/etc/hosts", FILE, "/tmp/x", NONE).unwrap(), p("/tmp", Some("x")));
        assert!(plan("/etc/hosts", FILE, "/tmp/x/", NONE).is_err(), "a missing DEST/ must exist");
        assert_eq!(plan("/etc/hosts", FILE, "/tmp/x", FILE).unwrap(), p("/tmp", Some("x")));
        assert_eq!(plan("/etc/hosts", FILE, "/tmp", DIR).unwrap(), p("/tmp", Some("hosts")));
        assert!(plan("/etc/hosts/", FILE, "/tmp", DIR).is_err(), "a file is not a directory");
        assert_eq!(plan("hosts", FILE, "x", NONE).unwrap(), p(".", Some("x")));
    }

    #[test]
    fn a_directory_source_follows_dockers_rules() {
        assert_eq!(plan("/etc", DIR, "/tmp/new", NONE).unwrap(), p("/tmp", Some("new")));
        assert_eq!(plan("/etc/.", DIR, "/tmp/new", NONE).unwrap(), p("/tmp", Some("new")));
        assert!(plan("/etc", DIR, "/tmp/file", FILE).is_err(), "a directory onto a file");
        assert_eq!(plan("/etc", DIR, "/tmp", DIR).unwrap(), p("/tmp", Some("etc")));
        assert_eq!(plan("/etc/", DIR, "/tmp", DIR).unwrap(), p("/tmp", Some("etc")));
        assert_eq!(plan("/etc/.", DIR, "/tmp", DIR).unwrap(), p("/tmp", None));
        assert_eq!(plan("/", DIR, "/tmp", DIR).unwrap(), p("/tmp", None));
    }

    #[test]
    fn missing_sources_and_parents_are_errors() {
        assert!(matches!(plan("/nope", NONE, "/tmp", DIR), Err(FsError::NotFound(_))));
        let orphan = PathInfo { exists: false, is_dir: false, parent_is_dir: false };
        assert!(matches!(plan("/etc/hosts", FILE, "/no/such/x", orphan), Err(FsError::NotFound(_))));
    }
}
