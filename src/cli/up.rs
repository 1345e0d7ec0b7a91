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
use crate::spec::{Project, ProjectOptions};
use crate::supervisor::control::{Reply, Request};
use crate::supervisor::{self, SupervisorRecord, UpReport, UpRequest, control, recover};

/// `berth up`.
#[derive(Debug, Default, clap::Args)]
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
    /// Recreate containers even when their configuration and image are unchanged.
    #[arg(long, conflicts_with = "no_recreate")]
    pub force_recreate: bool,
    /// Keep running containers even when their configuration or image changed.
    #[arg(long)]
    pub no_recreate: bool,
    /// Remove the containers of services the stack no longer has.
    #[arg(long)]
    pub remove_orphans: bool,
    /// Fresh anonymous volumes for recreated containers (berth's behaviour always).
    #[arg(short = 'V', long)]
    pub renew_anon_volumes: bool,
    /// Do not start the named services' dependencies.
    #[arg(long)]
    pub no_deps: bool,
    /// Run N containers of SERVICE (repeatable), overriding `scale` and `deploy.replicas`.
    #[arg(long, value_name = "SERVICE=N")]
    pub scale: Vec<String>,
    /// Seconds recreated containers get to stop before SIGKILL.
    #[arg(short = 't', long)]
    pub timeout: Option<u64>,
    /// Build the images of services with a `build:` section before starting.
    #[arg(long, conflicts_with = "no_build")]
    pub build: bool,
    /// Do not build images, even missing ones.
    #[arg(long)]
    pub no_build: bool,
    /// Run the services' `develop.watch` rules; with -d the supervisor keeps watching.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Only these services (and, unless --no-deps, what they depend on).
    pub services: Vec<String>,
}

/// `berth down`.
#[derive(Debug, clap::Args)]
pub struct DownArgs {
    /// Seconds to wait for containers to stop before killing them (default: each service's
    /// `stop_grace_period`, else 10).
    #[arg(short = 't', long)]
    pub timeout: Option<u64>,
    /// Remove the project's named volumes (not external ones) too.
    #[arg(short = 'v', long)]
    pub volumes: bool,
    /// Remove the services' images too: `all`, or `local` (only the images of built services
    /// without an `image:` name).
    #[arg(long, value_name = "TYPE", value_parser = ["all", "local"])]
    pub rmi: Option<String>,
    /// Accepted for compose's sake: `down` always removes every container of the project.
    #[arg(long)]
    pub remove_orphans: bool,
}

/// The environment variable that carries the readiness pipe's descriptor to the supervisor.
const READY_FD_VAR: &str = "BERTH_READY_FD";

fn failure(e: impl Into<anyhow::Error>) -> Failure {
    Failure { code: 1, error: e.into() }
}

/// Takes `project`'s lock, which every command that changes the project holds while it does,
/// waiting (and saying so) while another command holds it. The supervisor never holds it: it
/// takes its orders one at a time on its control socket.
pub(super) fn lock_project(global: &GlobalOptions, project: &str) -> Result<crate::fsutil::ProjectLock, Failure> {
    let dir = supervisor::project_dir(&global.state_root(), project);
    crate::fsutil::ProjectLock::acquire(&dir, || {
        eprintln!("Waiting for another berth command on project {project} to finish...");
    })
    .map_err(|e| failure(anyhow!("locking project {project}: {e}")))
}

