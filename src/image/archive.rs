//! `berth load` and `berth import`: images from archives instead of a registry.
//!
//! `load` reads an OCI image layout (a directory, or a tar of one as `skopeo copy
//! oci-archive:` writes it) or a `docker save` archive (`manifest.json` with either the legacy
//! `<id>/layer.tar` members or the `blobs/sha256/…` members docker 25+ writes). The kind is
//! told by content: `index.json` means an OCI layout (docker 25+ archives are one too, with a
//! `manifest.json` beside it), else `manifest.json` means a legacy `docker save` archive.
//!
//! A tar is never unpacked to disk. One pass reads only its headers (seeking over the data) to
//! learn where each member's bytes are; members are then read in place, by offset, as they are
//! needed: small JSON documents into memory, layers streamed into the store. Compressed
//! archives and stdin are first spooled (decompressed) into the store's staging area, so they
//! can be read the same way. Every member name is checked (no `..`, no absolute paths), every
//! blob named by a digest is verified before it lands, and every layer is verified against the
//! diff id its config promises when it is unpacked.
//!
//! Naming: a `docker save` archive names its images in `RepoTags`. In an OCI layout, an
//! `io.containerd.image.name` annotation (docker 25+, nerdctl) is a full reference; an
//! `org.opencontainers.image.ref.name` annotation is used when it is a full reference
//! (`docker.io/library/busybox:latest`, `busybox:1`); a bare tag (`busybox`, `latest`, as
//! `skopeo copy oci-archive:x.tar:busybox` writes) names no repository, so that image is loaded
//! without a name and only its id is reported — berth does not guess a repository for it.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::config::{ConfigFile, RootFs, RunConfig};
use super::store::{ImageRecord, Layer};
use super::{Digest, ImageError, Reference, Store, unpack};

/// The largest manifest, index or config read into memory; real ones are a few kilobytes.
const JSON_LIMIT: u64 = 8 << 20;
/// How deep image indexes may nest (an index of indexes is legal, a loop of them is not).
const INDEX_DEPTH: usize = 4;
/// How many symlinks or hard links one member name may pass through.
const LINK_DEPTH: usize = 8;

/// An image `load` added, with the names the archive gave it (possibly none).
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The image.
    pub record: ImageRecord,
    /// Its names.
    pub names: Vec<Reference>,
}

/// `docker import --change`, the few that matter for a rootfs tarball.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// `CMD`.
    pub cmd: Option<Vec<String>>,
    /// `ENV`, as `KEY=value`.
    pub env: Vec<String>,
    /// `WORKDIR`.
    pub working_dir: Option<String>,
}

/// Loads every image of an OCI layout (directory or tar) or `docker save` archive at `path`
/// (`-` reads stdin; gzip and zstd archives are accepted). Either every image is committed or,
/// on error, none is; content already written stays for `prune` to collect.
pub fn load(store: &Store, path: &Path) -> Result<Vec<Loaded>, ImageError> {
    let _gc = store.gc_lock(false)?;
    let src = Source::open(store, path)?;
    let loaded = if src.has("index.json") {
        load_oci(store, &src)?
    } else if src.has("manifest.json") {
        load_docker(store, &src)?
    } else {
        return Err(ImageError::Malformed(format!(
            "{}: neither an OCI image layout (no index.json) nor a docker save archive (no manifest.json)",
            path.display()
        )));
    };
    if loaded.is_empty() {
        return Err(ImageError::Malformed(format!("{}: the archive holds no image", path.display())));
    }
    for l in &loaded {
        store.commit(&l.record, &l.names)?;
    }
    Ok(loaded)
}

