//! The build cache: what each step that changes the filesystem produced, keyed by a chain
//! digest of everything that can change its result.
//!
//! A step's key is `sha256(previous key, the instruction as written, its inputs)`: the first
//! key is the base image's id (or `scratch`, or the key of the stage it is built FROM), the
//! inputs are the build arguments in scope (a RUN sees them as its environment, every other
//! instruction can expand them) and, for COPY and ADD, a checksum of the files copied. So a
//! step is reused exactly when its parent and everything it reads are unchanged, and a change
//! misses the cache from that step on — docker's rule.
//!
//! An entry is a small file `<store>/build-cache/<key hex>` naming the layer; the layer itself
//! is an ordinary layer of the store. When garbage collection has removed the layer, the
//! entry is stale and the step runs again.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::image::{Digest, Store};

/// What a step produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Its layer, `None` when the step changed nothing.
    pub layer: Option<Digest>,
    /// The layer's size.
    #[serde(default)]
    pub size: u64,
    /// When the step ran (RFC 3339), kept so a cached rebuild makes the same image.
    pub created: String,
}

/// The cache of one store.
#[derive(Debug)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// The cache beside `store`'s layers.
    pub fn open(store: &Store) -> Cache {
        Cache { dir: store.dir().join("build-cache") }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(key)
    }

    /// The entry for `key` whose layer is still in the store.
    pub fn get(&self, store: &Store, key: &str) -> Option<Entry> {
        let bytes = std::fs::read(self.path(key)).ok()?;
        let entry: Entry = serde_json::from_slice(&bytes).ok()?;
        match &entry.layer {
            Some(layer) if !store.has_layer(layer) => None,
            _ => Some(entry),
        }
    }

    /// Records what the step with `key` produced. A cache that cannot be written costs the
    /// next build time, not this one its result, so failures are ignored.
    pub fn put(&self, key: &str, entry: &Entry) {
        let _ = std::fs::create_dir_all(&self.dir);
        let Ok(bytes) = serde_json::to_vec(entry) else { return };
        let tmp = self.dir.join(format!(".{key}.{}", std::process::id()));
        if std::fs::write(&tmp, bytes).is_ok() && std::fs::rename(&tmp, self.path(key)).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

/// The next key in a chain.
pub fn chain(previous: &str, parts: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(previous.as_bytes());
    for p in parts {
        h.update([0]);
        h.update(p.as_bytes());
    }
    format!("{:x}", h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_key_changes_with_each_part_and_the_parent() {
        let a = chain("base", &["RUN x", "A=1"]);
        assert_eq!(a, chain("base", &["RUN x", "A=1"]));
        assert_ne!(a, chain("base", &["RUN x", "A=2"]));
        assert_ne!(a, chain("other", &["RUN x", "A=1"]));
        // Parts are separated: moving a boundary is a different key.
        assert_ne!(chain("b", &["ab", "c"]), chain("b", &["a", "bc"]));
    }
}
