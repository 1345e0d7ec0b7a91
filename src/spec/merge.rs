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
mod tests {
    use std::collections::HashSet;
    use std::path::Path as FsPath;
    use std::sync::Arc;

    use serde_json::{Value as Json, json};

    use super::*;
    use crate::spec::yaml::parse;

    fn load(text: &str, file: &str) -> Node {
        let file: Arc<FsPath> = Arc::from(FsPath::new(file));
        parse(text, Some(&file)).unwrap().unwrap()
    }

    fn web(service: Node) -> Node {
        let map = |k: &str, v| Node::new(Value::Map(Mapping::from_iter([(k.into(), v)])));
        map("services", map("web", service))
    }

    fn merged(base: Node, overlay: Node, scope: Scope) -> Json {
        let mut node = merge(base, overlay, scope).unwrap();
        strip_tags(&mut node);
        node.to_json()
    }

    fn keys(value: &Json) -> Vec<&str> {
        value.as_object().unwrap().keys().map(String::as_str).collect()
    }

    /// `name: [base, overlay, expected]`, services unless the name starts with `doc`.
    const CASES: &str = r#"
scalar: [{image: a, restart: always}, {image: b}, {image: b, restart: always}]
null keeps the base: [{image: a, init: true}, {image: null}, {image: a, init: true}]
scalar replaced by list: [{init: true}, {init: [a]}, {init: [a]}]
command: [{command: [a, b]}, {command: [c]}, {command: [c]}]
null command: [{command: [a]}, {command: null}, {command: null}]
entrypoint: [{entrypoint: a b}, {entrypoint: [c]}, {entrypoint: [c]}]
healthcheck.test: [{healthcheck: {test: [CMD, a], interval: 5s}}, {healthcheck: {test: [CMD, b]}}, {healthcheck: {test: [CMD, b], interval: 5s}}]
env list+map: [{environment: [A=1, B, C=x=y]}, {environment: {B: 2, D: null}}, {environment: {A: '1', B: 2, C: x=y, D: null}}]
env map+list: [{environment: {A: 1, B: 2}}, {environment: [A=3, E=]}, {environment: {A: '3', B: 2, E: ''}}]
env null: [{environment: [A=1]}, {environment: null}, {environment: [A=1]}]
labels and friends: [{labels: [a=1], annotations: {x: 1}, sysctls: [n=1], deploy: {labels: [d=1]}}, {labels: {b: 2}, annotations: [x=2], sysctls: {n: 2}, deploy: {labels: {d: 2}}}, {labels: {a: '1', b: 2}, annotations: {x: '2'}, sysctls: {n: 2}, deploy: {labels: {d: 2}}}]
ports: [{ports: ['8080:80', '443', 9000, '127.0.0.1:5000:5000', '[::1]:53:53/udp']}, {ports: ['8080:80/tcp', {target: 80, published: 8080, protocol: udp}, {target: 443}, {target: 9000, host_ip: 0.0.0.0}, {host_ip: 127.0.0.1, published: '5000', target: 5000}, '::1:53:53/UDP']}, {ports: ['8080:80/tcp', {target: 443}, {target: 9000, host_ip: 0.0.0.0}, {host_ip: 127.0.0.1, published: '5000', target: 5000}, '::1:53:53/UDP', {target: 80, published: 8080, protocol: udp}]}]
volumes by target: [{volumes: [./a:/data, 'cache:/cache:ro', /anon]}, {volumes: [./b:/data, {type: volume, source: x, target: /cache}, ./c:/new, 'a:b:c:d']}, {volumes: [./b:/data, {type: volume, source: x, target: /cache}, /anon, ./c:/new, 'a:b:c:d']}]
secrets: [{secrets: [a, {source: b, target: /run/secrets/c}]}, {secrets: [{source: a2, target: a}, c]}, {secrets: [{source: a2, target: a}, c]}]
configs: [{configs: [a, {source: b, target: /etc/b}]}, {configs: [{source: z, target: /a}, {source: b}]}, {configs: [{source: z, target: /a}, {source: b, target: /etc/b}, {source: b}]}]
env_file: [{env_file: [a.env, b.env]}, {env_file: [{path: a.env, required: false}]}, {env_file: [{path: a.env, required: false}, b.env]}]
env_file strings: [{env_file: a.env}, {env_file: b.env}, {env_file: [a.env, b.env]}]
networks: [{networks: [front, back]}, {networks: {front: {aliases: [x]}, extra: null}}, {networks: {front: {aliases: [x]}, back: null, extra: null}}]
aliases: [{networks: {n: {aliases: [a, b]}}}, {networks: {n: {aliases: [b, c]}}}, {networks: {n: {aliases: [a, b, c]}}}]
extra_hosts: [{extra_hosts: ['a=1.1.1.1']}, {extra_hosts: {a: 1.1.1.1, b: [2.2.2.2, '::1']}}, {extra_hosts: ['a=1.1.1.1', 'b=2.2.2.2', 'b=::1']}]
extra_hosts separators: [{extra_hosts: ['a:1.1.1.1', 'v6=[::1]']}, {extra_hosts: ['a=1.1.1.1', 'v6:::1', 'a=2.2.2.2']}, {extra_hosts: ['a:1.1.1.1', 'v6=[::1]', 'a=2.2.2.2']}]
dns: [{dns: 8.8.8.8, dns_search: a.example}, {dns: [8.8.8.8, 1.1.1.1], dns_search: [b.example, a.example]}, {dns: [8.8.8.8, 1.1.1.1], dns_search: [a.example, b.example]}]
caps: [{cap_add: [NET_ADMIN], cap_drop: [ALL]}, {cap_add: [NET_ADMIN, SYS_TIME], cap_drop: [ALL]}, {cap_add: [NET_ADMIN, SYS_TIME], cap_drop: [ALL]}]
expose: [{expose: [80, '443']}, {expose: ['80', 8080]}, {expose: ['80', '443', 8080]}]
links, volumes_from, tmpfs, devices, profiles: [{links: [db], volumes_from: ['a:ro'], tmpfs: [/run, '/tmp:size=1m'], devices: ['/dev/a:/dev/x'], profiles: [p, q]}, {links: [db, 'cache:c'], volumes_from: [a], tmpfs: '/tmp:size=2m', devices: ['/dev/b:/dev/x:r', /dev/y], profiles: [q, r]}, {links: [db, 'cache:c'], volumes_from: [a], tmpfs: [/run, '/tmp:size=2m'], devices: ['/dev/b:/dev/x:r', /dev/y], profiles: [p, q, r]}]
depends_on list+map: [{depends_on: [db, c]}, {depends_on: {db: {condition: service_healthy}, new: {condition: service_started}}}, {depends_on: {db: {condition: service_healthy, required: true}, c: {condition: service_started, required: true}, new: {condition: service_started}}}]
depends_on map+list: [{depends_on: {db: {condition: service_healthy, restart: true}}}, {depends_on: [db, x]}, {depends_on: {db: {condition: service_started, restart: true, required: true}, x: {condition: service_started, required: true}}}]
build string+map: [{build: ./a}, {build: {dockerfile: D, args: [X=1]}}, {build: {context: ./a, dockerfile: D, args: [X=1]}}]
build map+string: [{build: {context: ./a, args: {X: 1}}}, {build: ./b}, {build: {context: ./b, args: {X: 1}}}]
build strings: [{build: ./a}, {build: ./b}, {build: {context: ./b}}]
build args, labels, tags: [{build: {args: {X: 1}, labels: [l=1], tags: [t1]}}, {build: {args: [Y=2, X], labels: {l: 2}, tags: [t1, t2]}}, {build: {args: {X: null, Y: '2'}, labels: {l: 2}, tags: [t1, t2]}}]
ulimits: [{ulimits: {nofile: {soft: 1, hard: 2}, nproc: 5, core: 0}}, {ulimits: {nofile: {soft: 3}, nproc: {soft: 1, hard: 2}}}, {ulimits: {nofile: {soft: 3}, nproc: {soft: 1, hard: 2}, core: 0}}]
logging same driver: [{logging: {driver: syslog, options: {a: 1, b: 1}}}, {logging: {driver: syslog, options: {b: 2}}}, {logging: {driver: syslog, options: {a: 1, b: 2}}}]
logging new driver: [{logging: {driver: local, options: {max-size: 10m}}}, {logging: {driver: syslog, options: {address: x}}}, {logging: {driver: syslog, options: {address: x}}}]
logging no driver: [{logging: {driver: local, options: {a: 1}}}, {logging: {options: {b: 2}}}, {logging: {driver: local, options: {a: 1, b: 2}}}]
logging null: [{logging: {driver: a}}, {logging: null}, {logging: {driver: a}}]
x- keys: [{x-a: {p: 1}}, {x-a: {q: 2}}, {x-a: {p: 1, q: 2}}]
reset: [{image: a, build: ., ports: ['80:80'], environment: {F: b, K: 1}, networks: {n: {aliases: [x]}}, dns: [a]}, {build: !reset , ports: !reset [], environment: {F: !reset }, networks: {n: {aliases: !reset null}}, labels: !reset {}, dns: [!reset a, b]}, {image: a, environment: {K: 1}, networks: {n: {}}, dns: [a, b]}]
reset list entries: [{volumes: [/a], environment: [A=1]}, {volumes: [!reset /b, /c], environment: [!reset B=1]}, {volumes: [/a, /c], environment: {A: '1'}}]
override: [{volumes: [/a:/a], environment: {A: 1}, networks: {n: {aliases: [x]}}, logging: {options: {a: 1}}}, {volumes: !override [/b:/b], environment: !override {C: 3}, networks: {n: !override {ipv4_address: 10.0.0.2}}, logging: {options: !override {b: 2}}}, {volumes: [/b:/b], environment: {C: 3}, networks: {n: {ipv4_address: 10.0.0.2}}, logging: {options: {b: 2}}}]
base tags are spent: [{ports: !reset [80], volumes: !override [/a:/a]}, {ports: [81], volumes: [/b:/b]}, {ports: [81], volumes: [/a:/a, /b:/b]}]
doc ipam config by subnet: [{networks: {n: {ipam: {config: [{subnet: 10.0.0.0/16, gateway: 10.0.0.1, aux_addresses: {h1: 1}}, {subnet: 10.1.0.0/16}]}}}}, {networks: {n: {ipam: {config: [{subnet: 10.2.0.0/16}, {subnet: 10.0.0.0/16, ip_range: 10.0.5.0/24, aux_addresses: {h2: 2}}]}}}}, {networks: {n: {ipam: {config: [{subnet: 10.0.0.0/16, gateway: 10.0.0.1, aux_addresses: {h1: 1, h2: 2}, ip_range: 10.0.5.0/24}, {subnet: 10.1.0.0/16}, {subnet: 10.2.0.0/16}]}}}}]
doc resource labels: [{networks: {n: {labels: [a=1]}}, volumes: {v: {labels: {a: 1}}}}, {networks: {n: {labels: {b: 2}}}, volumes: {v: {labels: [a=2]}, w: null}}, {networks: {n: {labels: {a: '1', b: 2}}}, volumes: {v: {labels: {a: '2'}}, w: null}}]
doc reset resources: [{services: {web: {image: a}, db: {image: b}}, networks: {n: {external: true}, m: {}}}, {services: {db: !reset {}}, networks: {n: !reset {}}}, {services: {web: {image: a}}, networks: {m: {}}}]
doc override resources: [{services: {db: {image: db, restart: always}}, networks: {n: {external: true, name: x}}}, {services: {db: !override {image: db2}}, networks: {n: !override {}}}, {services: {db: {image: db2}}, networks: {n: {}}}]
doc null service: [{services: {web: null}}, {services: {web: {image: a}}}, {services: {web: {image: a}}}]
"#;

