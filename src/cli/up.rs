//! `berth up`: load the project, build and pull its images, and have its supervisor (started
//! here, or the running one) converge on it; then attach, or wait, or return.

use anyhow::anyhow;

use super::supervise::{converge, failure, lock_project, running_supervisor, start_supervisor};
use super::{EXIT_INVALID, Failure, GlobalOptions, load_project};
use crate::image::Store;
use crate::image::ensure::ensure_images;
use crate::runtime::spawner::Spawner;
use crate::spec::{Project, ProjectOptions};
use crate::supervisor::{UpReport, UpRequest};

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
    /// Pull images first: `always`, `missing` or `never` (over each service's `pull_policy`).
    #[arg(long, value_name = "POLICY", value_parser = ["always", "missing", "never"])]
    pub pull: Option<String>,
    /// Pull images without progress output.
    #[arg(long)]
    pub quiet_pull: bool,
    /// Only these services (and, unless --no-deps, what they depend on).
    pub services: Vec<String>,
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
    warn_undelegated_limits(project);
    let request = up_request(options, project, args)?;
    // Before any build, pull or container: what only running the project can trip on.
    crate::spec::preflight::check(
        project,
        &loaded.document,
        started_services(project, args)?.iter().map(String::as_str),
    )?;
    let root = global.state_root();
    let store = Store::open(&root).map_err(failure)?;
    build_images(&root, &store, project, args)?;
    // Built services' images are there now; the others follow their pull policy.
    let wanted = project
        .services
        .iter()
        .filter(|(_, s)| s.build.is_none())
        .filter_map(|(name, s)| Some((name.clone(), (s.image.clone()?, args.pull.clone().or(s.pull_policy.clone())))))
        .collect();
    let source = crate::image::ensure::StoreSource { store: &store, quiet: args.quiet_pull };
    ensure_images(&source, &wanted).map_err(failure)?;
    // Held until the supervisor answered: a second `up` waits, then finds it and converges.
    let lock = lock_project(global, &project.name)?;
    crate::volume::ensure_project(&root, project).map_err(failure)?;
    crate::fault::point("after-volumes");
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

/// The services `up` starts: those named and their dependencies (not with `--no-deps`), or all.
fn started_services(project: &Project, args: &UpArgs) -> Result<Vec<String>, Failure> {
    if args.services.is_empty() {
        return Ok(project.services.keys().cloned().collect());
    }
    if args.no_deps {
        return Ok(args.services.clone());
    }
    let graph = crate::spec::validate::dependency_graph(project).map_err(failure)?;
    Ok(graph.with_dependencies(&args.services).map_err(failure)?.into_iter().collect())
}

/// Warns, before anything starts, about each limit a pure v2 host does not delegate the
/// controller for: the containers run without it (the supervisor's own warning goes to its log).
fn warn_undelegated_limits(project: &Project) {
    use std::io::Write as _;
    let mut err = std::io::stderr().lock();
    for (name, service) in &project.services {
        let Ok(resources) = crate::plan::service_resources(service) else { continue };
        for message in crate::runtime::cgroups::undelegated_limits(&resources).unwrap_or_default() {
            let _ = writeln!(err, "warning: service {name:?}: {message}");
        }
    }
}

/// The request `up` sends its supervisor, checked against the loaded project.
pub(super) fn up_request(options: ProjectOptions, project: &Project, args: &UpArgs) -> Result<UpRequest, Failure> {
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

/// compose's progress lines, on standard error as compose writes them: one per container with
/// what happened to it, after the warnings.
pub(super) fn show_progress(global: &GlobalOptions, report: &UpReport) {
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
