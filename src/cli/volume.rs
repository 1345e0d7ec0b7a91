//! `berth volume ls|inspect|rm|prune` (docker's) and `berth volumes` (compose's): show and
//! remove the volumes under the state root, so none piles up unseen.

mod render;

use std::io::{BufRead, Write};

use anyhow::anyhow;

use super::{Failure, GlobalOptions, emit, format, load_project};
use crate::volume::{self, ANONYMOUS_LABEL, PROJECT_LABEL, Volume, VolumeError};
use render::Filters;

/// `berth volume` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum VolumeCommand {
    /// List volumes.
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Show volumes' details as JSON.
    Inspect(InspectArgs),
    /// Remove volumes no container uses.
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Remove unused volumes: anonymous ones, or all with -a.
    Prune(PruneArgs),
}

/// `berth volume ls` flags.
#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// Only names.
    #[arg(short, long)]
    pub quiet: bool,
    /// `table` (default), `json`, or a Go template (`table {{.Name}}\t{{.Labels}}`).
    #[arg(long)]
    pub format: Option<String>,
    /// `dangling=true|false`, `label=KEY[=VALUE]`, `name=NAME`, `driver=local` (repeatable).
    #[arg(short, long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
}

/// `berth volume inspect` flags.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// A Go template over each volume (`{{.Mountpoint}}`, `{{json .Labels}}`).
    #[arg(short, long)]
    pub format: Option<String>,
    /// Volumes.
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// `berth volume rm` flags.
#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// No error for volumes that do not exist (one in use is still refused).
    #[arg(short, long)]
    pub force: bool,
    /// Volumes.
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// `berth volume prune` flags.
#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// All unused volumes, not only anonymous ones.
    #[arg(short, long)]
    pub all: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub force: bool,
    /// `label=KEY[=VALUE]` (repeatable).
    #[arg(long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
}

/// `berth volumes` flags (compose's `volumes`).
#[derive(Debug, clap::Args)]
pub struct VolumesArgs {
    /// Only names.
    #[arg(short, long)]
    pub quiet: bool,
    /// `table` (default), `json`, or a Go template.
    #[arg(long)]
    pub format: Option<String>,
    /// Only volumes these services' containers mount (default: all the project's).
    pub services: Vec<String>,
}

fn failure(e: impl Into<anyhow::Error>) -> Failure {
    Failure { code: 1, error: e.into() }
}

pub(super) fn dispatch(global: &GlobalOptions, cmd: VolumeCommand) -> Result<(), Failure> {
    match cmd {
        VolumeCommand::Ls(a) => ls(global, &a),
        VolumeCommand::Inspect(a) => inspect(global, &a),
        VolumeCommand::Rm(a) => rm(global, &a),
        VolumeCommand::Prune(a) => prune(global, &a),
    }
}

fn ls(global: &GlobalOptions, args: &LsArgs) -> Result<(), Failure> {
    let filters =
        Filters::parse(&args.filters, &["dangling", "label", "name", "driver"]).map_err(|e| failure(anyhow!(e)))?;
    let volumes: Vec<Volume> =
        volume::list(&global.state_root()).map_err(failure)?.into_iter().filter(|v| filters.matches(v)).collect();
    let text = render::listing(&volumes, args.format.as_deref(), args.quiet).map_err(|e| failure(anyhow!(e)))?;
    emit(&text)
}

fn inspect(global: &GlobalOptions, args: &InspectArgs) -> Result<(), Failure> {
    let root = global.state_root();
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for name in &args.names {
        match volume::inspect(&root, name) {
            Ok(v) => found.push(v),
            Err(e) => errors.push(e),
        }
    }
    let text = match &args.format {
        None => render::inspect_json(&found),
        Some(template) => found
            .iter()
            .map(|v| render::inspect_template(v, template))
            .collect::<Result<String, String>>()
            .map_err(|e| failure(anyhow!(e)))?,
    };
    emit(&text)?;
    last_error(errors)
}

