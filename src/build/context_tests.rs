use super::*;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};

/// A build context with files, a subdirectory and `.dockerignore` contents.
pub(crate) fn context(ignore: Option<&str>) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for (path, body) in [
        ("a.txt", "a"),
        ("b.txt", "b"),
        ("c.md", "c"),
        ("sub/d.txt", "d"),
        ("sub/deep/e.txt", "e"),
        ("build/keep.txt", "keep"),
        ("build/drop.txt", "drop"),
        ("x.log", "log"),
        ("secret.txt", "secret"),
    ] {
        let path = d.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, body).unwrap();
    }
    if let Some(ignore) = ignore {
        fs::write(d.join(".dockerignore"), ignore).unwrap();
    }
    tmp
}

pub(crate) const IGNORE: &str = "# comment\n*.log\nbuild\n!build/keep.txt\nsecret.txt\n";

fn paths(selected: &[Selected]) -> Vec<String> {
    selected.iter().map(|s| s.path.to_string_lossy().into_owned()).collect()
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn select_expands_go_wildcards_sorted() {
    let ctx = context(None);
    let tree = SourceTree::context(ctx.path(), None).unwrap();
    assert_eq!(paths(&tree.select(&strings(&["*.txt"])).unwrap()), ["a.txt", "b.txt", "secret.txt"]);
    assert_eq!(paths(&tree.select(&strings(&["/sub/../[bc].*"])).unwrap()), ["b.txt", "c.md"]);
    assert_eq!(paths(&tree.select(&strings(&["s?b/*/e.txt"])).unwrap()), ["sub/deep/e.txt"]);
    assert_eq!(paths(&tree.select(&strings(&["./c.md", "a.txt"])).unwrap()), ["c.md", "a.txt"]);
    let root = tree.select(&strings(&["."])).unwrap();
    assert_eq!(root, [Selected { source: ".".into(), path: PathBuf::new(), is_dir: true }]);
    // `..` cannot climb out of the context.
    assert_eq!(paths(&tree.select(&strings(&["../../a.txt"])).unwrap()), ["a.txt"]);
    assert!(tree.select(&strings(&["sub"])).unwrap()[0].is_dir);
}

#[test]
fn select_reports_what_matched_nothing() {
    let ctx = context(None);
    let tree = SourceTree::context(ctx.path(), None).unwrap();
    let err = tree.select(&strings(&["a.txt", "missing"])).unwrap_err();
    assert_eq!(err.to_string(), "failed to compute cache key: \"/missing\" not found");
    let err = tree.select(&strings(&["*.nothing"])).unwrap_err();
    assert!(err.to_string().contains("\"/*.nothing\" not found"), "{err}");
    let err = tree.select(&strings(&["[a"])).unwrap_err();
    assert!(matches!(err, CopyError::BadPattern { .. }), "{err}");
}

#[test]
fn ignored_paths_never_match_and_exceptions_reinclude() {
    let ctx = context(Some(IGNORE));
    let tree = SourceTree::context(ctx.path(), None).unwrap();
    assert_eq!(paths(&tree.select(&strings(&["*.txt"])).unwrap()), ["a.txt", "b.txt"]);
    assert!(matches!(tree.select(&strings(&["secret.txt"])), Err(CopyError::NotFound { .. })));
    assert!(matches!(tree.select(&strings(&["x.log"])), Err(CopyError::NotFound { .. })));
    assert_eq!(paths(&tree.select(&strings(&["build/keep.txt"])).unwrap()), ["build/keep.txt"]);
    assert!(matches!(tree.select(&strings(&["build/drop.txt"])), Err(CopyError::NotFound { .. })));

    let root = tree.open_root().unwrap();
    let all = tree.select(&strings(&["."])).unwrap();
    let rels: Vec<String> =
        tree.entries(root.as_fd(), &all[0]).unwrap().iter().map(|e| e.rel.to_string_lossy().into_owned()).collect();
    assert_eq!(
        rels,
        [
            "",
            ".dockerignore",
            "a.txt",
            "b.txt",
            "build",
            "build/keep.txt",
            "c.md",
            "sub",
            "sub/d.txt",
            "sub/deep",
            "sub/deep/e.txt"
        ]
    );
}

#[test]
fn dockerfile_specific_ignore_file_wins() {
    let ctx = context(Some("a.txt\n"));
    fs::write(ctx.path().join("app.Dockerfile.dockerignore"), "b.txt\n").unwrap();
    let tree = SourceTree::context(ctx.path(), Some(Path::new("app.Dockerfile"))).unwrap();
    assert_eq!(paths(&tree.select(&strings(&["?.txt"])).unwrap()), ["a.txt"]);
    let tree = SourceTree::context(ctx.path(), Some(Path::new("Dockerfile"))).unwrap();
    assert_eq!(paths(&tree.select(&strings(&["?.txt"])).unwrap()), ["b.txt"]);
}

#[test]
fn symlinks_resolve_inside_the_tree() {
    let ctx = context(None);
    // Absolute: in the context this is the context's own `sub`, not the host's /sub.
    symlink("/sub", ctx.path().join("abs")).unwrap();
    symlink("../../../../../etc", ctx.path().join("climb")).unwrap();
    let tree = SourceTree::root(ctx.path());
    let sel = tree.select(&strings(&["abs"])).unwrap();
    assert!(sel[0].is_dir);
    let root = tree.open_root().unwrap();
    let rels: Vec<_> = tree.entries(root.as_fd(), &sel[0]).unwrap().into_iter().map(|e| e.rel).collect();
    assert!(rels.contains(&PathBuf::from("d.txt")), "{rels:?}");
    // `../../etc` from the root is the root's /etc, which this tree does not have.
    assert!(matches!(tree.select(&strings(&["climb/passwd"])), Err(CopyError::NotFound { .. })));
}

#[test]
fn checksum_follows_content_and_mode_not_mtime() {
    let ctx = context(Some(IGNORE));
    let tree = SourceTree::context(ctx.path(), None).unwrap();
    let sel = tree.select(&strings(&["."])).unwrap();
    let first = tree.checksum(&sel).unwrap();
    assert_eq!(tree.checksum(&sel).unwrap(), first);

    // mtimes and ignored files do not count.
    let past = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
    File::options().write(true).open(ctx.path().join("a.txt")).unwrap().set_modified(past).unwrap();
    fs::write(ctx.path().join("secret.txt"), "changed").unwrap();
    fs::write(ctx.path().join("build/drop.txt"), "changed").unwrap();
    fs::write(ctx.path().join("new.log"), "new").unwrap();
    assert_eq!(tree.checksum(&sel).unwrap(), first);

    fs::write(ctx.path().join("sub/d.txt"), "D").unwrap();
    let content = tree.checksum(&sel).unwrap();
    assert_ne!(content, first);
    fs::set_permissions(ctx.path().join("sub/d.txt"), fs::Permissions::from_mode(0o755)).unwrap();
    let mode = tree.checksum(&sel).unwrap();
    assert_ne!(mode, content);
    symlink("a.txt", ctx.path().join("ln")).unwrap();
    assert_ne!(tree.checksum(&sel).unwrap(), mode);

    // Only what is selected counts.
    let one = tree.select(&strings(&["b.txt"])).unwrap();
    let before = tree.checksum(&one).unwrap();
    fs::write(ctx.path().join("c.md"), "changed").unwrap();
    assert_eq!(tree.checksum(&one).unwrap(), before);
}
