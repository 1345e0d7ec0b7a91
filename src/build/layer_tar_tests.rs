use super::*;
use std::collections::BTreeMap;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::PathBuf;

use rustix::fs::{FileType, Mode, makedev, mknodat};

use crate::image::unpack::unpack;

/// What a round trip must keep of one path.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    rdev: u64,
    body: Vec<u8>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    opaque: bool,
}

fn scan(root: &Path) -> BTreeMap<PathBuf, Seen> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_owned()];
    while let Some(dir) = todo.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let md = fs::symlink_metadata(&path).unwrap();
            let ft = md.file_type();
            let (kind, body) = if ft.is_dir() {
                todo.push(path.clone());
                ("dir", Vec::new())
            } else if ft.is_file() {
                ("file", fs::read(&path).unwrap())
            } else if ft.is_symlink() {
                ("symlink", fs::read_link(&path).unwrap().into_os_string().into_vec())
            } else if ft.is_char_device() {
                ("char", Vec::new())
            } else if ft.is_fifo() {
                ("fifo", Vec::new())
            } else {
                ("other", Vec::new())
            };
            // The unpacker makes whiteouts its own way; only their place matters.
            let whiteout = ft.is_char_device() && md.rdev() == 0;
            let seen = Seen {
                kind,
                mode: if whiteout { 0 } else { md.mode() & 0o7777 },
                uid: md.uid(),
                gid: md.gid(),
                // Directory times are not kept by every writer of a layer; file times are.
                mtime: if ft.is_dir() || whiteout { 0 } else { md.mtime() },
                rdev: md.rdev(),
                body,
                xattrs: if ft.is_symlink() { Vec::new() } else { xattrs(&path).unwrap() },
                opaque: ft.is_dir() && is_opaque(&path).unwrap(),
            };
            out.insert(path.strip_prefix(root).unwrap().to_owned(), seen);
        }
    }
    out
}

fn set_time(path: &Path, secs: i64) {
    let t = rustix::fs::Timespec { tv_sec: secs, tv_nsec: 0 };
    let times = rustix::fs::Timestamps { last_access: t, last_modification: t };
    rustix::fs::utimensat(rustix::fs::CWD, path, &times, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).unwrap();
}

/// An overlay upper dir with everything a build step can leave.
fn layer_dir() -> tempfile::TempDir {
    assert!(rustix::process::geteuid().is_root(), "layer tests make devices and trusted.* xattrs: run as root");
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    fs::write(d.join("file"), "hello").unwrap();
    std::os::unix::fs::chown(d.join("file"), Some(1000), Some(1001)).unwrap();
    fs::set_permissions(d.join("file"), fs::Permissions::from_mode(0o4755)).unwrap();
    rustix::fs::setxattr(d.join("file"), "user.note", b"kept", rustix::fs::XattrFlags::empty()).unwrap();
    rustix::fs::setxattr(d.join("file"), "trusted.overlay.origin", b"x", rustix::fs::XattrFlags::empty()).unwrap();
    fs::create_dir_all(d.join("dir/sub")).unwrap();
    fs::write(d.join("dir/sub/x"), "x").unwrap();
    fs::hard_link(d.join("file"), d.join("dir/hard")).unwrap();
    symlink("../dir/sub/x", d.join("link")).unwrap();
    let long_target = format!("/{}", "t".repeat(150));
    symlink(&long_target, d.join("longlink")).unwrap();
    let dir = rustix::fs::open(d, rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY, Mode::empty()).unwrap();
    mknodat(&dir, "gone", FileType::CharacterDevice, Mode::from_raw_mode(0o600), makedev(0, 0)).unwrap();
    mknodat(&dir, "pipe", FileType::Fifo, Mode::from_raw_mode(0o640), 0).unwrap();
    mknodat(&dir, "null", FileType::CharacterDevice, Mode::from_raw_mode(0o666), makedev(1, 3)).unwrap();
    fs::create_dir(d.join("opq")).unwrap();
    fs::write(d.join("opq/kept"), "k").unwrap();
    rustix::fs::setxattr(d.join("opq"), "trusted.overlay.opaque", b"y", rustix::fs::XattrFlags::empty()).unwrap();
    // A name that needs the ustar prefix, one that needs PAX, and a whiteout inside a directory.
    let mid = d.join("p".repeat(90)).join("q".repeat(90));
    fs::create_dir_all(&mid).unwrap();
    fs::write(mid.join("r".repeat(200)), "long").unwrap();
    let sub = rustix::fs::open(d.join("dir"), rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY, Mode::empty())
        .unwrap();
    mknodat(&sub, "old", FileType::CharacterDevice, Mode::empty(), makedev(0, 0)).unwrap();
    for name in ["file", "dir/sub/x", "link", "longlink", "gone", "pipe", "null", "opq/kept", "dir/old"] {
        set_time(&d.join(name), 1_600_000_000);
    }
    tmp
}

