//! The `.env` / `env_file` format, parsed the way compose-go's `dotenv/parser.go` does.
//!
//! Besides `KEY=VALUE` lines this accepts `export KEY=VALUE`, YAML-style `KEY: VALUE`,
//! single-quoted literals, double-quoted values with escapes spanning several lines,
//! inline ` #` comments after unquoted values and bare `KEY` lines that inherit the
//! value from the lookup environment. Unquoted and double-quoted values are interpolated.
//! [`parse_raw`] implements the `format: raw` variant (`docker run --env-file` rules).

use std::collections::HashSet;

use indexmap::IndexMap;

use super::interpolate::{InterpolationError, Lookup, interpolate};

/// Why an env file could not be parsed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DotenvError {
    /// The file is not in the dotenv format.
    #[error("line {line}: {message}")]
    Syntax {
        /// 1-based line of the offending statement.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// A value could not be interpolated.
    #[error("line {line}: {source}")]
    Interpolation {
        /// 1-based line where the value starts.
        line: usize,
        /// The underlying interpolation failure.
        source: InterpolationError,
    },
}

/// Parses a dotenv file into its variables, in file order.
pub fn parse(content: &str, lookup: &dyn Lookup) -> Result<IndexMap<String, String>, DotenvError> {
    let mut vars = IndexMap::new();
    parse_into(content, lookup, &mut vars)?;
    Ok(vars)
}

/// Parses a dotenv file into `vars`, which may already hold variables from earlier files.
///
/// Values are interpolated from `lookup` first and then from `vars` (earlier files and
/// earlier lines), matching compose-go: the process environment beats a value the file
/// itself defined, so `A=1` then `B=$A` yields `B=5` when the environment has `A=5`.
/// Returns the names of unset variables that interpolation replaced with the empty
/// string, first occurrence first, for the caller to warn about.
pub fn parse_into(
    content: &str,
    lookup: &dyn Lookup,
    vars: &mut IndexMap<String, String>,
) -> Result<Vec<String>, DotenvError> {
    let mut parser =
        Parser { src: content.strip_prefix('\u{feff}').unwrap_or(content), pos: 0, line: 1, unset: Vec::new() };
    parser.run(lookup, vars)?;
    let mut seen = HashSet::new();
    parser.unset.retain(|name| seen.insert(name.clone()));
    Ok(parser.unset)
}

/// Parses a `format: raw` env file: each `KEY=VALUE` line is taken literally.
///
/// As with `docker run --env-file`, leading whitespace and `#` comment lines are skipped,
/// the value keeps its quotes and trailing whitespace, and a bare `KEY` takes its value
/// from `lookup` or is left out when the lookup does not know it.
pub fn parse_raw(content: &str, lookup: &dyn Lookup) -> Result<IndexMap<String, String>, DotenvError> {
    let content = content.strip_prefix('\u{feff}').unwrap_or(content);
    let mut vars = IndexMap::new();
    for (index, raw_line) in content.split('\n').enumerate() {
        let line = raw_line.strip_suffix('\r').unwrap_or(raw_line).trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (line, None),
        };
        let syntax = |message: String| DotenvError::Syntax { line: index + 1, message };
        if key.is_empty() {
            return Err(syntax(format!("no variable name before '=' in {line:?}")));
        }
        if key.contains([' ', '\t']) {
            return Err(syntax(format!("variable name {key:?} contains whitespace")));
        }
        if let Some(value) = value.or_else(|| lookup.get(key)) {
            vars.insert(key.to_owned(), value.to_owned());
        }
    }
    Ok(vars)
}

/// Cursor over the file; `line` is the 1-based line of `pos`.
struct Parser<'a> {
    src: &'a str,
    pos: usize,
    line: usize,
    unset: Vec<String>,
}

