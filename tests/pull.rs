//! `berth pull` against a real registry: Debian's `docker-registry` on 127.0.0.1 (one per test,
//! with its storage in a temporary directory), fed by `skopeo` with the images that
//! tests/fixtures/make-images.sh builds from busybox-static. Needs root for the layer unpacking
//! (owners, device nodes) and the tools: docker-registry, skopeo, umoci, curl, python3.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fs::File;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use berth::image::registry::{self, Progress, PullOptions, PullReport};
use berth::image::{Digest, ImageError, Reference, Store};

const REGISTRY: &str = "/usr/bin/docker-registry";

/// Fails the test (never skips it) when a tool is missing.
fn require(tool: &str) {
    let found = if tool.starts_with('/') {
        Path::new(tool).is_file()
    } else {
        Command::new("sh").args(["-c", &format!("command -v {tool}")]).stdout(Stdio::null()).status().unwrap().success()
    };
    assert!(found, "{tool} is missing: apt-get install docker-registry skopeo umoci curl python3 busybox-static");
}

/// The fixture images, built once (the directory is shared with tests/image_cli.rs); the lock
/// file keeps this binary's parallel tests, and any other process taking it, apart.
fn fixtures() -> PathBuf {
    for tool in ["umoci", "skopeo", "python3", "/bin/busybox"] {
        require(tool);
    }
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(scratch).unwrap();
    let dir = scratch.join("berth-test-images");
    let lock = File::create(scratch.join("berth-test-images.lock")).unwrap();
    lock.lock().unwrap();
    if !dir.join(".done").exists() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/make-images.sh");
        let status = Command::new("bash").arg(script).arg(&dir).status().unwrap();
        assert!(status.success(), "make-images.sh failed");
    }
    dir
}

/// A docker-registry process on 127.0.0.1 with its own storage; killed on drop.
struct Registry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    fixtures: PathBuf,
}

impl Registry {
    fn start() -> Registry {
        Registry::start_with(None)
    }

    /// A registry that wants HTTP basic auth (`htpasswd`) for `user`/`password`.
    fn start_with(login: Option<(&str, &str)>) -> Registry {
        for tool in [REGISTRY, "curl"] {
            require(tool);
        }
        let fixtures = fixtures();
        let dir = tempfile::Builder::new().prefix("berth-registry-").tempdir_in("/tmp").unwrap();
        let mut auth = String::new();
        if let Some((user, password)) = login {
            let script = format!(
                "import crypt; print('{user}:' + crypt.crypt('{password}', crypt.mksalt(crypt.METHOD_BLOWFISH)))"
            );
            let out = Command::new("python3").args(["-W", "ignore", "-c", &script]).output().unwrap();
            assert!(out.status.success(), "cannot make a bcrypt hash: {}", String::from_utf8_lossy(&out.stderr));
            std::fs::write(dir.path().join("htpasswd"), &out.stdout).unwrap();
            auth = format!(
                "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            );
        }
        // A free port: the kernel picks one for a listener that is closed right away.
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n{auth}",
                dir.path().join("storage").display()
            ),
        )
        .unwrap();
        let log = File::create(dir.path().join("log")).unwrap();
        let child = Command::new(REGISTRY)
            .arg("serve")
            .arg(&config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut registry = Registry { child, port, dir, fixtures };
        registry.wait_until_up();
        registry
    }

