//! berth's JSON Schema for stack files and the validator the loader runs on every document.
//!
//! The schema (`schema/compose.schema.json`) serves editors and the loader alike, so both
//! always agree on what a valid stack file is. Besides validating, it marks the keys berth
//! accepts but does not implement yet (`"x-berth-support": "ignored"`), so the loader can
//! warn about them by name. A few keys are `"refused"`: `config` prints them as compose
//! does, and `up` and `run` stop on them with the line (`external` secrets and configs, which
//! live in a swarm; see `spec::preflight`).

use std::collections::HashSet;
use std::fmt;
use std::sync::OnceLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{ValidationError, Validator};
use serde_json::Value;

pub mod cache;

/// The schema text, embedded so validation never depends on files at run time.
pub const SCHEMA_JSON: &str = include_str!("../../../schema/compose.schema.json");

/// Annotation naming how far berth implements a key.
const SUPPORT_ANNOTATION: &str = "x-berth-support";

/// Inlined values longer than this many characters are cut, so one huge value cannot
/// bury the message.
const MAX_INLINE_CHARS: usize = 60;

/// Guard for walks over the schema graph, which `$ref` makes cyclic in principle.
const MAX_SCHEMA_DEPTH: usize = 8;

/// Annotated keys sit at most two mappings below the root (`services.<name>.<key>`), so the
/// walk never needs to look deeper than that.
const MAX_ANNOTATION_DEPTH: usize = 2;

/// Duplicate hunting is quadratic; past this many items only the fact is reported.
const MAX_DUPLICATE_SCAN: usize = 1000;

/// The pattern services, networks and the other resource maps use for their names.
const RESOURCE_NAME_PATTERN: &str = "^[a-zA-Z0-9._-]+$";

/// One place where a document breaks the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaViolation {
    /// JSON pointer of the offending value, e.g. `/services/web/ports/1`.
    pub pointer: String,
    /// What is wrong, phrased for a compose user.
    pub message: String,
}

impl fmt::Display for SchemaViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pointer.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", pointer_to_yaml_path(&self.pointer), self.message)
        }
    }
}

/// The compiled stack-file schema.
#[derive(Debug)]
pub struct Schema {
    raw: Value,
    /// Compiled on first validation: compiling takes milliseconds, and a stack file whose
    /// validation is cached (see [`cache`]) never needs it.
    validator: OnceLock<Validator>,
}