impl<'a> Parser<'a> {
    fn run(&mut self, lookup: &dyn Lookup, vars: &mut IndexMap<String, String>) -> Result<(), DotenvError> {
        while self.skip_to_statement() {
            let line = self.line;
            let (key, inherited) = self.key()?;
            if key.chars().any(char::is_whitespace) {
                return Err(DotenvError::Syntax { line, message: format!("key {key:?} cannot contain a space") });
            }
            if inherited {
                if let Some(value) = lookup.get(&key) {
                    vars.insert(key, value.to_owned());
                }
                continue;
            }
            self.skip_blanks();
            let value = self.value(lookup, vars)?;
            vars.insert(key, value);
        }
        Ok(())
    }

    fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or_default()
    }

    /// Skips whitespace and `#` comment lines; false at end of input.
    fn skip_to_statement(&mut self) -> bool {
        loop {
            let rest = self.rest();
            let Some((offset, first)) = rest.char_indices().find(|&(_, c)| !c.is_whitespace()) else {
                self.line += rest.matches('\n').count();
                self.pos = self.src.len();
                return false;
            };
            self.line += rest[..offset].matches('\n').count();
            self.pos += offset;
            if first != '#' {
                return true;
            }
            match self.rest().find('\n') {
                Some(newline) => self.pos += newline,
                None => {
                    self.pos = self.src.len();
                    return false;
                }
            }
        }
    }

    /// Skips blanks other than newlines (compose-go's `isSpace`).
    fn skip_blanks(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start_matches(is_blank).len();
    }

    /// Reads a key up to `=`, `:` or end of line; the flag is true for a bare `KEY` line.
    fn key(&mut self) -> Result<(String, bool), DotenvError> {
        let rest = self.rest();
        if let Some(after) = rest.strip_prefix("export")
            && after.starts_with([' ', '\t', '\n', '\r', '\u{c}'])
        {
            self.pos += "export".len();
            self.skip_blanks();
        }
        let rest = self.rest();
        for (i, c) in rest.char_indices() {
            match c {
                '=' | ':' | '\n' => {
                    let key = rest[..i].trim_end().to_owned();
                    self.pos += i + 1;
                    let inherited = c == '\n';
                    if inherited {
                        self.line += 1;
                    }
                    return Ok((key, inherited));
                }
                '_' | '.' | '-' | '[' | ']' => {}
                c if is_blank(c) || c.is_alphabetic() || c.is_numeric() => {}
                c => {
                    let statement = rest.lines().next().unwrap_or_default();
                    return Err(DotenvError::Syntax {
                        line: self.line,
                        message: format!("unexpected character {c:?} in variable name {statement:?}"),
                    });
                }
            }
        }
        // A bare key on the last line: compose-go would mis-read it as a value for the
        // key "", which is never what the author meant.
        self.pos = self.src.len();
        Ok((rest.trim_end().to_owned(), true))
    }

    fn value(&mut self, lookup: &dyn Lookup, vars: &IndexMap<String, String>) -> Result<String, DotenvError> {
        let line = self.line;
        let rest = self.rest();
        let quote = match rest.chars().next() {
            Some(q @ ('\'' | '"')) => q,
            _ => {
                let (text, consumed, newline) = match rest.find('\n') {
                    Some(end) => (&rest[..end], end + 1, true),
                    None => (rest, rest.len(), false),
                };
                self.pos += consumed;
                self.line += usize::from(newline);
                // Only " #" starts a comment, so `a#b` and URLs with fragments survive.
                let text = text.split_once(" #").map_or(text, |(value, _)| value).trim_end();
                return self.expand(text, line, lookup, vars);
            }
        };

        let mut value = String::new();
        let mut escaped = false;
        for (i, c) in rest.char_indices().skip(1) {
            if c == '\n' {
                self.line += 1;
            }
            if c == quote && !escaped {
                self.pos += i + 1;
                return if quote == '"' { self.expand(&unescape(&value), line, lookup, vars) } else { Ok(value) };
            }
            if escaped {
                escaped = false;
                // An escaped quote loses its backslash; other escapes are kept for
                // `unescape`, or stay literal in single quotes.
                if c != quote {
                    value.push('\\');
                }
                value.push(c);
            } else if c == '\\' {
                escaped = true;
            } else {
                value.push(c);
            }
        }
        let first_line = rest.lines().next().unwrap_or_default();
        Err(DotenvError::Syntax { line, message: format!("unterminated quoted value {first_line}") })
    }

    fn expand(
        &mut self,
        text: &str,
        line: usize,
        lookup: &dyn Lookup,
        vars: &IndexMap<String, String>,
    ) -> Result<String, DotenvError> {
        let interpolated =
            interpolate(text, &(lookup, vars)).map_err(|source| DotenvError::Interpolation { line, source })?;
        self.unset.extend(interpolated.unset);
        Ok(interpolated.value)
    }
}

