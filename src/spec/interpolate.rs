//! Compose-spec variable interpolation of a single string.
//!
//! The grammar and its edge cases follow compose-go's `template/template.go`, which is
//! what `docker compose` runs, so a file behaves the same under both tools:
//!
//! * `$$` is a literal `$`; a `$` that starts no valid expression is kept as is.
//! * `$NAME` and `${NAME}` substitute the value, or the empty string plus a report in
//!   [`Interpolated::unset`] when the variable is unset.
//! * `${NAME:-x}` / `${NAME-x}`, `${NAME:+x}` / `${NAME+x}` and `${NAME:?x}` / `${NAME?x}`
//!   choose `x` (interpolated in turn) when the variable is unset-or-empty / unset,
//!   set-and-non-empty / set, and fail with message `x` when it is unset-or-empty / unset.
//! * The branch text is only interpolated when it is chosen, so a typo inside an unused
//!   default is not an error, exactly as in compose-go.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::BuildHasher;

use indexmap::IndexMap;

/// Deepest nesting of `${A:-${B:-...}}` accepted; real files stay in single digits and
/// the limit keeps hostile input from exhausting the stack.
pub const MAX_NESTING: usize = 64;

/// Message used when a `${VAR:?}` / `${VAR?}` expression carries no text of its own.
const DEFAULT_REQUIRED_MESSAGE: &str = "set it in the environment or in the .env file";

/// A source of variable values; `None` means the variable is unset.
pub trait Lookup {
    /// Returns the value of `name`, or `None` when it is unset.
    fn get(&self, name: &str) -> Option<&str>;
}

impl<S: BuildHasher> Lookup for HashMap<String, String, S> {
    fn get(&self, name: &str) -> Option<&str> {
        HashMap::get(self, name).map(String::as_str)
    }
}

impl Lookup for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<&str> {
        BTreeMap::get(self, name).map(String::as_str)
    }
}

impl<S: BuildHasher> Lookup for IndexMap<String, String, S> {
    fn get(&self, name: &str) -> Option<&str> {
        IndexMap::get(self, name).map(String::as_str)
    }
}

impl<T: Lookup + ?Sized> Lookup for &T {
    fn get(&self, name: &str) -> Option<&str> {
        (**self).get(name)
    }
}

/// Layers two sources: the first one that knows a variable wins.
impl<A: Lookup, B: Lookup> Lookup for (A, B) {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).or_else(|| self.1.get(name))
    }
}

/// The outcome of interpolating one string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpolated {
    /// The interpolated text.
    pub value: String,
    /// Variables referenced as `$VAR` / `${VAR}` that were unset, first occurrence first,
    /// without duplicates; the caller warns once per name.
    pub unset: Vec<String>,
    /// True when at least one `$$` or variable expression was replaced.
    pub changed: bool,
}

/// Why a string could not be interpolated.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum InterpolationError {
    /// A `${VAR:?msg}` or `${VAR?msg}` expression found its variable missing.
    #[error("required variable {variable} is missing a value: {message}")]
    Required {
        /// The variable that must be set.
        variable: String,
        /// The author's message (interpolated), or a default hint when none was given.
        message: String,
    },
    /// A `${` that does not start a valid expression, e.g. `${}`, `${A B}` or `${A/x/y}`.
    #[error("invalid interpolation format in {text:?}: escape a literal $ as $$")]
    InvalidFormat {
        /// The whole string that was being interpolated.
        text: String,
    },
    /// Defaults nested deeper than [`MAX_NESTING`] levels.
    #[error("interpolation in {text:?} nests deeper than {limit} levels")]
    NestingTooDeep {
        /// The whole string that was being interpolated.
        text: String,
        /// The nesting limit that was exceeded.
        limit: usize,
    },
}

/// Interpolates `input` against `vars`.
pub fn interpolate(input: &str, vars: &dyn Lookup) -> Result<Interpolated, InterpolationError> {
    if !input.contains('$') {
        return Ok(Interpolated { value: input.to_owned(), unset: Vec::new(), changed: false });
    }
    let mut expander = Expander { input, vars, unset: Vec::new(), changed: false };
    let mut value = String::with_capacity(input.len());
    expander.expand(input, 0, &mut value)?;

    let mut seen = HashSet::new();
    let mut unset = expander.unset;
    unset.retain(|name| seen.insert(name.clone()));
    Ok(Interpolated { value, unset, changed: expander.changed })
}

