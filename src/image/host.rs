//! The host image, `berth.invalid/host:latest`: a read-only view of this machine's own
//! userland, so containers run without downloading anything (the quickstart needs no registry)
//! and local tools already installed can run isolated.
//!
//! The name cannot collide with a registry image: `.invalid` is a top-level domain reserved by
//! RFC 2606 that never resolves, so no registry can be reached as `berth.invalid` and no image
//! pulled from anywhere can bear the name.
//!
//! The image is one small synthetic layer plus bind mounts. The layer holds the top-level
//! directories a root filesystem needs (`/bin`, `/lib`, … as the symlinks a merged-/usr host
//! has), empty mount points (`/proc`, `/tmp`, …) and copies of a few `/etc` files programs
//! read at start-up (the dynamic linker cache, users and groups, name service switch, CA
//! certificates, time zone, `/etc/alternatives`). `/etc/shadow` and other secrets are never
//! copied. The runtime bind-mounts [`ImageRecord::host_binds`] read-only over the container root:
//! `/usr`, and on a host without merged /usr also the real `/bin`, `/sbin` and `/lib*`.
//!
//! The layer's diff id is a digest over a description of its content (paths, modes, owners,
//! link targets, file hashes), so it changes when a copied host file changes; the name is then
//! pointed at a new image and the old one is left for `prune`.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::config::{ConfigFile, RootFs, RunConfig};
use super::digest::{HashingReader, HashingWriter};
use super::store::{ImageRecord, Layer};
use super::{Digest, ImageError, Reference, Store};

/// The host image's name.
pub const HOST_IMAGE: &str = "berth.invalid/host:latest";

/// Top-level names that are symlinks into /usr on a merged-/usr host, real directories
/// (bind-mounted from the host) otherwise.
const ROOT_DIRS: [&str; 6] = ["bin", "sbin", "lib", "lib64", "lib32", "libx32"];

/// Empty directories of the layer, with their modes.
const EMPTY_DIRS: [(&str, u32); 11] = [
    ("dev", 0o755),
    ("etc", 0o755),
    ("home", 0o755),
    ("proc", 0o555),
    ("root", 0o700),
    ("run", 0o755),
    ("sys", 0o555),
    ("tmp", 0o1777),
    ("usr", 0o755),
    ("var", 0o755),
    ("var/tmp", 0o1777),
];

/// Host files copied (a symlink is copied as a symlink; it resolves inside the container,
/// since its target is under /usr or in the layer).
const HOST_FILES: [&str; 8] = [
    "etc/ld.so.cache",
    "etc/ld.so.conf",
    "etc/nsswitch.conf",
    "etc/passwd",
    "etc/group",
    "etc/localtime",
    "etc/os-release",
    "etc/ssl/openssl.cnf",
];

/// Host directories copied whole: `/usr/bin/*` links into /etc/alternatives must resolve, and
/// /etc/ssl/certs is where TLS libraries look for CA certificates.
const HOST_TREES: [&str; 3] = ["etc/ld.so.conf.d", "etc/ssl/certs", "etc/alternatives"];

/// Bumped when the layer's layout changes, so existing host layers are replaced.
const LAYOUT_VERSION: &str = "berth host layer 1";

/// The Go-style name of this machine's architecture, as image configs and indexes spell it.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// Makes (or finds) the host image and points [`HOST_IMAGE`] at it. Cheap when the host's files
/// are unchanged: it hashes a few hundred kilobytes and writes nothing.
pub fn ensure_host_image(store: &Store) -> Result<ImageRecord, ImageError> {
    let _gc = store.gc_lock(false)?;
    let (plan, binds) = plan(Path::new("/"))?;
    let hashes = plan.iter().map(hash_source).collect::<Result<Vec<_>, _>>()?;
    let diff_id = fingerprint(&plan, &hashes);
    let name: Reference = HOST_IMAGE.parse()?;
    if store.has_layer(&diff_id) {
        let (record, config) = host_record(diff_id.clone(), store.layer_size(&diff_id), binds)?;
        if store.resolve(HOST_IMAGE)?.as_ref() != Some(&record) {
            store_config(store, &record, &config)?;
            store.commit(&record, std::slice::from_ref(&name))?;
        }
        return Ok(record);
    }
    let staging = store.staging_dir()?;
    let built = build(&plan, &staging);
    let (hashes, size) = match built {
        Ok(v) => v,
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    // What was copied decides the diff id: a file may have changed since it was hashed above.
    let diff_id = fingerprint(&plan, &hashes);
    store.adopt_layer_dir(&staging, &diff_id, size)?;
    let (record, config) = host_record(diff_id, size, binds)?;
    store_config(store, &record, &config)?;
    store.commit(&record, std::slice::from_ref(&name))?;
    Ok(record)
}

/// One entry of the layer, by its path relative to the layer root.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Dir { path: String, mode: u32 },
    Link { path: String, target: PathBuf },
    File { path: String, src: PathBuf, mode: u32, uid: u32, gid: u32 },
}

