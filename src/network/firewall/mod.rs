//! Packet-filter rules for berth's bridge networks: forwarding, masquerade, published ports and
//! the embedded DNS server's port, installed through the host's own tools — `iptables-restore`
//! or `nft` — one batch (one process) per operation, like netavark does with `nft`.
//!
//! Every rule carries an owner tag, `berth <project> net:<network>` or
//! `berth <project> ctr:<container>` (an iptables comment or an nft rule comment), so removal
//! reads the live ruleset and needs no state of its own: it works after a crash as well as after
//! an orderly `down`. Adding is idempotent the same way: an add first deletes what the ruleset
//! already holds for that owner, in the same atomic batch, so the owner's rules are replaced.
//!
//! The rules (iptables terms; the nft table mirrors them):
//! - filter `BERTH-FORWARD`, jumped to from the top of `FORWARD`: a normal network accepts what
//!   enters from its bridge, what leaves to it as part of an established or a DNATed (published)
//!   connection, and drops anything else that comes from outside the bridge — which keeps other
//!   networks and routed hosts away from unpublished container ports, as docker's isolation and
//!   direct-routing rules do. An internal network accepts bridge-to-bridge and drops the rest
//!   in and out. Drops are inserted at the top so that no network's accept can let traffic into
//!   another network that drops it. These accepts are what make bridged traffic work on a host
//!   whose `FORWARD` policy is DROP (docker sets that).
//! - filter `BERTH-INPUT`, from the top of `INPUT`: DNS (udp and tcp 53) to the gateway, where
//!   berth's DNS server listens; and a drop of packets from the bridge to 127.0.0.0/8, because
//!   `route_localnet` (below) would otherwise let containers reach the host's loopback services.
//! - nat `BERTH-POSTROUTING`: masquerade of the subnet leaving by another interface; of
//!   127.0.0.0/8 entering the bridge (ports published on the host's loopback, DNATed in OUTPUT);
//!   and of the subnet's own DNATed connections back into the bridge (hairpin: a container that
//!   reaches a published port through a host address, its own included, gets answers).
//! - nat `BERTH-PREROUTING` and `BERTH-OUTPUT`, jumped to for local destinations only: one DNAT
//!   per published port, so it answers from outside and from the host itself (127.0.0.1 and the
//!   host's own addresses). The PREROUTING DNAT has no `! -i <bridge>` (docker's): berth runs no
//!   userland proxy, so containers reach published ports through the host by hairpin NAT
//!   instead. A port published on a loopback address gets no PREROUTING DNAT at all.
//!
//! The jumps sit first in the built-in chains, before docker's `DOCKER-USER`: rules a user put
//! there do not apply to berth's networks. Where `br_netfilter` is loaded (docker loads it, and
//! it is on this CI machine), a container reaching its *own* published port through a host
//! address also needs `hairpin_mode` on its bridge port; setting that is the bridge code's job.
//!
//! [`Backend::add_network`] also sets `net.ipv4.ip_forward=1`, left on afterwards like docker does
//! (other software may rely on it by then), and `route_localnet=1` on a normal network's bridge
//! so that the host's 127.0.0.1 can be DNATed to a container.
//!
//! Operations take an exclusive lock on [`LOCK_PATH`] (an empty file, left in place like
//! `/run/xtables.lock`): each reads the ruleset, then writes a batch computed from it, and two
//! berth processes must not interleave those steps (declaring an existing iptables chain in a
//! `--noflush` batch flushes it, for one).
//!
//! Everything acts on the calling thread's network namespace: the tools are spawned from it.

mod iptables;
mod nft;

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};

use ipnet::Ipv4Net;

/// The lock that serialises berth's firewall changes between processes.
pub const LOCK_PATH: &str = "/run/berth-firewall.lock";

/// Which tool installs the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `iptables-restore`/`iptables-save`, whatever their own backend (nf_tables or legacy):
    /// chains `BERTH-*` in the `filter` and `nat` tables, jumped to from the built-in chains.
    Iptables,
    /// `nft`: one table, `ip berth`, with its own base chains (`forward`, `input`, `prerouting`,
    /// `output`, `postrouting`). Its accepts cannot override a drop in another table at the same
    /// hook (docker's `FORWARD` DROP policy, for one), which is why [`detect`] prefers iptables.
    Nftables,
}

/// The rules a network needs.
#[derive(Debug, Clone)]
pub struct NetworkRules<'a> {
    /// The compose project.
    pub project: &'a str,
    /// The network's name, e.g. `myapp_default`.
    pub network: &'a str,
    /// The bridge; it must exist (its `route_localnet` is set) and its name start with `berth`.
    pub bridge: &'a str,
    /// The network's subnet.
    pub subnet: Ipv4Net,
    /// The bridge's address, where the DNS server listens.
    pub gateway: Ipv4Addr,
    /// No traffic in or out of the bridge, no masquerade (`internal: true`).
    pub internal: bool,
}

