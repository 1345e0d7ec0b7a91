//! `develop.watch`, run by the supervisor (so `up -d --watch` works): file events batched per
//! rule, then each rule's action — sync straight into the containers' filesystems from the
//! host, restart, recreate, or sync and run the rule's `exec` hook — with one summary line per
//! action in `logs/watch.log`. The stack file and its env files are watched too: an edit that
//! loads is converged (only changed services are recreated), one that does not is reported and
//! the running stack left alone.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::converge::UpRequest;
use super::logs::{LogFile, LogPolicy};
use super::{Shared, SupervisorError, orders};
use crate::runtime::exec::Target;
use crate::runtime::spec::ContainerSpec;
use crate::watch::events::{Batch, RuleWatcher};
use crate::watch::rules::{Action, CompiledRule};
use crate::watch::sync::SyncTarget;

/// compose's quiet period: a batch is acted on once no event came for this long.
pub const DEFAULT_QUIET: Duration = Duration::from_millis(500);

/// The variable that sets the quiet period (`300ms`, `1s`, a number of milliseconds).
pub const QUIET_VAR: &str = "BERTH_WATCH_DEBOUNCE";

/// What runs while the project is watched.
pub struct Watching {
    request: UpRequest,
    rules: Arc<Vec<CompiledRule>>,
    _files: RuleWatcher,
    _stack: RuleWatcher,
}

impl std::fmt::Debug for Watching {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watching").field("rules", &self.rules.len()).finish_non_exhaustive()
    }
}

/// The quiet period: [`QUIET_VAR`] in the request's environment, else [`DEFAULT_QUIET`].
fn quiet_period(request: &UpRequest) -> Duration {
    request
        .options
        .os_env
        .get(QUIET_VAR)
        .and_then(|v| {
            crate::spec::units::parse_duration(v).ok().or_else(|| v.parse::<u64>().ok().map(Duration::from_millis))
        })
        .unwrap_or(DEFAULT_QUIET)
}

/// Starts watching `request`'s services (all when it names none) by their `develop.watch`
/// rules, and the stack's files; replaces a watch already running.
pub fn start(shared: &Arc<Shared>, request: &UpRequest) -> Result<(), SupervisorError> {
    let quiet = quiet_period(request);
    let rules = Arc::new(compile(shared, request)?);
    let runtime = tokio::runtime::Handle::current();
    let (batches, mut pending) = tokio::sync::mpsc::unbounded_channel::<Vec<Batch>>();
    // The watcher owns its own copy of the rules (they are compiled twice rather than shared).
    let files = RuleWatcher::start(compile(shared, request)?, quiet, move |batch| {
        let _ = batches.send(batch);
    })
    .map_err(|e| SupervisorError::Other(format!("watch: {e}")))?;
    {
        let shared = Arc::clone(shared);
        let rules = Arc::clone(&rules);
        runtime.spawn(async move {
            while let Some(batch) = pending.recv().await {
                for one in batch {
                    act(&shared, &rules, one).await;
                }
            }
        });
    }
    let stack = watch_stack(shared, request, quiet)?;
    for (index, rule) in rules.iter().enumerate().filter(|(_, r)| r.initial_sync() && syncs(r.action())) {
        let shared = Arc::clone(shared);
        let all = Arc::clone(&rules);
        let (path, service) = (rule.path().display().to_string(), rule.service().to_owned());
        runtime.spawn(async move {
            let count = full_sync(&shared, &all, index).await;
            say(&shared, &format!("Initial sync of {path} for service {service:?}: {count} files"));
        });
    }
    let watching = Watching { request: request.clone(), rules, _files: files, _stack: stack };
    say(shared, &format!("Watch enabled ({} rules, quiet period {} ms)", watching.rules.len(), quiet.as_millis()));
    if let Ok(mut slot) = shared.watching.lock() {
        *slot = Some(watching);
    }
    Ok(())
}

/// The `develop.watch` rules of `request`'s services (all when it names none).
fn compile(shared: &Shared, request: &UpRequest) -> Result<Vec<CompiledRule>, SupervisorError> {
    let desired = shared.desired();
    let mut rules = Vec::new();
    for (name, service) in &desired.project.services {
        if !request.services.is_empty() && !request.services.contains(name) {
            continue;
        }
        let context = service.build.as_ref().map(|b| PathBuf::from(&b.context));
        for (index, rule) in service.develop.iter().flat_map(|d| d.watch.iter()).enumerate() {
            let compiled = CompiledRule::new(name, index, rule, context.as_deref())
                .map_err(|e| SupervisorError::Other(format!("service {name:?}: develop.watch[{index}]: {e}")))?;
            rules.push(compiled);
        }
    }
    Ok(rules)
}

