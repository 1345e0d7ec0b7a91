//! A small pool of emptied container directories, reused instead of made and removed.
//!
//! A container directory holds three directories of its own (itself, `upper`, `work`, plus the
//! `work/work` that overlayfs makes). On ext4 every directory takes a block when it is made and
//! frees it when it is removed; with the `discard` mount option (this VM's root, and many cloud
//! images) each freed block is a synchronous discard, so removing one container's directories
//! took 1-1.5 ms, a tenth of a whole `run --rm`. Renaming an emptied directory into the pool,
//! and out of it for the next container, moves no block at all.
//!
//! Only directories whose layout berth knows are kept, and only once empty of everything the
//! container left; at most [`MAX_SPARES`] are kept. Taking one is a rename, atomic, so two
//! containers starting at once never get the same.

use std::fs;
use std::io;
use std::path::Path;

/// How many emptied directories are kept.
pub const MAX_SPARES: usize = 8;

/// The entries a container directory may hold; anything else means it is not recycled.
const KNOWN: [&str; 7] = ["upper", "work", "hosts", "hostname", "resolv.conf", "spec.json", "state.json"];

/// Whether berth writes an entry of this name in a container directory: the fixed ones, and
/// the secrets and configs (`file-<n>`, see `MountKind::File`).
fn is_known(name: &str) -> bool {
    KNOWN.contains(&name)
        || name.strip_prefix("file-").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Moves a spare directory from `spares` to `dir` (which must not exist); `false` when there is
/// none to take.
pub fn take(spares: &Path, dir: &Path) -> bool {
    let Ok(entries) = fs::read_dir(spares) else { return false };
    entries.flatten().any(|entry| fs::rename(entry.path(), dir).is_ok())
}

/// Empties the container directory `dir` down to empty `upper/` and `work/` and moves it into
/// `spares`; `false` (with `dir` possibly partly emptied, for the caller's full removal) when
/// the pool is full or `dir` holds anything unexpected.
pub fn recycle(spares: &Path, dir: &Path) -> bool {
    let pooled = fs::read_dir(spares).map(Iterator::count);
    let pooled = match pooled {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::NotFound => match fs::create_dir(spares) {
            Ok(()) => 0,
            Err(_) => return false,
        },
        Err(_) => return false,
    };
    if pooled >= MAX_SPARES || !empty(dir).is_ok_and(|emptied| emptied) {
        return false;
    }
    let Some(name) = dir.file_name() else { return false };
    fs::rename(dir, spares.join(name)).is_ok()
}

/// Removes the files berth wrote and whatever the container left in `upper` and `work/work`;
/// `Ok(false)` when `dir` holds an entry berth does not know.
fn empty(dir: &Path) -> io::Result<bool> {
    let mut entries = Vec::new();
    // A directory a failed removal left without its layers would poison the pool: every
    // container taking it would fail to mount its root (ENOENT), and be recycled again.
    if !(dir.join("upper").is_dir() && dir.join("work").is_dir()) {
        return Ok(false);
    }
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().filter(|n| is_known(n)).map(str::to_owned) else {
            return Ok(false);
        };
        entries.push((name, entry));
    }
    // The layers first, the records last: a removal that fails halfway leaves `spec.json`, so
    // the next `down` still knows whose directory this is and finishes the job.
    entries.sort_by_key(|(name, _)| !matches!(name.as_str(), "upper" | "work"));
    for (name, entry) in entries {
        match name.as_str() {
            "upper" => empty_dir(&entry.path())?,
            "work" => {
                // overlayfs' own `work/work` (and `index` when enabled) are remade at the next
                // mount anyway; only their content must go.
                for inner in fs::read_dir(entry.path())? {
                    empty_dir(&inner?.path())?;
                }
            }
            _ => fs::remove_file(entry.path())?,
        }
    }
    Ok(true)
}

/// Removes everything inside `dir`, keeping `dir`.
fn empty_dir(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            crate::fsutil::remove_tree(&entry.path())?;
        } else {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container_dir(root: &Path, id: &str) -> std::path::PathBuf {
        let dir = root.join("containers").join(id);
        fs::create_dir_all(dir.join("upper/etc")).unwrap();
        fs::create_dir_all(dir.join("work/work/x")).unwrap();
        fs::write(dir.join("upper/etc/written"), "by the container").unwrap();
        fs::write(dir.join("hosts"), "127.0.0.1 localhost\n").unwrap();
        fs::write(dir.join("state.json"), "{}").unwrap();
        fs::write(dir.join("file-0"), "a secret").unwrap();
        dir
    }

    #[test]
    fn an_emptied_directory_is_pooled_and_taken_back_empty() {
        let root = tempfile::tempdir().unwrap();
        let spares = root.path().join("spare");
        let first = container_dir(root.path(), "a");
        assert!(recycle(&spares, &first));
        assert!(!first.exists());
        let pooled = spares.join("a");
        assert!(pooled.join("upper").is_dir());
        assert_eq!(fs::read_dir(pooled.join("upper")).unwrap().count(), 0);
        assert_eq!(fs::read_dir(pooled.join("work/work")).unwrap().count(), 0);
        assert_eq!(fs::read_dir(&pooled).unwrap().count(), 2, "only upper and work stay");

        let next = root.path().join("containers").join("b");
        assert!(take(&spares, &next));
        assert!(next.join("upper").is_dir() && next.join("work").is_dir());
        assert_eq!(fs::read_dir(&spares).unwrap().count(), 0);
        assert!(!take(&spares, &root.path().join("containers").join("c")), "the pool is empty");
    }

    #[test]
    fn an_unknown_entry_or_a_full_pool_is_left_to_the_full_removal() {
        let root = tempfile::tempdir().unwrap();
        let spares = root.path().join("spare");
        let odd = container_dir(root.path(), "odd");
        fs::write(odd.join("something-else"), "").unwrap();
        assert!(!recycle(&spares, &odd));
        assert!(odd.exists());

        for i in 0..MAX_SPARES {
            assert!(recycle(&spares, &container_dir(root.path(), &format!("c{i}"))));
        }
        let extra = container_dir(root.path(), "extra");
        assert!(!recycle(&spares, &extra));
        assert_eq!(fs::read_dir(&spares).unwrap().count(), MAX_SPARES);
    }

    #[test]
    fn a_directory_a_failed_removal_left_without_its_layers_is_not_pooled() {
        let root = tempfile::tempdir().unwrap();
        let spares = root.path().join("spare");
        let half = container_dir(root.path(), "half");
        fs::remove_dir_all(half.join("upper")).unwrap();
        fs::remove_dir_all(half.join("work")).unwrap();
        fs::write(half.join("spec.json"), "{}").unwrap();
        assert!(!recycle(&spares, &half));
        assert!(half.join("spec.json").exists(), "left for the full removal");
        assert!(!take(&spares, &root.path().join("containers").join("next")), "nothing was pooled");
    }
}