/// A published port's transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// The protocol's name as both iptables and nft spell it.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// One published port of a container.
#[derive(Debug, Clone)]
pub struct PortRule<'a> {
    /// The compose project.
    pub project: &'a str,
    /// The container's name.
    pub container: &'a str,
    /// The protocol.
    pub protocol: Protocol,
    /// The host address the port is published on; `None` or 0.0.0.0 for all of them.
    pub host_ip: Option<Ipv4Addr>,
    /// The port on the host.
    pub host_port: u16,
    /// The container's address on the network the port is published to.
    pub container_ip: Ipv4Addr,
    /// The port in the container.
    pub container_port: u16,
}

impl<'a> PortRule<'a> {
    /// The rules of the ports `published` for `container` of `project`, forwarded to its
    /// address `container_ip`.
    pub fn for_published(
        project: &'a str,
        container: &'a str,
        published: &[super::ports::Published],
        container_ip: Ipv4Addr,
    ) -> Vec<PortRule<'a>> {
        published
            .iter()
            .map(|p| PortRule {
                project,
                container,
                protocol: p.protocol,
                host_ip: p.host_ip,
                host_port: p.host_port,
                container_ip,
                container_port: p.container_port,
            })
            .collect()
    }

    /// The host address to match, `None` for all.
    fn host_address(&self) -> Option<Ipv4Addr> {
        self.host_ip.filter(|ip| !ip.is_unspecified())
    }

    /// Whether the port answers from outside the host, not only from the host itself.
    fn reachable_from_outside(&self) -> bool {
        !self.host_address().is_some_and(|ip| ip.is_loopback())
    }
}