pub(super) fn up(global: &GlobalOptions, args: &UpArgs) -> Result<u8, Failure> {
    let attached = !args.detach && !args.wait;
    // Ctrl-C is the attached session's to handle; blocked before any thread exists, so every
    // thread inherits the mask and the signals queue for the signalfd.
    let signals = if attached { Some(super::attach::block_stop_signals()?) } else { None };
    if global.files.iter().any(|f| f.as_os_str() == crate::spec::load::STDIN_NAME) {
        return Err(Failure { code: EXIT_INVALID, error: anyhow!("up cannot read the stack file from stdin") });
    }
    let mut options = global.project_options();
    options.services = args.services.clone();
    let loaded = load_project(&options)?;
    let project = &loaded.project;
    // What `config` accepts but nothing can run (an nfs volume, say) stops `up` before it
    // builds, pulls or makes anything.
    let unrunnable = crate::spec::volume_opts::check(project, &loaded.document);
    if !unrunnable.is_empty() {
        let error = anyhow!(crate::spec::LoadError { errors: unrunnable });
        return Err(Failure { code: EXIT_INVALID, error });
    }
    let request = up_request(options, project, args)?;
    let root = global.state_root();
    let store = Store::open(&root).map_err(failure)?;
    build_images(&root, &store, project, args)?;
    // Built services' images are there now; the others follow their pull policy.
    let wanted = project
        .services
        .iter()
        .filter(|(_, s)| s.build.is_none())
        .filter_map(|(name, s)| Some((name.clone(), (s.image.clone()?, s.pull_policy.clone()))))
        .collect();
    ensure_images(&crate::image::ensure::StoreSource { store: &store }, &wanted).map_err(failure)?;
    // Held until the supervisor answered: a second `up` waits, then finds it and converges.
    let lock = lock_project(global, &project.name)?;
    crate::volume::ensure_project(&root, project).map_err(failure)?;
    let report = match running_supervisor(&root, &project.name) {
        Some(dir) => converge(&dir, &request)?,
        None => start_supervisor(global, &root, &project.name, &request)?,
    };
    drop(lock);
    show_progress(global, &report);
    if args.wait {
        wait_until_ready(global, &project.name, args.wait_timeout.map(std::time::Duration::from_secs))?;
    }
    match signals {
        Some(signals) => super::attach::attach(global, project, args, &signals),
        None => Ok(0),
    }
}

/// Builds what `up` must build first, as compose does: with `--build` every service with a
/// `build:` section, else those whose image is missing or whose `pull_policy` is `build`;
/// nothing with `--no-build`.
fn build_images(root: &std::path::Path, store: &Store, project: &Project, args: &UpArgs) -> Result<(), Failure> {
    let mut to_build = Vec::new();
    for service in project.services.values().filter(|s| s.build.is_some()) {
        let image = service.image_name(&project.name).unwrap_or_default();
        let missing = store.resolve(&image).map_err(failure)?.is_none();
        let policy_build = service.pull_policy.as_deref() == Some("build");
        if !args.no_build && (args.build || missing || policy_build) {
            to_build.push(service);
        } else if missing {
            return Err(failure(anyhow!(
                "service {:?}: image {image} is missing, and --no-build was given",
                service.name
            )));
        }
    }
    if to_build.is_empty() {
        return Ok(());
    }
    // RUN steps make containers: the spawner is forked now, while `up` still has one thread.
    let spawner = Spawner::start().map_err(failure)?;
    let options = crate::build::BuildOptions::default();
    for service in to_build {
        super::build::build_service(root, store, &spawner, project, service, &options)?;
    }
    Ok(())
}

/// The request `up` sends its supervisor, checked against the loaded project.
fn up_request(options: ProjectOptions, project: &Project, args: &UpArgs) -> Result<UpRequest, Failure> {
    let invalid = |message: String| Failure { code: EXIT_INVALID, error: anyhow!(message) };
    let mut scale = std::collections::BTreeMap::new();
    for entry in &args.scale {
        let (service, count) =
            entry.split_once('=').ok_or_else(|| invalid(format!("--scale {entry:?}: expected SERVICE=N")))?;
        let count =
            count.parse::<u64>().map_err(|_| invalid(format!("--scale {entry:?}: {count:?} is not a number")))?;
        if !project.services.contains_key(service) {
            return Err(invalid(format!("--scale: no such service: {service:?}")));
        }
        scale.insert(service.to_owned(), count);
    }
    super::check_services(project, &args.services)?;
    Ok(UpRequest {
        options,
        services: args.services.clone(),
        force_recreate: args.force_recreate,
        no_recreate: args.no_recreate,
        remove_orphans: args.remove_orphans,
        no_deps: args.no_deps,
        scale,
        timeout: args.timeout,
        watch: args.watch,
        renew_anon_volumes: args.renew_anon_volumes,
        resume: false,
    })
}

/// The project directory of `project` when its supervisor runs and answers; a supervisor
/// that runs but does not answer is killed (its leftovers are cleaned by the fresh start).
fn running_supervisor(root: &std::path::Path, project: &str) -> Option<std::path::PathBuf> {
    let record = SupervisorRecord::load(root, project).filter(SupervisorRecord::is_running)?;
    let dir = supervisor::project_dir(root, project);
    if control::request(&dir, &Request::Ping).is_some() {
        return Some(dir);
    }
    recover::kill_and_wait(record.pid);
    None
}

/// `up` on a running project: the supervisor changes what differs.
fn converge(dir: &std::path::Path, request: &UpRequest) -> Result<UpReport, Failure> {
    match control::request(dir, &Request::Up(Box::new(request.clone()))) {
        Some(Reply::Up(report)) => Ok(*report),
        Some(other) => Err(failure(unexpected(other))),
        None => Err(failure(anyhow!("the project's supervisor stopped answering"))),
    }
}

