//! compose's rules for laying one stack file over another.
//!
//! Used for several `-f` files, the automatic `compose.override.yaml`, `include` and `extends`.
//! It works on raw [`Node`] trees before normalisation, so every rule accepts both the short and
//! the long syntax of an attribute, and every node keeps the location of the file it came from.
//! The rules are compose-go's (`override/merge.go`, `override/uncity.go`).
//!
//! The overlay's `!reset` and `!override` tags stay on the result: a service that went through
//! `extends` must still reset or replace the previous file's values when its file is merged in,
//! as in compose-go. The base's tags were spent when the base was built, so they are dropped
//! first. Call [`strip_tags`] once the tree is final.

use std::collections::HashMap;

use super::yaml::{Location, Mapping, Node, Tag, Value};

/// What the two trees given to [`merge`] are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Two whole stack files.
    Document,
    /// Two service definitions (`extends`), the base being the extended service; error paths
    /// are then relative to the service.
    Service,
}

/// Two trees that cannot be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// The overlay gives a key a value whose shape cannot be merged with the base's.
    #[error(
        "{location}: {path}: cannot merge {overlay} onto {base} (from {base_location}); write \
         the same shape, or tag the value `!override` to replace it"
    )]
    Incompatible {
        /// YAML path of the key, such as `services.web.build`.
        path: String,
        /// Where the overlay's value is.
        location: Location,
        /// Where the base's value is.
        base_location: Location,
        /// Kind of the base's value.
        base: &'static str,
        /// Kind of the overlay's value.
        overlay: &'static str,
    },
    /// A list entry that must be a string (`KEY=VALUE`, a name, a host) is something else.
    #[error("{location}: {path}: expected {expected}, found {found}")]
    BadEntry {
        /// YAML path of the entry, such as `services.web.environment[2]`.
        path: String,
        /// Where the entry is.
        location: Location,
        /// What the entry should be.
        expected: &'static str,
        /// Kind of the entry.
        found: &'static str,
    },
}

impl MergeError {
    /// Where the offending value is.
    pub fn location(&self) -> &Location {
        match self {
            Self::Incompatible { location, .. } | Self::BadEntry { location, .. } => location,
        }
    }

    /// The YAML path of the offending value.
    pub fn path(&self) -> &str {
        match self {
            Self::Incompatible { path, .. } | Self::BadEntry { path, .. } => path,
        }
    }
}

/// Merges `overlay` onto `base` (both whole documents, or both service mappings when `scope`
/// says so), then drops redefinitions from the lists whose entries must be unique.
pub fn merge(mut base: Node, overlay: Node, scope: Scope) -> Result<Node, MergeError> {
    strip_tags(&mut base);
    let mut merged = merge_node(base, overlay, &mut Path::new(scope))?;
    enforce_unicity(&mut merged, scope);
    Ok(merged)
}

/// Removes `!reset` entries and clears `!override` tags, once all merging is done; a `!reset`
/// root becomes null.
pub fn strip_tags(node: &mut Node) {
    if is_reset(node) {
        node.value = Value::Null;
    }
    node.tag = None;
    strip_children(node);
}

/// Keeps the last definition of each entry, at the place of the first, in the lists compose
/// wants unique (volumes by target, ports by binding, …). [`merge`] does it; call it for a file
/// merged with nothing.
pub fn enforce_unicity(node: &mut Node, scope: Scope) {
    unique_walk(node, &mut Path::new(scope));
}

fn strip_children(node: &mut Node) {
    match &mut node.value {
        Value::Map(map) => {
            map.retain(|_, v| !is_reset(v));
            map.values_mut().for_each(strip_tags);
        }
        Value::Seq(items) => {
            items.retain(|v| !is_reset(v));
            items.iter_mut().for_each(strip_tags);
        }
        _ => {}
    }
}

fn is_reset(node: &Node) -> bool {
    node.tag == Some(Tag::Reset)
}

fn untagged(value: Value, location: Location) -> Node {
    Node { value, location, tag: None }
}

/// The YAML path being merged. In `Service` scope it starts with a hidden `services.*`, so the
/// document's rules apply.
struct Path {
    segments: Vec<String>,
    hidden: usize,
}

impl Path {
    fn new(scope: Scope) -> Self {
        let segments = match scope {
            Scope::Document => Vec::new(),
            Scope::Service => vec!["services".to_owned(), "*".to_owned()],
        };
        Path { hidden: segments.len(), segments }
    }

