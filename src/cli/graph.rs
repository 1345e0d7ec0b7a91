//! `berth graph`: the dependency graph that orders `up` and `down`.

use super::{EXIT_INVALID, Failure, GlobalOptions, emit, load_project};
use crate::spec::validate::dependency_graph;

/// Output formats of `graph`.
#[derive(Clone, Copy, Debug, Default, clap::ValueEnum)]
pub enum GraphFormat {
    /// Start waves and edges, for a terminal.
    #[default]
    Text,
    /// Graphviz.
    Dot,
    /// Mermaid flowchart.
    Mermaid,
}

/// `berth graph` flags.
#[derive(Debug, clap::Args)]
pub struct GraphArgs {
    /// Only these services and what they depend on.
    pub services: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: GraphFormat,
}

pub(super) fn run(global: &GlobalOptions, args: &GraphArgs) -> Result<(), Failure> {
    let mut opts = global.project_options();
    opts.services = args.services.clone();
    let mut project = load_project(&opts)?.project;
    let invalid = |e: crate::graph::GraphError| Failure { code: EXIT_INVALID, error: e.into() };
    if !args.services.is_empty() {
        let keep = dependency_graph(&project).map_err(invalid)?.with_dependencies(&args.services).map_err(invalid)?;
        project.services.retain(|name, _| keep.contains(name));
    }
    let graph = dependency_graph(&project).map_err(invalid)?;
    let text = match args.format {
        GraphFormat::Text => graph.render_text(),
        GraphFormat::Dot => graph.render_dot(),
        GraphFormat::Mermaid => graph.render_mermaid(),
    };
    emit(&text)
}
