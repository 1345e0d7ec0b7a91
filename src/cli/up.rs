//! `berth up` and `berth down`: start the project's supervisor, and stop it (or clean up after
//! it when it died).

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Command as Process, Stdio};

use anyhow::anyhow;

use super::{EXIT_INVALID, Failure, GlobalOptions, load_project};
use crate::image::Store;
use crate::image::ensure::ensure_images;
use crate::runtime::spawner::Spawner;
use crate::supervisor::{self, SupervisorRecord, control, recover};

/// `berth up`.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Detached mode: start the containers in the background and return.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Wait until every container runs and is healthy (or exited 0); implies -d.
    #[arg(long)]
    pub wait: bool,
    /// Seconds `--wait` waits at most.
    #[arg(long, value_name = "SECONDS")]
    pub wait_timeout: Option<u64>,
    /// Attached: stop the project when any container exits.
    #[arg(long)]
    pub abort_on_container_exit: bool,
    /// Attached: exit with this service's exit code (implies --abort-on-container-exit).
    #[arg(long, value_name = "SERVICE")]
    pub exit_code_from: Option<String>,
    /// Attached: show only these services' output (repeatable).
    #[arg(long, value_name = "SERVICE")]
    pub attach: Vec<String>,
    /// Attached: do not show these services' output (repeatable).
    #[arg(long, value_name = "SERVICE")]
    pub no_attach: Vec<String>,
    /// Attached: plain prefixes.
    #[arg(long)]
    pub no_color: bool,
}

/// `berth down`.
#[derive(Debug, clap::Args)]
pub struct DownArgs {
    /// Seconds to wait for containers to stop before killing them (default: each service's
    /// `stop_grace_period`, else 10).
    #[arg(short = 't', long)]
    pub timeout: Option<u64>,
}

/// The environment variable that carries the readiness pipe's descriptor to the supervisor.
const READY_FD_VAR: &str = "BERTH_READY_FD";

fn failure(e: impl Into<anyhow::Error>) -> Failure {
    Failure { code: 1, error: e.into() }
}

pub(super) fn up(global: &GlobalOptions, args: &UpArgs) -> Result<u8, Failure> {
    let attached = !args.detach && !args.wait;
    // Ctrl-C is the attached session's to handle; blocked before any thread exists, so every
    // thread inherits the mask and the signals queue for the signalfd.
    let signals = if attached { Some(super::attach::block_stop_signals()?) } else { None };
    if global.files.iter().any(|f| f.as_os_str() == crate::spec::load::STDIN_NAME) {
        return Err(Failure { code: EXIT_INVALID, error: anyhow!("up cannot read the stack file from stdin") });
    }
    let loaded = load_project(&global.project_options())?;
    let project = &loaded.project;
    let root = global.state_root();
    let dir = supervisor::project_dir(&root, &project.name);
    if let Some(record) = SupervisorRecord::load(&root, &project.name).filter(SupervisorRecord::is_running) {
        if control::request(&dir, "ping").is_some() {
            println!("project {} is already up (supervisor pid {})", project.name, record.pid);
            return Ok(0);
        }
        recover::kill_and_wait(record.pid);
    }
    // A supervisor that died left containers, networks or rules: remove them first.
    recover::clean(&root, &project.name).map_err(failure)?;
    let store = Store::open(&root).map_err(failure)?;
    let wanted = project
        .services
        .iter()
        .filter_map(|(name, s)| Some((name.clone(), (s.image.clone()?, s.pull_policy.clone()))))
        .collect();
    ensure_images(&super::run::StoreSource { store: &store }, &wanted).map_err(failure)?;
    std::fs::create_dir_all(&dir).map_err(failure)?;
    let log = std::fs::File::create(dir.join("supervisor.log")).map_err(failure)?;
    let (read_end, write_end) = nix::unistd::pipe().map_err(failure)?;
    nix::fcntl::fcntl(&read_end, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC)).map_err(failure)?;
    let mut command = Process::new("/proc/self/exe");
    command.arg("--root").arg(&root).arg("-p").arg(&project.name);
    for file in &global.files {
        command.arg("-f").arg(file);
    }
    if let Some(dir) = &global.project_directory {
        command.arg("--project-directory").arg(dir);
    }
    for file in &global.env_files {
        command.arg("--env-file").arg(file);
    }
    for profile in &global.profiles {
        command.arg("--profile").arg(profile);
    }
    command
        .arg("__supervise")
        .env(READY_FD_VAR, write_end.as_raw_fd().to_string())
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(failure)?)
        .stderr(log);
    let mut child = command.spawn().map_err(failure)?;
    drop(write_end);
    let answer = read_answer(std::fs::File::from(read_end), &mut child).map_err(failure)?;
    if answer.trim() != "ok" {
        let reason = if answer.trim().is_empty() {
            format!("the supervisor exited without starting; see {}", dir.join("supervisor.log").display())
        } else {
            answer.trim().to_owned()
        };
        return Err(failure(anyhow!("{reason}")));
    }
    if !attached {
        for service in project.services.values() {
            for index in 1..=service.replicas() {
                let index = u32::try_from(index).unwrap_or(u32::MAX);
                println!(" Container {}  Started", crate::plan::container_name(project, service, index));
            }
        }
    }
    if args.wait {
        wait_until_ready(global, &project.name, args.wait_timeout.map(std::time::Duration::from_secs))?;
    }
    match signals {
        Some(signals) => super::attach::attach(global, project, args, &signals),
        None => Ok(0),
    }
}

