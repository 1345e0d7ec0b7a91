//! `berth config`: validate and print the project.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::{Failure, GlobalOptions, emit, load_project};
use crate::spec::Project;
use crate::spec::validate::dependency_graph;

/// Output formats of `config`.
#[derive(Clone, Copy, Debug, Default, clap::ValueEnum)]
pub enum ConfigFormat {
    /// The normalised model as YAML.
    #[default]
    Yaml,
    /// The canonical compose JSON (`docker compose config --format json`).
    Json,
}

/// `berth config` flags.
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// Only these services (and what they depend on).
    pub services_filter: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: ConfigFormat,
    /// Only validate; print nothing but problems.
    #[arg(short, long)]
    pub quiet: bool,
    /// Print the service names, one per line.
    #[arg(long)]
    pub services: bool,
    /// Print the volume names.
    #[arg(long)]
    pub volumes: bool,
    /// Print the network names.
    #[arg(long)]
    pub networks: bool,
    /// Print the profile names.
    #[arg(long = "profiles", id = "list_profiles")]
    pub list_profiles: bool,
    /// Print the image names.
    #[arg(long)]
    pub images: bool,
    /// Print the interpolation environment (KEY=VALUE).
    #[arg(long)]
    pub environment: bool,
    /// Do not interpolate variables.
    #[arg(long)]
    pub no_interpolate: bool,
    /// Accept services with neither image nor build.
    #[arg(long)]
    pub no_consistency: bool,
    /// Write to this file instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

pub(super) fn run(global: &GlobalOptions, args: &ConfigArgs) -> Result<(), Failure> {
    let mut opts = global.project_options();
    opts.interpolate = !args.no_interpolate;
    opts.consistency = !args.no_consistency;
    opts.services = args.services_filter.clone();
    let mut project = load_project(&opts)?.project;
    if !args.services_filter.is_empty() {
        keep_only(&mut project, &args.services_filter)?;
    }
    if args.quiet {
        return Ok(());
    }
    let lines = |items: Vec<String>| items.into_iter().map(|s| s + "\n").collect::<String>();
    let text = if args.services {
        lines(project.services.keys().cloned().collect())
    } else if args.volumes {
        lines(project.volumes.keys().cloned().collect())
    } else if args.networks {
        lines(project.networks.keys().cloned().collect())
    } else if args.list_profiles {
        lines(project.all_profiles())
    } else if args.images {
        let images: BTreeSet<String> = project
            .services
            .values()
            .map(|s| s.image.clone().unwrap_or_else(|| format!("{}-{}", project.name, s.name)))
            .collect();
        lines(images.into_iter().collect())
    } else if args.environment {
        lines(project.environment.iter().map(|(k, v)| format!("{k}={v}")).collect())
    } else {
        render(&project, args.format, !args.no_interpolate)?
    };
    match &args.output {
        Some(path) => std::fs::write(path, text).map_err(Failure::from),
        None => emit(&text),
    }
}

/// Drops every service that the named ones do not need.
fn keep_only(project: &mut Project, names: &[String]) -> Result<(), Failure> {
    let graph = dependency_graph(project).map_err(|e| Failure { code: super::EXIT_INVALID, error: e.into() })?;
    let keep = graph.with_dependencies(names).map_err(|e| Failure { code: super::EXIT_INVALID, error: e.into() })?;
    project.services.retain(|name, _| keep.contains(name));
    Ok(())
}

/// The project as YAML or canonical JSON.
///
/// Interpolated output escapes every `$` as `$$`, as compose does, so that feeding the output
/// back to berth (or compose) yields the same values instead of interpolating them again.
pub fn render(project: &Project, format: ConfigFormat, interpolated: bool) -> Result<String, Failure> {
    let failed = |e: String| Failure { code: 1, error: anyhow::anyhow!("cannot print the project: {e}") };
    let mut value = serde_json::to_value(project).map_err(|e| failed(e.to_string()))?;
    if interpolated {
        escape_dollars(&mut value);
    }
    match format {
        ConfigFormat::Json => serde_json::to_string_pretty(&value).map(|s| s + "\n").map_err(|e| failed(e.to_string())),
        ConfigFormat::Yaml => serde_saphyr::to_string(&value).map_err(|e| failed(e.to_string())),
    }
}

fn escape_dollars(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s) if s.contains('$') => *s = s.replace('$', "$$"),
        serde_json::Value::Array(items) => items.iter_mut().for_each(escape_dollars),
        serde_json::Value::Object(map) => map.values_mut().for_each(escape_dollars),
        _ => {}
    }
}
