//! Walks docker compose v2.40's command-line reference (`tests/cli_reference/compose.txt`,
//! made by `tests/cli_reference/generate.sh` from compose's own `--help`) and checks each
//! command and flag against berth's clap definition: berth accepts it (the flag exists on
//! that command, with the same short form, taking a value exactly when compose's does), or
//! README lists it under "Not supported: compose commands and flags that need a Docker
//! Engine" with a reason, or `tests/cli_reference/not-yet.txt` lists it as still missing (and
//! this test prints it, on standard error past the harness's capture).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use berth::cli::Cli;
use clap::CommandFactory;

/// One line of the fixture.
#[derive(Debug)]
struct Entry {
    /// The command path under `docker compose`, words joined by a space; empty for global flags.
    command: String,
    /// `--long`, or `None` for the command itself.
    long: Option<String>,
    /// `-s`, when compose has one.
    short: Option<char>,
    /// Whether the flag takes a value (cobra's type is not `bool`).
    takes_value: bool,
}

impl Entry {
    /// The key README and not-yet.txt use: `run`, `run --detach`, `--dry-run` (global).
    fn key(&self) -> String {
        match &self.long {
            None => self.command.clone(),
            Some(long) if self.command.is_empty() => long.clone(),
            Some(long) => format!("{} {long}", self.command),
        }
    }
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cli_reference")
}

fn fixture() -> Vec<Entry> {
    let text = std::fs::read_to_string(dir().join("compose.txt")).expect("read tests/cli_reference/compose.txt");
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            let long = fields.get(1).filter(|f| !f.is_empty()).map(|f| (*f).to_owned());
            let short = fields.get(2).and_then(|s| s.strip_prefix('-')).and_then(|s| s.chars().next());
            let takes_value = fields.get(3).is_some_and(|t| !t.is_empty() && *t != "bool");
            Entry { command: fields[0].to_owned(), long, short, takes_value }
        })
        .collect()
}

/// README's exceptions: `` - `KEY`: reason `` lines of its "Not supported" section.
fn readme_exceptions() -> BTreeMap<String, String> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).expect("README.md");
    let heading = "## Not supported: compose commands and flags that need a Docker Engine";
    let start = readme.find(heading).unwrap_or_else(|| panic!("README has no section {heading:?}"));
    let section = &readme[start + heading.len()..];
    let section = &section[..section.find("\n#").unwrap_or(section.len())];
    let mut found = BTreeMap::new();
    for line in section.lines().filter_map(|l| l.strip_prefix("- `")) {
        let (key, rest) = line.split_once('`').unwrap_or_else(|| panic!("README exception without closing `: {line}"));
        let reason = rest.trim_start_matches(':').trim();
        assert!(!reason.is_empty(), "README exception {key:?} gives no reason");
        found.insert(key.to_owned(), reason.to_owned());
    }
    assert!(!found.is_empty(), "README's {heading:?} section lists nothing");
    found
}

