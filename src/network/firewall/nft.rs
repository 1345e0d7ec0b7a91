//! The nftables backend: table `ip berth`, with base chains of its own at the usual priorities,
//! written with `nft -f -` (one atomic transaction per operation) and read with
//! `nft -j list table ip berth`. Its rules mirror the iptables backend's; the nat base chains'
//! DNATs each check `fib daddr type local` where iptables has it on the jump.

use super::{FirewallError, NetworkRules, Owner, PortRule, run};

/// The table, as nft commands name it.
const TABLE: &str = "ip berth";

/// The table and its base chains; `add` leaves existing ones alone.
const SKELETON: &str = "add table ip berth
add chain ip berth forward { type filter hook forward priority 0; policy accept; }
add chain ip berth input { type filter hook input priority 0; policy accept; }
add chain ip berth prerouting { type nat hook prerouting priority -100; policy accept; }
add chain ip berth output { type nat hook output priority -100; policy accept; }
add chain ip berth postrouting { type nat hook postrouting priority 100; policy accept; }
";

/// `add rule` appends; `insert rule` puts drops at the top, before every network's accepts.
fn rule(verb: &str, chain: &str, spec: &str, tag: &str) -> String {
    format!("{verb} rule {TABLE} {chain} {spec} comment \"{tag}\"")
}

/// The rules of a network, as nft commands.
pub(super) fn network_rules(r: &NetworkRules) -> Vec<String> {
    let tag = Owner::Network { project: r.project, network: r.network }.tag();
    let (br, subnet, gw) = (r.bridge, r.subnet.trunc(), r.gateway);
    let not_asked = "ct state != { established, related } ct status & dnat == 0";
    let mut rules = Vec::new();
    if r.internal {
        rules.push(rule("insert", "forward", &format!("iifname \"{br}\" oifname != \"{br}\" drop"), &tag));
        rules.push(rule("insert", "forward", &format!("iifname != \"{br}\" oifname \"{br}\" drop"), &tag));
        rules.push(rule("add", "forward", &format!("iifname \"{br}\" oifname \"{br}\" accept"), &tag));
    } else {
        let drop = format!("iifname != \"{br}\" oifname \"{br}\" {not_asked} drop");
        rules.push(rule("insert", "forward", &drop, &tag));
        rules.push(rule("add", "forward", &format!("iifname \"{br}\" accept"), &tag));
        let established = format!("oifname \"{br}\" ct state established,related accept");
        rules.push(rule("add", "forward", &established, &tag));
        rules.push(rule("add", "forward", &format!("oifname \"{br}\" ct status dnat accept"), &tag));
    }
    let loopback = format!("iifname \"{br}\" ip daddr 127.0.0.0/8 ct state != {{ established, related }} drop");
    rules.push(rule("insert", "input", &loopback, &tag));
    for proto in ["udp", "tcp"] {
        // The resolver serves its own bridge only (see the iptables rules).
        let foreign = format!("iifname != \"{br}\" ip daddr {gw} {proto} dport 53 drop");
        rules.push(rule("insert", "input", &foreign, &tag));
        let dns = format!("iifname \"{br}\" ip saddr {subnet} ip daddr {gw} {proto} dport 53 accept");
        rules.push(rule("add", "input", &dns, &tag));
    }
    if !r.internal {
        let out = format!("oifname != \"{br}\" ip saddr {subnet} masquerade");
        rules.push(rule("add", "postrouting", &out, &tag));
        let localhost = format!("oifname \"{br}\" ip saddr 127.0.0.0/8 masquerade");
        rules.push(rule("add", "postrouting", &localhost, &tag));
        let hairpin = format!("oifname \"{br}\" ip saddr {subnet} ct status dnat masquerade");
        rules.push(rule("add", "postrouting", &hairpin, &tag));
    }
    rules
}

/// The rules of one published port, as nft commands.
pub(super) fn port_rules(p: &PortRule) -> Vec<String> {
    let tag = Owner::Container { project: p.project, container: p.container }.tag();
    let destination = p.host_address().map(|ip| format!("ip daddr {ip} ")).unwrap_or_default();
    let spec = format!(
        "fib daddr type local {destination}{} dport {} dnat to {}:{}",
        p.protocol.name(),
        p.host_port,
        p.container_ip,
        p.container_port
    );
    let mut rules = Vec::new();
    if p.reachable_from_outside() {
        rules.push(rule("add", "prerouting", &spec, &tag));
    }
    rules.push(rule("add", "output", &spec, &tag));
    rules
}

/// A rule of the table, as `nft -j list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Listed {
    pub(super) chain: String,
    pub(super) handle: u64,
    pub(super) comment: Option<String>,
}

/// The rules in `nft -j list table ip berth` output.
pub(super) fn parse_list(json: &str) -> Result<Vec<Listed>, String> {
    let value: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let items = value.get("nftables").and_then(|v| v.as_array()).ok_or("no \"nftables\" array")?;
    let mut rules = Vec::new();
    for rule in items.iter().filter_map(|item| item.get("rule")) {
        let chain = rule.get("chain").and_then(|c| c.as_str()).ok_or("a rule without a chain")?;
        let handle = rule.get("handle").and_then(|h| h.as_u64()).ok_or("a rule without a handle")?;
        let comment = rule.get("comment").and_then(|c| c.as_str()).map(str::to_owned);
        rules.push(Listed { chain: chain.to_owned(), handle, comment });
    }
    Ok(rules)
}

/// The table's rules; `None` when there is no table.
fn list() -> Result<Option<Vec<Listed>>, FirewallError> {
    let args = ["-j", "list", "table", "ip", "berth"];
    match run("nft", &args, None) {
        Ok(json) => parse_list(&json)
            .map(Some)
            .map_err(|why| FirewallError::Output { command: format!("nft {}", args.join(" ")), why }),
        Err(FirewallError::Command { stderr, .. }) if stderr.contains("No such file or directory") => Ok(None),
        Err(e) => Err(e),
    }
}

/// The deletion of every listed rule whose comment `owned` accepts, as nft commands.
pub(super) fn delete_owned(listed: &[Listed], owned: &dyn Fn(&str) -> bool) -> Vec<String> {
    listed
        .iter()
        .filter(|r| r.comment.as_deref().is_some_and(owned))
        .map(|r| format!("delete rule {TABLE} {} handle {}", r.chain, r.handle))
        .collect()
}

fn apply(commands: &str) -> Result<(), FirewallError> {
    if commands.is_empty() {
        return Ok(());
    }
    run("nft", &["-f", "-"], Some(commands)).map(drop)
}

/// Replaces the owner's rules with `rules`, creating the table first where missing.
pub(super) fn replace(owned: &dyn Fn(&str) -> bool, rules: Vec<String>) -> Result<(), FirewallError> {
    let listed = list()?.unwrap_or_default();
    let mut batch = SKELETON.to_owned();
    for line in delete_owned(&listed, owned).into_iter().chain(rules) {
        batch.push_str(&line);
        batch.push('\n');
    }
    apply(&batch)
}

pub(super) fn remove(owned: &dyn Fn(&str) -> bool) -> Result<(), FirewallError> {
    let Some(listed) = list()? else { return Ok(()) };
    let deletions = delete_owned(&listed, owned);
    apply(&deletions.iter().map(|line| format!("{line}\n")).collect::<String>())
}

pub(super) fn remove_if_unused() -> Result<(), FirewallError> {
    match list()? {
        Some(listed) if listed.is_empty() => apply(&format!("delete table {TABLE}\n")),
        _ => Ok(()),
    }
}
