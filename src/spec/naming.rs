//! Project names and paths, with compose's precedence and normalisation rules.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::error::{LoadError, SpecError, Stage};
use super::load::ProjectOptions;
use super::normalize::read::resolve_path;
use super::yaml::Node;

/// `path` made absolute against `base`, with `.` and `..` folded.
pub fn absolute(base: &Path, path: &Path) -> PathBuf {
    resolve_path(base, &path.to_string_lossy())
}

/// compose's normalisation for a name taken from a directory: lowercase, only `[a-z0-9_-]`,
/// no leading `_` or `-`.
pub fn normalize_project_name(raw: &str) -> String {
    let kept: String = raw
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect();
    kept.trim_start_matches(['_', '-']).to_owned()
}

/// Whether an explicitly given name is already normal.
pub fn is_valid_project_name(name: &str) -> bool {
    !name.is_empty() && normalize_project_name(name) == name
}

/// The name interpolation sees as `COMPOSE_PROJECT_NAME` (which the caller has checked is
/// not set already): `-p`, else the declared `name:`, else the directory's name — the first
/// that is a valid name.
pub(crate) fn provisional_name(opts: &ProjectOptions, declared: Option<&str>, project_dir: &Path) -> Option<String> {
    let from_dir = project_dir.file_name().map(|n| normalize_project_name(&n.to_string_lossy()));
    [opts.project_name.clone(), declared.map(str::to_owned), from_dir]
        .into_iter()
        .flatten()
        .find(|n| is_valid_project_name(n))
}

/// `-p` > `COMPOSE_PROJECT_NAME` > `name:` > the project directory's name.
pub(crate) fn project_name(
    opts: &ProjectOptions,
    env: &BTreeMap<String, String>,
    doc: &Node,
    project_dir: &Path,
) -> Result<String, LoadError> {
    let explicit = opts
        .project_name
        .clone()
        .map(|n| (n, "-p"))
        .or_else(|| {
            env.get("COMPOSE_PROJECT_NAME").filter(|n| !n.is_empty()).map(|n| (n.clone(), "COMPOSE_PROJECT_NAME"))
        })
        .or_else(|| doc.get("name").and_then(Node::scalar_string).filter(|n| !n.is_empty()).map(|n| (n, "name")));
    if let Some((name, source)) = explicit {
        if is_valid_project_name(&name) {
            return Ok(name);
        }
        let message = format!(
            "invalid project name {name:?} (from {source}): use only lowercase letters, digits, dashes and underscores, starting with a letter or digit"
        );
        return Err(match doc.get("name").filter(|_| source == "name") {
            Some(node) => SpecError::at(Stage::Semantic, &node.location, "name", message),
            None => SpecError::general(Stage::Semantic, message),
        }
        .into());
    }
    let dir_name = project_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let name = normalize_project_name(&dir_name);
    if name.is_empty() {
        return Err(SpecError::general(
            Stage::Semantic,
            format!(
                "cannot derive a project name from the directory {}: give one with -p or name:",
                project_dir.display()
            ),
        )
        .into());
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_names_are_normalised_as_compose_does() {
        assert_eq!(normalize_project_name("My App"), "myapp");
        assert_eq!(normalize_project_name("_-web.v2"), "webv2");
        assert_eq!(normalize_project_name("nginx-flask_mysql"), "nginx-flask_mysql");
        assert_eq!(normalize_project_name("..."), "");
    }

    #[test]
    fn explicit_names_must_already_be_normal() {
        assert!(is_valid_project_name("demo-1"));
        assert!(!is_valid_project_name("Demo"));
        assert!(!is_valid_project_name("-demo"));
        assert!(!is_valid_project_name(""));
    }

    #[test]
    fn precedence_is_flag_then_env_then_name_then_directory() {
        let doc = crate::spec::yaml::parse("name: fromfile\nservices: {}\n", None).unwrap().unwrap();
        let dir = Path::new("/tmp/Some Dir");
        let mut opts = ProjectOptions::default();
        let mut env = BTreeMap::new();
        assert_eq!(project_name(&opts, &env, &doc, dir).unwrap(), "fromfile");
        env.insert("COMPOSE_PROJECT_NAME".into(), "fromenv".into());
        assert_eq!(project_name(&opts, &env, &doc, dir).unwrap(), "fromenv");
        opts.project_name = Some("fromflag".into());
        assert_eq!(project_name(&opts, &env, &doc, dir).unwrap(), "fromflag");
        let empty = crate::spec::yaml::parse("services: {}\n", None).unwrap().unwrap();
        assert_eq!(project_name(&ProjectOptions::default(), &BTreeMap::new(), &empty, dir).unwrap(), "somedir");
    }
}