    fn wait_until_up(&mut self) {
        // Generous: this only bounds how long a broken setup takes to fail.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("docker-registry exited ({status}): {}", self.log());
            }
            let code = self.curl(&["-o", "/dev/null", "-w", "%{http_code}", &self.url("/v2/")]);
            if code == b"200" || code == b"401" {
                return;
            }
            assert!(Instant::now() < deadline, "docker-registry does not answer on port {}: {}", self.port, self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `127.0.0.1:PORT/<name>` as berth parses it.
    fn reference(&self, name: &str) -> Reference {
        format!("127.0.0.1:{}/{name}", self.port).parse().unwrap()
    }

    fn curl(&self, args: &[&str]) -> Vec<u8> {
        let out = Command::new("curl").arg("-s").args(args).output().unwrap();
        out.stdout
    }

    /// Copies an image into the registry with skopeo (`source` in skopeo's syntax).
    fn push(&self, source: &str, name: &str, extra: &[&str]) {
        let out = Command::new("skopeo")
            .args(["copy", "--quiet", "--dest-tls-verify=false"])
            .args(extra)
            .arg(source)
            .arg(format!("docker://127.0.0.1:{}/{name}", self.port))
            .output()
            .unwrap();
        assert!(out.status.success(), "skopeo copy {source} failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Pushes a tag of the fixtures' OCI layout.
    fn push_fixture(&self, tag: &str, name: &str, extra: &[&str]) {
        self.push(&format!("oci:{}:{tag}", self.fixtures.join("oci").display()), name, extra);
    }

    /// The manifest the registry serves for `repo` at `reference` (a tag or digest), raw.
    fn manifest(&self, repo: &str, reference: &str) -> Vec<u8> {
        let accept = [
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
        ];
        let mut args: Vec<String> = vec!["-f".into()];
        for a in accept {
            args.extend(["-H".into(), format!("Accept: {a}")]);
        }
        args.push(self.url(&format!("/v2/{repo}/manifests/{reference}")));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let body = self.curl(&args);
        assert!(!body.is_empty(), "no manifest for {repo}:{reference}");
        body
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}

/// A fresh store, and a docker config file with nothing in it (the host's must not matter).
struct Env {
    root: tempfile::TempDir,
    store: Store,
    opts: PullOptions,
}

impl Env {
    fn new() -> Env {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the pull tests unpack layers with owners and device nodes: run as root"
        );
        let root = tempfile::Builder::new().prefix("berth-store-").tempdir_in("/tmp").unwrap();
        let store = Store::open(root.path()).unwrap();
        let docker_config = root.path().join("docker-config.json");
        std::fs::write(&docker_config, "{}").unwrap();
        let opts =
            PullOptions { docker_config: Some(docker_config), progress: Progress::Quiet, ..PullOptions::default() };
        Env { root, store, opts }
    }

    fn pull(&self, reference: &Reference) -> Result<PullReport, ImageError> {
        self.pull_with(reference, &self.opts)
    }

    fn pull_with(&self, reference: &Reference, opts: &PullOptions) -> Result<PullReport, ImageError> {
        tokio::runtime::Runtime::new().unwrap().block_on(registry::pull(&self.store, reference, opts))
    }

    fn count(&self, sub: &str, dirs: bool) -> usize {
        std::fs::read_dir(self.store.dir().join(sub)).unwrap().flatten().filter(|e| e.path().is_dir() == dirs).count()
    }

    fn layer_dirs(&self) -> usize {
        self.count("layers/sha256", true)
    }

    fn blobs(&self) -> usize {
        self.count("blobs/sha256", false)
    }
}

fn layer_blobs(manifest: &serde_json::Value) -> Vec<String> {
    manifest["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn pull_stores_the_registry_layers_and_a_second_pull_fetches_nothing() {
    let reg = Registry::start();
    // Docker's own manifest format (v2 schema 2), as Docker Hub serves most images.
    reg.push_fixture("busybox", "berth/busybox:latest", &["--format", "v2s2"]);
    let env = Env::new();
    let reference = reg.reference("berth/busybox");
    let plain = PullOptions { progress: Progress::Plain, ..env.opts.clone() };
    let report = env.pull_with(&reference, &plain).unwrap();

    let raw = reg.manifest("berth/busybox", "latest");
    let manifest = json(&raw);
    assert_eq!(manifest["mediaType"], "application/vnd.docker.distribution.manifest.v2+json");
    let stored: Vec<String> = report.record.layers.iter().map(|l| l.blob.as_ref().unwrap().to_string()).collect();
    assert_eq!(stored, layer_blobs(&manifest), "the stored layer blobs are the registry's");
    for blob in &stored {
        assert!(env.store.has_blob(&blob.parse().unwrap()), "blob {blob} is in the store");
    }
    assert_eq!(report.record.id.to_string(), manifest["config"]["digest"].as_str().unwrap());
    assert_eq!(report.record.manifest, Some(Digest::of(&raw)));
    assert_eq!(report.digest, Digest::of(&raw));
    assert_eq!(report.record.layers[0].media_type, "application/vnd.docker.image.rootfs.diff.tar.gzip");
    assert_eq!(report.record.config.config.cmd, Some(vec!["sh".to_owned()]));
    let layer = &report.record.layers[0];
    assert!(env.store.layer_dir(&layer.diff_id).join("bin/busybox").is_file(), "the layer is unpacked");
    assert!(layer.size > 1_000_000, "uncompressed size recorded: {}", layer.size);
    assert_eq!((report.blobs_fetched, report.layers_unpacked), (2, 1));
    assert!(report.bytes_fetched > 500_000);
    let found = env.store.resolve(&reference.to_string()).unwrap().expect("the image is named");
    assert_eq!(found.id, report.record.id);

    let again = env.pull(&reference).unwrap();
    assert_eq!((again.blobs_fetched, again.bytes_fetched, again.layers_unpacked), (0, 0, 0));
    assert_eq!(again.record, report.record);
}

#[test]
fn two_images_sharing_a_base_layer_store_it_once() {
    let reg = Registry::start();
    reg.push_fixture("busybox", "berth/busybox:latest", &[]);
    reg.push_fixture("two-layer", "berth/two-layer:latest", &[]);
    let env = Env::new();
    let base = env.pull(&reg.reference("berth/busybox")).unwrap();
    let (layers, blobs) = (env.layer_dirs(), env.blobs());
    assert_eq!((layers, blobs), (1, 3), "a layer; its blob, the config and the manifest");

    let two = env.pull(&reg.reference("berth/two-layer:latest")).unwrap();
    assert_eq!(two.record.layers.len(), 2);
    assert_eq!(two.record.layers[0], base.record.layers[0], "the base layer is shared");
    assert_eq!(two.blobs_fetched, 2, "only the config and the upper layer are fetched");
    assert_eq!(two.layers_unpacked, 1);
    assert_eq!(env.layer_dirs(), layers + 1);
    assert_eq!(env.blobs(), blobs + 3, "the upper layer, the config and the manifest");
    let upper = env.store.layer_dir(&two.record.layers[1].diff_id);
    assert!(upper.join("data/c").is_file(), "the upper layer is unpacked");
    assert_eq!(two.record.config.config.labels.as_ref().unwrap()["org.berth.test"], "two-layer");
}

#[test]
fn a_missing_tag_or_repository_is_a_clear_not_found_error() {
    let reg = Registry::start();
    reg.push_fixture("busybox", "berth/busybox:latest", &[]);
    let env = Env::new();
    for name in ["berth/busybox:nope", "berth/nothing-here:latest"] {
        let reference = reg.reference(name);
        let err = env.pull(&reference).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ImageError::NotFound(_)), "{text}");
        assert!(text.contains(&reference.to_string()) && text.contains("not found"), "{text}");
        assert!(text.contains(&format!("registry 127.0.0.1:{}", reg.port)), "{text}");
    }
    assert_eq!(env.store.list().unwrap().len(), 0, "nothing recorded");
}

#[test]
fn a_digest_pinned_reference_is_pulled_and_verified() {
    let reg = Registry::start();
    reg.push_fixture("busybox", "berth/busybox:latest", &[]);
    reg.push_fixture("two-layer", "berth/busybox:two", &[]);
    let env = Env::new();
    let digest = Digest::of(&reg.manifest("berth/busybox", "latest"));
    let pinned = reg.reference(&format!("berth/busybox@{digest}"));
    let report = env.pull(&pinned).unwrap();
    assert_eq!(report.record.manifest.as_ref(), Some(&digest));
    assert_eq!(report.record.layers.len(), 1);
    assert!(env.store.resolve(&pinned.to_string()).unwrap().is_some(), "named by its digest");

    // A tag and a digest that disagree: the digest wins, as in docker.
    let two = Digest::of(&reg.manifest("berth/busybox", "two"));
    let both = reg.reference(&format!("berth/busybox:latest@{two}"));
    assert_eq!(env.pull(&both).unwrap().record.layers.len(), 2);

    let unknown = Digest::of(b"no such manifest");
    let err = env.pull(&reg.reference(&format!("berth/busybox@{unknown}"))).unwrap_err();
    assert!(matches!(err, ImageError::NotFound(_)), "{err}");
}

#[test]
fn zstd_layers_are_pulled() {
    let reg = Registry::start();
    // skopeo 1.9 compresses only uncompressed layers to zstd, so go through a `dir:` copy.
    let dir = tempfile::Builder::new().prefix("berth-zstd-").tempdir_in("/tmp").unwrap();
    let plain = format!("dir:{}", dir.path().join("image").display());
    let out = Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-decompress"])
        .arg(format!("oci:{}:busybox", reg.fixtures.join("oci").display()))
        .arg(&plain)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    reg.push(&plain, "berth/zstd:latest", &["--dest-compress-format", "zstd"]);
    let manifest = json(&reg.manifest("berth/zstd", "latest"));
    assert_eq!(manifest["layers"][0]["mediaType"], "application/vnd.oci.image.layer.v1.tar+zstd");

    let env = Env::new();
    let report = env.pull(&reg.reference("berth/zstd")).unwrap();
    let layer = &report.record.layers[0];
    assert_eq!(layer.media_type, "application/vnd.oci.image.layer.v1.tar+zstd");
    assert_eq!(layer.blob.as_ref().unwrap().to_string(), layer_blobs(&manifest)[0]);
    assert_eq!(layer.diff_id, report.record.config.rootfs.diff_ids[0]);
    assert!(env.store.layer_dir(&layer.diff_id).join("bin/busybox").is_file());
}

/// Go's name for this machine's architecture, as the index entries say it.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

#[test]
fn an_index_resolves_to_this_machines_platform() {
    let reg = Registry::start();
    reg.push_fixture("busybox", "berth/multi:one", &[]);
    reg.push_fixture("two-layer", "berth/multi:two", &[]);
    let (one, two) = (reg.manifest("berth/multi", "one"), reg.manifest("berth/multi", "two"));
    let other = if host_arch() == "s390x" { "riscv64" } else { "s390x" };
    let entry = |bytes: &[u8], arch: &str| {
        serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": Digest::of(bytes).to_string(),
            "size": bytes.len(),
            "platform": {"os": "linux", "architecture": arch},
        })
    };
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry(&two, other), entry(&one, host_arch())],
    });
    let index = serde_json::to_vec(&index).unwrap();
    let file = tempfile::Builder::new().prefix("berth-index-").tempfile_in("/tmp").unwrap();
    std::fs::write(file.path(), &index).unwrap();
    let put = reg.curl(&[
        "-f",
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/vnd.oci.image.index.v1+json",
        "--data-binary",
        &format!("@{}", file.path().display()),
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &reg.url("/v2/berth/multi/manifests/latest"),
    ]);
    assert_eq!(put, b"201", "the registry takes the index");

    let env = Env::new();
    let multi = reg.reference("berth/multi");
    let report = env.pull(&multi).unwrap();
    assert_eq!(report.digest, Digest::of(&index), "the reference resolved to the index");
    assert_eq!(report.record.manifest, Some(Digest::of(&one)), "and the index to this machine's manifest");
    assert_eq!(report.record.layers.len(), 1);

    let opts = PullOptions { platform: Some(format!("linux/{other}")), ..env.opts.clone() };
    let report = env.pull_with(&multi, &opts).unwrap();
    assert_eq!(report.record.manifest, Some(Digest::of(&two)));

    let opts = PullOptions { platform: Some("linux/mips64le".into()), ..env.opts.clone() };
    let err = env.pull_with(&multi, &opts).unwrap_err().to_string();
    let listed = format!("linux/{other}, linux/{}", host_arch());
    assert!(err.contains("linux/mips64le") && err.contains(&listed), "{err}");
}