    fn parts(&self) -> Vec<&str> {
        self.segments.iter().map(String::as_str).collect()
    }

    fn shown(&self) -> String {
        let mut out = String::new();
        for segment in self.segments.iter().skip(self.hidden) {
            if !out.is_empty() && !segment.starts_with('[') {
                out.push('.');
            }
            out.push_str(segment);
        }
        if out.is_empty() { "(top level)".to_owned() } else { out }
    }
}

/// How a key's values merge.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// Mappings merge, lists append, scalars are replaced.
    Default,
    /// The overlay's value replaces the base's, even a null one.
    Replace,
    /// `KEY=VALUE` lists and mappings, merged by key into a mapping.
    KeyValues,
    /// A string or a list, appended.
    List,
    /// `host=ip` lists and mappings, appended without repeating an entry of the base.
    ExtraHosts,
    /// A context string or a mapping.
    Build,
    /// Service names, or a mapping of conditions.
    DependsOn,
    /// Names, or a mapping of per-name options.
    Names,
    /// Options survive only when the driver stays the same.
    Logging,
    /// IPAM pools, merged by subnet.
    IpamConfig,
}

fn rule(path: &[&str]) -> Rule {
    let service = match path {
        ["services", _, rest @ ..] => rest,
        ["networks" | "volumes" | "secrets" | "configs", _, "labels"] => return Rule::KeyValues,
        ["networks", _, "ipam", "config"] => return Rule::IpamConfig,
        _ => return Rule::Default,
    };
    match service {
        ["command" | "entrypoint"] | ["healthcheck", "test"] | ["ulimits", _] => Rule::Replace,
        ["environment" | "labels" | "annotations" | "sysctls"]
        | ["build", "args" | "labels" | "additional_contexts"]
        | ["deploy", "labels"] => Rule::KeyValues,
        ["dns" | "dns_opt" | "dns_search" | "env_file" | "label_file" | "tmpfs"] => Rule::List,
        ["extra_hosts"] | ["build", "extra_hosts"] => Rule::ExtraHosts,
        ["build"] => Rule::Build,
        ["depends_on"] => Rule::DependsOn,
        ["networks" | "models"] => Rule::Names,
        ["logging"] => Rule::Logging,
        _ => Rule::Default,
    }
}

fn merge_node(base: Node, mut overlay: Node, path: &mut Path) -> Result<Node, MergeError> {
    if let Some(tag) = overlay.tag {
        // Tags inside an `!override` value have nothing left to act on.
        if tag == Tag::Override {
            strip_children(&mut overlay);
        }
        return Ok(overlay);
    }
    if base.is_null() {
        return Ok(overlay);
    }
    let rule = rule(&path.parts());
    if overlay.is_null() {
        // compose-go keeps the base under a null, except where the overlay always wins.
        return Ok(if rule == Rule::Replace { overlay } else { base });
    }
    match rule {
        Rule::Default => merge_default(base, overlay, path),
        Rule::Replace => Ok(overlay),
        _ => merge_special(rule, base, overlay, path),
    }
}

// Out of `merge_node`, which recurses, so that its stack frame stays small.
#[inline(never)]
fn merge_special(rule: Rule, base: Node, over: Node, path: &mut Path) -> Result<Node, MergeError> {
    let both = |accepts: fn(&Value) -> bool| accepts(&base.value) && accepts(&over.value);
    match rule {
        Rule::KeyValues => {
            let (mut map, location) = key_values(base, path)?;
            map.extend(key_values(over, path)?.0);
            Ok(untagged(Value::Map(map), location))
        }
        Rule::List => {
            let (mut items, location) = as_list(base, path)?;
            items.extend(as_list(over, path)?.0);
            Ok(untagged(Value::Seq(items), location))
        }
        Rule::ExtraHosts => {
            let (mut items, location) = as_list(base, path)?;
            let known: Vec<_> = items.iter().filter_map(host_entry).collect();
            let new = |n: &Node| host_entry(n).is_none_or(|e| !known.contains(&e));
            let added: Vec<Node> = as_list(over, path)?.0.into_iter().filter(new).collect();
            items.extend(added);
            Ok(untagged(Value::Seq(items), location))
        }
        Rule::Build if both(|v| matches!(v, Value::String(_) | Value::Map(_))) => {
            merge_default(build_map(base), build_map(over), path)
        }
        Rule::DependsOn | Rule::Names if both(|v| matches!(v, Value::Seq(_) | Value::Map(_))) => {
            let conditions = rule == Rule::DependsOn;
            let base = names_map(base, conditions, path)?;
            merge_default(base, names_map(over, conditions, path)?, path)
        }
        Rule::Build | Rule::DependsOn | Rule::Names => Err(incompatible(&base, &over, path)),
        Rule::Logging => {
            let driver = |n: &Node| n.get("driver").map(Node::to_json);
            match (driver(&base), driver(&over)) {
                (Some(old), Some(new)) if old != new => Ok(over),
                _ => merge_default(base, over, path),
            }
        }
        Rule::IpamConfig => match (base.value, over.value) {
            (Value::Seq(pools), Value::Seq(other)) => {
                Ok(untagged(Value::Seq(merge_pools(pools, other, path)?), base.location))
            }
            (value, other) => merge_default(untagged(value, base.location), untagged(other, over.location), path),
        },
        Rule::Default | Rule::Replace => merge_default(base, over, path),
    }
}

