//! A Dockerfile parser: text in, a typed [`Dockerfile`] out, with BuildKit's rules for parser
//! directives, comments, line continuations and heredocs (moby/buildkit
//! `frontend/dockerfile/parser` and `instructions`).
//!
//! Pure: no I/O and no variable expansion at parse time. Values that docker expands (ENV, LABEL,
//! ARG defaults, COPY paths, WORKDIR, ...) are kept as written, quotes included, for the builder
//! to pass through [`expand`], which implements docker's shell-word lexer. [`stages`] splits a
//! file at `FROM` and [`needed_stages`] says which stages a target needs.

use std::collections::BTreeSet;

/// A parse error, with the 1-based line it was found on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DockerfileError {
    /// An instruction berth does not know.
    #[error("line {line}: unknown instruction: {name}")]
    UnknownInstruction {
        /// The instruction as written.
        name: String,
        /// Where it starts.
        line: usize,
    },
    /// A legacy instruction berth does not support (ONBUILD).
    #[error("line {line}: {name} is not supported")]
    Unsupported {
        /// The instruction, upper-cased.
        name: String,
        /// Where it starts.
        line: usize,
    },
    /// An instruction with no arguments, or too few.
    #[error("line {line}: {name} requires {what}")]
    MissingArguments {
        /// The instruction, upper-cased.
        name: String,
        /// What was expected.
        what: &'static str,
        /// Where it starts.
        line: usize,
    },
    /// Arguments the instruction cannot take.
    #[error("line {line}: {name}: {message}")]
    BadArguments {
        /// The instruction, upper-cased.
        name: String,
        /// What is wrong.
        message: String,
        /// Where it starts.
        line: usize,
    },
    /// A form that must be a JSON array of strings and is not (SHELL).
    #[error("line {line}: {name} requires the arguments to be in JSON form (a JSON array of strings)")]
    BadJsonArray {
        /// The instruction, upper-cased.
        name: String,
        /// Where it starts.
        line: usize,
    },
    /// A `--flag` the instruction does not take, or one missing its value.
    #[error("line {line}: {name}: {message}")]
    BadFlag {
        /// The instruction, upper-cased.
        name: String,
        /// What is wrong with the flag.
        message: String,
        /// Where it starts.
        line: usize,
    },
    /// A heredoc whose terminator never came.
    #[error("line {line}: unterminated heredoc: no line `{delimiter}` before the end of the file")]
    UnterminatedHeredoc {
        /// The delimiter word.
        delimiter: String,
        /// The line of the instruction that opened it.
        line: usize,
    },
    /// A parser directive that is invalid or repeated.
    #[error("line {line}: {message}")]
    BadDirective {
        /// What is wrong.
        message: String,
        /// Where it is.
        line: usize,
    },
    /// An instruction other than ARG before the first FROM.
    #[error("line {line}: {name} before the first FROM: no build stage in current context")]
    NoStage {
        /// The instruction, upper-cased.
        name: String,
        /// Where it starts.
        line: usize,
    },
    /// `--target` names no stage.
    #[error("target stage {0:?} could not be found")]
    UnknownTarget(String),
    /// The file has no FROM.
    #[error("the Dockerfile has no build stage (no FROM)")]
    NoStages,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The `# syntax=` directive, recorded but not acted on (berth is its own frontend).
    pub syntax: Option<String>,
    /// The escape character: `\` or, with `# escape=``, a backtick.
    pub escape: char,
    /// The instructions in file order.
    pub instructions: Vec<Instruction>,
    /// Things the parser accepted but the user may want to know (ignored directives, ...).
    pub notes: Vec<String>,
}

/// One instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// The 1-based line it starts on.
    pub line: usize,
    /// What it says.
    pub kind: InstructionKind,
    /// The heredoc bodies it opened (RUN, COPY and ADD), in order.
    pub heredocs: Vec<Heredoc>,
}

/// A heredoc body (`<<EOF`, `<<-EOF`, `<<"EOF"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word, unquoted.
    pub name: String,
    /// The lines between the instruction and the delimiter, each ending in `\n`.
    pub content: String,
    /// False when the delimiter was quoted: the body is taken literally.
    pub expand: bool,
    /// `<<-`: leading tabs were stripped from the body and the delimiter line.
    pub strip_tabs: bool,
}

/// A command in shell form (run by SHELL, default `/bin/sh -c`) or exec form (a JSON array).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// The text as written.
    Shell(String),
    /// The JSON array's strings.
    Exec(Vec<String>),
}

/// A `--name[=value]` flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    /// The name without the dashes.
    pub name: String,
    /// The value after `=`, if any.
    pub value: Option<String>,
}

