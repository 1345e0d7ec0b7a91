//! Typed reads from the tree. The schema has already checked shapes, but values that came
//! through `${VAR}` arrive as strings where numbers or booleans are due, and every read must
//! still fail with a located error rather than a panic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::super::error::{SpecError, Stage};
use super::super::model;
use super::super::units;
use super::super::yaml::{Node, Value};

/// Collects errors while the normaliser walks on.
#[derive(Debug, Default)]
pub(crate) struct Reader {
    pub errors: Vec<SpecError>,
}

/// `parent.key`, or `parent["key.with.dots"]`.
pub(crate) fn child(parent: &str, key: &str) -> String {
    let plain = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (parent.is_empty(), plain) {
        (true, true) => key.to_owned(),
        (_, true) => format!("{parent}.{key}"),
        (_, false) => format!("{parent}[{key:?}]"),
    }
}

/// `parent[i]`.
pub(crate) fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

impl Reader {
    /// Records an error at `node`.
    pub fn error(&mut self, node: &Node, path: &str, message: impl Into<String>) {
        self.errors.push(SpecError::at(Stage::Semantic, &node.location, path, message));
    }

    /// A scalar as a string.
    pub fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match node.scalar_string() {
            Some(s) => Some(s),
            None if node.is_null() => None,
            None => {
                self.error(node, path, format!("must be a string, not {}", node.kind_name()));
                None
            }
        }
    }

    /// A string or a list of strings, as a list.
    pub fn strings(&mut self, node: &Node, path: &str) -> Vec<String> {
        match &node.value {
            Value::Seq(items) => {
                items.iter().enumerate().filter_map(|(i, n)| self.string(n, &index(path, i))).collect()
            }
            Value::Null => Vec::new(),
            _ => self.string(node, path).into_iter().collect(),
        }
    }

    /// A boolean, also from an interpolated `"true"` / `"false"`.
    pub fn boolean(&mut self, node: &Node, path: &str) -> Option<bool> {
        match &node.value {
            Value::Bool(b) => Some(*b),
            Value::Null => None,
            Value::String(s) => match s.to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" => Some(true),
                "false" | "no" | "off" | "0" | "" => Some(false),
                _ => {
                    self.error(node, path, format!("must be true or false, not {s:?}"));
                    None
                }
            },
            _ => {
                self.error(node, path, format!("must be true or false, not {}", node.kind_name()));
                None
            }
        }
    }

    /// An integer, also from an interpolated string.
    pub fn integer(&mut self, node: &Node, path: &str) -> Option<i64> {
        match &node.value {
            Value::Int(i) => Some(*i),
            Value::Null => None,
            Value::String(s) => {
                s.trim().parse().map_err(|_| self.error(node, path, format!("must be a whole number, not {s:?}"))).ok()
            }
            _ => {
                self.error(node, path, format!("must be a whole number, not {}", node.kind_name()));
                None
            }
        }
    }

    /// A non-negative integer.
    pub fn count(&mut self, node: &Node, path: &str) -> Option<u64> {
        let i = self.integer(node, path)?;
        u64::try_from(i).map_err(|_| self.error(node, path, format!("must not be negative, got {i}"))).ok()
    }

    /// A number, also from an interpolated string.
    pub fn number(&mut self, node: &Node, path: &str) -> Option<f64> {
        match &node.value {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::Null => None,
            Value::String(s) => match units::parse_cpus(s) {
                Ok(v) => Some(v),
                Err(e) => {
                    self.error(node, path, e.to_string());
                    None
                }
            },
            _ => {
                self.error(node, path, format!("must be a number, not {}", node.kind_name()));
                None
            }
        }
    }

    /// A Go-style duration (`1m30s`).
    pub fn duration(&mut self, node: &Node, path: &str) -> Option<model::Duration> {
        let text = self.string(node, path)?;
        match units::parse_duration(&text) {
            Ok(d) => Some(model::Duration(d)),
            Err(e) => {
                self.error(node, path, e.to_string());
                None
            }
        }
    }

    /// A byte size (`512m`, `1gb`, `1048576`).
    pub fn bytes(&mut self, node: &Node, path: &str) -> Option<u64> {
        let text = self.string(node, path)?;
        match units::parse_bytes(&text) {
            Ok(b) => Some(b),
            Err(e) => {
                self.error(node, path, e.to_string());
                None
            }
        }
    }

    /// A mapping or a `KEY=VALUE` list as a map; a list item with no `=` (or a null map value)
    /// gives `None`.
    pub fn key_values(&mut self, node: &Node, path: &str) -> BTreeMap<String, Option<String>> {
        let mut out = BTreeMap::new();
        match &node.value {
            Value::Map(map) => {
                for (k, v) in map {
                    let value = if v.is_null() { None } else { self.string(v, &child(path, k)) };
                    out.insert(k.clone(), value);
                }
            }
            Value::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    let Some(entry) = self.string(item, &index(path, i)) else { continue };
                    match entry.split_once('=') {
                        Some((k, v)) => out.insert(k.to_owned(), Some(v.to_owned())),
                        None => out.insert(entry, None),
                    };
                }
            }
            Value::Null => {}
            _ => self.error(node, path, format!("must be a mapping or a list of KEY=VALUE, not {}", node.kind_name())),
        }
        out
    }

    /// Like [`Reader::key_values`], with a missing value read as the empty string (labels, sysctls).
    pub fn labels(&mut self, node: &Node, path: &str) -> BTreeMap<String, String> {
        self.key_values(node, path).into_iter().map(|(k, v)| (k, v.unwrap_or_default())).collect()
    }

    /// A map of verbatim JSON for keys the model does not type.
    pub fn verbatim(map: &indexmap::IndexMap<String, Node>, known: &[&str]) -> BTreeMap<String, serde_json::Value> {
        map.iter().filter(|(k, _)| !known.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.to_json())).collect()
    }
}