/// Makes a one-layer image named `reference` from a rootfs tarball (plain, gzip or zstd;
/// `-` reads stdin), like `docker import`. The image has no creation time, so importing the
/// same tarball with the same options twice gives the same image id.
pub fn import(
    store: &Store,
    source: &Path,
    reference: &Reference,
    changes: &ImportOptions,
) -> Result<ImageRecord, ImageError> {
    let _gc = store.gc_lock(false)?;
    let (blob, _) = if source == Path::new("-") {
        store.write_blob(io::stdin().lock(), None)?
    } else {
        let f = File::open(source).map_err(|e| ImageError::io(source, e))?;
        store.write_blob(io::BufReader::with_capacity(1 << 20, f), None)?
    };
    let (diff_id, size) = store.unpack_layer(&blob, None)?;
    let config = ConfigFile {
        architecture: super::host::go_arch().to_owned(),
        os: "linux".to_owned(),
        config: RunConfig {
            cmd: changes.cmd.clone(),
            env: (!changes.env.is_empty()).then(|| changes.env.clone()),
            working_dir: changes.working_dir.clone(),
            ..RunConfig::default()
        },
        rootfs: RootFs { kind: "layers".to_owned(), diff_ids: vec![diff_id.clone()] },
        history: vec![serde_json::json!({ "created_by": "berth import" })],
        ..ConfigFile::default()
    };
    let bytes = serde_json::to_vec(&config).map_err(|e| ImageError::Malformed(e.to_string()))?;
    let id = Digest::of(&bytes);
    store_json(store, &bytes, &id)?;
    let media_type = media_type_of(store, &blob)?;
    let layer = Layer { diff_id, blob: Some(blob), media_type, size };
    let record = ImageRecord { id, manifest: None, layers: vec![layer], config, host_binds: Vec::new() };
    store.commit(&record, std::slice::from_ref(reference))?;
    Ok(record)
}

// ---------------------------------------------------------------------------------------------
// OCI image layouts

#[derive(Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: Digest,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
}

#[derive(Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct Manifest {
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

fn load_oci(store: &Store, src: &Source) -> Result<Vec<Loaded>, ImageError> {
    if src.has("oci-layout") {
        let layout: serde_json::Value = parse_json("oci-layout", &src.read_small("oci-layout")?)?;
        let version = layout.get("imageLayoutVersion").and_then(|v| v.as_str()).unwrap_or("");
        if !version.starts_with("1.") {
            return Err(ImageError::Malformed(format!("oci-layout: unsupported imageLayoutVersion {version:?}")));
        }
    }
    let index: Index = parse_json("index.json", &src.read_small("index.json")?)?;
    // Several index entries may name one manifest (two tags): one image, all the names.
    let mut images: Vec<(Digest, Vec<u8>, Vec<Reference>)> = Vec::new();
    for desc in &index.manifests {
        let names = oci_names(&desc.annotations)?;
        let (digest, bytes) = select_manifest(src, desc, 0)?;
        match images.iter_mut().find(|(d, _, _)| *d == digest) {
            Some((_, _, all)) => all.extend(names),
            None => images.push((digest, bytes, names)),
        }
    }
    let mut loaded = Vec::new();
    for (digest, bytes, mut names) in images {
        names.sort();
        names.dedup();
        let record = oci_image(store, src, digest, &bytes)?;
        loaded.push(Loaded { record, names });
    }
    Ok(loaded)
}

/// The names an index entry gives its image; see the module documentation.
fn oci_names(annotations: &BTreeMap<String, String>) -> Result<Vec<Reference>, ImageError> {
    if let Some(name) = annotations.get("io.containerd.image.name") {
        let r = name
            .parse()
            .map_err(|e| ImageError::Malformed(format!("index.json: io.containerd.image.name {name:?}: {e}")))?;
        return Ok(vec![r]);
    }
    Ok(annotations
        .get("org.opencontainers.image.ref.name")
        .filter(|n| n.contains('/') || n.contains(':'))
        .and_then(|n| n.parse().ok())
        .into_iter()
        .collect())
}