/// COPY's or ADD's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyArgs {
    /// `--from=<stage, index or image>` (COPY only).
    pub from: Option<String>,
    /// `--chown=`.
    pub chown: Option<String>,
    /// `--chmod=`.
    pub chmod: Option<String>,
    /// `--link` (or `--link=true`).
    pub link: bool,
    /// The other accepted flags (`--parents`, `--exclude`, `--checksum`, `--keep-git-dir`).
    pub flags: Vec<Flag>,
    /// The sources as written; a heredoc source is its `<<NAME` word.
    pub sources: Vec<String>,
    /// The destination.
    pub dest: String,
}

/// HEALTHCHECK's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: disable the base image's check.
    None,
    /// `HEALTHCHECK [options] CMD ...`.
    Cmd {
        /// `--interval=`, as written (a Go duration).
        interval: Option<String>,
        /// `--timeout=`.
        timeout: Option<String>,
        /// `--start-period=`.
        start_period: Option<String>,
        /// `--start-interval=`.
        start_interval: Option<String>,
        /// `--retries=`.
        retries: Option<u32>,
        /// The check.
        command: Command,
    },
}

/// An instruction's typed arguments. Values are as written (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstructionKind {
    /// `FROM [--platform=p] image [AS name]`.
    From {
        /// `--platform=`.
        platform: Option<String>,
        /// The image or an earlier stage's name.
        image: String,
        /// The stage name after `AS`.
        name: Option<String>,
    },
    /// `RUN [--mount=..] [--network=..] [--security=..] command`.
    Run {
        /// The flags, raw.
        flags: Vec<Flag>,
        /// The command.
        command: Command,
    },
    /// `CMD`.
    Cmd(Command),
    /// `ENTRYPOINT`.
    Entrypoint(Command),
    /// `COPY`.
    Copy(CopyArgs),
    /// `ADD`.
    Add(CopyArgs),
    /// `ENV k=v ...` or `ENV k v`.
    Env(Vec<(String, String)>),
    /// `ARG name[=default] ...`.
    Arg(Vec<(String, Option<String>)>),
    /// `WORKDIR path`.
    Workdir(String),
    /// `USER user[:group]`.
    User(String),
    /// `EXPOSE port[/proto] ...`.
    Expose(Vec<String>),
    /// `LABEL k=v ...` (MAINTAINER becomes a `maintainer` label).
    Label(Vec<(String, String)>),
    /// `VOLUME ["/a", "/b"]` or `VOLUME /a /b`.
    Volume(Vec<String>),
    /// `HEALTHCHECK`.
    Healthcheck(Healthcheck),
    /// `STOPSIGNAL signal`.
    Stopsignal(String),
    /// `SHELL ["exe", "arg"]`.
    Shell(Vec<String>),
}

impl InstructionKind {
    /// The instruction's name, upper-case.
    pub fn name(&self) -> &'static str {
        match self {
            Self::From { .. } => "FROM",
            Self::Run { .. } => "RUN",
            Self::Cmd(_) => "CMD",
            Self::Entrypoint(_) => "ENTRYPOINT",
            Self::Copy(_) => "COPY",
            Self::Add(_) => "ADD",
            Self::Env(_) => "ENV",
            Self::Arg(_) => "ARG",
            Self::Workdir(_) => "WORKDIR",
            Self::User(_) => "USER",
            Self::Expose(_) => "EXPOSE",
            Self::Label(_) => "LABEL",
            Self::Volume(_) => "VOLUME",
            Self::Healthcheck(_) => "HEALTHCHECK",
            Self::Stopsignal(_) => "STOPSIGNAL",
            Self::Shell(_) => "SHELL",
        }
    }
}

/// Parses Dockerfile text.
pub fn parse(text: &str) -> Result<Dockerfile, DockerfileError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.lines().collect();
    let mut df = Dockerfile { syntax: None, escape: '\\', instructions: Vec::new(), notes: Vec::new() };
    let mut i = directives(&lines, &mut df)?;
    let mut seen_from = false;
    while i < lines.len() {
        let first = lines[i].trim_start();
        if first.trim().is_empty() || first.starts_with('#') {
            i += 1;
            continue;
        }
        let line = i + 1;
        let mut logical = String::new();
        let mut cur = first;
        loop {
            let (content, more) = strip_continuation(cur, df.escape);
            logical.push_str(content);
            i += 1;
            if !more {
                break;
            }
            // Docker skips comment lines and empty lines inside a continued instruction.
            while i < lines.len() && (lines[i].trim().is_empty() || lines[i].trim_start().starts_with('#')) {
                i += 1;
            }
            match lines.get(i) {
                Some(next) => cur = next,
                None => break,
            }
        }
        let logical = logical.trim();
        let (word, rest) = logical.split_once(char::is_whitespace).unwrap_or((logical, ""));
        let keyword = word.to_ascii_uppercase();
        let rest = rest.trim();
        let mut heredocs = Vec::new();
        if matches!(keyword.as_str(), "RUN" | "COPY" | "ADD") {
            for marker in heredoc_markers(rest) {
                let mut content = String::new();
                loop {
                    let Some(raw) = lines.get(i) else {
                        return Err(DockerfileError::UnterminatedHeredoc { delimiter: marker.name, line });
                    };
                    i += 1;
                    let body = if marker.strip_tabs { raw.trim_start_matches('\t') } else { raw };
                    if body == marker.name {
                        break;
                    }
                    content.push_str(body);
                    content.push('\n');
                }
                heredocs.push(Heredoc {
                    name: marker.name,
                    content,
                    expand: marker.expand,
                    strip_tabs: marker.strip_tabs,
                });
            }
        }
        let kind = instruction(&keyword, word, rest, line, &mut df)?;
        match &kind {
            InstructionKind::From { .. } => seen_from = true,
            InstructionKind::Arg(_) => {}
            other if !seen_from => {
                return Err(DockerfileError::NoStage { name: other.name().to_string(), line });
            }
            _ => {}
        }
        df.instructions.push(Instruction { line, kind, heredocs });
    }
    Ok(df)
}

