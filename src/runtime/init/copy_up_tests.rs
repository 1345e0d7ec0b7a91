//! Copy-up between temporary directories: content, modes and links kept, and a volume whose
//! names were planted as symlinks never sends a write outside it. No root needed.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};

use super::*;

fn dir_fd(path: &Path) -> OwnedFd {
    open_volume(path).unwrap()
}

#[test]
fn content_modes_and_links_are_copied() {
    let image = tempfile::tempdir().unwrap();
    let volume = tempfile::tempdir().unwrap();
    fs::create_dir(image.path().join("etc")).unwrap();
    fs::write(image.path().join("etc/conf"), "k=v\n").unwrap();
    fs::set_permissions(image.path().join("etc/conf"), fs::Permissions::from_mode(0o640)).unwrap();
    symlink("/etc/conf", image.path().join("link")).unwrap();
    fs::set_permissions(image.path(), fs::Permissions::from_mode(0o751)).unwrap();

    assert!(is_empty(dir_fd(volume.path()).as_fd()).unwrap());
    copy(dir_fd(image.path()).as_fd(), dir_fd(volume.path()).as_fd()).unwrap();

    assert_eq!(fs::read_to_string(volume.path().join("etc/conf")).unwrap(), "k=v\n");
    let mode = |p: &str| fs::symlink_metadata(volume.path().join(p)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode("etc/conf"), 0o640);
    assert_eq!(fs::read_link(volume.path().join("link")).unwrap(), Path::new("/etc/conf"));
    assert_eq!(fs::metadata(volume.path()).unwrap().permissions().mode() & 0o7777, 0o751);
    assert!(!is_empty(dir_fd(volume.path()).as_fd()).unwrap());
}

#[test]
fn planted_symlinks_in_the_volume_are_never_followed() {
    let image = tempfile::tempdir().unwrap();
    let volume = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    fs::create_dir(image.path().join("etc")).unwrap();
    fs::write(image.path().join("etc/passwd"), "image\n").unwrap();
    fs::write(image.path().join("x"), "image\n").unwrap();
    // What another container sharing the volume made: a directory link out and a dangling link
    // to a file that does not exist yet.
    symlink(outside.path(), volume.path().join("etc")).unwrap();
    let dangling = outside.path().join("planted");
    symlink(&dangling, volume.path().join("x")).unwrap();

    copy(dir_fd(image.path()).as_fd(), dir_fd(volume.path()).as_fd()).unwrap();

    assert!(!dangling.exists(), "the copy wrote through a dangling link");
    assert!(!outside.path().join("passwd").exists(), "the copy descended into a planted link");
    assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
    assert!(fs::symlink_metadata(volume.path().join("etc")).unwrap().file_type().is_symlink());
}

#[test]
fn symlinks_in_the_image_are_copied_not_followed() {
    let image = tempfile::tempdir().unwrap();
    let volume = tempfile::tempdir().unwrap();
    let secret = tempfile::tempdir().unwrap();
    fs::write(secret.path().join("key"), "secret\n").unwrap();
    symlink(secret.path(), image.path().join("out")).unwrap();

    copy(dir_fd(image.path()).as_fd(), dir_fd(volume.path()).as_fd()).unwrap();

    assert!(fs::symlink_metadata(volume.path().join("out")).unwrap().file_type().is_symlink());
    assert_eq!(fs::read_dir(volume.path()).unwrap().count(), 1);
}