#[test]
fn credentials_come_from_the_docker_config_file() {
    let reg = Registry::start_with(Some(("berth", "s3cret")));
    reg.push_fixture("busybox", "berth/private:latest", &["--dest-creds", "berth:s3cret"]);
    let env = Env::new();
    let reference = reg.reference("berth/private");
    let registry = format!("127.0.0.1:{}", reg.port);

    let err = env.pull(&reference).unwrap_err().to_string();
    assert!(err.contains("unauthorized") && err.contains(&registry), "{err}");

    let config = env.root.path().join("docker-config.json");
    let write = |auths: serde_json::Value| std::fs::write(&config, serde_json::to_vec(&auths).unwrap()).unwrap();
    let token = base64::engine::general_purpose::STANDARD.encode("berth:wrong");
    write(serde_json::json!({"auths": {format!("http://{registry}"): {"auth": token}}}));
    let err = env.pull(&reference).unwrap_err().to_string();
    assert!(err.contains("unauthorized") && err.contains(config.to_str().unwrap()), "{err}");

    let token = base64::engine::general_purpose::STANDARD.encode("berth:s3cret");
    write(serde_json::json!({"auths": {registry.clone(): {"auth": token}}}));
    assert_eq!(env.pull(&reference).unwrap().record.layers.len(), 1);

    write(serde_json::json!({"auths": {registry.clone(): {"username": "berth", "password": "s3cret"}}}));
    assert_eq!(env.pull(&reference).unwrap().blobs_fetched, 0);
}