    #[test]
    fn merge_rules() {
        let cases = load(CASES, "cases.yaml");
        for (name, case) in cases.as_map().unwrap() {
            let [base, overlay, want] = case.as_seq().unwrap() else { panic!("{name}") };
            let (base, overlay) = (base.clone(), overlay.clone());
            let got = match name.strip_prefix("doc ") {
                Some(_) => merged(base, overlay, Scope::Document),
                None => merged(web(base), web(overlay), Scope::Document)["services"]["web"].take(),
            };
            assert_eq!(got, want.to_json(), "case {name}");
        }
        assert_eq!(cases.as_map().unwrap().len(), 46);
    }

    /// `name: [base, overlay, path of the error]`.
    const ERRORS: &str = r#"
shapes: [{services: {web: {deploy: {}}}}, {services: {web: {deploy: [x]}}}, services.web.deploy]
build: [{services: {web: {build: ./a}}}, {services: {web: {build: [x]}}}, services.web.build]
list: [{services: {web: {volumes: [/a]}}}, {services: {web: {volumes: /b}}}, services.web.volumes]
depends_on: [{services: {web: {depends_on: [a]}}}, {services: {web: {depends_on: 1}}}, services.web.depends_on]
root: [{services: {}}, [a], (top level)]
env entry: [{services: {web: {environment: [A]}}}, {services: {web: {environment: [B, {C: 1}]}}}, 'services.web.environment[1]']
name entry: [{services: {web: {depends_on: [a]}}}, {services: {web: {depends_on: [[b]]}}}, 'services.web.depends_on[0]']
host entry: [{services: {web: {extra_hosts: []}}}, {services: {web: {extra_hosts: {h: {}}}}}, services.web.extra_hosts.h]
"#;

