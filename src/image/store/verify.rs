//! Checking the store's invariants: what a crash at any point must leave true, since
//! everything lands by rename (see the module's layout).

use std::fs::{self, File};

use super::{Digest, ImageError, Store, io_at};
use crate::image::digest::HashingReader;

impl Store {
    /// Checks that every record parses, every name points at a recorded image, every image's
    /// layers are unpacked with their short links, the blobs its records name are present, and
    /// every blob's content matches its digest. Returns every problem at once.
    pub fn verify(&self) -> Result<(), ImageError> {
        let mut problems = Vec::new();
        let names = self.names()?;
        let ids = self.image_ids()?;
        for (name, id) in &names {
            if !ids.contains(id) {
                problems.push(format!("name {name} points at {id}, which has no record"));
            }
        }
        for id in &ids {
            let record = match self.record(id) {
                Ok(Some(record)) => record,
                Ok(None) => continue,
                Err(e) => {
                    problems.push(e.to_string());
                    continue;
                }
            };
            if record.host_binds.is_empty() && !self.has_blob(id) {
                problems.push(format!("image {id}: its config blob is missing"));
            }
            if let Some(manifest) = record.manifest.as_ref().filter(|m| !self.has_blob(m)) {
                problems.push(format!("image {id}: its manifest blob {manifest} is missing"));
            }
            for layer in &record.layers {
                if !self.has_layer(&layer.diff_id) {
                    problems.push(format!("image {id}: layer {} is not unpacked", layer.diff_id));
                } else if !self.layer_link(&layer.diff_id).is_dir() {
                    problems.push(format!("image {id}: layer {} has no short link", layer.diff_id));
                }
                if let Some(blob) = layer.blob.as_ref().filter(|b| !self.has_blob(b)) {
                    problems.push(format!("image {id}: layer blob {blob} is missing"));
                }
            }
        }
        let blobs = self.dir.join("blobs/sha256");
        for entry in fs::read_dir(&blobs).map_err(io_at(&blobs))? {
            let entry = entry.map_err(io_at(&blobs))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(digest) = format!("sha256:{name}").parse::<Digest>() else {
                problems.push(format!("blob {name}: not a digest"));
                continue;
            };
            let path = entry.path();
            let hashing = HashingReader::new(File::open(&path).map_err(io_at(&path))?);
            match hashing.finish() {
                Ok((actual, _)) if actual == digest => {}
                Ok((actual, _)) => problems.push(format!("blob {digest} holds {actual}")),
                Err(e) => problems.push(format!("blob {digest}: {e}")),
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(ImageError::Malformed(problems.join("\n"))) }
    }
}