/// Whitespace that does not end a line.
fn is_blank(c: char) -> bool {
    matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{85}' | '\u{a0}')
}

/// Expands the shell escapes compose-go honours in double quotes: `\a \b \f \n \r \t \v
/// \\ \"`, octal `\0NNN`, and `\$`, which becomes `$$` so interpolation leaves a `$`.
/// Any other backslash stays as written.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(slash) = rest.find('\\') {
        out.push_str(&rest[..slash]);
        let after = &rest[slash + 1..];
        let simple = match after.as_bytes().first() {
            Some(b'a') => "\u{7}",
            Some(b'b') => "\u{8}",
            Some(b'f') => "\u{c}",
            Some(b'n') => "\n",
            Some(b'r') => "\r",
            Some(b't') => "\t",
            Some(b'v') => "\u{b}",
            Some(b'\\') => "\\",
            Some(b'"') => "\"",
            Some(b'$') => "$$",
            _ => "",
        };
        rest = if !simple.is_empty() {
            out.push_str(simple);
            &after[1..]
        } else if let Some((c, tail)) = after.strip_prefix('0').and_then(octal) {
            out.push(c);
            tail
        } else {
            // Anything else, including a malformed octal escape, stays as written.
            out.push('\\');
            after
        };
    }
    out.push_str(rest);
    out
}