/// Reads the parser directives at the top; returns the index of the first line after them.
fn directives(lines: &[&str], df: &mut Dockerfile) -> Result<usize, DockerfileError> {
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for (i, raw) in lines.iter().enumerate() {
        let Some(body) = raw.trim().strip_prefix('#') else { return Ok(i) };
        let Some((key, value)) = body.split_once('=') else { return Ok(i) };
        let key = key.trim().to_ascii_lowercase();
        let value = value.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Ok(i);
        }
        let line = i + 1;
        if !seen.insert(key.clone()) {
            return Err(DockerfileError::BadDirective {
                message: format!("only one {key} parser directive can be used"),
                line,
            });
        }
        match key.as_str() {
            "escape" => {
                df.escape = match value {
                    "\\" => '\\',
                    "`" => '`',
                    _ => {
                        return Err(DockerfileError::BadDirective {
                            message: format!("invalid escape token '{value}' does not match ` or \\"),
                            line,
                        });
                    }
                }
            }
            "syntax" => {
                df.syntax = Some(value.to_string());
                df.notes.push(format!("line {line}: syntax={value} ignored: berth parses the Dockerfile itself"));
            }
            _ => df.notes.push(format!("line {line}: parser directive {key} ignored")),
        }
    }
    Ok(lines.len())
}

/// Removes a trailing escape (and the blanks after it): the line continues on the next.
fn strip_continuation(line: &str, escape: char) -> (&str, bool) {
    let trimmed = line.trim_end_matches([' ', '\t']);
    match trimmed.strip_suffix(escape) {
        Some(content) => (content, true),
        None => (line, false),
    }
}

/// A `<<NAME` found on an instruction line.
struct Marker {
    name: String,
    expand: bool,
    strip_tabs: bool,
}

/// Finds the heredoc openers in `line`, outside quotes, in order. `<<<` (a here-string) and
/// `1<<2` (a shift) are not heredocs.
fn heredoc_markers(line: &str) -> Vec<Marker> {
    let chars: Vec<char> = line.chars().collect();
    let mut out = Vec::new();
    let mut quote: Option<char> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        if c == '\'' || c == '"' {
            quote = Some(c);
            i += 1;
            continue;
        }
        if c != '<' || chars.get(i + 1) != Some(&'<') {
            i += 1;
            continue;
        }
        if chars.get(i + 2) == Some(&'<') {
            while chars.get(i) == Some(&'<') {
                i += 1;
            }
            continue;
        }
        let mut j = i + 2;
        let strip_tabs = chars.get(j) == Some(&'-');
        if strip_tabs {
            j += 1;
        }
        let open = chars.get(j).copied().filter(|c| *c == '\'' || *c == '"');
        if open.is_some() {
            j += 1;
        }
        let start = j;
        while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
            j += 1;
        }
        let name: String = chars[start..j].iter().collect();
        let closed = match open {
            Some(q) if chars.get(j) == Some(&q) => {
                j += 1;
                true
            }
            Some(_) => false,
            None => true,
        };
        if closed && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            out.push(Marker { name, expand: open.is_none(), strip_tabs });
        }
        i = j.max(i + 2);
    }
    out
}

#[path = "dockerfile_args.rs"]
mod args;
use args::instruction;

#[path = "dockerfile_stages.rs"]
mod stages_impl;
pub use stages_impl::{Stage, global_args, needed_stages, stages};

#[path = "dockerfile_expand.rs"]
mod expand_impl;
pub use expand_impl::{ExpandError, expand};

#[cfg(test)]
#[path = "dockerfile_tests.rs"]
mod tests;
