//! What `berth run` does around its container: its dependencies started first, through the
//! project's supervisor as `up` starts them; the service changed by `-v`, `-p`, `-P`,
//! `--cap-add` and `--cap-drop`; its ports published; and `-d`, which leaves the container
//! running in the background under a detached `berth run`.

use std::collections::BTreeSet;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::OnceLock;

use anyhow::anyhow;

use super::run::RunArgs;
use super::supervise::{converge, failure, lock_project, running_supervisor, start_supervisor};
use super::up::{UpArgs, show_progress, up_request};
use super::{EXIT_INVALID, Failure, GlobalOptions};
use crate::graph::Condition;
use crate::image::Store;
use crate::image::ensure::{StoreSource, ensure_images};
use crate::network::{firewall, ports};
use crate::runtime::spawner::Spawner;
use crate::runtime::spec::ContainerSpec;
use crate::spec::{Project, ProjectOptions, Service};

fn invalid(message: String) -> Failure {
    Failure { code: EXIT_INVALID, error: anyhow!(message) }
}

/// The service as `run` plans it: compose's `run` publishes no port of the service unless
/// `-P`, then the `-p` ones; `-v` mounts replace the service's on the same target; `--cap-add`
/// and `--cap-drop` add to the service's.
pub(super) fn adjust_service(project: &Project, service: &Service, args: &RunArgs) -> Result<Service, Failure> {
    let mut service = service.clone();
    if !args.service_ports {
        service.ports.clear();
    }
    for text in &args.publish {
        let parsed =
            crate::spec::ports::parse_port_short(text).map_err(|e| invalid(format!("--publish {text:?}: {e}")))?;
        service.ports.extend(parsed);
    }
    for text in &args.volume {
        let mut mount =
            crate::spec::volumes::parse_volume_short(text).map_err(|e| invalid(format!("--volume {text:?}: {e}")))?;
        if let Some(source) = mount.source.as_mut().filter(|_| mount.r#type == crate::spec::volumes::MountType::Bind) {
            *source = host_path(project, source);
        }
        service.volumes.retain(|m| m.target != mount.target);
        service.volumes.push(mount);
    }
    service.cap_add.extend(args.cap_add.iter().cloned());
    service.cap_drop.extend(args.cap_drop.iter().cloned());
    if let Some(policy) = &args.pull {
        // compose's `--pull policy` (the default) keeps the service's own.
        if policy != "policy" {
            service.pull_policy = Some(policy.clone());
        }
    }
    Ok(service)
}

/// A `-v` bind source as the stack file's would be: `~` is the home directory, a relative
/// path is relative to the project directory.
fn host_path(project: &Project, source: &str) -> String {
    if let Some(rest) = source.strip_prefix("~/").or(source.strip_prefix("~").filter(|r| r.is_empty())) {
        let home = std::env::var("HOME").unwrap_or_else(|_| "/".into());
        return std::path::Path::new(&home).join(rest).to_string_lossy().into_owned();
    }
    let path = std::path::Path::new(source);
    if path.is_absolute() {
        return source.to_owned();
    }
    let joined = project.working_dir.join(path);
    std::path::absolute(&joined).unwrap_or(joined).to_string_lossy().into_owned()
}

/// The services `service` depends on, transitively, that the project has.
fn dependencies(project: &Project, service: &Service) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut todo: Vec<&Service> = vec![service];
    while let Some(s) = todo.pop() {
        for name in s.depends_on.keys() {
            if let Some(dep) = project.services.get(name)
                && found.insert(name.clone())
            {
                todo.push(dep);
            }
        }
    }
    found
}

