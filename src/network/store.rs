//! Networks on disk: what berth made, recorded before the kernel objects exist, so a later
//! berth process — `down`, or the next `up` after a crash — finds and removes them, and a
//! network keeps its subnet for as long as it exists.
//!
//! Layout under the state root: `networks/<name>.json` (a [`NetworkRecord`]),
//! `networks/<name>.leases` (container addresses) and `networks/.lock`, an exclusive flock that
//! every change holds, since one-off `run`s allocate addresses beside the project's supervisor.

use std::collections::BTreeMap;
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::ipam::Addressing;

/// A network berth made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRecord {
    /// Kernel-side name, `<project>_<key>` unless `name:` says otherwise.
    pub name: String,
    /// The project that made it and removes it.
    pub project: String,
    /// The key in the project's `networks:`.
    pub key: String,
    /// Its bridge (`berthbr…`).
    pub bridge: String,
    /// Subnet, gateway, range.
    pub addressing: Addressing,
    /// `internal: true`: no route out.
    pub internal: bool,
    /// The bridge's MTU (`driver_opts: com.docker.network.driver.mtu`).
    #[serde(default)]
    pub mtu: Option<u32>,
    /// Default host address of published ports
    /// (`driver_opts: com.docker.network.bridge.host_binding_ipv4`).
    #[serde(default)]
    pub host_binding: Option<Ipv4Addr>,
}

/// A container address held on a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The container's id.
    pub container: String,
    /// When the lease was taken (Unix seconds).
    pub since: u64,
}

/// A lease whose container directory does not exist after this long is from a creation that
/// died: its address is free again.
const UNCLAIMED_LEASE_SECS: u64 = 60;

/// A failure reading or writing network state.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct StoreError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    pub source: std::io::Error,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError { path: path.to_path_buf(), source }
}

/// The network directory, held locked.
#[derive(Debug)]
pub struct NetworkStore {
    dir: PathBuf,
    containers: PathBuf,
    _lock: Flock<fs::File>,
}

impl NetworkStore {
    /// Opens (creating) the directory under `state_root` and takes its lock; blocks while
    /// another berth process holds it.
    pub fn lock(state_root: &Path) -> Result<NetworkStore, StoreError> {
        let dir = state_root.join("networks");
        crate::secure_fs::private_dir(&dir).map_err(io_error(&dir))?;
        let path = dir.join(".lock");
        let file =
            fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io_error(&path))?;
        let lock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| StoreError { path: path.clone(), source: e.into() })?;
        Ok(NetworkStore { dir, containers: crate::runtime::state::containers_dir(state_root), _lock: lock })
    }

    fn record_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    fn leases_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.leases"))
    }

    /// Every recorded network.
    pub fn all(&self) -> Result<Vec<NetworkRecord>, StoreError> {
        let mut records = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_error(&self.dir))?.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "json") {
                let text = fs::read(&path).map_err(io_error(&path))?;
                // A record that does not parse is not berth's to act on.
                if let Ok(record) = serde_json::from_slice(&text) {
                    records.push(record);
                }
            }
        }
        records.sort_by(|a: &NetworkRecord, b| a.name.cmp(&b.name));
        Ok(records)
    }

    /// The network named `name`, if recorded.
    pub fn get(&self, name: &str) -> Result<Option<NetworkRecord>, StoreError> {
        let path = self.record_path(name);
        match fs::read(&path) {
            Ok(text) => Ok(serde_json::from_slice(&text).ok()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(&path)(e)),
        }
    }

    /// Records a network (before its bridge is made).
    pub fn save(&self, record: &NetworkRecord) -> Result<(), StoreError> {
        write_atomic(&self.record_path(&record.name), &serde_json::to_vec_pretty(record).unwrap_or_default())
    }

    /// Forgets a network and its leases.
    pub fn forget(&self, name: &str) -> Result<(), StoreError> {
        for path in [self.leases_path(name), self.record_path(name)] {
            match fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_error(&path)(e)),
                _ => {}
            }
        }
        Ok(())
    }

    /// The addresses held on a network, stale leases dropped.
    pub fn leases(&self, name: &str) -> Result<BTreeMap<Ipv4Addr, Lease>, StoreError> {
        let path = self.leases_path(name);
        let mut leases: BTreeMap<Ipv4Addr, Lease> = match fs::read(&path) {
            Ok(text) => serde_json::from_slice(&text).unwrap_or_default(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(io_error(&path)(e)),
        };
        let now = crate::runtime::state::now();
        leases.retain(|_, lease| {
            self.containers.join(&lease.container).exists() || now.saturating_sub(lease.since) < UNCLAIMED_LEASE_SECS
        });
        Ok(leases)
    }

    /// Replaces a network's leases.
    pub fn save_leases(&self, name: &str, leases: &BTreeMap<Ipv4Addr, Lease>) -> Result<(), StoreError> {
        write_atomic(&self.leases_path(name), &serde_json::to_vec(leases).unwrap_or_default())
    }

    /// Gives up every address container `id` holds on `network`.
    pub fn release(&self, network: &str, id: &str) -> Result<(), StoreError> {
        let mut leases = self.leases(network)?;
        let before = leases.len();
        leases.retain(|_, lease| lease.container != id);
        if leases.len() != before { self.save_leases(network, &leases) } else { Ok(()) }
    }
}

fn write_atomic(path: &Path, data: &[u8]) -> Result<(), StoreError> {
    crate::fsutil::write_atomic(path, data).map_err(io_error(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str) -> NetworkRecord {
        NetworkRecord {
            name: name.into(),
            project: "p".into(),
            key: "default".into(),
            bridge: "berthbr00000000".into(),
            addressing: super::super::ipam::addressing(name, None, &[]).expect("a subnet"),
            internal: false,
            mtu: None,
            host_binding: None,
        }
    }

    #[test]
    fn records_round_trip_and_forgetting_removes_leases_too() {
        let root = tempfile::tempdir().expect("tempdir");
        let store = NetworkStore::lock(root.path()).expect("lock");
        store.save(&record("p_default")).expect("save");
        store.save(&record("p_back")).expect("save");
        let names: Vec<_> = store.all().expect("all").into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["p_back", "p_default"]);
        let mut leases = BTreeMap::new();
        leases.insert(
            Ipv4Addr::new(172, 17, 0, 2),
            Lease { container: "abc".into(), since: crate::runtime::state::now() },
        );
        store.save_leases("p_default", &leases).expect("leases");
        assert_eq!(store.leases("p_default").expect("leases").len(), 1, "a fresh lease is kept");
        store.forget("p_default").expect("forget");
        assert_eq!(store.get("p_default").expect("get"), None);
        assert!(store.leases("p_default").expect("leases").is_empty());
    }

    #[test]
    fn an_old_lease_without_a_container_is_dropped_and_one_with_a_container_kept() {
        let root = tempfile::tempdir().expect("tempdir");
        let store = NetworkStore::lock(root.path()).expect("lock");
        fs::create_dir_all(crate::runtime::state::containers_dir(root.path()).join("alive")).expect("dir");
        let mut leases = BTreeMap::new();
        leases.insert(Ipv4Addr::new(10, 0, 0, 2), Lease { container: "alive".into(), since: 0 });
        leases.insert(Ipv4Addr::new(10, 0, 0, 3), Lease { container: "gone".into(), since: 0 });
        store.save_leases("n", &leases).expect("save");
        let kept: Vec<_> = store.leases("n").expect("leases").into_values().map(|l| l.container).collect();
        assert_eq!(kept, ["alive"]);
        store.release("n", "alive").expect("release");
        assert!(store.leases("n").expect("leases").is_empty());
    }
}
