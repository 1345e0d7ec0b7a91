//! Kubernetes' naming rules: DNS-1123/1035 names, label keys and values, data keys.

use std::collections::BTreeSet;

use serde_json::{Map, Value as Json, json};

use super::Ctx;

/// A DNS-1035 label (what Service names must be): lowercase alphanumerics and `-`, starting
/// with a letter, ending with an alphanumeric, at most 63 characters. Every name berth makes
/// is one, so a workload and its Service can share it.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.as_bytes()[0].is_ascii_lowercase()
        && !s.ends_with('-')
}

/// A DNS-1123 label (a pod's hostname): like [`is_dns_label`], but it may start with a digit.
pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A label value: empty, or at most 63 alphanumerics, `-`, `_`, `.`, alphanumeric at both ends.
pub fn is_label_value(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= 63
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric())
}

/// A label or annotation key: an optional DNS-1123 subdomain prefix and `/`, then a name
/// that is a non-empty label value.
pub fn is_qualified_name(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|part| {
                !part.is_empty()
                    && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !part.starts_with('-')
                    && !part.ends_with('-')
            })
    });
    prefix_ok && !name.is_empty() && is_label_value(name)
}

/// `s` made a DNS-1035 label of at most `max` characters: lowercase, runs of other characters
/// as one `-`, a leading `x-` when it would not start with a letter.
pub fn dns_label(s: &str, max: usize) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let mut out = out.trim_matches('-').to_owned();
    if !out.starts_with(|c: char| c.is_ascii_lowercase()) {
        out.insert_str(0, "x-");
    }
    out.truncate(max);
    out.trim_end_matches('-').to_owned()
}

/// `s` as a label value (the project name in `part-of`).
pub fn label_value(s: &str) -> String {
    let mut out: String =
        s.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '-' }).collect();
    out.truncate(63);
    out.trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_owned()
}

/// `s` as a ConfigMap or Secret key (`[-._a-zA-Z0-9]+`).
pub fn data_key(s: &str) -> String {
    let out: String =
        s.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect();
    if out.is_empty() || out == "." || out == ".." { format!("file{out}") } else { out }
}

/// Gives each service a Kubernetes name, warning where it differs from the service's key (its
/// DNS name inside berth) and keeping names unique.
pub(super) fn assign_service_names(ctx: &mut Ctx<'_>) {
    let mut taken = BTreeSet::new();
    for key in ctx.project.services.keys() {
        let mut name = dns_label(key, 63);
        if taken.contains(&name) {
            let base = name.clone();
            let mut n = 2;
            while taken.contains(&name) {
                let suffix = format!("-{n}");
                name = format!("{}{suffix}", &base[..base.len().min(63 - suffix.len())]);
                n += 1;
            }
        }
        if name != *key {
            let msg = format!(
                "{key:?} is not a valid Kubernetes name: its objects are named {name:?}, \
                 and other services must reach it as {name:?}"
            );
            ctx.warn(key, "name", msg);
        }
        taken.insert(name.clone());
        ctx.names.insert(key.clone(), name);
    }
}

/// Compose labels split into valid Kubernetes labels and, for the rest, annotations (which
/// take any key and value), with a warning for each that moved.
pub(super) fn labels_and_annotations(
    ctx: &mut Ctx<'_>,
    service: &str,
    labels: &std::collections::BTreeMap<String, String>,
) -> (Map<String, Json>, Map<String, Json>) {
    let (mut valid, mut annotations) = (Map::new(), Map::new());
    for (k, v) in labels {
        if is_qualified_name(k) && is_label_value(v) {
            valid.insert(k.clone(), json!(v));
        } else if is_qualified_name(k) {
            ctx.warn(service, "labels", format!("{k}: the value is not a valid label value: kept as an annotation"));
            annotations.insert(k.clone(), json!(v));
        } else {
            ctx.warn(service, "labels", format!("{k:?} is not a valid label key: left out"));
        }
    }
    (valid, annotations)
}