impl Item {
    fn path(&self) -> &str {
        match self {
            Item::Dir { path, .. } | Item::Link { path, .. } | Item::File { path, .. } => path,
        }
    }
}

/// What the layer holds for a host rooted at `host`, sorted so parents come first, and the
/// host directories to bind-mount.
fn plan(host: &Path) -> Result<(Vec<Item>, Vec<PathBuf>), ImageError> {
    let mut items: BTreeMap<String, Item> = BTreeMap::new();
    let mut binds = vec![PathBuf::from("/usr")];
    for name in ROOT_DIRS {
        let src = host.join(name);
        let Ok(meta) = fs::symlink_metadata(&src) else { continue };
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&src).map_err(|e| ImageError::io(&src, e))?;
            items.insert(name.to_owned(), Item::Link { path: name.to_owned(), target });
        } else if meta.is_dir() {
            items.insert(name.to_owned(), Item::Dir { path: name.to_owned(), mode: 0o755 });
            binds.push(Path::new("/").join(name));
        }
    }
    for (path, mode) in EMPTY_DIRS {
        items.insert(path.to_owned(), Item::Dir { path: path.to_owned(), mode });
    }
    for path in HOST_FILES {
        add_host_entry(host, path, &mut items, 0)?;
    }
    for path in HOST_TREES {
        add_host_entry(host, path, &mut items, 0)?;
    }
    Ok((items.into_values().collect(), binds))
}

/// Adds one host file, symlink or directory (recursively), and any missing parents.
fn add_host_entry(host: &Path, path: &str, items: &mut BTreeMap<String, Item>, depth: usize) -> Result<(), ImageError> {
    let src = host.join(path);
    let Ok(meta) = fs::symlink_metadata(&src) else { return Ok(()) };
    for parent in Path::new(path).ancestors().skip(1).filter(|p| !p.as_os_str().is_empty()) {
        let p = parent.to_string_lossy().into_owned();
        items.entry(p.clone()).or_insert(Item::Dir { path: p, mode: 0o755 });
    }
    let mode = meta.permissions().mode() & 0o7777;
    let item = if meta.file_type().is_symlink() {
        let target = fs::read_link(&src).map_err(|e| ImageError::io(&src, e))?;
        Item::Link { path: path.to_owned(), target }
    } else if meta.is_file() {
        Item::File { path: path.to_owned(), src: src.clone(), mode, uid: meta.uid(), gid: meta.gid() }
    } else if meta.is_dir() && depth < 4 {
        items.insert(path.to_owned(), Item::Dir { path: path.to_owned(), mode });
        let mut names: Vec<String> = fs::read_dir(&src)
            .map_err(|e| ImageError::io(&src, e))?
            .filter_map(|e| e.ok().and_then(|e| e.file_name().into_string().ok()))
            .collect();
        names.sort();
        for name in names {
            add_host_entry(host, &format!("{path}/{name}"), items, depth + 1)?;
        }
        return Ok(());
    } else {
        return Ok(()); // devices, sockets, fifos: nothing a root filesystem copy needs
    };
    items.insert(path.to_owned(), item);
    Ok(())
}

/// The digest of a host file as it is now (`None` for directories and links).
fn hash_source(item: &Item) -> Result<Option<Digest>, ImageError> {
    let Item::File { src, .. } = item else { return Ok(None) };
    let f = File::open(src).map_err(|e| ImageError::io(src, e))?;
    let (digest, _) = HashingReader::new(f).finish().map_err(|e| ImageError::io(src, e))?;
    Ok(Some(digest))
}

/// The layer's diff id: a digest over every entry's path, kind, mode, owner, link target and
/// content digest, NUL-separated so no path can forge another entry.
fn fingerprint(plan: &[Item], hashes: &[Option<Digest>]) -> Digest {
    let mut text = format!("{LAYOUT_VERSION}\0");
    for (item, hash) in plan.iter().zip(hashes) {
        match item {
            Item::Dir { path, mode } => text.push_str(&format!("d\0{path}\0{mode:o}\0")),
            Item::Link { path, target } => text.push_str(&format!("l\0{path}\0{}\0", target.display())),
            Item::File { path, mode, uid, gid, .. } => {
                let hash = hash.as_ref().map(ToString::to_string).unwrap_or_default();
                text.push_str(&format!("f\0{path}\0{mode:o}\0{uid}:{gid}\0{hash}\0"));
            }
        }
    }
    Digest::of(text.as_bytes())
}

