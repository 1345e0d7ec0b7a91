//! `berth run` (a one-off container for a service, in the foreground) and `berth exec`
//! (a process in a running container). Both relay the process's exit status as their own.

use std::io::IsTerminal;
use std::os::fd::{AsFd, AsRawFd};

use anyhow::anyhow;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use super::{EXIT_INVALID, Failure, GlobalOptions, load_project};
use crate::image::ensure::{StoreSource, ensure_images};
use crate::image::{ImageError, Store};
use crate::launch::{self, LaunchError, Networks, PlanContext, RunOverrides};
use crate::runtime::container::{ExitStatus, StartOptions, send_signal};
use crate::runtime::spawner::Spawner;
use crate::runtime::spec::Process;
use crate::runtime::{RuntimeError, exec, pty, state};

/// `berth run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Remove the container (and its anonymous volumes) when it exits; without it the container is kept, stopped.
    #[arg(long)]
    pub rm: bool,
    /// Container name. Default: `<project>-<service>-run-<id>`.
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub process: ProcessFlags,
    /// Override the image's entrypoint (a command line, split like a shell would).
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Keep stdin attached (the default, as in compose).
    #[arg(short = 'i', long, default_value_t = true)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY even when stdin is not a terminal (default: when it is).
    #[arg(short = 't', long, conflicts_with = "no_tty")]
    pub tty: bool,
    /// Run the container in the background and print its name; it is kept until `down`
    /// (or removed when it exits, with --rm).
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Do not start the service's dependencies.
    #[arg(long)]
    pub no_deps: bool,
    /// Publish a container port to the host (`[IP:][HOST:]CONTAINER[/PROTO]`, repeatable).
    #[arg(short = 'p', long, value_name = "PORT")]
    pub publish: Vec<String>,
    /// Publish the service's `ports` too (by default `run` publishes none of them).
    #[arg(short = 'P', long)]
    pub service_ports: bool,
    /// Mount a volume or bind a host path (`SOURCE:TARGET[:ro]`, repeatable).
    #[arg(short = 'v', long, value_name = "VOLUME")]
    pub volume: Vec<String>,
    /// Build the service's image before starting it.
    #[arg(long)]
    pub build: bool,
    /// Pull the image: `always`, `missing`, `never`, or `policy` (the service's pull_policy).
    #[arg(long, value_name = "POLICY", value_parser = ["always", "missing", "never", "policy"])]
    pub pull: Option<String>,
    /// Pull images without progress output.
    #[arg(long)]
    pub quiet_pull: bool,
    /// Add a Linux capability (repeatable).
    #[arg(long, value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop a Linux capability (repeatable).
    #[arg(long, value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// The service.
    pub service: String,
    /// The command and its arguments (default: the service's).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// Flags `run` and `exec` share.
#[derive(Debug, clap::Args)]
pub struct ProcessFlags {
    /// Set an environment variable (`KEY=VALUE`, or `KEY` to take it from this environment).
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Run as this user (`name`, `uid`, `name:group`, `uid:gid`).
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Working directory inside the container.
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// Disable pseudo-TTY allocation (default: a TTY when stdin is a terminal).
    #[arg(short = 'T', long = "no-TTY", visible_alias = "no-tty")]
    pub no_tty: bool,
}

/// `berth exec`.
#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub process: ProcessFlags,
    /// Give the process every capability.
    #[arg(long)]
    pub privileged: bool,
    /// Which replica of the service.
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    /// Accepted for compatibility: stdin is always attached.
    #[arg(short = 'i', long, default_value_t = true)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY even when stdin is not a terminal (default: when it is).
    #[arg(short = 't', long, conflicts_with = "no_tty")]
    pub tty: bool,
    /// The service.
    pub service: String,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

/// Signals a foreground `run` or `exec` passes on instead of dying of them, as `docker run`
/// proxies signals.
const FORWARDED: [Signal; 6] =
    [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP, Signal::SIGQUIT, Signal::SIGUSR1, Signal::SIGUSR2];

