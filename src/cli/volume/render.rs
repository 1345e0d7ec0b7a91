//! How volumes print, as docker prints them: `volume ls` tables and Go templates (a subset:
//! `{{.Field}}`, `{{.Label "key"}}`, `{{json .}}`), `--format json`, `volume inspect`'s JSON,
//! and `--filter` (dangling, label, name, driver).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::volume::{Volume, VolumeMeta};

/// docker's `volume ls` default.
const TABLE: &str = "table {{.Driver}}\t{{.Name}}";

/// The listing for `volume ls` / `compose volumes`: `format` is `table` (default), `json`, or a
/// template, with `table ` in front for a header and aligned columns.
pub(super) fn listing(volumes: &[Volume], format: Option<&str>, quiet: bool) -> Result<String, String> {
    let template = match format.unwrap_or("table") {
        "table" if quiet => "{{.Name}}",
        "table" | "" => TABLE,
        "json" => "{{json .}}",
        other => other,
    };
    let template = template.replace("\\t", "\t").replace("\\n", "\n");
    let (table, body) = match template.strip_prefix("table") {
        Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => (true, rest.trim_start().to_owned()),
        _ => (false, template.clone()),
    };
    let parts = parse(&body)?;
    let mut lines = Vec::new();
    if table {
        lines.push(parts.iter().map(Part::header).collect::<String>());
    }
    for v in volumes {
        lines.push(parts.iter().map(|p| p.value(v)).collect::<Result<String, String>>()?);
    }
    if table {
        return Ok(tabwrite(&lines));
    }
    Ok(lines.iter().map(|l| format!("{l}\n")).collect())
}

/// `volume inspect`: docker's object per volume, indented by four spaces.
pub(super) fn inspect_json(volumes: &[Volume]) -> String {
    let values: Vec<Value> = volumes.iter().map(inspect_value).collect();
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    if serde::Serialize::serialize(&values, &mut ser).is_err() {
        return "[]\n".to_owned();
    }
    let mut text = String::from_utf8_lossy(&out).into_owned();
    text.push('\n');
    text
}

/// One volume as docker's inspect shows it (fields in docker's order; empty maps are `null`).
pub(super) fn inspect_value(v: &Volume) -> Value {
    let map_or_null = |m: &BTreeMap<String, String>| if m.is_empty() { Value::Null } else { json!(m) };
    json!({
        "CreatedAt": v.meta.created_at,
        "Driver": v.meta.driver,
        "Labels": map_or_null(&v.meta.labels),
        "Mountpoint": v.mountpoint.display().to_string(),
        "Name": v.meta.name,
        "Options": map_or_null(&v.meta.options),
        "Scope": "local",
    })
}

/// `volume inspect --format`: `{{.Field}}`, `{{json .}}`, `{{json .Field}}`,
/// `{{index .Labels "key"}}` over the inspect object.
pub(super) fn inspect_template(v: &Volume, template: &str) -> Result<String, String> {
    let object = inspect_value(v);
    let mut out = String::new();
    let mut rest = template.replace("\\t", "\t").replace("\\n", "\n");
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("}}").ok_or_else(|| format!("template: unclosed action in {template:?}"))?;
        let action = rest[start + 2..start + end].trim().to_owned();
        out.push_str(&eval_inspect(&object, &action)?);
        rest = rest[start + end + 2..].to_owned();
    }
    out.push_str(&rest);
    out.push('\n');
    Ok(out)
}

fn eval_inspect(object: &Value, action: &str) -> Result<String, String> {
    let words: Vec<&str> = action.split_whitespace().collect();
    let field = |path: &str| -> Result<Value, String> {
        if path == "." {
            return Ok(object.clone());
        }
        let key = path.strip_prefix('.').ok_or_else(|| format!("template: cannot evaluate {action:?}"))?;
        object.get(key).cloned().ok_or_else(|| format!("template: can't evaluate field {key}"))
    };
    match words.as_slice() {
        ["json", path] => Ok(field(path)?.to_string()),
        ["index", path, key] => {
            let key = key.trim_matches('"');
            Ok(field(path)?.get(key).and_then(Value::as_str).unwrap_or("<no value>").to_owned())
        }
        [path] => Ok(match field(path)? {
            Value::String(s) => s,
            Value::Null => "<no value>".to_owned(),
            Value::Object(map) => {
                let items: Vec<String> =
                    map.iter().map(|(k, v)| format!("{k}:{}", v.as_str().unwrap_or_default())).collect();
                format!("map[{}]", items.join(" "))
            }
            other => other.to_string(),
        }),
        _ => Err(format!("template: cannot evaluate {action:?}")),
    }
}

/// A piece of a `volume ls` template.
#[derive(Debug, PartialEq)]
enum Part {
    Text(String),
    Field(String),
    Label(String),
    Json,
}

fn parse(template: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            parts.push(Part::Text(rest[..start].to_owned()));
        }
        let end = rest[start..].find("}}").ok_or_else(|| format!("template: unclosed action in {template:?}"))?;
        let action = rest[start + 2..start + end].trim();
        let words: Vec<&str> = action.split_whitespace().collect();
        parts.push(match words.as_slice() {
            ["json", "."] => Part::Json,
            [".Label", key] => Part::Label(key.trim_matches('"').to_owned()),
            [field] if FIELDS.iter().any(|(f, _)| Some(*f) == field.strip_prefix('.')) => {
                Part::Field(field.trim_start_matches('.').to_owned())
            }
            [field] if field.starts_with('.') => {
                return Err(format!(
                    "template: :1:{}: executing \"\" at <{field}>: can't evaluate field {} in type *formatter.volumeContext",
                    start + 3,
                    &field[1..]
                ));
            }
            _ => return Err(format!("template: unsupported action {{{{{action}}}}}")),
        });
        rest = &rest[start + end + 2..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_owned()));
    }
    Ok(parts)
}