impl Schema {
    /// The embedded schema, parsed on first use and shared afterwards.
    pub fn compiled() -> &'static Schema {
        static SCHEMA: OnceLock<Schema> = OnceLock::new();
        SCHEMA.get_or_init(|| {
            // The text is a build-time constant that the tests compile, so failing here is a
            // packaging bug that no input can trigger.
            Schema::from_json(SCHEMA_JSON).expect("embedded compose schema must parse")
        })
    }

    /// Parses a schema from its JSON text.
    fn from_json(text: &str) -> Result<Schema, String> {
        let raw: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        Ok(Schema { raw, validator: OnceLock::new() })
    }

    fn validator(&self) -> &Validator {
        self.validator.get_or_init(|| {
            // Same argument as in `compiled`: the embedded schema compiles in every test run.
            jsonschema::options().build(&self.raw).expect("embedded compose schema must compile")
        })
    }

    /// The schema as JSON, e.g. to write it out for editors.
    pub fn as_json(&self) -> &Value {
        &self.raw
    }

    /// Every violation in `doc`, deepest (most specific) first.
    pub fn validate(&self, doc: &Value) -> Vec<SchemaViolation> {
        let mut found = Vec::new();
        for error in self.validator().iter_errors(doc) {
            self.explain(&error, &mut found);
        }
        let mut seen = HashSet::new();
        found.retain(|v| seen.insert((v.pointer.clone(), v.message.clone())));
        // Stable, so violations at the same depth stay in document order.
        found.sort_by_key(|v| std::cmp::Reverse(pointer_depth(&v.pointer)));
        found
    }

    /// JSON pointers of the keys in `doc` that berth accepts but ignores, in document order.
    pub fn unsupported_keys(&self, doc: &Value) -> Vec<String> {
        let mut found = Vec::new();
        let mut pointer = String::new();
        self.collect_unsupported(&self.raw, doc, &mut pointer, 0, &mut found);
        found
    }

    fn collect_unsupported(
        &self,
        schema: &Value,
        doc: &Value,
        pointer: &mut String,
        depth: usize,
        found: &mut Vec<String>,
    ) {
        if depth > MAX_ANNOTATION_DEPTH {
            return;
        }
        let (Some(map), Some(schema)) = (doc.as_object(), self.resolve(schema)) else {
            return;
        };
        let properties = schema.get("properties").and_then(Value::as_object);
        // Resource maps have a single name pattern besides `^x-`; keys that fail it are
        // reported by `validate`, so treating every other key as a match is safe here.
        let named = schema
            .get("patternProperties")
            .and_then(Value::as_object)
            .and_then(|p| p.iter().find(|(pattern, _)| *pattern != "^x-"))
            .map(|(_, sub)| sub);
        for (key, value) in map {
            let sub = match properties.and_then(|p| p.get(key)) {
                Some(sub) => sub,
                None if key.starts_with("x-") => continue,
                None => match named {
                    Some(sub) => sub,
                    None => continue,
                },
            };
            let len = pointer.len();
            push_segment(pointer, key);
            if sub.get(SUPPORT_ANNOTATION).and_then(Value::as_str) == Some("ignored") {
                found.push(pointer.clone());
            } else {
                self.collect_unsupported(sub, value, pointer, depth + 1, found);
            }
            pointer.truncate(len);
        }
    }

    /// Follows `$ref`s until a schema node that does something itself.
    fn resolve<'s>(&'s self, mut node: &'s Value) -> Option<&'s Value> {
        for _ in 0..MAX_SCHEMA_DEPTH {
            match node.get("$ref").and_then(Value::as_str) {
                Some(target) => node = self.raw.pointer(target.strip_prefix('#')?)?,
                None => return Some(node),
            }
        }
        None
    }

    /// The schema node that holds the keyword an error is about.
    fn keyword_owner(&self, error: &ValidationError<'_>) -> Option<&Value> {
        let path = error.schema_path().as_str();
        let (owner, _keyword) = path.rsplit_once('/')?;
        self.raw.pointer(owner)
    }

    fn explain(&self, error: &ValidationError<'_>, out: &mut Vec<SchemaViolation>) {
        let pointer = error.instance_path().as_str().to_owned();
        let instance = error.instance();
        let message = match error.kind() {
            ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context } => {
                // Branches whose type fits the value say what is wrong inside it; when none
                // fits, the only useful news is which shapes are allowed.
                let fitting = context
                    .iter()
                    .filter(|branch| !branch.is_empty() && !branch.iter().any(|e| is_type_error_at(e, &pointer)))
                    .min_by_key(|branch| branch.len());
                if let Some(branch) = fitting {
                    for inner in branch {
                        self.explain(inner, out);
                    }
                    return;
                }
                self.expected_message(error, instance)
            }
            ValidationErrorKind::OneOfMultipleValid { .. } => {
                "is ambiguous: it fits more than one of the allowed forms".to_owned()
            }
            ValidationErrorKind::Type { .. } => self.expected_message(error, instance),
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                let owner = self.keyword_owner(error);
                for name in unexpected {
                    out.push(SchemaViolation {
                        pointer: pointer.clone(),
                        message: unexpected_key_message(owner, name),
                    });
                }
                return;
            }
            ValidationErrorKind::Required { property } => match property.as_str() {
                Some(name) => format!("missing required property \"{name}\""),
                None => format!("missing required property {}", inline(property)),
            },
            ValidationErrorKind::Enum { options } => {
                let allowed = options
                    .as_array()
                    .map_or_else(|| inline(options), |values| values.iter().map(inline).collect::<Vec<_>>().join(", "));
                format!("must be one of {allowed}, found {}", inline(instance))
            }
            ValidationErrorKind::Constant { expected_value } => {
                format!("must be {}, found {}", inline(expected_value), inline(instance))
            }
            ValidationErrorKind::Pattern { pattern } => {
                format!("{} does not match the pattern {pattern}", inline(instance))
            }
            ValidationErrorKind::UniqueItems => duplicate_message(instance),
            ValidationErrorKind::Minimum { limit } => format!("must be at least {limit}"),
            ValidationErrorKind::Maximum { limit } => format!("must be at most {limit}"),
            ValidationErrorKind::ExclusiveMinimum { limit } => format!("must be more than {limit}"),
            ValidationErrorKind::ExclusiveMaximum { limit } => format!("must be less than {limit}"),
            ValidationErrorKind::FalseSchema => "is not allowed here".to_owned(),
            _ => truncate(&error.masked_with("the value").to_string(), 2 * MAX_INLINE_CHARS),
        };
        out.push(SchemaViolation { pointer, message });
    }

    /// `must be <allowed shapes>, found <value>` for a value of the wrong type.
    fn expected_message(&self, error: &ValidationError<'_>, instance: &Value) -> String {
        let mut shapes = Vec::new();
        if let Some(owner) = self.keyword_owner(error) {
            self.shapes(owner, 0, &mut shapes);
        }
        if shapes.is_empty()
            && let ValidationErrorKind::Type { kind } = error.kind()
        {
            match kind {
                TypeKind::Single(t) => shapes.push(type_phrase(t.as_str()).to_owned()),
                TypeKind::Multiple(set) => {
                    shapes.extend(set.iter().map(|t| type_phrase(t.as_str()).to_owned()));
                }
            }
        }
        format!("must be {}, found {}", join_or(&shapes), inline(instance))
    }

    /// Phrases like `a string` or `a list of strings` for what `node` accepts.
    fn shapes(&self, node: &Value, depth: usize, out: &mut Vec<String>) {
        if depth > MAX_SCHEMA_DEPTH {
            return;
        }
        let Some(node) = self.resolve(node) else {
            return;
        };
        if let Some(branches) = node.get("oneOf").or_else(|| node.get("anyOf")).and_then(Value::as_array) {
            for branch in branches {
                self.shapes(branch, depth + 1, out);
            }
            return;
        }
        if let Some(values) = node.get("enum").and_then(Value::as_array) {
            let listed: Vec<String> = values.iter().map(inline).collect();
            push_unique(out, listed.join(" or "));
            return;
        }
        let types: Vec<&str> = match node.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        for t in types {
            let phrase = match (t, node.get("items")) {
                ("array", Some(items)) => {
                    let mut inner = Vec::new();
                    self.shapes(items, depth + 1, &mut inner);
                    let plural: Vec<String> = inner.iter().map(|s| plural(s)).collect();
                    if plural.is_empty() || plural.len() > 2 {
                        "a list".to_owned()
                    } else {
                        format!("a list of {}", join_or(&plural))
                    }
                }
                (other, _) => type_phrase(other).to_owned(),
            };
            push_unique(out, phrase);
        }
    }
}