/// Follows an index entry to an image manifest: nested indexes (multi-platform images) are
/// narrowed to this host's platform. Returns the manifest's digest and verified bytes.
fn select_manifest(src: &Source, desc: &Descriptor, depth: usize) -> Result<(Digest, Vec<u8>), ImageError> {
    let bytes = read_verified(src, &desc.digest)?;
    let name = blob_name(&desc.digest);
    let value: serde_json::Value = parse_json(&name, &bytes)?;
    if value.get("manifests").is_none() {
        return Ok((desc.digest.clone(), bytes));
    }
    if depth >= INDEX_DEPTH {
        return Err(ImageError::Malformed(format!("{name}: image indexes nest deeper than {INDEX_DEPTH}")));
    }
    let index: Index = parse_json(&name, &bytes)?;
    let arch = super::host::go_arch();
    let matches = |d: &&Descriptor| d.platform.as_ref().is_some_and(|p| p.os == "linux" && p.architecture == arch);
    let chosen = match index.manifests.iter().find(matches) {
        Some(d) => d,
        None => match index.manifests.as_slice() {
            [only] if only.platform.is_none() => only,
            _ => return Err(ImageError::Malformed(format!("{name}: the image index has no image for linux/{arch}"))),
        },
    };
    select_manifest(src, chosen, depth + 1)
}

fn oci_image(store: &Store, src: &Source, manifest: Digest, bytes: &[u8]) -> Result<ImageRecord, ImageError> {
    let name = blob_name(&manifest);
    let m: Manifest = parse_json(&name, bytes)?;
    let config_bytes = read_verified(src, &m.config.digest)?;
    let config = parse_config(&blob_name(&m.config.digest), &config_bytes)?;
    if config.rootfs.diff_ids.len() != m.layers.len() {
        return Err(ImageError::Malformed(format!(
            "{name}: {} layers, but its config lists {} diff ids",
            m.layers.len(),
            config.rootfs.diff_ids.len()
        )));
    }
    let mut layers = Vec::with_capacity(m.layers.len());
    for (desc, diff_id) in m.layers.iter().zip(&config.rootfs.diff_ids) {
        if !store.has_blob(&desc.digest) {
            let (_, size) = store.write_blob(src.reader(&blob_name(&desc.digest))?, Some(&desc.digest))?;
            if desc.size != 0 && size != desc.size {
                return Err(ImageError::Malformed(format!(
                    "{name}: layer {} has {size} bytes, the manifest says {}",
                    desc.digest, desc.size
                )));
            }
        }
        let (diff_id, size) = store.unpack_layer(&desc.digest, Some(diff_id))?;
        layers.push(Layer { diff_id, blob: Some(desc.digest.clone()), media_type: desc.media_type.clone(), size });
    }
    store_json(store, &config_bytes, &m.config.digest)?;
    store_json(store, bytes, &manifest)?;
    Ok(ImageRecord { id: m.config.digest, manifest: Some(manifest), layers, config, host_binds: Vec::new() })
}

// ---------------------------------------------------------------------------------------------
// docker save archives

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

fn load_docker(store: &Store, src: &Source) -> Result<Vec<Loaded>, ImageError> {
    let entries: Vec<DockerEntry> = parse_json("manifest.json", &src.read_small("manifest.json")?)?;
    let mut loaded = Vec::new();
    for entry in entries {
        let config_name = member_name(Path::new(&entry.config))
            .ok_or_else(|| ImageError::Malformed(format!("manifest.json: bad config path {:?}", entry.config)))?;
        let config_bytes = src.read_small(&config_name)?;
        let config = parse_config(&config_name, &config_bytes)?;
        let id = Digest::of(&config_bytes);
        if config.rootfs.diff_ids.len() != entry.layers.len() {
            return Err(ImageError::Malformed(format!(
                "manifest.json: {} lists {} layers, its config {} diff ids",
                entry.config,
                entry.layers.len(),
                config.rootfs.diff_ids.len()
            )));
        }
        let mut layers = Vec::with_capacity(entry.layers.len());
        for (path, diff_id) in entry.layers.iter().zip(&config.rootfs.diff_ids) {
            let name = member_name(Path::new(path))
                .ok_or_else(|| ImageError::Malformed(format!("manifest.json: bad layer path {path:?}")))?;
            let blob = docker_layer_blob(store, src, &name, diff_id)?;
            let (diff_id, size) = store.unpack_layer(&blob, Some(diff_id))?;
            let media_type = media_type_of(store, &blob)?;
            layers.push(Layer { diff_id, blob: Some(blob), media_type, size });
        }
        let mut names = Vec::new();
        for tag in entry.repo_tags.unwrap_or_default() {
            let r = tag.parse().map_err(|e| ImageError::Malformed(format!("manifest.json: RepoTags {tag:?}: {e}")))?;
            names.push(r);
        }
        store_json(store, &config_bytes, &id)?;
        let record = ImageRecord { id, manifest: None, layers, config, host_binds: Vec::new() };
        loaded.push(Loaded { record, names });
    }
    Ok(loaded)
}