fn failure(e: impl Into<anyhow::Error>) -> Failure {
    Failure { code: 1, error: e.into() }
}

/// Docker's status for a process that could not be started: 127.
const EXIT_CANNOT_START: u8 = 127;

fn start_failure(e: RuntimeError) -> Failure {
    let code = if matches!(e, RuntimeError::Start { .. }) { EXIT_CANNOT_START } else { 1 };
    Failure { code, error: e.into() }
}

fn invalid(e: impl Into<anyhow::Error>) -> Failure {
    Failure { code: EXIT_INVALID, error: e.into() }
}

pub(super) fn run(global: &GlobalOptions, args: &RunArgs, spawner: &Spawner) -> Result<u8, Failure> {
    let forwarded = block_forwarded_signals()?;
    let root = global.state_root();
    clean_stale(&root);
    crate::timing::phase("clean_stale");
    let options = global.project_options();
    let loaded = load_project(&options)?;
    crate::timing::phase("load");
    let project = &loaded.project;
    let service = project.services.get(&args.service).ok_or_else(|| {
        let hint = crate::graph::did_you_mean(&args.service, project.services.keys().map(String::as_str))
            .map(|s| format!(" (did you mean {s:?}?)"))
            .unwrap_or_default();
        invalid(anyhow!("no such service: {:?}{hint}", args.service))
    })?;
    // The service's secrets and configs, before anything starts.
    crate::spec::preflight::check(project, &loaded.document, [args.service.as_str()])?;
    let service = &super::oneoff::adjust_service(project, service, args)?;
    if !args.no_deps {
        super::oneoff::start_dependencies(global, options, project, service, args, spawner)?;
    }
    let lock = super::supervise::lock_project(global, &project.name)?;
    let image_name = service
        .image_name(&project.name)
        .ok_or_else(|| invalid(anyhow!("service {:?} has neither an image nor a build section", args.service)))?;
    let store = Store::open(&root).map_err(failure)?;
    // As compose does, a service's image is built when it is missing (or with --build).
    if service.build.is_some() && (args.build || store.resolve(&image_name).map_err(failure)?.is_none()) {
        super::build::build_service(&root, &store, spawner, project, service, &crate::build::BuildOptions::default())?;
    }
    let image = prepare_image(&store, &args.service, &image_name, service.pull_policy.as_deref(), args.quiet_pull)?;
    crate::timing::phase("image");
    let detached = super::oneoff::is_detached();
    // `-t` asks for a TTY whatever stdin is; `-T` for none; a detached run has no terminal.
    let tty = !detached && !args.process.no_tty && (args.tty || std::io::stdin().is_terminal());
    // compose names one-off containers <project>-<service>-run-<12 hex digits>.
    let name = match &args.name {
        Some(name) => name.clone(),
        None => format!("{}-{}-run-{}", project.name, args.service, launch::random_hex(6).map_err(invalid)?),
    };
    let overrides = RunOverrides {
        command: (!args.command.is_empty()).then(|| args.command.clone()),
        entrypoint: match &args.entrypoint {
            Some(text) => Some(shell_words::split(text).map_err(|e| invalid(anyhow!("--entrypoint: {e}")))?),
            None => None,
        },
        env: args.process.env.clone(),
        user: args.process.user.clone(),
        workdir: args.process.workdir.clone(),
        tty: Some(tty),
        interactive: args.interactive && !detached,
        name: Some(name.clone()),
        index: 1,
    };
    let layer_links = image
        .layers
        .iter()
        .map(|l| store.layer_link(&l.diff_id).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
        .collect();
    let host_resolv_conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let host_hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let host_hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let ctx = PlanContext {
        project,
        state_root: &root,
        image: &image,
        layer_root: store.dir().join("l"),
        layer_links,
        host_resolv_conf: &host_resolv_conf,
        host_hosts: &host_hosts,
        host_hostname: &host_hostname,
    };
    // A detached one-off's output goes to a file in the project's directory; its stdin is
    // /dev/null (the detached process's own).
    let log = if detached { Some(super::oneoff::detached_log(&root, &project.name, &name)?) } else { None };
    let stdio = match &log {
        Some(log) => Some([0, log.as_raw_fd(), log.as_raw_fd()]),
        None => (!tty).then_some([0, 1, 2]),
    };
    let options = StartOptions { stdio, die_with_parent: true, oneoff: true };
    // The image must not be pruned while the container runs from its layers.
    let _in_use = store.gc_lock(false).map_err(failure)?;
    let request = launch::Plan { ctx, service, overrides, networks: Networks::OneOff(project) };
    // A `--rm` container is removed when it exits, its upper layer with it: no sync needed. One
    // kept after it exits keeps a durable layer.
    let mut container = launch::launch(spawner, &root, &request, options, |spec| spec.rootfs.volatile = args.rm)
        .map_err(|e| match e {
            LaunchError::Plan(e) => invalid(e),
            LaunchError::Network(e) => failure(e),
            LaunchError::Runtime(e) => start_failure(e),
        })?;
    drop(log);
    let planned = container.spec.clone();
    let published = match super::oneoff::publish(&root, service, &planned) {
        Ok(published) => published,
        Err(e) => {
            let _ = container.destroy();
            launch::release(&root, &planned);
            return Err(e);
        }
    };
    drop(lock);
    super::oneoff::started(&name);
    crate::timing::phase("started");
    let status = match container.pty.take() {
        Some(master) => {
            let relayed = pty::relay(&master);
            let status = container.wait();
            relayed.map_err(failure)?;
            status
        }
        None => wait_forwarding(&container.pidfd, &forwarded, |s| container.signal(s)).and_then(|()| container.wait()),
    };
    crate::timing::phase("exited");
    drop(published);
    let status = status.map_err(failure);
    let removed = if args.rm {
        container.destroy().map_err(failure)
    } else {
        // Kept, stopped, as compose keeps a one-off container without `--rm`: `ps -a` lists it,
        // `down` removes it. berth never starts a one-off again, so its addresses go now.
        let dirs = container.dirs.clone();
        let code = status.as_ref().map_or(137, |s| s.code);
        container
            .retire()
            .map_err(failure)
            .and_then(|_| state::ContainerRecord::mark_exited(&dirs, code).map_err(failure))
    };
    launch::release(&root, &planned);
    if args.rm {
        // `run --rm` takes its anonymous volumes with it, as compose's does.
        crate::supervisor::recover::remove_volumes(&root, &launch::anonymous_volumes(&planned));
    }
    let status = status?;
    removed?;
    crate::timing::phase("removed");
    report_exit(&status);
    Ok(exit_code(&status))
}

pub(super) fn exec(global: &GlobalOptions, args: &ExecArgs, spawner: &Spawner) -> Result<u8, Failure> {
    let forwarded = block_forwarded_signals()?;
    let root = global.state_root();
    let loaded = load_project(&global.project_options())?;
    let target = exec::find(&root, &loaded.project.name, &args.service, args.index).map_err(failure)?;
    let tty = !args.process.no_tty && (args.tty || std::io::stdin().is_terminal());
    let base = &target.spec.process;
    let mut env = base.env.clone();
    for item in &args.process.env {
        let (key, value) = match item.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => match std::env::var(item) {
                Ok(v) => (item.clone(), v),
                Err(_) => continue,
            },
        };
        env.retain(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) != key);
        env.push(format!("{key}={value}"));
    }
    let capabilities =
        if args.privileged { caps::all().iter().map(ToString::to_string).collect() } else { base.capabilities.clone() };
    let process = Process {
        args: args.command.clone(),
        env,
        user: args.process.user.clone().unwrap_or_else(|| base.user.clone()),
        additional_groups: base.additional_groups.clone(),
        cwd: args.process.workdir.clone().unwrap_or_else(|| base.cwd.clone()),
        tty,
        stdin_open: true,
        capabilities,
        no_new_privileges: base.no_new_privileges,
        seccomp: base.seccomp.clone(),
        rlimits: base.rlimits.clone(),
    };
    let stdio = (!tty).then_some([0, 1, 2]);
    let mut started = exec::start(spawner, &target, process, stdio).map_err(start_failure)?;
    let status = match started.pty.take() {
        Some(master) => {
            let relayed = pty::relay(&master);
            let status = started.wait();
            relayed.map_err(failure)?;
            status
        }
        None => wait_forwarding(&started.pidfd, &forwarded, |s| send_signal(&started.pidfd, s))
            .and_then(|()| started.wait()),
    };
    let status = status.map_err(failure)?;
    Ok(exit_code(&status))
}

