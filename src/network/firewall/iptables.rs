//! The iptables backend: the rules as `iptables-restore` lines, and the read (`iptables-save`),
//! compute, write (`iptables-restore --noflush`) cycle of every operation. A restore batch is
//! atomic per table, so an owner's rules are replaced without a moment with none or two copies.

use std::collections::BTreeMap;

use super::{FirewallError, NetworkRules, Owner, PortRule, run};

/// A table berth writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Table {
    Filter,
    Nat,
}

impl Table {
    const ALL: [Table; 2] = [Table::Filter, Table::Nat];

    fn name(self) -> &'static str {
        match self {
            Table::Filter => "filter",
            Table::Nat => "nat",
        }
    }

    /// berth's chains in the table: (chain, the built-in chain that jumps to it, the jump's
    /// matches). The nat jumps are for local destinations only, so the DNATs never see
    /// forwarded traffic to other hosts.
    fn chains(self) -> &'static [(&'static str, &'static str, &'static str)] {
        match self {
            Table::Filter => &[("BERTH-FORWARD", "FORWARD", ""), ("BERTH-INPUT", "INPUT", "")],
            Table::Nat => &[
                ("BERTH-PREROUTING", "PREROUTING", "-m addrtype --dst-type LOCAL "),
                ("BERTH-OUTPUT", "OUTPUT", "-m addrtype --dst-type LOCAL "),
                ("BERTH-POSTROUTING", "POSTROUTING", ""),
            ],
        }
    }
}

/// One rule to add: its table and its `iptables-restore` command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Rule {
    pub(super) table: Table,
    pub(super) line: String,
}

/// Appends `-A chain <spec> -m comment --comment "<tag>" -j <target>`.
fn append(table: Table, chain: &str, spec: &str, tag: &str, target: &str) -> Rule {
    Rule { table, line: format!("-A {chain} {spec} -m comment --comment \"{tag}\" -j {target}") }
}

/// Inserts at the top of the chain: drops go there so that no accept of another network,
/// appended, comes before them.
fn insert(table: Table, chain: &str, spec: &str, tag: &str, target: &str) -> Rule {
    Rule { table, line: format!("-I {chain} 1 {spec} -m comment --comment \"{tag}\" -j {target}") }
}

/// The rules of a network.
pub(super) fn network_rules(r: &NetworkRules) -> Vec<Rule> {
    use Table::{Filter, Nat};
    let tag = Owner::Network { project: r.project, network: r.network }.tag();
    let (br, subnet, gw) = (r.bridge, r.subnet.trunc(), r.gateway);
    let mut rules = Vec::new();
    if r.internal {
        rules.push(insert(Filter, "BERTH-FORWARD", &format!("-i {br} ! -o {br}"), &tag, "DROP"));
        rules.push(insert(Filter, "BERTH-FORWARD", &format!("! -i {br} -o {br}"), &tag, "DROP"));
        rules.push(append(Filter, "BERTH-FORWARD", &format!("-i {br} -o {br}"), &tag, "ACCEPT"));
    } else {
        let unasked = "-m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT";
        rules.push(insert(Filter, "BERTH-FORWARD", &format!("! -i {br} -o {br} {unasked}"), &tag, "DROP"));
        rules.push(append(Filter, "BERTH-FORWARD", &format!("-i {br}"), &tag, "ACCEPT"));
        let established = "-m conntrack --ctstate RELATED,ESTABLISHED";
        rules.push(append(Filter, "BERTH-FORWARD", &format!("-o {br} {established}"), &tag, "ACCEPT"));
        rules.push(append(Filter, "BERTH-FORWARD", &format!("-o {br} -m conntrack --ctstate DNAT"), &tag, "ACCEPT"));
    }
    let loopback = "-d 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED";
    rules.push(insert(Filter, "BERTH-INPUT", &format!("-i {br} {loopback}"), &tag, "DROP"));
    for proto in ["udp", "tcp"] {
        // The resolver serves its own bridge only: the host itself (through `lo`), other
        // bridges and routed hosts are dropped before the server sees them.
        let foreign = format!("! -i {br} -d {gw}/32 -p {proto} -m {proto} --dport 53");
        rules.push(insert(Filter, "BERTH-INPUT", &foreign, &tag, "DROP"));
        let dns = format!("-i {br} -s {subnet} -d {gw}/32 -p {proto} -m {proto} --dport 53");
        rules.push(append(Filter, "BERTH-INPUT", &dns, &tag, "ACCEPT"));
    }
    if !r.internal {
        rules.push(append(Nat, "BERTH-POSTROUTING", &format!("-s {subnet} ! -o {br}"), &tag, "MASQUERADE"));
        rules.push(append(Nat, "BERTH-POSTROUTING", &format!("-s 127.0.0.0/8 -o {br}"), &tag, "MASQUERADE"));
        let hairpin = format!("-s {subnet} -o {br} -m conntrack --ctstate DNAT");
        rules.push(append(Nat, "BERTH-POSTROUTING", &hairpin, &tag, "MASQUERADE"));
    }
    rules
}

