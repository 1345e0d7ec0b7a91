//! Keys berth keeps without modelling them (`other` maps), rewritten into the canonical form
//! `docker compose config` prints: short syntaxes expanded, option values and byte sizes as
//! strings, numbers and booleans that came through `${VAR}` typed again.
//!
//! The rewrite never fails: a value compose would reject was already reported by the schema,
//! and one this module does not recognise is kept as written.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value as Json};

use super::super::units;
use super::read::resolve_path;

/// A verbatim map from the model.
type Other = BTreeMap<String, Json>;

/// How a value that arrived as a string is typed again.
#[derive(Clone, Copy)]
enum Cast {
    Int,
    Float,
    Bool,
}

fn cast(value: &mut Json, to: Cast) {
    let Json::String(text) = value else { return };
    let t = text.trim();
    let typed = match to {
        Cast::Int => t.parse::<i64>().ok().map(Json::from),
        Cast::Float => t.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(Json::Number),
        Cast::Bool => match t.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Some(Json::Bool(true)),
            "false" | "no" | "off" | "0" => Some(Json::Bool(false)),
            _ => None,
        },
    };
    if let Some(typed) = typed {
        *value = typed;
    }
}

fn cast_keys(map: &mut Map<String, Json>, keys: &[(&str, Cast)]) {
    for (key, to) in keys {
        if let Some(v) = map.get_mut(*key) {
            cast(v, *to);
        }
    }
}

/// A scalar as the string Go's `map[string]string` holds.
fn scalar_string(value: &Json) -> Option<String> {
    match value {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        Json::Bool(b) => Some(b.to_string()),
        Json::Null => Some(String::new()),
        Json::Array(_) | Json::Object(_) => None,
    }
}

/// Every value of a mapping as a string (`driver_opts`, `logging.options`, `storage_opt`).
fn stringify_values(value: &mut Json) {
    if let Json::Object(map) = value {
        for v in map.values_mut() {
            if let Some(s) = scalar_string(v) {
                *v = Json::String(s);
            }
        }
    }
}

/// A `KEY=VALUE` list as a mapping; a bare key maps to `bare`.
fn list_to_map(value: &mut Json, bare: &Json) {
    let Json::Array(items) = value else { return };
    let mut map = Map::new();
    for item in items.iter() {
        let Some(entry) = item.as_str() else { return };
        match entry.split_once('=') {
            Some((k, v)) => map.insert(k.to_owned(), Json::String(v.to_owned())),
            None => map.insert(entry.to_owned(), bare.clone()),
        };
    }
    *value = Json::Object(map);
}

/// A string where a list is due, as a one-item list.
fn string_to_list(value: &mut Json) {
    if value.is_string() {
        *value = Json::Array(vec![value.take()]);
    }
}

/// A byte size as compose's decimal string; zero means unset and is dropped.
fn bytes(other: &mut Map<String, Json>, key: &str) {
    let Some(value) = other.get(key) else { return };
    let parsed = match value {
        Json::Number(n) => n.as_i64(),
        Json::String(s) => {
            units::parse_bytes(s).ok().and_then(|b| i64::try_from(b).ok()).or_else(|| s.trim().parse().ok())
        }
        _ => None,
    };
    match parsed {
        Some(0) => {
            other.remove(key);
        }
        Some(b) => {
            other.insert(key.to_owned(), Json::String(b.to_string()));
        }
        None => {}
    }
}

/// A Go duration string in compose's spelling (`90s` → `1m30s`).
fn duration(value: &mut Json) {
    let text = match value {
        Json::String(s) => s.clone(),
        Json::Number(n) => n.to_string(),
        _ => return,
    };
    if let Ok(d) = units::parse_duration(&text) {
        *value = Json::String(units::format_duration(d));
    }
}

/// A command as compose's `ShellCommand`: a string is split as a shell would.
fn shell_command(value: &Json) -> Json {
    match value {
        Json::String(s) => match shell_words::split(s) {
            Ok(words) => Json::Array(words.into_iter().map(Json::String).collect()),
            Err(_) => value.clone(),
        },
        other => other.clone(),
    }
}

/// A lifecycle or watch `exec` hook: `command` in exec form (always printed), `environment`
/// as a mapping.
pub(crate) fn hook(value: &Json) -> Json {
    let Json::Object(map) = value else { return value.clone() };
    let mut out = map.clone();
    out.insert("command".to_owned(), map.get("command").map_or(Json::Null, shell_command));
    if let Some(env) = out.get_mut("environment") {
        list_to_map(env, &Json::Null);
    }
    Json::Object(out)
}

