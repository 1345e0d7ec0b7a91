//! RUN: the command runs in an ordinary berth container made from the stage so far — the same
//! namespaces, cgroup, init layer and defaults as a service's — on the build's own network
//! (see [`super::network`]), so package managers reach their registries through its NAT. The
//! container's overlay upper directory, once the command exited 0, is the step's layer.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;

use super::BuildError;
use super::dockerfile::Flag;
use super::network::BuildNetwork;
use super::state::StageState;
use crate::image::{Digest, ImageRecord, Store};
use crate::launch::{self, LaunchError, Networks, PlanContext, RunOverrides};
use crate::runtime::container::{ExitStatus, StartOptions};
use crate::runtime::spawner::Spawner;
use crate::runtime::spec::{Mount, MountKind};
use crate::spec::{Project, Service};

/// Where and how RUN containers are made.
#[derive(Debug)]
pub struct RunContext<'a> {
    /// The state root.
    pub state_root: &'a Path,
    /// The image store.
    pub store: &'a Store,
    /// Forks container processes.
    pub spawner: &'a Spawner,
    /// The project (its networks and name).
    pub project: &'a Project,
    /// The service being built (names the containers).
    pub service: &'a str,
    /// The build's own network, made at the first RUN that wants one; the build removes it
    /// when it ends.
    pub network: RefCell<Option<BuildNetwork>>,
    /// Set (by a signal handler) when the build is to stop: a running RUN is killed.
    pub cancel: Option<&'a AtomicBool>,
    /// The build context, for `--mount=type=bind`.
    pub context: &'a Path,
}

impl RunContext<'_> {
    /// Whether the build was asked to stop.
    pub fn cancelled(&self) -> bool {
        self.cancel.is_some_and(|c| c.load(Ordering::SeqCst))
    }

    /// The build network, made if this is the first RUN that needs it.
    fn ensure_network(&self) -> Result<(), BuildError> {
        let mut slot = self.network.borrow_mut();
        if slot.is_none() {
            *slot = Some(BuildNetwork::make(self.state_root)?);
        }
        Ok(())
    }
}

/// What a RUN needs beyond the stage: its argv and `--mount`/`--network` flags.
#[derive(Debug)]
pub struct RunCommand {
    /// The process's argv.
    pub argv: Vec<String>,
    /// `--mount` entries, already expanded.
    pub mounts: Vec<Mount>,
    /// `--network=none`.
    pub no_network: bool,
}

/// A finished RUN: how the command ended and, when it exited 0, its upper directory moved to
/// `staging` (which the caller owns and removes).
#[derive(Debug)]
pub struct RunResult {
    /// The exit status.
    pub status: ExitStatus,
    /// The staging directory holding `layer/`.
    pub staging: PathBuf,
}

impl RunResult {
    /// The layer directory.
    pub fn layer(&self) -> PathBuf {
        self.staging.join("layer")
    }
}

/// Reads RUN's flags: `--network=default|none`, `--mount=type=cache|bind|tmpfs,...`. Anything
/// else is refused with the reason.
pub fn parse_flags(flags: &[Flag], ctx: &RunContext<'_>) -> Result<(Vec<Mount>, bool), String> {
    let mut mounts = Vec::new();
    let mut no_network = false;
    for flag in flags {
        let value = flag.value.as_deref().unwrap_or_default();
        match flag.name.as_str() {
            "network" => match value {
                "none" => no_network = true,
                "default" | "" => {}
                other => return Err(format!("--network={other} is not supported (default or none)")),
            },
            "mount" => mounts.push(parse_mount(value, ctx)?),
            other => return Err(format!("--{other} is not supported")),
        }
    }
    Ok((mounts, no_network))
}

