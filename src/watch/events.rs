//! File system events → debounced batches, one per rule.
//!
//! Built on `notify` (inotify on Linux) with our own quiet-period batching rather than
//! `notify-debouncer-full`/`-mini`: those age each event (or path) separately and flush it once
//! *it* is older than the timeout, so a burst that lasts longer than the window (a 200-file
//! write, a branch switch) comes out in several pieces. Compose (`pkg/watch/debounce.go`)
//! instead waits until nothing has happened for the whole quiet period and then flushes
//! everything at once, which is what the sync/restart/rebuild actions want: one action per
//! burst. That is a `recv_timeout` loop on one thread.
//!
//! Event kinds are not trusted to say what happened: when a batch is flushed, every path is
//! looked at again — still there: changed; gone: removed. So a path created and then removed
//! within a window is reported removed, and one removed then re-created is reported changed.
//! A directory that appears (created, renamed in, or a watched rule path created late) is
//! walked and its files reported, since files written into it before its inotify watch was
//! added would otherwise be missed.
//!
//! Limitations: `notify` watches the whole tree under each rule path, ignored directories
//! (`node_modules`, `.git`) included, so huge trees can hit the inotify watch limit
//! (`fs.inotify.max_user_watches`); a kernel queue overflow makes every rule's tree be walked
//! again and reported as changed, but removals during the overflow are lost; a steady stream of
//! matching changes (never quiet for `quiet`) postpones the batch, as in compose.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use notify::event::{EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};

use super::rules::CompiledRule;

/// Compose's debounce window (`watch.QuietPeriod`).
pub const QUIET_PERIOD: Duration = Duration::from_millis(500);