/// The fields of docker's volume context and their table headers.
const FIELDS: [(&str, &str); 10] = [
    ("Availability", "AVAILABILITY"),
    ("Driver", "DRIVER"),
    ("Group", "GROUP"),
    ("Labels", "LABELS"),
    ("Links", "LINKS"),
    ("Mountpoint", "MOUNTPOINT"),
    ("Name", "VOLUME NAME"),
    ("Scope", "SCOPE"),
    ("Size", "SIZE"),
    ("Status", "STATUS"),
];

impl Part {
    fn header(&self) -> String {
        match self {
            Part::Text(t) => t.clone(),
            Part::Field(f) => FIELDS.iter().find(|(n, _)| n == f).map_or(f.to_uppercase(), |(_, h)| (*h).to_owned()),
            Part::Label(_) => "LABEL".to_owned(),
            Part::Json => String::new(),
        }
    }

    fn value(&self, v: &Volume) -> Result<String, String> {
        Ok(match self {
            Part::Text(t) => t.clone(),
            Part::Field(f) => field(v, f),
            Part::Label(key) => v.meta.labels.get(key).cloned().unwrap_or_default(),
            Part::Json => {
                let mut object = serde_json::Map::new();
                for (name, _) in FIELDS {
                    object.insert(name.to_owned(), Value::String(field(v, name)));
                }
                Value::Object(object).to_string()
            }
        })
    }
}

fn field(v: &Volume, name: &str) -> String {
    match name {
        "Driver" => v.meta.driver.clone(),
        "Labels" => labels(&v.meta),
        "Mountpoint" => v.mountpoint.display().to_string(),
        "Name" => v.meta.name.clone(),
        "Scope" => "local".to_owned(),
        // Cluster volumes' fields, and Size (docker fills it only for `system df -v`).
        _ => "N/A".to_owned(),
    }
}

/// `k=v,k2=v2`, sorted.
fn labels(meta: &VolumeMeta) -> String {
    meta.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// Go's tabwriter as docker configures it (minimum width 10, padding 3): every tab-terminated
/// cell is padded to its column's width; the last cell of a line is not.
fn tabwrite(lines: &[String]) -> String {
    let rows: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            let widest = rows.iter().filter(|r| c + 1 < r.len()).map(|r| r[c].chars().count()).max().unwrap_or(0);
            (widest + 3).max(10)
        })
        .collect();
    let mut out = String::new();
    for row in &rows {
        for (c, cell) in row.iter().enumerate() {
            if c + 1 < row.len() {
                out.push_str(&format!("{cell:<w$}", w = widths[c]));
            } else {
                out.push_str(cell);
            }
        }
        out.push('\n');
    }
    out
}

/// `--filter` as docker parses it: the same key repeated is an "or", different keys an "and".
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct Filters {
    dangling: Option<bool>,
    labels: Vec<(String, Option<String>)>,
    names: Vec<String>,
    drivers: Vec<String>,
}

impl Filters {
    /// Parses `key=value` filters; docker's messages for bad ones.
    pub(super) fn parse(args: &[String], allowed: &[&str]) -> Result<Self, String> {
        let mut filters = Filters::default();
        for arg in args {
            let (key, value) =
                arg.split_once('=').ok_or_else(|| format!("bad format of filter (expected name=value): {arg}"))?;
            if !allowed.contains(&key) {
                return Err(format!("Invalid filter '{key}'"));
            }
            match key {
                "dangling" => {
                    filters.dangling = Some(match value {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => return Err(format!("Invalid filter 'dangling=[{value}]'")),
                    });
                }
                "label" => filters.labels.push(match value.split_once('=') {
                    Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                    None => (value.to_owned(), None),
                }),
                "name" => filters.names.push(value.to_owned()),
                "driver" => filters.drivers.push(value.to_owned()),
                _ => return Err(format!("Invalid filter '{key}'")),
            }
        }
        Ok(filters)
    }

    /// Whether `v` passes every filter.
    pub(super) fn matches(&self, v: &Volume) -> bool {
        let dangling = v.used_by.is_empty();
        self.dangling.is_none_or(|d| d == dangling)
            && self.labels.iter().all(|(k, want)| match (v.meta.labels.get(k), want) {
                (Some(have), Some(want)) => have == want,
                (Some(_), None) => true,
                (None, _) => false,
            })
            && (self.names.is_empty() || self.names.iter().any(|n| name_matches(n, &v.meta.name)))
            && (self.drivers.is_empty() || self.drivers.iter().any(|d| name_matches(d, &v.meta.driver)))
    }
}

/// docker's `filters.Match`: equal, or the term as a regular expression matches.
fn name_matches(term: &str, name: &str) -> bool {
    term == name || regex::Regex::new(term).is_ok_and(|re| re.is_match(name))
}

#[cfg(test)]
mod tests;