/// One `--mount=` value.
fn parse_mount(value: &str, ctx: &RunContext<'_>) -> Result<Mount, String> {
    let mut fields = BTreeMap::new();
    for part in value.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, "true"));
        fields.insert(k.to_ascii_lowercase(), v.to_owned());
    }
    let kind = fields.get("type").map_or("bind", String::as_str);
    if !["cache", "tmpfs", "bind"].contains(&kind) {
        return Err(format!("--mount=type={kind} is not supported (cache, bind or tmpfs)"));
    }
    let target = fields
        .get("target")
        .or_else(|| fields.get("dst"))
        .or_else(|| fields.get("destination"))
        .ok_or_else(|| format!("--mount={value}: a target is required"))?
        .clone();
    if !target.starts_with('/') {
        return Err(format!("--mount={value}: the target must be absolute"));
    }
    let flag = |name: &str| fields.get(name).is_some_and(|v| v == "true" || v == "1");
    match kind {
        "cache" => {
            // One directory per cache id (default: the target), kept across builds.
            let id = fields.get("id").cloned().unwrap_or_else(|| target.clone());
            let dir = ctx.store.dir().join("build-cache-mounts").join(Digest::of(id.as_bytes()).hex());
            Ok(Mount {
                kind: MountKind::Bind { source: dir, create_host_path: true, propagation: None },
                target,
                read_only: flag("ro") || flag("readonly"),
            })
        }
        "tmpfs" => Ok(Mount { kind: MountKind::Tmpfs { size: None, mode: None }, target, read_only: false }),
        "bind" => {
            if fields.contains_key("from") {
                return Err(format!("--mount={value}: from= is not supported yet (bind from the build context)"));
            }
            let source = fields.get("source").or_else(|| fields.get("src")).map_or(".", String::as_str);
            let source = resolve_in_context(ctx.context, source).map_err(|e| format!("--mount={value}: {e}"))?;
            // BuildKit's bind mounts are read-only unless `rw`.
            Ok(Mount {
                kind: MountKind::Bind { source, create_host_path: false, propagation: None },
                target,
                read_only: !(flag("rw") || flag("readwrite")),
            })
        }
        other => Err(format!("--mount=type={other} is not supported (cache, bind or tmpfs)")),
    }
}

/// A path in the build context that stays in it after symlinks.
fn resolve_in_context(context: &Path, source: &str) -> Result<PathBuf, String> {
    let root = context.canonicalize().map_err(|e| format!("{}: {e}", context.display()))?;
    let path = root.join(source.trim_start_matches('/')).canonicalize().map_err(|e| format!("{source}: {e}"))?;
    if !path.starts_with(&root) {
        return Err(format!("{source} is outside the build context"));
    }
    Ok(path)
}

/// Runs `command` in a container of `state`, writing its output lines to `output`.
pub fn run(
    ctx: &RunContext<'_>,
    state: &StageState,
    command: RunCommand,
    output: &dyn Fn(&str),
) -> Result<RunResult, BuildError> {
    let image = ImageRecord {
        id: Digest::of(b"berth build step"),
        manifest: None,
        layers: state.layers.clone(),
        config: state.config.clone(),
        host_binds: Vec::new(),
    };
    if !command.no_network {
        ctx.ensure_network()?;
    }
    let slot = ctx.network.borrow();
    let network = slot.as_ref().filter(|_| !command.no_network);
    let mut service = Service {
        name: ctx.service.to_owned(),
        entrypoint: Some(command.argv),
        command: None,
        user: state.config.config.user.clone(),
        working_dir: Some(state.workdir()),
        environment: state.run_args().into_iter().map(|(k, v)| (k, Some(v))).collect(),
        ..Service::default()
    };
    if let Some(network) = network {
        service.networks.insert(network.key().to_owned(), None);
    }
    let layer_links = state
        .layers
        .iter()
        .map(|l| {
            ctx.store.layer_link(&l.diff_id).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
        })
        .collect();
    let host_resolv_conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let plan_ctx = PlanContext {
        project: ctx.project,
        state_root: ctx.state_root,
        image: &image,
        layer_root: ctx.store.dir().join("l"),
        layer_links,
        host_resolv_conf: &host_resolv_conf,
        host_hosts: "",
        host_hostname: "",
    };
    let suffix = launch::random_hex(6)?;
    let overrides = RunOverrides {
        tty: Some(false),
        name: Some(format!("{}-{}-build-{suffix}", ctx.project.name, ctx.service)),
        index: 1,
        ..RunOverrides::default()
    };
    // The build talks to the outside world with the host's resolvers, as `docker build` does.
    let none = BTreeMap::new();
    let request = launch::Plan {
        ctx: plan_ctx,
        service: &service,
        overrides,
        networks: Networks::Build(network.map_or(&none, BuildNetwork::networks)),
    };
    let mounts = command.mounts;
    run_container(ctx, &request, mounts, output)
}

