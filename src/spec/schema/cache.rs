//! A record of documents that already passed the schema, so running the same stack file again
//! skips compiling and running the validator and parsing the schema (several milliseconds,
//! the largest part of loading a small stack). With each document it keeps the pointers of the
//! keys berth ignores, so the warnings about them stay the same on a hit.
//!
//! The key is a SHA-256 over the embedded schema and the interpolated, merged document, so an
//! edit to the stack file, an env file, a variable or berth's schema is a miss. The record is a
//! text file, a line per document (its key, then a tab before each ignored key's pointer; the
//! names in those pointers match `^[a-zA-Z0-9._-]+$`), the newest last, capped at [`KEEP`]. Reading or writing it can fail
//! for any reason (no state root yet, a read-only one, a concurrent writer): the loader then
//! validates as if nothing was recorded, so the file is never a source of errors.

use std::io::Write;
use std::path::Path;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::SCHEMA_JSON;

/// How many documents are remembered.
const KEEP: usize = 64;

/// The key of a document under the embedded schema.
pub fn key(doc: &Value) -> String {
    let mut hash = Sha256::new();
    hash.update(SCHEMA_JSON.as_bytes());
    hash.update([0]);
    // serde_json writes maps in insertion order (preserve_order), which is the document's.
    hash.update(doc.to_string().as_bytes());
    format!("{:x}", hash.finalize())
}

/// The ignored-key pointers recorded with `key` in `file`, when it is recorded.
pub fn lookup(file: &Path, key: &str) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|line| {
        let mut fields = line.split('\t');
        (fields.next() == Some(key)).then(|| fields.map(str::to_owned).collect())
    })
}

/// Records `key` and its ignored-key pointers in `file`, when the file's directory or that
/// directory's parent exists (the cache never creates a state root); keeps the newest
/// [`KEEP`] documents.
pub fn insert(file: &Path, key: &str, ignored: &[String]) {
    let Some(dir) = file.parent() else { return };
    if ignored.iter().any(|p| p.contains(['\t', '\n'])) {
        return;
    }
    let usable = dir.is_dir() || (dir.parent().is_some_and(Path::is_dir) && std::fs::create_dir(dir).is_ok());
    if !usable {
        return;
    }
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut lines: Vec<String> =
        text.lines().filter(|line| line.split('\t').next() != Some(key)).map(str::to_owned).collect();
    lines.push(std::iter::once(key.to_owned()).chain(ignored.iter().cloned()).collect::<Vec<_>>().join("\t"));
    let start = lines.len().saturating_sub(KEEP);
    // Written aside and renamed, so a reader never sees half a line.
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("cache");
    let temp = dir.join(format!(".{name}.{}", std::process::id()));
    let written = std::fs::File::create(&temp).and_then(|mut f| f.write_all(lines[start..].join("\n").as_bytes()));
    if written.and_then(|()| std::fs::rename(&temp, file)).is_err() {
        let _ = std::fs::remove_file(&temp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_key_is_found_and_the_oldest_fall_out() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cache/valid");
        assert_eq!(lookup(&file, "a"), None);
        for i in 0..KEEP + 3 {
            insert(&file, &format!("k{i}"), &[]);
        }
        insert(&file, "k3", &["/services/a/oom_score_adj".into(), "/services/b/x".into()]);
        assert_eq!(lookup(&file, &format!("k{}", KEEP + 2)), Some(vec![]));
        assert_eq!(lookup(&file, "k3"), Some(vec!["/services/a/oom_score_adj".into(), "/services/b/x".into()]));
        assert_eq!(lookup(&file, "k2"), None);
        assert_eq!(lookup(&file, "k4"), Some(vec![]));
        assert_eq!(std::fs::read_to_string(&file).unwrap().lines().count(), KEEP);
    }

    #[test]
    fn the_key_changes_with_the_document_and_nothing_is_written_without_a_directory() {
        let one = key(&serde_json::json!({"services": {"a": {"image": "x"}}}));
        let two = key(&serde_json::json!({"services": {"a": {"image": "y"}}}));
        assert_ne!(one, two);
        assert_eq!(one.len(), 64);
        let missing = Path::new("/nonexistent-berth-dir/cache/valid");
        insert(missing, &one, &[]);
        assert_eq!(lookup(missing, &one), None);
    }
}
