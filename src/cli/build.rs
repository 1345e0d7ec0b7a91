//! `berth build`, and the builds `up` does first: services with a `build:` section, built
//! with berth's own builder into its image store.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::anyhow;

use super::{EXIT_INVALID, Failure, GlobalOptions, load_project};
use crate::build::{BuildOptions, Builder, Built};
use crate::image::Store;
use crate::image::ensure::StoreSource;
use crate::runtime::spawner::Spawner;
use crate::spec::{Project, Service};

/// `berth build`.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// Run every step, ignoring the build cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Pull base images even when they are in the store.
    #[arg(long)]
    pub pull: bool,
    /// Set a build argument (`KEY=VALUE`, or `KEY` to take it from this environment).
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,
    /// Print nothing but errors.
    #[arg(short, long)]
    pub quiet: bool,
    /// Only these services (default: every service with a `build:` section).
    pub services: Vec<String>,
}

fn failure(e: impl Into<anyhow::Error>) -> Failure {
    Failure { code: 1, error: e.into() }
}

pub(super) fn build(global: &GlobalOptions, args: &BuildArgs, spawner: &Spawner) -> Result<(), Failure> {
    let loaded = load_project(&global.project_options())?;
    let project = &loaded.project;
    super::check_services(project, &args.services)?;
    let mut cli_args = BTreeMap::new();
    for item in &args.build_args {
        match item.split_once('=') {
            Some((k, v)) => {
                cli_args.insert(k.to_owned(), v.to_owned());
            }
            None => {
                if let Ok(v) = std::env::var(item) {
                    cli_args.insert(item.clone(), v);
                }
            }
        }
    }
    let quiet = args.quiet || matches!(super::up::progress_mode(global), super::up::Progress::Quiet);
    let options = BuildOptions { no_cache: args.no_cache, pull: args.pull, args: cli_args, quiet };
    let selected: Vec<&Service> = project
        .services
        .values()
        .filter(|s| s.build.is_some())
        .filter(|s| args.services.is_empty() || args.services.contains(&s.name))
        .collect();
    let root = global.state_root();
    stop_on_signals();
    // A build killed in a RUN leaves that container's directory: removed like `run`'s.
    super::run::clean_stale(&root);
    let store = Store::open(&root).map_err(failure)?;
    for service in selected {
        build_service(&root, &store, spawner, project, service, &options)?;
    }
    Ok(())
}

/// Set by the first SIGINT or SIGTERM `berth build` receives: the build stops at its next step
/// (a running RUN is killed) and removes what it made, its network among them.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    // A second signal does not wait for the build to wind down.
    if STOP.swap(true, Ordering::SeqCst) {
        // SAFETY: _exit is async-signal-safe and takes no pointer.
        unsafe { libc::_exit(130) };
    }
}

/// Lets Ctrl-C (and SIGTERM) end `berth build` through [`STOP`] rather than kill it with its
/// network made. A handler, not a blocked mask, so every thread and no container is affected
/// (an exec resets handlers).
fn stop_on_signals() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let action = SigAction::new(SigHandler::Handler(on_stop_signal), SaFlags::SA_RESTART, SigSet::empty());
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only touches an atomic and calls _exit, both async-signal-safe.
        let _ = unsafe { sigaction(signal, &action) };
    }
}

/// Builds one service's image and names it; progress on stderr.
pub(super) fn build_service(
    root: &Path,
    store: &Store,
    spawner: &Spawner,
    project: &Project,
    service: &Service,
    options: &BuildOptions,
) -> Result<Built, Failure> {
    let request = crate::build::request(project, service, options)
        .map_err(|e| Failure { code: EXIT_INVALID, error: e.into() })?;
    let images = StoreSource { store, quiet: false };
    let quiet = options.quiet;
    let progress = |line: &str| {
        if !quiet {
            eprintln!("{line}");
        }
    };
    let builder =
        Builder { state_root: root, store, spawner, images: &images, progress: &progress, cancel: Some(&STOP) };
    let started = std::time::Instant::now();
    let built = builder.build(&request).map_err(|e| match e {
        crate::build::BuildError::Interrupted => {
            Failure { code: 130, error: anyhow!("service {:?}: build interrupted", service.name) }
        }
        e => failure(anyhow!("service {:?}: build failed: {e}", service.name)),
    })?;
    if !quiet {
        let name = request.names.first().map(|n| n.familiar()).unwrap_or_default();
        eprintln!(
            "[{}] built {name} ({}) in {:.2}s: {} layer steps run, {} from the cache",
            service.name,
            built.record.id.short(),
            started.elapsed().as_secs_f64(),
            built.ran,
            built.cached
        );
    }
    Ok(built)
}