/// Why a firewall operation failed.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    /// Neither tool is installed.
    #[error(
        "neither iptables-restore nor nft was found in PATH: install one \
         (apt-get install iptables, or apt-get install nftables)"
    )]
    NoBackend,
    /// `BERTH_FIREWALL` names no backend, or one whose tool is missing.
    #[error("BERTH_FIREWALL={value:?}: {why}")]
    Forced {
        /// The variable's value.
        value: String,
        /// What is wrong with it.
        why: String,
    },
    /// A project, network, container or bridge name that cannot be put in a rule.
    #[error("{what} {value:?} cannot be used in a firewall rule: {why}")]
    Name {
        /// `project`, `network`, `container` or `bridge`.
        what: &'static str,
        /// The name.
        value: String,
        /// The rule it breaks.
        why: &'static str,
    },
    /// A tool could not be started.
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A tool failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// Its error output, with the offending batch line when the tool names one.
        stderr: String,
    },
    /// A tool's output was not what berth reads.
    #[error("cannot read the output of `{command}`: {why}")]
    Output {
        /// The command line.
        command: String,
        /// What was wrong.
        why: String,
    },
    /// A sysctl could not be set.
    #[error("cannot set {path} to 1: {source}")]
    Sysctl {
        /// The file under /proc/sys.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The lock could not be taken.
    #[error("cannot lock {path}: {source}")]
    Lock {
        /// The lock file.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// The backend to use: the one `BERTH_FIREWALL` (`iptables` or `nftables`) forces, else iptables
/// when `iptables-restore` is in PATH — docker's rules, its `FORWARD` DROP policy included, live
/// there, and an accept in a separate nft table cannot override another table's drop — else
/// nftables when `nft` is.
pub fn detect() -> Result<Backend, FirewallError> {
    let forced = std::env::var_os("BERTH_FIREWALL").map(|v| v.to_string_lossy().into_owned());
    choose(forced.as_deref().filter(|v| !v.is_empty()), in_path)
}

/// [`detect`]'s decision, given the variable's value and which tools exist.
fn choose(forced: Option<&str>, exists: impl Fn(&str) -> bool) -> Result<Backend, FirewallError> {
    let Some(value) = forced else {
        return if exists("iptables-restore") {
            Ok(Backend::Iptables)
        } else if exists("nft") {
            Ok(Backend::Nftables)
        } else {
            Err(FirewallError::NoBackend)
        };
    };
    let (backend, tool, package) = match value {
        "iptables" => (Backend::Iptables, "iptables-restore", "iptables"),
        "nftables" | "nft" => (Backend::Nftables, "nft", "nftables"),
        _ => return Err(FirewallError::Forced { value: value.into(), why: "expected iptables or nftables".into() }),
    };
    if exists(tool) {
        Ok(backend)
    } else {
        Err(FirewallError::Forced {
            value: value.into(),
            why: format!("{tool} is not in PATH (apt-get install {package})"),
        })
    }
}

/// Whether an executable file `name` is in one of PATH's directories.
fn in_path(name: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Some(path) = std::env::var_os("PATH") else { return false };
    std::env::split_paths(&path)
        .any(|dir| std::fs::metadata(dir.join(name)).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

impl Backend {
    /// Installs everything network `rules.network` needs — replacing what the ruleset already
    /// holds for it, so adding twice leaves one copy — and sets `net.ipv4.ip_forward=1` (left
    /// on) and, unless the network is internal, the bridge's `route_localnet=1`.
    pub fn add_network(&self, rules: &NetworkRules) -> Result<(), FirewallError> {
        check_project(rules.project)?;
        check_name("network", rules.network)?;
        check_bridge(rules.bridge)?;
        check_tag(&Owner::Network { project: rules.project, network: rules.network })?;
        set_sysctl("/proc/sys/net/ipv4/ip_forward")?;
        if !rules.internal {
            set_sysctl(&format!("/proc/sys/net/ipv4/conf/{}/route_localnet", rules.bridge))?;
        }
        let tag = Owner::Network { project: rules.project, network: rules.network }.tag();
        let owned = |comment: &str| comment == tag;
        let _lock = lock()?;
        match self {
            Backend::Iptables => iptables::replace(&owned, iptables::network_rules(rules)),
            Backend::Nftables => nft::replace(&owned, nft::network_rules(rules)),
        }
    }

    /// Installs the DNAT rules of published ports in one batch, replacing the port rules the
    /// ruleset already holds for every container named in `rules`: give all of a container's
    /// ports in one call.
    pub fn add_ports(&self, rules: &[PortRule]) -> Result<(), FirewallError> {
        for rule in rules {
            check_project(rule.project)?;
            check_name("container", rule.container)?;
            check_tag(&Owner::Container { project: rule.project, container: rule.container })?;
        }
        if rules.is_empty() {
            return Ok(());
        }
        let tags: Vec<String> =
            rules.iter().map(|p| Owner::Container { project: p.project, container: p.container }.tag()).collect();
        let owned = |comment: &str| tags.iter().any(|t| t == comment);
        let _lock = lock()?;
        match self {
            Backend::Iptables => iptables::replace(&owned, rules.iter().flat_map(iptables::port_rules).collect()),
            Backend::Nftables => nft::replace(&owned, rules.iter().flat_map(nft::port_rules).collect()),
        }
    }

    /// Removes the port rules of container `container` of `project`.
    pub fn remove_container(&self, project: &str, container: &str) -> Result<(), FirewallError> {
        check_project(project)?;
        check_name("container", container)?;
        let tag = Owner::Container { project, container }.tag();
        self.remove(&|comment| comment == tag)
    }

    /// Removes the rules of network `network` of `project`.
    pub fn remove_network(&self, project: &str, network: &str) -> Result<(), FirewallError> {
        check_project(project)?;
        check_name("network", network)?;
        let tag = Owner::Network { project, network }.tag();
        self.remove(&|comment| comment == tag)
    }

    /// Removes every rule of `project`, reading the owners from the ruleset alone (for `down`
    /// and for recovery after a crash).
    pub fn remove_project(&self, project: &str) -> Result<(), FirewallError> {
        check_project(project)?;
        self.remove(&|comment| of_project(comment, project))
    }

    /// Removes berth's chains (iptables, per table) or table (nft) when no rule is left in them,
    /// so an idle host has no trace of berth.
    pub fn remove_if_unused(&self) -> Result<(), FirewallError> {
        let _lock = lock()?;
        match self {
            Backend::Iptables => iptables::remove_if_unused(),
            Backend::Nftables => nft::remove_if_unused(),
        }
    }

    fn remove(&self, owned: &dyn Fn(&str) -> bool) -> Result<(), FirewallError> {
        let _lock = lock()?;
        match self {
            Backend::Iptables => iptables::remove(owned),
            Backend::Nftables => nft::remove(owned),
        }
    }
}

/// Who a rule belongs to.
#[derive(Debug, Clone, Copy)]
enum Owner<'a> {
    Network { project: &'a str, network: &'a str },
    Container { project: &'a str, container: &'a str },
}

impl Owner<'_> {
    /// The rule comment that names the owner.
    fn tag(&self) -> String {
        match self {
            Owner::Network { project, network } => format!("berth {project} net:{network}"),
            Owner::Container { project, container } => format!("berth {project} ctr:{container}"),
        }
    }
}

/// Whether a rule comment names an owner in `project`: project names have no spaces, so the
/// space after the name keeps project `a` from matching `ab`'s rules.
fn of_project(comment: &str, project: &str) -> bool {
    comment.strip_prefix("berth ").and_then(|rest| rest.strip_prefix(project)).is_some_and(|rest| {
        rest.strip_prefix(' ').is_some_and(|owner| owner.starts_with("net:") || owner.starts_with("ctr:"))
    })
}

/// The longest comment nft keeps (iptables keeps 255 characters).
const MAX_TAG: usize = 127;

fn check_tag(owner: &Owner) -> Result<(), FirewallError> {
    let tag = owner.tag();
    if tag.len() <= MAX_TAG {
        return Ok(());
    }
    let (what, value) = match owner {
        Owner::Network { network, .. } => ("network", network),
        Owner::Container { container, .. } => ("container", container),
    };
    Err(FirewallError::Name {
        what,
        value: (*value).into(),
        why: "with the project's name it makes a tag over 127 bytes",
    })
}

/// Project names are `[a-z0-9][a-z0-9_-]*`, as compose normalises them.
fn check_project(project: &str) -> Result<(), FirewallError> {
    let first_ok = project.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let rest_ok = project.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(FirewallError::Name { what: "project", value: project.into(), why: "expected [a-z0-9][a-z0-9_-]*" })
    }
}

/// Network and container names are `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
fn check_name(what: &'static str, name: &str) -> Result<(), FirewallError> {
    let first_ok = name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
    let rest_ok = name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(FirewallError::Name { what, value: name.into(), why: "expected [a-zA-Z0-9][a-zA-Z0-9_.-]*" })
    }
}