/// Stops watching.
pub fn stop(shared: &Shared) {
    let was = shared.watching.lock().ok().and_then(|mut w| w.take());
    if was.is_some() {
        say(shared, "Watch disabled");
    }
}

/// Whether an action copies files.
fn syncs(action: Action) -> bool {
    matches!(action, Action::Sync | Action::SyncRestart | Action::SyncExec)
}

/// A summary line in `logs/watch.log`.
fn say(shared: &Shared, text: &str) {
    static LOG: Mutex<Option<(PathBuf, Arc<LogFile>)>> = Mutex::new(None);
    let path = watch_log(&shared.project_dir);
    let Ok(mut slot) = LOG.lock() else { return };
    if slot.as_ref().is_none_or(|(p, _)| *p != path)
        && let Ok(log) = LogFile::open(&path, LogPolicy::default())
    {
        *slot = Some((path.clone(), log));
    }
    if let Some((_, log)) = slot.as_ref() {
        log.line(text);
    }
}

/// Where the summary lines go: `<project dir>/logs/watch.log`.
pub fn watch_log(project_dir: &Path) -> PathBuf {
    project_dir.join("logs").join("watch.log")
}

/// The running containers of `service`: their specs and records.
pub(super) fn containers_of(shared: &Shared, service: &str) -> Vec<Target> {
    let Ok(found) = crate::runtime::state::list(&shared.root) else { return Vec::new() };
    found
        .into_iter()
        .filter_map(|f| Some(Target { spec: f.spec?, record: f.record? }))
        .filter(|t| t.spec.project == shared.name && t.spec.service == service && !t.record.oneoff)
        .filter(|t| t.record.is_running())
        .collect()
}

/// One rule's batch: its action, then its summary line.
async fn act(shared: &Arc<Shared>, rules: &Arc<Vec<CompiledRule>>, batch: Batch) {
    let Some(rule) = rules.get(batch.rule) else { return };
    let service = rule.service().to_owned();
    let changed = batch.changed.len() + batch.removed.len();
    match rule.action() {
        Action::Sync | Action::SyncRestart | Action::SyncExec => {
            let copied = sync_batch(shared, rules, batch.rule, &batch).await;
            say(shared, &format!("Syncing service {service:?} after {changed} changed files ({copied} written)"));
            match rule.action() {
                Action::SyncRestart => restart(shared, &service).await,
                Action::SyncExec => run_hook(shared, rule).await,
                _ => {}
            }
        }
        Action::Restart => {
            say(shared, &format!("Restarting service {service:?} after {changed} changed files"));
            restart(shared, &service).await;
        }
        Action::Rebuild => {
            say(shared, &format!("Rebuilding service {service:?} after {changed} changed files"));
            rebuild(shared, &service).await;
        }
    }
}

/// Writes a batch's changed files into every running replica and removes its removed ones.
async fn sync_batch(shared: &Arc<Shared>, rules: &Arc<Vec<CompiledRule>>, index: usize, batch: &Batch) -> usize {
    let shared = Arc::clone(shared);
    let rules = Arc::clone(rules);
    let changed = batch.changed.clone();
    let removed = batch.removed.clone();
    tokio::task::spawn_blocking(move || {
        let Some(rule) = rules.get(index) else { return 0 };
        let mut written = 0;
        for target in containers_of(&shared, rule.service()) {
            let Ok(into) = SyncTarget::open(target.record.pid, &target.spec.process.user) else { continue };
            for path in &removed {
                if let Some(inside) = rule.map(path) {
                    let _ = into.remove(&inside);
                }
            }
            for path in &changed {
                if let Some(inside) = rule.map(path) {
                    match into.copy_in_from(rule.path(), path, &inside) {
                        Ok(n) => written += n,
                        // Gone again since the event: the next batch says so.
                        Err(_) if !path.exists() => {}
                        Err(e) => eprintln!("berth: watch: sync {} to {inside}: {e}", path.display()),
                    }
                }
            }
        }
        written
    })
    .await
    .unwrap_or(0)
}