/// `up --wait`: until every container runs (healthy, when it has a health check) or has
/// exited 0; a container that exited otherwise or is unhealthy fails it.
fn wait_until_ready(
    global: &GlobalOptions,
    project: &str,
    timeout: Option<std::time::Duration>,
) -> Result<(), Failure> {
    let started = std::time::Instant::now();
    loop {
        let containers = super::ps::containers(global, project);
        let mut ready = !containers.is_empty();
        for c in &containers {
            match (c.state.as_str(), c.health.as_str()) {
                ("running", "" | "healthy") => {}
                ("exited", _) if c.exit_code == 0 => {}
                ("exited", _) => {
                    return Err(failure(anyhow!("container {} exited with code {}", c.name, c.exit_code)));
                }
                (_, "unhealthy") => {
                    return Err(failure(anyhow!("container {} is unhealthy: {}", c.name, c.health_output.trim())));
                }
                _ => ready = false,
            }
        }
        if ready {
            return Ok(());
        }
        if timeout.is_some_and(|t| started.elapsed() >= t) {
            return Err(failure(anyhow!("timed out waiting for the project to be ready")));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

pub(super) fn down(global: &GlobalOptions, args: &DownArgs) -> Result<(), Failure> {
    let loaded = load_project(&global.project_options())?;
    let project = &loaded.project.name;
    let root = global.state_root();
    let dir = supervisor::project_dir(&root, project);
    if let Some(record) = SupervisorRecord::load(&root, project).filter(SupervisorRecord::is_running) {
        let request = args.timeout.map_or_else(|| "down".to_owned(), |t| format!("down {t}"));
        match control::request(&dir, &request) {
            Some(_) => recover::wait_for_exit(record.pid),
            None => recover::kill_and_wait(record.pid),
        }
    }
    recover::clean(&root, project).map_err(failure)?;
    Ok(())
}

/// The supervisor's one-line report. The pipe's write end outlives the supervisor in its
/// spawner, so its death is noticed by waiting for it, not by end of file.
fn read_answer(mut pipe: std::fs::File, child: &mut std::process::Child) -> std::io::Result<String> {
    use std::os::fd::AsFd;
    let mut answer = Vec::new();
    loop {
        let mut fds = [nix::poll::PollFd::new(pipe.as_fd(), nix::poll::PollFlags::POLLIN)];
        let ready = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u16)).unwrap_or(0);
        if ready > 0 {
            let mut chunk = [0u8; 4096];
            let n = pipe.read(&mut chunk)?;
            answer.extend_from_slice(&chunk[..n]);
            if n == 0 || answer.ends_with(b"\n") {
                break;
            }
        } else if child.try_wait()?.is_some() {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// The hidden `__supervise` command `up -d` starts.
pub(super) fn supervise(global: &GlobalOptions, spawner: Spawner) -> Result<u8, Failure> {
    let _ = nix::unistd::setsid();
    let ready = std::env::var(READY_FD_VAR).ok().and_then(|v| v.parse::<i32>().ok()).map(|fd| {
        // SAFETY: `up` passed this descriptor, open and ours alone, for exactly this use.
        std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) })
    });
    // SAFETY: single-threaded here apart from the spawner, which reads no environment.
    unsafe { std::env::remove_var(READY_FD_VAR) };
    let loaded = load_project(&global.project_options())?;
    let _ = super::ls::record_config_files(global, &loaded.project.name);
    supervisor::run(&global.state_root(), loaded.project, spawner, ready).map_err(failure)?;
    Ok(0)
}

/// `berth stop`, `berth start`, `berth restart`.
#[derive(Debug, clap::Args)]
pub struct ServicesArgs {
    /// Seconds to wait for containers to stop before killing them (stop, restart; default:
    /// each service's `stop_grace_period`, else 10).
    #[arg(short = 't', long)]
    pub timeout: Option<u64>,
    /// Only these services (default: all).
    pub services: Vec<String>,
}

/// Sends `stop`, `start` or `restart` to the project's supervisor and waits until it is done.
pub(super) fn lifecycle(global: &GlobalOptions, command: &str, args: &ServicesArgs) -> Result<(), Failure> {
    let loaded = load_project(&global.project_options())?;
    let project = &loaded.project;
    for service in &args.services {
        if !project.services.contains_key(service) {
            return Err(Failure { code: EXIT_INVALID, error: anyhow!("no such service: {service:?}") });
        }
    }
    let dir = supervisor::project_dir(&global.state_root(), &project.name);
    let timeout = args.timeout.map_or_else(|| "-".to_owned(), |t| t.to_string());
    let request = match command {
        "start" => format!("start {}", args.services.join(" ")),
        _ => format!("{command} {timeout} {}", args.services.join(" ")),
    };
    match control::request(&dir, request.trim_end()) {
        Some(reply) if reply == "ok" => Ok(()),
        Some(reply) => Err(failure(anyhow!("{}", reply.trim_start_matches("error: ")))),
        None => Err(failure(anyhow!("project {} is not running: `berth up -d` starts it", project.name))),
    }
}

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
    let request = format!("kill {} {}", signal.as_str(), args.services.join(" "));
    match control::request(&dir, request.trim_end()) {
        Some(reply) if reply == "ok" => Ok(()),
        Some(reply) => Err(failure(anyhow!("{}", reply.trim_start_matches("error: ")))),
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
