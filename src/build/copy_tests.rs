use super::*;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};

use tar::{EntryType, Header};

use crate::build::context::tests::{IGNORE, context};

/// A destination root (an image's filesystem) next to a sentinel directory that no COPY may
/// touch.
struct Dest {
    tmp: tempfile::TempDir,
    root: PathBuf,
    fd: OwnedFd,
}

impl Dest {
    fn new() -> Dest {
        assert!(rustix::process::geteuid().is_root(), "copy tests chown: run as root");
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::create_dir_all(tmp.path().join("outside")).unwrap();
        fs::write(tmp.path().join("outside/keep"), "sentinel").unwrap();
        fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n")
            .unwrap();
        fs::write(root.join("etc/group"), "root:x:0:\nstaff:x:50:app\napp:x:1001:\n").unwrap();
        let fd = rustix::fs::open(&root, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();
        Dest { tmp, root, fd }
    }

    fn outside(&self) -> PathBuf {
        self.tmp.path().join("outside")
    }

    /// Everything outside the root: names and contents.
    fn outside_snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        let mut todo = vec![self.tmp.path().to_owned()];
        while let Some(dir) = todo.pop() {
            for path in fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| *p != self.root) {
                let md = fs::symlink_metadata(&path).unwrap();
                if md.is_dir() {
                    todo.push(path.clone());
                }
                out.insert(path.clone(), if md.is_file() { fs::read(&path).unwrap() } else { Vec::new() });
            }
        }
        out
    }

    fn copy(&self, tree: &SourceTree, sources: &[&str], dest: &str, options: &CopyOptions) -> Result<usize, CopyError> {
        let sources: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
        let selected = tree.select(&sources)?;
        copy(tree, &selected, self.fd.as_fd(), dest, options)
    }

    fn read(&self, path: &str) -> String {
        fs::read_to_string(self.root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn meta(&self, path: &str) -> fs::Metadata {
        fs::symlink_metadata(self.root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
    }
}

fn plain() -> CopyOptions {
    CopyOptions::default()
}

#[test]
fn file_and_directory_destination_rules() {
    let ctx = context(None);
    let tree = SourceTree::context(ctx.path(), None).unwrap();
    let dest = Dest::new();
    // A missing dest names the file.
    assert_eq!(dest.copy(&tree, &["a.txt"], "/renamed", &plain()).unwrap(), 1);
    assert_eq!(dest.read("renamed"), "a");
    // A trailing slash makes a directory.
    dest.copy(&tree, &["a.txt"], "/into/", &plain()).unwrap();
    assert_eq!(dest.read("into/a.txt"), "a");
    // An existing directory takes the file inside.
    fs::create_dir(dest.root.join("exists")).unwrap();
    dest.copy(&tree, &["b.txt"], "/exists", &plain()).unwrap();
    assert_eq!(dest.read("exists/b.txt"), "b");
    // Several sources (or a wildcard matching several) make dest a directory.
    dest.copy(&tree, &["*.txt"], "/multi", &plain()).unwrap();
    assert_eq!(dest.read("multi/b.txt"), "b");
    // A directory source copies its contents.
    dest.copy(&tree, &["sub"], "/app", &plain()).unwrap();
    assert_eq!(dest.read("app/d.txt"), "d");
    assert_eq!(dest.read("app/deep/e.txt"), "e");
    assert!(!dest.root.join("app/sub").exists());
    // An existing file is replaced; a directory is not silently replaced by a file.
    dest.copy(&tree, &["b.txt"], "/renamed", &plain()).unwrap();
    assert_eq!(dest.read("renamed"), "b");
    let err = dest.copy(&tree, &["sub"], "/renamed", &plain()).unwrap_err();
    assert!(err.to_string().contains("/renamed"), "{err}");
    // Parents are made, root-owned 0755; files are 0:0 whatever the context's owner.
    std::os::unix::fs::chown(ctx.path().join("c.md"), Some(1234), Some(1234)).unwrap();
    dest.copy(&tree, &["c.md"], "/new/parent/c.md", &plain()).unwrap();
    let parent = dest.meta("new/parent");
    assert_eq!((parent.mode() & 0o7777, parent.uid(), parent.gid()), (0o755, 0, 0));
    let file = dest.meta("new/parent/c.md");
    assert_eq!((file.uid(), file.gid()), (0, 0));
    assert!(matches!(dest.copy(&tree, &["a.txt"], "relative", &plain()), Err(CopyError::Dest { .. })));
}

#[test]
fn modes_mtimes_and_symlinks_are_kept() {
    let ctx = context(None);
    fs::set_permissions(ctx.path().join("sub/d.txt"), fs::Permissions::from_mode(0o750)).unwrap();
    fs::set_permissions(ctx.path().join("sub/deep"), fs::Permissions::from_mode(0o700)).unwrap();
    symlink("../a.txt", ctx.path().join("sub/link")).unwrap();
    let past = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_500_000_000);
    File::options().write(true).open(ctx.path().join("sub/d.txt")).unwrap().set_modified(past).unwrap();
    let tree = SourceTree::context(ctx.path(), None).unwrap();
    let dest = Dest::new();
    dest.copy(&tree, &["sub"], "/app", &plain()).unwrap();
    assert_eq!(dest.meta("app/d.txt").mode() & 0o7777, 0o750);
    assert_eq!(dest.meta("app/d.txt").mtime(), 1_500_000_000);
    assert_eq!(dest.meta("app/deep").mode() & 0o7777, 0o700);
    assert!(dest.meta("app/link").file_type().is_symlink());
    assert_eq!(fs::read_link(dest.root.join("app/link")).unwrap(), Path::new("../a.txt"));

    // --chmod applies to files and copied directories, not to made parents.
    let options = CopyOptions { mode: Some(parse_chmod("0640").unwrap()), ..plain() };
    dest.copy(&tree, &["sub"], "/p/chmod", &options).unwrap();
    assert_eq!(dest.meta("p/chmod/d.txt").mode() & 0o7777, 0o640);
    assert_eq!(dest.meta("p/chmod/deep").mode() & 0o7777, 0o640);
    assert_eq!(dest.meta("p").mode() & 0o7777, 0o755);
    assert!(parse_chmod("u+x").is_err());
    assert!(parse_chmod("17777").is_err());
}

#[test]
fn ignored_paths_are_not_copied() {
    let ctx = context(Some(IGNORE));
    let tree = SourceTree::context(ctx.path(), None).unwrap();
    let dest = Dest::new();
    dest.copy(&tree, &["."], "/ctx/", &plain()).unwrap();
    assert_eq!(dest.read("ctx/build/keep.txt"), "keep");
    for gone in ["ctx/build/drop.txt", "ctx/x.log", "ctx/secret.txt"] {
        assert!(!dest.root.join(gone).exists(), "{gone} was copied");
    }
}

#[test]
fn chown_resolves_names_in_the_destination() {
    let dest = Dest::new();
    let root = dest.fd.as_fd();
    assert_eq!(resolve_chown(root, "app").unwrap(), (1000, 1001));
    assert_eq!(resolve_chown(root, "app:staff").unwrap(), (1000, 50));
    assert_eq!(resolve_chown(root, "42").unwrap(), (42, 42));
    assert_eq!(resolve_chown(root, "42:staff").unwrap(), (42, 50));
    assert_eq!(resolve_chown(root, "7:8").unwrap(), (7, 8));
    let err = resolve_chown(root, "nobody").unwrap_err();
    assert!(err.to_string().contains("nobody"), "{err}");
    assert!(resolve_chown(root, "app:nogroup").is_err());

    let ctx = context(None);
    let tree = SourceTree::context(ctx.path(), None).unwrap();
    let options = CopyOptions { owner: Some(resolve_chown(root, "app:staff").unwrap()), ..plain() };
    dest.copy(&tree, &["sub"], "/home/app/src", &options).unwrap();
    for path in ["home", "home/app", "home/app/src", "home/app/src/d.txt", "home/app/src/deep"] {
        let md = dest.meta(path);
        assert_eq!((md.uid(), md.gid()), (1000, 50), "{path}");
    }
    assert_eq!(dest.meta("home/app").mode() & 0o7777, 0o755);
}

#[test]
fn hostile_destination_symlinks_stay_in_the_root() {
    let ctx = context(None);
    let tree = SourceTree::context(ctx.path(), None).unwrap();
    let dest = Dest::new();
    let outside = dest.outside();
    // `/app -> <host path of outside>` and `/up -> ../../../..` (as many as reach the host's /).
    symlink(&outside, dest.root.join("app")).unwrap();
    let climb = "../".repeat(dest.root.components().count()) + outside.strip_prefix("/").unwrap().to_str().unwrap();
    symlink(&climb, dest.root.join("up")).unwrap();
    symlink("/", dest.root.join("slash")).unwrap();
    let before = dest.outside_snapshot();

    dest.copy(&tree, &["a.txt"], "/app/", &plain()).unwrap();
    dest.copy(&tree, &["sub"], "/up/sub", &plain()).unwrap();
    dest.copy(&tree, &["b.txt"], "/slash/etc/b.txt", &plain()).unwrap();
    write_inline(dest.fd.as_fd(), "/app/inline/", "EOF", b"hi\n", &plain()).unwrap();
    dest.copy(&tree, &["b.txt"], "/up/keep", &plain()).unwrap();

    assert_eq!(before, dest.outside_snapshot(), "a COPY wrote outside the root");
    assert_eq!(fs::read_to_string(outside.join("keep")).unwrap(), "sentinel");
    // They landed where the image's own view puts them.
    let inside = dest.root.join(outside.strip_prefix("/").unwrap());
    assert_eq!(fs::read_to_string(inside.join("a.txt")).unwrap(), "a");
    assert_eq!(fs::read_to_string(inside.join("sub/deep/e.txt")).unwrap(), "e");
    assert_eq!(fs::read_to_string(inside.join("inline/EOF")).unwrap(), "hi\n");
    assert_eq!(fs::read_to_string(inside.join("keep")).unwrap(), "b");
    assert_eq!(dest.read("etc/b.txt"), "b");
}

#[test]
fn inline_files_follow_the_dest_rules() {
    let dest = Dest::new();
    let root = dest.fd.as_fd();
    write_inline(root, "/etc/app.conf", "EOF", b"x=1\n", &plain()).unwrap();
    assert_eq!(dest.read("etc/app.conf"), "x=1\n");
    assert_eq!(dest.meta("etc/app.conf").mode() & 0o7777, 0o644);
    write_inline(root, "/etc", "script", b"run\n", &CopyOptions { mode: Some(0o755), owner: Some((5, 6)), ..plain() })
        .unwrap();
    let md = dest.meta("etc/script");
    assert_eq!((md.mode() & 0o7777, md.uid(), md.gid()), (0o755, 5, 6));
    write_inline(root, "/new/", "EOF", b"", &plain()).unwrap();
    assert_eq!(dest.read("new/EOF"), "");
    assert!(write_inline(root, "/x/", "../up", b"", &plain()).is_err());
}

/// A tar with raw names (the tar crate's builder would refuse the hostile ones).
fn raw_tar(entries: &[(EntryType, &str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (kind, name, data) in entries {
        let mut h = Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_entry_type(*kind);
        h.set_mode(if *kind == EntryType::Directory { 0o750 } else { 0o640 });
        h.set_uid(33);
        h.set_gid(34);
        h.set_mtime(1_600_000_000);
        let body = if matches!(kind, EntryType::Symlink | EntryType::Link) {
            h.set_link_name_literal(data).unwrap();
            ""
        } else {
            data
        };
        h.set_size(body.len() as u64);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(body.as_bytes());
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

fn add() -> CopyOptions {
    CopyOptions { extract_archives: true, ..plain() }
}

#[test]
fn add_extracts_tar_gz_and_plain_tar() {
    let ctx = tempfile::tempdir().unwrap();
    let tar = raw_tar(&[
        (EntryType::Directory, "./pkg/", ""),
        (EntryType::Regular, "./pkg/file", "content"),
        (EntryType::Symlink, "pkg/link", "/etc/passwd"),
        (EntryType::Link, "pkg/hard", "pkg/file"),
    ]);
    fs::write(ctx.path().join("app.tar.gz"), gzip(&tar)).unwrap();
    fs::write(ctx.path().join("plain.tar"), &tar).unwrap();
    fs::write(ctx.path().join("notes.gz"), gzip(b"just text")).unwrap();
    let tree = SourceTree::context(ctx.path(), None).unwrap();
    let dest = Dest::new();
    assert_eq!(dest.copy(&tree, &["app.tar.gz"], "/opt", &add()).unwrap(), 4);
    assert_eq!(dest.read("opt/pkg/file"), "content");
    let md = dest.meta("opt/pkg/file");
    assert_eq!((md.mode() & 0o7777, md.uid(), md.gid(), md.mtime()), (0o640, 33, 34, 1_600_000_000));
    assert_eq!(dest.meta("opt/pkg").mode() & 0o7777, 0o750);
    assert_eq!(fs::read_link(dest.root.join("opt/pkg/link")).unwrap(), Path::new("/etc/passwd"));
    assert_eq!(dest.meta("opt/pkg/hard").ino(), md.ino());

    let options = CopyOptions { owner: Some((7, 7)), ..add() };
    dest.copy(&tree, &["plain.tar"], "/plain/", &options).unwrap();
    assert_eq!(dest.meta("plain/pkg/file").uid(), 7);
    // Not a tar: copied as it is; and COPY never extracts.
    dest.copy(&tree, &["notes.gz"], "/notes.gz", &add()).unwrap();
    assert_eq!(fs::read(dest.root.join("notes.gz")).unwrap(), fs::read(ctx.path().join("notes.gz")).unwrap());
    dest.copy(&tree, &["app.tar.gz"], "/copied/", &plain()).unwrap();
    assert!(dest.meta("copied/app.tar.gz").is_file());
}

#[test]
fn add_refuses_entries_that_escape() {
    let dest = Dest::new();
    for (name, entries, needle) in [
        ("dotdot.tar", vec![(EntryType::Regular, "../escape", "x")], "../escape"),
        ("deep.tar", vec![(EntryType::Regular, "a/../../escape", "x")], "a/../../escape"),
        ("abs.tar", vec![(EntryType::Regular, "/etc/escape", "x")], "/etc/escape"),
        ("link.tar", vec![(EntryType::Symlink, "l", "/"), (EntryType::Regular, "l/escape", "x")], "l/escape"),
        (
            "climb.tar",
            vec![(EntryType::Symlink, "c", "../../../../../../.."), (EntryType::Regular, "c/escape", "x")],
            "c/escape",
        ),
        ("hard.tar", vec![(EntryType::Link, "h", "../../etc/passwd")], "h"),
    ] {
        let ctx = tempfile::tempdir().unwrap();
        fs::write(ctx.path().join(name), raw_tar(&entries)).unwrap();
        let tree = SourceTree::context(ctx.path(), None).unwrap();
        let before = dest.outside_snapshot();
        let err = dest.copy(&tree, &[name], "/x/", &add()).unwrap_err();
        assert!(matches!(err, CopyError::Archive { .. }), "{name}: {err}");
        assert!(err.to_string().contains(&format!("{needle:?}")), "{name}: {err}");
        assert_eq!(before, dest.outside_snapshot(), "{name} wrote outside the root");
        assert!(!dest.root.join("escape").exists() && !dest.root.join("etc/escape").exists(), "{name}");
    }
}