/// Copies a rule's whole path into every running replica of its service.
async fn full_sync(shared: &Arc<Shared>, rules: &Arc<Vec<CompiledRule>>, index: usize) -> usize {
    let shared = Arc::clone(shared);
    let rules = Arc::clone(rules);
    tokio::task::spawn_blocking(move || {
        let Some(rule) = rules.get(index) else { return 0 };
        containers_of(&shared, rule.service())
            .iter()
            .map(|target| sync_all_into(rule, &target.spec, target.record.pid))
            .sum()
    })
    .await
    .unwrap_or(0)
}

/// Copies every file of `rule`'s path that the rule does not ignore into the container.
fn sync_all_into(rule: &CompiledRule, spec: &ContainerSpec, pid: i32) -> usize {
    let Ok(into) = SyncTarget::open(pid, &spec.process.user) else { return 0 };
    let mut written = 0;
    let mut pending = vec![rule.path().to_path_buf()];
    while let Some(path) = pending.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                pending.extend(entries.flatten().map(|e| e.path()));
            }
        } else if let Some(inside) = rule.map(&path) {
            written += into.copy_in_from(rule.path(), &path, &inside).unwrap_or(0);
        }
    }
    written
}

/// A container of a watched service (re)started: brings its sync paths up to date, since a
/// recreated container starts from its image.
pub fn resync(shared: &Shared, spec: &ContainerSpec, pid: i32) {
    let rules = shared.watching.lock().ok().and_then(|w| w.as_ref().map(|w| Arc::clone(&w.rules)));
    let Some(rules) = rules else { return };
    for rule in rules.iter().filter(|r| r.service() == spec.service && syncs(r.action())) {
        sync_all_into(rule, spec, pid);
    }
}

/// compose's watch restart: the service and its `restart: true` dependents.
async fn restart(shared: &Arc<Shared>, service: &str) {
    let _turn = shared.orders.lock().await;
    if let Err(e) = orders::stop_or_restart(shared, &[service.to_owned()], None, true).await {
        say(shared, &format!("Restart of service {service:?} failed: {e}"));
    }
}

/// `rebuild`: compose's `up --build --no-deps <service>` — the service's image built again
/// (from the stack file as the last `up` loaded it), then the service recreated from it. A
/// failed build is reported and the running containers are left alone.
async fn rebuild(shared: &Arc<Shared>, service: &str) {
    let Some(mut request) = shared.last_up.lock().ok().and_then(|r| r.clone()) else { return };
    let (done, built) = tokio::sync::oneshot::channel();
    let thread_shared = Arc::clone(shared);
    let thread_request = request.clone();
    let name = service.to_owned();
    // A thread of its own: the build may pull a base image on a runtime of its own.
    std::thread::spawn(move || {
        let _ = done.send(build_image(&thread_shared, &thread_request, &name));
    });
    match built.await {
        Ok(Ok(Some(summary))) => say(shared, &summary),
        Ok(Ok(None)) => {}
        Ok(Err(e)) => {
            say(shared, &format!("Rebuild of service {service:?} failed: {e}"));
            return;
        }
        Err(_) => return,
    }
    request.services = vec![service.to_owned()];
    request.no_deps = true;
    request.force_recreate = true;
    request.no_recreate = false;
    request.watch = false;
    let _turn = shared.orders.lock().await;
    if let Err(e) = super::converge::up(shared, request).await {
        say(shared, &format!("Rebuild of service {service:?} failed: {e}"));
    }
}

/// Builds `service`'s image; `None` when it has no `build:` section (then it is only
/// recreated, from its image).
fn build_image(shared: &Shared, request: &UpRequest, service: &str) -> Result<Option<String>, String> {
    let project = super::converge::load(request).map_err(|e| e.to_string())?;
    let Some(config) = project.services.get(service).filter(|s| s.build.is_some()) else { return Ok(None) };
    let options = crate::build::BuildOptions { quiet: true, ..crate::build::BuildOptions::default() };
    let build_request = crate::build::request(&project, config, &options).map_err(|e| e.to_string())?;
    let images = crate::image::ensure::StoreSource { store: &shared.store, quiet: false };
    let quiet = |_: &str| {};
    let builder = crate::build::Builder {
        state_root: &shared.root,
        store: &shared.store,
        spawner: &shared.spawner,
        images: &images,
        progress: &quiet,
        cancel: None,
    };
    let built = builder.build(&build_request).map_err(|e| e.to_string())?;
    Ok(Some(format!(
        "Built image of service {service:?} ({}): {} steps run, {} from the cache",
        built.record.id.short(),
        built.ran,
        built.cached
    )))
}