/// Decodes the `NNN` of `\0NNN` and returns the text after it. compose-go's regex takes
/// up to three digits and Go's `strconv.UnquoteChar` accepts exactly three octal ones
/// up to `\377`.
fn octal(digits: &str) -> Option<(char, &str)> {
    let code = digits.get(..3).filter(|d| d.bytes().all(|b| matches!(b, b'0'..=b'7')))?;
    let value = u32::from_str_radix(code, 8).ok().filter(|&v| v <= 0o377)?;
    Some((char::from_u32(value)?, &digits[3..]))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};

    use super::*;

    /// compose-go's dotenv fixtures; a vendored copy in the repository wins over the
    /// shared research corpus.
    fn fixtures_dir() -> PathBuf {
        let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/compose-go/dotenv/fixtures");
        assert!(
            shared.is_dir(),
            "compose-go's dotenv fixtures are missing at {}: clone berth next to shared/",
            shared.display()
        );
        shared
    }

    fn fixture(name: &str) -> String {
        let path = fixtures_dir().join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
    }

    fn no_env() -> HashMap<String, String> {
        HashMap::new()
    }

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|&(k, v)| (k.to_owned(), v.to_owned())).collect()
    }

    fn pairs(map: &IndexMap<String, String>) -> Vec<(&str, &str)> {
        map.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    fn one(input: &str, key: &str) -> String {
        let map = parse(input, &no_env()).unwrap();
        map.get(key).cloned().unwrap_or_else(|| panic!("{key:?} missing from {map:?} for {input:?}"))
    }

    fn syntax_line(input: &str) -> usize {
        match parse(input, &no_env()).unwrap_err() {
            DotenvError::Syntax { line, .. } => line,
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }

    /// Expected values come from compose-go's `dotenv/godotenv_test.go`; the parser keeps
    /// the `456` key that its `Read` helper filters out afterwards.
    #[test]
    fn every_compose_go_fixture() {
        const INHERITED: &str = "VAR_TO_BE_LOADED_FROM_OS_ENV";
        let plain = vec![
            ("OPTION_A", "1"),
            ("OPTION_B", "2"),
            ("OPTION_C", "3"),
            ("OPTION_D", "4"),
            ("OPTION_E", "5"),
            ("456", "ABC"),
            ("OPTION_F", ""),
            ("OPTION_G", ""),
            ("OPTION_H", "my string"),
        ];
        let substituted =
            vec![("OPTION_A", "1"), ("OPTION_B", "1"), ("OPTION_C", "1"), ("OPTION_D", "1_1"), ("OPTION_E", "")];
        let expectations = [
            ("custom.format", vec![("FOO", "BAR"), ("ZOT", "QIX")]),
            ("equals.env", vec![("OPTION_A", "postgres://localhost:5432/database?sslmode=disable")]),
            ("exported.env", vec![("OPTION_A", "2"), ("OPTION_B", "\\n")]),
            ("inherited-multi-var.env", vec![("foo", "bar"), (INHERITED, "SOME_RANDOM_VALUE"), ("bar", "baz")]),
            ("inherited-not-found.env", vec![]),
            ("inherited-single-var.env", vec![(INHERITED, "SOME_RANDOM_VALUE")]),
            ("plain.env", plain.clone()),
            (
                "quoted.env",
                vec![
                    ("OPTION_A", "1"),
                    ("OPTION_B", "2"),
                    ("OPTION_C", ""),
                    ("OPTION_D", "\\n"),
                    ("OPTION_E", "1"),
                    ("OPTION_F", "2"),
                    ("OPTION_G", ""),
                    ("OPTION_H", "\n"),
                    ("OPTION_I", "echo 'asd'"),
                    ("OPTION_J", "first line\nsecond line\nthird line\nand so on"),
                    ("OPTION_K", "Let's go!"),
                    ("OPTION_Z", "last value"),
                ],
            ),
            (
                "special.env",
                vec![("VAR.WITH.DOTS", "dots"), ("VAR_WITH_UNDERSCORES", "underscores"), ("VAR-WITH-DASHES", "dashes")],
            ),
            ("substitutions-default.env", substituted.clone()),
            ("substitutions.env", substituted),
            (
                "unquoted.env",
                vec![
                    ("OPTION_A", "some quoted phrase"),
                    ("OPTION_B", "first one with an unquoted phrase"),
                    ("OPTION_C", "then another one with an unquoted phrase"),
                    ("OPTION_D", "then another one with an unquoted phrase special è char"),
                    ("OPTION_E", "then another one quoted phrase"),
                ],
            ),
            ("utf8-bom.env", plain),
        ];
        let os = env(&[(INHERITED, "SOME_RANDOM_VALUE")]);
        let mut valid: Vec<String> = std::fs::read_dir(fixtures_dir())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        // invalid1.env is the one fixture that must fail; see the next test.
        valid.retain(|name| name != "invalid1.env");
        valid.sort();
        assert_eq!(valid, expectations.iter().map(|(name, _)| *name).collect::<Vec<_>>());
        for (name, expected) in &expectations {
            assert_eq!(&pairs(&parse(&fixture(name), &os).unwrap()), expected, "{name}");
        }
        assert!(fixture("utf8-bom.env").starts_with('\u{feff}'));
        assert!(parse(&fixture("inherited-single-var.env"), &no_env()).unwrap().is_empty());
    }

    #[test]
    fn fixture_invalid_reports_line_seven() {
        let error = parse(&fixture("invalid1.env"), &no_env()).unwrap_err();
        assert!(matches!(error, DotenvError::Syntax { line: 7, .. }), "{error:?}");
        assert!(error.to_string().starts_with("line 7: key \"INVALID LINE\" cannot contain a space"));
    }

    #[test]
    fn substitutions_report_unset_and_prefer_lookup_over_earlier_lines() {
        let mut vars = IndexMap::new();
        let unset = parse_into(&fixture("substitutions.env"), &no_env(), &mut vars).unwrap();
        assert_eq!(unset, vec!["OPTION_NOT_DEFINED"]);
        let os = env(&[("OPTION_A", "5")]);
        let expected =
            |a| vec![("OPTION_A", a), ("OPTION_B", "5"), ("OPTION_C", "5"), ("OPTION_D", "5_5"), ("OPTION_E", "")];
        assert_eq!(pairs(&parse(&fixture("substitutions.env"), &os).unwrap()), expected("1"));
        assert_eq!(pairs(&parse(&fixture("substitutions-default.env"), &os).unwrap()), expected("5"));
    }

    #[test]
    fn unquoted_values() {
        assert_eq!(one("FOO=bar", "FOO"), "bar");
        assert_eq!(one("FOO =bar", "FOO"), "bar");
        assert_eq!(one("FOO= bar ", "FOO"), "bar");
        assert_eq!(one("FOO=foobar=", "FOO"), "foobar=");
        assert_eq!(one("OPTION_A=1:B", "OPTION_A"), "1:B");
        assert_eq!(one("OPTION_A: Foo=bar", "OPTION_A"), "Foo=bar");
        assert_eq!(one(r"FOO=a\tb", "FOO"), r"a\tb");
        assert_eq!(one("FOO.BAR=foobar", "FOO.BAR"), "foobar");
        assert_eq!(one("a[1]=c", "a[1]"), "c");
        assert_eq!(one("árvíztűrő-TÜKÖR=ÁRVÍZTŰRŐ", "árvíztűrő-TÜKÖR"), "ÁRVÍZTŰRŐ");
    }

    #[test]
    fn inline_comments_need_a_space() {
        assert_eq!(one("FOO=bar # this is foo", "FOO"), "bar");
        assert_eq!(one("FOO=bar #this is foo", "FOO"), "bar");
        assert_eq!(one("FOO=bar #", "FOO"), "bar");
        assert_eq!(one("FOO=123#not-an-inline-comment", "FOO"), "123#not-an-inline-comment");
        assert_eq!(one(r#"FOO="bar#baz" # comment"#, "FOO"), "bar#baz");
        assert_eq!(one(r##"FOO="bar#baz"#"##, "FOO"), "bar#baz");
        assert_eq!(one("FOO='bar#baz' # comment", "FOO"), "bar#baz");
    }

    #[test]
    fn export_prefix() {
        assert_eq!(one("export OPTION_A=2", "OPTION_A"), "2");
        assert_eq!(one("export\tOPTION_A=2", "OPTION_A"), "2");
        assert_eq!(one("  export OPTION_A=2", "OPTION_A"), "2");
        assert_eq!(one("export exportFoo=2", "exportFoo"), "2");
        assert_eq!(one("exportFOO=2", "exportFOO"), "2");
        assert_eq!(one("export_FOO =2", "export_FOO"), "2");
        assert_eq!(one("export.FOO= 2", "export.FOO"), "2");
        assert_eq!(one(r#"export OPTION_A="export A""#, "OPTION_A"), "export A");
        assert_eq!(one("export=1", "export"), "1");
    }

    #[test]
    fn double_quote_escapes() {
        assert_eq!(one(r#"FOO="escaped\"bar""#, "FOO"), "escaped\"bar");
        assert_eq!(one(r#"FOO="\"quoted\"""#, "FOO"), "\"quoted\"");
        assert_eq!(one(r#"FOO="'d'""#, "FOO"), "'d'");
        assert_eq!(one(r#"FOO="bar\nbaz""#, "FOO"), "bar\nbaz");
        assert_eq!(one(r#"FOO="a\tb""#, "FOO"), "a\tb");
        assert_eq!(one(r#"KEY="Z\aZ\bZ\fZ\nZ\rZ\tZ\vZ\\Z\0123Z""#, "KEY"), "Z\x07Z\x08Z\x0cZ\nZ\rZ\tZ\x0bZ\\ZSZ");
        assert_eq!(one(r#"FOO="bar\n\ b\az""#, "FOO"), "bar\n\\ b\x07z");
        assert_eq!(one(r#"FOO="bar\\\n\ b\az""#, "FOO"), "bar\\\n\\ b\x07z");
        assert_eq!(one(r#"FOO="bar\\r\ b\az""#, "FOO"), "bar\\r\\ b\x07z");
        assert_eq!(one(r#"FOO="bar\nbaz\\""#, "FOO"), "bar\nbaz\\");
        assert_eq!(one(r#"KEY="\0123""#, "KEY"), "S");
        assert_eq!(one(r#"KEY="\x07""#, "KEY"), r"\x07");
        assert_eq!(one(r#"KEY="\u12e4""#, "KEY"), r"\u12e4");
        assert_eq!(one(r#"KEY="\0 \01 \0999 \0777 \0101""#, "KEY"), r"\0 \01 \0999 \0777 A");
    }

    #[test]
    fn single_quotes_are_literal() {
        assert_eq!(one(r"FOO='a\nb $X ${Y:?z}'", "FOO"), r"a\nb $X ${Y:?z}");
        assert_eq!(one(r"FOO='it\'s'", "FOO"), "it's");
    }

    #[test]
    fn crlf_line_endings() {
        let map = parse("A=1\r\nB=\"two\"\r\n# c\r\nC\r\nD= x y \r\n", &env(&[("C", "see")])).unwrap();
        assert_eq!(pairs(&map), [("A", "1"), ("B", "two"), ("C", "see"), ("D", "x y")]);
    }

    #[test]
    fn comments_and_blank_lines() {
        let map = parse("\n\t\t \n# Comment\n\t # indented\nA=1\n\n", &no_env()).unwrap();
        assert_eq!(pairs(&map), [("A", "1")]);
        assert!(parse("# only a comment", &no_env()).unwrap().is_empty());
        assert!(parse("", &no_env()).unwrap().is_empty());
    }

    #[test]
    fn empty_values_and_keys() {
        assert_eq!(pairs(&parse("A=\nB=''\nC=\"\"", &no_env()).unwrap()), [("A", ""), ("B", ""), ("C", "")]);
        // compose-go accepts an empty key.
        assert_eq!(one(r#"="value""#, ""), "value");
    }

    #[test]
    fn bare_key_on_last_line_without_newline_is_inherited() {
        let map = parse("A=1\nHOME", &env(&[("HOME", "/root")])).unwrap();
        assert_eq!(pairs(&map), [("A", "1"), ("HOME", "/root")]);
        assert_eq!(pairs(&parse("A=1\nHOME", &no_env()).unwrap()), [("A", "1")]);
    }

    #[test]
    fn interpolation_of_values() {
        assert_eq!(one("FOO=test\nBAR=$FOO", "BAR"), "test");
        assert_eq!(one("FOO=test\nBAR=${FOO}bar", "BAR"), "testbar");
        assert_eq!(one("BAR=$FOO", "BAR"), "");
        assert_eq!(one("FOO=test\nBAR=\"quote $FOO\"", "BAR"), "quote test");
        assert_eq!(one("BAR='quote $FOO'", "BAR"), "quote $FOO");
        assert_eq!(one(r#"FOO="foo\$BAR""#, "FOO"), "foo$BAR");
        assert_eq!(one(r#"FOO="foo\${BAR}""#, "FOO"), "foo${BAR}");
        assert_eq!(one("FOO=test\nBAR=\"foo\\${FOO} ${FOO}\"", "BAR"), "foo${FOO} test");
        assert_eq!(one("A=$$x", "A"), "$x");
        let lookup = env(&[("ME", "YES")]);
        assert_eq!(parse("TEST=$ME", &lookup).unwrap()["TEST"], "YES");
    }

    #[test]
    fn interpolation_errors_carry_the_value_line() {
        let error = parse("A=1\nB=\"x\ny\"\nC=${REQ:?set REQ}", &no_env()).unwrap_err();
        let expected = DotenvError::Interpolation {
            line: 4,
            source: InterpolationError::Required { variable: "REQ".to_owned(), message: "set REQ".to_owned() },
        };
        assert_eq!(error, expected);
        assert_eq!(error.to_string(), "line 4: required variable REQ is missing a value: set REQ");
        assert!(matches!(
            parse("A=${}", &no_env()),
            Err(DotenvError::Interpolation { line: 1, source: InterpolationError::InvalidFormat { .. } })
        ));
    }

    #[test]
    fn parse_into_layers_files_like_compose() {
        let mut vars = IndexMap::new();
        for host in ["localhost", "dev.example.com"] {
            let file = format!("ENV_HOSTNAME={host}\nENV_MY_URL=\"http://${{ENV_HOSTNAME}}\"\n");
            parse_into(&file, &no_env(), &mut vars).unwrap();
        }
        let expected = [("ENV_HOSTNAME", "dev.example.com"), ("ENV_MY_URL", "http://dev.example.com")];
        assert_eq!(pairs(&vars), expected);
    }

    #[test]
    fn invalid_keys_are_syntax_errors_with_line() {
        assert_eq!(syntax_line("A=1\nlol$wut"), 2);
        assert_eq!(syntax_line("A=1\n\nMY KEY=2"), 3);
        let error = parse("%!(EXTRA string)=foo", &no_env()).unwrap_err();
        assert_eq!(error.to_string(), r#"line 1: unexpected character '%' in variable name "%!(EXTRA string)=foo""#);
    }

    #[test]
    fn unterminated_quotes_are_errors() {
        for input in [
            r#"KEY=""#,
            r#"KEY="value"#,
            r#"KEY="value\""#,
            r#"KEY="value'"#,
            "KEY='",
            "KEY='value",
            r"KEY='value\'",
            "A=1\nKEY='value\"\nmore",
        ] {
            let error = parse(input, &no_env()).unwrap_err();
            assert!(error.to_string().contains("unterminated quoted value"), "{input:?}: {error}");
        }
        assert_eq!(syntax_line("A=1\nKEY='value\nmore"), 2);
    }

    #[test]
    fn raw_format_takes_lines_literally() {
        let input = "\u{feff}A=\"quoted\" $X # not a comment \r\n  # comment\n\nB=\nC=x=y\nHOME\nNOPE\n";
        let map = parse_raw(input, &env(&[("HOME", "/root")])).unwrap();
        assert_eq!(pairs(&map), [("A", "\"quoted\" $X # not a comment "), ("B", ""), ("C", "x=y"), ("HOME", "/root")]);
    }

    #[test]
    fn raw_format_rejects_bad_names() {
        for (input, line) in [("A=1\nMY KEY=2", 2), ("=x", 1), ("A =1", 1)] {
            let error = parse_raw(input, &no_env()).unwrap_err();
            assert!(matches!(error, DotenvError::Syntax { line: l, .. } if l == line), "{error:?}");
        }
    }

    #[test]
    fn arbitrary_input_never_panics() {
        let pieces = ["A", "=", "'", "\"", "\\", "$", "{", "}", "#", " ", "\n", "\r", "é", "export ", ":", "\u{feff}"];
        let mut seed = 0x2545_f491_u32;
        for _ in 0..4000 {
            let mut input = String::new();
            for _ in 0..(seed % 24) {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                input.push_str(pieces[seed as usize % pieces.len()]);
            }
            if let Ok(vars) = parse(&input, &no_env()) {
                assert!(vars.keys().all(|key| !key.contains(char::is_whitespace)), "{input:?}");
            }
            if let Ok(vars) = parse_raw(&input, &no_env()) {
                assert!(vars.keys().all(|key| !key.is_empty() && !key.contains(' ')), "{input:?}");
            }
        }
    }
}