#[test]
fn a_corrupt_blob_is_refused_and_nothing_is_recorded() {
    let reg = Registry::start();
    reg.push_fixture("busybox", "berth/busybox:latest", &[]);
    // Overwrite the layer's data in the registry's storage: it now serves other bytes.
    let blob = layer_blobs(&json(&reg.manifest("berth/busybox", "latest")))[0].clone();
    let hex = blob.strip_prefix("sha256:").unwrap();
    let data = reg.dir.path().join(format!("storage/docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2]));
    let mut bytes = Vec::new();
    File::open(&data).unwrap().read_to_end(&mut bytes).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&data, &bytes).unwrap();

    let env = Env::new();
    let err = env.pull(&reg.reference("berth/busybox")).unwrap_err().to_string();
    assert!(err.contains("digest") && err.contains(&blob), "{err}");
    assert_eq!(env.store.list().unwrap().len(), 0);
    assert_eq!(env.layer_dirs(), 0);
    assert!(!env.store.has_blob(&blob.parse().unwrap()));
}

#[test]
fn a_full_disk_during_a_pull_is_a_clear_error_and_leaves_the_store_consistent() {
    let reg = Registry::start();
    reg.push_fixture("busybox", "berth/busybox:latest", &[]);
    let reference = reg.reference("berth/busybox");
    // The layer blob is about 1 MB compressed and 2.1 MB unpacked: 512 KiB fills during its
    // download, 2 MiB during its unpacking.
    for (size, phase) in [("512k", "download"), ("2m", "unpack")] {
        let tmpfs = support::SmallTmpfs::mount(size);
        let store = Store::open(tmpfs.path()).unwrap();
        let docker_config = tmpfs.path().join("docker-config.json");
        std::fs::write(&docker_config, "{}").unwrap();
        let opts =
            PullOptions { docker_config: Some(docker_config), progress: Progress::Quiet, ..PullOptions::default() };
        let pull = || tokio::runtime::Runtime::new().unwrap().block_on(registry::pull(&store, &reference, &opts));
        let err = pull().unwrap_err().to_string();
        assert!(err.contains("No space left on device"), "{phase}: {err}");
        println!("ENOSPC pull ({phase}): {err}");
        assert_eq!(store.list().unwrap().len(), 0, "{phase}: no image is recorded");
        assert!(store.resolve(&reference.to_string()).unwrap().is_none(), "{phase}: nothing is named");
        let problems = support::store_problems(tmpfs.path());
        assert!(problems.is_empty(), "{phase}: {problems:#?}");
        tmpfs.resize("16m");
        let report = pull().unwrap();
        assert!(store.resolve(&reference.to_string()).unwrap().is_some(), "{phase}: pulled with room");
        assert_eq!(report.layers_unpacked, 1);
        // This process's store is still open: its own staging directory is in use, not left.
        let own = format!("/images/tmp/{}-", std::process::id());
        let problems: Vec<_> =
            support::store_problems(tmpfs.path()).into_iter().filter(|p| !p.contains(&own)).collect();
        assert!(problems.is_empty(), "{phase}, after the pull with room: {problems:#?}");
    }
}