fn merge_default(base: Node, overlay: Node, path: &mut Path) -> Result<Node, MergeError> {
    let value = match (base.value, overlay.value) {
        (Value::Map(map), Value::Map(other)) => Value::Map(merge_maps(map, other, path)?),
        (Value::Seq(mut items), Value::Seq(other)) => {
            items.extend(other.into_iter().filter(|n| !is_reset(n)));
            Value::Seq(items)
        }
        (value @ (Value::Map(_) | Value::Seq(_)), other) => {
            let (base, over) = (untagged(value, base.location), untagged(other, overlay.location));
            return Err(incompatible(&base, &over, path));
        }
        (_, other) => return Ok(untagged(other, overlay.location)),
    };
    Ok(untagged(value, base.location))
}

/// Base keys keep their order; keys only the overlay has come after them.
fn merge_maps(mut map: Mapping, other: Mapping, path: &mut Path) -> Result<Mapping, MergeError> {
    for (key, value) in other {
        match map.get_mut(&key) {
            Some(slot) => {
                let old = std::mem::replace(slot, Node::new(Value::Null));
                path.segments.push(key);
                let merged = merge_node(old, value, path);
                path.segments.pop();
                *slot = merged?;
            }
            None => {
                map.insert(key, value);
            }
        }
    }
    Ok(map)
}

fn incompatible(base: &Node, overlay: &Node, path: &Path) -> MergeError {
    MergeError::Incompatible {
        path: path.shown(),
        location: overlay.location.clone(),
        base_location: base.location.clone(),
        base: base.kind_name(),
        overlay: overlay.kind_name(),
    }
}

fn bad_entry(item: &Node, path: String, expected: &'static str) -> MergeError {
    let (location, found) = (item.location.clone(), item.kind_name());
    MergeError::BadEntry { path, location, expected, found }
}

/// A `KEY=VALUE` list (or a lone string) as a mapping. A bare `KEY` maps to null, which compose
/// reads as "from the shell" in an environment and as empty in labels, as it reads `KEY`.
fn key_values(node: Node, path: &Path) -> Result<(Mapping, Location), MergeError> {
    let items = match node.value {
        Value::Map(map) => return Ok((map, node.location)),
        Value::Seq(items) => items,
        scalar => vec![untagged(scalar, node.location.clone())],
    };
    let mut map = Mapping::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate().filter(|(_, n)| !is_reset(n)) {
        let Some(text) = item.scalar_string() else {
            let at = format!("{}[{i}]", path.shown());
            return Err(bad_entry(&item, at, "a `KEY=VALUE` string"));
        };
        let (key, value) = match text.split_once('=') {
            Some((key, value)) => (key.to_owned(), Value::String(value.to_owned())),
            None => (text, Value::Null),
        };
        map.insert(key, Node::at(value, &item.location));
    }
    Ok((map, node.location))
}

/// A string, a list, or a mapping written as `key=value` strings (compose-go's sequence form,
/// one string per address when a key has several).
fn as_list(node: Node, path: &Path) -> Result<(Vec<Node>, Location), MergeError> {
    let items = match node.value {
        Value::Seq(items) => items.into_iter().filter(|n| !is_reset(n)).collect(),
        Value::Map(map) => {
            let mut items = Vec::with_capacity(map.len());
            for (key, value) in map {
                let values = match value.value {
                    Value::Seq(values) => values,
                    _ => vec![value],
                };
                for v in values {
                    let text = match v.scalar_string() {
                        Some(s) => format!("{key}={s}"),
                        None if v.is_null() => key.clone(),
                        None => {
                            return Err(bad_entry(&v, format!("{}.{key}", path.shown()), "a string"));
                        }
                    };
                    items.push(Node::at(Value::String(text), &v.location));
                }
            }
            items
        }
        scalar => vec![untagged(scalar, node.location.clone())],
    };
    Ok((items, node.location))
}