/// Stores one layer member of a docker archive unless the store has it already. Members under
/// `blobs/sha256/` are verified against their name as they are written; legacy `layer.tar`
/// members are verified against the config's diff id when they are unpacked.
fn docker_layer_blob(store: &Store, src: &Source, name: &str, diff_id: &Digest) -> Result<Digest, ImageError> {
    let named = name.strip_prefix("blobs/sha256/").and_then(|h| format!("sha256:{h}").parse::<Digest>().ok());
    if let Some(d) = named.as_ref().filter(|d| store.has_blob(d)) {
        return Ok(d.clone());
    }
    // docker save writes layers uncompressed, so the blob digest is the diff id.
    if named.is_none() && store.has_blob(diff_id) && store.has_layer(diff_id) {
        return Ok(diff_id.clone());
    }
    Ok(store.write_blob(src.reader(name)?, named.as_ref())?.0)
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn blob_name(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

fn parse_json<T: DeserializeOwned>(name: &str, bytes: &[u8]) -> Result<T, ImageError> {
    serde_json::from_slice(bytes).map_err(|e| ImageError::Malformed(format!("{name}: {e}")))
}

fn parse_config(name: &str, bytes: &[u8]) -> Result<ConfigFile, ImageError> {
    ConfigFile::parse(bytes).map_err(|e| ImageError::Malformed(format!("{name}: {e}")))
}

/// A small blob of the archive, checked against its digest.
fn read_verified(src: &Source, digest: &Digest) -> Result<Vec<u8>, ImageError> {
    let name = blob_name(digest);
    let bytes = src.read_small(&name)?;
    let actual = Digest::of(&bytes);
    if actual != *digest {
        return Err(ImageError::DigestMismatch { what: name, expected: digest.clone(), actual });
    }
    Ok(bytes)
}

/// Adds a manifest or config to the store (it is the image's id, and `save`/`push` need it).
fn store_json(store: &Store, bytes: &[u8], digest: &Digest) -> Result<(), ImageError> {
    if !store.has_blob(digest) {
        store.write_blob(bytes, Some(digest))?;
    }
    Ok(())
}

/// The OCI media type of a stored layer blob, told from its first bytes.
fn media_type_of(store: &Store, blob: &Digest) -> Result<String, ImageError> {
    let path = store.blob_path(blob);
    let mut magic = [0u8; 4];
    let mut f = File::open(&path).map_err(|e| ImageError::io(&path, e))?;
    let n = f.read(&mut magic).map_err(|e| ImageError::io(&path, e))?;
    let kind = match &magic[..n] {
        [0x1f, 0x8b, ..] => "application/vnd.oci.image.layer.v1.tar+gzip",
        [0x28, 0xb5, 0x2f, 0xfd] => "application/vnd.oci.image.layer.v1.tar+zstd",
        _ => "application/vnd.oci.image.layer.v1.tar",
    };
    Ok(kind.to_owned())
}

/// A relative member name in canonical form (`a/b`), or `None` when it is absolute or climbs
/// out with `..`. `./` prefixes and `.` components are dropped; the archive root is `""`.
fn member_name(path: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_str()?),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.join("/"))
}

/// Where a symlink member at `name` pointing to `target` leads, as a member name; `None` when
/// the target is absolute or leaves the archive.
fn link_target(name: &str, target: &Path) -> Option<String> {
    let mut parts: Vec<&str> = name.split('/').collect();
    parts.pop();
    for c in target.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_str()?),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.join("/"))
}

// ---------------------------------------------------------------------------------------------
// Reading the archive