fn run_container(
    ctx: &RunContext<'_>,
    request: &launch::Plan<'_>,
    mounts: Vec<Mount>,
    output: &dyn Fn(&str),
) -> Result<RunResult, BuildError> {
    let null = File::open("/dev/null").map_err(|e| BuildError::io("/dev/null", e))?;
    let (reader, writer) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|source| BuildError::Sys { what: "pipe".into(), source })?;
    let options = StartOptions {
        stdio: Some([null.as_raw_fd(), writer.as_raw_fd(), writer.as_raw_fd()]),
        die_with_parent: true,
        oneoff: true,
    };
    let mut container = launch::launch(ctx.spawner, ctx.state_root, request, options, |spec| {
        spec.rootfs.volatile = true;
        spec.rootfs.self_contained = true;
        spec.mounts = mounts;
    })
    .map_err(|e| match e {
        LaunchError::Plan(e) => BuildError::from(e),
        LaunchError::Network(e) => e.into(),
        LaunchError::Runtime(e) => e.into(),
    })?;
    // Only the container holds the pipe's write end now: its end is the end of the output.
    drop(writer);
    drop(null);
    let cancelled = forward_output(ctx, &container, File::from(reader), output) || ctx.cancelled();
    let status = container.wait();
    let moved = match &status {
        Ok(s) if s.code == 0 => Some(take_upper(ctx.store, &container.dirs.upper())),
        _ => None,
    };
    let taken = (!container.spec.endpoints.is_empty()).then(|| container.spec.clone());
    let destroyed = container.destroy();
    if let Some(taken) = &taken {
        launch::release(ctx.state_root, taken);
    }
    if cancelled {
        if let Some(Ok(staging)) = &moved {
            let _ = std::fs::remove_dir_all(staging);
        }
        return Err(BuildError::Interrupted);
    }
    let status = status?;
    destroyed?;
    match moved {
        Some(staging) => Ok(RunResult { status, staging: staging? }),
        None => Ok(RunResult { status, staging: PathBuf::new() }),
    }
}

/// Passes the container's output on line by line until its end (the container exited). Checks
/// the cancel flag between reads and kills the container when it is set; returns whether it did.
fn forward_output(
    ctx: &RunContext<'_>,
    container: &crate::runtime::container::Container,
    mut reader: File,
    output: &dyn Fn(&str),
) -> bool {
    let mut cancelled = false;
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let emit = |line: &[u8]| output(String::from_utf8_lossy(line).trim_end_matches(['\n', '\r']));
    loop {
        if !cancelled && ctx.cancelled() {
            // PID 1 gone, the kernel kills the rest of its namespace: the pipe's last writers.
            let _ = container.signal(Signal::SIGKILL);
            cancelled = true;
        }
        let mut fds = [PollFd::new(reader.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(200u16)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(_) => break,
        }
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                pending.extend_from_slice(&buf[..n]);
                let mut start = 0;
                while let Some(end) = pending[start..].iter().position(|b| *b == b'\n') {
                    emit(&pending[start..start + end + 1]);
                    start += end + 1;
                }
                pending.drain(..start);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if !pending.is_empty() {
        emit(&pending);
    }
    cancelled
}

/// Moves the container's upper directory into the store's staging area (the same filesystem)
/// and leaves an empty one in its place, which the container's removal expects.
fn take_upper(store: &Store, upper: &Path) -> Result<PathBuf, BuildError> {
    let staging = store.staging_dir()?;
    let layer = staging.join("layer");
    std::fs::rename(upper, &layer).map_err(|e| BuildError::io(upper, e))?;
    std::fs::create_dir(upper).map_err(|e| BuildError::io(upper, e))?;
    Ok(staging)
}
