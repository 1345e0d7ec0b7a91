//! Container events, as `docker events` reports them for a project: the supervisor appends one
//! JSON line per event to `<project dir>/events.jsonl` (`create`, `start`, `die` with its
//! `exitCode`, `health_status: healthy`/`unhealthy`, `kill`, `stop`, `restart`, `destroy`), and
//! `berth events` and `berth wait` follow that file. At [`MAX_SIZE`] the file is renamed to
//! `events.jsonl.1` (the previous `.1` is dropped) and a new one begun; a [`Follower`] finishes
//! the renamed file before it moves on to the new one, so no event is lost to the rotation.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// The size at which the events file is rotated.
pub const MAX_SIZE: u64 = 1024 * 1024;

/// The events file of a project directory.
pub fn path(project_dir: &Path) -> PathBuf {
    project_dir.join("events.jsonl")
}

/// Where the rotated events go.
fn rotated(path: &Path) -> PathBuf {
    path.with_extension("jsonl.1")
}

/// One container event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Unix nanoseconds.
    pub time: u128,
    /// docker's action: `create`, `start`, `die`, `health_status: healthy`, `kill`, `stop`,
    /// `restart`, `destroy`.
    pub action: String,
    /// The container's id.
    pub id: String,
    /// Its service.
    pub service: String,
    /// docker's attributes: `image` and `name` always; `exitCode` and `execDuration` (seconds)
    /// for `die`; `signal` (a number) for `kill`.
    pub attributes: BTreeMap<String, String>,
}

/// The supervisor's side: appends events to the file.
#[derive(Debug)]
pub struct EventLog {
    path: PathBuf,
    /// The open file and how much it holds; opened on the first event.
    file: Mutex<Option<(std::fs::File, u64)>>,
}

impl EventLog {
    /// The log of `project_dir` (nothing is opened yet).
    pub fn new(project_dir: &Path) -> EventLog {
        EventLog { path: path(project_dir), file: Mutex::new(None) }
    }

    /// Appends one event as one line, written with a single `write`, so a reader never sees
    /// half of one (it only takes lines that end in a newline anyway).
    pub fn append(&self, event: &Event) {
        let Ok(mut line) = serde_json::to_string(event) else { return };
        line.push('\n');
        let Ok(mut guard) = self.file.lock() else { return };
        if guard.as_ref().is_none_or(|(_, size)| *size >= MAX_SIZE) {
            if guard.is_some() {
                let _ = std::fs::rename(&self.path, rotated(&self.path));
            }
            *guard = crate::secure_fs::append_private(&self.path).ok().map(|f| {
                let size = f.metadata().map_or(0, |m| m.len());
                (f, size)
            });
        }
        if let Some((file, size)) = guard.as_mut()
            && file.write_all(line.as_bytes()).is_ok()
        {
            *size += line.len() as u64;
        }
    }
}

/// The reader's side: follows the events file across rotations.
#[derive(Debug)]
pub struct Follower {
    path: PathBuf,
    /// The inode of the file being read (0 before it exists).
    inode: u64,
    offset: u64,
}

impl Follower {
    /// Follows from the end of what the file holds now: only events still to come.
    pub fn from_end(project_dir: &Path) -> Follower {
        let path = path(project_dir);
        let (inode, offset) = std::fs::metadata(&path).map_or((0, 0), |m| (m.ino(), m.len()));
        Follower { path, inode, offset }
    }

    /// Follows from the oldest event kept (the rotated file's first, if there is one).
    pub fn from_start(project_dir: &Path) -> Follower {
        let path = path(project_dir);
        let old = rotated(&path);
        match std::fs::metadata(&old) {
            Ok(m) => Follower { path, inode: m.ino(), offset: 0 },
            Err(_) => {
                Follower { path: path.clone(), inode: std::fs::metadata(&path).map_or(0, |m| m.ino()), offset: 0 }
            }
        }
    }

    /// The events written since the last call, oldest first.
    pub fn poll(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        let current = std::fs::metadata(&self.path).ok();
        let current_inode = current.as_ref().map_or(0, MetadataExt::ino);
        if self.inode != 0 && current_inode != self.inode {
            // Rotated since the last call: the rest of the file we were reading is `.1` now.
            let old = rotated(&self.path);
            if std::fs::metadata(&old).is_ok_and(|m| m.ino() == self.inode) {
                events.extend(read_from(&old, self.offset).0);
            }
            self.inode = 0;
            self.offset = 0;
        }
        if current_inode == 0 {
            return events;
        }
        if self.inode == 0 {
            self.inode = current_inode;
            self.offset = 0;
        }
        let (fresh, end) = read_from(&self.path, self.offset);
        self.offset = end;
        events.extend(fresh);
        events
    }
}

/// The events in `path` from byte `offset`, and the offset after the last complete line.
fn read_from(path: &Path, offset: u64) -> (Vec<Event>, u64) {
    let (lines, end) = super::logs::complete_lines_from(path, offset);
    (lines.iter().filter_map(|l| serde_json::from_str::<Event>(l.trim_end()).ok()).collect(), end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u128) -> Event {
        Event {
            time: n,
            action: "start".into(),
            id: format!("{n:064}"),
            service: "web".into(),
            attributes: BTreeMap::from([("name".to_owned(), "p-web-1".to_owned())]),
        }
    }

    #[test]
    fn a_follower_sees_only_new_events_and_survives_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::new(dir.path());
        let mut early = Follower::from_start(dir.path());
        assert!(early.poll().is_empty(), "no file yet");
        log.append(&event(1));
        let mut late = Follower::from_end(dir.path());
        log.append(&event(2));
        assert_eq!(early.poll().iter().map(|e| e.time).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(late.poll().iter().map(|e| e.time).collect::<Vec<_>>(), [2]);
        // Fill the file past its cap: the next event starts a new file.
        let mut n = 3;
        while std::fs::metadata(path(dir.path())).unwrap().len() < MAX_SIZE {
            log.append(&event(n));
            n += 1;
        }
        let mid = late.poll().len();
        log.append(&event(n));
        log.append(&event(n + 1));
        assert!(rotated(&path(dir.path())).exists());
        let after: Vec<u128> = late.poll().iter().map(|e| e.time).collect();
        assert_eq!(after, [n, n + 1], "after {mid} events, the rotation loses none");
        let all = Follower::from_start(dir.path()).poll();
        assert_eq!(all.first().map(|e| e.time), Some(1), "the rotated file is read first");
        assert_eq!(all.last().map(|e| e.time), Some(n + 1));
        assert!(std::fs::metadata(path(dir.path())).unwrap().len() < MAX_SIZE);
    }
}
