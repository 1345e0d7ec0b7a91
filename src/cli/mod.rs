//! The command line: clap definitions, the global flags compose users know, and the mapping of
//! errors to exit codes (2 for a bad stack file or bad usage, 1 for anything else).

mod attach;
pub mod build;
mod config;
mod container;
mod convert;
mod cp;
mod down;
mod events;
mod format;
mod graph;
mod image;
mod image_store;
mod kill;
mod lifecycle;
mod logs;
mod ls;
mod oneoff;
mod port;
mod procs;
mod ps;
mod rm;
mod run;
mod scale;
mod stats_total;
mod supervise;
mod up;
mod version;
mod volume;
mod wait;
mod watch;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::spec::{self, LoadError, Loaded, ProjectOptions};

/// Exit status for invalid input: a stack file that does not load, or bad flags.
pub const EXIT_INVALID: u8 = 2;

/// berth runs compose stacks without a daemon.
#[derive(Debug, Parser)]
#[command(name = "berth", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOptions,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags that come before the subcommand, as in `docker compose` (after it, `-f` is `logs -f`).
#[derive(Debug, clap::Args)]
pub struct GlobalOptions {
    /// Stack file(s); later files override earlier ones. Default: COMPOSE_FILE, else
    /// compose.yaml (or compose.yml, docker-compose.yaml, docker-compose.yml) found in the
    /// current directory or a parent, plus its .override file.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Project name. Default: COMPOSE_PROJECT_NAME, else `name:`, else the directory's name.
    #[arg(short = 'p', long = "project-name", value_name = "NAME")]
    pub project_name: Option<String>,
    /// Directory that relative paths are resolved against. Default: the first file's directory.
    #[arg(long, value_name = "DIR")]
    pub project_directory: Option<PathBuf>,
    /// Variables for interpolation (repeatable). Default: .env in the project directory.
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_files: Vec<PathBuf>,
    /// Enable a profile (repeatable; `*` enables all). Default: COMPOSE_PROFILES.
    #[arg(long = "profile", value_name = "PROFILE")]
    pub profiles: Vec<String>,
    /// State root: images, volumes and container state. Default: BERTH_ROOT, else /var/lib/berth.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// How `up` and `down` show progress: `tty` (marks and a count), `plain` (a line per
    /// container) or `quiet`. Default: `tty` on a terminal, else `plain`.
    #[arg(long, value_name = "MODE", value_parser = ["auto", "tty", "plain", "quiet"])]
    pub progress: Option<String>,
}

/// berth's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the stack and print it in canonical form.
    Config(config::ConfigArgs),
    /// Show the dependency graph: start waves and edges.
    Graph(graph::GraphArgs),
    /// Convert the stack to Kubernetes manifests.
    Convert(convert::ConvertArgs),
    /// Pull an image from a registry.
    Pull(image::PullArgs),
    /// Load images from an OCI layout (directory or tar) or a `docker save` archive.
    Load(image::LoadArgs),
    /// Make an image from a root filesystem tarball.
    Import(image::ImportArgs),
    /// List images.
    Images(image::ImagesArgs),
    /// Remove images.
    Rmi(image::RmiArgs),
    /// Manage images.
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Run a one-off container for a service, in the foreground.
    Run(run::RunArgs),
    /// Run a command in a running container of a service.
    Exec(run::ExecArgs),
    /// Pause the running containers of services (cgroup freezer).
    Pause(container::PauseArgs),
    /// Resume paused containers.
    Unpause(container::PauseArgs),
    /// Show the containers' CPU, memory and process counts.
    Stats(container::StatsArgs),
    /// Show the processes running in the containers.
    Top(container::TopArgs),
    /// Build the images of services with a `build:` section.
    Build(build::BuildArgs),
    /// Create the project's networks and start its containers under a supervisor.
    Up(up::UpArgs),
    /// Stop and remove the project's containers, networks and firewall rules.
    Down(down::DownArgs),
    /// List the project's containers.
    Ps(ps::PsArgs),
    /// Stop services' containers (they stay down until started).
    Stop(lifecycle::ServicesArgs),
    /// Start services' stopped containers.
    Start(lifecycle::ServicesArgs),
    /// Restart services' containers.
    Restart(lifecycle::ServicesArgs),
    /// Send a signal to services' containers (default SIGKILL).
    Kill(kill::KillArgs),
    /// Run N containers of services (`SERVICE=N`), leaving the others as they are.
    Scale(scale::ScaleArgs),
    /// Remove services' stopped containers.
    Rm(rm::RmArgs),
    /// Show the containers' output.
    Logs(logs::LogsArgs),
    /// Watch the services' `develop.watch` paths and sync, restart or recreate them on change.
    Watch(watch::WatchArgs),
    /// List projects: running ones, or all with -a.
    Ls(ls::LsArgs),
    /// Print the host address and port a container port of a service is published on.
    Port(port::PortArgs),
    /// Block until services' containers exit; exit with the first one's code.
    Wait(wait::WaitArgs),
    /// Stream the project's container events (start, die, health_status, …).
    Events(events::EventsArgs),
    /// Copy files between a service container and the local file system.
    Cp(cp::CpArgs),
    /// Make a new image from a service container's changes.
    Commit(cp::CommitArgs),
    /// Write a service container's file system as a tar archive.
    Export(cp::ExportArgs),
    /// Manage volumes (docker's `volume ls|inspect|rm|prune`).
    #[command(subcommand)]
    Volume(volume::VolumeCommand),
    /// List the project's volumes.
    Volumes(volume::VolumesArgs),
    /// Show berth's version.
    Version(version::VersionArgs),
    /// The project's supervisor (started by `up -d`).
    #[command(name = "__supervise", hide = true)]
    Supervise,
    /// Print a shell completion script.
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

