//! One way to launch a container, for the supervisor, `run` and the builder's RUN: plan the
//! spec, place it on its networks (addresses taken), create and start it, and on any failure
//! give back what was taken.
//!
//! It sits one layer above [`crate::runtime`] and [`crate::network`], which do not know each
//! other: the runtime is handed the network-attach step ([`attach_step`]) from here.

use std::collections::BTreeMap;
use std::os::fd::BorrowedFd;
use std::path::Path;

use crate::network::netlink;
use crate::network::setup::{self, NetworkError};
use crate::network::store::NetworkRecord;
pub use crate::plan::mounts::anonymous_volumes;
pub(crate) use crate::plan::random_hex;
use crate::plan::{self, PlanError};
pub use crate::plan::{PlanContext, RunOverrides};
use crate::runtime::RuntimeError;
use crate::runtime::container::{Container, Created, StartOptions};
use crate::runtime::spawner::Spawner;
use crate::runtime::spec::{ContainerSpec, NamespaceMode};
use crate::spec::{Project, Service};

/// Why a launch failed; what it took is given back by then.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The service could not be planned into a container spec (bad input).
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// Its networks could not be made or its addresses taken.
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// The container could not be created or started.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

/// The networks a planned container joins.
#[derive(Debug, Clone, Copy)]
pub enum Networks<'a> {
    /// A service's replica, on the networks its supervisor made. One that shares another
    /// container's network namespace sees that one's /etc files, as in docker: its names,
    /// its resolver.
    Replica(&'a BTreeMap<String, NetworkRecord>),
    /// A one-off (`run`), on the service's networks, made when missing and left for `down`,
    /// as compose does.
    OneOff(&'a Project),
    /// A build's RUN, on the build's own network (made and removed by the build, never the
    /// project's), with the planned resolv.conf — the host's resolvers, as `docker build` —
    /// rather than a project DNS server.
    Build(&'a BTreeMap<String, NetworkRecord>),
}

/// What to plan: the inputs of [`plan::container_spec`] and the networks to join.
#[derive(Debug)]
pub struct Plan<'a> {
    /// Project, image and host files.
    pub ctx: PlanContext<'a>,
    /// The service.
    pub service: &'a Service,
    /// `run`'s overrides, or the replica's index.
    pub overrides: RunOverrides,
    /// Where it is attached.
    pub networks: Networks<'a>,
}

/// Plans a container and places it on its networks: its addresses are taken, for
/// [`create`] (or [`release`]). `adjust` changes the planned spec before it is placed.
pub fn plan(
    state_root: &Path,
    request: &Plan<'_>,
    adjust: impl FnOnce(&mut ContainerSpec),
) -> Result<ContainerSpec, LaunchError> {
    let service = request.service;
    let mut spec = plan::container_spec(&request.ctx, service, &request.overrides)?;
    adjust(&mut spec);
    match (request.networks, &spec.namespaces.net) {
        (Networks::Replica(networks), NamespaceMode::Private) => {
            setup::attach_spec(state_root, &mut spec, service, networks, false)?;
        }
        (Networks::Replica(_), NamespaceMode::Container(name)) => {
            let joined =
                crate::runtime::state::list(state_root)?.into_iter().filter_map(|f| f.spec).find(|s| &s.name == name);
            if let Some(joined) = joined {
                spec.etc = joined.etc;
                spec.hostname = joined.hostname;
            }
        }
        (Networks::OneOff(project), NamespaceMode::Private) if !service.networks.is_empty() => {
            let networks = setup::ensure_networks(state_root, project, service.networks.keys().map(String::as_str))?;
            setup::attach_spec(state_root, &mut spec, service, &networks, true)?;
        }
        (Networks::Build(networks), NamespaceMode::Private) if !service.networks.is_empty() => {
            let resolv_conf = spec.etc.resolv_conf.clone();
            setup::attach_spec(state_root, &mut spec, service, networks, true)?;
            spec.etc.resolv_conf = resolv_conf;
        }
        _ => {}
    }
    Ok(spec)
}

/// Creates a planned container (its process waiting to exec, its interfaces made); on
/// failure its addresses are released.
pub fn create(
    spawner: &Spawner,
    state_root: &Path,
    spec: ContainerSpec,
    options: StartOptions,
) -> Result<Created, LaunchError> {
    // Only a spec holding addresses needs keeping for their release.
    let taken = (!spec.endpoints.is_empty()).then(|| spec.clone());
    Container::create(spawner, state_root, spec, options, &attach_step).map_err(|e| {
        if let Some(taken) = &taken {
            let _ = setup::release(state_root, taken);
        }
        e.into()
    })
}

/// Lets a [`create`]d container exec; on failure its addresses are released.
pub fn run(state_root: &Path, created: Created) -> Result<Container, LaunchError> {
    let taken = (!created.spec().endpoints.is_empty()).then(|| created.spec().clone());
    created.start().map_err(|e| {
        if let Some(taken) = &taken {
            let _ = setup::release(state_root, taken);
        }
        e.into()
    })
}

/// Plans, places, creates and starts a container: [`plan`], [`create`] and [`run`], giving
/// back on failure what was taken. Its addresses are the caller's to [`release`] when it is
/// done with it.
pub fn launch(
    spawner: &Spawner,
    state_root: &Path,
    request: &Plan<'_>,
    options: StartOptions,
    adjust: impl FnOnce(&mut ContainerSpec),
) -> Result<Container, LaunchError> {
    let spec = plan(state_root, request, adjust)?;
    crate::timing::phase("plan");
    let created = create(spawner, state_root, spec, options)?;
    run(state_root, created)
}

/// Gives back a container's addresses.
pub fn release(state_root: &Path, spec: &ContainerSpec) {
    let _ = setup::release(state_root, spec);
}

/// The runtime's network-attach step: the container's veths, addressed and routed, made in
/// its namespace `netns` before its process goes on.
pub fn attach_step(netns: BorrowedFd<'_>, spec: &ContainerSpec) -> Result<(), String> {
    let interfaces: Vec<_> = spec
        .endpoints
        .iter()
        .map(|e| netlink::Interface {
            host_name: e.host_veth.clone(),
            name: e.interface.clone(),
            bridge: e.bridge.clone(),
            address: e.address,
            mtu: e.mtu,
        })
        .collect();
    let gateway = spec.endpoints.first().map(|e| e.gateway);
    netlink::run(Some(netns), |host, inside| async move {
        match inside {
            Some(inside) => netlink::attach(&host, &inside, netns, &interfaces, gateway).await,
            None => Ok(()),
        }
    })
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Files under `dir` (recursively) whose text contains any of `needles`, as `path: line`.
    fn offenders(dir: &Path, needles: &[&str]) -> Vec<String> {
        let mut found = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
            for entry in entries {
                let path = entry.expect("directory entry").path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text =
                        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
                    for line in text.lines().filter(|l| needles.iter().any(|n| l.contains(n))) {
                        found.push(format!("{}: {}", path.display(), line.trim()));
                    }
                }
            }
        }
        found
    }

    fn src() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
    }

    #[test]
    fn runtime_does_not_import_network() {
        let runtime = src().join("runtime");
        assert!(runtime.join("container.rs").is_file(), "no src/runtime to check");
        let found = offenders(&runtime, &["crate::network", "crate::launch"]);
        assert!(found.is_empty(), "the runtime reaches up into the network layer:\n{}", found.join("\n"));
    }

    #[test]
    fn nothing_below_the_supervisor_imports_it() {
        // The layers the supervisor (and `launch`) are built on; `cli` is the only one above.
        let below = ["runtime", "network", "plan", "image", "spec", "graph", "volume", "build", "watch", "convert"];
        let mut found = Vec::new();
        for layer in below {
            let dir = src().join(layer);
            assert!(dir.is_dir(), "no src/{layer} to check");
            found.extend(offenders(&dir, &["crate::supervisor", "crate::cli"]));
        }
        for file in ["launch.rs", "fsutil.rs", "secure_fs.rs", "timing.rs"] {
            let text = std::fs::read_to_string(src().join(file)).unwrap_or_else(|e| panic!("read src/{file}: {e}"));
            // This file names the modules it checks for; only a `use`/path outside its tests counts.
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            found.extend(
                code.lines()
                    .filter(|l| l.contains("crate::supervisor") || l.contains("crate::cli"))
                    .map(|l| format!("src/{file}: {}", l.trim())),
            );
        }
        assert!(found.is_empty(), "a layer below the supervisor imports it (or the CLI):\n{}", found.join("\n"));
    }
}
