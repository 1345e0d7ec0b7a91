//! `develop.watch` rules: which changed host paths a rule takes, and where they land in the
//! container.
//!
//! Compose (`pkg/compose/watch.go`, `watchRule.Matches`) takes a path when it is the rule's
//! path or under it, passes the rule's `include` list (everything when empty), and is not
//! ignored. The ignore set is the union of: the build context's `.dockerignore` (relative to the
//! context, so it only applies under it), editor temporary files (`pkg/watch/ephemeral.go`),
//! `.git`, and the rule's own `ignore` list (relative to the rule's path). All lists use
//! `.dockerignore` syntax, matched as moby's `patternmatcher` does
//! (`MatchesOrParentMatches`), see [`Patterns`].

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use regex::Regex;

use crate::spec::model::WatchRule;

/// What a rule does with a batch of changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Sync,
    SyncRestart,
    Restart,
    Rebuild,
    SyncExec,
}

impl Action {
    /// The compose spelling: `sync`, `sync+restart`, `restart`, `rebuild`, `sync+exec`.
    pub fn parse(action: &str) -> Option<Action> {
        Some(match action {
            "sync" => Action::Sync,
            "sync+restart" => Action::SyncRestart,
            "restart" => Action::Restart,
            "rebuild" => Action::Rebuild,
            "sync+exec" => Action::SyncExec,
            _ => return None,
        })
    }

    /// Whether the action copies files into the container (and so needs a `target`).
    pub fn syncs(self) -> bool {
        matches!(self, Action::Sync | Action::SyncRestart | Action::SyncExec)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Sync => "sync",
            Action::SyncRestart => "sync+restart",
            Action::Restart => "restart",
            Action::Rebuild => "rebuild",
            Action::SyncExec => "sync+exec",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("service {service:?}: develop.watch[{index}]: unknown action {action:?}")]
    UnknownAction { service: String, index: usize, action: String },
    #[error("service {service:?}: develop.watch[{index}]: path {path:?} is not absolute")]
    RelativePath { service: String, index: usize, path: String },
    #[error("service {service:?}: develop.watch[{index}]: action {action} needs a target")]
    MissingTarget { service: String, index: usize, action: Action },
    #[error("service {service:?}: develop.watch[{index}]: {source}")]
    Pattern {
        service: String,
        index: usize,
        #[source]
        source: PatternError,
    },
    #[error("service {service:?}: reading {}: {source}", path.display())]
    IgnoreFile {
        service: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum PatternError {
    #[error("illegal exclusion pattern: \"!\"")]
    BareExclusion,
    #[error("bad pattern {pattern:?}: {reason}")]
    Bad { pattern: String, reason: String },
}

/// Editor and tool temporary files compose never reacts to (`pkg/watch/ephemeral.go`), plus
/// `.git` (compose's own hard-coded `.git/` is anchored at `/` and so never matches; we ignore
/// `.git` at any depth below the rule's path).
const EPHEMERAL: &[&str] = &[
    "**/*___jb_old___",
    "**/*___jb_tmp___",
    "**/.idea/**",
    "**/.#*",
    "**/#*#",
    "**/4913",
    "**/*~",
    "**/.*.swp",
    "**/.*.swx",
    "**/.*.swo",
    "**/.*.swn",
    "**/.*.kate-swp",
    "**/*-go-tmp-umask",
    "**/.git",
];

/// One compiled `.dockerignore`-style pattern.
#[derive(Debug)]
struct Pattern {
    exclusion: bool,
    regex: Regex,
}

/// An ordered list of `.dockerignore` patterns, matched against slash-separated paths relative
/// to the list's base directory, with moby `patternmatcher` semantics:
///
/// - patterns are trimmed and cleaned (`a/./b/` is `a/b`), a leading `/` is dropped;
/// - `*` is any run of characters but `/`, `?` one character but `/`, `[...]` a class
///   (`[^...]` negated), `\` escapes the next character;
/// - `**` is any number of directories (`**/x`, `a/**/b`, `a/**`);
/// - a pattern matching a directory matches everything under it;
/// - `!pattern` is an exception; the last pattern that matches wins.
#[derive(Debug, Default)]
pub struct Patterns {
    patterns: Vec<Pattern>,
}

impl Patterns {
    pub fn new<S: AsRef<str>>(patterns: impl IntoIterator<Item = S>) -> Result<Patterns, PatternError> {
        let mut compiled = Vec::new();
        for raw in patterns {
            let mut p = raw.as_ref().trim();
            if p.is_empty() {
                continue;
            }
            let exclusion = p.starts_with('!');
            if exclusion {
                p = p[1..].trim();
                if p.is_empty() {
                    return Err(PatternError::BareExclusion);
                }
            }
            let cleaned = clean(p);
            let regex =
                compile(&cleaned).map_err(|reason| PatternError::Bad { pattern: raw.as_ref().into(), reason })?;
            compiled.push(Pattern { exclusion, regex });
        }
        Ok(Patterns { patterns: compiled })
    }

    /// The patterns of an ignore file (`ignorefile.ReadAll`): a UTF-8 BOM is dropped, lines
    /// starting with `#` are comments, blank lines are skipped.
    pub fn parse_ignore_file(contents: &str) -> Vec<String> {
        let contents = contents.strip_prefix('\u{feff}').unwrap_or(contents);
        contents
            .lines()
            .filter(|line| !line.starts_with('#'))
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(String::from)
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether any pattern is a `!` exception.
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    /// Whether `rel` (slash-separated, relative to the base) or one of its parent directories
    /// matches, and is not re-included by a later exception.
    pub fn matches(&self, rel: &str) -> bool {
        let rel = clean(rel);
        if rel == "." {
            return false;
        }
        // "a/b/c" → parents "a", "a/b".
        let parents: Vec<&str> = rel.match_indices('/').map(|(i, _)| &rel[..i]).collect();
        let mut matched = false;
        for pattern in &self.patterns {
            if pattern.exclusion != matched {
                continue;
            }
            if pattern.regex.is_match(&rel) || parents.iter().any(|parent| pattern.regex.is_match(parent)) {
                matched = !pattern.exclusion;
            }
        }
        matched
    }
}

/// `filepath.Clean` for slash paths, with a leading `/` dropped (patterns are relative).
fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|last| *last != "..") => {
                parts.pop();
            }
            ".." if path.starts_with('/') => {}
            _ => parts.push(part),
        }
    }
    if parts.is_empty() { ".".into() } else { parts.join("/") }
}