/// The rules of one published port.
pub(super) fn port_rules(p: &PortRule) -> Vec<Rule> {
    let tag = Owner::Container { project: p.project, container: p.container }.tag();
    let proto = p.protocol.name();
    let destination = p.host_address().map(|ip| format!("-d {ip}/32 ")).unwrap_or_default();
    let spec = format!("{destination}-p {proto} -m {proto} --dport {}", p.host_port);
    let target = format!("DNAT --to-destination {}:{}", p.container_ip, p.container_port);
    let mut rules = Vec::new();
    if p.reachable_from_outside() {
        rules.push(append(Table::Nat, "BERTH-PREROUTING", &spec, &tag, &target));
    }
    rules.push(append(Table::Nat, "BERTH-OUTPUT", &spec, &tag, &target));
    rules
}

/// One table of `iptables-save` output.
#[derive(Debug, Default)]
pub(super) struct Dump {
    /// The chains, built-in and user-defined.
    chains: Vec<String>,
    /// The rules, as `-A chain …` lines.
    rules: Vec<String>,
}

/// `iptables-save` output by table.
pub(super) fn parse_save(text: &str) -> BTreeMap<String, Dump> {
    let mut tables: BTreeMap<String, Dump> = BTreeMap::new();
    let mut current: Option<&mut Dump> = None;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix('*') {
            current = Some(tables.entry(name.trim().to_owned()).or_default());
        } else if let Some(dump) = current.as_deref_mut() {
            if let Some(chain) = line.strip_prefix(':') {
                dump.chains.extend(chain.split_whitespace().next().map(str::to_owned));
            } else if line.starts_with("-A ") {
                dump.rules.push(line.to_owned());
            }
        }
    }
    tables
}

/// The chain of an `-A chain …` line.
fn chain_of(rule: &str) -> Option<&str> {
    rule.strip_prefix("-A ")?.split_whitespace().next()
}

/// The jump target of a rule.
fn target_of(rule: &str) -> Option<&str> {
    let mut words = rule.split_whitespace();
    words.by_ref().find(|w| *w == "-j")?;
    words.next()
}

/// The comment of a rule as `iptables-save` prints it: bare, or in double quotes with `\"` and
/// `\\` escaped.
pub(super) fn comment_of(rule: &str) -> Option<String> {
    let rest = rule.split_once(" --comment ")?.1;
    let Some(quoted) = rest.strip_prefix('"') else {
        return rest.split_whitespace().next().map(str::to_owned);
    };
    let mut comment = String::new();
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(comment),
            '\\' => comment.push(chars.next()?),
            c => comment.push(c),
        }
    }
    None
}

/// The lines of one `iptables-restore --noflush` batch, per table.
#[derive(Debug, Default)]
pub(super) struct Batch {
    lines: BTreeMap<&'static str, Vec<String>>,
}

impl Batch {
    fn push(&mut self, table: Table, line: String) {
        self.lines.entry(table.name()).or_default().push(line);
    }

    fn is_empty(&self) -> bool {
        self.lines.values().all(Vec::is_empty)
    }

