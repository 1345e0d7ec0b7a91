//! The host name and the files mounted at /etc/hostname, /etc/hosts and /etc/resolv.conf, as
//! docker (libnetwork) writes them.

use std::net::IpAddr;

use crate::runtime::spec::{EtcFiles, NamespaceMode, Namespaces};
use crate::spec::Service;

use super::{PlanContext, PlanError, invalid, other_strings};

/// docker's /etc/hosts before any entry of the container's own.
pub const DEFAULT_HOSTS: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n";

/// The container's host name (see [`super::container_spec`]); `hostname:` conflicts with a
/// joined network namespace and with `uts: host`, as it does in docker.
pub(super) fn hostname(
    ctx: &PlanContext<'_>,
    service: &Service,
    ns: &Namespaces,
    id: &str,
) -> Result<String, PlanError> {
    let own = service.hostname.as_deref().filter(|h| !h.is_empty());
    if let Some(name) = own {
        if let NamespaceMode::Container(_) = ns.net {
            return Err(invalid(
                service,
                "hostname",
                "conflicting options: hostname and network_mode service: or container:",
            ));
        }
        if ns.uts == NamespaceMode::Host {
            return Err(invalid(service, "hostname", "conflicting options: hostname and uts: host"));
        }
        return Ok(name.to_owned());
    }
    if ns.net == NamespaceMode::Host || ns.uts == NamespaceMode::Host {
        return Ok(ctx.host_hostname.trim().to_owned());
    }
    Ok(id.chars().take(12).collect())
}

/// The three files. With `network_mode: host` and no overrides the container sees the host's
/// hosts and resolv.conf as they are, since it shares the host's network.
///
/// `extra_hosts` lines are appended in docker's `ADDRESS\tNAME` form; an address of
/// `host-gateway` is left as written here and replaced by the network layer, which knows the
/// gateway. The line for the container's own address is the network layer's to add, too.
pub(super) fn etc_files(
    ctx: &PlanContext<'_>,
    service: &Service,
    ns: &Namespaces,
    hostname: &str,
) -> Result<EtcFiles, PlanError> {
    let dns_opt = other_strings(service, "dns_opt");
    if let NamespaceMode::Container(_) = ns.net {
        // docker refuses these with a joined network: the joined container's files are used.
        for (key, set) in [
            ("dns", !service.dns.is_empty()),
            ("dns_search", !service.dns_search.is_empty()),
            ("dns_opt", !dns_opt.is_empty()),
            ("extra_hosts", !service.extra_hosts.is_empty()),
        ] {
            if set {
                return Err(invalid(
                    service,
                    key,
                    "conflicting options: cannot be set with network_mode service: or container:",
                ));
            }
        }
    }
    let host_net = ns.net == NamespaceMode::Host;
    let hosts = if host_net && service.extra_hosts.is_empty() {
        ctx.host_hosts.to_owned()
    } else {
        let mut hosts = DEFAULT_HOSTS.to_owned();
        for (name, addresses) in &service.extra_hosts {
            for address in addresses {
                hosts.push_str(&format!("{address}\t{name}\n"));
            }
        }
        hosts
    };
    let overridden = !service.dns.is_empty() || !service.dns_search.is_empty() || !dns_opt.is_empty();
    let resolv_conf = if host_net && !overridden {
        ctx.host_resolv_conf.to_owned()
    } else {
        resolv_conf(ctx.host_resolv_conf, &service.dns, &service.dns_search, &dns_opt)
    };
    Ok(EtcFiles { hosts, hostname: format!("{hostname}\n"), resolv_conf })
}

/// A `nameserver` line's address, when the line is one.
fn nameserver(line: &str) -> Option<&str> {
    let mut words = line.split_whitespace();
    (words.next() == Some("nameserver")).then(|| words.next()).flatten()
}

