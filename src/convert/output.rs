//! Manifests as text: a YAML stream, a JSON `List`, or one file per object.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Value as Json, json};

use super::ConvertError;

/// Output formats of `convert`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// YAML documents separated by `---`.
    #[default]
    Yaml,
    /// JSON: a `v1` `List` of the objects, or one object per file.
    Json,
}

impl Format {
    fn extension(self) -> &'static str {
        match self {
            Format::Yaml => "yaml",
            Format::Json => "json",
        }
    }
}

fn one(object: &Json, format: Format) -> Result<String, ConvertError> {
    let failed = |e: String| ConvertError::Serialize(e);
    match format {
        Format::Yaml => serde_saphyr::to_string(object)
            .map(|s| if s.ends_with('\n') { s } else { s + "\n" })
            .map_err(|e| failed(e.to_string())),
        Format::Json => serde_json::to_string_pretty(object).map(|s| s + "\n").map_err(|e| failed(e.to_string())),
    }
}

/// All objects as one text: YAML documents, or a JSON `List` (what `kubectl get -o json`
/// prints for several objects, and what `kubectl apply -f` reads).
pub fn render(objects: &[Json], format: Format) -> Result<String, ConvertError> {
    match format {
        Format::Yaml => {
            let docs = objects.iter().map(|o| one(o, format)).collect::<Result<Vec<_>, _>>()?;
            Ok(docs.iter().map(|d| format!("---\n{d}")).collect())
        }
        Format::Json => one(&json!({"apiVersion": "v1", "kind": "List", "items": objects}), format),
    }
}

/// Writes one file per object into `dir` (created if missing), named `<kind>-<name>.<ext>`;
/// returns the files in object order.
pub fn write_dir(objects: &[Json], dir: &Path, format: Format) -> Result<Vec<PathBuf>, ConvertError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ConvertError::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut taken = BTreeSet::new();
    let mut files = Vec::new();
    for object in objects {
        let kind = object["kind"].as_str().unwrap_or("object").to_ascii_lowercase();
        let name = object["metadata"]["name"].as_str().unwrap_or("unnamed");
        let mut stem = format!("{kind}-{name}");
        let mut n = 2;
        while !taken.insert(stem.clone()) {
            stem = format!("{kind}-{name}-{n}");
            n += 1;
        }
        let path = dir.join(format!("{stem}.{}", format.extension()));
        std::fs::write(&path, one(object, format)?).map_err(io(&path))?;
        files.push(path);
    }
    Ok(files)
}