impl GlobalOptions {
    /// The state root: `--root`, else `BERTH_ROOT`, else `/var/lib/berth`.
    pub fn state_root(&self) -> PathBuf {
        // Absolute: the root's paths end up in mount options and in a supervisor with its own
        // working directory.
        let root = self.root.clone().unwrap_or_else(crate::image::default_root);
        std::path::absolute(&root).unwrap_or(root)
    }

    /// The loader options for these flags in this process; `-f -` reads standard input.
    pub fn project_options(&self) -> ProjectOptions {
        let stdin = self.files.iter().any(|f| f.as_os_str() == spec::load::STDIN_NAME).then(|| {
            let mut text = String::new();
            // An unreadable stdin is an empty stack file, which the loader reports.
            let _ = std::io::Read::read_to_string(&mut std::io::stdin(), &mut text);
            text
        });
        ProjectOptions {
            stdin,
            files: self.files.clone(),
            project_name: self.project_name.clone(),
            project_directory: self.project_directory.clone(),
            env_files: self.env_files.clone(),
            profiles: self
                .profiles
                .iter()
                .flat_map(|p| p.split(','))
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect(),
            schema_cache: Some(self.state_root().join("cache/valid-stacks")),
            ..ProjectOptions::from_process()
        }
    }
}

/// A failure with the exit status it maps to.
#[derive(Debug)]
pub struct Failure {
    /// The exit status.
    pub code: u8,
    /// The error.
    pub error: anyhow::Error,
}

impl From<LoadError> for Failure {
    fn from(e: LoadError) -> Self {
        Failure { code: EXIT_INVALID, error: e.into() }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure { code: 1, error: e.into() }
    }
}

/// Parses the process's arguments and runs the command.
pub fn run() -> ExitCode {
    crate::timing::init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help and version to stdout with success, usage errors with status 2.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_INVALID } else { 0 });
        }
    };
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            report(&failure.error);
            ExitCode::from(failure.code)
        }
    }
}

