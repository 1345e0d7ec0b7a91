//! Store commands: `image save`, `image tag`, `image inspect`, `image history`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::anyhow;
use serde_json::json;

use super::image::{failure, open_store};
use super::{EXIT_INVALID, Failure, GlobalOptions, emit, format};
use crate::image::{ImageError, ImageRecord, Reference, Store, save};

/// `berth image save`.
#[derive(Debug, clap::Args)]
pub struct SaveArgs {
    /// Write to this file instead of standard output.
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    /// Images (names or ids).
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// `berth image tag`.
#[derive(Debug, clap::Args)]
pub struct TagArgs {
    /// The image (name or id).
    pub source: String,
    /// The new name.
    pub target: String,
}

/// `berth image inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Images (names or ids).
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// `berth image history`.
#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// Do not truncate the output.
    #[arg(long)]
    pub no_trunc: bool,
    /// Print only image ids.
    #[arg(short, long)]
    pub quiet: bool,
    /// The image (name or id).
    pub image: String,
}

fn resolve(store: &Store, name: &str) -> Result<ImageRecord, Failure> {
    store.resolve(name).map_err(failure)?.ok_or_else(|| failure(ImageError::NotFound(name.to_owned())))
}

pub(super) fn save(global: &GlobalOptions, args: &SaveArgs) -> Result<(), Failure> {
    let store = open_store(global)?;
    let writer = |dir: &std::path::Path, out: &mut dyn Write| crate::build::layer_tar::write_layer_tar(dir, out);
    match &args.output {
        Some(path) => {
            // Written beside and renamed: a failed save leaves no half archive under the name.
            let name = path
                .file_name()
                .ok_or_else(|| Failure { code: EXIT_INVALID, error: anyhow!("{}: not a file name", path.display()) })?;
            let tmp = path.with_file_name(format!(".{}.berth-{}.tmp", name.to_string_lossy(), std::process::id()));
            let file = std::fs::File::create(&tmp)
                .map_err(|e| Failure { code: 1, error: anyhow!("{}: {e}", tmp.display()) })?;
            let saved = save::save(&store, &args.images, &writer, std::io::BufWriter::new(file))
                .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| ImageError::io(path, e)));
            if saved.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            saved.map_err(failure)
        }
        None if std::io::stdout().is_terminal() => Err(Failure {
            code: 1,
            error: anyhow!("refusing to write an image archive to a terminal: use -o or redirect the output"),
        }),
        None => save::save(&store, &args.images, &writer, std::io::BufWriter::new(std::io::stdout().lock()))
            .map_err(failure),
    }
}

pub(super) fn tag(global: &GlobalOptions, args: &TagArgs) -> Result<(), Failure> {
    let store = open_store(global)?;
    let target: Reference = args.target.parse().map_err(failure)?;
    if target.digest.is_some() {
        return Err(Failure { code: EXIT_INVALID, error: anyhow!("{}: a tag cannot name a digest", args.target) });
    }
    let record = resolve(&store, &args.source)?;
    store.commit(&record, &[target]).map_err(failure)
}

/// docker's `image inspect` document for one image.
fn inspect_one(store: &Store, record: &ImageRecord) -> Result<serde_json::Value, Failure> {
    let names = store.names().map_err(failure)?;
    let refs: Vec<Reference> =
        names.iter().filter(|(_, id)| **id == record.id).filter_map(|(name, _)| name.parse().ok()).collect();
    let tags: Vec<String> = refs.iter().filter(|r| r.digest.is_none()).map(Reference::familiar).collect();
    let digests: Vec<String> = match &record.manifest {
        Some(m) => {
            let mut repos: Vec<String> = refs.iter().map(|r| format!("{}@{m}", r.familiar_repository())).collect();
            repos.dedup();
            repos
        }
        None => Vec::new(),
    };
    let c = &record.config;
    let mut doc = json!({
        "Id": record.id.to_string(),
        "RepoTags": tags,
        "RepoDigests": digests,
        "Parent": "",
        "Comment": c.comment.clone().unwrap_or_default(),
        "Created": c.created.clone().unwrap_or_default(),
        "DockerVersion": "",
        "Author": c.author.clone().unwrap_or_default(),
        "Config": c.config,
        "Architecture": c.architecture,
        "Variant": c.variant,
        "Os": c.os,
        "Size": record.size(),
        "RootFS": { "Type": "layers", "Layers": c.rootfs.diff_ids.iter().map(ToString::to_string).collect::<Vec<_>>() },
        "Metadata": { "LastTagTime": "0001-01-01T00:00:00Z" },
    });
    if c.variant.is_none()
        && let Some(fields) = doc.as_object_mut()
    {
        fields.shift_remove("Variant");
    }
    Ok(doc)
}

