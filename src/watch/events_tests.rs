use std::sync::mpsc::Receiver;

use super::*;
use crate::spec::model::WatchRule;

/// Generous: only ever waited for in full when something is wrong.
const WAIT: Duration = Duration::from_secs(10);
/// Compose's window; the bursts below are written without pauses.
const QUIET: Duration = QUIET_PERIOD;

fn rule(path: &Path, ignore: &[&str]) -> CompiledRule {
    let rule = WatchRule {
        path: path.to_str().unwrap().into(),
        action: "sync".into(),
        target: Some("/app".into()),
        ignore: ignore.iter().map(|s| s.to_string()).collect(),
        include: Vec::new(),
        initial_sync: false,
        exec: None,
    };
    CompiledRule::new("web", 0, &rule, None).unwrap()
}

fn start(rules: Vec<CompiledRule>) -> (RuleWatcher, Receiver<Vec<Batch>>) {
    let (tx, rx) = mpsc::channel();
    let watcher = RuleWatcher::start(rules, QUIET, move |batches| tx.send(batches).unwrap()).unwrap();
    (watcher, rx)
}

/// The next delivery.
fn next(rx: &Receiver<Vec<Batch>>) -> Vec<Batch> {
    rx.recv_timeout(WAIT).expect("a batch within the timeout")
}

#[test]
fn a_burst_of_writes_is_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let (watcher, rx) = start(vec![rule(&root, &[])]);
    for i in 0..200 {
        fs::write(root.join(format!("f{i:03}.txt")), "x").unwrap();
    }
    let batches = next(&rx);
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].rule, 0);
    assert_eq!(batches[0].changed.len(), 200, "{:?}", batches[0].changed);
    assert!(batches[0].removed.is_empty());
    assert_eq!(batches[0].changed[0], root.join("f000.txt"));
    // Nothing else comes from that burst.
    assert!(rx.recv_timeout(QUIET * 4).is_err());
    watcher.stop();
}

#[test]
fn ignored_files_make_no_batch_and_removals_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    fs::write(root.join("old.txt"), "x").unwrap();
    let (watcher, rx) = start(vec![rule(&root, &["*.log"])]);
    fs::write(root.join("debug.log"), "x").unwrap();
    fs::write(root.join(".main.rs.swp"), "x").unwrap();
    fs::create_dir(root.join(".git")).unwrap();
    fs::write(root.join(".git/HEAD"), "x").unwrap();
    // A marker after the ignored writes: the first batch must hold it alone.
    fs::remove_file(root.join("old.txt")).unwrap();
    let batches = next(&rx);
    assert_eq!(batches, vec![Batch { rule: 0, changed: vec![], removed: vec![root.join("old.txt")] }]);

    // Created then removed within one window: removed.
    fs::write(root.join("brief.txt"), "x").unwrap();
    fs::write(root.join("stays.txt"), "x").unwrap();
    fs::remove_file(root.join("brief.txt")).unwrap();
    let batches = next(&rx);
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].changed, vec![root.join("stays.txt")]);
    assert_eq!(batches[0].removed, vec![root.join("brief.txt")]);
    watcher.stop();
}

#[test]
fn two_rules_give_two_batches() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let (a, b) = (root.join("a"), root.join("b"));
    fs::create_dir_all(&a).unwrap();
    fs::create_dir_all(&b).unwrap();
    let (watcher, rx) = start(vec![rule(&a, &[]), rule(&b, &[]), rule(&root, &["a", "b"])]);
    fs::write(a.join("1"), "x").unwrap();
    fs::write(a.join("2"), "x").unwrap();
    fs::write(b.join("3"), "x").unwrap();
    let batches = next(&rx);
    assert_eq!(
        batches,
        vec![
            Batch { rule: 0, changed: vec![a.join("1"), a.join("2")], removed: vec![] },
            Batch { rule: 1, changed: vec![b.join("3")], removed: vec![] },
        ]
    );
    watcher.stop();
}

#[test]
fn new_directories_are_walked_and_removed_ones_collapsed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let (watcher, rx) = start(vec![rule(&root, &[])]);
    fs::create_dir_all(root.join("x/y/z")).unwrap();
    fs::write(root.join("x/y/z/deep.txt"), "x").unwrap();
    fs::write(root.join("x/top.txt"), "x").unwrap();
    let batches = next(&rx);
    assert_eq!(batches[0].changed, vec![root.join("x/top.txt"), root.join("x/y/z/deep.txt")]);

    fs::remove_dir_all(root.join("x")).unwrap();
    let batches = next(&rx);
    assert_eq!(batches, vec![Batch { rule: 0, changed: vec![], removed: vec![root.join("x")] }]);
    watcher.stop();
}

#[test]
fn rule_paths_created_later_are_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let later = root.join("later/src");
    let file = root.join("config.json");
    let (watcher, rx) = start(vec![rule(&later, &[]), rule(&file, &[])]);
    fs::create_dir_all(&later).unwrap();
    fs::write(later.join("main.rs"), "x").unwrap();
    let batches = next(&rx);
    assert_eq!(batches, vec![Batch { rule: 0, changed: vec![later.join("main.rs")], removed: vec![] }]);

    // Later writes into it are seen through its own watch.
    fs::write(later.join("lib.rs"), "x").unwrap();
    let batches = next(&rx);
    assert_eq!(batches, vec![Batch { rule: 0, changed: vec![later.join("lib.rs")], removed: vec![] }]);

    // A single-file rule, created and then replaced the way editors do (rename over it).
    fs::write(&file, "{}").unwrap();
    let batches = next(&rx);
    assert_eq!(batches, vec![Batch { rule: 1, changed: vec![file.clone()], removed: vec![] }]);
    fs::write(root.join("config.json.tmp"), "{\"a\":1}").unwrap();
    fs::rename(root.join("config.json.tmp"), &file).unwrap();
    let batches = next(&rx);
    assert_eq!(batches, vec![Batch { rule: 1, changed: vec![file], removed: vec![] }]);
    watcher.stop();
}

#[test]
fn rule_paths_far_from_existing_directories_still_start() {
    // No existing ancestor but `/`: still starts.
    let rules = vec![rule(Path::new("/nonexistent-berth-watch-test/a/b"), &[])];
    let watcher = RuleWatcher::start(rules, QUIET, |_| {}).unwrap();
    drop(watcher);
}
