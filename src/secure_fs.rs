//! Permissions of the state root, in one place (the CVE-2021-41091 class).
//!
//! Everything a container writes lands under the state root: its upper layer, its volumes.
//! A host user who can reach those paths can run a setuid-root binary a container made there,
//! and read the specs (environment, secrets) and logs beside them. So:
//!
//! - the root is `0711`: traversable, so a path under it that is meant to be reached can be,
//!   but nothing can be listed;
//! - every directory berth keeps at the top (`containers`, `images`, `volumes`, `networks`,
//!   `projects`, ...) is `0700`, and so is each container's directory: nothing below them is
//!   reachable by anyone but root, whatever its own mode (docker: `/var/lib/docker` 0710,
//!   `containers` and `overlay2` 0710, `volumes` 0701 — berth has no remapped users to let in);
//! - records, specs, logs are created `0600`.
//!
//! A root made by an older berth (`0755`) is tightened the first time a berth command uses it:
//! the root's own mode is the marker, so later commands pay one `stat`.

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The state root: traversable, not listable.
pub const ROOT_MODE: u32 = 0o711;
/// Directories that hold what only root may reach.
pub const DIR_MODE: u32 = 0o700;
/// Records, specs, logs.
pub const FILE_MODE: u32 = 0o600;

/// The directories berth keeps at the top of the root, made `0700` up front so that no code
/// path making one later (a volume's first `create_dir_all`, say) can make it world-readable.
pub const TOP_DIRS: [&str; 5] = ["containers", "images", "networks", "projects", "volumes"];

/// Makes the state root (`0711`) and its top directories (`0700`); a root that is not `0711`
/// yet — one an older berth made, or one a user made — is tightened first: the root, every
/// directory at its top, each container's directory, and the records, specs and logs berth
/// knows of become private. Contents of layers and volumes keep their modes: they are the
/// containers' files.
pub fn prepare_root(root: &Path) -> io::Result<()> {
    match fs::symlink_metadata(root) {
        Ok(meta) if meta.permissions().mode() & 0o7777 == ROOT_MODE && meta.is_dir() => {}
        Ok(_) => tighten(root)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = root.parent() {
                fs::create_dir_all(parent)?;
            }
            match DirBuilder::new().mode(ROOT_MODE).create(root) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                _ => {}
            }
            tighten(root)?;
        }
        Err(e) => return Err(e),
    }
    for name in TOP_DIRS {
        private_dir(&root.join(name))?;
    }
    Ok(())
}

/// Creates `dir` and any missing parents `0700`, umask or not; an existing `dir` is made
/// `0700` too.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)?;
    set_mode(dir, DIR_MODE)
}

/// Creates (or truncates) a private file for writing.
pub fn create_private(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new().write(true).create(true).truncate(true).mode(FILE_MODE).open(path)?;
    file.set_permissions(Permissions::from_mode(FILE_MODE))?;
    Ok(file)
}

/// Opens a private file for appending, creating it `0600`.
pub fn append_private(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).mode(FILE_MODE).open(path)
}

/// Writes a fresh file `name` in the directory `dir` from `fill`, then gives it `uid`, `gid`
/// and `mode` (a container's secret or config, bound into it read-only).
///
/// Descriptors only: `dir` is opened once (`O_NOFOLLOW`), whatever was at `name` is unlinked
/// (never written through), and the file is created `O_EXCL` at `0600` with
/// `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`; owner and mode are set on its descriptor
/// once its bytes are in, so it is never readable by its owner-to-be half-written.
pub fn write_owned_at(
    dir: &Path,
    name: &str,
    uid: u32,
    gid: u32,
    mode: u32,
    fill: &mut dyn FnMut(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
    let dir =
        rustix::fs::open(dir, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())?;
    match rustix::fs::unlinkat(&dir, name, AtFlags::empty()) {
        Err(rustix::io::Errno::NOENT) | Ok(()) => {}
        Err(e) => return Err(e.into()),
    }
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS;
    let fd = rustix::fs::openat2(&dir, name, flags, Mode::from_raw_mode(FILE_MODE), resolve)?;
    let mut file = File::from(fd);
    let written = fill(&mut file).and_then(|()| {
        rustix::fs::fchown(&file, Some(rustix::fs::Uid::from_raw(uid)), Some(rustix::fs::Gid::from_raw(gid)))?;
        // After the chown, which clears set-id bits.
        rustix::fs::fchmod(&file, Mode::from_raw_mode(mode))?;
        Ok(())
    });
    if written.is_err() {
        let _ = rustix::fs::unlinkat(&dir, name, AtFlags::empty());
    }
    written
}

/// chmod unless the mode already is `mode`; symlinks are never followed (their targets may be
/// anything) and left alone.
fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() || meta.permissions().mode() & 0o7777 == mode {
        return Ok(());
    }
    fs::set_permissions(path, Permissions::from_mode(mode))
}