/// Starts what `service` depends on as `up -d DEP…` would (built or pulled first, then by the
/// project's supervisor, started here when none runs), then waits for the conditions
/// `service` puts on them: healthy, or exited 0.
pub(super) fn start_dependencies(
    global: &GlobalOptions,
    options: ProjectOptions,
    project: &Project,
    service: &Service,
    args: &RunArgs,
    spawner: &Spawner,
) -> Result<(), Failure> {
    let deps = dependencies(project, service);
    if deps.is_empty() {
        return Ok(());
    }
    let root = global.state_root();
    let store = Store::open(&root).map_err(failure)?;
    let mut wanted = std::collections::BTreeMap::new();
    for name in &deps {
        let dep = &project.services[name];
        let image = dep.image_name(&project.name).unwrap_or_default();
        if dep.build.is_some() {
            if store.resolve(&image).map_err(failure)?.is_none() || dep.pull_policy.as_deref() == Some("build") {
                let options = crate::build::BuildOptions::default();
                super::build::build_service(&root, &store, spawner, project, dep, &options)?;
            }
        } else if let Some(image) = dep.image.clone() {
            wanted.insert(name.clone(), (image, dep.pull_policy.clone()));
        }
    }
    let source = StoreSource { store: &store, quiet: args.quiet_pull };
    ensure_images(&source, &wanted).map_err(failure)?;
    let up = UpArgs {
        detach: true,
        services: service.depends_on.keys().filter(|d| deps.contains(*d)).cloned().collect(),
        ..UpArgs::default()
    };
    let request = up_request(options, project, &up)?;
    let lock = lock_project(global, &project.name)?;
    crate::volume::ensure_project(&root, project).map_err(failure)?;
    let report = match running_supervisor(&root, &project.name) {
        Some(dir) => converge(&dir, &request)?,
        None => start_supervisor(global, &root, &project.name, &request)?,
    };
    drop(lock);
    show_progress(global, &report);
    for (name, dep) in &service.depends_on {
        if deps.contains(name) && dep.condition != Condition::Started {
            wait_for(global, &project.name, name, dep.condition, dep.required)?;
        }
    }
    Ok(())
}

