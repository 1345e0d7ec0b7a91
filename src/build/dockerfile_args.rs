//! Per-instruction argument parsing: flags, JSON arrays, name=value lists.

use super::{Command, CopyArgs, Dockerfile, DockerfileError, Flag, Healthcheck, InstructionKind};

/// Builds one instruction from its keyword and the rest of its (joined) line.
pub(super) fn instruction(
    keyword: &str,
    word: &str,
    rest: &str,
    line: usize,
    df: &mut Dockerfile,
) -> Result<InstructionKind, DockerfileError> {
    let name = keyword.to_string();
    let missing = |what| DockerfileError::MissingArguments { name: name.clone(), what, line };
    let bad = |message: String| DockerfileError::BadArguments { name: name.clone(), message, line };
    let known = [
        "FROM",
        "RUN",
        "CMD",
        "ENTRYPOINT",
        "COPY",
        "ADD",
        "ENV",
        "ARG",
        "WORKDIR",
        "USER",
        "EXPOSE",
        "LABEL",
        "VOLUME",
        "HEALTHCHECK",
        "STOPSIGNAL",
        "SHELL",
        "MAINTAINER",
    ];
    if keyword == "ONBUILD" {
        return Err(DockerfileError::Unsupported { name, line });
    }
    if !known.contains(&keyword) {
        return Err(DockerfileError::UnknownInstruction { name: word.to_string(), line });
    }
    if rest.is_empty() {
        return Err(missing("at least one argument"));
    }
    let accepted: &[&str] = match keyword {
        "FROM" => &["platform"],
        "RUN" => &["mount", "network", "security"],
        "COPY" => &["from", "chown", "chmod", "link", "parents", "exclude"],
        "ADD" => &["chown", "chmod", "link", "checksum", "keep-git-dir", "exclude", "unpack"],
        "HEALTHCHECK" => &["interval", "timeout", "start-period", "start-interval", "retries"],
        _ => &[],
    };
    let (flags, rest) = if accepted.is_empty() { (Vec::new(), rest) } else { take_flags(rest, accepted, &name, line)? };
    let flag = |n: &str| flags.iter().rev().find(|f| f.name == n).and_then(|f| f.value.clone());
    Ok(match keyword {
        "FROM" => {
            let words: Vec<&str> = rest.split_whitespace().collect();
            let (image, stage) = match words.as_slice() {
                [image] => (*image, None),
                [image, as_, stage] if as_.eq_ignore_ascii_case("as") => (*image, Some(stage.to_string())),
                [] => return Err(missing("an image")),
                _ => return Err(bad("FROM requires either one or three arguments: image [AS name]".into())),
            };
            InstructionKind::From { platform: flag("platform"), image: image.to_string(), name: stage }
        }
        "RUN" if rest.is_empty() => return Err(missing("a command")),
        "RUN" => InstructionKind::Run { flags, command: command(rest) },
        "CMD" => InstructionKind::Cmd(command(rest)),
        "ENTRYPOINT" => InstructionKind::Entrypoint(command(rest)),
        "COPY" | "ADD" => {
            let mut words = json_array(rest).unwrap_or_else(|| rest.split_whitespace().map(str::to_string).collect());
            if words.len() < 2 {
                return Err(missing("at least two arguments: source(s) and destination"));
            }
            let dest = words.pop().unwrap_or_default();
            let mut args =
                CopyArgs { from: None, chown: None, chmod: None, link: false, flags: Vec::new(), sources: words, dest };
            for f in flags {
                match f.name.as_str() {
                    "from" => args.from = f.value,
                    "chown" => args.chown = f.value,
                    "chmod" => args.chmod = f.value,
                    "link" => args.link = f.value.as_deref().is_none_or(|v| v == "true"),
                    _ => args.flags.push(f),
                }
            }
            if keyword == "COPY" { InstructionKind::Copy(args) } else { InstructionKind::Add(args) }
        }
        "ENV" => InstructionKind::Env(name_values(rest, df.escape).map_err(bad)?),
        "LABEL" => InstructionKind::Label(name_values(rest, df.escape).map_err(bad)?),
        "MAINTAINER" => {
            df.notes.push(format!("line {line}: MAINTAINER is deprecated; recorded as the label `maintainer`"));
            InstructionKind::Label(vec![("maintainer".to_string(), rest.to_string())])
        }
        "ARG" => {
            let mut args = Vec::new();
            for w in split_words(rest, df.escape) {
                match w.split_once('=') {
                    Some(("", _)) => return Err(bad(format!("ARG names can not be blank: {w}"))),
                    Some((k, v)) => args.push((k.to_string(), Some(v.to_string()))),
                    None => args.push((w, None)),
                }
            }
            InstructionKind::Arg(args)
        }
        "WORKDIR" => InstructionKind::Workdir(rest.to_string()),
        "USER" => InstructionKind::User(rest.to_string()),
        "STOPSIGNAL" => InstructionKind::Stopsignal(rest.to_string()),
        "EXPOSE" => InstructionKind::Expose(rest.split_whitespace().map(str::to_string).collect()),
        "VOLUME" => {
            let list = json_array(rest).unwrap_or_else(|| rest.split_whitespace().map(str::to_string).collect());
            if list.iter().any(|v| v.trim().is_empty()) {
                return Err(bad("VOLUME specified can not be an empty string".into()));
            }
            InstructionKind::Volume(list)
        }
        "SHELL" => match json_array(rest) {
            Some(list) if !list.is_empty() => InstructionKind::Shell(list),
            _ => return Err(DockerfileError::BadJsonArray { name, line }),
        },
        _ => InstructionKind::Healthcheck(healthcheck(rest, &flags, &name, line)?),
    })
}

