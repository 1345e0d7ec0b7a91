//! What one container should be: pure data, made by [`crate::plan`] from a service and its
//! image, carried to the spawner, and recorded in the container's state. Nothing here touches
//! the kernel; every path is already resolved on the host side except the ones that can only be
//! resolved inside the container (the user, the executable on `PATH`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One container, fully described.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// Unique id, 32 lowercase hex characters: names the state directory and the cgroup.
    pub id: String,
    /// The container's name, `<project>-<service>-<n>` or `container_name`.
    pub name: String,
    /// The project the container belongs to.
    pub project: String,
    /// The service it runs, named in every error.
    pub service: String,
    /// The root filesystem.
    pub rootfs: Rootfs,
    /// The process to run.
    pub process: Process,
    /// Host name inside the container (its own UTS namespace only).
    pub hostname: String,
    /// NIS domain name; empty for none.
    #[serde(default)]
    pub domainname: String,
    /// Which namespaces are new, the host's, or another container's.
    pub namespaces: Namespaces,
    /// Volumes, binds and tmpfs mounts, in the order they are mounted (parents first).
    #[serde(default)]
    pub mounts: Vec<Mount>,
    /// Contents of the files the init layer mounts at /etc/hosts, /etc/hostname and
    /// /etc/resolv.conf.
    pub etc: EtcFiles,
    /// cgroup limits.
    #[serde(default)]
    pub resources: Resources,
    /// Namespaced sysctls written in the container (`net.*`, `kernel.shm*`, ...), checked by the plan.
    #[serde(default)]
    pub sysctls: BTreeMap<String, String>,
    /// `privileged: true`: all capabilities, no masked or read-only /proc and /sys paths.
    #[serde(default)]
    pub privileged: bool,
    /// `read_only: true`: the root filesystem is mounted read-only.
    #[serde(default)]
    pub read_only: bool,
    /// Size of /dev/shm in bytes.
    pub shm_size: u64,
    /// `init: true`: berth's built-in init is PID 1 and runs the process as its child.
    #[serde(default)]
    pub init: bool,
    /// The container's interfaces on bridge networks, the first one's gateway the default route.
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    /// The service's config hash when the supervisor planned it (empty for one-offs): a kept
    /// container whose hash no longer matches is recreated, not started again.
    #[serde(default)]
    pub config_hash: String,
}

/// A container's interface on a bridge network: a veth pair whose host end is a port of the
/// network's bridge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The network's kernel-side name (`<project>_<key>`).
    pub network: String,
    /// The network's bridge.
    pub bridge: String,
    /// The interface's name inside the container (`eth0`, ...).
    pub interface: String,
    /// The host end's name (`berthv...`).
    pub host_veth: String,
    /// The container's address, with the network's prefix length.
    pub address: ipnet::Ipv4Net,
    /// The network's gateway (the bridge's address).
    pub gateway: std::net::Ipv4Addr,
    /// The bridge's MTU, when set.
    #[serde(default)]
    pub mtu: Option<u32>,
    /// Names other containers on the network resolve to this address: the container name, the
    /// service name (not for one-offs), `aliases`, and the short id.
    #[serde(default)]
    pub names: Vec<String>,
}

/// Docker's default /dev/shm size: 64 MiB.
pub const DEFAULT_SHM_SIZE: u64 = 64 << 20;

/// The root filesystem: image layers stacked by overlayfs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rootfs {
    /// The directory holding the layers' short links (the store's `l/`); `lower` entries are
    /// relative to it so the mount data stays under a page however many layers there are.
    pub layer_root: PathBuf,
    /// Short link names of the image layers, top layer first (overlayfs `lowerdir` order).
    pub lower: Vec<String>,
    /// Host directories bind-mounted read-only at the same path (the host image's `/usr`).
    #[serde(default)]
    pub host_binds: Vec<PathBuf>,
    /// Mount the overlay `volatile`: its unmount skips the sync of the whole upper filesystem
    /// (every dirty page on the host's disk, then a cache flush). Only for a container whose
    /// upper layer is thrown away when it exits, since after a host crash the layer is not
    /// to be trusted; podman does the same for its `--rm` containers.
    #[serde(default)]
    pub volatile: bool,
    /// The upper directory must hold whole files and directories (a build step's layer):
    /// overlayfs may not record a renamed directory as a redirect to a lower one, nor copy up
    /// only a file's metadata.
    #[serde(default)]
    pub self_contained: bool,
}

/// The container's process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    /// argv; `args[0]` without a `/` is looked up on the container's `PATH` (from `env`).
    pub args: Vec<String>,
    /// The whole environment, `KEY=VALUE`, in order; `HOME` is added in the container when
    /// absent, from the user's passwd entry.
    pub env: Vec<String>,
    /// `user:` as written (`name`, `uid`, `name:group`, `uid:gid`); empty means root. Resolved
    /// in the container's own /etc/passwd and /etc/group.
    #[serde(default)]
    pub user: String,
    /// Extra groups (`group_add`), names or gids.
    #[serde(default)]
    pub additional_groups: Vec<String>,
    /// Working directory, absolute; created when missing, as docker does.
    pub cwd: String,
    /// Allocate a pty in the container's devpts for stdin/stdout/stderr.
    #[serde(default)]
    pub tty: bool,
    /// Keep stdin open (`stdin_open` / `-i`).
    #[serde(default)]
    pub stdin_open: bool,
    /// Capability names (`CAP_CHOWN`, ...): the bounding set, and for root also the effective
    /// and permitted sets. A non-root user gets an empty effective set, as in docker.
    pub capabilities: Vec<String>,
    /// `security_opt: [no-new-privileges]`.
    #[serde(default)]
    pub no_new_privileges: bool,
    /// The seccomp filter (`security_opt: [seccomp=...]`; `privileged` is unconfined).
    #[serde(default)]
    pub seccomp: SeccompPolicy,
    /// Resource limits (`ulimits`).
    #[serde(default)]
    pub rlimits: Vec<Rlimit>,
}