/// Resolves a host path as compose does: `~` is the home directory, relative paths are taken
/// from `base`, and `.`/`..` components are folded.
pub(crate) fn resolve_path(base: &Path, raw: &str) -> PathBuf {
    let expanded = match raw.strip_prefix('~') {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => {
            let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/"), PathBuf::from);
            home.join(rest.trim_start_matches('/'))
        }
        _ => PathBuf::from(raw),
    };
    let joined = if expanded.is_absolute() { expanded } else { base.join(expanded) };
    let mut out = PathBuf::new();
    for part in joined.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_quote_odd_keys() {
        assert_eq!(child("", "services"), "services");
        assert_eq!(child("services", "web"), "services.web");
        assert_eq!(child("services.web.labels", "com.example"), "services.web.labels[\"com.example\"]");
        assert_eq!(index("services.web.ports", 2), "services.web.ports[2]");
    }

    #[test]
    fn resolve_folds_dots_and_expands_home() {
        let base = Path::new("/srv/app");
        assert_eq!(resolve_path(base, "./data/../db"), PathBuf::from("/srv/app/db"));
        assert_eq!(resolve_path(base, "/abs"), PathBuf::from("/abs"));
        assert_eq!(resolve_path(base, "../x"), PathBuf::from("/srv/x"));
        let home = std::env::var("HOME").unwrap_or_else(|_| "/".into());
        assert_eq!(resolve_path(base, "~/cfg"), Path::new(&home).join("cfg"));
    }

    #[test]
    fn interpolated_scalars_convert() {
        let mut r = Reader::default();
        let n = Node::string("0.5");
        assert_eq!(r.number(&n, "cpus"), Some(0.5));
        assert_eq!(r.boolean(&Node::string("true"), "tty"), Some(true));
        assert_eq!(r.integer(&Node::string("x"), "pids_limit"), None);
        assert_eq!(r.errors.len(), 1);
        assert!(r.errors[0].message.contains("whole number"));
    }

    #[test]
    fn key_values_accept_both_forms() {
        let mut r = Reader::default();
        let list = Node::new(Value::Seq(vec![Node::string("A=1"), Node::string("B"), Node::string("C=x=y")]));
        let m = r.key_values(&list, "environment");
        assert_eq!(m.get("A"), Some(&Some("1".to_owned())));
        assert_eq!(m.get("B"), Some(&None));
        assert_eq!(m.get("C"), Some(&Some("x=y".to_owned())));
    }
}
