//! The content-addressed image store.
//!
//! ```text
//! <root>/images/
//!   blobs/sha256/<hex>          manifests, configs, compressed layers — verified before they land
//!   layers/sha256/<diff-id>/    each layer unpacked once, in overlayfs form; a lowerdir
//!   l/<short>                   short links to layer dirs, so long lowerdir= lists fit a page
//!   images/<config-hex>.json    one record per image (id = config digest)
//!   names.json                  reference → image id
//!   tmp/<pid>-<n>/              staging; everything lands by rename, so a crash leaves no
//!                               half-written blob, layer or record in place
//!   gc.lock                     shared while content is added, exclusive while it is collected
//!   meta.lock                   exclusive while records and names change
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::config::ConfigFile;
use super::digest::{HashingReader, HashingWriter};
use super::{Digest, ImageError, Reference, unpack};

mod verify;

/// overlayfs's statfs magic: an overlay cannot be another overlay's upper directory.
const OVERLAYFS_MAGIC: i64 = 0x794c_7630;

/// One layer of an image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    /// The digest of the uncompressed tar: names the unpacked directory.
    pub diff_id: Digest,
    /// The blob it came from, when the store keeps one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob: Option<Digest>,
    /// The blob's media type.
    #[serde(default)]
    pub media_type: String,
    /// Uncompressed size in bytes.
    pub size: u64,
}

/// An image in the store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The config digest, which is the image id.
    pub id: Digest,
    /// The manifest digest, for images from a registry or an OCI layout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Digest>,
    /// The layers, base first.
    pub layers: Vec<Layer>,
    /// The parsed config.
    pub config: ConfigFile,
    /// Host directories bind-mounted read-only over the root (the host image only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_binds: Vec<PathBuf>,
}

impl ImageRecord {
    /// Uncompressed size of all layers.
    pub fn size(&self) -> u64 {
        self.layers.iter().map(|l| l.size).sum()
    }
}

/// What `prune` removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Image records without a name.
    pub images: usize,
    /// Layer directories no image uses.
    pub layers: usize,
    /// Blobs no image uses.
    pub blobs: usize,
}

/// The image store under a state root.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    tmp: PathBuf,
}

static STAGING: AtomicU64 = AtomicU64::new(0);

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> ImageError + '_ {
    move |e| ImageError::io(path, e)
}

impl Store {
    /// Opens (creating if needed) the store under `state_root`, checking that its filesystem
    /// can hold overlay upper directories and clearing staging left by dead processes.
    pub fn open(state_root: &Path) -> Result<Store, ImageError> {
        let dir = state_root.join("images");
        // Image layers hold setuid binaries: only root may reach them.
        crate::secure_fs::private_dir(&dir).map_err(io_at(&dir))?;
        for sub in ["blobs/sha256", "layers/sha256", "l", "images", "tmp"] {
            let p = dir.join(sub);
            fs::create_dir_all(&p).map_err(io_at(&p))?;
        }
        check_filesystem(&dir)?;
        clear_dead_staging(&dir.join("tmp"));
        let tmp = dir.join("tmp").join(format!("{}-{}", std::process::id(), STAGING.fetch_add(1, Ordering::Relaxed)));
        Ok(Store { dir, tmp })
    }