/// A reply that is not the one the request asks for: the supervisor's error, or a mismatch.
pub(super) fn unexpected(reply: Reply) -> anyhow::Error {
    match reply {
        Reply::Error(error) => anyhow!("{error}"),
        other => anyhow!("unexpected answer from the supervisor: {other:?}"),
    }
}

/// Starts the project's supervisor with `request` on its standard input and waits for its
/// report.
fn start_supervisor(
    global: &GlobalOptions,
    root: &std::path::Path,
    project: &str,
    request: &UpRequest,
) -> Result<UpReport, Failure> {
    let dir = supervisor::project_dir(root, project);
    // A supervisor that died left containers running: they end now, kept, stopped, for the
    // new one to adopt.
    recover::reap(root, project).map_err(failure)?;
    crate::secure_fs::private_dir(&dir).map_err(failure)?;
    let _ = super::ls::record_config_files(&dir, &request.options);
    let log = crate::secure_fs::create_private(&dir.join("supervisor.log")).map_err(failure)?;
    let (read_end, write_end) = nix::unistd::pipe().map_err(failure)?;
    nix::fcntl::fcntl(&read_end, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC)).map_err(failure)?;
    let mut command = Process::new("/proc/self/exe");
    command.arg("--root").arg(root);
    if let Some(progress) = &global.progress {
        command.arg("--progress").arg(progress);
    }
    // `ps` and `top` show the supervisor as `berth` (argv[0] here, its comm in `supervise`).
    std::os::unix::process::CommandExt::arg0(&mut command, "berth");
    command
        .arg("__supervise")
        .env(READY_FD_VAR, write_end.as_raw_fd().to_string())
        .stdin(Stdio::piped())
        .stdout(log.try_clone().map_err(failure)?)
        .stderr(log);
    let ready_fd = write_end.as_raw_fd();
    // The supervisor outlives this command: it must not inherit what this command was given
    // (a caller's lock file, say, which it would then hold for the project's life). Only the
    // standard descriptors and the ready pipe cross the exec.
    // SAFETY: the closure runs in the forked child before exec and makes only two
    // async-signal-safe system calls, touching no memory of the parent's.
    unsafe { std::os::unix::process::CommandExt::pre_exec(&mut command, move || only_stdio_and(ready_fd)) };
    let mut child = command.spawn().map_err(failure)?;
    drop(write_end);
    if let Some(mut stdin) = child.stdin.take() {
        serde_json::to_writer(&mut stdin, request).map_err(failure)?;
    }
    let answer = read_answer(std::fs::File::from(read_end), &mut child).map_err(failure)?;
    let answer = answer.trim();
    if answer.starts_with('{') {
        return serde_json::from_str(answer).map_err(|e| failure(anyhow!("the supervisor's answer: {e}")));
    }
    let reason = if answer.is_empty() {
        format!("the supervisor exited without starting; see {}", dir.join("supervisor.log").display())
    } else {
        answer.to_owned()
    };
    Err(failure(anyhow!("{reason}")))
}