/// A tar member: where its data is, or which member it links to.
enum Member {
    Data { offset: u64, size: u64 },
    Link(String),
}

/// The archive being loaded: a directory, or a tar file read in place by offset.
enum Source {
    Dir(PathBuf),
    Tar { file: File, path: PathBuf, members: HashMap<String, Member>, _spool: Option<Spool> },
}

/// A decompressed copy of the archive in staging, removed when the load ends.
struct Spool(PathBuf);

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

impl Source {
    fn open(store: &Store, path: &Path) -> Result<Source, ImageError> {
        if path == Path::new("-") {
            return Source::spool(store, path, Box::new(io::stdin()));
        }
        let meta = fs::metadata(path).map_err(|e| ImageError::io(path, e))?;
        if meta.is_dir() {
            return Ok(Source::Dir(path.to_owned()));
        }
        let file = File::open(path).map_err(|e| ImageError::io(path, e))?;
        let mut magic = [0u8; 4];
        let n = file.read_at(&mut magic, 0).map_err(|e| ImageError::io(path, e))?;
        if matches!(&magic[..n], [0x1f, 0x8b, ..] | [0x28, 0xb5, 0x2f, 0xfd]) {
            return Source::spool(store, path, Box::new(file));
        }
        Source::tar(file, path.to_owned(), None)
    }

    /// Copies a stream (decompressing it) into staging, so it can be read by offset.
    fn spool(store: &Store, path: &Path, input: Box<dyn Read + Send>) -> Result<Source, ImageError> {
        let spool = Spool(store.staging_dir()?);
        let copy = spool.0.join("archive.tar");
        let mut plain =
            unpack::decompress(input).map_err(|e| ImageError::Malformed(format!("{}: {e}", path.display())))?;
        let mut out = File::create(&copy).map_err(|e| ImageError::io(&copy, e))?;
        io::copy(&mut plain, &mut out).map_err(|e| ImageError::io(path, e))?;
        let file = File::open(&copy).map_err(|e| ImageError::io(&copy, e))?;
        Source::tar(file, path.to_owned(), Some(spool))
    }

    /// Reads the tar's headers only, seeking over member data.
    fn tar(file: File, path: PathBuf, spool: Option<Spool>) -> Result<Source, ImageError> {
        let bad = |e: io::Error| ImageError::Malformed(format!("{}: not a readable tar archive: {e}", path.display()));
        let mut members = HashMap::new();
        let mut archive = tar::Archive::new(&file);
        let entries = archive.entries_with_seek().map_err(bad)?;
        for entry in entries {
            let entry = entry.map_err(bad)?;
            let raw = entry.path().map_err(bad)?.into_owned();
            let name = member_name(&raw).ok_or_else(|| {
                ImageError::Malformed(format!(
                    "{}: member {} is absolute, leaves the archive with .. or is not UTF-8",
                    path.display(),
                    raw.display()
                ))
            })?;
            let link = || -> Result<PathBuf, ImageError> {
                Ok(entry.link_name().map_err(bad)?.map(|l| l.into_owned()).unwrap_or_default())
            };
            let member = match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    Member::Data { offset: entry.raw_file_position(), size: entry.size() }
                }
                tar::EntryType::Symlink => Member::Link(link_target(&name, &link()?).ok_or_else(|| {
                    ImageError::Malformed(format!("{}: symlink {name} points outside the archive", path.display()))
                })?),
                tar::EntryType::Link => Member::Link(member_name(&link()?).ok_or_else(|| {
                    ImageError::Malformed(format!("{}: hard link {name} points outside the archive", path.display()))
                })?),
                tar::EntryType::GNUSparse => {
                    return Err(ImageError::Malformed(format!("{}: sparse member {name}", path.display())));
                }
                // Directories, devices, fifos: nothing an image archive reads.
                _ => continue,
            };
            members.insert(name, member);
        }
        Ok(Source::Tar { file, path, members, _spool: spool })
    }

    /// The data of a member, following links within the archive.
    fn locate(&self, name: &str) -> Option<(u64, u64)> {
        let Source::Tar { members, .. } = self else { return None };
        let mut name = name;
        for _ in 0..=LINK_DEPTH {
            match members.get(name)? {
                Member::Data { offset, size } => return Some((*offset, *size)),
                Member::Link(target) => name = target,
            }
        }
        None
    }

    fn has(&self, name: &str) -> bool {
        match self {
            Source::Dir(dir) => dir.join(name).is_file(),
            Source::Tar { .. } => self.locate(name).is_some(),
        }
    }

    fn missing(&self, name: &str) -> ImageError {
        let path = match self {
            Source::Dir(p) | Source::Tar { path: p, .. } => p,
        };
        ImageError::Malformed(format!("{}: {name} is missing", path.display()))
    }

    /// A member's content as a stream. `name` is canonical (see [`member_name`]).
    fn reader(&self, name: &str) -> Result<Box<dyn Read + '_>, ImageError> {
        match self {
            Source::Dir(dir) => {
                let p = dir.join(name);
                match File::open(&p) {
                    Ok(f) => Ok(Box::new(io::BufReader::with_capacity(1 << 20, f))),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Err(self.missing(name)),
                    Err(e) => Err(ImageError::io(p, e)),
                }
            }
            Source::Tar { file, .. } => {
                let (offset, size) = self.locate(name).ok_or_else(|| self.missing(name))?;
                let at = ReadAt { file, pos: offset, end: offset.saturating_add(size) };
                Ok(Box::new(io::BufReader::with_capacity(1 << 20, at)))
            }
        }
    }

    /// A small member (a JSON document) read whole; larger than [`JSON_LIMIT`] is an error.
    fn read_small(&self, name: &str) -> Result<Vec<u8>, ImageError> {
        let mut bytes = Vec::new();
        self.reader(name)?.take(JSON_LIMIT + 1).read_to_end(&mut bytes).map_err(|e| ImageError::io(name, e))?;
        if bytes.len() as u64 > JSON_LIMIT {
            return Err(ImageError::Malformed(format!("{name}: larger than {JSON_LIMIT} bytes")));
        }
        Ok(bytes)
    }
}