    /// The store's directory (`<state root>/images`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where a blob lives.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs/sha256").join(digest.hex())
    }

    /// Whether the blob is in the store.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Reads a whole (small) blob: a manifest or config.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, ImageError> {
        let p = self.blob_path(digest);
        fs::read(&p).map_err(io_at(&p))
    }

    /// A fresh staging path for this process.
    fn staging(&self, what: &str) -> Result<PathBuf, ImageError> {
        fs::create_dir_all(&self.tmp).map_err(io_at(&self.tmp))?;
        Ok(self.tmp.join(format!("{what}-{}", STAGING.fetch_add(1, Ordering::Relaxed))))
    }

    /// Streams a blob into the store, verifying `expected` when given; returns its digest and
    /// size. Nothing lands under `blobs/` unless the content matches.
    pub fn write_blob(&self, reader: impl Read, expected: Option<&Digest>) -> Result<(Digest, u64), ImageError> {
        let mut w = self.blob_writer()?;
        let mut reader = reader;
        io::copy(&mut reader, &mut w).map_err(|e| ImageError::io(&w.path, e))?;
        w.commit(expected)
    }

    /// A writer for a blob that arrives in pieces (a download); see [`BlobWriter::commit`].
    pub fn blob_writer(&self) -> Result<BlobWriter<'_>, ImageError> {
        let path = self.staging("blob")?;
        let file = File::create(&path).map_err(io_at(&path))?;
        Ok(BlobWriter { store: self, inner: HashingWriter::new(io::BufWriter::with_capacity(1 << 20, file)), path })
    }

    /// Where a layer is unpacked.
    pub fn layer_dir(&self, diff_id: &Digest) -> PathBuf {
        self.dir.join("layers/sha256").join(diff_id.hex())
    }

    /// The short name of a layer under `l/` (relative lowerdir entries stay short).
    pub fn layer_link(&self, diff_id: &Digest) -> PathBuf {
        self.dir.join("l").join(&diff_id.hex()[..16])
    }

    /// Whether a layer is unpacked.
    pub fn has_layer(&self, diff_id: &Digest) -> bool {
        self.layer_dir(diff_id).is_dir()
    }

    /// A second handle on the same store, for work on other threads.
    pub fn reopen(&self) -> Result<Store, ImageError> {
        let root = self.dir.parent().unwrap_or(&self.dir);
        Store::open(root)
    }

    /// Where the store remembers which layer a blob was verified to unpack to.
    fn blob_diff_id_path(&self, blob: &Digest) -> PathBuf {
        self.dir.join("layers/sha256").join(format!("{}.blob", blob.hex()))
    }

    /// The diff id this blob was verified to have when it was last unpacked.
    fn known_diff_id(&self, blob: &Digest) -> Option<Digest> {
        fs::read_to_string(self.blob_diff_id_path(blob)).ok().and_then(|s| s.trim().parse().ok())
    }

    /// Unpacks a stored layer blob (plain, gzip or zstd) once; returns its diff id and
    /// uncompressed size. `expected` is the diff id the image config promises.
    ///
    /// An existing layer is reused only when this very blob was verified to unpack to it: a
    /// config's claim alone must not give an image another image's layer.
    pub fn unpack_layer(&self, blob: &Digest, expected: Option<&Digest>) -> Result<(Digest, u64), ImageError> {
        if let Some(known) = self.known_diff_id(blob).filter(|d| self.has_layer(d)) {
            if let Some(want) = expected.filter(|want| **want != known) {
                return Err(ImageError::DigestMismatch {
                    what: format!("layer {blob} (uncompressed)"),
                    expected: want.clone(),
                    actual: known,
                });
            }
            let size = self.layer_size(&known);
            return Ok((known, size));
        }
        let path = self.blob_path(blob);
        let file = File::open(&path).map_err(io_at(&path))?;
        let plain = unpack::decompress(io::BufReader::with_capacity(1 << 20, file))
            .map_err(|source| ImageError::Unpack { layer: blob.to_string(), source })?;
        let mut hashing = HashingReader::new(plain);
        let staging = self.staging("layer")?;
        fs::create_dir(&staging).map_err(io_at(&staging))?;
        let result = unpack::unpack(&mut hashing, &staging);
        crate::fault::point("mid-unpack");
        let finished = hashing.finish();
        let outcome = match (result, finished) {
            (Err(source), _) => Err(ImageError::Unpack { layer: blob.to_string(), source }),
            (Ok(_), Err(e)) => Err(ImageError::io(&path, e)),
            (Ok(_), Ok((diff_id, size))) => match expected {
                Some(want) if *want != diff_id => Err(ImageError::DigestMismatch {
                    what: format!("layer {blob} (uncompressed)"),
                    expected: want.clone(),
                    actual: diff_id,
                }),
                _ => Ok((diff_id, size)),
            },
        };
        match outcome {
            Ok((diff_id, size)) => {
                self.place_layer(&staging, &diff_id, size)?;
                self.replace_file(&self.blob_diff_id_path(blob), diff_id.to_string().as_bytes(), false)?;
                Ok((diff_id, size))
            }
            Err(e) => {
                remove_tree(&staging);
                Err(e)
            }
        }
    }

    /// Moves an unpacked layer into place (a concurrent unpack of the same layer may have won;
    /// the content is the same, so ours is dropped) and makes its short link.
    fn place_layer(&self, staging: &Path, diff_id: &Digest, size: u64) -> Result<(), ImageError> {
        self.replace_file(&self.layer_size_path(diff_id), size.to_string().as_bytes(), false)?;
        let target = self.layer_dir(diff_id);
        match fs::rename(staging, &target) {
            Ok(()) => {}
            Err(e) if target.is_dir() => {
                let _ = e;
                remove_tree(staging);
            }
            Err(e) => return Err(ImageError::io(&target, e)),
        }
        let link = self.layer_link(diff_id);
        if fs::symlink_metadata(&link).is_err() {
            let tmp_link = self.staging("link")?;
            std::os::unix::fs::symlink(Path::new("../layers/sha256").join(diff_id.hex()), &tmp_link)
                .map_err(io_at(&tmp_link))?;
            fs::rename(&tmp_link, &link).map_err(io_at(&link))?;
        }
        Ok(())
    }

    /// Adds a directory that is already an unpacked layer (the host image's synthetic layer).
    pub fn adopt_layer_dir(&self, staging: &Path, diff_id: &Digest, size: u64) -> Result<(), ImageError> {
        self.place_layer(staging, diff_id, size)
    }

    /// The sidecar that records a layer's uncompressed size (the layer dir itself is the
    /// container's view and holds nothing else).
    fn layer_size_path(&self, diff_id: &Digest) -> PathBuf {
        self.dir.join("layers/sha256").join(format!("{}.size", diff_id.hex()))
    }

    /// A layer's uncompressed size; 0 when unknown.
    pub fn layer_size(&self, diff_id: &Digest) -> u64 {
        fs::read_to_string(self.layer_size_path(diff_id)).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
    }

    /// A directory in staging for the caller to fill (then [`Store::adopt_layer_dir`]).
    pub fn staging_dir(&self) -> Result<PathBuf, ImageError> {
        let p = self.staging("dir")?;
        fs::create_dir(&p).map_err(io_at(&p))?;
        Ok(p)
    }

    /// Holds content against garbage collection while it is being added (shared), or the
    /// whole store while collecting (exclusive).
    pub fn gc_lock(&self, exclusive: bool) -> Result<File, ImageError> {
        lock_file(&self.dir.join("gc.lock"), exclusive)
    }

    /// Records an image and points `names` at it; every layer must be unpacked.
    pub fn commit(&self, record: &ImageRecord, names: &[Reference]) -> Result<(), ImageError> {
        for layer in &record.layers {
            if !self.has_layer(&layer.diff_id) {
                return Err(ImageError::Malformed(format!(
                    "layer {} of image {} is not unpacked",
                    layer.diff_id, record.id
                )));
            }
        }
        let _meta = lock_file(&self.dir.join("meta.lock"), true)?;
        let json = serde_json::to_vec_pretty(record).map_err(|e| ImageError::Malformed(e.to_string()))?;
        self.write_atomic(&self.record_path(&record.id), &json)?;
        crate::fault::point("mid-commit");
        let mut all = self.names()?;
        for n in names {
            all.insert(n.to_string(), record.id.clone());
        }
        self.write_names(&all)
    }

    fn record_path(&self, id: &Digest) -> PathBuf {
        self.dir.join("images").join(format!("{}.json", id.hex()))
    }

    /// Replaces a small file by rename, synced first: records and names must survive power loss.
    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), ImageError> {
        self.replace_file(path, bytes, true)
    }

    /// Replaces a small file by rename. `durable: false` is for caches that can be recomputed
    /// (a layer's size, the layer a blob unpacks to): an fsync each would cost more than the
    /// rest of loading a small image.
    fn replace_file(&self, path: &Path, bytes: &[u8], durable: bool) -> Result<(), ImageError> {
        let tmp = self.staging("meta")?;
        let mut f = File::create(&tmp).map_err(io_at(&tmp))?;
        f.write_all(bytes).and_then(|()| if durable { f.sync_all() } else { Ok(()) }).map_err(io_at(&tmp))?;
        fs::rename(&tmp, path).map_err(io_at(path))?;
        match path.parent() {
            // The rename is on disk only once its directory is.
            Some(dir) if durable => File::open(dir).and_then(|d| d.sync_all()).map_err(io_at(dir)),
            _ => Ok(()),
        }
    }

    /// Reference (as a full string) → image id.
    pub fn names(&self) -> Result<BTreeMap<String, Digest>, ImageError> {
        let p = self.dir.join("names.json");
        match fs::read(&p) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| ImageError::Malformed(format!("{}: {e}", p.display())))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(ImageError::io(p, e)),
        }
    }

    fn write_names(&self, names: &BTreeMap<String, Digest>) -> Result<(), ImageError> {
        let json = serde_json::to_vec_pretty(names).map_err(|e| ImageError::Malformed(e.to_string()))?;
        self.write_atomic(&self.dir.join("names.json"), &json)
    }

    /// The record of an image id.
    pub fn record(&self, id: &Digest) -> Result<Option<ImageRecord>, ImageError> {
        let p = self.record_path(id);
        match fs::read(&p) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| ImageError::Malformed(format!("{}: {e}", p.display()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ImageError::io(p, e)),
        }
    }

    /// Finds an image by reference (`busybox`, `localhost:5000/x:1`), full id
    /// (`sha256:…`) or an id prefix of at least 4 hex digits.
    pub fn resolve(&self, name: &str) -> Result<Option<ImageRecord>, ImageError> {
        if let Ok(r) = name.parse::<Reference>()
            && let Some(id) = self.names()?.get(&r.to_string())
        {
            return self.record(id);
        }
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        if hex.len() >= 4 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let matches: Vec<Digest> = self.image_ids()?.into_iter().filter(|id| id.hex().starts_with(hex)).collect();
            if let [one] = matches.as_slice() {
                return self.record(one);
            }
        }
        Ok(None)
    }

    fn image_ids(&self) -> Result<Vec<Digest>, ImageError> {
        let dir = self.dir.join("images");
        let mut ids = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_at(&dir))? {
            let entry = entry.map_err(io_at(&dir))?;
            let name = entry.file_name();
            let Some(hex) = name.to_str().and_then(|n| n.strip_suffix(".json")) else { continue };
            if let Ok(d) = format!("sha256:{hex}").parse() {
                ids.push(d);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Every image with its names (possibly none: a dangling image).
    pub fn list(&self) -> Result<Vec<(ImageRecord, Vec<Reference>)>, ImageError> {
        let names = self.names()?;
        let mut out = Vec::new();
        for id in self.image_ids()? {
            let Some(record) = self.record(&id)? else { continue };
            let refs = names.iter().filter(|(_, v)| **v == id).filter_map(|(k, _)| k.parse().ok()).collect();
            out.push((record, refs));
        }
        Ok(out)
    }

    /// Removes a name (or, given an id, the image and all its names); an image left without
    /// names is removed with its now unused layers and blobs.
    pub fn remove(&self, name: &str) -> Result<Vec<String>, ImageError> {
        let _gc = self.gc_lock(true)?;
        let record = self.resolve(name)?.ok_or_else(|| ImageError::NotFound(name.to_owned()))?;
        let mut removed = Vec::new();
        {
            let _meta = lock_file(&self.dir.join("meta.lock"), true)?;
            let mut names = self.names()?;
            let by_name = name.parse::<Reference>().ok().map(|r| r.to_string()).filter(|r| names.contains_key(r));
            match by_name {
                Some(r) => {
                    names.remove(&r);
                    removed.push(format!("Untagged: {r}"));
                }
                None => names.retain(|k, v| {
                    let keep = *v != record.id;
                    if !keep {
                        removed.push(format!("Untagged: {k}"));
                    }
                    keep
                }),
            }
            if !names.values().any(|v| *v == record.id) {
                let p = self.record_path(&record.id);
                fs::remove_file(&p).map_err(io_at(&p))?;
                removed.push(format!("Deleted: {}", record.id));
            }
            self.write_names(&names)?;
        }
        self.collect()?;
        Ok(removed)
    }

    /// Removes images without names, then layers and blobs no image uses.
    pub fn prune(&self) -> Result<PruneReport, ImageError> {
        let _gc = self.gc_lock(true)?;
        let mut report = PruneReport::default();
        {
            let _meta = lock_file(&self.dir.join("meta.lock"), true)?;
            let named: BTreeSet<Digest> = self.names()?.into_values().collect();
            for id in self.image_ids()? {
                if !named.contains(&id) {
                    let p = self.record_path(&id);
                    fs::remove_file(&p).map_err(io_at(&p))?;
                    report.images += 1;
                }
            }
        }
        let (layers, blobs) = self.collect()?;
        report.layers = layers;
        report.blobs = blobs;
        Ok(report)
    }

    /// Deletes layers and blobs that no record references. The caller holds the exclusive gc
    /// lock, so no pull is between writing a blob and committing its record.
    fn collect(&self) -> Result<(usize, usize), ImageError> {
        let mut layers = BTreeSet::new();
        let mut blobs = BTreeSet::new();
        for id in self.image_ids()? {
            let Some(r) = self.record(&id)? else { continue };
            blobs.insert(r.id.hex().to_owned());
            if let Some(m) = &r.manifest {
                blobs.insert(m.hex().to_owned());
            }
            for l in &r.layers {
                layers.insert(l.diff_id.hex().to_owned());
                if let Some(b) = &l.blob {
                    blobs.insert(b.hex().to_owned());
                }
            }
        }
        let mut removed_layers = 0;
        let layer_root = self.dir.join("layers/sha256");
        for entry in fs::read_dir(&layer_root).map_err(io_at(&layer_root))?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let layer = name.strip_suffix(".size").unwrap_or(&name);
            if layers.contains(layer) {
                continue;
            }
            if let Some(blob) = name.strip_suffix(".blob") {
                if !blobs.contains(blob) {
                    let _ = fs::remove_file(entry.path());
                }
                continue;
            }
            if name.ends_with(".size") {
                let _ = fs::remove_file(entry.path());
                continue;
            }
            let link = self.dir.join("l").join(name.get(..16).unwrap_or(&name));
            let _ = fs::remove_file(link);
            remove_tree(&entry.path());
            removed_layers += 1;
        }
        let mut removed_blobs = 0;
        let blob_root = self.dir.join("blobs/sha256");
        for entry in fs::read_dir(&blob_root).map_err(io_at(&blob_root))?.flatten() {
            if !blobs.contains(entry.file_name().to_string_lossy().as_ref()) {
                let _ = fs::remove_file(entry.path());
                removed_blobs += 1;
            }
        }
        Ok((removed_layers, removed_blobs))
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        remove_tree(&self.tmp);
    }
}