/// What a `${NAME<op>...}` expression does with its branch text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// `-`: use the branch when the variable is missing.
    Default,
    /// `+`: use the branch when the variable is present.
    Alternative,
    /// `?`: fail with the branch as message when the variable is missing.
    Required,
}

/// An operator after the variable name; `colon` makes "set but empty" count as missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Operator {
    colon: bool,
    action: Action,
}

/// One parsed `${...}` expression; `branch` is still raw text.
#[derive(Debug)]
struct Braced<'a> {
    name: &'a str,
    operator: Option<Operator>,
    branch: &'a str,
}

/// Walks one template; nested branches are expanded recursively on demand.
struct Expander<'a> {
    /// The top-level template, quoted in error messages.
    input: &'a str,
    vars: &'a dyn Lookup,
    unset: Vec<String>,
    changed: bool,
}

impl Expander<'_> {
    fn expand(&mut self, text: &str, depth: usize, out: &mut String) -> Result<(), InterpolationError> {
        let bytes = text.as_bytes();
        let mut literal_start = 0;
        let mut cursor = 0;
        while let Some(offset) = text.get(cursor..).and_then(|rest| rest.find('$')) {
            let dollar = cursor + offset;
            let after = match bytes.get(dollar + 1) {
                Some(b'$') => {
                    out.push_str(&text[literal_start..dollar]);
                    out.push('$');
                    self.changed = true;
                    dollar + 2
                }
                Some(b'{') => {
                    let (braced, next) = self.parse_braced(text, dollar)?;
                    out.push_str(&text[literal_start..dollar]);
                    self.evaluate(&braced, depth, out)?;
                    next
                }
                Some(&first) if is_name_start(first) => {
                    let end = name_end(bytes, dollar + 1);
                    out.push_str(&text[literal_start..dollar]);
                    self.substitute_plain(&text[dollar + 1..end], out);
                    end
                }
                // Not an expression: the `$` stays in the literal run.
                _ => {
                    cursor = dollar + 1;
                    continue;
                }
            };
            literal_start = after;
            cursor = after;
        }
        out.push_str(&text[literal_start..]);
        Ok(())
    }

    /// Parses the expression whose `$` is at `dollar`; returns it and the index after it.
    fn parse_braced<'t>(&self, text: &'t str, dollar: usize) -> Result<(Braced<'t>, usize), InterpolationError> {
        let bytes = text.as_bytes();
        let name_start = dollar + 2;
        if !bytes.get(name_start).is_some_and(|&b| is_name_start(b)) {
            return Err(self.invalid());
        }
        let end = name_end(bytes, name_start);
        let name = &text[name_start..end];
        if bytes.get(end) == Some(&b'}') {
            let braced = Braced { name, operator: None, branch: "" };
            return Ok((braced, end + 1));
        }

        let colon = bytes.get(end) == Some(&b':');
        let action_at = end + usize::from(colon);
        let action = match bytes.get(action_at) {
            Some(b'-') => Action::Default,
            Some(b'+') => Action::Alternative,
            Some(b'?') => Action::Required,
            _ => return Err(self.invalid()),
        };
        let close = closing_brace(bytes, dollar).ok_or_else(|| self.invalid())?;
        let braced = Braced {
            name,
            operator: Some(Operator { colon, action }),
            branch: text.get(action_at + 1..close).unwrap_or_default(),
        };
        Ok((braced, close + 1))
    }

    fn evaluate(&mut self, braced: &Braced<'_>, depth: usize, out: &mut String) -> Result<(), InterpolationError> {
        let Some(operator) = braced.operator else {
            self.substitute_plain(braced.name, out);
            return Ok(());
        };
        self.changed = true;
        let value = self.vars.get(braced.name);
        let present = value.is_some_and(|v| !operator.colon || !v.is_empty());
        match (operator.action, present) {
            (Action::Default | Action::Required, true) | (Action::Alternative, false) => {
                out.push_str(value.unwrap_or_default());
                Ok(())
            }
            (Action::Default, false) | (Action::Alternative, true) => self.expand_nested(braced.branch, depth, out),
            (Action::Required, false) => {
                let mut message = String::new();
                self.expand_nested(braced.branch, depth, &mut message)?;
                if message.is_empty() {
                    message.push_str(DEFAULT_REQUIRED_MESSAGE);
                }
                Err(InterpolationError::Required { variable: braced.name.to_owned(), message })
            }
        }
    }

    fn expand_nested(&mut self, branch: &str, depth: usize, out: &mut String) -> Result<(), InterpolationError> {
        if depth >= MAX_NESTING {
            return Err(InterpolationError::NestingTooDeep { text: self.input.to_owned(), limit: MAX_NESTING });
        }
        self.expand(branch, depth + 1, out)
    }

    fn substitute_plain(&mut self, name: &str, out: &mut String) {
        self.changed = true;
        match self.vars.get(name) {
            Some(value) => out.push_str(value),
            None => self.unset.push(name.to_owned()),
        }
    }

    fn invalid(&self) -> InterpolationError {
        InterpolationError::InvalidFormat { text: self.input.to_owned() }
    }
}

