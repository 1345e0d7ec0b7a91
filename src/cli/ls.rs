//! `berth ls`: the projects of the state root, as `docker compose ls` lists them: each project
//! directory under `<root>/projects/` with containers (from its supervisor, or running ones on
//! disk when it is gone), their states counted, and the stack files its supervisor was started
//! with. No stack file is read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::anyhow;
use serde::Serialize;

use super::{EXIT_INVALID, Failure, GlobalOptions, emit};

/// `berth ls`.
#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// Show stopped projects too (and count their exited containers).
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only project names.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// `table` (default) or `json`.
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    pub format: String,
    /// Only projects whose name contains NAME (`name=NAME`).
    #[arg(long, value_name = "name=NAME")]
    pub filter: Vec<String>,
}

/// One project, with compose's JSON field names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Stack {
    name: String,
    /// Containers by state, `exited(1), running(2)`.
    status: String,
    /// The stack files, comma-separated.
    config_files: String,
}

/// The file, in a project directory, that lists the stack files its supervisor loaded.
const CONFIG_FILES: &str = "config-files";

/// Records, in project directory `dir`, the absolute paths of the stack files `options` name
/// (or that were found), for `ls`. `up` calls it before it starts the supervisor.
pub(super) fn record_config_files(dir: &Path, options: &crate::spec::ProjectOptions) -> Result<(), Failure> {
    let files = crate::spec::load::resolve_files(options)?;
    let text: String = files.iter().map(|f| format!("{}\n", f.display())).collect();
    crate::fsutil::write_atomic(&dir.join(CONFIG_FILES), text.as_bytes())?;
    Ok(())
}

/// The absolute stack files the project's supervisor was last started with.
pub(super) fn recorded_config_files(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(dir.join(CONFIG_FILES)).unwrap_or_default();
    text.lines().filter(|l| !l.is_empty()).map(PathBuf::from).collect()
}

fn config_files(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join(CONFIG_FILES)).unwrap_or_default();
    text.lines().filter(|l| !l.is_empty()).collect::<Vec<_>>().join(",")
}

/// compose's STATUS: each state with its count, states in alphabetical order.
fn combined_status<'a>(states: impl IntoIterator<Item = &'a str>) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for state in states {
        *counts.entry(state).or_default() += 1;
    }
    counts.iter().map(|(state, n)| format!("{state}({n})")).collect::<Vec<_>>().join(", ")
}

pub(super) fn ls(global: &GlobalOptions, args: &LsArgs) -> Result<(), Failure> {
    let mut names = Vec::new();
    for filter in &args.filter {
        match filter.split_once('=') {
            Some(("name", name)) => names.push(name.to_owned()),
            _ => {
                return Err(Failure {
                    code: EXIT_INVALID,
                    error: anyhow!("invalid filter {filter:?}: only name=NAME is supported"),
                });
            }
        }
    }
    let root = global.state_root();
    let mut stacks = Vec::new();
    for (project, dir) in project_dirs(&root) {
        if !names.iter().all(|n| project.contains(n.as_str())) {
            continue;
        }
        let containers = super::ps::containers(global, &project);
        let states: Vec<&str> =
            containers.iter().map(|c| c.state.as_str()).filter(|s| args.all || *s != "exited").collect();
        if states.is_empty() {
            continue;
        }
        stacks.push(Stack { status: combined_status(states), config_files: config_files(&dir), name: project });
    }
    if args.quiet {
        return emit(&stacks.iter().map(|s| format!("{}\n", s.name)).collect::<String>());
    }
    if args.format == "json" {
        let mut text = serde_json::to_string(&stacks).map_err(|e| Failure { code: 1, error: e.into() })?;
        text.push('\n');
        return emit(&text);
    }
    let mut rows = vec![["NAME", "STATUS", "CONFIG FILES"].map(String::from)];
    rows.extend(stacks.into_iter().map(|s| [s.name, s.status, s.config_files]));
    emit(&tabwriter(&rows))
}

/// The project directories under `<root>/projects`, by name.
fn project_dirs(root: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(root.join("projects")) else { return Vec::new() };
    let mut dirs: Vec<(String, PathBuf)> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
        .collect();
    dirs.sort();
    dirs
}

/// Columns as compose's tabwriter sets them (minimum width 20, padding 3); the last column is
/// not padded.
fn tabwriter<const N: usize>(rows: &[[String; N]]) -> String {
    let widths: Vec<usize> =
        (0..N).map(|c| rows.iter().map(|r| r[c].chars().count() + 3).max().unwrap_or(0).max(20)).collect();
    let mut out = String::new();
    for row in rows {
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == N {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}", w = widths[c]));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_counts_states_in_order_and_the_table_pads_like_compose() {
        assert_eq!(combined_status(["running", "exited", "running"]), "exited(1), running(2)");
        assert_eq!(combined_status([]), "");
        let rows = [
            ["NAME", "STATUS", "CONFIG FILES"].map(String::from),
            ["shop", "running(3)", "/srv/shop/compose.yaml"].map(String::from),
        ];
        assert_eq!(
            tabwriter(&rows),
            "NAME                STATUS              CONFIG FILES\n\
             shop                running(3)          /srv/shop/compose.yaml\n"
        );
        let long = [["a-rather-long-project-name", "x", "y"].map(String::from)];
        assert_eq!(tabwriter(&long), "a-rather-long-project-name   x                   y\n");
    }
}