/// A GPU or device reservation: `count: all` is -1, and so is a request naming no count.
fn device_request(value: &mut Json) {
    let Json::Object(map) = value else { return };
    let named = map.contains_key("device_ids");
    match map.get_mut("count") {
        Some(count) if count.as_str() == Some("all") => *count = Json::from(-1),
        Some(count) => cast(count, Cast::Int),
        None if !named => {
            map.insert("count".to_owned(), Json::from(-1));
        }
        None => {}
    }
}

/// `SOURCE[:TARGET[:PERMISSIONS]]` device mappings in long form.
fn device_mapping(value: &mut Json) {
    let Some(spec) = value.as_str() else { return };
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, permissions) = match parts.as_slice() {
        [s] => (*s, *s, "rwm"),
        [s, t] => (*s, *t, "rwm"),
        [s, t, p] => (*s, *t, *p),
        _ => return,
    };
    let target = if target.is_empty() { source } else { target };
    *value = serde_json::json!({"source": source, "target": target, "permissions": permissions});
}

/// `extra_hosts` in any form as compose prints it: a sorted `host=address` list.
fn hosts_list(value: &Json) -> Option<Vec<String>> {
    let mut out = Vec::new();
    match value {
        Json::Object(map) => {
            for (host, ips) in map {
                match ips {
                    Json::Array(list) => {
                        out.extend(list.iter().filter_map(scalar_string).map(|ip| format!("{host}={ip}")))
                    }
                    other => out.push(format!("{host}={}", scalar_string(other)?)),
                }
            }
        }
        Json::Array(items) => {
            for item in items {
                let entry = item.as_str()?;
                // `host=ip` (current) or `host:ip` (legacy; the first colon separates).
                let (host, ip) = entry.split_once('=').or_else(|| entry.split_once(':'))?;
                out.push(format!("{host}={}", ip.trim_start_matches('[').trim_end_matches(']')));
            }
        }
        _ => return None,
    }
    out.sort();
    Some(out)
}

/// Go's `omitempty`: a string key set to `""` (an unset `${VAR}`) is as good as absent.
/// `x-` keys are the user's own and stay as written.
fn drop_blank(other: &mut Other) {
    other.retain(|k, v| k.starts_with("x-") || v.as_str() != Some(""));
}

/// A service's verbatim keys.
pub(crate) fn service(other: &mut Other) {
    drop_blank(other);
    let mut map: Map<String, Json> = std::mem::take(other).into_iter().collect();
    cast_keys(
        &mut map,
        &[
            ("cpu_count", Cast::Int),
            ("cpu_percent", Cast::Float),
            ("cpu_period", Cast::Int),
            ("cpu_quota", Cast::Int),
            ("cpu_rt_period", Cast::Int),
            ("cpu_rt_runtime", Cast::Int),
            ("oom_kill_disable", Cast::Bool),
            ("oom_score_adj", Cast::Int),
        ],
    );
    for key in ["memswap_limit", "mem_reservation", "mem_swappiness"] {
        bytes(&mut map, key);
    }
    if let Some(Json::Array(devices)) = map.get_mut("devices") {
        devices.iter_mut().for_each(device_mapping);
    }
    if let Some(gpus) = map.get_mut("gpus") {
        if gpus.is_string() {
            *gpus = serde_json::json!([{}]);
        }
        if let Json::Array(requests) = gpus {
            requests.iter_mut().for_each(device_request);
        }
    }
    if let Some(options) = map.get_mut("logging").and_then(|l| l.get_mut("options")) {
        stringify_values(options);
    }
    for key in ["post_start", "pre_stop"] {
        if let Some(Json::Array(hooks)) = map.get_mut(key) {
            hooks.iter_mut().for_each(|h| *h = hook(h));
        }
    }
    if let Some(Json::Array(models)) = map.get_mut("models") {
        let names = models.iter().filter_map(|m| m.as_str().map(|n| (n.to_owned(), Json::Null))).collect();
        map.insert("models".to_owned(), Json::Object(names));
    }
    if let Some(Json::Array(groups)) = map.get_mut("group_add") {
        for g in groups.iter_mut() {
            if let Some(s) = scalar_string(g) {
                *g = Json::String(s);
            }
        }
    }
    if let Some(annotations) = map.get_mut("annotations") {
        list_to_map(annotations, &Json::String(String::new()));
    }
    if let Some(opts) = map.get_mut("storage_opt") {
        stringify_values(opts);
    }
    if let Some(Json::Object(options)) = map.get_mut("provider").and_then(|p| p.get_mut("options")) {
        for v in options.values_mut() {
            let items = match v.take() {
                Json::Array(items) => items,
                one => vec![one],
            };
            *v = Json::Array(items.iter().filter_map(scalar_string).map(Json::String).collect());
        }
    }
    *other = map.into_iter().collect();
}