/// Creates the layer in `root`; returns the digest of every copied file (in plan order) and the
/// bytes copied.
fn build(plan: &[Item], root: &Path) -> Result<(Vec<Option<Digest>>, u64), ImageError> {
    let io_at = |p: &Path| {
        let p = p.to_owned();
        move |e| ImageError::io(p, e)
    };
    fs::set_permissions(root, fs::Permissions::from_mode(0o755)).map_err(io_at(root))?;
    let mut hashes = Vec::with_capacity(plan.len());
    let mut total = 0;
    for item in plan {
        let dst = root.join(item.path());
        match item {
            Item::Dir { mode, .. } => {
                fs::create_dir(&dst).map_err(io_at(&dst))?;
                // Set after creation: the umask must not narrow 1777 on /tmp.
                fs::set_permissions(&dst, fs::Permissions::from_mode(*mode)).map_err(io_at(&dst))?;
                hashes.push(None);
            }
            Item::Link { target, .. } => {
                std::os::unix::fs::symlink(target, &dst).map_err(io_at(&dst))?;
                hashes.push(None);
            }
            Item::File { src, mode, uid, gid, .. } => {
                let mut input = File::open(src).map_err(io_at(src))?;
                let mut out = HashingWriter::new(File::create(&dst).map_err(io_at(&dst))?);
                total += io::copy(&mut input, &mut out).map_err(io_at(&dst))?;
                let (digest, _, file) = out.finish();
                file.set_permissions(fs::Permissions::from_mode(*mode)).map_err(io_at(&dst))?;
                std::os::unix::fs::fchown(&file, Some(*uid), Some(*gid)).map_err(io_at(&dst))?;
                hashes.push(Some(digest));
            }
        }
    }
    Ok((hashes, total))
}

/// The host image's record for a layer, and its config bytes.
fn host_record(diff_id: Digest, size: u64, binds: Vec<PathBuf>) -> Result<(ImageRecord, Vec<u8>), ImageError> {
    let config = ConfigFile {
        architecture: go_arch().to_owned(),
        os: "linux".to_owned(),
        config: RunConfig {
            env: Some(vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned()]),
            cmd: Some(vec!["/bin/sh".to_owned()]),
            working_dir: Some("/".to_owned()),
            labels: Some(BTreeMap::from([("org.berth.image".to_owned(), "host".to_owned())])),
            ..RunConfig::default()
        },
        rootfs: RootFs { kind: "layers".to_owned(), diff_ids: vec![diff_id.clone()] },
        ..ConfigFile::default()
    };
    let bytes = serde_json::to_vec(&config).map_err(|e| ImageError::Malformed(e.to_string()))?;
    let layer = Layer { diff_id, blob: None, media_type: "application/vnd.berth.host-layer".to_owned(), size };
    let record = ImageRecord { id: Digest::of(&bytes), manifest: None, layers: vec![layer], config, host_binds: binds };
    Ok((record, bytes))
}

/// Adds the config blob (the image id names it, as for every other image).
fn store_config(store: &Store, record: &ImageRecord, config: &[u8]) -> Result<(), ImageError> {
    if !store.has_blob(&record.id) {
        store.write_blob(config, Some(&record.id))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_without_merged_usr_binds_its_real_directories() {
        let host = tempfile::Builder::new().prefix("berth-host-").tempdir().unwrap();
        fs::create_dir_all(host.path().join("lib")).unwrap();
        fs::create_dir_all(host.path().join("etc/ld.so.conf.d")).unwrap();
        std::os::unix::fs::symlink("usr/bin", host.path().join("bin")).unwrap();
        fs::write(host.path().join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        fs::write(host.path().join("etc/shadow"), "root:secret\n").unwrap();
        fs::write(host.path().join("etc/ld.so.conf.d/x.conf"), "/opt/lib\n").unwrap();
        let (plan, binds) = plan(host.path()).unwrap();
        assert_eq!(binds, [PathBuf::from("/usr"), PathBuf::from("/lib")]);
        let find = |p: &str| plan.iter().find(|i| i.path() == p).cloned();
        assert_eq!(find("bin"), Some(Item::Link { path: "bin".into(), target: "usr/bin".into() }));
        assert!(matches!(find("lib"), Some(Item::Dir { .. })));
        assert!(matches!(find("etc/passwd"), Some(Item::File { .. })));
        assert!(matches!(find("etc/ld.so.conf.d/x.conf"), Some(Item::File { .. })));
        assert_eq!(find("etc/shadow"), None);
        assert!(plan.windows(2).all(|w| w[0].path() < w[1].path()), "parents come first");

        let hashes: Vec<_> = plan.iter().map(|i| hash_source(i).unwrap()).collect();
        let before = fingerprint(&plan, &hashes);
        fs::write(host.path().join("etc/passwd"), "root:x:0:0::/root:/bin/bash\n").unwrap();
        let hashes: Vec<_> = plan.iter().map(|i| hash_source(i).unwrap()).collect();
        assert_ne!(before, fingerprint(&plan, &hashes), "a changed host file changes the diff id");
    }
}