fn is_name_start(b: u8) -> bool {
    b == b'_' || b.is_ascii_alphabetic()
}

/// Index just past the variable name that starts at `start`.
fn name_end(bytes: &[u8], start: usize) -> usize {
    let len =
        bytes.get(start..).unwrap_or_default().iter().take_while(|&&b| b == b'_' || b.is_ascii_alphanumeric()).count();
    start + len
}

/// Finds the `}` closing the operator expression whose `$` is at `dollar`.
///
/// compose-go first matches the regex `\$\{name[op](.*)\}`, whose greedy `.*` stops at
/// the last `}` before a newline, and then cuts that match at the first balanced brace,
/// counting every `{` and skipping the byte after it. When the braces never balance it
/// keeps the whole regex match, so the same fallback is reproduced here.
fn closing_brace(bytes: &[u8], dollar: usize) -> Option<usize> {
    let mut depth = 0_usize;
    let mut last_close = None;
    let mut i = dollar + 1;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\n' => break,
            b'}' => {
                last_close = Some(i);
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Some(i);
                }
                i += 1;
            }
            b'{' => {
                depth += 1;
                match bytes.get(i + 1) {
                    Some(b'\n') => break,
                    Some(b'}') => last_close = Some(i + 1),
                    _ => {}
                }
                i += 2;
            }
            _ => i += 1,
        }
    }
    last_close
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> HashMap<String, String> {
        [("FOO", "first"), ("EMPTY", ""), ("JSON", r#"{"json":2}"#), ("B", "bee")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    fn ok(input: &str) -> String {
        interpolate(input, &vars()).unwrap().value
    }

    fn err(input: &str) -> InterpolationError {
        interpolate(input, &vars()).unwrap_err()
    }

    fn invalid(input: &str) -> InterpolationError {
        InterpolationError::InvalidFormat { text: input.to_owned() }
    }

    fn required(variable: &str, message: &str) -> InterpolationError {
        InterpolationError::Required { variable: variable.to_owned(), message: message.to_owned() }
    }

    #[test]
    fn no_dollar_is_returned_unchanged() {
        let out = interpolate("plain text", &vars()).unwrap();
        assert_eq!(out.value, "plain text");
        assert!(!out.changed);
        assert!(out.unset.is_empty());
    }

    #[test]
    fn plain_and_braced_variables() {
        assert_eq!(ok("This $FOO var"), "This first var");
        assert_eq!(ok("This ${FOO} var"), "This first var");
        assert_eq!(ok("$FOO-bar"), "first-bar");
        assert_eq!(ok("${FOO}${FOO}"), "firstfirst");
        assert_eq!(ok("$FOO$B/${B}_x"), "firstbee/bee_x");
        assert_eq!(ok("This ${EMPTY} var"), "This  var");
    }

    #[test]
    fn names_are_case_sensitive_and_may_use_either_case() {
        let lookup = BTreeMap::from([("lower_Case9".to_owned(), "v".to_owned())]);
        assert_eq!(interpolate("${lower_Case9}", &lookup).unwrap().value, "v");
        let out = interpolate("$LOWER_CASE9", &lookup).unwrap();
        assert_eq!(out.value, "");
        assert_eq!(out.unset, vec!["LOWER_CASE9"]);
    }

    #[test]
    fn unset_variables_are_reported_once_each() {
        let out = interpolate("$MISSING ${MISSING} $OTHER ${FOO}", &vars()).unwrap();
        assert_eq!(out.value, "   first");
        assert_eq!(out.unset, vec!["MISSING", "OTHER"]);
        assert!(out.changed);
    }

    #[test]
    fn escaped_dollar() {
        let out = interpolate("$${FOO} costs $$5", &vars()).unwrap();
        assert_eq!(out.value, "${FOO} costs $5");
        assert!(out.changed);
        assert!(out.unset.is_empty());
        assert_eq!(ok("$$$FOO"), "$first");
        assert_eq!(ok("$$$"), "$$");
    }

    #[test]
    fn lone_dollars_are_literal() {
        for text in ["a $ string", "^REGEX$", "$}", "$", "$1", "$-x", "€$é", "$ {FOO}"] {
            let out = interpolate(text, &vars()).unwrap();
            assert_eq!(out.value, text);
            assert!(!out.changed, "{text}");
        }
    }

    #[test]
    fn default_when_unset_or_empty() {
        assert_eq!(ok("ok ${MISSING:-def}"), "ok def");
        assert_eq!(ok("ok ${EMPTY:-def}"), "ok def");
        assert_eq!(ok("ok ${FOO:-def}"), "ok first");
        assert_eq!(ok("ok ${MISSING:-}"), "ok ");
        assert_eq!(ok("ok ${EMPTY:-/non:-alphanumeric}"), "ok /non:-alphanumeric");
    }

    #[test]
    fn default_when_unset_only() {
        assert_eq!(ok("ok ${MISSING-def}"), "ok def");
        assert_eq!(ok("ok ${EMPTY-def}"), "ok ");
        assert_eq!(ok("ok ${FOO-def}"), "ok first");
        assert_eq!(ok("${MISSING-myerror?msg}"), "myerror?msg");
    }

    #[test]
    fn defaults_do_not_report_unset() {
        let out = interpolate("${MISSING:-x}${MISSING-y}${MISSING:+z}${MISSING+w}", &vars()).unwrap();
        assert_eq!(out.value, "xy");
        assert!(out.unset.is_empty());
    }

    #[test]
    fn alternative_when_set_and_non_empty() {
        assert_eq!(ok("ok ${FOO:+alt}"), "ok alt");
        assert_eq!(ok("ok ${EMPTY:+alt}"), "ok ");
        assert_eq!(ok("ok ${MISSING:+alt}"), "ok ");
    }

    #[test]
    fn alternative_when_set() {
        assert_eq!(ok("ok ${FOO+alt}"), "ok alt");
        assert_eq!(ok("ok ${EMPTY+alt}"), "ok alt");
        assert_eq!(ok("ok ${MISSING+alt}"), "ok ");
    }

    #[test]
    fn required_when_unset_or_empty() {
        assert_eq!(ok("ok ${FOO:?err}"), "ok first");
        assert_eq!(err("${MISSING:?Mandatory Variable Unset}"), required("MISSING", "Mandatory Variable Unset"));
        assert_eq!(err("${EMPTY:?must be set}"), required("EMPTY", "must be set"));
    }

    #[test]
    fn required_when_unset_only() {
        assert_eq!(ok("ok ${FOO?err}"), "ok first");
        assert_eq!(ok("ok ${EMPTY?err}"), "ok ");
        assert_eq!(err("${MISSING?bar-baz}"), required("MISSING", "bar-baz"));
    }

    #[test]
    fn required_without_message_gets_a_hint() {
        let error = err("not ok ${MISSING:?}");
        assert_eq!(error, required("MISSING", DEFAULT_REQUIRED_MESSAGE));
        assert_eq!(
            error.to_string(),
            "required variable MISSING is missing a value: set it in the environment or in the .env file"
        );
        assert_eq!(err("${MISSING?}"), required("MISSING", DEFAULT_REQUIRED_MESSAGE));
    }

    #[test]
    fn required_message_is_interpolated() {
        assert_eq!(err("${MISSING:?Mandatory ${FOO}}"), required("MISSING", "Mandatory first"));
        assert_eq!(err("${MISSING?need $B}"), required("MISSING", "need bee"));
    }

    #[test]
    fn nested_defaults() {
        assert_eq!(ok("${MISSING:-${OTHER:-x}}"), "x");
        assert_eq!(ok("${MISSING:-${FOO:-x}}"), "first");
        assert_eq!(ok("ok ${MISSING-$FOO}"), "ok first");
        assert_eq!(ok("ok ${MISSING-${FOO} ${FOO}}"), "ok first first");
        assert_eq!(ok("ok ${EMPTY+$FOO ${FOO:+second}}"), "ok first second");
        assert_eq!(ok("+ok ${MISSING:-${EMPTY-defaultValue}}"), "+ok ");
        assert_eq!(ok("${A:-${B:-x}}-${C:-y}"), "bee-y");
    }

    #[test]
    fn unused_branches_are_not_evaluated() {
        let out = interpolate("${MISSING:+${NOPE},}B", &vars()).unwrap();
        assert_eq!(out.value, "B");
        assert!(out.unset.is_empty());
        assert_eq!(ok("${FOO?${NOPE:?boom}}"), "first");
        let used = interpolate("${MISSING:-${NOPE}}", &vars()).unwrap();
        assert_eq!(used.unset, vec!["NOPE"]);
    }

    #[test]
    fn curly_braces_inside_defaults() {
        assert_eq!(ok(r#"ok ${MISSING:-{"json":1}}"#), r#"ok {"json":1}"#);
        assert_eq!(ok(r#"ok ${JSON-{"json":1}}"#), r#"ok {"json":2}"#);
        assert_eq!(ok("${MISSING:-a}}"), "a}");
        // Unbalanced braces fall back to the last `}` on the line, as compose-go does.
        assert_eq!(ok("${MISSING:-{}"), "{");
    }

    #[test]
    fn several_expressions_and_unicode() {
        assert_eq!(ok("héllo ${FOO}→$B ünï ${MISSING:-çà}"), "héllo first→bee ünï çà");
        assert_eq!(ok("ok ${SUBDOMAIN:-redis}.${FOO:?}"), "ok redis.first");
        assert_eq!(ok("日本$FOO語"), "日本first語");
    }

    #[test]
    fn invalid_expressions() {
        for text in ["${", "${}", "${ }", "${ foo}", "${foo }", "${foo!}", "${FOO/x/y}", "${1A}", "${A:x}"] {
            assert_eq!(err(text), invalid(text), "{text}");
        }
    }

    #[test]
    fn unterminated_braces_are_invalid() {
        assert_eq!(err("x ${FOO"), invalid("x ${FOO"));
        assert_eq!(err("${FOO:-abc"), invalid("${FOO:-abc"));
        // The closing brace must be on the same line.
        assert_eq!(err("${FOO:-a\n}"), invalid("${FOO:-a\n}"));
        assert_eq!(ok("${FOO:-a}\n}"), "first\n}");
    }

    #[test]
    fn invalid_format_message_quotes_the_input() {
        let message = err("a ${} b").to_string();
        assert!(message.contains(r#""a ${} b""#), "{message}");
        assert!(message.contains("$$"), "{message}");
    }

    #[test]
    fn invalid_nested_default_only_fails_when_used() {
        assert_eq!(ok("${FOO:-${}}"), "first");
        assert_eq!(err("${MISSING:-${}}"), invalid("${MISSING:-${}}"));
    }

    #[test]
    fn deep_nesting_is_rejected_not_overflowed() {
        let levels = MAX_NESTING + 10;
        let text = format!("{}x{}", "${A:-".repeat(levels), "}".repeat(levels));
        let error = interpolate(&text, &HashMap::<String, String>::new()).unwrap_err();
        assert!(matches!(error, InterpolationError::NestingTooDeep { limit: MAX_NESTING, .. }));
        let shallow = format!("{}x{}", "${A:-".repeat(8), "}".repeat(8));
        assert_eq!(interpolate(&shallow, &HashMap::<String, String>::new()).unwrap().value, "x");
    }

    #[test]
    fn layered_lookup_prefers_the_first_source() {
        let first = BTreeMap::from([("A".to_owned(), "1".to_owned())]);
        let second = IndexMap::from([("A".to_owned(), "2".to_owned()), ("B".to_owned(), "3".to_owned())]);
        let out = interpolate("$A$B", &(&first, &second)).unwrap();
        assert_eq!(out.value, "13");
    }
}
