//! `berth image save`: images as an archive that `docker load`, `podman load` and `berth load`
//! all read — what docker 25+ writes: an OCI image layout (`oci-layout`, `index.json`,
//! `blobs/sha256/…`) with docker's `manifest.json` beside it, pointing at the same blobs.
//!
//! Layers go in uncompressed, so each layer blob's digest is its diff id, as docker's are. A
//! layer the store keeps as a (possibly compressed) blob is decompressed; one it keeps only
//! unpacked (a built layer) is written again by `layer_tar` — the caller's, since the writer
//! lives with the builder. Either way the tar is spooled to staging and checked against the
//! diff id the config names before it goes into the archive: a layer that does not match is an
//! error, never a broken archive.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, BufReader, Seek, Write};
use std::path::Path;

use serde_json::json;

use super::digest::HashingWriter;
use super::{Digest, ImageError, ImageRecord, Reference, Store, unpack};

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// Writes an unpacked layer directory as its layer tar (`build::layer_tar::write_layer_tar`).
pub type LayerWriter<'a> = &'a dyn Fn(&Path, &mut dyn Write) -> io::Result<u64>;

/// One image to save with the names asked for.
struct Saved {
    record: ImageRecord,
    names: Vec<Reference>,
}

/// Writes the images `names` (references or ids) as one archive to `out`.
pub fn save(store: &Store, names: &[String], layer_writer: LayerWriter<'_>, out: impl Write) -> Result<(), ImageError> {
    let _gc = store.gc_lock(false)?;
    let mut images: Vec<Saved> = Vec::new();
    for name in names {
        let record = store.resolve(name)?.ok_or_else(|| ImageError::NotFound(name.clone()))?;
        let reference =
            name.parse::<Reference>().ok().filter(|r| store.names().is_ok_and(|n| n.contains_key(&r.to_string())));
        match images.iter_mut().find(|i| i.record.id == record.id) {
            Some(saved) => saved.names.extend(reference),
            None => images.push(Saved { record, names: reference.into_iter().collect() }),
        }
    }
    let mut tar = tar::Builder::new(out);
    for dir in ["blobs/", "blobs/sha256/"] {
        let mut header = header(tar::EntryType::Directory, 0);
        header.set_mode(0o755);
        tar.append_data(&mut header, dir, io::empty()).map_err(write_err)?;
    }
    let mut written: BTreeSet<Digest> = BTreeSet::new();
    let mut docker_manifest = Vec::new();
    let mut index = Vec::new();
    for image in &images {
        let record = &image.record;
        let config = store.read_blob(&record.id)?;
        if Digest::of(&config) != record.id {
            return Err(ImageError::Malformed(format!(
                "the stored config of image {} does not match its id",
                record.id
            )));
        }
        add_blob(&mut tar, &mut written, &record.id, &mut &config[..], config.len() as u64)?;
        let mut layers = Vec::new();
        for layer in &record.layers {
            let spool = layer_tar(store, record, layer, layer_writer)?;
            let size = spool.metadata().map_err(write_err)?.len();
            add_blob(&mut tar, &mut written, &layer.diff_id, &mut BufReader::new(spool), size)?;
            layers.push(json!({ "mediaType": LAYER, "digest": layer.diff_id.to_string(), "size": size }));
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": { "mediaType": CONFIG, "digest": record.id.to_string(), "size": config.len() },
            "layers": layers,
        });
        let manifest = serde_json::to_vec(&manifest).map_err(|e| ImageError::Malformed(e.to_string()))?;
        let manifest_digest = Digest::of(&manifest);
        add_blob(&mut tar, &mut written, &manifest_digest, &mut &manifest[..], manifest.len() as u64)?;
        let descriptor = |name: Option<&Reference>| {
            let mut d = json!({ "mediaType": MANIFEST, "digest": manifest_digest.to_string(), "size": manifest.len() });
            if let Some(name) = name {
                // The full name for containerd and berth; the tag alone, as docker writes it.
                let mut annotations = BTreeMap::new();
                annotations.insert("io.containerd.image.name", name.to_string());
                if let Some(tag) = &name.tag {
                    annotations.insert("org.opencontainers.image.ref.name", tag.clone());
                }
                d["annotations"] = json!(annotations);
            }
            d
        };
        if image.names.is_empty() {
            index.push(descriptor(None));
        }
        index.extend(image.names.iter().map(|n| descriptor(Some(n))));
        docker_manifest.push(json!({
            "Config": blob_name(&record.id),
            "RepoTags": image.names.iter().map(Reference::familiar).collect::<Vec<_>>(),
            "Layers": record.layers.iter().map(|l| blob_name(&l.diff_id)).collect::<Vec<_>>(),
        }));
    }
    let index = json!({ "schemaVersion": 2, "mediaType": INDEX, "manifests": index });
    for (name, value) in [
        ("index.json", index),
        ("manifest.json", serde_json::Value::Array(docker_manifest)),
        ("oci-layout", json!({ "imageLayoutVersion": "1.0.0" })),
    ] {
        let bytes = serde_json::to_vec(&value).map_err(|e| ImageError::Malformed(e.to_string()))?;
        let mut header = header(tar::EntryType::Regular, bytes.len() as u64);
        tar.append_data(&mut header, name, &bytes[..]).map_err(write_err)?;
    }
    tar.into_inner().and_then(|mut out| out.flush()).map_err(write_err)
}