/// A blob being written; it lands in the store only through [`BlobWriter::commit`].
#[derive(Debug)]
pub struct BlobWriter<'a> {
    store: &'a Store,
    inner: HashingWriter<io::BufWriter<File>>,
    path: PathBuf,
}

impl Write for BlobWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl BlobWriter<'_> {
    /// Checks the digest and moves the blob into place.
    pub fn commit(self, expected: Option<&Digest>) -> Result<(Digest, u64), ImageError> {
        let BlobWriter { store, inner, path } = self;
        let (digest, size, buffered) = inner.finish();
        let file = buffered.into_inner().map_err(|e| ImageError::io(&path, e.into_error()))?;
        if let Some(want) = expected
            && *want != digest
        {
            let _ = fs::remove_file(&path);
            return Err(ImageError::DigestMismatch {
                what: format!("blob {want}"),
                expected: want.clone(),
                actual: digest,
            });
        }
        file.sync_all().map_err(io_at(&path))?;
        let target = store.blob_path(&digest);
        fs::rename(&path, &target).map_err(io_at(&target))?;
        Ok((digest, size))
    }
}

fn lock_file(path: &Path, exclusive: bool) -> Result<File, ImageError> {
    let f = File::options().create(true).truncate(false).write(true).open(path).map_err(io_at(path))?;
    if exclusive { f.lock() } else { f.lock_shared() }.map_err(io_at(path))?;
    Ok(f)
}

fn remove_tree(path: &Path) {
    let _ = fs::remove_dir_all(path);
}

/// Staging directories are named `<pid>-<n>`; those of processes that are gone are removed.
fn clear_dead_staging(tmp: &Path) {
    let Ok(entries) = fs::read_dir(tmp) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name.split('-').next().and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|p| Path::new("/proc").join(p.to_string()).exists());
        if !alive {
            remove_tree(&entry.path());
        }
    }
}

/// The store must be on a filesystem that can be an overlay upper directory: not overlayfs.
fn check_filesystem(dir: &Path) -> Result<(), ImageError> {
    let stat = nix::sys::statfs::statfs(dir).map_err(|e| ImageError::io(dir, e.into()))?;
    if stat.filesystem_type().0 == OVERLAYFS_MAGIC {
        return Err(ImageError::UnsuitableRoot(format!(
            "{} is on overlayfs, which cannot hold overlay upper directories: point --root (or BERTH_ROOT) at a directory on ext4, xfs or btrfs",
            dir.display()
        )));
    }
    Ok(())
}