/// Reads a range of a file by offset, so several members can be read from one open file.
struct ReadAt<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = usize::try_from(self.end - self.pos).unwrap_or(usize::MAX);
        let want = buf.len().min(left);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the archive ends inside a member"));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_names_are_canonical_and_stay_inside() {
        assert_eq!(member_name(Path::new("./blobs/sha256/ab")).as_deref(), Some("blobs/sha256/ab"));
        assert_eq!(member_name(Path::new("index.json")).as_deref(), Some("index.json"));
        assert_eq!(member_name(Path::new("./")).as_deref(), Some(""));
        assert_eq!(member_name(Path::new("../evil")), None);
        assert_eq!(member_name(Path::new("a/../../evil")), None);
        assert_eq!(member_name(Path::new("/etc/passwd")), None);
    }

    #[test]
    fn symlink_targets_resolve_within_the_archive() {
        assert_eq!(link_target("abc/layer.tar", Path::new("../123.tar")).as_deref(), Some("123.tar"));
        assert_eq!(link_target("abc/layer.tar", Path::new("other.tar")).as_deref(), Some("abc/other.tar"));
        assert_eq!(link_target("abc/layer.tar", Path::new("../../x")), None);
        assert_eq!(link_target("layer.tar", Path::new("/etc/shadow")), None);
    }

    #[test]
    fn bare_tags_name_nothing_and_full_references_are_kept() {
        let ann = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
        let ref_name = "org.opencontainers.image.ref.name";
        assert!(oci_names(&ann(ref_name, "busybox")).unwrap().is_empty());
        assert!(oci_names(&ann(ref_name, "latest")).unwrap().is_empty());
        assert_eq!(oci_names(&ann(ref_name, "busybox:1")).unwrap()[0].to_string(), "docker.io/library/busybox:1");
        let containerd = ann("io.containerd.image.name", "docker.io/library/redis:7");
        assert_eq!(oci_names(&containerd).unwrap()[0].familiar(), "redis:7");
        assert!(oci_names(&ann("io.containerd.image.name", "Bad")).is_err());
    }
}
