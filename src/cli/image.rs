//! Image commands: `pull`, `load`, `import`, `images`, `rmi`, `image prune` (and the store
//! commands of `image_store`).

use std::path::PathBuf;

use super::{EXIT_INVALID, Failure, GlobalOptions, emit, format};
use crate::image::registry::{self, Progress, PullOptions};
use crate::image::{ImageError, Reference, Store, archive, host};

/// `berth pull` flags.
#[derive(Debug, clap::Args)]
pub struct PullArgs {
    /// The image (`busybox`, `ghcr.io/org/app:1`, `localhost:5000/x@sha256:…`).
    pub reference: String,
    /// Allow plain HTTP for this registry (host[:port]); loopback registries are always allowed.
    #[arg(long = "insecure-registry", value_name = "HOST", env = "BERTH_INSECURE_REGISTRIES", value_delimiter = ',')]
    pub insecure_registries: Vec<String>,
    /// Print nothing but errors.
    #[arg(short, long)]
    pub quiet: bool,
    /// Platform to pull from a multi-platform image (`linux/arm64`); default: this machine's.
    #[arg(long)]
    pub platform: Option<String>,
}

/// `berth load` flags.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// An OCI image layout (directory or tar) or a `docker save` archive.
    #[arg(short, long, value_name = "FILE|DIR")]
    pub input: PathBuf,
    /// Print only the loaded image ids.
    #[arg(short, long)]
    pub quiet: bool,
}

/// `berth import` flags.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// A root filesystem tarball (plain, gzip or zstd); `-` reads standard input.
    pub file: PathBuf,
    /// The name to give the image.
    pub reference: String,
    /// Default command of the image (exec form, repeatable: `--cmd sh --cmd -c --cmd 'echo hi'`).
    #[arg(long = "cmd", value_name = "ARG")]
    pub cmd: Vec<String>,
    /// Environment of the image (`KEY=VALUE`, repeatable).
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
}

/// Output formats of `images`.
#[derive(Clone, Copy, Debug, Default, clap::ValueEnum)]
pub enum ImagesFormat {
    /// A table.
    #[default]
    Table,
    /// A JSON array.
    Json,
}

/// `berth images` flags.
#[derive(Debug, clap::Args)]
pub struct ImagesArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: ImagesFormat,
    /// Print only image ids.
    #[arg(short, long)]
    pub quiet: bool,
}