/// compose's progress lines, on standard error as compose writes them: one per container with
/// what happened to it, after the warnings.
fn show_progress(global: &GlobalOptions, report: &UpReport) {
    for warning in &report.warnings {
        eprintln!("WARN[0000] {warning}");
    }
    match progress_mode(global) {
        Progress::Quiet => {}
        Progress::Plain => {
            for change in &report.changes {
                eprintln!(" Container {}  {}", change.container, change.action);
            }
        }
        Progress::Tty => {
            let count = report.changes.len();
            eprintln!("[+] Running {count}/{count}");
            let width = report.changes.iter().map(|c| c.container.len()).max().unwrap_or(0);
            for change in &report.changes {
                eprintln!(" \u{2714} Container {:<width$}  {}", change.container, change.action);
            }
        }
    }
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Progress {
    /// Marks and a count.
    Tty,
    /// A line per container.
    Plain,
    /// Nothing.
    Quiet,
}

/// `--progress`, else `tty` when standard output is a terminal, else `plain`.
pub(super) fn progress_mode(global: &GlobalOptions) -> Progress {
    match global.progress.as_deref() {
        Some("tty") => Progress::Tty,
        Some("plain") => Progress::Plain,
        Some("quiet") => Progress::Quiet,
        _ if std::io::IsTerminal::is_terminal(&std::io::stdout()) => Progress::Tty,
        _ => Progress::Plain,
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
    let _lock = lock_project(global, project)?;
    let containers = super::ps::containers(global, project);
    let networks: Vec<String> = crate::network::store::NetworkStore::lock(&root)
        .and_then(|store| store.all())
        .map(|all| all.into_iter().filter(|n| &n.project == project).map(|n| n.name).collect())
        .unwrap_or_default();
    if let Some(record) = SupervisorRecord::load(&root, project).filter(SupervisorRecord::is_running) {
        match control::request(&dir, &Request::Down { timeout: args.timeout, volumes: args.volumes }) {
            // A `pre_stop` hook failed: that container still runs, and `down` ends here, as
            // compose's does.
            Some(Reply::Error(e)) => return Err(failure(anyhow!(e))),
            Some(_) => recover::wait_for_exit(record.pid),
            None => recover::kill_and_wait(record.pid),
        }
    }
    // What is left (one-off containers, or everything after a supervisor was killed): its
    // anonymous volumes go with `-v`, as compose's `down -v` removes them.
    let anonymous: Vec<String> = if args.volumes {
        crate::runtime::state::list(&root)
            .unwrap_or_default()
            .iter()
            .filter_map(|f| f.spec.as_ref())
            .filter(|s| &s.project == project)
            .flat_map(crate::plan::mounts::anonymous_volumes)
            .collect()
    } else {
        Vec::new()
    };
    // Every step is tried whatever failed before it; the failures are reported together, and
    // what failed is still recorded, so a second `down` finishes the job.
    let mut failures: Vec<String> = Vec::new();
    if let Err(e) = recover::clean(&root, project) {
        failures.push(e.to_string());
    }
    recover::remove_volumes(&root, &anonymous);
    let mode = progress_mode(global);
    let say = |what: &str, name: &str, done: &str| match mode {
        Progress::Quiet => {}
        Progress::Plain => eprintln!(" {what} {name}  {done}"),
        Progress::Tty => eprintln!(" \u{2714} {what} {name}  {done}"),
    };
    for container in &containers {
        say("Container", &container.name, "Removed");
    }
    for network in &networks {
        say("Network", network, "Removed");
    }
    if args.volumes {
        for (key, volume) in loaded.project.volumes.iter().filter(|(_, v)| !v.external) {
            let name = if volume.name.is_empty() { format!("{project}_{key}") } else { volume.name.clone() };
            if !root.join("volumes").join(&name).is_dir() {
                continue;
            }
            // By descriptor: the tree is the containers'.
            match crate::volume::remove_unchecked(&root, &name) {
                Ok(_) => say("Volume", &name, "Removed"),
                Err(e) => failures.push(format!("volume {name}: {e}")),
            }
        }
    }
    if let Some(which) = args.rmi.as_deref() {
        remove_images(&root, &loaded.project, which, &mut failures, &say);
    }
    if failures.is_empty() {
        Ok(())
    } else {
        for message in &failures {
            eprintln!("error: {message}");
        }
        Err(failure(anyhow!("{} removal(s) failed; `berth down` again retries them", failures.len())))
    }
}

/// `down --rmi`: the services' images (`local`: only those berth named itself, built services
/// without `image:`).
fn remove_images(
    root: &std::path::Path,
    project: &Project,
    which: &str,
    failures: &mut Vec<String>,
    say: &dyn Fn(&str, &str, &str),
) {
    let store = match Store::open(root) {
        Ok(store) => store,
        Err(e) => return failures.push(e.to_string()),
    };
    {
        let images: std::collections::BTreeSet<String> = project
            .services
            .values()
            .filter(|s| which == "all" || s.image.is_none())
            .filter_map(|s| s.image_name(&project.name))
            .collect();
        for image in &images {
            match store.resolve(image).and_then(|found| found.map(|_| store.remove(image)).transpose()) {
                Ok(Some(_)) => say("Image", image, "Removed"),
                Ok(None) => {}
                Err(e) => failures.push(format!("image {image}: {e}")),
            }
        }
    }
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

/// In a child about to exec: marks every descriptor above the standard three close-on-exec,
/// except `keep`.
fn only_stdio_and(keep: i32) -> std::io::Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags on descriptors.
    if unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: clears FD_CLOEXEC on one descriptor of this process; no memory is touched.
    if unsafe { libc::fcntl(keep, libc::F_SETFD, 0) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The hidden `__supervise` command `up -d` starts.
pub(super) fn supervise(global: &GlobalOptions, spawner: Spawner) -> Result<u8, Failure> {
    let _ = nix::unistd::setsid();
    // Run as /proc/self/exe, its comm would be `exe`.
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    let _ = unsafe { libc::prctl(libc::PR_SET_NAME, c"berth".as_ptr()) };
    let ready = std::env::var(READY_FD_VAR).ok().and_then(|v| v.parse::<i32>().ok()).map(|fd| {
        // SAFETY: `up` passed this descriptor, open and ours alone, for exactly this use.
        std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) })
    });
    // SAFETY: single-threaded here apart from the spawner, which reads no environment.
    unsafe { std::env::remove_var(READY_FD_VAR) };
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text).map_err(failure)?;
    let request: UpRequest = serde_json::from_str(&text).map_err(|e| failure(anyhow!("the up request: {e}")))?;
    supervisor::run(&global.state_root(), request, spawner, ready).map_err(failure)?;
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
/// With no supervisor running, `start` and `restart` start one from the last `up`'s request,
/// which runs the stopped containers it finds on disk again; `stop` ends what a killed
/// supervisor left running.
pub(super) fn lifecycle(global: &GlobalOptions, command: &str, args: &ServicesArgs) -> Result<(), Failure> {
    let loaded = load_project(&global.project_options())?;
    let project = &loaded.project;
    super::check_services(project, &args.services)?;
    let root = global.state_root();
    let dir = supervisor::project_dir(&root, &project.name);
    if command == "start" {
        check_created(&root, &project.name, &args.services)?;
    }
    let _lock = lock_project(global, &project.name)?;
    let (timeout, services) = (args.timeout, args.services.clone());
    let request = match command {
        "start" => Request::Start { services },
        "restart" => Request::Restart { timeout, services },
        _ => Request::Stop { timeout, services },
    };
    match control::request(&dir, &request) {
        Some(Reply::Done) => Ok(()),
        Some(other) => Err(failure(unexpected(other))),
        None => {
            recover::reap(&root, &project.name).map_err(failure)?;
            if command == "stop" {
                return Ok(());
            }
            check_created(&root, &project.name, &args.services)?;
            let mut request = UpRequest::load_last(&dir)
                .ok_or_else(|| failure(anyhow!("no container found for project {:?}: not found", project.name)))?;
            request.services.clone_from(&args.services);
            request.resume = true;
            request.force_recreate = false;
            start_supervisor(global, &root, &project.name, &request).map(drop)
        }
    }
}

/// compose's refusal to `start` what was never created: a project without containers, or a
/// named service without one.
fn check_created(root: &std::path::Path, project: &str, services: &[String]) -> Result<(), Failure> {
    let found: Vec<String> = crate::runtime::state::list(root)
        .map_err(failure)?
        .into_iter()
        .filter_map(|f| f.spec.filter(|s| s.project == project && f.record.as_ref().is_some_and(|r| !r.oneoff)))
        .map(|s| s.service)
        .collect();
    if found.is_empty() {
        return Err(failure(anyhow!("no container found for project {project:?}: not found")));
    }
    if let Some(missing) = services.iter().find(|s| !found.contains(s)) {
        return Err(failure(anyhow!("no such service: {missing:?}: not found")));
    }
    Ok(())
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

/// `berth scale`.
#[derive(Debug, clap::Args)]
pub struct ScaleArgs {
    /// Do not start the services' dependencies.
    #[arg(long)]
    pub no_deps: bool,
    /// `SERVICE=N` (one or more).
    #[arg(required = true, value_name = "SERVICE=N")]
    pub scales: Vec<String>,
}

/// `berth scale`: `up --no-recreate --scale …` of the named services, on the running project.
pub(super) fn scale(global: &GlobalOptions, args: &ScaleArgs) -> Result<(), Failure> {
    let options = global.project_options();
    let loaded = load_project(&options)?;
    let project = &loaded.project;
    let up_args = UpArgs {
        detach: true,
        no_recreate: true,
        no_deps: args.no_deps,
        scale: args.scales.clone(),
        services: args
            .scales
            .iter()
            .map(|s| s.split_once('=').map_or(s.as_str(), |(name, _)| name).to_owned())
            .collect(),
        ..UpArgs::default()
    };
    let request = up_request(options, project, &up_args)?;
    let root = global.state_root();
    let _lock = lock_project(global, &project.name)?;
    let dir = running_supervisor(&root, &project.name)
        .ok_or_else(|| failure(anyhow!("project {} is not running: `berth up -d` starts it", project.name)))?;
    let report = converge(&dir, &request)?;
    show_progress(global, &report);
    Ok(())
}