fn write_err(e: io::Error) -> ImageError {
    ImageError::io("the archive", e)
}

fn blob_name(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

fn header(kind: tar::EntryType, size: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(kind);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(size);
    header
}

/// Adds a blob unless it is in the archive already.
fn add_blob<W: Write>(
    tar: &mut tar::Builder<W>,
    written: &mut BTreeSet<Digest>,
    digest: &Digest,
    data: &mut dyn io::Read,
    size: u64,
) -> Result<(), ImageError> {
    if !written.insert(digest.clone()) {
        return Ok(());
    }
    let mut header = header(tar::EntryType::Regular, size);
    tar.append_data(&mut header, blob_name(digest), data).map_err(write_err)
}

/// The layer's uncompressed tar in a spooled (unlinked) file, checked against its diff id.
fn layer_tar(
    store: &Store,
    record: &ImageRecord,
    layer: &super::Layer,
    layer_writer: LayerWriter<'_>,
) -> Result<File, ImageError> {
    let spool_dir = store.staging_dir()?;
    let path = spool_dir.join("layer.tar");
    let file =
        File::options().read(true).write(true).create_new(true).open(&path).map_err(|e| ImageError::io(&path, e))?;
    // Unlinked at once: the descriptor is all that is needed, and nothing is left on a crash.
    let _ = std::fs::remove_dir_all(&spool_dir);
    let mut hashing = HashingWriter::new(io::BufWriter::new(file));
    match layer.blob.as_ref().filter(|b| store.has_blob(b)) {
        Some(blob) => {
            let p = store.blob_path(blob);
            let compressed = File::open(&p).map_err(|e| ImageError::io(&p, e))?;
            let mut plain = unpack::decompress(BufReader::new(compressed))
                .map_err(|source| ImageError::Unpack { layer: blob.to_string(), source })?;
            io::copy(&mut plain, &mut hashing).map_err(|e| ImageError::io(&p, e))?;
        }
        None => {
            let dir = store.layer_dir(&layer.diff_id);
            layer_writer(&dir, &mut hashing).map_err(|e| ImageError::io(&dir, e))?;
        }
    }
    let (digest, _, buffered) = hashing.finish();
    let mut file = buffered.into_inner().map_err(|e| ImageError::io(&path, e.into_error()))?;
    if digest != layer.diff_id {
        return Err(ImageError::DigestMismatch {
            what: format!("layer {} of image {}", layer.diff_id, record.id),
            expected: layer.diff_id.clone(),
            actual: digest,
        });
    }
    file.rewind().map_err(|e| ImageError::io(&path, e))?;
    Ok(file)
}