/// not-yet.txt: one key per line, `#` comments; `* --flag` stands for that flag on every command.
fn not_yet() -> BTreeSet<String> {
    let text = std::fs::read_to_string(dir().join("not-yet.txt")).expect("read tests/cli_reference/not-yet.txt");
    text.lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Whether berth's command line has this entry, or why not.
fn check(root: &clap::Command, entry: &Entry) -> Result<(), String> {
    let mut command = root;
    for word in entry.command.split_whitespace() {
        command = command
            .get_subcommands()
            .find(|c| c.get_name() == word || c.get_all_aliases().any(|a| a == word))
            .ok_or_else(|| format!("no command `{}`", entry.command))?;
    }
    let Some(long) = &entry.long else { return Ok(()) };
    let name = long.trim_start_matches("--");
    let arg = command
        .get_arguments()
        .find(|a| a.get_long() == Some(name) || a.get_all_aliases().is_some_and(|all| all.contains(&name)))
        .ok_or_else(|| format!("no flag {long}"))?;
    if let Some(short) = entry.short {
        let shorts: Vec<char> =
            arg.get_short().into_iter().chain(arg.get_all_short_aliases().unwrap_or_default()).collect();
        if !shorts.contains(&short) {
            return Err(format!("{long} has no short form -{short}"));
        }
    }
    let takes_value = arg.get_action().takes_values();
    if takes_value != entry.takes_value {
        return Err(if entry.takes_value {
            format!("{long} is a switch in berth; compose's takes a value")
        } else {
            format!("{long} takes a value in berth; compose's is a switch")
        });
    }
    Ok(())
}

#[test]
fn every_compose_command_and_flag_is_accepted_or_listed() {
    let entries = fixture();
    assert!(entries.len() > 200, "the fixture lists only {} entries", entries.len());
    let mut root = Cli::command();
    // Propagates global arguments to the subcommands, as parsing would.
    root.build();
    let exceptions = readme_exceptions();
    let not_yet = not_yet();
    let keys: BTreeSet<String> = entries.iter().map(Entry::key).collect();
    let mut problems = Vec::new();
    let mut missing = Vec::new();
    let mut unsupported = 0;
    for entry in &entries {
        let key = entry.key();
        let wildcard = entry.long.as_ref().map(|l| format!("* {l}"));
        let listed_not_yet = not_yet.contains(&key) || wildcard.as_ref().is_some_and(|w| not_yet.contains(w));
        // An exception for a command covers its flags and subcommands.
        let excepted = exceptions.keys().any(|e| key == *e || key.starts_with(&format!("{e} ")));
        match check(&root, entry) {
            Ok(()) if excepted => problems.push(format!("{key}: berth accepts it, yet README lists it as unsupported")),
            Ok(()) if not_yet.contains(&key) => {
                problems.push(format!("{key}: berth accepts it now; take it off not-yet.txt"));
            }
            Ok(()) => {}
            Err(_) if excepted => unsupported += 1,
            Err(why) if listed_not_yet => missing.push(format!("{key} ({why})")),
            Err(why) => problems.push(format!("{key}: {why}, and neither README nor not-yet.txt lists it")),
        }
    }
    for key in not_yet.iter().filter(|k| !k.starts_with("* ")) {
        if !keys.contains(key) {
            problems.push(format!("not-yet.txt lists {key:?}, which compose v2.40 does not have"));
        }
    }
    for key in exceptions.keys() {
        if !keys.contains(key) {
            problems.push(format!("README lists {key:?} as unsupported, which compose v2.40 does not have"));
        }
    }
    // Straight to the terminal, past the test harness's capture: a known gap must be seen.
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "\ncli_reference: {} compose entries; {} accepted, {} unsupported by design (README), {} NOT YET in berth:",
        entries.len(),
        entries.len() - missing.len() - unsupported,
        unsupported,
        missing.len()
    );
    for m in &missing {
        let _ = writeln!(err, "  NOT YET: {m}");
    }
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
}

/// The fixture is what the script makes from the installed compose, when it is installed.
#[test]
fn the_fixture_is_what_the_script_generates() {
    let version = std::process::Command::new("docker").args(["compose", "version", "--short"]).output();
    match version {
        Ok(out)
            if out.status.success()
                && String::from_utf8_lossy(&out.stdout).trim().trim_start_matches('v') == "2.40.3" => {}
        other => {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: docker compose v2.40.3 is not installed ({other:?}); the fixture is not regenerated"
            );
            return;
        }
    }
    let out = std::process::Command::new("bash").arg(dir().join("generate.sh")).output().expect("run generate.sh");
    assert!(out.status.success(), "generate.sh: {}", String::from_utf8_lossy(&out.stderr));
    let committed = std::fs::read_to_string(dir().join("compose.txt")).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), committed, "compose.txt is stale: run generate.sh > compose.txt");
}