/// An `extra_hosts` entry as (host, address), whichever of `=` and `:` separates them.
fn host_entry(node: &Node) -> Option<(String, String)> {
    let text = node.as_str()?;
    let (host, ip) = text.split_once('=').or_else(|| text.split_once(':'))?;
    let ip = ip.trim().trim_start_matches('[').trim_end_matches(']');
    Some((host.trim().to_owned(), ip.to_owned()))
}

/// `build: ./dir` is `build: {context: ./dir}`.
fn build_map(node: Node) -> Node {
    if !matches!(node.value, Value::String(_)) {
        return node;
    }
    let location = node.location.clone();
    let map = Mapping::from_iter([("context".to_owned(), node)]);
    untagged(Value::Map(map), location)
}

/// A list of names as a mapping: `depends_on` entries get compose's default condition, other
/// names map to null.
fn names_map(node: Node, conditions: bool, path: &Path) -> Result<Node, MergeError> {
    let Value::Seq(items) = node.value else {
        return Ok(untagged(node.value, node.location));
    };
    let mut map = Mapping::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate().filter(|(_, n)| !is_reset(n)) {
        let Some(name) = item.as_str() else {
            return Err(bad_entry(&item, format!("{}[{i}]", path.shown()), "a name"));
        };
        let at = |value| Node::at(value, &item.location);
        let value = if conditions {
            let started = at(Value::String("service_started".to_owned()));
            let required = at(Value::Bool(true));
            Value::Map(Mapping::from_iter([("condition".to_owned(), started), ("required".to_owned(), required)]))
        } else {
            Value::Null
        };
        map.insert(name.to_owned(), at(value));
    }
    Ok(untagged(Value::Map(map), node.location))
}

/// IPAM pools with the same subnet merge; the overlay's other pools are added.
fn merge_pools(mut pools: Vec<Node>, other: Vec<Node>, path: &mut Path) -> Result<Vec<Node>, MergeError> {
    let subnet = |n: &Node| n.get("subnet").and_then(Node::scalar_string);
    for pool in other.into_iter().filter(|n| !is_reset(n)) {
        let key = subnet(&pool);
        let same = |p: &Node| p.as_map().is_some() && pool.as_map().is_some() && subnet(p) == key;
        match pools.iter().position(same).and_then(|i| Some((i, pools.get_mut(i)?))) {
            Some((i, slot)) => {
                let old = std::mem::replace(slot, Node::new(Value::Null));
                path.segments.push(format!("[{i}]"));
                let merged = merge_node(old, pool, path);
                path.segments.pop();
                *slot = merged?;
            }
            None => pools.push(pool),
        }
    }
    Ok(pools)
}