/// The changes one rule saw in one quiet-period window.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// Index into the `rules` given to [`RuleWatcher::start`].
    pub rule: usize,
    /// Files (anything but directories) created or modified, sorted, deduplicated.
    pub changed: Vec<PathBuf>,
    /// Paths that no longer exist, sorted; a removed directory stands for everything under it.
    pub removed: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("starting the file watcher: {0}")]
    Init(#[source] notify::Error),
    #[error("watching {}: {source}", path.display())]
    Watch {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },
    #[error("starting the watch thread: {0}")]
    Thread(#[source] io::Error),
}

enum Msg {
    Event(notify::Result<notify::Event>),
    Stop,
}

/// Watches rule paths and delivers debounced batches; dropping it stops watching.
#[derive(Debug)]
pub struct RuleWatcher {
    tx: mpsc::Sender<Msg>,
    thread: Option<JoinHandle<()>>,
}

impl RuleWatcher {
    /// Watches every rule's path (recursively), and calls `deliver` (from a background thread)
    /// with one [`Batch`] per rule that had matching changes, once `quiet` has passed with no
    /// further matching events (compose: [`QUIET_PERIOD`]). A burst gives one batch per rule.
    ///
    /// A rule path that does not exist yet is watched through its nearest existing parent
    /// (not recursively); once it appears it is watched, and its files are reported changed.
    pub fn start(
        rules: Vec<CompiledRule>,
        quiet: Duration,
        deliver: impl Fn(Vec<Batch>) + Send + 'static,
    ) -> Result<RuleWatcher, WatchError> {
        let (tx, rx) = mpsc::channel();
        let events = tx.clone();
        let watcher = notify::recommended_watcher(move |event| {
            // The receiver is gone only once the loop has stopped.
            let _ = events.send(Msg::Event(event));
        })
        .map_err(WatchError::Init)?;
        let mut watches = Watches { watcher, recursive: HashSet::new(), flat: HashSet::new() };
        let mut order: Vec<&CompiledRule> = rules.iter().collect();
        // Ancestors first, so a nested rule path is covered by its ancestor's recursive watch.
        order.sort_by(|a, b| a.path().cmp(b.path()));
        for rule in order {
            watches.arm(rule.path()).map_err(|source| WatchError::Watch { path: rule.path().into(), source })?;
        }
        let mut state = State { rules, watches, raw: BTreeMap::new(), rescan: false };
        let thread = std::thread::Builder::new()
            .name("berth-watch".into())
            .spawn(move || state.run(&rx, quiet, &deliver))
            .map_err(WatchError::Thread)?;
        Ok(RuleWatcher { tx, thread: Some(thread) })
    }

    /// Stops watching and waits for the background thread (and a `deliver` in progress).
    /// Must not be called from within `deliver`.
    pub fn stop(mut self) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for RuleWatcher {
    fn drop(&mut self) {
        // Not joined: dropping may happen inside `deliver`. The thread ends at its next wake-up.
        let _ = self.tx.send(Msg::Stop);
    }
}

/// The notify watcher and what it watches.
struct Watches {
    watcher: RecommendedWatcher,
    /// Directories watched with everything under them.
    recursive: HashSet<PathBuf>,
    /// Directories watched for their direct entries only (parents of file rules and of rule
    /// paths that do not exist yet).
    flat: HashSet<PathBuf>,
}

/// What [`Watches::arm`] did.
#[derive(Debug, PartialEq, Eq)]
enum Armed {
    /// Changes were already being seen.
    Already,
    /// The path exists and has just started being watched.
    Now,
    /// The path does not exist; its nearest existing ancestor is watched.
    Pending,
}

impl Watches {
    fn covered(&self, path: &Path) -> bool {
        self.recursive.iter().any(|root| path.starts_with(root))
    }

    /// Makes sure changes to `path` (a directory, a file, or a path yet to be created) are seen.
    fn arm(&mut self, path: &Path) -> Result<Armed, notify::Error> {
        match fs::metadata(path) {
            Ok(meta) if meta.is_dir() => {
                if self.covered(path) {
                    return Ok(Armed::Already);
                }
                self.watcher.watch(path, RecursiveMode::Recursive)?;
                self.recursive.insert(path.into());
                Ok(Armed::Now)
            }
            Ok(_) => {
                // A single file: watch its directory, which survives editors replacing the file.
                let parent = path.parent().unwrap_or(path);
                if self.covered(parent) || self.flat.contains(parent) {
                    return Ok(Armed::Already);
                }
                self.watcher.watch(parent, RecursiveMode::NonRecursive)?;
                self.flat.insert(parent.into());
                Ok(Armed::Now)
            }
            Err(_) => {
                let Some(existing) = path.ancestors().skip(1).find(|a| a.is_dir()) else { return Ok(Armed::Pending) };
                if !self.covered(existing) && !self.flat.contains(existing) {
                    self.watcher.watch(existing, RecursiveMode::NonRecursive)?;
                    self.flat.insert(existing.into());
                }
                // Something below may have been created before the watch was in place, and its
                // creation was then missed: look again (each round watches a deeper directory).
                let deeper = path.exists() || path.ancestors().skip(1).take_while(|a| *a != existing).any(Path::is_dir);
                if deeper { self.arm(path) } else { Ok(Armed::Pending) }
            }
        }
    }

    /// Forgets watches on `gone` and below (the kernel dropped them with the directories).
    fn forget(&mut self, gone: &Path) {
        let stale: Vec<PathBuf> = self
            .recursive
            .iter()
            .chain(self.flat.iter())
            .filter(|p| p.starts_with(gone) && !p.exists())
            .cloned()
            .collect();
        for path in stale {
            let _ = self.watcher.unwatch(&path);
            self.recursive.remove(&path);
            self.flat.remove(&path);
        }
    }
}

/// The background loop's state.
struct State {
    rules: Vec<CompiledRule>,
    watches: Watches,
    /// Paths seen since the last flush; `true` when, if a directory, it is to be walked (it
    /// appeared) rather than skipped (its attributes changed).
    raw: BTreeMap<PathBuf, bool>,
    /// The kernel queue overflowed: walk every rule path at the next flush.
    rescan: bool,
}

impl State {
    fn run(&mut self, rx: &mpsc::Receiver<Msg>, quiet: Duration, deliver: &dyn Fn(Vec<Batch>)) {
        let mut deadline: Option<Instant> = None;
        loop {
            let msg = match deadline {
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
            };
            match msg {
                Ok(Msg::Event(Ok(event))) => {
                    if self.record(event) {
                        deadline = Some(Instant::now() + quiet);
                    }
                }
                // Errors (a failed watch on a new subdirectory, the watch limit) do not stop the
                // loop; there is no one to tell but the batches that follow.
                Ok(Msg::Event(Err(_))) => {}
                Err(RecvTimeoutError::Timeout) => {
                    deadline = None;
                    let batches = self.flush();
                    if !batches.is_empty() {
                        deliver(batches);
                    }
                }
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Takes in one event; whether it concerned any rule (and so restarts the quiet period).
    fn record(&mut self, event: notify::Event) -> bool {
        if event.need_rescan() {
            self.rescan = true;
            return true;
        }
        let (appeared, gone) = match event.kind {
            EventKind::Access(_) => return false,
            EventKind::Create(_) | EventKind::Modify(ModifyKind::Name(_)) => (true, true),
            EventKind::Remove(_) => (false, true),
            _ => (false, false),
        };
        let mut relevant = false;
        for path in event.paths {
            if gone && !path.exists() {
                self.watches.forget(&path);
            }
            if appeared || gone {
                relevant |= self.rearm(&path);
            }
            let concerned = self.rules.iter().any(|rule| {
                rule.matches(&path)
                    || (path.starts_with(rule.path()) && (appeared || path.is_dir()) && !rule.skips_dir(&path))
            });
            if concerned {
                let walk = self.raw.entry(path).or_insert(false);
                *walk |= appeared;
                relevant = true;
            }
        }
        relevant
    }

    /// After `path` appeared or went away: (re)arms the rules whose path is it or under it, and
    /// records the ones that just became watched. Whether any did.
    fn rearm(&mut self, path: &Path) -> bool {
        let mut armed = false;
        for i in 0..self.rules.len() {
            let rule_path = self.rules[i].path().to_path_buf();
            if !rule_path.starts_with(path) {
                continue;
            }
            // A failure is retried at the next event above the rule path.
            if let Ok(Armed::Now) = self.watches.arm(&rule_path) {
                self.raw.insert(rule_path, true);
                armed = true;
            }
        }
        armed
    }

    /// Turns the recorded paths into batches, per rule.
    fn flush(&mut self) -> Vec<Batch> {
        let mut raw = std::mem::take(&mut self.raw);
        if std::mem::take(&mut self.rescan) {
            for rule in &self.rules {
                raw.insert(rule.path().to_path_buf(), true);
            }
        }
        let mut changed = BTreeSet::new();
        let mut removed = BTreeSet::new();
        for (path, walk) in raw {
            match fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => {
                    if walk {
                        self.walk(&path, &mut changed);
                    }
                }
                Ok(_) => {
                    changed.insert(path);
                }
                Err(_) => {
                    removed.insert(path);
                }
            }
        }
        let mut batches = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let rule_changed: Vec<PathBuf> = changed.iter().filter(|p| rule.matches(p)).cloned().collect();
            let mut rule_removed: Vec<PathBuf> = Vec::new();
            // Sorted, so a directory comes right before everything under it.
            for path in removed.iter().filter(|p| rule.matches(p)) {
                if !rule_removed.last().is_some_and(|dir| path.starts_with(dir)) {
                    rule_removed.push(path.clone());
                }
            }
            if !rule_changed.is_empty() || !rule_removed.is_empty() {
                batches.push(Batch { rule: i, changed: rule_changed, removed: rule_removed });
            }
        }
        batches
    }

    /// Adds the files under `dir`, skipping directories every concerned rule ignores.
    fn walk(&self, dir: &Path, into: &mut BTreeSet<PathBuf>) {
        let skip = |path: &Path| {
            let mut concerned = self.rules.iter().filter(|r| path.starts_with(r.path())).peekable();
            concerned.peek().is_none() || concerned.all(|r| r.skips_dir(path))
        };
        let entries =
            walkdir::WalkDir::new(dir).into_iter().filter_entry(|e| !e.file_type().is_dir() || !skip(e.path()));
        for entry in entries.flatten() {
            if !entry.file_type().is_dir() {
                into.insert(entry.into_path());
            }
        }
    }
}

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;
