//! Attached `berth up`: the project's output with compose's prefixes until Ctrl-C (first: a
//! graceful stop; second: kill), until a container exits with `--abort-on-container-exit`, or
//! until every container has exited.

use std::os::fd::AsFd;

use anyhow::anyhow;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use super::logs::{LogView, Style};
use super::up::UpArgs;
use super::{Failure, GlobalOptions};
use crate::spec::Project;
use crate::supervisor::{self, SupervisorRecord, control, recover};

/// compose's status after an interrupted attached `up`.
const EXIT_INTERRUPTED: u8 = 130;
/// 128 + SIGTERM.
const EXIT_TERMINATED: u8 = 143;

/// Blocks SIGINT and SIGTERM and returns a signalfd for them.
pub(super) fn block_stop_signals() -> Result<SignalFd, Failure> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    let failure = |e: nix::Error| Failure { code: 1, error: e.into() };
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None).map_err(failure)?;
    SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).map_err(failure)
}

/// Follows the project until it ends; returns `up`'s exit status.
pub(super) fn attach(
    global: &GlobalOptions,
    project: &Project,
    args: &UpArgs,
    signals: &SignalFd,
) -> Result<u8, Failure> {
    let root = global.state_root();
    let dir = supervisor::project_dir(&root, &project.name);
    let mut services: Vec<String> =
        if args.attach.is_empty() { project.services.keys().cloned().collect() } else { args.attach.clone() };
    services.retain(|s| !args.no_attach.contains(s));
    let style = Style {
        prefix: true,
        color: !args.no_color && std::io::IsTerminal::is_terminal(&std::io::stdout()),
        timestamps: false,
    };
    let mut view = LogView::new(&root, project, &services, style);
    if args.watch {
        view.add_file("watch", supervisor::watching::watch_log(&dir));
    }
    println!("Attaching to {}", view.names().join(", "));
    view.add_hooks(&root, project, &services);
    view.catch_up(None, None, None)?;
    // The supervisor this `up` started or joined: only it is killed or cleaned after.
    let ours = SupervisorRecord::load(&root, &project.name).map(|r| (r.pid, r.start_time));
    let abort = args.abort_on_container_exit || args.exit_code_from.is_some();
    let mut stopping = false;
    let mut code = 0u8;
    loop {
        view.poll()?;
        if signal_arrived(signals) {
            if stopping {
                eprintln!("Killing...");
                if let Some(record) =
                    SupervisorRecord::load(&root, &project.name).filter(|r| Some((r.pid, r.start_time)) == ours)
                {
                    recover::kill_and_wait(record.pid);
                }
                // Killed, but kept, as compose's second Ctrl-C leaves them.
                recover::reap(&root, &project.name).map_err(|e| Failure { code: 1, error: e.into() })?;
                return Ok(EXIT_INTERRUPTED);
            }
            eprintln!("Gracefully stopping... (press Ctrl+C again to force)");
            // The containers stop and are kept (`start` runs them again); the supervisor ends.
            control::request(&dir, &control::Request::Halt { timeout: None });
            stopping = true;
            code = EXIT_INTERRUPTED;
        }
        if !SupervisorRecord::load(&root, &project.name).is_some_and(|r| r.is_running()) {
            view.poll()?;
            return Ok(code);
        }
        if !stopping {
            let containers = super::ps::containers(global, &project.name);
            let exited: Vec<_> = containers.iter().filter(|c| c.state == "exited").collect();
            let all_exited = !containers.is_empty() && exited.len() == containers.len();
            if (abort && !exited.is_empty()) || all_exited {
                code = match &args.exit_code_from {
                    Some(service) => {
                        match containers.iter().find(|c| &c.service == service && c.state == "exited") {
                            Some(c) => u8::try_from(c.exit_code.clamp(0, 255)).unwrap_or(255),
                            // Its container still runs and is stopped with the rest: the status of
                            // a process ended by SIGTERM.
                            None if containers.iter().any(|c| &c.service == service) => EXIT_TERMINATED,
                            None => {
                                return Err(Failure { code: 1, error: anyhow!("no such service: {service:?}") });
                            }
                        }
                    }
                    None => exited.first().map_or(0, |c| u8::try_from(c.exit_code.clamp(0, 255)).unwrap_or(255)),
                };
                if abort && !all_exited {
                    eprintln!("Aborting on container exit...");
                }
                control::request(&dir, &control::Request::Halt { timeout: None });
                stopping = true;
            }
        }
        wait_a_little(signals);
    }
}

pub(super) fn signal_arrived(signals: &SignalFd) -> bool {
    matches!(signals.read_signal(), Ok(Some(_)))
}

/// Sleeps 50 ms, or less when a signal arrives.
pub(super) fn wait_a_little(signals: &SignalFd) {
    let mut fds = [nix::poll::PollFd::new(signals.as_fd(), nix::poll::PollFlags::POLLIN)];
    let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(50u16));
}