fn dispatch(cli: Cli) -> Result<u8, Failure> {
    secure_state_root(&cli);
    // Names the process for its kill points (see `fault`).
    match &cli.command {
        Command::Up(_) => crate::fault::set_command("up"),
        Command::Down(_) => crate::fault::set_command("down"),
        Command::Start(_) => crate::fault::set_command("start"),
        Command::Stop(_) => crate::fault::set_command("stop"),
        Command::Run(_) => crate::fault::set_command("run"),
        Command::Pull(_) => crate::fault::set_command("pull"),
        Command::Build(_) => crate::fault::set_command("build"),
        Command::Supervise => crate::fault::set_command("supervisor"),
        _ => {}
    }
    // `run -d` forks before anything else: its child goes on as the container's owner.
    if let Command::Run(args) = &cli.command
        && args.detach
        && let Some(code) = oneoff::detach()?
    {
        return Ok(code);
    }
    // Commands that make processes in containers fork the spawner first, while berth still
    // has a single thread.
    if let Command::Run(_) | Command::Exec(_) | Command::Build(_) | Command::Supervise = &cli.command {
        crate::timing::phase("parsed");
        let spawner = crate::runtime::spawner::Spawner::start().map_err(|e| Failure { code: 1, error: e.into() })?;
        crate::timing::phase("forked");
        // The attach lock's grace period (see runtime::cgroups::prime) starts now, while the
        // project loads.
        crate::runtime::cgroups::prime_attach_lock();
        crate::timing::phase("spawner");
        return match &cli.command {
            Command::Run(args) => run::run(&cli.global, args, &spawner),
            Command::Exec(args) => run::exec(&cli.global, args, &spawner),
            Command::Build(args) => build::build(&cli.global, args, &spawner).map(|()| 0),
            Command::Supervise => supervise::supervise(&cli.global, spawner),
            _ => Ok(0),
        };
    }
    if let Command::Up(args) = &cli.command {
        return up::up(&cli.global, args);
    }
    if let Command::Watch(args) = &cli.command {
        return watch::watch(&cli.global, args);
    }
    if let Command::Wait(args) = &cli.command {
        return wait::wait(&cli.global, args);
    }
    dispatch_plain(cli).map(|()| 0)
}

/// Makes (or tightens) the state root before any command touches it (see `secure_fs`); the
/// commands that only read stack files leave it alone, so they work for any user.
fn secure_state_root(cli: &Cli) {
    if let Command::Config(_)
    | Command::Graph(_)
    | Command::Convert(_)
    | Command::Completion { .. }
    | Command::Version(_) = &cli.command
    {
        return;
    }
    let root = cli.global.state_root();
    if let Err(e) = crate::secure_fs::prepare_root(&root) {
        // A user who cannot make the root gets the command's own error about it, if any.
        eprintln!("warning: cannot make the state root {} private: {e}", root.display());
    }
}

fn dispatch_plain(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Config(args) => config::run(&cli.global, &args),
        Command::Graph(args) => graph::run(&cli.global, &args),
        Command::Convert(args) => convert::run(&cli.global, &args),
        Command::Pull(args) => image::pull(&cli.global, &args),
        Command::Load(args) => image::load(&cli.global, &args),
        Command::Import(args) => image::import(&cli.global, &args),
        Command::Images(args) => image::images(&cli.global, &args),
        Command::Rmi(args) => image::rmi(&cli.global, &args),
        Command::Image(cmd) => image::dispatch(&cli.global, cmd),
        Command::Pause(args) => container::pause(&cli.global, &args, true),
        Command::Unpause(args) => container::pause(&cli.global, &args, false),
        Command::Stats(args) => container::stats(&cli.global, &args),
        Command::Top(args) => container::top(&cli.global, &args),
        Command::Up(_) => Ok(()),
        Command::Down(args) => down::down(&cli.global, &args),
        Command::Ps(args) => ps::ps(&cli.global, &args),
        Command::Stop(args) => lifecycle::lifecycle(&cli.global, "stop", &args),
        Command::Start(args) => lifecycle::lifecycle(&cli.global, "start", &args),
        Command::Restart(args) => lifecycle::lifecycle(&cli.global, "restart", &args),
        Command::Kill(args) => kill::kill(&cli.global, &args),
        Command::Scale(args) => scale::scale(&cli.global, &args),
        Command::Rm(args) => rm::rm(&cli.global, &args),
        Command::Logs(args) => logs::logs(&cli.global, &args),
        Command::Watch(_) => Ok(()),
        Command::Ls(args) => ls::ls(&cli.global, &args),
        Command::Port(args) => port::port(&cli.global, &args),
        Command::Events(args) => events::events(&cli.global, &args),
        Command::Cp(args) => cp::cp(&cli.global, &args),
        Command::Commit(args) => cp::commit(&cli.global, &args),
        Command::Export(args) => cp::export(&cli.global, &args),
        Command::Volume(cmd) => volume::dispatch(&cli.global, cmd),
        Command::Volumes(args) => volume::volumes(&cli.global, &args),
        Command::Version(args) => version::version(&args),
        Command::Run(_) | Command::Exec(_) | Command::Build(_) | Command::Supervise | Command::Wait(_) => Ok(()),
        Command::Completion { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "berth", &mut std::io::stdout());
            Ok(())
        }
    }
}

