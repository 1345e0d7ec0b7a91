use std::os::unix::fs::symlink;

use super::*;

#[test]
fn names_follow_docker_pattern() {
    assert!(valid_name("demo_data"));
    assert!(valid_name("a.b-c_d"));
    assert!(!valid_name("a"));
    assert!(!valid_name("../etc"));
    assert!(!valid_name(".hidden"));
    assert!(!valid_name("a/b"));
    assert!(!valid_name(""));
    assert!(looks_anonymous(&"ab".repeat(32)));
    assert!(!looks_anonymous(&"AB".repeat(32)));
    assert!(!looks_anonymous("demo_data"));
}

#[test]
fn labels_are_composes_for_named_and_dockers_for_anonymous() {
    let named = default_labels("demo_data", Some("demo"), None);
    assert_eq!(named.get(PROJECT_LABEL).map(String::as_str), Some("demo"));
    assert_eq!(named.get(VOLUME_LABEL).map(String::as_str), Some("data"));
    assert!(named.contains_key(VERSION_LABEL));
    let keyed = default_labels("custom", Some("demo"), Some("data"));
    assert_eq!(keyed.get(VOLUME_LABEL).map(String::as_str), Some("data"));
    let anonymous = default_labels(&"0f".repeat(32), Some("demo"), None);
    assert_eq!(anonymous.into_iter().collect::<Vec<_>>(), vec![(ANONYMOUS_LABEL.to_owned(), String::new())]);
}

#[test]
fn times_are_rfc3339_seconds() {
    assert_eq!(rfc3339_seconds(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339_seconds(1_796_000_000), "2026-11-30T00:53:20Z");
}

#[test]
fn names_sort_naturally() {
    let mut names = vec!["v10", "v2", "a", "v1", "v02x"];
    names.sort_by(|a, b| natural_cmp(a, b));
    assert_eq!(names, vec!["a", "v1", "v2", "v02x", "v10"]);
}

#[test]
fn records_are_written_once_and_listed() {
    let root = tempfile::tempdir().unwrap();
    let mut first = new_meta("demo_data", Some("demo"), Some("data"));
    first.created_at = "2026-01-01T00:00:00Z".into();
    ensure(root.path(), &first).unwrap();
    let mut second = first.clone();
    second.created_at = "2027-01-01T00:00:00Z".into();
    ensure(root.path(), &second).unwrap();
    // A directory from before records existed.
    let old = "cd".repeat(32);
    std::fs::create_dir_all(root.path().join("volumes").join(&old).join("_data")).unwrap();
    // Not volumes: a stray file and a name docker would refuse.
    std::fs::write(root.path().join("volumes/stray"), b"").unwrap();
    std::fs::create_dir_all(root.path().join("volumes/.removing")).unwrap();
    let all = list(root.path()).unwrap();
    let names: Vec<&str> = all.iter().map(|v| v.meta.name.as_str()).collect();
    assert_eq!(names, vec![old.as_str(), "demo_data"]);
    assert_eq!(all[1].meta.created_at, "2026-01-01T00:00:00Z");
    assert!(all[0].meta.anonymous);
    assert!(all[0].meta.labels.contains_key(ANONYMOUS_LABEL));
    assert!(all[0].used_by.is_empty());
    assert!(matches!(inspect(root.path(), "nope"), Err(VolumeError::NotFound(_))));
    assert!(matches!(inspect(root.path(), "../volumes"), Err(VolumeError::NotFound(_))));
}

#[test]
fn in_use_message_is_dockers() {
    let e = VolumeError::InUse { name: "v".into(), ids: vec!["a1".into(), "b2".into()] };
    assert_eq!(e.to_string(), "remove v: volume is in use - [a1, b2]");
    assert_eq!(VolumeError::NotFound("x".into()).to_string(), "get x: no such volume");
}

#[test]
fn removal_does_not_follow_links_and_survives_deep_trees() {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let marker = outside.path().join("marker");
    std::fs::write(&marker, b"keep").unwrap();
    ensure(root.path(), &new_meta("demo_hostile", Some("demo"), None)).unwrap();
    let data = root.path().join("volumes/demo_hostile/_data");
    symlink("/", data.join("root")).unwrap();
    symlink(outside.path(), data.join("outside")).unwrap();
    std::fs::write(data.join("file"), b"12345").unwrap();
    std::fs::hard_link(data.join("file"), data.join("link")).unwrap();
    // Deeper than the open-level window, built by descriptor-free relative steps.
    let mut deep = data.clone();
    for _ in 0..200 {
        deep.push("d");
    }
    std::fs::create_dir_all(&deep).unwrap();
    symlink(outside.path(), deep.join("out")).unwrap();
    std::fs::write(deep.join("f"), b"xy").unwrap();
    let expected = 5 + 2 + link_len(&data);
    let bytes = remove(root.path(), "demo_hostile").unwrap();
    assert_eq!(bytes, expected);
    assert!(!root.path().join("volumes/demo_hostile").exists());
    assert_eq!(std::fs::read(&marker).unwrap(), b"keep");
    assert!(Path::new("/etc").is_dir());
    assert_eq!(remove_unchecked(root.path(), "demo_hostile").unwrap(), 0);
}

/// The sizes of the test tree's symlinks (a link's size is its target's length).
fn link_len(data: &Path) -> u64 {
    let mut deep = data.to_path_buf();
    for _ in 0..200 {
        deep.push("d");
    }
    ["root", "outside"].iter().map(|l| std::fs::symlink_metadata(data.join(l)).unwrap().len()).sum::<u64>()
        + std::fs::symlink_metadata(deep.join("out")).unwrap().len()
}

#[test]
fn a_mounted_volume_is_recorded_even_below_a_subpath_of_its_own_name() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("volumes/demo_v1/_data/demo_v1/x");
    let kind = MountKind::Volume { name: "demo_v1".into(), dir: dir.clone(), copy_up: false };
    ensure_mounted("demo", &kind).unwrap();
    assert!(dir.is_dir());
    let v = inspect(root.path(), "demo_v1").unwrap();
    assert_eq!(v.meta.project.as_deref(), Some("demo"));
    assert!(root.path().join("volumes/demo_v1").join(META_FILE).is_file());
    assert!(!root.path().join("volumes/demo_v1/_data/demo_v1").join(META_FILE).exists());
}
