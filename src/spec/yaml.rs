//! The untyped YAML tree that every stage of the loader works on.
//!
//! serde-saphyr parses the text (anchors, aliases and `<<` merge keys resolved, duplicate keys
//! rejected, YAML 1.2 core booleans) into [`Node`]s that remember where they came from and
//! whether compose's `!reset` / `!override` tags were on them. Interpolation, override merging,
//! `extends` and `include` all rewrite this tree; only at the end is it turned into JSON for the
//! schema and into the typed model.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use indexmap::IndexMap;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Spanned, Tagged};

/// A mapping in source order.
pub type Mapping = IndexMap<String, Node>;

/// Where a node was written.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Location {
    /// The file, when the node came from one.
    pub file: Option<Arc<Path>>,
    /// 1-based line; 0 when unknown.
    pub line: u64,
    /// 1-based column; 0 when unknown.
    pub column: u64,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(file) => write!(f, "{}", file.display())?,
            None => f.write_str("<input>")?,
        }
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        Ok(())
    }
}

/// compose's merge-control tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tag {
    /// `!reset`: the key is removed from the merged result.
    Reset,
    /// `!override`: the value replaces the base value instead of merging with it.
    Override,
}

/// A YAML value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `null`, `~` or nothing.
    Null,
    /// `true` / `false` (YAML 1.2: `yes` and `on` stay strings).
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    String(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping with string keys, in source order.
    Map(Mapping),
}

/// A value with its location and tag.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The value.
    pub value: Value,
    /// Where it was written.
    pub location: Location,
    /// `!reset` / `!override`, if present.
    pub tag: Option<Tag>,
}

impl Node {
    /// A node with no location (made by the loader, not read from a file).
    pub fn new(value: Value) -> Self {
        Node { value, location: Location::default(), tag: None }
    }

    /// A node made by the loader at the location of `origin`.
    pub fn at(value: Value, origin: &Location) -> Self {
        Node { value, location: origin.clone(), tag: None }
    }

    /// A string node.
    pub fn string(s: impl Into<String>) -> Self {
        Node::new(Value::String(s.into()))
    }

    /// The mapping, if this is one.
    pub fn as_map(&self) -> Option<&Mapping> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The mapping, mutably, if this is one.
    pub fn as_map_mut(&mut self) -> Option<&mut Mapping> {
        match &mut self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The sequence, if this is one.
    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(s) => Some(s),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// Whether this is `null`.
    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }

    /// A member of a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map().and_then(|m| m.get(key))
    }

    /// A scalar rendered as compose renders scalars in strings (`true`, `3`, `0.5`); `None`
    /// for null and collections.
    pub fn scalar_string(&self) -> Option<String> {
        match &self.value {
            Value::Bool(b) => Some(b.to_string()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::String(s) => Some(s.clone()),
            Value::Null | Value::Seq(_) | Value::Map(_) => None,
        }
    }

    /// A short name for the node's kind, for error messages.
    pub fn kind_name(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::String(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// Sets the file of this node and every node below it.
    pub fn set_file(&mut self, file: &Arc<Path>) {
        self.location.file = Some(Arc::clone(file));
        match &mut self.value {
            Value::Seq(items) => items.iter_mut().for_each(|n| n.set_file(file)),
            Value::Map(map) => map.values_mut().for_each(|n| n.set_file(file)),
            _ => {}
        }
    }

    /// The tree as JSON (tags and locations dropped).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::String(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(map) => J::Object(map.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
        }
    }

    /// The node at a JSON pointer (`/services/web/ports/1`), or the deepest existing ancestor,
    /// so an error about a missing key still points somewhere useful.
    pub fn locate(&self, pointer: &str) -> &Node {
        let mut node = self;
        for raw in pointer.split('/').skip(1) {
            let key = raw.replace("~1", "/").replace("~0", "~");
            let next = match &node.value {
                Value::Map(m) => m.get(&key),
                Value::Seq(s) => key.parse::<usize>().ok().and_then(|i| s.get(i)),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        node
    }
}

/// A YAML text that could not be read as a compose file.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct YamlError {
    /// What the parser said, with a snippet of the text.
    pub message: String,
    /// Where, when the parser says.
    pub line: u64,
    /// Column, when the parser says.
    pub column: u64,
}

/// How deep mappings and lists may nest in a stack file.
pub const MAX_DEPTH: usize = 32;

/// Parses one YAML document. `Ok(None)` for a text with no document (empty or only comments).
pub fn parse(text: &str, file: Option<&Arc<Path>>) -> Result<Option<Node>, YamlError> {
    if !has_document(text) {
        return Ok(None);
    }
    super::yaml_build::build(text, file)
}

/// The same, through serde-saphyr's deserializer: the reference the event builder is tested
/// against.
#[cfg(test)]
pub(crate) fn parse_with_serde(text: &str, file: Option<&Arc<Path>>) -> Result<Option<Node>, YamlError> {
    if !has_document(text) {
        return Ok(None);
    }
    // Compose files nest about eight levels deep; the cap keeps hostile nesting far from the
    // stack limit of a 2 MiB thread even in debug builds. One anchor merged into hundreds of
    // services is ordinary compose (`<<: *common`), so the alias/anchor ratio heuristic is off.
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! { max_depth: MAX_DEPTH, enforce_alias_anchor_ratio: false },
        strict_booleans: true,
        legacy_octal_numbers: true,
        with_snippet: false,
    };
    let mut node = serde_saphyr::from_str_with_options::<Node>(text, options).map_err(|e| {
        let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
        YamlError { message: clean_parser_message(&e.to_string()), line, column }
    })?;
    if let Some(file) = file {
        node.set_file(file);
    }
    Ok(Some(node))
}

/// serde-saphyr prefixes `error: line L column C:`; the caller prints the location itself, and
/// its advice to change library options means nothing to a compose user.
#[cfg(test)]
fn clean_parser_message(message: &str) -> String {
    let first = message.lines().next().unwrap_or(message);
    let stripped = first.strip_prefix("error: ").unwrap_or(first);
    let stripped = match stripped.find(": ") {
        Some(i) if stripped.starts_with("line ") => &stripped[i + 2..],
        _ => stripped,
    };
    let stripped = stripped.split(", set DuplicateKeyPolicy").next().unwrap_or(stripped);
    stripped.replace(
        "multiple YAML documents detected; use from_str_multiple or from_str_multiple_with_options",
        "a stack file holds one YAML document, this one has several (`---` separators)",
    )
}

/// Whether the text has anything but blank lines, comments and directives.
fn has_document(text: &str) -> bool {
    text.lines().any(|line| {
        let t = line.trim_start_matches('\u{feff}').trim();
        !(t.is_empty() || t.starts_with('#') || t == "---" || t == "..." || t.starts_with('%'))
    })
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned: Spanned<Tagged<ValueSeed>> = Spanned::deserialize(deserializer)?;
        let Tagged(ValueSeed(value), tag) = spanned.value;
        let tag = match tag.as_deref() {
            Some("!reset") => Some(Tag::Reset),
            Some("!override") => Some(Tag::Override),
            _ => None,
        };
        let location = Location { file: None, line: spanned.referenced.line(), column: spanned.referenced.column() };
        Ok(Node { value, location, tag })
    }
}

/// Carries a [`Value`] through serde's `deserialize_any`.
struct ValueSeed(Value);