fn rm(global: &GlobalOptions, args: &RmArgs) -> Result<(), Failure> {
    let root = global.state_root();
    let mut errors = Vec::new();
    for name in &args.names {
        match volume::remove(&root, name) {
            Ok(_) => emit(&format!("{name}\n"))?,
            Err(VolumeError::NotFound(_)) if args.force => emit(&format!("{name}\n"))?,
            Err(e) => errors.push(e),
        }
    }
    last_error(errors)
}

/// Prints every error but the last, which becomes the command's failure (exit 1), as docker
/// goes on past a failed name and fails at the end.
fn last_error(mut errors: Vec<VolumeError>) -> Result<(), Failure> {
    let Some(last) = errors.pop() else { return Ok(()) };
    for e in &errors {
        eprintln!("error: {e}");
    }
    Err(failure(last))
}

fn prune(global: &GlobalOptions, args: &PruneArgs) -> Result<(), Failure> {
    let filters = Filters::parse(&args.filters, &["label"]).map_err(|e| failure(anyhow!(e)))?;
    if !args.force {
        let which = if args.all { "all local volumes" } else { "anonymous local volumes" };
        let question = format!(
            "WARNING! This will remove {which} not used by at least one container.\nAre you sure you want to continue? [y/N] "
        );
        if !confirm(&question)? {
            return Ok(());
        }
    }
    let root = global.state_root();
    let candidates: Vec<Volume> = volume::list(&root)
        .map_err(failure)?
        .into_iter()
        .filter(|v| v.used_by.is_empty())
        .filter(|v| args.all || v.meta.labels.contains_key(ANONYMOUS_LABEL))
        .filter(|v| filters.matches(v))
        .collect();
    let mut deleted = Vec::new();
    let mut reclaimed = 0u64;
    let mut errors = Vec::new();
    for v in candidates {
        // Checked again: a container may have started on it since the listing.
        match volume::remove(&root, &v.meta.name) {
            Ok(bytes) => {
                reclaimed += bytes;
                deleted.push(v.meta.name);
            }
            Err(VolumeError::NotFound(_) | VolumeError::InUse { .. }) => {}
            Err(e) => errors.push(e),
        }
    }
    let mut text = String::new();
    if !deleted.is_empty() {
        text.push_str("Deleted Volumes:\n");
        for name in &deleted {
            text.push_str(name);
            text.push('\n');
        }
        text.push('\n');
    }
    text.push_str(&format!("Total reclaimed space: {}\n", format::size(reclaimed, format::Units::Decimal)));
    emit(&text)?;
    last_error(errors)
}

/// Asks on stdout, reads a line from stdin: `y` or `yes` (any case) goes on.
fn confirm(question: &str) -> Result<bool, Failure> {
    let mut out = std::io::stdout().lock();
    out.write_all(question.as_bytes()).and_then(|()| out.flush())?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}

/// `berth volumes`: the project's volumes (those with its project label), or those its
/// services' containers mount.
pub(super) fn volumes(global: &GlobalOptions, args: &VolumesArgs) -> Result<(), Failure> {
    let loaded = load_project(&global.project_options())?;
    let project = &loaded.project;
    super::check_services(project, &args.services)?;
    let root = global.state_root();
    let mut volumes: Vec<Volume> = volume::list(&root)
        .map_err(failure)?
        .into_iter()
        .filter(|v| v.meta.labels.get(PROJECT_LABEL) == Some(&project.name))
        .collect();
    if !args.services.is_empty() {
        let containers = crate::runtime::state::list(&root).map_err(failure)?;
        let mounted: std::collections::BTreeSet<&str> = containers
            .iter()
            .filter_map(|f| f.spec.as_ref())
            .filter(|s| s.project == project.name && args.services.contains(&s.service))
            .flat_map(|s| s.mounts.iter())
            .filter_map(|m| match &m.kind {
                crate::runtime::spec::MountKind::Volume { name, .. } => Some(name.as_str()),
                _ => None,
            })
            .collect();
        volumes.retain(|v| mounted.contains(v.meta.name.as_str()));
    }
    let text = render::listing(&volumes, args.format.as_deref(), args.quiet).map_err(|e| failure(anyhow!(e)))?;
    emit(&text)
}