/// Which seccomp filter a process runs under.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeccompPolicy {
    /// docker's default profile, against the process's capabilities.
    #[default]
    Default,
    /// No filter (`seccomp=unconfined`, `privileged: true`).
    Unconfined,
    /// A profile of docker's JSON format, carried whole so the container does not depend on
    /// the file after it was planned.
    Profile {
        /// The file as `security_opt` named it, for messages.
        file: String,
        /// Its text.
        json: String,
    },
}

/// One `setrlimit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    /// The resource, as `libc::RLIMIT_*` (e.g. `RLIMIT_NOFILE` is 7 on Linux).
    pub resource: u32,
    /// Soft limit; `u64::MAX` is unlimited.
    pub soft: u64,
    /// Hard limit; `u64::MAX` is unlimited.
    pub hard: u64,
}

/// Where each shareable namespace comes from. Mount and cgroup namespaces are always new.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespaces {
    /// Network.
    pub net: NamespaceMode,
    /// PID.
    pub pid: NamespaceMode,
    /// IPC.
    pub ipc: NamespaceMode,
    /// UTS (host name); `Host` only with `uts: host`, as docker does.
    pub uts: NamespaceMode,
}

/// One namespace's origin.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NamespaceMode {
    /// A new namespace of the container's own.
    #[default]
    Private,
    /// The host's (berth's own) namespace.
    Host,
    /// Another running container's namespace, by container name (`service:x` resolved by the plan).
    Container(String),
    /// No networking at all: a new network namespace with only `lo` (`network_mode: none`).
    None,
}

/// A mount on top of the root filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// What is mounted.
    pub kind: MountKind,
    /// Absolute path inside the container; resolved inside the root so symlinks cannot escape.
    pub target: String,
    /// Mounted read-only.
    #[serde(default)]
    pub read_only: bool,
}

/// The source of a [`Mount`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MountKind {
    /// A host path, bind-mounted recursively.
    Bind {
        /// Absolute host path.
        source: PathBuf,
        /// Create the host path as a directory when it is missing (the short syntax does).
        create_host_path: bool,
        /// Propagation (`rprivate`, `rslave`, `rshared`, ...); `None` is rprivate.
        #[serde(default)]
        propagation: Option<String>,
    },
    /// A named (or anonymous) volume: a directory under the state root.
    Volume {
        /// The volume's full name (`<project>_<name>`, or a generated one when anonymous).
        name: String,
        /// The directory holding its data (`<root>/volumes/<name>/_data`).
        dir: PathBuf,
        /// Fill a new, empty volume with the image's content at the target (`nocopy: false`).
        copy_up: bool,
    },
    /// A secret or config: a file berth writes into the container's own directory when it
    /// creates the container, bound read-only (and nosuid, nodev) at the target.
    File {
        /// The file's name in the container's directory (`file-<n>`).
        name: String,
        /// Where its bytes come from.
        source: FileSource,
        /// Owner inside the container (no user namespace: the same number on the host).
        uid: u32,
        /// Group.
        gid: u32,
        /// Permission bits (`0o444` unless the service says otherwise).
        mode: u32,
    },
    /// A tmpfs.
    Tmpfs {
        /// Size in bytes; `None` is the kernel default (half of RAM).
        #[serde(default)]
        size: Option<u64>,
        /// Mode of the root directory; `None` is 1777 as docker does.
        #[serde(default)]
        mode: Option<u32>,
    },
}

/// The bytes of a [`MountKind::File`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileSource {
    /// Copied from this host file each time the container is created, so a restart sees an
    /// edited file, as a restarted docker container sees its bind.
    Host(PathBuf),
    /// These bytes: an environment variable's value, or inline `content:`.
    Inline(String),
}

/// Contents of the init layer's files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcFiles {
    /// /etc/hosts.
    pub hosts: String,
    /// /etc/hostname (with its trailing newline).
    pub hostname: String,
    /// /etc/resolv.conf.
    pub resolv_conf: String,
}

/// cgroup limits; `None` leaves the kernel default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// Hard memory limit in bytes (`mem_limit`, `deploy.resources.limits.memory`).
    #[serde(default)]
    pub memory_limit: Option<u64>,
    /// Soft limit in bytes (`mem_reservation`, `deploy.resources.reservations.memory`).
    #[serde(default)]
    pub memory_reservation: Option<u64>,
    /// Memory plus swap in bytes (`memswap_limit`); `-1` is unlimited.
    #[serde(default)]
    pub memory_swap: Option<i64>,
    /// CPU quota in microseconds per `cpu_period` (`cpus` × period, or `cpu_quota`).
    #[serde(default)]
    pub cpu_quota: Option<i64>,
    /// CPU period in microseconds (default 100000 when a quota is set).
    #[serde(default)]
    pub cpu_period: Option<u64>,
    /// Relative CPU weight in cgroup v1 shares (2–262144); converted to a v2 weight on v2.
    #[serde(default)]
    pub cpu_shares: Option<u64>,
    /// Allowed CPUs (`cpuset`), cpuset list syntax.
    #[serde(default)]
    pub cpuset_cpus: Option<String>,
    /// Allowed memory nodes (`cpuset.mems`).
    #[serde(default)]
    pub cpuset_mems: Option<String>,
    /// Maximum number of tasks (`pids_limit`, `deploy.resources.limits.pids`); `-1` or `0` is unlimited.
    #[serde(default)]
    pub pids_limit: Option<i64>,
}
