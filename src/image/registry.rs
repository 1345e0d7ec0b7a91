//! `berth pull`: images from OCI and Docker registries.
//!
//! The manifest is fetched (an index resolves to one platform), then the config and every
//! layer blob the store lacks, at most `PARALLEL_DOWNLOADS` at a time, each verified against
//! its digest on its way into the store. A layer is unpacked on a blocking thread as soon as its
//! download ends while the others keep downloading. The pull holds the store's shared gc lock
//! throughout, so a concurrent `prune` cannot collect blobs that no record names yet.

mod auth;
mod errors;
mod manifest;
mod platform;
mod progress;

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt, stream};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use self::errors::{chain, classify};
use self::manifest::{CONFIG_TYPES, Descriptor, MANIFEST_TYPES, Manifest, is_layer_type};
use self::platform::{Platform, choose_platform};
use self::progress::{LayerProgress, Reporter};
use super::config::ConfigFile;
use super::digest::HashingReader;
use super::{Digest, ImageError, ImageRecord, Layer, Reference, Store, unpack};

/// Blobs downloaded at once (docker: 3, containerd: 3).
const PARALLEL_DOWNLOADS: usize = 4;
/// Layers unpacked at once: the work is disk-bound, more threads only thrash.
const PARALLEL_UNPACKS: usize = 4;
/// docker's limit for a manifest; a larger one is refused rather than parsed.
const MAX_MANIFEST_BYTES: usize = 4 << 20;
/// A config is read into memory whole.
const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// How `pull` shows progress.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Progress {
    /// Per-layer bars when standard output is a terminal, plain lines otherwise.
    #[default]
    Auto,
    /// docker's plain lines (`<id>: Pull complete`).
    Plain,
    /// Nothing (warnings still go to standard error).
    Quiet,
}

/// How to pull.
#[derive(Clone, Debug, Default)]
pub struct PullOptions {
    /// Registries (`host[:port]`) reached over plain HTTP; loopback registries always are.
    pub insecure_registries: Vec<String>,
    /// The docker config file with credentials; default `$DOCKER_CONFIG/config.json`, else
    /// `~/.docker/config.json`.
    pub docker_config: Option<PathBuf>,
    /// Progress display.
    pub progress: Progress,
    /// `os/arch[/variant]` to pick from a multi-platform image; default: this machine's.
    pub platform: Option<String>,
}

/// What a pull did.
#[derive(Debug)]
pub struct PullReport {
    /// The image, as recorded in the store.
    pub record: ImageRecord,
    /// The reference it was pulled as (and is now named).
    pub reference: Reference,
    /// What the reference resolved to in the registry: the index's digest for a
    /// multi-platform image (docker's `Digest:` line), else the manifest's.
    pub digest: Digest,
    /// Blobs downloaded (config and layers; manifests are always fetched and not counted).
    pub blobs_fetched: usize,
    /// Their bytes.
    pub bytes_fetched: u64,
    /// Layers unpacked by this pull.
    pub layers_unpacked: usize,
}