/// A build section's verbatim keys.
pub(crate) fn build(other: &mut Other, project_dir: &Path) {
    drop_blank(other);
    if let Some(Json::Array(secrets)) = other.get_mut("secrets") {
        for s in secrets.iter_mut() {
            if let Json::String(source) = s {
                *s = serde_json::json!({"source": source});
            }
        }
    }
    if let Some(contexts) = other.get_mut("additional_contexts") {
        list_to_map(contexts, &Json::String(String::new()));
        if let Json::Object(map) = contexts {
            for v in map.values_mut() {
                if let Json::String(path) = v
                    && !is_remote_context(path)
                {
                    *path = resolve_path(project_dir, path).display().to_string();
                }
            }
        }
    }
    if let Some(hosts) = other.get_mut("extra_hosts")
        && let Some(list) = hosts_list(hosts)
    {
        *hosts = Json::Array(list.into_iter().map(Json::String).collect());
    }
    let mut map: Map<String, Json> = std::mem::take(other).into_iter().collect();
    bytes(&mut map, "shm_size");
    for key in ["cache_from", "cache_to", "platforms"] {
        if let Some(v) = map.get_mut(key) {
            string_to_list(v);
        }
    }
    for key in ["provenance", "sbom"] {
        if let Some(v) = map.get_mut(key)
            && !v.is_string()
            && let Some(s) = scalar_string(v)
        {
            *v = Json::String(s);
        }
    }
    *other = map.into_iter().collect();
}

/// A context that is not a local directory: a URL, a git reference, an image or a service.
fn is_remote_context(path: &str) -> bool {
    path.contains("://")
        || path.starts_with("service:")
        || ["github.com/", "git@"].iter().any(|prefix| path.starts_with(prefix))
}

/// A deploy section's verbatim keys.
pub(crate) fn deploy(other: &mut Other) {
    if let Some(labels) = other.get_mut("labels") {
        list_to_map(labels, &Json::String(String::new()));
    }
    for key in ["update_config", "rollback_config"] {
        if let Some(Json::Object(update)) = other.get_mut(key) {
            cast_keys(update, &[("parallelism", Cast::Int), ("max_failure_ratio", Cast::Float)]);
            for d in ["delay", "monitor"] {
                if let Some(v) = update.get_mut(d) {
                    duration(v);
                }
            }
        }
    }
}

/// `deploy.placement`, verbatim with its counts typed.
pub(crate) fn placement(value: &Json) -> BTreeMap<String, Json> {
    let Json::Object(map) = value else { return BTreeMap::new() };
    let mut map = map.clone();
    cast_keys(&mut map, &[("max_replicas_per_node", Cast::Int)]);
    map.into_iter().collect()
}

/// The verbatim keys of `deploy.resources.limits` or `.reservations`.
pub(crate) fn resource_limits(other: &mut Other) {
    if let Some(Json::Array(devices)) = other.get_mut("devices") {
        devices.iter_mut().for_each(device_request);
    }
}

/// The verbatim keys of a service's attachment to a network.
pub(crate) fn attachment(other: &mut Other) {
    drop_blank(other);
    if let Some(opts) = other.get_mut("driver_opts") {
        stringify_values(opts);
    }
    if let Some(v) = other.get_mut("gw_priority") {
        cast(v, Cast::Int);
    }
}

/// A top-level network's verbatim keys.
pub(crate) fn network(other: &mut Other) {
    drop_blank(other);
    if let Some(opts) = other.get_mut("driver_opts") {
        stringify_values(opts);
    }
    for key in ["attachable", "enable_ipv4", "enable_ipv6"] {
        if let Some(v) = other.get_mut(key) {
            cast(v, Cast::Bool);
        }
    }
}

