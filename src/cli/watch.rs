//! `berth watch`: bring the project up with its `develop.watch` rules running in the
//! supervisor, then show the watched services' output and the watch's summary lines until
//! Ctrl-C, which stops watching and leaves the project up.

use anyhow::anyhow;

use super::attach::{block_stop_signals, signal_arrived, wait_a_little};
use super::logs::{LogView, Style};
use super::up::UpArgs;
use super::{Failure, GlobalOptions, load_project};
use crate::supervisor::{self, SupervisorRecord, control};

/// `berth watch`.
#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// Do not bring the project up first (it must be running).
    #[arg(long)]
    pub no_up: bool,
    /// Only the watch's summary lines, not the services' output.
    #[arg(long)]
    pub quiet: bool,
    /// Only these services' rules (default: every service that has some).
    pub services: Vec<String>,
}

pub(super) fn watch(global: &GlobalOptions, args: &WatchArgs) -> Result<u8, Failure> {
    let signals = block_stop_signals()?;
    let failure = |e: anyhow::Error| Failure { code: 1, error: e };
    let loaded = load_project(&global.project_options())?;
    let project = &loaded.project;
    let watched: Vec<String> = project
        .services
        .iter()
        .filter(|(name, s)| {
            (args.services.is_empty() || args.services.contains(name))
                && s.develop.as_ref().is_some_and(|d| !d.watch.is_empty())
        })
        .map(|(name, _)| name.clone())
        .collect();
    if watched.is_empty() {
        return Err(failure(anyhow!("none of the services has develop.watch rules")));
    }
    let root = global.state_root();
    let dir = supervisor::project_dir(&root, &project.name);
    if args.no_up {
        match control::request(&dir, &control::Request::Watch { services: args.services.clone() }) {
            Some(control::Reply::Done) => {}
            Some(other) => return Err(failure(super::supervise::unexpected(other))),
            None => {
                return Err(failure(anyhow!(
                    "project {} is not running: `berth watch` without --no-up starts it",
                    project.name
                )));
            }
        }
    } else {
        let up = UpArgs { detach: true, watch: true, services: args.services.clone(), ..UpArgs::default() };
        super::up::up(global, &up)?;
    }
    let style = Style { prefix: true, color: std::io::IsTerminal::is_terminal(&std::io::stdout()), timestamps: false };
    let shown: Vec<String> = if args.quiet { vec![String::from("\u{0}none")] } else { watched };
    let mut view = LogView::new(&root, project, &shown, style);
    view.add_file("watch", supervisor::watching::watch_log(&dir));
    view.catch_up(Some(0), None, None)?;
    loop {
        view.poll()?;
        if signal_arrived(&signals) {
            control::request(&dir, &control::Request::Unwatch);
            view.poll()?;
            return Ok(0);
        }
        if !SupervisorRecord::load(&root, &project.name).is_some_and(|r| r.is_running()) {
            view.poll()?;
            return Ok(0);
        }
        wait_a_little(&signals);
    }
}
