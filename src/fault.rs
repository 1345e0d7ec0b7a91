//! Fault injection: named kill points where a berth process SIGKILLs itself, so tests can show
//! that a command killed at any of them leaves nothing that a re-run or `down` cannot finish.
//!
//! A point is selected by `BERTH_KILL_POINT=<command>.<point>` (say `up.after-spawn`): the
//! command (`up`, `down`, `start`, `stop`, `run`, `pull`, `build`, or `supervisor` for the
//! project's supervisor process) is the process's own, set once by the CLI with
//! [`set_command`], and the point is where the code calls [`point`]. One place in shared code
//! (a record's rename, a container directory's removal) so serves every command that reaches
//! it. The supervisor inherits the variable from the `up` (or `start`) that started it.
//!
//! The points exist in debug builds and with the `fault-injection` cargo feature; in a release
//! build without it [`point`] is an empty inline function.

/// Every kill point, `<command>.<point>`, with where it strikes. tests/kill_points.rs drives
/// each one and checks that this table is covered.
pub const POINTS: &[(&str, &str)] = &[
    ("up.after-volumes", "up: the project's volumes made, no supervisor started yet"),
    ("up.after-spawn", "up: the supervisor spawned, its answer not yet read"),
    ("supervisor.after-record", "supervisor: supervisor.json written, no network made"),
    ("supervisor.after-network", "supervisor: the project's networks made, no container started"),
    ("supervisor.before-record", "supervisor: a container's process exec'd, its state.json not written"),
    ("supervisor.before-rename", "supervisor: a record's temporary file written and synced, not renamed"),
    ("supervisor.before-restart", "supervisor: a crashed container retired, its restart not yet made"),
    ("supervisor.mid-removal", "supervisor (down): a container directory claimed and half removed"),
    ("down.after-supervisor", "down: the supervisor gone, its leftovers not yet cleaned"),
    ("down.mid-removal", "down: a container directory claimed and half removed"),
    ("down.before-networks", "down: the containers removed, the networks not"),
    ("start.after-reap", "start: a dead supervisor's containers reaped, no supervisor started"),
    ("stop.mid-reap", "stop: a dead supervisor's container killed, not yet recorded as stopped"),
    ("run.before-record", "run: the one-off container's process exec'd, its state.json not written"),
    ("run.before-rename", "run: a record's temporary file written and synced, not renamed"),
    ("pull.mid-unpack", "pull: a layer unpacked into staging, not yet moved into the store"),
    ("pull.mid-commit", "pull: the image record written, its name not"),
    ("build.after-run", "build: a RUN step's container done, its layer not yet taken"),
    ("build.mid-commit", "build: the image record written, its name not"),
];

/// The environment variable that selects a point.
pub const VARIABLE: &str = "BERTH_KILL_POINT";

#[cfg(any(debug_assertions, feature = "fault-injection"))]
mod armed {
    use std::sync::OnceLock;

    pub(super) static COMMAND: OnceLock<&'static str> = OnceLock::new();

    /// The selected point, read once.
    pub(super) fn selected() -> Option<&'static str> {
        static SELECTED: OnceLock<Option<String>> = OnceLock::new();
        SELECTED.get_or_init(|| std::env::var(super::VARIABLE).ok().filter(|v| !v.is_empty())).as_deref()
    }
}

/// Names the command this process runs, for [`point`]'s full names (first call wins).
#[inline(always)]
pub fn set_command(command: &'static str) {
    #[cfg(any(debug_assertions, feature = "fault-injection"))]
    {
        let _ = armed::COMMAND.set(command);
        if let Some(selected) = armed::selected()
            && selected.starts_with(&format!("{command}."))
            && !POINTS.iter().any(|(name, _)| *name == selected)
        {
            eprintln!("berth: warning: {} names no kill point: {selected}", VARIABLE);
        }
    }
    #[cfg(not(any(debug_assertions, feature = "fault-injection")))]
    let _ = command;
}

/// Kills this process with SIGKILL when `<command>.<name>` is the selected point; otherwise
/// (and always in a release build without `fault-injection`) does nothing.
#[inline(always)]
pub fn point(name: &str) {
    #[cfg(any(debug_assertions, feature = "fault-injection"))]
    {
        let (Some(selected), Some(command)) = (armed::selected(), armed::COMMAND.get()) else { return };
        if selected.strip_prefix(command).and_then(|rest| rest.strip_prefix('.')) == Some(name) {
            // Said first, so a test can tell which process died where (the supervisor's
            // standard error is its log).
            eprintln!("berth: kill point {selected}: SIGKILL");
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        }
    }
    #[cfg(not(any(debug_assertions, feature = "fault-injection")))]
    let _ = name;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_point_is_named_command_dot_point_once() {
        let commands = ["up", "down", "start", "stop", "run", "pull", "build", "supervisor"];
        let mut seen = std::collections::BTreeSet::new();
        for (name, _) in POINTS {
            let (command, point) = name.split_once('.').expect("command.point");
            assert!(commands.contains(&command), "{name}");
            assert!(!point.is_empty() && !point.contains('.'), "{name}");
            assert!(seen.insert(*name), "{name} twice");
        }
        for command in commands {
            assert!(POINTS.iter().any(|(n, _)| n.starts_with(&format!("{command}."))), "no point in {command}");
        }
    }
}