    #[test]
    fn errors_name_the_path_and_point_at_the_overlay() {
        for (name, case) in load(ERRORS, "errors.yaml").as_map().unwrap() {
            let [base, overlay, path] = case.as_seq().unwrap() else { panic!("{name}") };
            let e = merge(base.clone(), overlay.clone(), Scope::Document).unwrap_err();
            assert_eq!((Some(e.path()), e.location().line), (path.as_str(), case.location.line));
        }
        let (base, overlay) = (load("a:\n  b: {}", "a.yaml"), load("a:\n  b: [x]", "b.yaml"));
        let text = merge(base, overlay, Scope::Document).unwrap_err().to_string();
        let want = "b.yaml:2:6: a.b: cannot merge a list onto a mapping (from a.yaml:2:6); write";
        assert!(text.starts_with(want), "{text}");
        let e = merge(load("{a: {}}", "a"), load("{a: 1}", "b"), Scope::Service).unwrap_err();
        assert_eq!(e.path(), "a");
    }

    #[test]
    fn tags_stay_on_the_result_until_stripped() {
        let base = load("{image: a, ports: [80]}", "a.yaml");
        let overlay = load("{ports: !reset [], command: !override [x]}", "b.yaml");
        let mut node = merge(base, overlay, Scope::Service).unwrap();
        let tag = |key| node.get(key).and_then(|n| n.tag);
        assert_eq!((tag("ports"), tag("command")), (Some(Tag::Reset), Some(Tag::Override)));
        strip_tags(&mut node);
        assert_eq!(node.to_json(), json!({"image": "a", "command": ["x"]}));
    }

