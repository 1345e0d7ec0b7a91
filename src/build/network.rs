//! The network a build's RUN steps use: the build's own, made at its first RUN that wants a
//! network and removed when the build ends — success, failure or interruption — so a CI job
//! that only builds leaves no bridge, rule or record on the host.
//!
//! It is not the project's network, as BuildKit's RUN is not on compose's network either. A
//! build then never touches what `up` made: a build beside a running project (`berth build`,
//! `up --build` converging a running project, watch's rebuild inside the supervisor) neither
//! takes the project's network over nor removes it under the project's containers, and two
//! builds at once each have their own. No project lock is needed for it (`up --build` builds
//! before it takes that lock).
//!
//! Each build network is a one-network pseudo-project `berth-build-<random>` (so its bridge,
//! records and firewall rules are made and removed by the ordinary network code), and the
//! build holds an flock on `build-networks/<name>.lock` while it lives. A build killed outright
//! (SIGKILL) cannot remove its network; the next build that makes one removes every build
//! network whose lock nobody holds.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::BuildError;
use crate::network::setup;
use crate::network::store::NetworkRecord;
use crate::spec::Project;
use crate::spec::model::Network;

/// The prefix of build networks' pseudo-projects (and so of their networks' names).
pub const PREFIX: &str = "berth-build-";

/// The key of the build network in its pseudo-project (its name is `<project>_default`).
const KEY: &str = "default";

/// A build's own network, removed by [`BuildNetwork::remove`] (or, failing that, on drop).
#[derive(Debug)]
pub struct BuildNetwork {
    state_root: PathBuf,
    project: Project,
    networks: BTreeMap<String, NetworkRecord>,
    lock_path: PathBuf,
    lock: Option<Flock<File>>,
    removed: bool,
}

fn lock_dir(state_root: &Path) -> PathBuf {
    state_root.join("build-networks")
}

impl BuildNetwork {
    /// Makes a new build network (bridge, addresses, NAT rules), after removing those of
    /// builds that died without removing theirs.
    pub fn make(state_root: &Path) -> Result<BuildNetwork, BuildError> {
        sweep(state_root);
        let dir = lock_dir(state_root);
        crate::secure_fs::private_dir(&dir).map_err(|e| BuildError::io(&dir, e))?;
        let name = format!("{PREFIX}{}", crate::plan::random_hex(6)?);
        let lock_path = dir.join(format!("{name}.lock"));
        // The lock first: from here on a sweep sees the network as alive until we drop it.
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&lock_path)
            .map_err(|e| BuildError::io(&lock_path, e))?;
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock)
            .map_err(|(_, e)| BuildError::Sys { what: format!("flock {}", lock_path.display()), source: e })?;
        let mut project = Project { name, ..Project::default() };
        project.networks.insert(KEY.to_owned(), Network::default());
        let mut network = BuildNetwork {
            state_root: state_root.to_path_buf(),
            project,
            networks: BTreeMap::new(),
            lock_path,
            lock: Some(lock),
            removed: false,
        };
        // On failure `network` is dropped, which removes whatever part was made.
        network.networks = setup::ensure_networks(state_root, &network.project, [KEY])?;
        Ok(network)
    }

    /// The networks a RUN container joins, by key.
    pub fn networks(&self) -> &BTreeMap<String, NetworkRecord> {
        &self.networks
    }

    /// The key RUN containers attach with.
    pub fn key(&self) -> &'static str {
        KEY
    }

    /// The network's name (`berth-build-<random>_default`).
    pub fn name(&self) -> String {
        format!("{}_{KEY}", self.project.name)
    }

    /// Removes the bridge, rules and records, then the lock. Every RUN container must be
    /// gone (they are: each is destroyed when its step ends).
    pub fn remove(mut self) -> Result<(), BuildError> {
        self.remove_now()
    }

    fn remove_now(&mut self) -> Result<(), BuildError> {
        if self.removed {
            return Ok(());
        }
        self.removed = true;
        let result = setup::remove_networks(&self.state_root, &self.project.name);
        // Kept while anything is left, so the next build's sweep removes the rest.
        if result.is_ok() {
            let _ = std::fs::remove_file(&self.lock_path);
        }
        self.lock = None;
        result.map_err(BuildError::from)
    }
}

impl Drop for BuildNetwork {
    fn drop(&mut self) {
        let _ = self.remove_now();
    }
}

/// Removes the networks of builds that are gone: those whose lock file nobody holds.
pub fn sweep(state_root: &Path) {
    let dir = lock_dir(state_root);
    let Ok(entries) = std::fs::read_dir(&dir) else { return };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(project) = file_name.to_str().and_then(|n| n.strip_suffix(".lock")) else { continue };
        if !project.starts_with(PREFIX) {
            continue;
        }
        let path = entry.path();
        let Ok(file) = File::open(&path) else { continue };
        // Held: its build is alive.
        let Ok(_held) = Flock::lock(file, FlockArg::LockExclusiveNonblock) else { continue };
        if setup::remove_networks(state_root, project).is_ok() {
            let _ = std::fs::remove_file(&path);
        }
    }
}