/// How the entries of a unique list are identified (see [`unique_key`]).
#[derive(Clone, Copy)]
enum Unique {
    KeyValue,
    Volume,
    Device,
    Port,
    Mount(&'static str),
    EnvFile,
    Expose,
    VolumesFrom,
    Tmpfs,
}

fn unique_rule(path: &[&str]) -> Option<Unique> {
    let service = match path {
        ["services", _, rest @ ..] => rest,
        ["networks" | "volumes" | "secrets" | "configs", _, "labels"] => {
            return Some(Unique::KeyValue);
        }
        _ => return None,
    };
    Some(match service {
        ["volumes"] => Unique::Volume,
        ["devices"] => Unique::Device,
        ["ports"] => Unique::Port,
        ["secrets"] => Unique::Mount("/run/secrets"),
        ["configs"] => Unique::Mount(""),
        ["env_file"] => Unique::EnvFile,
        ["expose"] => Unique::Expose,
        ["volumes_from"] => Unique::VolumesFrom,
        ["tmpfs"] => Unique::Tmpfs,
        ["environment" | "labels" | "annotations" | "sysctls" | "cap_add" | "cap_drop" | "dns"]
        | ["dns_opt" | "dns_search" | "links" | "profiles"]
        | ["build", "args" | "labels" | "additional_contexts"]
        | ["build", "tags" | "platforms"]
        | ["deploy", "labels"]
        | ["networks", _, "aliases" | "link_local_ips"] => Unique::KeyValue,
        _ => return None,
    })
}

fn unique_walk(node: &mut Node, path: &mut Path) {
    match &mut node.value {
        Value::Map(map) => {
            for (key, value) in map.iter_mut() {
                path.segments.push(key.clone());
                unique_walk(value, path);
                path.segments.pop();
            }
        }
        Value::Seq(items) => {
            if let Some(unique) = unique_rule(&path.parts()) {
                dedupe(items, unique);
            }
        }
        _ => {}
    }
}

/// A redefinition replaces the first definition in place, so the order is that of first
/// appearance while the values are the last ones.
fn dedupe(items: &mut Vec<Node>, unique: Unique) {
    let mut out: Vec<Node> = Vec::with_capacity(items.len());
    let mut seen: HashMap<String, usize> = HashMap::new();
    for item in items.drain(..) {
        let key = unique_key(&item, unique).filter(|_| !is_reset(&item));
        if let Some(key) = key {
            if let Some(slot) = seen.get(&key).and_then(|&j| out.get_mut(j)) {
                *slot = item;
                continue;
            }
            seen.insert(key, out.len());
        }
        out.push(item);
    }
    *items = out;
}

/// The identity of a unique-list entry; `None` when it has none (it is then kept, and the
/// schema or the normaliser says what is wrong with it).
fn unique_key(item: &Node, unique: Unique) -> Option<String> {
    let field = |name: &str| item.get(name).and_then(Node::scalar_string);
    let text = item.as_str();
    match unique {
        Unique::KeyValue => {
            let s = item.scalar_string()?;
            Some(s.split_once('=').map_or(s.clone(), |(k, _)| k.to_owned()))
        }
        Unique::Volume => text.map_or_else(|| field("target"), volume_target),
        Unique::Device => match text {
            Some(spec) => Some(spec.split(':').nth(1).unwrap_or(spec).to_owned()),
            None => field("target"),
        },
        Unique::Port => port_key(item),
        Unique::Mount(dir) => match (text, field("target")) {
            (Some(source), _) => Some(format!("{dir}/{source}")),
            (None, Some(target)) if target.starts_with('/') => Some(target),
            (None, Some(target)) => Some(format!("{dir}/{target}")),
            (None, None) => field("source").map(|source| format!("{dir}/{source}")),
        },
        Unique::EnvFile => text.map(str::to_owned).or_else(|| field("path")),
        Unique::Expose => item.scalar_string(),
        Unique::VolumesFrom => {
            let s = text?;
            Some(s.strip_suffix(":ro").or(s.strip_suffix(":rw")).unwrap_or(s).to_owned())
        }
        Unique::Tmpfs => text.map(|s| s.split(':').next().unwrap_or(s).to_owned()),
    }
}

/// The target of a short volume spec, `[source:]target[:mode]`.
fn volume_target(spec: &str) -> Option<String> {
    match spec.split(':').collect::<Vec<_>>()[..] {
        [target] | [_, target] | [_, target, _] if !target.is_empty() => Some(target.to_owned()),
        _ => None,
    }
}

/// `host_ip:published:target/protocol`, the same for `"8080:80"`, `"0.0.0.0:8080:80/tcp"` and
/// `{target: 80, published: 8080}`: compose reads a missing host address as `0.0.0.0`.
fn port_key(item: &Node) -> Option<String> {
    let key = |host: &str, published: &str, target: &str, protocol: &str| {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = if host.is_empty() { "0.0.0.0" } else { host };
        let protocol = protocol.to_ascii_lowercase();
        Some(format!("{host}:{published}:{target}/{protocol}"))
    };
    match &item.value {
        Value::Int(port) => key("", "", &port.to_string(), "tcp"),
        Value::String(spec) => {
            let (rest, protocol) = spec.rsplit_once('/').unwrap_or((spec, "tcp"));
            // Whatever precedes the last two fields is the host address, IPv6 ones included.
            let (host, ports) = match rest.rsplitn(3, ':').nth(2) {
                Some(host) => (host, rest.get(host.len() + 1..)?),
                None => ("", rest),
            };
            let (published, target) = ports.rsplit_once(':').unwrap_or(("", ports));
            key(host, published, target, protocol)
        }
        Value::Map(map) => {
            let field = |name: &str| map.get(name).and_then(Node::scalar_string);
            let protocol = field("protocol").unwrap_or_else(|| "tcp".to_owned());
            let (host, published) = (field("host_ip"), field("published"));
            let (host, published) = (host.unwrap_or_default(), published.unwrap_or_default());
            key(&host, &published, &field("target")?, &protocol)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
