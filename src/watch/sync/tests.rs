//! `SyncTarget` on a temporary directory as the root: copies, overwrites, removal, and hostile
//! symlinks that must never send a write or a removal outside it. No root needed.

use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};

use super::*;

/// A "container" root and a host directory of sources, both temporary.
struct Fixture {
    root: tempfile::TempDir,
    host: tempfile::TempDir,
    target: SyncTarget,
}

fn fixture() -> Fixture {
    let root = tempfile::tempdir().unwrap();
    let host = tempfile::tempdir().unwrap();
    let fd = rustix::fs::open(root.path(), OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).unwrap();
    let me = (nix::unistd::getuid().as_raw(), nix::unistd::getgid().as_raw());
    Fixture { root, host, target: SyncTarget::from_dir(fd, Some(me)) }
}

impl Fixture {
    fn host_file(&self, rel: &str, text: &str, mode: u32) -> PathBuf {
        let path = self.host.path().join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    fn inside(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.root.path().join(rel)
    }
}

/// Every name under `dir`, recursively, relative to it.
fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            out.push(path.strip_prefix(dir).unwrap().display().to_string());
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_file_is_copied_with_its_mode_and_parents_are_made() {
    let f = fixture();
    let src = f.host_file("run.sh", "#!/bin/sh\n", 0o750);
    assert_eq!(f.target.copy_in(&src, "/app/bin/run.sh").unwrap(), 1);
    let dest = f.inside("app/bin/run.sh");
    assert_eq!(fs::read_to_string(&dest).unwrap(), "#!/bin/sh\n");
    assert_eq!(fs::metadata(&dest).unwrap().permissions().mode() & 0o7777, 0o750);
    let parent = fs::metadata(f.inside("app/bin")).unwrap();
    assert_eq!(parent.permissions().mode() & 0o7777, 0o755, "parents are 0755 whatever the umask");
    assert_eq!((parent.uid(), parent.gid()), f.target.owner().unwrap());
}

#[test]
fn a_directory_is_copied_recursively_with_modes_and_symlinks() {
    let f = fixture();
    f.host_file("src/a.txt", "a", 0o644);
    f.host_file("src/deep/er/b.txt", "b", 0o600);
    fs::set_permissions(f.host.path().join("src/deep"), fs::Permissions::from_mode(0o711)).unwrap();
    symlink("../a.txt", f.host.path().join("src/deep/link")).unwrap();
    symlink("/etc/shadow", f.host.path().join("src/abs")).unwrap();
    assert_eq!(f.target.copy_in(&f.host.path().join("src"), "/srv/app").unwrap(), 4);
    assert_eq!(fs::read_to_string(f.inside("srv/app/deep/er/b.txt")).unwrap(), "b");
    assert_eq!(fs::metadata(f.inside("srv/app/deep/er/b.txt")).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(fs::metadata(f.inside("srv/app/deep")).unwrap().permissions().mode() & 0o777, 0o711);
    assert_eq!(fs::read_link(f.inside("srv/app/deep/link")).unwrap(), Path::new("../a.txt"));
    assert_eq!(fs::read_link(f.inside("srv/app/abs")).unwrap(), Path::new("/etc/shadow"), "copied, not followed");
    // Copying again merges into the existing directory.
    f.host_file("src/c.txt", "c", 0o644);
    assert_eq!(f.target.copy_in(&f.host.path().join("src"), "/srv/app/").unwrap(), 5);
    assert_eq!(fs::read_to_string(f.inside("srv/app/c.txt")).unwrap(), "c");
    // A directory copied to / merges into the root and leaves the root's mode alone.
    let before = fs::metadata(f.root.path()).unwrap().permissions().mode();
    fs::set_permissions(f.host.path().join("src"), fs::Permissions::from_mode(0o700)).unwrap();
    f.target.copy_in(&f.host.path().join("src"), "/").unwrap();
    assert_eq!(fs::read_to_string(f.inside("c.txt")).unwrap(), "c");
    assert_eq!(fs::metadata(f.root.path()).unwrap().permissions().mode(), before);
    let file = f.host.path().join("src/a.txt");
    assert!(matches!(f.target.copy_in(&file, "/"), Err(SyncError::InvalidPath { .. })));
}

#[test]
fn an_overwrite_is_a_rename_and_leaves_no_temporary_file() {
    let f = fixture();
    let src = f.host_file("f", "old", 0o644);
    f.target.copy_in(&src, "/app/f").unwrap();
    let before = fs::metadata(f.inside("app/f")).unwrap().ino();
    let reader = File::open(f.inside("app/f")).unwrap();
    fs::write(&src, "new content").unwrap();
    f.target.copy_in(&src, "/app/f").unwrap();
    assert_eq!(fs::read_to_string(f.inside("app/f")).unwrap(), "new content");
    assert_ne!(fs::metadata(f.inside("app/f")).unwrap().ino(), before, "a new inode renamed over the old");
    let mut old = String::new();
    (&reader).read_to_string(&mut old).unwrap();
    assert_eq!(old, "old", "an open reader keeps the whole old file");
    assert_eq!(listing(f.root.path()), ["app", "app/f"]);
}

#[test]
fn types_are_replaced_by_the_hosts() {
    let f = fixture();
    fs::create_dir_all(f.inside("app/x/sub")).unwrap();
    fs::write(f.inside("app/x/sub/old"), "").unwrap();
    fs::write(f.inside("app/d"), "a file where the host has a directory").unwrap();
    let src = f.host_file("x", "file now", 0o644);
    f.target.copy_in(&src, "/app/x").unwrap();
    assert_eq!(fs::read_to_string(f.inside("app/x")).unwrap(), "file now");
    f.host_file("d/inner", "i", 0o644);
    f.target.copy_in(&f.host.path().join("d"), "/app/d").unwrap();
    assert_eq!(fs::read_to_string(f.inside("app/d/inner")).unwrap(), "i");
}

#[test]
fn remove_takes_files_directories_and_ignores_missing_paths() {
    let f = fixture();
    fs::create_dir_all(f.inside("app/dir/a/b")).unwrap();
    fs::write(f.inside("app/dir/a/b/c"), "").unwrap();
    fs::write(f.inside("app/file"), "").unwrap();
    symlink("/", f.inside("app/dir/a/root")).unwrap();
    f.target.remove("/app/file").unwrap();
    f.target.remove("/app/dir").unwrap();
    f.target.remove("/app/missing").unwrap();
    f.target.remove("/nowhere/at/all").unwrap();
    assert_eq!(listing(f.root.path()), ["app"]);
    assert!(matches!(f.target.remove("/"), Err(SyncError::InvalidPath { .. })));
    assert!(matches!(f.target.remove("app"), Err(SyncError::InvalidPath { .. })));
    assert!(matches!(f.target.copy_in(f.host.path(), "/app/../x"), Err(SyncError::InvalidPath { .. })));
}

/// A unique name that must never appear outside the root.
fn escape_name(tag: &str) -> String {
    format!("berth-sync-escape-{tag}-{}", std::process::id())
}

#[test]
fn hostile_symlinks_keep_copies_inside_the_root() {
    let f = fixture();
    let outside = tempfile::tempdir().unwrap();
    symlink("/", f.inside("evil")).unwrap();
    symlink("../..", f.inside("up")).unwrap();
    symlink(outside.path(), f.inside("app")).unwrap();
    symlink(outside.path().join("victim"), f.inside("last")).unwrap();
    let src = f.host_file("x", "payload", 0o644);

    let evil = escape_name("evil");
    f.target.copy_in(&src, &format!("/evil/{evil}")).unwrap();
    assert!(!Path::new("/").join(&evil).exists(), "written to the host's /");
    assert_eq!(fs::read_to_string(f.inside(&evil)).unwrap(), "payload", "`/evil` is the container's /");

    let up = escape_name("up");
    f.target.copy_in(&src, &format!("/up/{up}")).unwrap();
    assert!(!f.root.path().join("../..").join(&up).exists(), "written above the root");
    assert!(f.inside(&up).exists(), "`..` stops at the root");

    // `/app` points at a host path: it resolves inside the root, where it is missing.
    assert!(f.target.copy_in(&src, "/app/x").is_err());
    assert!(!outside.path().join("x").exists(), "written through an absolute symlink");
    let inner = f.inside(outside.path().strip_prefix("/").unwrap());
    fs::create_dir_all(&inner).unwrap();
    f.target.copy_in(&src, "/app/x").unwrap();
    assert!(!outside.path().join("x").exists());
    assert_eq!(fs::read_to_string(inner.join("x")).unwrap(), "payload");

    // A symlink at the target itself is replaced, never written through.
    f.target.copy_in(&src, "/last").unwrap();
    assert!(!outside.path().join("victim").exists());
    assert!(fs::symlink_metadata(f.inside("last")).unwrap().is_file());

    // A directory copied through the hostile links lands inside too.
    f.host_file("tree/t", "t", 0o644);
    let tree = escape_name("tree");
    f.target.copy_in(&f.host.path().join("tree"), &format!("/evil/up/{tree}")).unwrap();
    assert!(!Path::new("/").join(&tree).exists());
    assert!(f.inside(&tree).join("t").exists());
}

#[test]
fn removing_a_hostile_symlink_removes_the_link_only() {
    let f = fixture();
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("keep"), "").unwrap();
    fs::write(f.inside("keep"), "").unwrap();
    symlink("/", f.inside("evil")).unwrap();
    symlink(outside.path(), f.inside("out")).unwrap();
    fs::create_dir(f.inside("dir")).unwrap();
    symlink(outside.path(), f.inside("dir/out")).unwrap();

    f.target.remove("/evil").unwrap();
    assert!(fs::symlink_metadata(f.inside("evil")).is_err(), "the link is gone");
    assert!(f.inside("keep").exists() && Path::new("/etc").exists(), "nothing it points to");
    f.target.remove("/out/").unwrap();
    f.target.remove("/dir").unwrap();
    assert!(outside.path().join("keep").exists(), "nothing outside the root is removed");
    // `/out/keep` would be the outside file through string joining; in the root it is missing.
    symlink(outside.path(), f.inside("out")).unwrap();
    f.target.remove("/out/keep").unwrap();
    assert!(outside.path().join("keep").exists());
    assert_eq!(listing(f.root.path()), ["keep", "out"]);
}

#[test]
fn the_user_is_resolved_in_the_roots_own_files_read_safely() {
    let f = fixture();
    fs::create_dir(f.inside("etc")).unwrap();
    fs::write(f.inside("etc/passwd"), "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n").unwrap();
    fs::write(f.inside("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
    let fd = |path: &Path| {
        rustix::fs::open(path, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).unwrap()
    };
    let target = SyncTarget::from_dir(fd(f.root.path()), None);
    assert_eq!(target.read_config("/etc/passwd").unwrap().unwrap().lines().count(), 2);
    assert_eq!(target.read_config("/etc/missing").unwrap(), None);
    // A FIFO (which would block a read) or a link to one outside is refused.
    nix::unistd::mkfifo(&f.inside("etc/fifo"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    assert!(target.read_config("/etc/fifo").is_err());
    if nix::unistd::geteuid().is_root() {
        let null = nix::sys::stat::makedev(1, 3);
        let mode = nix::sys::stat::Mode::from_bits_truncate(0o644);
        nix::sys::stat::mknod(&f.inside("etc/dev"), nix::sys::stat::SFlag::S_IFCHR, mode, null).unwrap();
        assert!(target.read_config("/etc/dev").is_err(), "a device node is never opened");
    }
    symlink("/../../../etc/passwd", f.inside("etc/hostpasswd")).unwrap();
    assert_eq!(target.read_config("/etc/hostpasswd").unwrap().unwrap().lines().count(), 2, "the root's own");
    assert!(SyncTarget::open(0, "").is_err());
    // Our own process: the host's root, whose passwd has root.
    let pid = i32::try_from(std::process::id()).unwrap();
    assert_eq!(SyncTarget::open(pid, "root").unwrap().owner(), Some((0, 0)));
    assert_eq!(SyncTarget::open(pid, "4242:77").unwrap().owner(), Some((4242, 77)));
    assert!(matches!(SyncTarget::open(pid, "no-such-user-here"), Err(SyncError::User { .. })));
}

#[test]
fn host_symlinks_below_the_watched_tree_are_not_followed_to_read_outside_it() {
    let f = fixture();
    let secret = tempfile::tempdir().unwrap();
    fs::write(secret.path().join("key"), "host secret\n").unwrap();
    let tree = f.host.path().join("src");
    fs::create_dir(&tree).unwrap();
    fs::write(tree.join("ok"), "fine\n").unwrap();
    // A directory link out of the tree, and a file link to a file outside it.
    symlink(secret.path(), tree.join("out")).unwrap();
    symlink(secret.path().join("key"), tree.join("key")).unwrap();

    // An event for a path through the directory link is refused, not read.
    let err = f.target.copy_in_from(&tree, &tree.join("out/key"), "/app/out/key").unwrap_err();
    assert!(matches!(err, SyncError::Source { .. }), "{err}");
    assert!(!f.inside("app/out/key").exists());

    // The whole tree: links are copied as links, never their targets' content.
    assert_eq!(f.target.copy_in_from(&tree, &tree, "/app").unwrap(), 3);
    assert_eq!(fs::read_to_string(f.inside("app/ok")).unwrap(), "fine\n");
    assert!(fs::symlink_metadata(f.inside("app/out")).unwrap().file_type().is_symlink());
    assert!(fs::symlink_metadata(f.inside("app/key")).unwrap().file_type().is_symlink());
    let copied = listing(f.root.path());
    assert!(!copied.iter().any(|p| p.ends_with("out/key")), "{copied:?}");

    // A path that is not below the tree, or climbs out of it, is refused.
    assert!(f.target.copy_in_from(&tree, &secret.path().join("key"), "/app/k").is_err());
    assert!(f.target.copy_in_from(&tree, &tree.join("../src/ok"), "/app/k").is_err());
    assert!(!f.inside("app/k").exists());
}
