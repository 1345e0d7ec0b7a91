//! Docker's word expansion (`$VAR`, `${VAR:-x}`, quotes and escapes).

/// Why a word could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    /// A `'` or `"` with no partner.
    #[error("unexpected end of statement while looking for matching {0}")]
    UnterminatedQuote(&'static str),
    /// `${` with no `}`.
    #[error("missing '}}' in {0:?}")]
    MissingBrace(String),
    /// `${NAME` followed by something other than a modifier.
    #[error("unsupported modifier in {0:?}")]
    BadModifier(String),
    /// `${NAME?message}` / `${NAME:?message}` with NAME unset (or empty).
    #[error("{name}: {message}")]
    Required {
        /// The variable.
        name: String,
        /// The word after `?`.
        message: String,
    },
}

/// Expands one word as docker's shell lexer does for the instructions that expand (ENV, ARG,
/// LABEL, COPY, ADD, WORKDIR, USER, EXPOSE, VOLUME, STOPSIGNAL, FROM; never RUN, CMD,
/// ENTRYPOINT): removes quotes (`'...'` is literal; `"..."` expands), drops the escape before
/// a character outside quotes (inside double quotes only before `"`, `$` and the escape), and
/// replaces `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:+alt}`, `${VAR+alt}`,
/// `${VAR:?msg}` and `${VAR?msg}`. Unset variables expand to nothing.
pub fn expand(word: &str, vars: &impl Fn(&str) -> Option<String>, escape: char) -> Result<String, ExpandError> {
    let chars: Vec<char> = word.chars().collect();
    let mut lexer = Lexer { chars: &chars, pos: 0, escape, vars };
    lexer.word(None)
}

/// A cursor over a word being expanded.
struct Lexer<'a, F: Fn(&str) -> Option<String>> {
    chars: &'a [char],
    pos: usize,
    escape: char,
    vars: &'a F,
}

impl<F: Fn(&str) -> Option<String>> Lexer<'_, F> {
    fn next(&mut self) -> Option<char> {
        let c = self.chars.get(self.pos).copied();
        self.pos += usize::from(c.is_some());
        c
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    /// Processes up to `stop` (not consumed) or the end.
    fn word(&mut self, stop: Option<char>) -> Result<String, ExpandError> {
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                break;
            }
            self.pos += 1;
            match c {
                '\'' => loop {
                    match self.next() {
                        Some('\'') => break,
                        Some(ch) => out.push(ch),
                        None => return Err(ExpandError::UnterminatedQuote("single-quote")),
                    }
                },
                '"' => loop {
                    match self.next() {
                        Some('"') => break,
                        Some('$') => out.push_str(&self.dollar()?),
                        Some(ch) if ch == self.escape => match self.peek() {
                            Some(n) if n == '"' || n == '$' || n == self.escape => {
                                self.pos += 1;
                                out.push(n);
                            }
                            _ => out.push(ch),
                        },
                        Some(ch) => out.push(ch),
                        None => return Err(ExpandError::UnterminatedQuote("double-quote")),
                    }
                },
                '$' => out.push_str(&self.dollar()?),
                ch if ch == self.escape => match self.next() {
                    Some(n) => out.push(n),
                    None => out.push(ch),
                },
                ch => out.push(ch),
            }
        }
        Ok(out)
    }

    /// After a `$`.
    fn dollar(&mut self) -> Result<String, ExpandError> {
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".to_string());
            }
            return Ok((self.vars)(&name).unwrap_or_default());
        }
        self.pos += 1;
        let start = self.pos;
        let name = self.name();
        let chars = self.chars;
        let text = || chars[start.saturating_sub(2)..].iter().collect::<String>();
        if name.is_empty() {
            return Err(ExpandError::BadModifier(text()));
        }
        let value = (self.vars)(&name);
        let colon = self.peek() == Some(':');
        if colon {
            self.pos += 1;
        }
        let op = self.next();
        if op == Some('}') && !colon {
            return Ok(value.unwrap_or_default());
        }
        let word = match op {
            Some('-' | '+' | '?') => {
                let w = self.word(Some('}'))?;
                if self.next() != Some('}') {
                    return Err(ExpandError::MissingBrace(text()));
                }
                w
            }
            None => return Err(ExpandError::MissingBrace(text())),
            Some(_) => return Err(ExpandError::BadModifier(text())),
        };
        // With `:`, an empty value counts as unset.
        let set = value.as_deref().is_some_and(|v| !colon || !v.is_empty());
        Ok(match op {
            Some('-') if set => value.unwrap_or_default(),
            Some('-') => word,
            Some('+') if set => word,
            Some('+') => String::new(),
            _ if set => value.unwrap_or_default(),
            _ => return Err(ExpandError::Required { name, message: word }),
        })
    }

    /// A variable name: `[A-Za-z_][A-Za-z0-9_]*`, or one digit.
    fn name(&mut self) -> String {
        let mut name = String::new();
        if let Some(c) = self.peek().filter(char::is_ascii_digit) {
            self.pos += 1;
            name.push(c);
            return name;
        }
        while let Some(c) = self.peek().filter(|c| c.is_ascii_alphanumeric() || *c == '_') {
            self.pos += 1;
            name.push(c);
        }
        name
    }
}