/// Whether a nameserver is on the host's loopback (`127.0.0.0/8`, `::1`), which a container's
/// own network namespace cannot reach — a systemd-resolved stub, for one.
fn is_loopback(address: &str) -> bool {
    let bare = address.split('%').next().unwrap_or(address);
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The words after the last line starting with `keyword` (resolv.conf's last one wins).
fn last_words(text: &str, keyword: &str) -> Option<Vec<String>> {
    text.lines().rev().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some(keyword)).then(|| words.map(str::to_owned).collect())
    })
}

/// A container's resolv.conf from the host's, as docker builds it.
///
/// Without `dns`, `dns_search` or `dns_opt` it is the host's file minus loopback nameservers.
/// With any of them it is rebuilt from three parts — `search`, `nameserver`s and `options` —
/// each the service's when given, else the host's (`dns_search: ["."]` means none). When no
/// nameserver is left, none is written: the network layer's embedded DNS server adds itself.
pub fn resolv_conf(host: &str, dns: &[String], dns_search: &[String], dns_opt: &[String]) -> String {
    if dns.is_empty() && dns_search.is_empty() && dns_opt.is_empty() {
        let mut out = String::new();
        for line in host.lines() {
            if nameserver(line).is_some_and(is_loopback) {
                continue;
            }
            out.push_str(line);
            out.push('\n');
        }
        return out;
    }
    let servers: Vec<String> = if dns.is_empty() {
        host.lines().filter_map(nameserver).filter(|a| !is_loopback(a)).map(str::to_owned).collect()
    } else {
        dns.to_vec()
    };
    let search =
        if dns_search.is_empty() { last_words(host, "search").unwrap_or_default() } else { dns_search.to_vec() };
    let options = if dns_opt.is_empty() { last_words(host, "options").unwrap_or_default() } else { dns_opt.to_vec() };
    let mut out = String::new();
    let search = search.join(" ");
    if !search.trim().is_empty() && search.trim() != "." {
        out.push_str(&format!("search {search}\n"));
    }
    for server in servers {
        out.push_str(&format!("nameserver {server}\n"));
    }
    let options = options.join(" ");
    if !options.trim().is_empty() {
        out.push_str(&format!("options {options}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const STUB: &str =
        "# This is /run/systemd/resolve/stub-resolv.conf\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n";
    const MIXED: &str = "domain example.com\nsearch example.com corp\nnameserver 10.0.0.2\nnameserver ::1\nnameserver 127.0.1.1\nnameserver fe80::1%eth0\noptions ndots:2\n";

    fn v(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn loopback_nameservers_are_dropped_and_the_rest_kept() {
        assert_eq!(
            resolv_conf(STUB, &[], &[], &[]),
            "# This is /run/systemd/resolve/stub-resolv.conf\noptions edns0 trust-ad\nsearch lan\n"
        );
        assert_eq!(
            resolv_conf(MIXED, &[], &[], &[]),
            "domain example.com\nsearch example.com corp\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\noptions ndots:2\n"
        );
    }

    #[test]
    fn dns_keys_rebuild_the_file_from_their_parts() {
        assert_eq!(
            resolv_conf(MIXED, &v(&["1.1.1.1", "9.9.9.9"]), &[], &[]),
            "search example.com corp\nnameserver 1.1.1.1\nnameserver 9.9.9.9\noptions ndots:2\n"
        );
        assert_eq!(
            resolv_conf(MIXED, &[], &v(&["svc.local"]), &v(&["use-vc", "timeout:1"])),
            "search svc.local\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\noptions use-vc timeout:1\n"
        );
        assert_eq!(resolv_conf(STUB, &[], &v(&["."]), &[]), "options edns0 trust-ad\n", "`.` clears the search list");
    }

    #[test]
    fn loopback_detection_covers_the_whole_range() {
        assert!(is_loopback("127.0.0.53"));
        assert!(is_loopback("127.255.0.1"));
        assert!(is_loopback("::1"));
        assert!(!is_loopback("10.0.0.1"));
        assert!(!is_loopback("fe80::1%eth0"));
        assert!(!is_loopback("not-an-address"));
    }
}