/// `berth rmi` flags.
#[derive(Debug, clap::Args)]
pub struct RmiArgs {
    /// Images to remove (names or ids).
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// `berth image …`.
#[derive(Debug, clap::Subcommand)]
pub enum ImageCommand {
    /// List images.
    #[command(alias = "list")]
    Ls(ImagesArgs),
    /// Pull an image from a registry.
    Pull(PullArgs),
    /// Load images from an archive or an OCI layout.
    Load(LoadArgs),
    /// Make an image from a root filesystem tarball.
    Import(ImportArgs),
    /// Remove images.
    Rm(RmiArgs),
    /// Remove images without a name, and layers and blobs nothing uses.
    Prune,
    /// Save images to a tar archive (docker-archive with an OCI layout) that `docker load`,
    /// `podman load` and `berth load` read.
    Save(super::image_store::SaveArgs),
    /// Give an image another name.
    Tag(super::image_store::TagArgs),
    /// Show images' details as JSON.
    Inspect(super::image_store::InspectArgs),
    /// Show the history of an image.
    History(super::image_store::HistoryArgs),
}

pub(super) fn failure(e: ImageError) -> Failure {
    let code = match e {
        ImageError::InvalidReference(_) | ImageError::NotFound(_) => EXIT_INVALID,
        _ => 1,
    };
    Failure { code, error: e.into() }
}

pub(super) fn open_store(global: &GlobalOptions) -> Result<Store, Failure> {
    Store::open(&global.state_root()).map_err(failure)
}

fn parse_reference(text: &str) -> Result<Reference, Failure> {
    text.parse().map_err(failure)
}

pub(super) fn dispatch(global: &GlobalOptions, cmd: ImageCommand) -> Result<(), Failure> {
    match cmd {
        ImageCommand::Ls(a) => images(global, &a),
        ImageCommand::Pull(a) => pull(global, &a),
        ImageCommand::Load(a) => load(global, &a),
        ImageCommand::Import(a) => import(global, &a),
        ImageCommand::Rm(a) => rmi(global, &a),
        ImageCommand::Prune => prune(global),
        ImageCommand::Save(a) => super::image_store::save(global, &a),
        ImageCommand::Tag(a) => super::image_store::tag(global, &a),
        ImageCommand::Inspect(a) => super::image_store::inspect(global, &a),
        ImageCommand::History(a) => super::image_store::history(global, &a),
    }
}

pub(super) fn pull(global: &GlobalOptions, args: &PullArgs) -> Result<(), Failure> {
    let store = open_store(global)?;
    let reference = parse_reference(&args.reference)?;
    let opts = PullOptions {
        insecure_registries: args.insecure_registries.clone(),
        docker_config: None,
        progress: if args.quiet { Progress::Quiet } else { Progress::Auto },
        platform: args.platform.clone(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(registry::pull(&store, &reference, &opts)).map_err(failure)?;
    if args.quiet {
        emit(&format!("{reference}\n"))?;
    }
    Ok(())
}

pub(super) fn load(global: &GlobalOptions, args: &LoadArgs) -> Result<(), Failure> {
    let store = open_store(global)?;
    let loaded = archive::load(&store, &args.input).map_err(failure)?;
    let mut out = String::new();
    for image in loaded {
        if args.quiet || image.names.is_empty() {
            out.push_str(&format!("Loaded image ID: {}\n", image.record.id));
        }
        if !args.quiet {
            for name in &image.names {
                out.push_str(&format!("Loaded image: {}\n", name.familiar()));
            }
        }
    }
    emit(&out)
}

pub(super) fn import(global: &GlobalOptions, args: &ImportArgs) -> Result<(), Failure> {
    let store = open_store(global)?;
    let reference = parse_reference(&args.reference)?;
    let opts = archive::ImportOptions {
        cmd: (!args.cmd.is_empty()).then(|| args.cmd.clone()),
        env: args.env.clone(),
        working_dir: None,
    };
    let record = archive::import(&store, &args.file, &reference, &opts).map_err(failure)?;
    emit(&format!("{}\n", record.id))
}

pub(super) fn images(global: &GlobalOptions, args: &ImagesArgs) -> Result<(), Failure> {
    let store = open_store(global)?;
    host::ensure_host_image(&store).map_err(failure)?;
    let mut rows: Vec<(Option<Reference>, crate::image::ImageRecord)> = Vec::new();
    for (record, names) in store.list().map_err(failure)? {
        if names.is_empty() {
            rows.push((None, record));
        } else {
            rows.extend(names.into_iter().map(|n| (Some(n), record.clone())));
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    if args.quiet {
        let mut ids: Vec<String> = rows.iter().map(|(_, r)| r.id.short().to_owned()).collect();
        ids.dedup();
        return emit(&ids.iter().map(|i| format!("{i}\n")).collect::<String>());
    }
    match args.format {
        ImagesFormat::Json => {
            let items: Vec<serde_json::Value> = rows
                .iter()
                .map(|(name, r)| {
                    serde_json::json!({
                        "reference": name.as_ref().map(ToString::to_string),
                        "repository": name.as_ref().map(Reference::familiar_repository),
                        "tag": name.as_ref().and_then(|n| n.tag.clone()),
                        "id": r.id.to_string(),
                        "manifest": r.manifest.as_ref().map(ToString::to_string),
                        "created": r.config.created,
                        "size": r.size(),
                        "layers": r.layers.len(),
                    })
                })
                .collect();
            let text = serde_json::to_string_pretty(&items).map_err(|e| Failure { code: 1, error: e.into() })?;
            emit(&(text + "\n"))
        }
        ImagesFormat::Table => {
            let mut table =
                vec![["REPOSITORY".to_owned(), "TAG".into(), "IMAGE ID".into(), "CREATED".into(), "SIZE".into()]];
            for (name, r) in &rows {
                table.push([
                    name.as_ref().map_or_else(|| "<none>".into(), Reference::familiar_repository),
                    name.as_ref().and_then(|n| n.tag.clone()).unwrap_or_else(|| "<none>".into()),
                    r.id.short().to_owned(),
                    r.config.created.clone().unwrap_or_else(|| "-".into()),
                    format::size(r.size(), format::Units::Decimal),
                ]);
            }
            emit(&format::table(&table))
        }
    }
}

pub(super) fn rmi(global: &GlobalOptions, args: &RmiArgs) -> Result<(), Failure> {
    let store = open_store(global)?;
    let mut out = String::new();
    for name in &args.images {
        for line in store.remove(name).map_err(failure)? {
            out.push_str(&line);
            out.push('\n');
        }
    }
    emit(&out)
}

pub(super) fn prune(global: &GlobalOptions) -> Result<(), Failure> {
    let store = open_store(global)?;
    let r = store.prune().map_err(failure)?;
    emit(&format!("Deleted {} images, {} layers, {} blobs\n", r.images, r.layers, r.blobs))
}