    pub(super) fn render(&self) -> String {
        let mut text = String::new();
        for (table, lines) in &self.lines {
            text.push_str(&format!("*{table}\n"));
            for line in lines {
                text.push_str(line);
                text.push('\n');
            }
            text.push_str("COMMIT\n");
        }
        text
    }
}

/// Adds to `batch` berth's chains and the jumps to them that `saved` lacks. Chains are
/// declared only when missing: `--noflush` still flushes a chain the batch declares.
pub(super) fn ensure_chains(saved: &BTreeMap<String, Dump>, batch: &mut Batch) {
    let empty = Dump::default();
    for table in Table::ALL {
        let dump = saved.get(table.name()).unwrap_or(&empty);
        for (chain, _, _) in table.chains() {
            if !dump.chains.iter().any(|c| c == chain) {
                batch.push(table, format!(":{chain} - [0:0]"));
            }
        }
        for (chain, builtin, matches) in table.chains() {
            let jumps = dump.rules.iter().any(|r| chain_of(r) == Some(builtin) && target_of(r) == Some(chain));
            if !jumps {
                batch.push(table, format!("-I {builtin} 1 {matches}-j {chain}"));
            }
        }
    }
}

/// The command that deletes a saved `-A chain …` rule: the same rule spec, as `iptables -D`
/// matches it.
fn delete(rule: &str) -> String {
    format!("-D {}", rule.strip_prefix("-A ").unwrap_or(rule))
}

/// Adds to `batch` the deletion of every rule in `saved` whose comment `owned` accepts.
pub(super) fn delete_owned(saved: &BTreeMap<String, Dump>, owned: &dyn Fn(&str) -> bool, batch: &mut Batch) {
    for table in Table::ALL {
        let Some(dump) = saved.get(table.name()) else { continue };
        for rule in &dump.rules {
            if comment_of(rule).is_some_and(|c| owned(&c)) {
                batch.push(table, delete(rule));
            }
        }
    }
}

/// Adds to `batch` the removal of berth's chains, and of the jumps to them, in each table where
/// they hold no rule.
pub(super) fn delete_unused(saved: &BTreeMap<String, Dump>, batch: &mut Batch) {
    for table in Table::ALL {
        let Some(dump) = saved.get(table.name()) else { continue };
        let ours = |chain: &str| table.chains().iter().any(|(c, _, _)| *c == chain);
        let present: Vec<&String> = dump.chains.iter().filter(|c| ours(c)).collect();
        if present.is_empty() || dump.rules.iter().any(|r| chain_of(r).is_some_and(ours)) {
            continue;
        }
        for rule in &dump.rules {
            if target_of(rule).is_some_and(ours) {
                batch.push(table, delete(rule));
            }
        }
        for chain in present {
            batch.push(table, format!("-X {chain}"));
        }
    }
}

fn save() -> Result<BTreeMap<String, Dump>, FirewallError> {
    Ok(parse_save(&run("iptables-save", &[], None)?))
}

fn restore(batch: &Batch) -> Result<(), FirewallError> {
    if batch.is_empty() {
        return Ok(());
    }
    // -w waits for the xtables lock that the legacy backend takes; the nf_tables one ignores it.
    run("iptables-restore", &["-w", "--noflush"], Some(&batch.render())).map(drop)
}

/// Replaces the owner's rules with `rules`, creating berth's chains first where missing.
pub(super) fn replace(owned: &dyn Fn(&str) -> bool, rules: Vec<Rule>) -> Result<(), FirewallError> {
    let saved = save()?;
    let mut batch = Batch::default();
    ensure_chains(&saved, &mut batch);
    delete_owned(&saved, owned, &mut batch);
    for rule in rules {
        batch.push(rule.table, rule.line);
    }
    restore(&batch)
}

pub(super) fn remove(owned: &dyn Fn(&str) -> bool) -> Result<(), FirewallError> {
    let saved = save()?;
    let mut batch = Batch::default();
    delete_owned(&saved, owned, &mut batch);
    restore(&batch)
}

pub(super) fn remove_if_unused() -> Result<(), FirewallError> {
    let saved = save()?;
    let mut batch = Batch::default();
    delete_unused(&saved, &mut batch);
    restore(&batch)
}