    #[test]
    fn an_extends_result_still_resets_the_previous_file() {
        // compose-go applies a file's tags to the extended service and to the earlier files.
        let base = load("{image: a, command: [x], ports: [80], volumes: [/a:/a]}", "c.yaml");
        let extending = load("{ports: !reset [], volumes: !override [/b:/b]}", "o.yaml");
        let extended = merge(base, extending, Scope::Service).unwrap();
        let previous = load("{image: old, ports: [1], volumes: [/c:/c]}", "p.yaml");
        let got = merged(web(previous), web(extended), Scope::Document);
        let want = json!({"image": "a", "command": ["x"], "volumes": ["/b:/b"]});
        assert_eq!(got["services"]["web"], want);
    }

    #[test]
    fn an_extends_chain_appends_to_an_overridden_base() {
        // compose-go's TestOverrideMiddle and TestOverrideSelfExtends.
        let base = load("{volumes: [/foo:/foo], depends_on: [one]}", "base.yaml");
        let middle = load("{volumes: !override [/b:/b], depends_on: !override [two]}", "o.yaml");
        let middle = merge(base, middle, Scope::Service).unwrap();
        let top = load("{volumes: [/zot:/zot], depends_on: [base]}", "compose.yaml");
        let got = merged(middle, top, Scope::Service);
        assert_eq!(got["volumes"], json!(["/b:/b", "/zot:/zot"]));
        assert_eq!(keys(&got["depends_on"]), ["two", "base"]);
    }

    #[test]
    fn base_keys_come_first_then_new_keys() {
        let base = "services: {b: {}, a: {image: a, restart: no, environment: [Z=1, A=1]}}\nx: 1";
        let overlay = "volumes: {}\nservices: {c: {}, a: {user: u, image: b, environment: {M: 1}}}";
        let got = merged(load(base, "a"), load(overlay, "b"), Scope::Document);
        assert_eq!(keys(&got), ["services", "x", "volumes"]);
        assert_eq!(keys(&got["services"]), ["b", "a", "c"]);
        assert_eq!(keys(&got["services"]["a"]), ["image", "restart", "environment", "user"]);
        assert_eq!(keys(&got["services"]["a"]["environment"]), ["Z", "A", "M"]);
    }

    #[test]
    fn locations_come_from_the_right_file() {
        let base = "services:\n  web:\n    image: a\n    restart: no\n    environment: [A=1]\n    depends_on: [db]";
        let overlay = "services:\n  web:\n    image: b\n    environment: {B: 2}\n    depends_on: {x: {}}";
        let node = merge(load(base, "a.yaml"), load(overlay, "b.yaml"), Scope::Document).unwrap();
        let want = [
            ("/services/web", "a.yaml:3:5"),
            ("/services/web/image", "b.yaml:3:12"),
            ("/services/web/restart", "a.yaml:4:14"),
            ("/services/web/environment", "a.yaml:5:18"),
            ("/services/web/environment/A", "a.yaml:5:19"),
            ("/services/web/environment/B", "b.yaml:4:22"),
            ("/services/web/depends_on/db/condition", "a.yaml:6:18"),
            ("/services/web/depends_on/x", "b.yaml:5:21"),
        ];
        for (pointer, at) in want {
            assert_eq!(node.locate(pointer).location.to_string(), at, "{pointer}");
        }
    }

