//! Rebasing relative host paths when a service or a whole file moves to another directory's
//! project (`extends` from another folder, `include`): the paths must keep meaning what they
//! meant in the file that wrote them.

use std::path::Path;

use super::normalize::read::resolve_path;
use super::yaml::{Node, Value};

/// Rewrites every relative host path in a raw service mapping to an absolute one under `dir`.
pub(crate) fn absolutize_service(service: &mut Node, dir: &Path) {
    let Some(map) = service.as_map_mut() else { return };
    if let Some(build) = map.get_mut("build") {
        match &mut build.value {
            Value::String(ctx) => rebase_string(ctx, dir),
            Value::Map(b) => {
                if let Some(ctx) = b.get_mut("context") {
                    rebase_node(ctx, dir);
                }
            }
            _ => {}
        }
    }
    for key in ["env_file", "label_file"] {
        if let Some(node) = map.get_mut(key) {
            match &mut node.value {
                Value::String(s) => rebase_string(s, dir),
                Value::Seq(items) => {
                    for item in items {
                        match &mut item.value {
                            Value::String(s) => rebase_string(s, dir),
                            Value::Map(m) => {
                                if let Some(p) = m.get_mut("path") {
                                    rebase_node(p, dir);
                                }
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
    }
    if let Some(Value::Seq(items)) = map.get_mut("volumes").map(|n| &mut n.value) {
        for item in items {
            match &mut item.value {
                Value::String(spec) if spec.starts_with('.') => {
                    if let Some((src, rest)) = spec.split_once(':') {
                        *spec = format!("{}:{rest}", resolve_path(dir, src).display());
                    }
                }
                Value::Map(m) => {
                    let is_bind = m.get("type").and_then(Node::as_str) == Some("bind");
                    if let (true, Some(src)) = (is_bind, m.get_mut("source")) {
                        rebase_node(src, dir);
                    }
                }
                _ => {}
            }
        }
    }
    if let Some(Value::Seq(rules)) =
        map.get_mut("develop").and_then(|d| d.as_map_mut()).and_then(|d| d.get_mut("watch")).map(|n| &mut n.value)
    {
        for rule in rules {
            if let Some(p) = rule.as_map_mut().and_then(|m| m.get_mut("path")) {
                rebase_node(p, dir);
            }
        }
    }
    if let Some(ext) = map.get_mut("extends").and_then(|e| e.as_map_mut()).and_then(|e| e.get_mut("file")) {
        rebase_node(ext, dir);
    }
}

/// Rewrites every relative path of a whole raw document to an absolute one under `dir`.
pub(crate) fn absolutize_document(doc: &mut Node, dir: &Path) {
    let Some(top) = doc.as_map_mut() else { return };
    if let Some(services) = top.get_mut("services").and_then(Node::as_map_mut) {
        services.values_mut().for_each(|s| absolutize_service(s, dir));
    }
    for section in ["secrets", "configs"] {
        if let Some(objects) = top.get_mut(section).and_then(Node::as_map_mut) {
            for obj in objects.values_mut() {
                if let Some(file) = obj.as_map_mut().and_then(|m| m.get_mut("file")) {
                    rebase_node(file, dir);
                }
            }
        }
    }
}

fn rebase_node(node: &mut Node, dir: &Path) {
    if let Value::String(s) = &mut node.value {
        rebase_string(s, dir);
    }
}

fn rebase_string(s: &mut String, dir: &Path) {
    // URLs and remote build contexts stay as they are; `~` means the same everywhere.
    if s.is_empty() || s.starts_with('/') || s.starts_with('~') || s.contains("://") || s.starts_with("git@") {
        return;
    }
    *s = resolve_path(dir, s).display().to_string();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::yaml::parse;

    #[test]
    fn relative_paths_are_rebased_and_others_kept() {
        let mut n = parse(
            "build: ./app\nenv_file: [a.env, {path: ./b.env}]\nvolumes: ['./data:/data', 'named:/x', {type: bind, source: ../c, target: /c}]\n",
            None,
        )
        .unwrap()
        .unwrap();
        absolutize_service(&mut n, Path::new("/srv/other"));
        let j = n.to_json();
        assert_eq!(j["build"], "/srv/other/app");
        assert_eq!(j["env_file"][0], "/srv/other/a.env");
        assert_eq!(j["env_file"][1]["path"], "/srv/other/b.env");
        assert_eq!(j["volumes"][0], "/srv/other/data:/data");
        assert_eq!(j["volumes"][1], "named:/x");
        assert_eq!(j["volumes"][2]["source"], "/srv/c");
    }
}