#[test]
fn round_trips_through_berths_unpacker() {
    let src = layer_dir();
    let mut tar = Vec::new();
    let written = write_layer_tar(src.path(), &mut tar).unwrap();
    assert_eq!(written, tar.len() as u64);
    assert_eq!(written % 512, 0);

    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("layer");
    fs::create_dir(&dest).unwrap();
    let stats = unpack(tar.as_slice(), &dest).unwrap();
    assert_eq!(stats.whiteouts, 2);
    assert_eq!(stats.opaque_dirs, 1);

    let mut want = scan(src.path());
    // Copy-up metadata is not layer content.
    for seen in want.values_mut() {
        seen.xattrs.retain(|(name, _)| !name.starts_with(b"trusted.overlay."));
    }
    assert_eq!(scan(&dest), want);
    let (a, b) = (fs::metadata(dest.join("file")).unwrap(), fs::metadata(dest.join("dir/hard")).unwrap());
    assert_eq!(a.ino(), b.ino(), "the hard link is kept");
    assert_eq!(fs::read_link(dest.join("longlink")).unwrap().as_os_str().len(), 151);
}

#[test]
fn tar_is_deterministic_and_ordered() {
    let src = layer_dir();
    let (first, size) = diff_id(src.path()).unwrap();
    // Access times and directory listing order must not matter.
    fs::read(src.path().join("file")).unwrap();
    let (second, size2) = diff_id(src.path()).unwrap();
    assert_eq!((first.clone(), size), (second, size2));
    let mut tar = Vec::new();
    write_layer_tar(src.path(), &mut tar).unwrap();
    assert_eq!(Digest::of(&tar), first);

    let mut archive = tar::Archive::new(tar.as_slice());
    let names: Vec<String> =
        archive.entries().unwrap().map(|e| String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned()).collect();
    let pos = |n: &str| names.iter().position(|x| x == n).unwrap_or_else(|| panic!("{n} missing from {names:?}"));
    assert!(pos("dir/") < pos("dir/.wh.old"));
    assert!(pos("dir/.wh.old") < pos("dir/hard"), "whiteouts sort by their tar name");
    assert_eq!(pos("opq/") + 1, pos("opq/.wh..wh..opq"));
    assert!(pos("opq/.wh..wh..opq") < pos("opq/kept"));
    assert!(names.contains(&".wh.gone".to_owned()));

    fs::write(src.path().join("dir/sub/x"), "y").unwrap();
    set_time(&src.path().join("dir/sub/x"), 1_600_000_000);
    assert_ne!(diff_id(src.path()).unwrap().0, first, "content is in the digest");
}

#[test]
fn empty_layer_is_two_zero_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let mut tar = Vec::new();
    assert_eq!(write_layer_tar(tmp.path(), &mut tar).unwrap(), 1024);
    assert!(tar.iter().all(|b| *b == 0));
}

#[test]
fn upper_dirs_that_depend_on_lower_layers_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir(tmp.path().join("moved")).unwrap();
    rustix::fs::setxattr(
        tmp.path().join("moved"),
        "trusted.overlay.redirect",
        b"/old",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    let err = diff_id(tmp.path()).unwrap_err();
    assert!(err.to_string().contains("trusted.overlay.redirect"), "{err}");
}