pub(super) fn inspect(global: &GlobalOptions, args: &InspectArgs) -> Result<(), Failure> {
    let store = open_store(global)?;
    let mut docs = Vec::new();
    let mut missing = Vec::new();
    for name in &args.images {
        match store.resolve(name).map_err(failure)? {
            Some(record) => docs.push(inspect_one(&store, &record)?),
            None => missing.push(name.clone()),
        }
    }
    // docker prints what it found, with four-space indents, then fails for the rest.
    let mut text = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut text, formatter);
    serde::Serialize::serialize(&docs, &mut ser).map_err(|e| Failure { code: 1, error: e.into() })?;
    text.push(b'\n');
    emit(&String::from_utf8_lossy(&text))?;
    match missing.first() {
        Some(name) => Err(Failure { code: 1, error: anyhow!("no such image: {name}") }),
        None => Ok(()),
    }
}

/// One row of `image history`, newest first.
struct Step {
    created: String,
    created_by: String,
    size: u64,
    comment: String,
}

/// The build steps of `record`: history entries with the sizes of the layers they made.
fn steps(store: &Store, record: &ImageRecord) -> Vec<Step> {
    let mut layers = record.layers.iter();
    let mut out: Vec<Step> = record
        .config
        .history
        .iter()
        .map(|h| {
            let text = |key: &str| h.get(key).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
            let empty = h.get("empty_layer").and_then(serde_json::Value::as_bool).unwrap_or(false);
            let size = if empty {
                0
            } else {
                layers.next().map_or(0, |l| if l.size > 0 { l.size } else { store.layer_size(&l.diff_id) })
            };
            Step { created: text("created"), created_by: text("created_by"), size, comment: text("comment") }
        })
        .collect();
    // Layers without a history entry (an image made by hand) still show.
    out.extend(layers.map(|l| Step {
        created: String::new(),
        created_by: String::new(),
        size: l.size,
        comment: String::new(),
    }));
    out.reverse();
    out
}

pub(super) fn history(global: &GlobalOptions, args: &HistoryArgs) -> Result<(), Failure> {
    let store = open_store(global)?;
    let record = resolve(&store, &args.image)?;
    let steps = steps(&store, &record);
    let id = if args.no_trunc { record.id.to_string() } else { record.id.short().to_owned() };
    let image_of = |i: usize| if i == 0 { id.clone() } else { "<missing>".to_owned() };
    if args.quiet {
        return emit(&(0..steps.len()).map(|i| format!("{}\n", image_of(i))).collect::<String>());
    }
    let mut table = vec![["IMAGE".to_owned(), "CREATED".into(), "CREATED BY".into(), "SIZE".into(), "COMMENT".into()]];
    for (i, step) in steps.iter().enumerate() {
        let created_by = if args.no_trunc || step.created_by.chars().count() <= 45 {
            step.created_by.clone()
        } else {
            format!("{}…", step.created_by.chars().take(44).collect::<String>())
        };
        table.push([
            image_of(i),
            if step.created.is_empty() { "N/A".to_owned() } else { step.created.clone() },
            created_by,
            format::size(step.size, format::Units::Decimal),
            step.comment.clone(),
        ]);
    }
    emit(&format::table(&table))
}