/// Translates one cleaned pattern into an anchored regex (moby `Pattern.compile`).
fn compile(pattern: &str) -> Result<Regex, String> {
    if pattern == "." {
        // The base itself: everything under it (compose joins it to the root, which then
        // matches every path as a parent).
        return Regex::new("^.*$").map_err(|e| e.to_string());
    }
    let chars: Vec<char> = pattern.chars().collect();
    let mut re = String::from("^");
    let mut i = 0;
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        match ch {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i == chars.len() {
                    re.push_str(".*");
                } else if i == 2 && !chars[i..].iter().any(|c| matches!(c, '*' | '?' | '[' | '\\')) {
                    // A leading `**x` with a literal rest is a suffix match in moby.
                    re.push_str(".*");
                } else {
                    re.push_str("(.*/)?");
                }
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '\\' => match chars.get(i) {
                Some(next) => {
                    re.push_str(&regex::escape(&next.to_string()));
                    i += 1;
                }
                None => return Err("trailing backslash".into()),
            },
            '[' => {
                re.push('[');
                if chars.get(i) == Some(&'^') {
                    re.push('^');
                    i += 1;
                }
                let start = i;
                loop {
                    match chars.get(i) {
                        None => return Err("unterminated character class".into()),
                        Some(']') if i > start => break,
                        Some('\\') => {
                            let next = chars.get(i + 1).ok_or("trailing backslash")?;
                            re.push_str(&regex::escape(&next.to_string()));
                            i += 2;
                        }
                        Some(c @ ('[' | ']' | '&' | '~')) => {
                            re.push('\\');
                            re.push(*c);
                            i += 1;
                        }
                        Some(c) => {
                            re.push(*c);
                            i += 1;
                        }
                    }
                }
                i += 1;
                re.push(']');
            }
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    Regex::new(&re).map_err(|e| e.to_string())
}

/// The slash-separated path of `path` relative to `base`: `None` when it is not under `base`
/// (or not UTF-8), `Some("")` when it is `base` itself.
fn relative(base: &Path, path: &Path) -> Option<String> {
    let rest = path.strip_prefix(base).ok()?;
    let parts: Option<Vec<&str>> = rest.components().map(|c| c.as_os_str().to_str()).collect();
    Some(parts?.join("/"))
}

/// A `develop.watch` rule, ready to match changed host paths.
#[derive(Debug)]
pub struct CompiledRule {
    service: String,
    index: usize,
    action: Action,
    path: PathBuf,
    target: Option<String>,
    exec: Option<serde_json::Value>,
    initial_sync: bool,
    include: Option<Patterns>,
    ignore: Patterns,
    ephemeral: Patterns,
    /// The build context and its `.dockerignore`.
    dockerignore: Option<(PathBuf, Patterns)>,
}

impl CompiledRule {
    /// Compiles rule `index` of `service`; `build_context` is the (absolute) build context, whose
    /// `.dockerignore` joins the ignore set.
    pub fn new(
        service: &str,
        index: usize,
        rule: &WatchRule,
        build_context: Option<&Path>,
    ) -> Result<CompiledRule, RuleError> {
        CompiledRule::with_dockerfile(service, index, rule, build_context, None)
    }

    /// Like [`CompiledRule::new`], preferring `<context>/<dockerfile>.dockerignore` over
    /// `<context>/.dockerignore` when it exists, as compose does.
    pub fn with_dockerfile(
        service: &str,
        index: usize,
        rule: &WatchRule,
        build_context: Option<&Path>,
        dockerfile: Option<&str>,
    ) -> Result<CompiledRule, RuleError> {
        let action = Action::parse(&rule.action).ok_or_else(|| RuleError::UnknownAction {
            service: service.into(),
            index,
            action: rule.action.clone(),
        })?;
        let path = PathBuf::from(&rule.path);
        if !path.is_absolute() {
            return Err(RuleError::RelativePath { service: service.into(), index, path: rule.path.clone() });
        }
        let target = rule.target.clone().filter(|t| !t.is_empty());
        if action.syncs() && target.is_none() {
            return Err(RuleError::MissingTarget { service: service.into(), index, action });
        }
        let pattern_err = |source| RuleError::Pattern { service: service.into(), index, source };
        let include =
            if rule.include.is_empty() { None } else { Some(Patterns::new(&rule.include).map_err(pattern_err)?) };
        let ignore = Patterns::new(&rule.ignore).map_err(pattern_err)?;
        let ephemeral = Patterns::new(EPHEMERAL).map_err(pattern_err)?;
        let dockerignore = match build_context {
            Some(context) => {
                let mut candidates = Vec::new();
                if let Some(dockerfile) = dockerfile {
                    candidates.push(context.join(format!("{dockerfile}.dockerignore")));
                }
                candidates.push(context.join(".dockerignore"));
                let mut found = None;
                for candidate in candidates {
                    match std::fs::read_to_string(&candidate) {
                        Ok(text) => {
                            found = Some(Patterns::new(Patterns::parse_ignore_file(&text)).map_err(pattern_err)?);
                            break;
                        }
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(source) => {
                            return Err(RuleError::IgnoreFile { service: service.into(), path: candidate, source });
                        }
                    }
                }
                found.map(|patterns| (context.to_path_buf(), patterns))
            }
            None => None,
        };
        Ok(CompiledRule {
            service: service.into(),
            index,
            action,
            path,
            target,
            exec: rule.exec.clone(),
            initial_sync: rule.initial_sync,
            include,
            ignore,
            ephemeral,
            dockerignore,
        })
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    /// The rule's position in the service's `develop.watch` list.
    pub fn index(&self) -> usize {
        self.index
    }

    pub fn action(&self) -> Action {
        self.action
    }

    /// The watched host path (absolute; a directory or a single file).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The container path (for the sync actions; `None` for `rebuild`/`restart` without one).
    pub fn target(&self) -> Option<&str> {
        self.target.as_deref()
    }

    /// The `exec` hook of `sync+exec`, as written.
    pub fn exec(&self) -> Option<&serde_json::Value> {
        self.exec.as_ref()
    }

    pub fn initial_sync(&self) -> bool {
        self.initial_sync
    }

    /// Whether a change to `host_path` concerns this rule: under its path, included, not ignored.
    pub fn matches(&self, host_path: &Path) -> bool {
        let Some(rel) = relative(&self.path, host_path) else { return false };
        // For the rule's own path (a single-file rule) the rule's lists, relative to it, cannot
        // apply; the editor patterns look at its name.
        let own_name =
            if rel.is_empty() { host_path.file_name().and_then(|n| n.to_str()).map(String::from) } else { None };
        if !rel.is_empty() {
            if let Some(include) = &self.include
                && !include.matches(&rel)
            {
                return false;
            }
            if self.ignore.matches(&rel) {
                return false;
            }
        }
        if self.ephemeral.matches(own_name.as_deref().unwrap_or(&rel)) {
            return false;
        }
        if let Some((context, patterns)) = &self.dockerignore
            && let Some(ctx_rel) = relative(context, host_path)
            && patterns.matches(&ctx_rel)
        {
            return false;
        }
        true
    }

    /// For a changed host path: `None` when it is outside the rule's path, ignored or not
    /// included (or not UTF-8); else the container path it maps to — the target joined with the
    /// path relative to the rule's path (the target itself for the rule's own path). Rules with
    /// no target (`rebuild`, `restart`) map matching paths to an empty string.
    pub fn map(&self, host_path: &Path) -> Option<String> {
        if !self.matches(host_path) {
            return None;
        }
        let rel = relative(&self.path, host_path)?;
        let Some(target) = &self.target else { return Some(String::new()) };
        let joined = if rel.is_empty() { target.clone() } else { format!("{target}/{rel}") };
        let cleaned = clean(&joined);
        Some(match (target.starts_with('/'), cleaned.as_str()) {
            (true, ".") => "/".into(),
            (true, _) => format!("/{cleaned}"),
            (false, _) => cleaned,
        })
    }

    /// Whether a directory and everything under it can be skipped when walking (it is ignored
    /// by a list that has no `!` exceptions that could re-include something below it).
    pub fn skips_dir(&self, dir: &Path) -> bool {
        let Some(rel) = relative(&self.path, dir) else { return true };
        if rel.is_empty() {
            return false;
        }
        if self.ephemeral.matches(&rel) || (!self.ignore.has_exceptions() && self.ignore.matches(&rel)) {
            return true;
        }
        matches!(&self.dockerignore, Some((context, patterns))
            if !patterns.has_exceptions() && relative(context, dir).is_some_and(|r| patterns.matches(&r)))
    }
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