/// Waits until every container of `service` meets `condition`; one that cannot any more fails
/// `run` (unless the dependency is not required, as compose lets it go with a warning).
fn wait_for(
    global: &GlobalOptions,
    project: &str,
    service: &str,
    condition: Condition,
    required: bool,
) -> Result<(), Failure> {
    loop {
        let containers: Vec<_> =
            super::ps::containers(global, project).into_iter().filter(|c| c.service == service).collect();
        let mut met = !containers.is_empty();
        for c in &containers {
            let problem = match (condition, c.state.as_str(), c.health.as_str()) {
                (Condition::Healthy, "running", "healthy") => None,
                (Condition::Healthy, _, "unhealthy") => Some(format!("container {} is unhealthy", c.name)),
                (Condition::CompletedSuccessfully, "exited", _) if c.exit_code == 0 => None,
                (_, "exited", _) => Some(format!("container {} exited ({})", c.name, c.exit_code)),
                _ => {
                    met = false;
                    None
                }
            };
            if let Some(problem) = problem {
                if !required {
                    eprintln!("WARN[0000] optional dependency {service:?} failed: {problem}");
                    return Ok(());
                }
                return Err(failure(anyhow!("dependency failed to start: {problem}")));
            }
        }
        if met {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Published ports of a running one-off, held until it is dropped (the firewall rules go then).
#[derive(Debug)]
pub(super) struct PublishedPorts {
    _held: Vec<ports::Published>,
    backend: Option<firewall::Backend>,
    project: String,
    container: String,
}

impl Drop for PublishedPorts {
    fn drop(&mut self) {
        if let Some(backend) = self.backend {
            let _ = backend.remove_container(&self.project, &self.container);
        }
    }
}

/// Publishes the ports of a one-off container as the supervisor publishes a replica's: each
/// host port held by a bound socket, the traffic carried by DNAT rules to its first address.
pub(super) fn publish(
    root: &std::path::Path,
    service: &Service,
    spec: &ContainerSpec,
) -> Result<PublishedPorts, Failure> {
    let mut published = PublishedPorts {
        _held: Vec::new(),
        backend: None,
        project: spec.project.clone(),
        container: spec.name.clone(),
    };
    if service.ports.is_empty() {
        return Ok(published);
    }
    let Some(endpoint) = spec.endpoints.first() else {
        return Err(failure(anyhow!("service {:?}: ports need a network; it has none", service.name)));
    };
    let default_host_ip = crate::network::store::NetworkStore::lock(root)
        .and_then(|store| store.all())
        .ok()
        .and_then(|all| all.into_iter().find(|n| n.name == endpoint.network))
        .and_then(|n| n.host_binding)
        .or_else(|| std::env::var("BERTH_HOST_IP").ok().and_then(|v| v.parse().ok()));
    let held = ports::publish(&service.ports, default_host_ip)
        .map_err(|e| failure(anyhow!("service {:?}: ports: {e}", service.name)))?;
    let backend = firewall::detect().map_err(failure)?;
    let rules = firewall::PortRule::for_published(&spec.project, &spec.name, &held, endpoint.address.addr());
    published.backend = Some(backend);
    backend.add_ports(&rules).map_err(failure)?;
    published._held = held;
    Ok(published)
}

/// The pipe a detached `run` tells its caller the container's name on.
static DETACHED: OnceLock<std::sync::Mutex<Option<std::fs::File>>> = OnceLock::new();

/// `run -d`, before anything else happens (one thread, no spawner yet): forks. The parent
/// relays the child's standard error until the child has started the container, prints its
/// name and returns the exit status; the child (`None`) goes on as a foreground `run` of its
/// own, in a new session, and owns the container until it exits.
pub(super) fn detach() -> Result<Option<u8>, Failure> {
    let (name_read, name_write) = nix::unistd::pipe().map_err(failure)?;
    let (err_read, err_write) = nix::unistd::pipe().map_err(failure)?;
    // SAFETY: berth has one thread here (no spawner, no runtime yet), so the child may run
    // any code.
    match unsafe { nix::unistd::fork() }.map_err(failure)? {
        nix::unistd::ForkResult::Parent { child } => {
            drop((name_write, err_write));
            relay_until_started(child, name_read, err_read).map(Some)
        }
        nix::unistd::ForkResult::Child => {
            drop((name_read, err_read));
            let _ = nix::unistd::setsid();
            // The caller's standard streams may be pipes it reads to their end (`$(berth run
            // -d …)`); the child and what it forks (the spawner) must not hold them, nor any
            // other descriptor the caller had (a lock, say). Its standard error goes through
            // the parent until the container runs.
            let null = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null").map_err(failure)?;
            let _ = nix::unistd::dup2_stdin(&null);
            let _ = nix::unistd::dup2_stdout(&null);
            let _ = nix::unistd::dup2_stderr(&err_write);
            drop((null, err_write));
            close_others(name_write.as_raw_fd());
            let _ = DETACHED.set(std::sync::Mutex::new(Some(std::fs::File::from(name_write))));
            Ok(None)
        }
    }
}

/// Closes every descriptor above the standard three but `keep`.
fn close_others(keep: i32) {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else { return };
    let fds: Vec<i32> = entries.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect();
    for fd in fds.into_iter().filter(|fd| *fd > 2 && *fd != keep) {
        // SAFETY: closes a descriptor this just-forked, single-threaded child inherited and
        // does not use (the directory's own descriptor fails harmlessly with EBADF).
        let _ = unsafe { libc::close(fd) };
    }
}

/// The parent's side: the child's standard error to ours, until the child sends the name
/// (printed, status 0) or fails (its status). The pipes' write ends also live in the spawner,
/// which dies with the child, so a failure ends in end of file.
fn relay_until_started(child: nix::unistd::Pid, name: OwnedFd, err: OwnedFd) -> Result<u8, Failure> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let mut err_open = true;
    loop {
        let mut fds = vec![PollFd::new(name.as_fd(), PollFlags::POLLIN)];
        if err_open {
            fds.push(PollFd::new(err.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(e) => return Err(failure(e)),
        }
        let ready = |i: usize| fds.get(i).and_then(|f| f.revents()).is_some_and(|r| !r.is_empty());
        let (name_ready, err_ready) = (ready(0), ready(1));
        if err_ready {
            match nix::unistd::read(&err, &mut buf) {
                Ok(0) | Err(_) => err_open = false,
                Ok(n) => {
                    let _ = std::io::stderr().write_all(&buf[..n]);
                }
            }
        }
        if name_ready {
            let n = nix::unistd::read(&name, &mut buf).unwrap_or(0);
            got.extend_from_slice(&buf[..n]);
            if got.ends_with(b"\n") {
                super::emit(&String::from_utf8_lossy(&got))?;
                return Ok(0);
            }
            if n == 0 {
                let code = match nix::sys::wait::waitpid(child, None) {
                    Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => u8::try_from(code).unwrap_or(1),
                    _ => 1,
                };
                return Ok(code.max(1));
            }
        }
    }
}

/// Whether this process is a detached `run`'s child.
pub(super) fn is_detached() -> bool {
    DETACHED.get().is_some()
}

/// A detached `run`'s container runs: its name goes to the caller, and the caller's standard
/// error is let go.
pub(super) fn started(name: &str) {
    let Some(pipe) = DETACHED.get() else { return };
    if let Some(mut pipe) = pipe.lock().ok().and_then(|mut p| p.take()) {
        let _ = writeln!(pipe, "{name}");
    }
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stderr(&null);
    }
}

/// Where a detached one-off's output goes: `<project dir>/<container>.log`.
pub(super) fn detached_log(root: &std::path::Path, project: &str, name: &str) -> Result<OwnedFd, Failure> {
    let dir = crate::supervisor::project_dir(root, project);
    crate::secure_fs::private_dir(&dir).map_err(failure)?;
    let file = crate::secure_fs::create_private(&dir.join(format!("{name}.log"))).map_err(failure)?;
    let fd = OwnedFd::from(file);
    debug_assert!(fd.as_raw_fd() > 2);
    Ok(fd)
}
