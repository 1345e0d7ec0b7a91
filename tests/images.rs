//! Image store integration tests: `load` of archives made by real tools (umoci, skopeo),
//! `import`, hostile archives, the host image, `rmi` and `prune`. Run as root: layers hold
//! whiteout device nodes and trusted.* xattrs. No registry and no network are needed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use berth::image::archive::{self, ImportOptions};
use berth::image::host::{self, HOST_IMAGE};
use berth::image::{Digest, ImageError, ImageRecord, Reference, Store};

/// The test images, built once per run by the fixture script into cargo's test scratch dir.
fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        assert!(nix::unistd::geteuid().is_root(), "the image tests need root (layers hold device nodes and xattrs)");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("berth-image-fixtures");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/make-images.sh");
        let out = Command::new("bash").arg(&script).arg(&dir).output().expect("run bash");
        assert!(
            out.status.success(),
            "tests/fixtures/make-images.sh failed (it needs umoci, skopeo, busybox-static, python3):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

fn fixture(name: &str) -> PathBuf {
    fixtures().join(name)
}

/// A store in its own temporary state root; the store is dropped before its directory.
struct TestStore {
    store: Store,
    dir: tempfile::TempDir,
}

fn new_store() -> TestStore {
    fixtures();
    let dir = tempfile::Builder::new().prefix("berth-store-").tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open store");
    TestStore { store, dir }
}

impl TestStore {
    fn count(&self, sub: &str, dirs: bool) -> usize {
        let p = self.store.dir().join(sub);
        fs::read_dir(&p).unwrap().flatten().filter(|e| e.file_type().unwrap().is_dir() == dirs).count()
    }
    fn blobs(&self) -> usize {
        self.count("blobs/sha256", false)
    }
    fn layers(&self) -> usize {
        self.count("layers/sha256", true)
    }
    fn layer_dir(&self, record: &ImageRecord, i: usize) -> PathBuf {
        self.store.layer_dir(&record.layers[i].diff_id)
    }
    fn load(&self, name: &str) -> Vec<archive::Loaded> {
        archive::load(&self.store, &fixture(name)).unwrap_or_else(|e| panic!("load {name}: {e}"))
    }
}

fn one(mut loaded: Vec<archive::Loaded>) -> archive::Loaded {
    assert_eq!(loaded.len(), 1, "one image expected");
    loaded.remove(0)
}

fn strings(v: &[&str]) -> Option<Vec<String>> {
    Some(v.iter().map(|s| (*s).to_owned()).collect())
}

fn assert_busybox_layer(dir: &Path) {
    let meta = fs::symlink_metadata(dir.join("bin/busybox")).expect("bin/busybox in the layer");
    assert!(meta.is_file(), "bin/busybox is a regular file");
    assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
    assert!(dir.join("etc/motd").is_file(), "etc/motd in the layer");
}

#[test]
fn busybox_loads_from_a_layout_an_oci_archive_and_a_docker_archive() {
    let t = new_store();
    // The layout holds both test images; neither has a full reference, so both load unnamed.
    let layout = t.load("oci");
    assert_eq!(layout.len(), 2);
    assert!(layout.iter().all(|l| l.names.is_empty()), "bare ref.name tags name nothing");
    let from_layout = layout.iter().find(|l| l.record.layers.len() == 1).expect("the one-layer image").clone();
    let from_oci = one(t.load("busybox.oci.tar"));
    let from_docker = one(t.load("busybox.docker.tar"));
    assert!(from_oci.names.is_empty());
    assert_eq!(from_docker.names, ["docker.io/berth-test/busybox:latest".parse::<Reference>().unwrap()]);
    for l in [&from_layout, &from_oci, &from_docker] {
        let c = &l.record.config.config;
        assert_eq!(c.cmd, strings(&["sh"]));
        assert_eq!(c.env, strings(&["PATH=/bin"]));
        assert_eq!(l.record.layers.len(), 1);
        assert_busybox_layer(&t.layer_dir(&l.record, 0));
        assert_eq!(l.record.id, from_layout.record.id, "skopeo copies the config unchanged");
    }
    assert!(from_layout.record.manifest.is_some() && from_docker.record.manifest.is_none());

    let (blobs, layers) = (t.blobs(), t.layers());
    assert_eq!(layers, 2, "busybox's layer once, the upper layer of two-layer once");
    for name in ["oci", "busybox.oci.tar", "busybox.docker.tar"] {
        t.load(name);
    }
    assert_eq!((t.blobs(), t.layers()), (blobs, layers), "loading again writes nothing new");
    assert_eq!(t.store.resolve("berth-test/busybox").unwrap().unwrap().id, from_docker.record.id);
}

/// Mounts the layers read-only as one overlay in a private mount namespace (so nothing leaks,
/// whatever happens) and runs `script` there with `$M` set to the merged view.
fn in_merged_view(t: &TestStore, record: &ImageRecord, script: &str) -> String {
    let merged = t.dir.path().join("berth-merged");
    // overlayfs needs two lower dirs when it has no upper dir: an empty one goes at the bottom.
    let empty = t.dir.path().join("berth-empty");
    fs::create_dir_all(&merged).unwrap();
    fs::create_dir_all(&empty).unwrap();
    let mut lower: Vec<String> =
        (0..record.layers.len()).rev().map(|i| t.layer_dir(record, i).display().to_string()).collect();
    lower.push(empty.display().to_string());
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-euc"])
        .arg(format!("mount -t overlay berth-test -o ro,lowerdir={} \"$M\"\n{script}", lower.join(":")))
        .env("M", &merged)
        .output()
        .expect("run unshare (util-linux)");
    assert!(out.status.success(), "merged view: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn xattr(path: &Path, name: &str) -> String {
    let out = Command::new("python3")
        .args([
            "-c",
            "import os, sys; sys.stdout.buffer.write(os.getxattr(sys.argv[1], sys.argv[2], follow_symlinks=False))",
        ])
        .arg(path)
        .arg(name)
        .output()
        .expect("run python3");
    assert!(out.status.success(), "getxattr {} {name}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn two_layer_images_delete_a_file_and_make_a_directory_opaque() {
    let t = new_store();
    let base = one(t.load("busybox.oci.tar"));
    for name in ["two-layer.oci.tar", "two-layer.docker.tar"] {
        let img = one(t.load(name)).record;
        assert_eq!(img.layers.len(), 2, "{name}");
        assert_eq!(img.layers[0].diff_id, base.record.layers[0].diff_id, "{name} shares busybox's layer");
        assert_eq!(img.config.config.cmd, strings(&["sh"]));
        let upper = t.layer_dir(&img, 1);
        let motd = fs::symlink_metadata(upper.join("etc/motd")).expect("whiteout");
        assert!(motd.file_type().is_char_device() && motd.rdev() == 0, "etc/motd is a 0/0 char device");
        assert_eq!(xattr(&upper.join("data"), "trusted.overlay.opaque"), "y");

        let ls = in_merged_view(&t, &img, "test ! -e \"$M/etc/motd\"; test -f \"$M/bin/busybox\"; ls -A \"$M/data\"");
        assert_eq!(ls, "c\n", "{name}: the opaque /data holds only c");
    }
    assert_eq!(t.layers(), 2, "the shared base layer is stored once");
}

#[test]
fn import_makes_a_one_layer_image_from_plain_and_gzip_tarballs() {
    let t = new_store();
    let gz = t.dir.path().join("berth-rootfs.tar.gz");
    let out = Command::new("gzip").arg("-c").arg(fixture("rootfs.tar")).output().expect("run gzip");
    assert!(out.status.success());
    fs::write(&gz, out.stdout).unwrap();
    let opts = ImportOptions {
        cmd: strings(&["sh", "-c", "echo hi"]),
        env: vec!["PATH=/bin".into()],
        working_dir: Some("/data".into()),
    };
    let name: Reference = "berth-test/imported:1".parse().unwrap();
    let plain = archive::import(&t.store, &fixture("rootfs.tar"), &name, &opts).unwrap();
    let zipped = archive::import(&t.store, &gz, &name, &opts).unwrap();
    for r in [&plain, &zipped] {
        assert_eq!(r.layers.len(), 1);
        assert_busybox_layer(&t.layer_dir(r, 0));
        assert_eq!(r.config.config.cmd, opts.cmd);
        assert_eq!(r.config.config.env, strings(&["PATH=/bin"]));
        assert_eq!(r.config.config.working_dir.as_deref(), Some("/data"));
    }
    assert!(zipped.layers[0].media_type.ends_with("+gzip"));
    assert_eq!(plain.layers[0].diff_id, zipped.layers[0].diff_id, "same tar inside");
    assert_eq!(plain.id, zipped.id, "an import is reproducible");
    assert_eq!(t.layers(), 1);
    assert_eq!(t.store.resolve("berth-test/imported:1").unwrap().unwrap().id, plain.id);
}

#[test]
fn compressed_archives_load_too() {
    let t = new_store();
    let mut ids = Vec::new();
    for (tool, ext) in [("gzip", "gz"), ("zstd", "zst")] {
        let out = Command::new(tool).args(["-c", "-q"]).arg(fixture("busybox.oci.tar")).output();
        let out = out.unwrap_or_else(|e| panic!("run {tool} (apt-get install {tool}): {e}"));
        assert!(out.status.success(), "{tool}: {}", String::from_utf8_lossy(&out.stderr));
        let path = t.dir.path().join(format!("berth-busybox.oci.tar.{ext}"));
        fs::write(&path, out.stdout).unwrap();
        let img = one(archive::load(&t.store, &path).unwrap()).record;
        assert_busybox_layer(&t.layer_dir(&img, 0));
        ids.push(img.id);
    }
    assert_eq!(ids[0], ids[1]);
    assert_eq!(t.layers(), 1);
    let staging = fs::read_dir(t.store.dir().join("tmp")).unwrap().flatten().flat_map(|d| fs::read_dir(d.path()));
    assert_eq!(staging.flatten().count(), 0, "the spooled copies are gone");
}

#[test]
fn importing_something_that_is_not_a_tarball_fails() {
    let t = new_store();
    let junk = t.dir.path().join("berth-junk.tar");
    fs::write(&junk, vec![0x5a_u8; 4096]).unwrap();
    let name: Reference = "berth-test/junk:1".parse().unwrap();
    assert!(archive::import(&t.store, &junk, &name, &ImportOptions::default()).is_err());
    assert_nothing_committed(&t);
}

// ----- hostile archives

/// Writes a tar of `(name, content)` members; names go into the header verbatim, unchecked.
fn raw_tar(path: &Path, members: &[(&str, &[u8])]) {
    let mut b = tar::Builder::new(fs::File::create(path).unwrap());
    for (name, data) in members {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap().flush().unwrap();
}

fn blob_member(bytes: &[u8]) -> (String, Digest) {
    let d = Digest::of(bytes);
    (format!("blobs/sha256/{}", d.hex()), d)
}

/// An OCI archive of one image whose layer is `layer`, but whose manifest claims `claimed`.
fn oci_archive(path: &Path, layer: &[u8], claimed: &Digest) {
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":["{claimed}"]}}}}"#
    );
    let (config_name, config_digest) = blob_member(config.as_bytes());
    let manifest = format!(
        r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{claimed}","size":{}}}]}}"#,
        config.len(),
        layer.len()
    );
    let (manifest_name, manifest_digest) = blob_member(manifest.as_bytes());
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{manifest_digest}","size":{},"annotations":{{"org.opencontainers.image.ref.name":"berth.test/evil:1"}}}}]}}"#,
        manifest.len()
    );
    let layer_name = format!("blobs/sha256/{}", claimed.hex());
    raw_tar(
        path,
        &[
            ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
            ("index.json", index.as_bytes()),
            (&manifest_name, manifest.as_bytes()),
            (&config_name, config.as_bytes()),
            (&layer_name, layer),
        ],
    );
}

fn assert_nothing_committed(t: &TestStore) {
    assert!(t.store.list().unwrap().is_empty(), "no image recorded");
    assert!(t.store.names().unwrap().is_empty(), "no name recorded");
    assert_eq!(t.layers(), 0, "no layer unpacked");
}

#[test]
fn a_blob_that_does_not_match_its_digest_is_refused() {
    let t = new_store();
    let archive = t.dir.path().join("berth-evil.tar");
    let real_layer = fs::read(fixture("rootfs.tar")).unwrap();
    let claimed = Digest::of(b"something else entirely");
    oci_archive(&archive, &real_layer, &claimed);
    let err = archive::load(&t.store, &archive).unwrap_err();
    assert!(matches!(&err, ImageError::DigestMismatch { expected, .. } if *expected == claimed), "{err}");
    assert_nothing_committed(&t);
    assert_eq!(t.blobs(), 0, "the mismatching blob never landed");

    // The control: the same archive with the true digest loads, so the refusal above was
    // for the mismatch and nothing else.
    let honest = t.dir.path().join("berth-honest.tar");
    oci_archive(&honest, &real_layer, &Digest::of(&real_layer));
    let loaded = archive::load(&t.store, &honest).unwrap();
    assert_eq!(loaded[0].names[0].to_string(), "berth.test/evil:1");
}

#[test]
fn a_docker_layer_that_is_not_its_diff_id_is_refused() {
    let t = new_store();
    let layer = fs::read(fixture("rootfs.tar")).unwrap();
    let promised = Digest::of(b"not this layer");
    let config = format!(r#"{{"os":"linux","rootfs":{{"type":"layers","diff_ids":["{promised}"]}}}}"#);
    let manifest = r#"[{"Config":"c.json","RepoTags":["berth-test/evil:1"],"Layers":["x/layer.tar"]}]"#;
    let archive = t.dir.path().join("berth-evil.docker.tar");
    raw_tar(
        &archive,
        &[("manifest.json", manifest.as_bytes()), ("c.json", config.as_bytes()), ("x/layer.tar", &layer)],
    );
    let err = archive::load(&t.store, &archive).unwrap_err();
    assert!(matches!(&err, ImageError::DigestMismatch { expected, .. } if *expected == promised), "{err}");
    assert_nothing_committed(&t);
}

#[test]
fn members_outside_the_archive_and_broken_json_are_refused() {
    let t = new_store();
    let dir = t.dir.path();
    for (i, evil) in ["../evil", "/tmp/berth-evil-absolute", "a/../../evil"].into_iter().enumerate() {
        let archive = dir.join(format!("berth-escape-{i}.tar"));
        raw_tar(&archive, &[("index.json", br#"{"manifests":[]}"#), (evil, b"pwned")]);
        let err = archive::load(&t.store, &archive).unwrap_err();
        assert!(matches!(err, ImageError::Malformed(ref m) if m.contains("leaves the archive")), "{evil}: {err}");
    }
    assert!(!dir.parent().unwrap().join("evil").exists() && !Path::new("/tmp/berth-evil-absolute").exists());

    let archive = dir.join("berth-bad-json.tar");
    raw_tar(&archive, &[("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#), ("index.json", b"{not json")]);
    let err = archive::load(&t.store, &archive).unwrap_err();
    assert!(matches!(err, ImageError::Malformed(ref m) if m.starts_with("index.json:")), "{err}");

    let archive = dir.join("berth-not-an-image.tar");
    raw_tar(&archive, &[("hello.txt", b"hi")]);
    let err = archive::load(&t.store, &archive).unwrap_err();
    assert!(err.to_string().contains("neither an OCI image layout"), "{err}");
    assert_nothing_committed(&t);
}

// ----- the host image

#[test]
fn the_host_image_is_made_once_and_copies_no_secrets() {
    let t = new_store();
    let first = host::ensure_host_image(&t.store).unwrap();
    let (blobs, layers) = (t.blobs(), t.layers());
    let second = host::ensure_host_image(&t.store).unwrap();
    assert_eq!(first.id, second.id, "idempotent");
    assert_eq!((t.blobs(), t.layers()), (blobs, layers), "the second call writes nothing");
    assert_eq!(layers, 1);

    let layer = t.layer_dir(&first, 0);
    let host_bin = fs::read_link("/bin").expect("this test expects a merged-/usr host (Debian 12): /bin -> usr/bin");
    assert_eq!(fs::read_link(layer.join("bin")).unwrap(), host_bin);
    assert_eq!(host_bin, Path::new("usr/bin"));
    assert!(layer.join("etc/ld.so.cache").is_file());
    assert!(!layer.join("etc/shadow").exists(), "secrets are never copied");
    assert!(layer.join("etc/passwd").is_file());
    assert_eq!(fs::metadata(layer.join("tmp")).unwrap().permissions().mode() & 0o7777, 0o1777);
    assert!(first.host_binds.iter().any(|b| b == Path::new("/usr")));
    assert_eq!(first.config.config.cmd, strings(&["/bin/sh"]));

    let listed = t.store.list().unwrap();
    let (record, names) = listed.iter().find(|(r, _)| r.id == first.id).expect("listed");
    assert_eq!(record, &first);
    assert_eq!(names.iter().map(ToString::to_string).collect::<Vec<_>>(), [HOST_IMAGE]);
}

#[test]
fn the_host_image_runs_a_host_binary() {
    let t = new_store();
    let img = host::ensure_host_image(&t.store).unwrap();
    // The container view: the layer with the host's /usr bound over it, as the runtime will.
    // ls is dynamically linked: it runs only if the loader, the libraries and ld.so.cache resolve.
    let script = "mount --bind -o ro /usr \"$M/usr\"\nchroot \"$M\" /bin/ls /etc/ld.so.cache";
    assert_eq!(in_merged_view(&t, &img, script), "/etc/ld.so.cache\n");
}

// ----- rmi and prune

#[test]
fn remove_keeps_shared_layers_and_prune_empties_the_store() {
    let t = new_store();
    t.load("busybox.docker.tar");
    t.load("two-layer.docker.tar");
    assert_eq!(t.layers(), 2);
    let removed = t.store.remove("berth-test/two-layer").unwrap();
    assert!(removed.iter().any(|r| r.starts_with("Deleted: ")), "{removed:?}");
    assert_eq!(t.layers(), 1, "busybox still uses the base layer");
    let busybox = t.store.resolve("berth-test/busybox:latest").unwrap().expect("busybox is still there");
    assert_busybox_layer(&t.layer_dir(&busybox, 0));

    t.store.remove("berth-test/busybox").unwrap();
    t.load("busybox.oci.tar"); // unnamed: only prune removes it
    assert_eq!(t.store.list().unwrap().len(), 1);
    let report = t.store.prune().unwrap();
    assert_eq!(report.images, 1);
    assert_eq!((t.layers(), t.blobs()), (0, 0), "nothing left");
    assert_eq!(fs::read_dir(t.store.dir().join("l")).unwrap().count(), 0, "no short links left");
}