/// Bridges are berth's own: `berth…`, an interface name (at most 15 bytes) that is also safe
/// in a /proc/sys path and unquoted in a rule.
fn check_bridge(bridge: &str) -> Result<(), FirewallError> {
    let why = if !bridge.starts_with("berth") {
        "berth's bridges are named berth…"
    } else if bridge.len() > 15 {
        "an interface name has at most 15 bytes"
    } else if !bridge.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-')) {
        "expected [a-zA-Z0-9_-]"
    } else {
        return Ok(());
    };
    Err(FirewallError::Name { what: "bridge", value: bridge.into(), why })
}

fn set_sysctl(path: &str) -> Result<(), FirewallError> {
    // Reading first spares a write that would be a no-op, and the need for a writable /proc/sys
    // on a host where the value is already set.
    if std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "1") {
        return Ok(());
    }
    std::fs::write(path, "1").map_err(|source| FirewallError::Sysctl { path: path.into(), source })
}

/// Takes the lock that serialises berth's firewall changes; released when dropped.
fn lock() -> Result<nix::fcntl::Flock<File>, FirewallError> {
    let path = if Path::new("/run").is_dir() {
        Path::new(LOCK_PATH).to_path_buf()
    } else {
        std::env::temp_dir().join("berth-firewall.lock")
    };
    let error = |source| FirewallError::Lock { path: path.display().to_string(), source };
    let file = File::options().create(true).truncate(false).write(true).open(&path).map_err(error)?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, errno)| error(std::io::Error::from(errno)))
}

/// Runs `program args`, feeding it `input`, and returns its standard output.
fn run(program: &str, args: &[&str], input: Option<&str>) -> Result<String, FirewallError> {
    use std::io::Write;
    let command = std::iter::once(program).chain(args.iter().copied()).collect::<Vec<_>>().join(" ");
    let spawn_error = |source| FirewallError::Spawn { command: command.clone(), source };
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_error)?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        // A tool that fails early closes its input: its stderr then says why, so a write
        // error here is not the error to report.
        let _ = stdin.write_all(text.as_bytes());
    }
    let output = child.wait_with_output().map_err(spawn_error)?;
    if !output.status.success() {
        let mut stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        if let Some(line) = input.and_then(|text| failed_line(&stderr, text)) {
            stderr.push_str(&format!(" [the line: {line}]"));
        }
        return Err(FirewallError::Command { command, status: output.status, stderr });
    }
    String::from_utf8(output.stdout).map_err(|_| FirewallError::Output { command, why: "not UTF-8".into() })
}

/// The batch line an `iptables-restore: line N failed` message points at.
fn failed_line<'t>(stderr: &str, input: &'t str) -> Option<&'t str> {
    let after = stderr.split("line ").nth(1)?;
    let number: usize = after.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()?;
    input.lines().nth(number.checked_sub(1)?)
}

#[cfg(test)]
mod tests;