/// Converts a JSON pointer to the dotted path a YAML user reads, e.g.
/// `/services/web/ports/1` to `services.web.ports[1]`. Keys that are not plain identifiers
/// are quoted (`services["a.b"]`); all-digit segments are shown as list indexes.
/// The root pointer (`""`) gives an empty string.
pub fn pointer_to_yaml_path(pointer: &str) -> String {
    let mut out = String::new();
    if pointer.is_empty() {
        return out;
    }
    let body = pointer.strip_prefix('/').unwrap_or(pointer);
    for raw in body.split('/') {
        // RFC 6901: `~1` first, so that `~01` decodes to `~1` and not to `/`.
        let segment = raw.replace("~1", "/").replace("~0", "~");
        if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            out.push('[');
            out.push_str(&segment);
            out.push(']');
        } else if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&segment);
        } else {
            out.push('[');
            out.push_str(&Value::String(segment).to_string());
            out.push(']');
        }
    }
    out
}

fn is_type_error_at(error: &ValidationError<'_>, pointer: &str) -> bool {
    matches!(error.kind(), ValidationErrorKind::Type { .. }) && error.instance_path().as_str() == pointer
}

fn unexpected_key_message(owner: Option<&Value>, name: &str) -> String {
    let quoted = Value::String(name.to_owned()).to_string();
    let properties = owner.and_then(|o| o.get("properties")).and_then(Value::as_object);
    let name_pattern = owner
        .and_then(|o| o.get("patternProperties"))
        .and_then(Value::as_object)
        .and_then(|p| p.keys().find(|k| *k != "^x-"));
    if properties.is_none()
        && let Some(pattern) = name_pattern
    {
        return if pattern == RESOURCE_NAME_PATTERN {
            format!("{quoted} is not a valid name: use only letters, digits, '.', '_' and '-'")
        } else {
            format!("{quoted} is not a valid key here: keys must match {pattern}")
        };
    }
    let mut message = format!("additional property {quoted} is not allowed");
    let suggestion = properties.and_then(|props| {
        props
            .keys()
            .map(|k| (strsim::damerau_levenshtein(name, k), k))
            .filter(|(distance, k)| *distance <= (k.len() / 4).max(1))
            .min_by_key(|(distance, _)| *distance)
    });
    if let Some((_, close)) = suggestion {
        message.push_str(&format!(" (did you mean \"{close}\"?)"));
    }
    message
}