impl<'de> Deserialize<'de> for ValueSeed {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor).map(ValueSeed)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        // Integers past i64 are no compose value; keep their digits rather than lose them.
        Ok(i64::try_from(v).map_or_else(|_| Value::String(v.to_string()), Value::Int))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or_else(|_| Value::String(v.to_string()), Value::Int))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or_else(|_| Value::String(v.to_string()), Value::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Value, E> {
        String::from_utf8(v.to_vec())
            .map(Value::String)
            .map_err(|_| E::custom("binary values are not allowed in a stack file"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Mapping::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value::<Node>()?;
            out.insert(key, value);
        }
        Ok(Value::Map(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Node {
        parse(text, None).unwrap().unwrap()
    }

    #[test]
    fn merge_keys_are_applied_and_explicit_keys_win() {
        let n = load("x: &b {image: busybox, restart: always}\ns:\n  <<: *b\n  restart: \"no\"\n");
        let s = n.get("s").unwrap();
        assert_eq!(s.get("image").unwrap().as_str(), Some("busybox"));
        assert_eq!(s.get("restart").unwrap().as_str(), Some("no"));
    }

    #[test]
    fn merge_key_list_earlier_mapping_wins() {
        let n = load("a: &a {k: 1}\nb: &b {k: 2, j: 3}\nc:\n  <<: [*a, *b]\n");
        let c = n.get("c").unwrap();
        assert_eq!(c.get("k").unwrap().value, Value::Int(1));
        assert_eq!(c.get("j").unwrap().value, Value::Int(3));
    }

    #[test]
    fn tags_and_locations_are_kept() {
        let n = load("services:\n  web:\n    ports: !reset []\n    command: !override [a]\n");
        let web = n.get("services").unwrap().get("web").unwrap();
        assert_eq!(web.get("ports").unwrap().tag, Some(Tag::Reset));
        assert_eq!(web.get("command").unwrap().tag, Some(Tag::Override));
        assert_eq!(web.get("ports").unwrap().location.line, 3);
    }

    #[test]
    fn yaml_1_2_scalars() {
        let n = load("a: yes\nb: true\nc: 0755\nd: '1'\ne: 1.5\nf: ~\n");
        assert_eq!(n.get("a").unwrap().value, Value::String("yes".into()));
        assert_eq!(n.get("b").unwrap().value, Value::Bool(true));
        assert_eq!(n.get("c").unwrap().value, Value::Int(0o755));
        assert_eq!(n.get("d").unwrap().value, Value::String("1".into()));
        assert_eq!(n.get("e").unwrap().value, Value::Float(1.5));
        assert!(n.get("f").unwrap().is_null());
    }

    #[test]
    fn duplicate_keys_are_rejected_with_a_location() {
        let e = parse("a:\n  b: 1\n  b: 2\n", None).unwrap_err();
        assert!(e.message.contains("duplicate mapping key"), "{}", e.message);
        assert_eq!((e.line, e.column), (3, 3));
    }

    #[test]
    fn several_documents_are_rejected() {
        let e = parse("a: 1\n---\nb: 2\n", None).unwrap_err();
        assert!(e.message.contains("several"), "{}", e.message);
    }

    #[test]
    fn empty_and_comment_only_texts_have_no_document() {
        assert!(parse("", None).unwrap().is_none());
        assert!(parse("# nothing\n\n", None).unwrap().is_none());
    }

    #[test]
    fn one_anchor_may_be_merged_into_many_services() {
        let mut text = String::from("x-common: &common {image: busybox}\nservices:\n");
        for i in 0..600 {
            text.push_str(&format!("  s{i}:\n    <<: *common\n"));
        }
        let doc = load(&text);
        assert_eq!(doc.get("services").unwrap().as_map().unwrap().len(), 600);
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        assert!(parse(&text, None).is_err(), "10^12 nodes must not be expanded");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        assert!(parse(&deep, None).is_err());
        let ok = format!("a: {}1{}", "[".repeat(20), "]".repeat(20));
        assert!(parse(&ok, None).is_ok());
    }

    #[test]
    fn locate_follows_pointers_and_stops_at_the_deepest_node() {
        let n = load("services:\n  web:\n    ports:\n      - 80\n      - 81\n");
        assert_eq!(n.locate("/services/web/ports/1").location.line, 5);
        assert_eq!(n.locate("/services/web/missing").location.line, 3);
    }
}