/// Runs a `sync+exec` rule's hook in every running replica, and says how it ended.
async fn run_hook(shared: &Arc<Shared>, rule: &CompiledRule) {
    let Some(hook) = rule.exec().cloned() else { return };
    let targets = {
        let shared = Arc::clone(shared);
        let service = rule.service().to_owned();
        tokio::task::spawn_blocking(move || containers_of(&shared, &service)).await.unwrap_or_default()
    };
    for target in targets {
        let spawner_of = Arc::clone(shared);
        let hook = hook.clone();
        let name = target.record.name.clone();
        let code = tokio::task::spawn_blocking(move || {
            let shared = spawner_of;
            let process = super::hooks::process(&target.spec.process, &hook)?;
            let null = std::fs::File::open("/dev/null").ok()?;
            use std::os::fd::AsRawFd;
            let fd = null.as_raw_fd();
            let started = crate::runtime::exec::start(&shared.spawner, &target, process, Some([fd, fd, fd])).ok()?;
            started.wait().ok().map(|s| s.code)
        })
        .await
        .ok()
        .flatten();
        let text = code.map_or_else(|| "could not run".to_owned(), |c| format!("exited with code {c}"));
        say(shared, &format!("The exec hook of {name} {text}"));
    }
}

/// Watches the stack's files and env files: an edit is loaded and converged.
fn watch_stack(shared: &Arc<Shared>, request: &UpRequest, quiet: Duration) -> Result<RuleWatcher, SupervisorError> {
    let mut files = crate::spec::load::resolve_files(&request.options).unwrap_or_default();
    let project_dir = files.first().and_then(|f| f.parent()).map(Path::to_path_buf);
    files.extend(request.options.env_files.iter().cloned());
    if request.options.env_files.is_empty()
        && let Some(dir) = request.options.project_directory.clone().or(project_dir)
    {
        files.push(dir.join(".env"));
    }
    // Files that do not exist (an absent `.env`) are not watched.
    files.retain(|f| f.exists());
    let rules: Vec<CompiledRule> = files
        .iter()
        .enumerate()
        .filter_map(|(index, file)| {
            let rule = crate::spec::model::WatchRule {
                path: file.display().to_string(),
                action: "restart".into(),
                target: None,
                ignore: Vec::new(),
                include: Vec::new(),
                initial_sync: false,
                exec: None,
            };
            CompiledRule::new("", index, &rule, None).ok()
        })
        .collect();
    let runtime = tokio::runtime::Handle::current();
    let (edits, mut pending) = tokio::sync::mpsc::unbounded_channel::<()>();
    let watcher = RuleWatcher::start(rules, quiet, move |_| {
        let _ = edits.send(());
    })
    .map_err(|e| SupervisorError::Other(format!("watch the stack files: {e}")))?;
    let shared = Arc::clone(shared);
    runtime.spawn(async move {
        while pending.recv().await.is_some() {
            reload(&shared).await;
        }
    });
    Ok(watcher)
}

/// The stack changed on disk: load it the way the last `up` did and converge, or say why not.
async fn reload(shared: &Arc<Shared>) {
    let Some(mut request) = shared.last_up.lock().ok().and_then(|r| r.clone()) else { return };
    request.force_recreate = false;
    request.watch = false;
    let check = request.clone();
    let loaded = tokio::task::spawn_blocking(move || super::converge::load(&check)).await;
    match loaded {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            say(shared, &format!("The stack file does not load; the running project is left as it is: {e}"));
            return;
        }
        Err(_) => return,
    }
    let watched = shared.watching.lock().ok().and_then(|w| w.as_ref().map(|w| w.request.clone()));
    let _turn = shared.orders.lock().await;
    let done = super::converge::up(shared, request).await;
    // The rules may have changed with the stack.
    if done.is_ok()
        && let Some(watched) = watched
        && let Err(e) = start(shared, &watched)
    {
        say(shared, &format!("Watching the changed stack failed: {e}"));
    }
    match done {
        Ok(report) => {
            let changed: Vec<String> = report
                .changes
                .iter()
                .filter(|c| c.action != "Running")
                .map(|c| format!("{} {}", c.container, c.action.to_lowercase()))
                .collect();
            let what = if changed.is_empty() { "nothing to change".to_owned() } else { changed.join(", ") };
            say(shared, &format!("The stack file changed: {what}"));
        }
        Err(e) => say(shared, &format!("The stack file changed, but applying it failed: {e}")),
    }
}