/// Tightens an existing root; see [`prepare_root`]. Directories only one level into what berth
/// owns: a container's `upper` is the container's `/` and keeps its mode.
fn tighten(root: &Path) -> io::Result<()> {
    // The top directories first: from then on nothing below is reachable by a host user.
    for entry in read_dir(root)? {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => set_mode(&path, DIR_MODE)?,
            Ok(t) if t.is_file() => set_mode(&path, FILE_MODE)?,
            _ => {}
        }
    }
    set_mode(root, ROOT_MODE)?;
    for container in read_dir(&root.join("containers"))? {
        let dir = container.path();
        if container.file_type().is_ok_and(|t| t.is_dir()) {
            set_mode(&dir, DIR_MODE)?;
            for record in ["spec.json", "state.json"] {
                ignore_missing(set_mode(&dir.join(record), FILE_MODE))?;
            }
        }
    }
    for file in read_dir(&root.join("networks"))? {
        if file.file_type().is_ok_and(|t| t.is_file()) {
            set_mode(&file.path(), FILE_MODE)?;
        }
    }
    for project in read_dir(&root.join("projects"))? {
        private_tree(&project.path())?;
    }
    Ok(())
}

/// A project's directory: its records and logs, never container content.
fn private_tree(dir: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(dir)?;
    if meta.is_dir() {
        set_mode(dir, DIR_MODE)?;
        for entry in read_dir(dir)? {
            private_tree(&entry.path())?;
        }
    } else if meta.is_file() {
        set_mode(dir, FILE_MODE)?;
    }
    Ok(())
}

/// The entries of `dir`; none when it does not exist.
fn read_dir(dir: &Path) -> io::Result<Vec<fs::DirEntry>> {
    match fs::read_dir(dir) {
        Ok(entries) => entries.collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

fn ignore_missing(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn a_new_root_is_made_private() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("a/root");
        prepare_root(&root).unwrap();
        assert_eq!(mode(&root), 0o711);
        for name in TOP_DIRS {
            assert_eq!(mode(&root.join(name)), 0o700, "{name}");
        }
    }

    #[test]
    fn an_old_open_root_is_tightened_but_container_content_keeps_its_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let ctr = root.join("containers/c1");
        let project = root.join("projects/p/logs");
        for dir in [&ctr.join("upper/bin"), &project, &root.join("networks"), &root.join("spare/x")] {
            fs::create_dir_all(dir).unwrap();
        }
        let open = |p: &Path, m| fs::set_permissions(p, Permissions::from_mode(m)).unwrap();
        let files = [ctr.join("spec.json"), project.join("web.log"), root.join("networks/p_default.json")];
        for file in &files {
            fs::write(file, "secret").unwrap();
            open(file, 0o644);
        }
        fs::write(ctr.join("hosts"), "127.0.0.1 localhost\n").unwrap();
        open(&ctr.join("hosts"), 0o644);
        fs::write(ctr.join("upper/bin/sh"), "").unwrap();
        open(&ctr.join("upper/bin/sh"), 0o4755);
        std::os::unix::fs::symlink("/etc", root.join("projects/p/link")).unwrap();
        for dir in [&root, &root.join("containers"), &ctr, &ctr.join("upper"), &root.join("projects")] {
            open(dir, 0o755);
        }

        prepare_root(&root).unwrap();

        assert_eq!(mode(&root), 0o711);
        for dir in ["containers", "projects", "networks", "spare", "images", "volumes", "containers/c1"] {
            assert_eq!(mode(&root.join(dir)), 0o700, "{dir}");
        }
        for file in &files {
            assert_eq!(mode(file), 0o600, "{}", file.display());
        }
        // The container's own files: its /etc/hosts is read by its users; its / and binaries
        // are its business (and out of reach behind the 0700 directories).
        assert_eq!(mode(&ctr.join("hosts")), 0o644);
        assert_eq!(mode(&ctr.join("upper")), 0o755);
        assert_eq!(mode(&ctr.join("upper/bin/sh")), 0o4755);
        assert_eq!(mode(Path::new("/etc")), 0o755, "a symlink is not followed");
    }

    #[test]
    fn private_files_are_0600_whatever_the_umask_allows() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("record.json");
        crate::fsutil::write_atomic(&path, b"{}").unwrap();
        assert_eq!(mode(&path), 0o600);
        fs::set_permissions(&path, Permissions::from_mode(0o666)).unwrap();
        crate::fsutil::write_atomic(&path, b"{}").unwrap();
        assert_eq!(mode(&path), 0o600, "an existing file is tightened when rewritten");
        drop(append_private(&tmp.path().join("log")).unwrap());
        assert_eq!(mode(&tmp.path().join("log")), 0o600);
    }

    #[test]
    fn an_owned_file_replaces_whatever_was_at_its_name_and_never_writes_through_a_link() {
        use std::io::Write;
        use std::os::unix::fs::MetadataExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c");
        fs::create_dir(&dir).unwrap();
        let outside = tmp.path().join("outside");
        fs::write(&outside, "host file").unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("file-0")).unwrap();
        write_owned_at(&dir, "file-0", 1000, 50, 0o440, &mut |f| f.write_all(b"secret")).unwrap();
        assert_eq!(fs::read_to_string(&outside).unwrap(), "host file", "the link was not followed");
        let meta = fs::symlink_metadata(dir.join("file-0")).unwrap();
        assert!(meta.is_file());
        assert_eq!((meta.mode() & 0o7777, meta.uid(), meta.gid()), (0o440, 1000, 50));
        assert_eq!(fs::read_to_string(dir.join("file-0")).unwrap(), "secret");
        // A failed fill leaves no half-written file behind.
        let failed = write_owned_at(&dir, "file-0", 0, 0, 0o444, &mut |_| Err(io::Error::other("no")));
        assert!(failed.is_err() && !dir.join("file-0").exists());
    }
}