/// An invalid-input failure for the first of `services` the project does not have.
pub(crate) fn check_services(project: &spec::Project, services: &[String]) -> Result<(), Failure> {
    match services.iter().find(|s| !project.services.contains_key(*s)) {
        Some(service) => Err(Failure { code: EXIT_INVALID, error: anyhow::anyhow!("no such service: {service:?}") }),
        None => Ok(()),
    }
}

/// Loads the project of a command that needs no stack file (`down`, `ps`, `logs`, `stop`,
/// `start`, `rm`): the one found as usual, else, with `-p NAME` and no `-f`, as compose finds a
/// project by its name: from the stack files its last `up` recorded in the state root.
pub(crate) fn load_named(global: &GlobalOptions) -> Result<Loaded, Failure> {
    let options = global.project_options();
    match spec::load(&options) {
        Ok(loaded) => {
            print_warnings(&loaded.warnings);
            Ok(loaded)
        }
        Err(e) => {
            let Some(name) = global.project_name.as_deref().filter(|_| global.files.is_empty()) else {
                return Err(e.into());
            };
            let dir = crate::supervisor::project_dir(&global.state_root(), name);
            let files = ls::recorded_config_files(&dir);
            match crate::supervisor::UpRequest::load_last(&dir) {
                Some(last) if !files.is_empty() => {
                    load_project(&ProjectOptions { project_name: Some(name.to_owned()), files, ..last.options })
                }
                // No stack file to read: the project is its name alone, found by its containers
                // (as compose finds it by their labels); commands act on what exists.
                _ if project_exists(&global.state_root(), name) => Ok(Loaded {
                    project: spec::Project { name: name.to_owned(), ..spec::Project::default() },
                    warnings: Vec::new(),
                    document: spec::yaml::Node::new(spec::yaml::Value::Null),
                }),
                _ => Err(e.into()),
            }
        }
    }
}

/// Whether the state root has a container (running or kept) of project `name`.
fn project_exists(root: &std::path::Path, name: &str) -> bool {
    crate::runtime::state::list(root)
        .is_ok_and(|found| found.iter().any(|f| f.spec.as_ref().is_some_and(|s| s.project == name)))
}

/// Loads the project and prints its warnings to stderr.
pub(crate) fn load_project(opts: &ProjectOptions) -> Result<Loaded, Failure> {
    let loaded = spec::load(opts)?;
    print_warnings(&loaded.warnings);
    Ok(loaded)
}

fn print_warnings(warnings: &[spec::Warning]) {
    let mut err = std::io::stderr().lock();
    for w in warnings {
        let _ = writeln!(err, "warning: {w}");
    }
}

fn report(error: &anyhow::Error) {
    let mut err = std::io::stderr().lock();
    if let Some(load) = error.downcast_ref::<LoadError>() {
        for e in &load.errors {
            let _ = writeln!(err, "error: {e}");
        }
        return;
    }
    let _ = writeln!(err, "error: {error:#}");
}

/// Writes to stdout, treating a closed pipe (`berth config | head`) as success.
pub(crate) fn emit(text: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_come_before_the_subcommand() {
        let cli = Cli::try_parse_from([
            "berth",
            "-f",
            "a.yaml",
            "-f",
            "b.yaml",
            "-p",
            "demo",
            "--profile",
            "x,y",
            "config",
            "--profiles",
        ])
        .unwrap();
        assert_eq!(cli.global.files.len(), 2);
        let opts = cli.global.project_options();
        assert_eq!(opts.profiles, vec!["x".to_owned(), "y".to_owned()]);
        assert_eq!(opts.project_name.as_deref(), Some("demo"));
        assert!(matches!(cli.command, Command::Config(ref c) if c.list_profiles));
    }
}