fn exit_code(status: &ExitStatus) -> u8 {
    u8::try_from(status.code.clamp(0, 255)).unwrap_or(255)
}

fn report_exit(status: &ExitStatus) {
    if status.oom_killed {
        eprintln!("berth: the container ran out of memory and was killed (OOMKilled)");
    }
}

/// Blocks the forwarded signals in this (still single-threaded) process and returns a
/// signalfd for them, so every thread made later inherits the mask.
fn block_forwarded_signals() -> Result<SignalFd, Failure> {
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(s);
    }
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None).map_err(failure)?;
    SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).map_err(failure)
}

/// Waits until the process behind `pidfd` exits, passing forwarded signals to it.
fn wait_forwarding(
    pidfd: &std::os::fd::OwnedFd,
    signals: &SignalFd,
    forward: impl Fn(Signal) -> Result<(), RuntimeError>,
) -> Result<(), RuntimeError> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    loop {
        let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN), PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(RuntimeError::sys("poll", e)),
        }
        if fds[0].revents().is_some_and(|r| !r.is_empty()) {
            return Ok(());
        }
        while let Ok(Some(info)) = signals.read_signal() {
            if let Ok(signal) = Signal::try_from(info.ssi_signo as i32) {
                let _ = forward(signal);
            }
        }
    }
}

