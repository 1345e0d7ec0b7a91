//! Builds the [`Node`] tree straight from serde-saphyr's parser events.
//!
//! Loading through serde-saphyr's deserializer costs about four times what its parser alone
//! does (most of a 500-service load), so the tree is built here from the same parser's events;
//! the deserializer path stays as the reference implementation in the tests, which compare the
//! two on every corpus file. YAML rules kept: anchors and aliases, `<<` merge keys (a mapping
//! or a list of mappings; explicit keys win, earlier merged mappings win over later ones),
//! duplicate keys rejected, YAML 1.2 core scalars with go-yaml's legacy octal (`0755`), one
//! document per stream, and limits on depth and on nodes created through aliases.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, Span, StrInput, Tag as ParsedTag};

use super::yaml::{Location, MAX_DEPTH, Mapping, Node, Tag, Value, YamlError};

/// How many nodes aliases may create in one document (an alias copies its anchor's tree).
const MAX_NODES: usize = 1_000_000;

/// Parses one document of `text` into a tree; `None` when the stream holds no document.
pub(crate) fn build(text: &str, file: Option<&Arc<Path>>) -> Result<Option<Node>, YamlError> {
    let mut b = Builder { parser: Parser::new_from_str(text), anchors: HashMap::new(), nodes: 0, file: file.cloned() };
    loop {
        match b.next()? {
            (Event::StreamStart, _) => {}
            (Event::StreamEnd, _) => return Ok(None),
            (Event::DocumentStart(..), _) => break,
            (_, span) => return Err(b.error(&span, "unexpected content before the document")),
        }
    }
    let (event, span) = b.next()?;
    let node = b.node(event, span, 0)?;
    loop {
        match b.next()? {
            (Event::DocumentEnd, _) => {}
            (Event::StreamEnd, _) => return Ok(Some(node)),
            (Event::DocumentStart(..), span) => {
                return Err(
                    b.error(&span, "a stack file holds one YAML document, this one has several (`---` separators)")
                );
            }
            (_, span) => return Err(b.error(&span, "unexpected content after the document")),
        }
    }
}

struct Builder<'a> {
    parser: Parser<'a, StrInput<'a>>,
    anchors: HashMap<usize, (Node, usize)>,
    nodes: usize,
    file: Option<Arc<Path>>,
}