/// HEALTHCHECK's `NONE` or `CMD ...`, with the already-split flags.
fn healthcheck(rest: &str, flags: &[Flag], name: &str, line: usize) -> Result<Healthcheck, DockerfileError> {
    let bad = |message: String| DockerfileError::BadArguments { name: name.to_string(), message, line };
    let (word, cmd) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let flag = |n: &str| flags.iter().rev().find(|f| f.name == n).and_then(|f| f.value.clone());
    match word.to_ascii_uppercase().as_str() {
        "NONE" if cmd.trim().is_empty() && flags.is_empty() => Ok(Healthcheck::None),
        "NONE" => Err(bad("HEALTHCHECK NONE takes no arguments".into())),
        "CMD" if cmd.trim().is_empty() => {
            Err(DockerfileError::MissingArguments { name: name.to_string(), what: "a command after CMD", line })
        }
        "CMD" => {
            let retries = match flag("retries") {
                None => None,
                Some(r) => Some(r.parse::<u32>().map_err(|_| bad(format!("invalid --retries value {r:?}")))?),
            };
            Ok(Healthcheck::Cmd {
                interval: flag("interval"),
                timeout: flag("timeout"),
                start_period: flag("start-period"),
                start_interval: flag("start-interval"),
                retries,
                command: command(cmd.trim()),
            })
        }
        other => Err(bad(format!("unknown type {other:?} in HEALTHCHECK (try CMD)"))),
    }
}

/// Splits the leading `--flag[=value]` words off `rest`.
fn take_flags<'a>(
    mut rest: &'a str,
    accepted: &[&str],
    name: &str,
    line: usize,
) -> Result<(Vec<Flag>, &'a str), DockerfileError> {
    let mut flags = Vec::new();
    while let Some(after) = rest.strip_prefix("--") {
        let (word, tail) = after.split_once(char::is_whitespace).unwrap_or((after, ""));
        if word.is_empty() {
            // A bare `--` ends the flags, as in BuildKit.
            return Ok((flags, tail.trim_start()));
        }
        let (flag, value) = match word.split_once('=') {
            Some((f, v)) => (f, Some(v.to_string())),
            None => (word, None),
        };
        let err = |message| DockerfileError::BadFlag { name: name.to_string(), message, line };
        if !accepted.contains(&flag) {
            return Err(err(format!("unknown flag: --{flag}")));
        }
        if value.is_none() && flag != "link" && flag != "parents" && flag != "keep-git-dir" && flag != "unpack" {
            return Err(err(format!("missing a value on flag: --{flag}")));
        }
        flags.push(Flag { name: flag.to_string(), value });
        rest = tail.trim_start();
    }
    Ok((flags, rest))
}

/// A JSON array of strings, or `None`.
fn json_array(text: &str) -> Option<Vec<String>> {
    if !text.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(text).ok()
}

/// Exec form when `text` is a JSON array of strings, else shell form (docker falls back to the
/// shell form for a malformed array, too).
fn command(text: &str) -> Command {
    match json_array(text) {
        Some(list) => Command::Exec(list),
        None => Command::Shell(text.to_string()),
    }
}

/// Splits at blanks outside quotes, keeping quotes and escapes (BuildKit's `parseWords`).
fn split_words(text: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if quote.is_none() && c.is_whitespace() {
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            continue;
        }
        word.push(c);
        if c == escape && quote != Some('\'') {
            if let Some(n) = chars.next() {
                word.push(n);
            }
        } else if quote == Some(c) {
            quote = None;
        } else if quote.is_none() && (c == '"' || c == '\'') {
            quote = Some(c);
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// ENV and LABEL: `k=v k2="v 2"`, or the legacy `k value with blanks`.
fn name_values(rest: &str, escape: char) -> Result<Vec<(String, String)>, String> {
    let words = split_words(rest, escape);
    let first = words.first().map(String::as_str).unwrap_or_default();
    if !first.contains('=') {
        let (key, value) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        let value = value.trim();
        if value.is_empty() {
            return Err(format!("{key} must have two arguments (or be of the form name=value)"));
        }
        return Ok(vec![(key.to_string(), value.to_string())]);
    }
    words
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some(("", _)) => Err(format!("names can not be blank: {w}")),
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => Err(format!("syntax error - can't find = in {w:?}: must be of the form name=value")),
        })
        .collect()
}