/// Makes sure the service's image is in the store (pulling per `pull_policy`) and returns it.
fn prepare_image(
    store: &Store,
    service: &str,
    image: &str,
    policy: Option<&str>,
    quiet: bool,
) -> Result<crate::image::ImageRecord, Failure> {
    let source = StoreSource { store, quiet };
    let wanted = std::iter::once((service.to_string(), (image.to_string(), policy.map(str::to_string)))).collect();
    ensure_images(&source, &wanted).map_err(image_failure)?;
    store
        .resolve(image)
        .map_err(image_failure)?
        .ok_or_else(|| failure(anyhow!("service {service:?}: image {image} is not in the store")))
}

fn image_failure(e: ImageError) -> Failure {
    let code = if matches!(e, ImageError::InvalidReference(_) | ImageError::NotFound(_)) { EXIT_INVALID } else { 1 };
    Failure { code, error: e.into() }
}

/// Removes what containers whose process is gone left behind (a berth killed with SIGKILL
/// cannot clean up after itself): their cgroups and directories.
pub(super) fn clean_stale(root: &std::path::Path) {
    let Ok(found) = state::list(root) else { return };
    for entry in found {
        let running = entry.record.as_ref().is_some_and(state::ContainerRecord::is_running);
        // A directory without a record is a container being created right now by another
        // berth, or one whose creation died; only the latter is stale, and it has no process.
        let age_ok = entry.record.is_some() || is_older_than_a_minute(&entry.dirs.dir);
        // Kept (stopped) containers are not stale, and a service container whose process is
        // gone is its supervisor's (or the next one's) to record: only one-offs, which die
        // with the `berth run` that made them, are cleaned here.
        let kept = entry.record.as_ref().is_some_and(|r| r.exited || !r.oneoff);
        if running || !age_ok || kept {
            continue;
        }
        let id = entry.dirs.dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if let Ok(Some(cgroup)) = crate::runtime::cgroups::ContainerCgroup::open(&id) {
            let _ = cgroup.remove();
        }
        let _ = entry.dirs.remove();
        if let Some(spec) = &entry.spec {
            launch::release(root, spec);
        }
    }
}

fn is_older_than_a_minute(path: &std::path::Path) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age.as_secs() > 60)
}