fn duplicate_message(instance: &Value) -> String {
    let Some(items) = instance.as_array() else {
        return "must not contain duplicate items".to_owned();
    };
    let scanned = &items[..items.len().min(MAX_DUPLICATE_SCAN)];
    for (later, item) in scanned.iter().enumerate() {
        if let Some(first) = scanned[..later].iter().position(|earlier| earlier == item) {
            return format!("must not contain duplicate items: item {later} repeats item {first} ({})", inline(item));
        }
    }
    "must not contain duplicate items".to_owned()
}

/// How a JSON Schema type name reads to someone who writes YAML.
fn type_phrase(name: &str) -> &str {
    match name {
        "array" => "a list",
        "boolean" => "a boolean",
        "integer" => "an integer",
        "number" => "a number",
        "object" => "a mapping",
        "string" => "a string",
        other => other,
    }
}

/// `a string` → `strings`, for `a list of strings`.
fn plural(phrase: &str) -> String {
    let bare = phrase.strip_prefix("a ").or_else(|| phrase.strip_prefix("an ")).unwrap_or(phrase);
    if bare == phrase {
        // `null`, enum listings and the like have no sensible plural.
        phrase.to_owned()
    } else {
        format!("{bare}s")
    }
}

fn push_unique(out: &mut Vec<String>, phrase: String) {
    if !out.contains(&phrase) {
        out.push(phrase);
    }
}

/// `a`, `a or b`, `a, b or c`.
fn join_or(items: &[String]) -> String {
    match items {
        [] => "something else".to_owned(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// A short rendering of a value for a message: scalars as JSON, containers by kind.
fn inline(value: &Value) -> String {
    match value {
        Value::Object(map) if map.is_empty() => "an empty mapping".to_owned(),
        Value::Object(_) => "a mapping".to_owned(),
        Value::Array(items) if items.is_empty() => "an empty list".to_owned(),
        Value::Array(_) => "a list".to_owned(),
        // Cut before quoting, so the quotes survive.
        Value::String(text) => Value::String(truncate(text, MAX_INLINE_CHARS)).to_string(),
        scalar => truncate(&scalar.to_string(), MAX_INLINE_CHARS),
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

fn push_segment(pointer: &mut String, key: &str) {
    pointer.push('/');
    if key.contains(['~', '/']) {
        pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
    } else {
        pointer.push_str(key);
    }
}

fn pointer_depth(pointer: &str) -> usize {
    pointer.matches('/').count()
}

#[cfg(test)]
mod tests;
