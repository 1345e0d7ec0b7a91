//! `berth kill`: a signal to the project's containers, through its supervisor.

use anyhow::anyhow;

use super::supervise::{failure, lock_project, unexpected};
use super::{EXIT_INVALID, Failure, GlobalOptions, load_project};
use crate::supervisor::control::{Reply, Request};
use crate::supervisor::{self, control};

/// `berth kill`.
#[derive(Debug, clap::Args)]
pub struct KillArgs {
    /// The signal (`SIGKILL`, `KILL`, `9`, …).
    #[arg(short = 's', long, default_value = "SIGKILL")]
    pub signal: String,
    /// Only these services (default: all).
    pub services: Vec<String>,
}

/// Sends a signal to the project's containers through its supervisor.
pub(super) fn kill(global: &GlobalOptions, args: &KillArgs) -> Result<(), Failure> {
    let signal = parse_signal(&args.signal)
        .ok_or_else(|| Failure { code: EXIT_INVALID, error: anyhow!("invalid signal: {:?}", args.signal) })?;
    let loaded = load_project(&global.project_options())?;
    let dir = supervisor::project_dir(&global.state_root(), &loaded.project.name);
    let _lock = lock_project(global, &loaded.project.name)?;
    let request = Request::Kill { signal: signal.as_str().to_owned(), services: args.services.clone() };
    match control::request(&dir, &request) {
        Some(Reply::Done) => Ok(()),
        Some(other) => Err(failure(unexpected(other))),
        None => Err(failure(anyhow!("project {} is not running", loaded.project.name))),
    }
}

/// A signal by name (`SIGHUP`, `HUP`, any case) or number.
fn parse_signal(text: &str) -> Option<nix::sys::signal::Signal> {
    if let Ok(number) = text.parse::<i32>() {
        return nix::sys::signal::Signal::try_from(number).ok();
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    name.parse().ok()
}