    #[test]
    fn a_single_file_is_stripped_and_deduplicated() {
        let text = "ports: !reset [80]\ncommand: !override [x]\ndns: [!reset a, b]\nvolumes: [.:/f, b:/b, s:/f]\nenvironment: [A=1, B=1, A=2]";
        let mut node = web(load(text, "c.yaml"));
        strip_tags(&mut node);
        enforce_unicity(&mut node, Scope::Document);
        let want = json!({"command": ["x"], "dns": ["b"], "volumes": ["s:/f", "b:/b"],
                          "environment": ["A=2", "B=1"]});
        assert_eq!(node.to_json()["services"]["web"], want);
        let mut root = load("!reset {a: 1}", "c.yaml");
        strip_tags(&mut root);
        assert!(root.is_null());
    }

    #[test]
    fn deep_trees_do_not_overflow_the_stack() {
        // Deeper than the parser's nesting limit, on a test thread's small stack.
        let mut node = Node::new(Value::Int(1));
        for _ in 0..250 {
            node = Node::new(Value::Map(Mapping::from_iter([("a".to_owned(), node)])));
        }
        let got = merge(node.clone(), node, Scope::Document).unwrap();
        assert_eq!(got.locate(&"/a".repeat(250)).value, Value::Int(1));
    }

    /// A file of the shared compose corpus, next to the repository as `tests/corpus.rs` has it.
    fn corpus(path: &str) -> Node {
        let dir = FsPath::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
        let text = std::fs::read_to_string(dir.join(path));
        load(&text.unwrap_or_else(|e| panic!("{path}: {e}")), path)
    }

    #[test]
    fn corpus_override_files() {
        let base = corpus("netbox-docker/docker-compose.yml");
        let example = corpus("netbox-docker/docker-compose.override.yml.example");
        let node = merge(base.clone(), example, Scope::Document).unwrap();
        let port = node.locate("/services/netbox/ports/0").location.to_string();
        assert!(port.starts_with("netbox-docker/docker-compose.override.yml.example:4:"));
        let mut want = base.to_json();
        want["services"]["netbox"]["ports"] = json!(["8000:8080"]);
        assert_eq!(node.to_json(), want);
        let test = corpus("netbox-docker/docker-compose.test.yml");
        let overlay = corpus("netbox-docker/docker-compose.test.override.yml");
        let got = merged(test, overlay, Scope::Document);
        assert_eq!(got["services"]["netbox"]["ports"], json!(["127.0.0.1:8000:8080"]));
    }

    #[test]
    fn corpus_extends_reset() {
        let file = corpus("compose-go/loader/testdata/extends/reset.yaml");
        let service = |name| file.get("services").and_then(|s| s.get(name)).unwrap().clone();
        let mut extending = service("base");
        extending.as_map_mut().unwrap().shift_remove("extends");
        let got = merged(service("init"), extending, Scope::Service);
        assert_eq!(got, json!({"image": "alpine:latest"}));
    }

    #[test]
    fn every_corpus_file_merges_onto_itself() {
        let manifest = corpus("manifest.json").to_json();
        // Merging comes after interpolation: `${VAR:-/a}:/b` is no volume spec yet.
        let plain = |e: &&Json| e["valid"] == true && !e["features"].to_string().contains("interp");
        let mut count = 0;
        for entry in manifest["files"].as_array().unwrap().iter().filter(plain) {
            let (path, file) = (&entry["path"], corpus(entry["path"].as_str().unwrap()));
            let got = merged(file.clone(), file, Scope::Document);
            let services = got["services"].as_object().into_iter().flatten();
            let mut names: Vec<_> = services.clone().map(|(name, _)| name).collect();
            names.sort();
            assert_eq!(json!(names), entry["services"], "{path}");
            for (name, service) in services {
                for list in ["ports", "volumes", "secrets"].map(|k| &service[k]) {
                    let list = list.as_array().map_or(&[][..], Vec::as_slice);
                    let unique: HashSet<_> = list.iter().collect();
                    assert_eq!(list.len(), unique.len(), "{path}: {name} kept a duplicate");
                }
            }
            count += 1;
        }
        assert!(count > 150, "only {count} corpus files");
    }
}