impl<'a> Builder<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), YamlError> {
        match self.parser.next_event() {
            Some(Ok(pair)) => Ok(pair),
            Some(Err(e)) => {
                let m = e.marker();
                Err(YamlError { message: e.info(), line: m.line() as u64, column: m.col() as u64 + 1 })
            }
            None => Err(YamlError { message: "unexpected end of the YAML stream".into(), line: 0, column: 0 }),
        }
    }

    fn location(&self, span: &Span) -> Location {
        Location { file: self.file.clone(), line: span.start.line() as u64, column: span.start.col() as u64 + 1 }
    }

    fn error(&self, span: &Span, message: impl Into<String>) -> YamlError {
        YamlError { message: message.into(), line: span.start.line() as u64, column: span.start.col() as u64 + 1 }
    }

    fn count(&mut self, n: usize, span: &Span) -> Result<(), YamlError> {
        self.nodes += n;
        if self.nodes > MAX_NODES {
            return Err(self.error(span, format!("aliases expand this document past {MAX_NODES} nodes")));
        }
        Ok(())
    }

    fn node(&mut self, event: Event<'a>, span: Span, depth: usize) -> Result<Node, YamlError> {
        if depth > MAX_DEPTH {
            return Err(self.error(&span, format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        self.count(1, &span)?;
        let location = self.location(&span);
        let (node, anchor) = match event {
            Event::Scalar(text, style, anchor, tag) => {
                let tag_ref = tag.as_deref();
                let value = scalar(&text, style, tag_ref);
                (Node { value, location, tag: merge_tag(tag_ref) }, anchor)
            }
            Event::SequenceStart(_, anchor, tag) => {
                let mut items = Vec::new();
                loop {
                    let (ev, sp) = self.next()?;
                    if matches!(ev, Event::SequenceEnd) {
                        break;
                    }
                    items.push(self.node(ev, sp, depth + 1)?);
                }
                (Node { value: Value::Seq(items), location, tag: merge_tag(tag.as_deref()) }, anchor)
            }
            Event::MappingStart(_, anchor, tag) => {
                let map = self.mapping(depth)?;
                (Node { value: Value::Map(map), location, tag: merge_tag(tag.as_deref()) }, anchor)
            }
            Event::Alias(id) => {
                let (node, size) =
                    self.anchors.get(&id).cloned().ok_or_else(|| {
                        self.error(&span, "an alias refers to an anchor that is not defined before it")
                    })?;
                self.count(size, &span)?;
                return Ok(node);
            }
            _ => return Err(self.error(&span, "unexpected YAML event")),
        };
        if anchor != 0 {
            let size = node_count(&node);
            self.anchors.insert(anchor, (node.clone(), size));
        }
        Ok(node)
    }

    fn mapping(&mut self, depth: usize) -> Result<Mapping, YamlError> {
        let mut map = Mapping::new();
        let mut merges: Vec<Node> = Vec::new();
        loop {
            let (ev, key_span) = self.next()?;
            let key = match ev {
                Event::MappingEnd => break,
                Event::Scalar(text, style, _, _) if style == ScalarStyle::Plain && text == "<<" => {
                    let (ev, sp) = self.next()?;
                    let source = self.node(ev, sp, depth + 1)?;
                    merges.push(source);
                    continue;
                }
                Event::Scalar(text, _, anchor, _) => {
                    if anchor != 0 {
                        self.anchors.insert(anchor, (Node::new(Value::String(text.to_string())), 1));
                    }
                    text.into_owned()
                }
                Event::Alias(id) => match self.anchors.get(&id).map(|(n, _)| n.scalar_string()) {
                    Some(Some(s)) => s,
                    _ => return Err(self.error(&key_span, "a mapping key must be a plain value")),
                },
                _ => return Err(self.error(&key_span, "a mapping key must be a plain value, not a list or mapping")),
            };
            let (ev, sp) = self.next()?;
            let value = self.node(ev, sp, depth + 1)?;
            if map.contains_key(&key) {
                return Err(self.error(&key_span, format!("duplicate mapping key: {key}")));
            }
            map.insert(key, value);
        }
        for source in merges {
            let sources = match source.value {
                Value::Map(m) => vec![m],
                Value::Seq(items) => items
                    .into_iter()
                    .map(|n| match n.value {
                        Value::Map(m) => Ok(m),
                        _ => Err(YamlError {
                            message: "`<<` merges mappings only".into(),
                            line: n.location.line,
                            column: n.location.column,
                        }),
                    })
                    .collect::<Result<_, _>>()?,
                _ => {
                    let l = &source.location;
                    return Err(YamlError {
                        message: "`<<` merges mappings only".into(),
                        line: l.line,
                        column: l.column,
                    });
                }
            };
            for m in sources {
                for (k, v) in m {
                    map.entry(k).or_insert(v);
                }
            }
        }
        Ok(map)
    }
}

fn node_count(node: &Node) -> usize {
    match &node.value {
        Value::Seq(items) => 1 + items.iter().map(node_count).sum::<usize>(),
        Value::Map(map) => 1 + map.values().map(node_count).sum::<usize>(),
        _ => 1,
    }
}

/// compose's `!reset` / `!override`.
fn merge_tag(tag: Option<&ParsedTag>) -> Option<Tag> {
    let tag = tag?;
    match (tag.handle(), tag.suffix()) {
        ("!", "reset") => Some(Tag::Reset),
        ("!", "override") => Some(Tag::Override),
        _ => None,
    }
}

/// Resolves a scalar: quoted and block scalars are strings; plain ones follow YAML 1.2's core
/// schema (only `true`/`false` are booleans), with go-yaml's legacy octal `0755`.
fn scalar(text: &str, style: ScalarStyle, tag: Option<&ParsedTag>) -> Value {
    if let Some(t) = tag.filter(|t| t.handle() == "tag:yaml.org,2002:") {
        match t.suffix() {
            "str" => return Value::String(text.to_owned()),
            "null" => return Value::Null,
            _ => {}
        }
    }
    if style != ScalarStyle::Plain {
        return Value::String(text.to_owned());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Some(i) = integer(text) {
        return i;
    }
    if is_float(text)
        && let Ok(f) = text.parse::<f64>()
        && f.is_finite()
    {
        return Value::Float(f);
    }
    Value::String(text.to_owned())
}

fn integer(text: &str) -> Option<Value> {
    let (negative, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, body) = if let Some(h) = digits.strip_prefix("0x") {
        (16, h)
    } else if let Some(o) = digits.strip_prefix("0o") {
        (8, o)
    } else if digits.len() > 1 && digits.starts_with('0') && digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        (8, &digits[1..])
    } else {
        (10, digits)
    };
    // go-yaml (compose's parser) accepts YAML 1.1's digit separators: `1_000` is 1000.
    let cleaned: String;
    let body = if body.contains('_') && !body.starts_with('_') {
        cleaned = body.replace('_', "");
        cleaned.as_str()
    } else {
        body
    };
    if body.is_empty()
        || !body.bytes().all(|b| b.is_ascii_hexdigit())
        || (radix == 10 && !body.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    match i128::from_str_radix(body, radix) {
        Ok(v) => {
            let v = if negative { -v } else { v };
            Some(i64::try_from(v).map_or_else(|_| Value::String(text.to_owned()), Value::Int))
        }
        Err(_) => Some(Value::String(text.to_owned())),
    }
}

fn is_float(text: &str) -> bool {
    let t = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    let mantissa_ok = {
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        (!int.is_empty() || !frac.is_empty())
            && int.bytes().all(|b| b.is_ascii_digit())
            && frac.bytes().all(|b| b.is_ascii_digit())
            && (mantissa.contains('.') || exponent.is_some())
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit())
    });
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::super::yaml::{parse, parse_with_serde};

    /// Both parsers on one text: the same tree, or both an error.
    fn same(text: &str) -> Result<(), String> {
        match (parse(text, None), parse_with_serde(text, None)) {
            (Ok(a), Ok(b)) => {
                let (a, b) = (a.map(|n| n.to_json()), b.map(|n| n.to_json()));
                if a == b { Ok(()) } else { Err(format!("trees differ:\n event: {a:?}\n serde: {b:?}")) }
            }
            (Err(_), Err(_)) => Ok(()),
            (Ok(_), Err(e)) => Err(format!("only the serde reference fails: {}", e.message)),
            (Err(e), Ok(_)) => Err(format!("only the event builder fails: {}", e.message)),
        }
    }

    #[test]
    fn scalars_resolve_like_the_serde_reference() {
        for text in [
            "a: yes",
            "a: true",
            "a: TRUE",
            "a: 0755",
            "a: 0o17",
            "a: 0x1F",
            "a: -12",
            "a: +3",
            "a: 1.5",
            "a: .5",
            "a: 1e3",
            "a: 1.0e-2",
            "a: ~",
            "a: null",
            "a:",
            "a: '1'",
            "a: \"true\"",
            "a: !!str 123",
            "a: 1_000",
            "a: 12:30",
            "a: 2024-01-01",
            "a: |\n  x\n  y\n",
            "a: >-\n  x\n  y\n",
            "80: x",
            "a: [1, two, 3.0]",
            "a: {b: c}",
            "a: &x 1\nb: *x",
            "? a\n: b",
        ] {
            same(text).map_err(|e| format!("{text:?}: {e}")).unwrap();
        }
    }

    #[test]
    fn a_leading_zero_that_is_not_octal_is_a_decimal_integer() {
        // YAML 1.2's core schema reads `08` as the integer 8; serde-saphyr makes it a float.
        let doc = parse("a: 08\n", None).unwrap().unwrap();
        assert_eq!(doc.to_json()["a"], 8);
        // An integer past i64 keeps its digits rather than becoming a rounded float.
        let doc = parse("a: 99999999999999999999\n", None).unwrap().unwrap();
        assert_eq!(doc.to_json()["a"], "99999999999999999999");
    }

    #[test]
    fn merges_anchors_and_errors_match_the_serde_reference() {
        for text in [
            "x: &b {image: i, restart: always}\ns:\n  <<: *b\n  restart: \"no\"\n",
            "a: &a {k: 1}\nb: &b {k: 2, j: 3}\nc:\n  <<: [*a, *b]\n",
            "a: &a {k: 1}\nc:\n  k: 0\n  <<: *a\n",
            "a:\n  b: 1\n  b: 2\n",
            "a: 1\n---\nb: 2\n",
            "a: &a [*a]\n",
            "a: *nope\n",
            "a: [1, 2",
            "a: b: c",
            "services:\n  web:\n    ports: !reset []\n    command: !override [a]\n",
        ] {
            same(text).map_err(|e| format!("{text:?}: {e}")).unwrap();
        }
    }

    #[test]
    fn every_corpus_file_and_example_parses_as_the_serde_reference_does() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let corpus = root.join("../shared/corpus");
        assert!(corpus.is_dir(), "the compose corpus is missing at {}", corpus.display());
        let mut files = Vec::new();
        let mut dirs = vec![corpus, root.join("examples")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "yml" || e == "yaml" || e == "invalid") {
                    files.push(path);
                }
            }
        }
        let mut failures = Vec::new();
        for path in &files {
            let text = std::fs::read_to_string(path).unwrap();
            if let Err(e) = same(&text) {
                failures.push(format!("{}: {e}", path.display()));
            }
        }
        println!("yaml: {} files parse to the same tree through both parsers", files.len() - failures.len());
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        assert!(files.len() > 300);
    }
}