/// A top-level volume's verbatim keys. A `local` volume that binds a host directory
/// (`o: bind`) has its `device` resolved like any other host path.
pub(crate) fn volume(other: &mut Other, driver: Option<&str>, project_dir: &Path) {
    drop_blank(other);
    let Some(opts) = other.get_mut("driver_opts") else { return };
    stringify_values(opts);
    let Json::Object(opts) = opts else { return };
    if driver == Some("local")
        && opts.get("o").and_then(Json::as_str) == Some("bind")
        && let Some(Json::String(device)) = opts.get_mut("device")
    {
        *device = resolve_path(project_dir, device).display().to_string();
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn other(value: Json) -> Other {
        value.as_object().cloned().unwrap_or_default().into_iter().collect()
    }

    fn as_json(map: Other) -> Json {
        Json::Object(map.into_iter().collect())
    }

    #[test]
    fn service_keys_take_compose_shapes() {
        let mut o = other(json!({
            "devices": ["/dev/fuse", "/dev/a:/dev/b", "/dev/c:/dev/d:r"],
            "gpus": "all",
            "memswap_limit": -1,
            "mem_reservation": "1k",
            "mem_swappiness": 0,
            "oom_score_adj": "10",
            "logging": {"driver": "local", "options": {"max-file": 3, "compress": true}},
            "post_start": [{"command": "echo hi there", "environment": ["A=1", "B"]}],
            "models": ["m1"],
            "group_add": [100],
            "annotations": ["k=v"],
            "provider": {"type": "model", "options": {"size": [1, "2"], "model": "ai/x"}},
            "platform": "",
            "x-empty": "",
        }));
        service(&mut o);
        assert_eq!(
            as_json(o),
            json!({
                "devices": [
                    {"source": "/dev/fuse", "target": "/dev/fuse", "permissions": "rwm"},
                    {"source": "/dev/a", "target": "/dev/b", "permissions": "rwm"},
                    {"source": "/dev/c", "target": "/dev/d", "permissions": "r"},
                ],
                "gpus": [{"count": -1}],
                "memswap_limit": "-1",
                "mem_reservation": "1024",
                "oom_score_adj": 10,
                "logging": {"driver": "local", "options": {"max-file": "3", "compress": "true"}},
                "post_start": [{"command": ["echo", "hi", "there"], "environment": {"A": "1", "B": null}}],
                "models": {"m1": null},
                "group_add": ["100"],
                "annotations": {"k": "v"},
                "provider": {"type": "model", "options": {"size": ["1", "2"], "model": ["ai/x"]}},
                "x-empty": "",
            })
        );
    }

    #[test]
    fn build_keys_resolve_contexts_and_sort_hosts() {
        let dir = Path::new("/srv/app");
        let mut o = other(json!({
            "secrets": ["s", {"source": "t", "target": "x"}],
            "additional_contexts": ["data=../data", "img=docker-image://alpine", "svc=service:base"],
            "extra_hosts": ["z:1.1.1.1", "b=2.2.2.2", "v6=[::1]"],
            "shm_size": "1m",
            "cache_from": "a",
            "provenance": true,
        }));
        build(&mut o, dir);
        assert_eq!(
            as_json(o),
            json!({
                "secrets": [{"source": "s"}, {"source": "t", "target": "x"}],
                "additional_contexts": {"data": "/srv/data", "img": "docker-image://alpine", "svc": "service:base"},
                "extra_hosts": ["b=2.2.2.2", "v6=::1", "z=1.1.1.1"],
                "shm_size": "1048576",
                "cache_from": ["a"],
                "provenance": "true",
            })
        );
    }

    #[test]
    fn deploy_durations_devices_and_labels() {
        let mut o = other(json!({"labels": ["a=b"], "update_config": {"delay": "90s", "parallelism": "2"}}));
        deploy(&mut o);
        assert_eq!(as_json(o), json!({"labels": {"a": "b"}, "update_config": {"delay": "1m30s", "parallelism": 2}}));
        let mut limits =
            other(json!({"devices": [{"capabilities": ["gpu"]}, {"count": "all"}, {"device_ids": ["0"]}]}));
        resource_limits(&mut limits);
        assert_eq!(
            as_json(limits),
            json!({"devices": [{"capabilities": ["gpu"], "count": -1}, {"count": -1}, {"device_ids": ["0"]}]})
        );
        assert_eq!(placement(&json!({"max_replicas_per_node": "3"})).get("max_replicas_per_node"), Some(&json!(3)));
    }

    #[test]
    fn top_level_options_are_strings_and_bind_devices_absolute() {
        let mut net = other(json!({"driver_opts": {"mtu": 1400}, "enable_ipv6": "true"}));
        network(&mut net);
        assert_eq!(as_json(net), json!({"driver_opts": {"mtu": "1400"}, "enable_ipv6": true}));
        let dir = Path::new("/srv/app");
        let mut vol = other(json!({"driver_opts": {"o": "bind", "type": "none", "device": "./data"}}));
        volume(&mut vol, Some("local"), dir);
        assert_eq!(vol["driver_opts"]["device"], "/srv/app/data");
        let mut other_driver = other(json!({"driver_opts": {"o": "bind", "device": "./data"}}));
        volume(&mut other_driver, None, dir);
        assert_eq!(other_driver["driver_opts"]["device"], "./data", "only the local driver binds host paths");
    }

    #[test]
    fn hooks_always_name_a_command() {
        assert_eq!(hook(&json!({"user": "root"})), json!({"user": "root", "command": null}));
        assert_eq!(hook(&json!({"command": ["a", "b"]})), json!({"command": ["a", "b"]}));
        assert_eq!(
            hosts_list(&json!({"h": ["1.1.1.1", "::1"], "a": "2.2.2.2"})).unwrap(),
            ["a=2.2.2.2", "h=1.1.1.1", "h=::1"]
        );
        assert_eq!(hosts_list(&json!(["bad"])), None);
    }
}