/// Pulls `reference` into the store and names it so.
pub async fn pull(store: &Store, reference: &Reference, opts: &PullOptions) -> Result<PullReport, ImageError> {
    let want = match &opts.platform {
        Some(p) => Platform::parse(p)?,
        None => Platform::host(),
    };
    let _gc = store.gc_lock(false)?;
    let remote = Remote::new(reference, opts)?;
    let mut out = Reporter::new(opts.progress);
    let label = reference.tag.clone().or_else(|| reference.digest.as_ref().map(Digest::to_string)).unwrap_or_default();
    remote.authenticate().await?;
    let resolved = remote.resolve(&want, opts.platform.is_some()).await?;
    out.line(&format!("{label}: Pulling from {}", reference.repository));
    let manifest = &resolved.manifest;

    // Blocking threads need a store of their own ('static); it shares the directory.
    let worker = Arc::new(store.reopen()?);
    let mut blobs_fetched = 0;
    let mut bytes_fetched = 0;

    let config_desc = manifest.config.as_ref().ok_or_else(|| remote.malformed("the manifest has no config"))?;
    if !store.has_blob(&config_desc.digest) {
        if config_desc.size > MAX_CONFIG_BYTES {
            return Err(remote.malformed(&format!("its config is {} bytes, over the limit", config_desc.size)));
        }
        bytes_fetched += remote.download(&worker, config_desc, &LayerProgress::hidden()).await?;
        blobs_fetched += 1;
    }
    let config = ConfigFile::parse(&store.read_blob(&config_desc.digest)?)
        .map_err(|e| remote.malformed(&format!("config {}: {e}", config_desc.digest)))?;
    if !resolved.from_index {
        check_platform(&remote, &config, &want, opts.platform.is_some())?;
    }
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(remote.malformed(&format!(
            "the manifest lists {} layers but the config {}",
            manifest.layers.len(),
            config.rootfs.diff_ids.len()
        )));
    }

    // One job per distinct blob. A blob already stored is trusted to hold a layer only when an
    // image in the store already pairs it with that diff id; otherwise the pairing is checked.
    let trusted: HashMap<Digest, Digest> =
        store.list()?.into_iter().flat_map(|(r, _)| r.layers).filter_map(|l| Some((l.blob?, l.diff_id))).collect();
    let mut jobs: Vec<Job> = Vec::new();
    let mut seen: HashMap<&Digest, &Digest> = HashMap::new();
    for (desc, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
        match seen.insert(&desc.digest, diff_id) {
            Some(other) if other != diff_id => {
                return Err(remote.malformed(&format!("blob {} is given two diff ids", desc.digest)));
            }
            Some(_) => continue,
            None => {}
        }
        let fetch = !store.has_blob(&desc.digest);
        let settled = !fetch && store.has_layer(diff_id) && trusted.get(&desc.digest) == Some(diff_id);
        let progress = out.layer(&desc.digest);
        if settled {
            progress.finish("Already exists");
        } else {
            progress.say("Pulling fs layer");
            jobs.push(Job { desc: desc.clone(), diff_id: diff_id.clone(), fetch, progress });
        }
    }

    let permits = Arc::new(Semaphore::new(PARALLEL_UNPACKS));
    let mut unpacks = JoinSet::new();
    for job in jobs.iter().filter(|j| !j.fetch) {
        spawn_unpack(&mut unpacks, &permits, &worker, &remote, job);
    }
    let (remote_ref, worker_ref) = (&remote, &worker);
    let mut downloads = stream::iter(jobs.iter().filter(|j| j.fetch))
        .map(|job| async move { remote_ref.download(worker_ref, &job.desc, &job.progress).await.map(|n| (job, n)) })
        .buffer_unordered(PARALLEL_DOWNLOADS);
    let mut failure = None;
    while let Some(done) = downloads.next().await {
        match done {
            Ok((job, n)) => {
                blobs_fetched += 1;
                bytes_fetched += n;
                job.progress.say("Download complete");
                spawn_unpack(&mut unpacks, &permits, &worker, &remote, job);
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    // Dropping the stream cancels the other downloads; unpacks already started are waited for,
    // so nothing is still writing to the store when the gc lock is released.
    drop(downloads);
    let mut layers_unpacked = 0;
    while let Some(joined) = unpacks.join_next().await {
        match joined {
            Ok(Ok(unpacked)) => layers_unpacked += usize::from(unpacked),
            Ok(Err(e)) => {
                failure.get_or_insert(e);
            }
            Err(e) => {
                failure.get_or_insert(ImageError::Registry(format!("unpacking a layer of {reference}: {e}")));
            }
        }
    }
    if let Some(e) = failure {
        jobs.iter().for_each(|j| j.progress.abandon());
        return Err(e);
    }

    store.write_blob(&resolved.bytes[..], Some(&resolved.manifest_digest))?;
    drop(jobs);
    out.bars_done();
    let layers = manifest
        .layers
        .iter()
        .zip(&config.rootfs.diff_ids)
        .map(|(desc, diff_id)| Layer {
            diff_id: diff_id.clone(),
            blob: Some(desc.digest.clone()),
            media_type: desc.media_type.clone(),
            size: store.layer_size(diff_id),
        })
        .collect();
    let record = ImageRecord {
        id: config_desc.digest.clone(),
        manifest: Some(resolved.manifest_digest.clone()),
        layers,
        config,
        host_binds: Vec::new(),
    };
    let before = store.names()?.get(&reference.to_string()).cloned();
    store.commit(&record, std::slice::from_ref(reference))?;
    out.line(&format!("Digest: {}", resolved.digest));
    let status = if before.as_ref() == Some(&record.id) && blobs_fetched == 0 {
        "Image is up to date for"
    } else {
        "Downloaded newer image for"
    };
    out.line(&format!("Status: {status} {}", reference.familiar()));
    out.line(&reference.to_string());
    Ok(PullReport {
        record,
        reference: reference.clone(),
        digest: resolved.digest,
        blobs_fetched,
        bytes_fetched,
        layers_unpacked,
    })
}

/// A layer blob this pull fetches, unpacks or checks.
struct Job {
    desc: Descriptor,
    diff_id: Digest,
    fetch: bool,
    progress: LayerProgress,
}

/// Unpacks a layer on a blocking thread, or, when the layer is already unpacked, checks that
/// the blob really is that layer: a registry must not be able to point its image at a layer
/// of another image by naming its diff id. Yields whether it unpacked.
fn spawn_unpack(
    set: &mut JoinSet<Result<bool, ImageError>>,
    permits: &Arc<Semaphore>,
    worker: &Arc<Store>,
    remote: &Remote<'_>,
    job: &Job,
) {
    let (permits, store, progress) = (Arc::clone(permits), Arc::clone(worker), job.progress.clone());
    let (blob, diff_id) = (job.desc.digest.clone(), job.diff_id.clone());
    let context = format!("{} from {}", remote.reference, remote.reference.registry);
    set.spawn(async move {
        // The semaphore is never closed, so acquiring only waits.
        let _permit = permits.acquire_owned().await.ok();
        progress.extracting();
        let result = tokio::task::spawn_blocking(move || {
            if store.has_layer(&diff_id) {
                verify_diff_id(&store, &blob, &diff_id).map(|()| false)
            } else {
                store.unpack_layer(&blob, Some(&diff_id)).map(|_| true)
            }
        })
        .await
        .map_err(|e| ImageError::Registry(format!("unpacking a layer of {context}: {e}")))?;
        match result {
            Ok(unpacked) => {
                progress.finish("Pull complete");
                Ok(unpacked)
            }
            Err(ImageError::Unpack { layer, source }) => {
                Err(ImageError::Unpack { layer: format!("{layer} of {context}"), source })
            }
            Err(ImageError::DigestMismatch { what, expected, actual }) => {
                Err(ImageError::DigestMismatch { what: format!("{what} of {context}"), expected, actual })
            }
            Err(e) => Err(e),
        }
    });
}

/// Checks that a stored blob decompresses to the tar `diff_id` names.
fn verify_diff_id(store: &Store, blob: &Digest, diff_id: &Digest) -> Result<(), ImageError> {
    let path = store.blob_path(blob);
    let file = std::fs::File::open(&path).map_err(|e| ImageError::io(&path, e))?;
    let plain = unpack::decompress(io::BufReader::with_capacity(1 << 20, file))
        .map_err(|source| ImageError::Unpack { layer: blob.to_string(), source })?;
    let (actual, _) = HashingReader::new(plain).finish().map_err(|e| ImageError::io(&path, e))?;
    if actual != *diff_id {
        return Err(ImageError::DigestMismatch {
            what: format!("layer {blob} (uncompressed)"),
            expected: diff_id.clone(),
            actual,
        });
    }
    Ok(())
}

/// A config made for another platform: an error when the user named the platform, else a
/// warning (docker warns and runs it, e.g. under binfmt emulation).
fn check_platform(remote: &Remote<'_>, config: &ConfigFile, want: &Platform, explicit: bool) -> Result<(), ImageError> {
    if config.os.is_empty() || config.architecture.is_empty() {
        return Ok(());
    }
    let have =
        Platform { os: config.os.clone(), architecture: config.architecture.clone(), variant: config.variant.clone() };
    if want.rank(&have).is_some() {
        return Ok(());
    }
    let r = remote.reference;
    if explicit {
        return Err(ImageError::NotFound(format!(
            "{r} for {want} (the image is {have}, and not a multi-platform image)"
        )));
    }
    warn(&format!("the image {r} is for {have}, which does not match this machine ({want})"));
    Ok(())
}

/// The manifest an image reference resolved to.
struct Resolved {
    /// The digest of what the reference named (an index or a manifest).
    digest: Digest,
    manifest_digest: Digest,
    bytes: Vec<u8>,
    manifest: Manifest,
    from_index: bool,
}

/// One registry, one reference: the client, its credentials and error messages naming both.
struct Remote<'a> {
    reference: &'a Reference,
    client: Client,
    auth: RegistryAuth,
    /// The file the credentials came from, if any: error messages say so.
    credentials: Option<PathBuf>,
}

impl<'a> Remote<'a> {
    fn new(reference: &'a Reference, opts: &PullOptions) -> Result<Self, ImageError> {
        let mut plain_http: Vec<String> = opts
            .insecure_registries
            .iter()
            .map(|r| r.trim_start_matches("http://").trim_start_matches("https://").trim_end_matches('/').to_owned())
            .collect();
        if reference.is_loopback_registry() {
            plain_http.push(reference.registry.clone());
        }
        let config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(plain_http),
            // berth resolves indexes itself, to report the platforms it could have had.
            platform_resolver: None,
            connect_timeout: Some(Duration::from_secs(30)),
            read_timeout: Some(Duration::from_secs(120)),
            user_agent: concat!("berth/", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        };
        // `Client::new` would fall back to a default (all-HTTPS) client on error; say why instead.
        let client = Client::try_from(config)
            .map_err(|e| ImageError::Registry(format!("cannot make an HTTP client: {}", chain(&e))))?;
        let (auth, credentials) = auth::credentials(&reference.registry, opts.docker_config.as_deref())?;
        Ok(Remote { reference, client, auth, credentials })
    }

    /// The reference in oci-client's terms, or the same repository at `digest`.
    fn image(&self, digest: Option<&Digest>) -> oci_client::Reference {
        let r = self.reference;
        match (digest.or(r.digest.as_ref()), &r.tag) {
            (Some(d), _) => oci_client::Reference::with_digest(r.registry.clone(), r.repository.clone(), d.to_string()),
            (None, tag) => oci_client::Reference::with_tag(
                r.registry.clone(),
                r.repository.clone(),
                tag.clone().unwrap_or_else(|| "latest".to_owned()),
            ),
        }
    }

    /// Fetches a token when the registry asks for one (anonymous or with the credentials);
    /// the first contact, so an unreachable registry is reported here.
    async fn authenticate(&self) -> Result<(), ImageError> {
        let image = self.image(None);
        self.client
            .auth(&image, &self.auth, RegistryOperation::Pull)
            .await
            .map(drop)
            .map_err(|e| self.fail("reaching the registry", e))
    }

    async fn resolve(&self, want: &Platform, explicit: bool) -> Result<Resolved, ImageError> {
        let (bytes, digest, mut manifest) = self.fetch_manifest(None).await?;
        let top = digest.clone();
        let mut current = (bytes, digest);
        let mut from_index = false;
        // An index may name another index; two levels are plenty.
        for _ in 0..2 {
            if !manifest.is_index() {
                break;
            }
            from_index = true;
            let entries = manifest.manifests.as_deref().unwrap_or_default();
            let entry = choose_platform(entries, want).map_err(|available| {
                let hint = if explicit { "" } else { "; choose one with --platform" };
                ImageError::NotFound(format!(
                    "{} for {want} (the registry {} has it for {}{hint})",
                    self.reference,
                    self.reference.registry,
                    if available.is_empty() { "no named platform".to_owned() } else { available.join(", ") }
                ))
            })?;
            let (bytes, digest, next) = self.fetch_manifest(Some(&entry.digest)).await?;
            current = (bytes, digest);
            manifest = next;
        }
        if manifest.is_index() {
            return Err(self.malformed("its index nests more than two levels"));
        }
        if manifest.schema_version != 2 {
            return Err(self.malformed(&format!(
                "schema version {} manifests are not supported (only version 2)",
                manifest.schema_version
            )));
        }
        if let Some(c) = &manifest.config
            && !CONFIG_TYPES.contains(&c.media_type.as_str())
        {
            return Err(self.malformed(&format!("it is not a container image (its config is {})", c.media_type)));
        }
        if let Some(l) = manifest.layers.iter().find(|l| !is_layer_type(&l.media_type)) {
            return Err(
                self.malformed(&format!("layer {} has the unsupported media type {:?}", l.digest, l.media_type))
            );
        }
        let (bytes, manifest_digest) = current;
        Ok(Resolved { digest: top, manifest_digest, bytes, manifest, from_index })
    }

    /// Fetches the manifest the reference names (or the one at `digest`) and checks its digest.
    async fn fetch_manifest(&self, digest: Option<&Digest>) -> Result<(Vec<u8>, Digest, Manifest), ImageError> {
        let image = self.image(digest);
        let (body, _) = self
            .client
            .pull_manifest_raw(&image, &self.auth, &MANIFEST_TYPES)
            .await
            .map_err(|e| self.fail("the manifest", e))?;
        if body.len() > MAX_MANIFEST_BYTES {
            return Err(self.malformed(&format!("its manifest is {} bytes, over the limit", body.len())));
        }
        let actual = Digest::of(&body);
        if let Some(want) = digest.or(self.reference.digest.as_ref())
            && *want != actual
        {
            return Err(ImageError::DigestMismatch {
                what: format!("the manifest of {} from {}", self.reference, self.reference.registry),
                expected: want.clone(),
                actual,
            });
        }
        let manifest: Manifest =
            serde_json::from_slice(&body).map_err(|e| self.malformed(&format!("invalid manifest {actual}: {e}")))?;
        Ok((body.to_vec(), actual, manifest))
    }

    /// Streams a blob into the store (written on a blocking thread), verifying its size and
    /// digest; returns its size.
    async fn download(
        &self,
        worker: &Arc<Store>,
        desc: &Descriptor,
        progress: &LayerProgress,
    ) -> Result<u64, ImageError> {
        let what = format!("blob {}", desc.digest);
        let digest_text = desc.digest.to_string();
        let mut body = self
            .client
            .pull_blob_stream(&self.image(None), digest_text.as_str())
            .await
            .map_err(|e| self.fail(&what, e))?;
        progress.downloading(desc.size);
        let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(16);
        let (store, expected) = (Arc::clone(worker), desc.digest.clone());
        let writer = tokio::task::spawn_blocking(move || -> Result<(Digest, u64), ImageError> {
            let mut blob = store.blob_writer()?;
            while let Some(chunk) = rx.blocking_recv() {
                blob.write_all(&chunk).map_err(|e| ImageError::io(store.dir(), e))?;
            }
            // A short or broken download fails here, and its staging file is removed.
            blob.commit(Some(&expected))
        });
        let mut received = 0u64;
        let mut failure = None;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(bytes) => {
                    received += bytes.len() as u64;
                    if received > desc.size {
                        failure = Some(self.failure(
                            &what,
                            "too long",
                            &format!("more than the {} bytes the manifest declares", desc.size),
                        ));
                        break;
                    }
                    progress.advance(bytes.len() as u64);
                    if tx.send(bytes).await.is_err() {
                        break; // the writer stopped: its error follows
                    }
                }
                Err(e) => {
                    failure = Some(self.fail(&what, OciDistributionError::IoError(e)));
                    break;
                }
            }
        }
        drop(tx);
        let written = writer.await.map_err(|e| self.failure(&what, "writing it failed", &e.to_string()))?;
        if let Some(e) = failure {
            return Err(e);
        }
        match written {
            Ok((_, size)) => Ok(size),
            Err(ImageError::DigestMismatch { expected, actual, .. }) => Err(ImageError::DigestMismatch {
                what: format!("{what} of {} from {}", self.reference, self.reference.registry),
                expected,
                actual,
            }),
            Err(e) => Err(e),
        }
    }

    fn malformed(&self, why: &str) -> ImageError {
        ImageError::Malformed(format!("{} from {}: {why}", self.reference, self.reference.registry))
    }

    fn failure(&self, what: &str, class: &str, detail: &str) -> ImageError {
        let r = self.reference;
        ImageError::Registry(format!("pulling {r} from {}: {what}: {class}: {detail}", r.registry))
    }

    /// Turns an oci-client error into one that names the reference, the registry and what
    /// failed: unauthorized, not found, network, digest mismatch.
    fn fail(&self, what: &str, e: OciDistributionError) -> ImageError {
        let r = self.reference;
        let (class, detail) = classify(&e);
        match class {
            "not found" if what == "the manifest" => {
                ImageError::NotFound(format!("{r}: not found in the registry {} ({detail})", r.registry))
            }
            "unauthorized" => {
                let hint = match &self.credentials {
                    Some(path) => format!("the registry refused the credentials from {}", path.display()),
                    None => {
                        "no credentials for it in the docker config file; the repository may also not exist".to_owned()
                    }
                };
                self.failure(what, class, &format!("{detail} ({hint})"))
            }
            // HTTPS spoken to a plain-HTTP server fails in the TLS handshake.
            "network error"
                if ["tls", "certificate", "corrupt message"]
                    .iter()
                    .any(|w| detail.to_ascii_lowercase().contains(w)) =>
            {
                let hint = "(if it serves plain HTTP, list it as an insecure registry)";
                self.failure(what, class, &format!("{detail} {hint}"))
            }
            _ => self.failure(what, class, &detail),
        }
    }
}

fn warn(text: &str) {
    let _ = writeln!(io::stderr().lock(), "warning: {text}");
}
