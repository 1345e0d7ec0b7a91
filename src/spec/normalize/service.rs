//! One service: raw tree → [`model::Service`].

use std::collections::BTreeMap;
use std::path::Path;

use indexmap::IndexMap;

use super::super::dotenv;
use super::super::model::{Build, Condition, DependsOn, EnvFile, FileMount, Service, ServiceNetwork};
use super::super::yaml::{Node, Value};
use super::canonical;
use super::read::{Reader, child, index, resolve_path};
use super::sections::{deploy, develop, healthcheck, port_list, ulimits, volume_list};

/// What the service normaliser needs from the project.
#[derive(Debug)]
pub(crate) struct ServiceContext<'a> {
    /// Relative host paths are resolved against this.
    pub project_dir: &'a Path,
    /// The interpolation environment: values for bare `environment` keys and env files.
    pub env: &'a BTreeMap<String, String>,
}

/// Keys modelled by [`model::Service`]; everything else is kept verbatim in `other`.
const MODELLED: &[&str] = &[
    "profiles",
    "build",
    "cap_add",
    "cap_drop",
    "command",
    "configs",
    "container_name",
    "cpu_shares",
    "cpus",
    "cpuset",
    "depends_on",
    "deploy",
    "develop",
    "dns",
    "dns_search",
    "entrypoint",
    "env_file",
    "environment",
    "expose",
    "extra_hosts",
    "healthcheck",
    "hostname",
    "image",
    "init",
    "ipc",
    "labels",
    "label_file",
    "links",
    "mem_limit",
    "network_mode",
    "networks",
    "pid",
    "pids_limit",
    "ports",
    "privileged",
    "pull_policy",
    "read_only",
    "restart",
    "scale",
    "secrets",
    "shm_size",
    "stdin_open",
    "stop_grace_period",
    "stop_signal",
    "sysctls",
    "tmpfs",
    "tty",
    "ulimits",
    "user",
    "volumes",
    "volumes_from",
    "working_dir",
    "extends",
];

pub(crate) fn service(r: &mut Reader, ctx: &ServiceContext<'_>, name: &str, node: &Node, path: &str) -> Service {
    let mut s = Service { name: name.to_owned(), ..Service::default() };
    let Some(map) = node.as_map() else {
        // `web:` with nothing under it: compose accepts an empty service.
        if !node.is_null() {
            r.error(node, path, format!("a service must be a mapping, not {}", node.kind_name()));
        }
        return s;
    };
    s.other = Reader::verbatim(map, MODELLED);
    canonical::service(&mut s.other);
    let get = |k: &str| map.get(k);
    let p = |k: &str| child(path, k);

    if let Some(n) = get("image") {
        s.image = r.string(n, &p("image"));
    }
    if let Some(n) = get("build") {
        s.build = build(r, ctx, n, &p("build"));
    }
    s.profiles = get("profiles").map(|n| r.strings(n, &p("profiles"))).unwrap_or_default();
    s.command = get("command").and_then(|n| shell_command(r, n, &p("command")));
    s.entrypoint = get("entrypoint").and_then(|n| shell_command(r, n, &p("entrypoint")));
    for (key, field) in [
        ("container_name", &mut s.container_name),
        ("hostname", &mut s.hostname),
        ("user", &mut s.user),
        ("working_dir", &mut s.working_dir),
        ("stop_signal", &mut s.stop_signal),
        ("network_mode", &mut s.network_mode),
        ("ipc", &mut s.ipc),
        ("pid", &mut s.pid),
        ("pull_policy", &mut s.pull_policy),
        ("cpuset", &mut s.cpuset),
    ] {
        if let Some(n) = get(key) {
            *field = r.string(n, &p(key));
        }
    }
    // compose's deprecated spelling of `missing`.
    if s.pull_policy.as_deref() == Some("if_not_present") {
        s.pull_policy = Some("missing".into());
    }
    for (key, field) in [
        ("privileged", &mut s.privileged),
        ("read_only", &mut s.read_only),
        ("tty", &mut s.tty),
        ("stdin_open", &mut s.stdin_open),
    ] {
        if let Some(n) = get(key) {
            *field = r.boolean(n, &p(key)).unwrap_or(false);
        }
    }
    if let Some(n) = get("init") {
        s.init = r.boolean(n, &p("init"));
    }
    for (key, field) in [
        ("cap_add", &mut s.cap_add),
        ("cap_drop", &mut s.cap_drop),
        ("dns", &mut s.dns),
        ("dns_search", &mut s.dns_search),
        ("links", &mut s.links),
        ("volumes_from", &mut s.volumes_from),
        ("tmpfs", &mut s.tmpfs),
        ("expose", &mut s.expose),
    ] {
        if let Some(n) = get(key) {
            *field = r.strings(n, &p(key));
        }
    }
    if let Some(n) = get("cpus") {
        s.cpus = r.number(n, &p("cpus"));
    }
    if let Some(n) = get("cpu_shares") {
        s.cpu_shares = r.integer(n, &p("cpu_shares"));
    }
    if let Some(n) = get("pids_limit") {
        s.pids_limit = r.integer(n, &p("pids_limit"));
    }
    if let Some(n) = get("scale") {
        s.scale = r.count(n, &p("scale"));
    }
    if let Some(n) = get("mem_limit") {
        s.mem_limit = r.bytes(n, &p("mem_limit"));
    }
    if let Some(n) = get("shm_size") {
        s.shm_size = r.bytes(n, &p("shm_size"));
    }
    if let Some(n) = get("stop_grace_period") {
        s.stop_grace_period = r.duration(n, &p("stop_grace_period"));
    }
    if let Some(n) = get("restart") {
        s.restart = r.string(n, &p("restart"));
        if let Some(policy) = &s.restart
            && let Err(why) = check_restart(policy)
        {
            r.error(n, &p("restart"), why);
        }
    }
    if let Some(n) = get("labels") {
        s.labels = r.labels(n, &p("labels"));
    }
    if let Some(n) = get("label_file") {
        let mut values = IndexMap::new();
        for (i, file) in r.strings(n, &p("label_file")).into_iter().enumerate() {
            read_env_file(r, ctx, n, &index(&p("label_file"), i), &file, true, None, &mut values);
        }
        for (k, v) in values {
            s.labels.entry(k).or_insert(v);
        }
    }
    if let Some(n) = get("sysctls") {
        s.sysctls = r.labels(n, &p("sysctls"));
    }
    if let Some(n) = get("extra_hosts") {
        s.extra_hosts = extra_hosts(r, n, &p("extra_hosts"));
    }
    if let Some(n) = get("env_file") {
        s.env_file = env_files(r, n, &p("env_file"));
    }
    s.environment = environment(r, ctx, &s.env_file, get("env_file"), get("environment"), path);
    if let Some(n) = get("ports") {
        s.ports = port_list(r, n, &p("ports"));
    }
    if let Some(n) = get("volumes") {
        s.volumes = volume_list(r, ctx, n, &p("volumes"));
    }
    if let Some(n) = get("depends_on") {
        s.depends_on = depends_on(r, n, &p("depends_on"));
    }
    if let Some(n) = get("networks") {
        s.networks = networks(r, n, &p("networks"));
    }
    if let Some(n) = get("healthcheck") {
        s.healthcheck = healthcheck(r, n, &p("healthcheck"));
    }
    if let Some(n) = get("ulimits") {
        s.ulimits = ulimits(r, n, &p("ulimits"));
    }
    if let Some(n) = get("deploy") {
        s.deploy = deploy(r, n, &p("deploy"));
    }
    if let Some(n) = get("develop") {
        s.develop = develop(r, ctx, n, &p("develop"));
    }
    if let Some(n) = get("secrets") {
        s.secrets = file_mounts(r, n, &p("secrets"));
        // Secrets are files under /run/secrets unless a target says otherwise.
        for m in &mut s.secrets {
            m.target.get_or_insert_with(|| format!("/run/secrets/{}", m.source));
        }
    }
    if let Some(n) = get("configs") {
        s.configs = file_mounts(r, n, &p("configs"));
    }
    s
}

/// `restart:` values docker accepts.
fn check_restart(policy: &str) -> Result<(), String> {
    match policy.split_once(':') {
        None if matches!(policy, "no" | "always" | "unless-stopped" | "on-failure") => Ok(()),
        Some(("on-failure", n)) if n.parse::<u32>().is_ok() => Ok(()),
        _ => Err(format!(
            "invalid restart policy {policy:?}: expected \"no\", always, on-failure[:max-retries] or unless-stopped"
        )),
    }
}

/// A command as a list: strings are split as a POSIX shell would (compose does the same).
fn shell_command(r: &mut Reader, node: &Node, path: &str) -> Option<Vec<String>> {
    match &node.value {
        Value::Null => None,
        Value::Seq(_) => Some(r.strings(node, path)),
        _ => {
            let text = r.string(node, path)?;
            match shell_words::split(&text) {
                Ok(words) => Some(words),
                Err(e) => {
                    r.error(node, path, format!("cannot split {text:?} into words: {e}"));
                    None
                }
            }
        }
    }
}

fn build(r: &mut Reader, ctx: &ServiceContext<'_>, node: &Node, path: &str) -> Option<Build> {
    let resolve = |c: &str| -> String {
        // Remote contexts (git URLs, URLs) are kept as written.
        if c.contains("://") || c.starts_with("git@") {
            c.to_owned()
        } else {
            resolve_path(ctx.project_dir, c).display().to_string()
        }
    };
    if let Some(text) = node.as_str() {
        return Some(Build { context: resolve(text), dockerfile: Some("Dockerfile".into()), ..Build::default() });
    }
    let map = node.as_map()?;
    let mut b = Build {
        other: Reader::verbatim(
            map,
            &["context", "dockerfile", "dockerfile_inline", "args", "target", "labels", "tags"],
        ),
        ..Build::default()
    };
    canonical::build(&mut b.other, ctx.project_dir);
    let context = map.get("context").and_then(|n| r.string(n, &child(path, "context"))).unwrap_or_else(|| ".".into());
    b.context = resolve(&context);
    b.dockerfile_inline = map.get("dockerfile_inline").and_then(|n| r.string(n, &child(path, "dockerfile_inline")));
    b.dockerfile = map.get("dockerfile").and_then(|n| r.string(n, &child(path, "dockerfile")));
    if b.dockerfile.is_none() && b.dockerfile_inline.is_none() {
        b.dockerfile = Some("Dockerfile".into());
    }
    // An arg without a value takes the interpolation environment's, or is left out.
    b.args = map
        .get("args")
        .map(|n| r.key_values(n, &child(path, "args")))
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| match v {
            Some(v) => Some((k, Some(v))),
            None => ctx.env.get(&k).map(|v| (k, Some(v.clone()))),
        })
        .collect();
    b.target = map.get("target").and_then(|n| r.string(n, &child(path, "target")));
    b.labels = map.get("labels").map(|n| r.labels(n, &child(path, "labels"))).unwrap_or_default();
    b.tags = map.get("tags").map(|n| r.strings(n, &child(path, "tags"))).unwrap_or_default();
    Some(b)
}

fn extra_hosts(r: &mut Reader, node: &Node, path: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    match &node.value {
        Value::Map(map) => {
            for (host, v) in map {
                out.entry(host.clone()).or_default().extend(r.strings(v, &child(path, host)));
            }
        }
        _ => {
            for (i, entry) in r.strings(node, path).into_iter().enumerate() {
                // `host=ip` (current) or `host:ip` (legacy; IPv6 addresses contain colons, so the
                // first colon separates).
                let split = entry.split_once('=').or_else(|| entry.split_once(':'));
                match split {
                    Some((h, ip)) if !h.is_empty() && !ip.is_empty() => {
                        out.entry(h.to_owned()).or_default().push(ip.trim_matches(['[', ']']).to_owned());
                    }
                    _ => {
                        let n = node.as_seq().and_then(|s| s.get(i)).unwrap_or(node);
                        r.error(n, &index(path, i), format!("invalid extra host {entry:?}: expected host=address"));
                    }
                }
            }
        }
    }
    out
}

fn env_files(r: &mut Reader, node: &Node, path: &str) -> Vec<EnvFile> {
    let items: Vec<&Node> = match &node.value {
        Value::Seq(items) => items.iter().collect(),
        _ => vec![node],
    };
    let mut out = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let p = if node.as_seq().is_some() { index(path, i) } else { path.to_owned() };
        if let Some(map) = item.as_map() {
            let Some(file) = map.get("path").and_then(|n| r.string(n, &child(&p, "path"))) else { continue };
            let required = map.get("required").and_then(|n| r.boolean(n, &child(&p, "required"))).unwrap_or(true);
            let format = map.get("format").and_then(|n| r.string(n, &child(&p, "format")));
            out.push(EnvFile { path: file, required, format });
        } else if let Some(file) = r.string(item, &p) {
            out.push(EnvFile { path: file, required: true, format: None });
        }
    }
    out
}

/// Reads one env or label file into `vars`; later files override earlier ones and may
/// interpolate their values. `None` format is compose's dotenv syntax.
#[allow(clippy::too_many_arguments)]
fn read_env_file(
    r: &mut Reader,
    ctx: &ServiceContext<'_>,
    node: &Node,
    path: &str,
    file: &str,
    required: bool,
    format: Option<&str>,
    vars: &mut IndexMap<String, String>,
) {
    let full = resolve_path(ctx.project_dir, file);
    let text = match std::fs::read_to_string(&full) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return,
        Err(e) => {
            r.error(node, path, format!("env file {} not found: {e}", full.display()));
            return;
        }
    };
    let parsed = match format {
        Some("raw") => dotenv::parse_raw(&text, ctx.env).map(|m| vars.extend(m)),
        _ => dotenv::parse_into(&text, ctx.env, vars).map(drop),
    };
    if let Err(e) = parsed {
        r.error(node, path, format!("{}: {e}", full.display()));
    }
}

/// env_file values in order, then `environment` over them; a bare key takes the interpolation
/// environment's value or stays unset.
fn environment(
    r: &mut Reader,
    ctx: &ServiceContext<'_>,
    files: &[EnvFile],
    files_node: Option<&Node>,
    env_node: Option<&Node>,
    service_path: &str,
) -> BTreeMap<String, Option<String>> {
    let mut out: BTreeMap<String, Option<String>> = BTreeMap::new();
    if let Some(files_node) = files_node {
        let mut vars = IndexMap::new();
        for (i, f) in files.iter().enumerate() {
            let p = index(&child(service_path, "env_file"), i);
            read_env_file(r, ctx, files_node, &p, &f.path, f.required, f.format.as_deref(), &mut vars);
        }
        out.extend(vars.into_iter().map(|(k, v)| (k, Some(v))));
    }
    if let Some(n) = env_node {
        for (k, v) in r.key_values(n, &child(service_path, "environment")) {
            let value = v.or_else(|| ctx.env.get(&k).cloned());
            out.insert(k, value);
        }
    }
    out
}

fn depends_on(r: &mut Reader, node: &Node, path: &str) -> BTreeMap<String, DependsOn> {
    let mut out = BTreeMap::new();
    let started = || DependsOn { condition: Condition::Started, required: true, restart: false };
    match &node.value {
        Value::Seq(_) => {
            for name in r.strings(node, path) {
                out.insert(name, started());
            }
        }
        Value::Map(map) => {
            for (name, v) in map {
                let p = child(path, name);
                let mut dep = started();
                if let Some(m) = v.as_map() {
                    if let Some(c) = m.get("condition") {
                        match r.string(c, &child(&p, "condition")).as_deref() {
                            Some("service_started") | None => {}
                            Some("service_healthy") => dep.condition = Condition::Healthy,
                            Some("service_completed_successfully") => dep.condition = Condition::CompletedSuccessfully,
                            Some(other) => r.error(c, &child(&p, "condition"), format!(
                                "unknown condition {other:?}: expected service_started, service_healthy or service_completed_successfully"
                            )),
                        }
                    }
                    if let Some(n) = m.get("required") {
                        dep.required = r.boolean(n, &child(&p, "required")).unwrap_or(true);
                    }
                    if let Some(n) = m.get("restart") {
                        dep.restart = r.boolean(n, &child(&p, "restart")).unwrap_or(false);
                    }
                }
                out.insert(name.clone(), dep);
            }
        }
        _ => {}
    }
    out
}

fn networks(r: &mut Reader, node: &Node, path: &str) -> BTreeMap<String, Option<ServiceNetwork>> {
    let mut out = BTreeMap::new();
    match &node.value {
        Value::Seq(_) => {
            for name in r.strings(node, path) {
                out.insert(name, None);
            }
        }
        Value::Map(map) => {
            for (name, v) in map {
                let p = child(path, name);
                let attachment = v.as_map().map(|m| ServiceNetwork {
                    aliases: m.get("aliases").map(|n| r.strings(n, &child(&p, "aliases"))).unwrap_or_default(),
                    ipv4_address: m.get("ipv4_address").and_then(|n| r.string(n, &child(&p, "ipv4_address"))),
                    ipv6_address: m.get("ipv6_address").and_then(|n| r.string(n, &child(&p, "ipv6_address"))),
                    priority: m.get("priority").and_then(|n| r.integer(n, &child(&p, "priority"))),
                    other: {
                        let mut other = Reader::verbatim(m, &["aliases", "ipv4_address", "ipv6_address", "priority"]);
                        canonical::attachment(&mut other);
                        other
                    },
                });
                out.insert(name.clone(), attachment);
            }
        }
        _ => {}
    }
    out
}

/// A file mode: a YAML number is the value (`0440` is octal in YAML), a string is octal text
/// (`"0440"`), as compose reads it.
fn file_mode(r: &mut Reader, node: &Node, path: &str) -> Option<u32> {
    let mode = match &node.value {
        Value::String(s) => u32::from_str_radix(s.trim(), 8).ok(),
        _ => r.integer(node, path).and_then(|v| u32::try_from(v).ok()),
    };
    match mode {
        Some(m) if m <= 0o7777 => Some(m),
        _ => {
            let shown = node.scalar_string().unwrap_or_default();
            r.error(node, path, format!("invalid file mode {shown:?}: expected an octal mode such as 0440"));
            None
        }
    }
}

fn file_mounts(r: &mut Reader, node: &Node, path: &str) -> Vec<FileMount> {
    let mut out = Vec::new();
    for (i, item) in node.as_seq().unwrap_or_default().iter().enumerate() {
        let p = index(path, i);
        let mount = match item.as_map() {
            Some(m) => {
                let field = |r: &mut Reader, k: &str| m.get(k).and_then(|n| r.string(n, &child(&p, k)));
                let Some(source) = field(r, "source") else {
                    r.error(item, &p, "needs a source");
                    continue;
                };
                let mode = m.get("mode").and_then(|n| file_mode(r, n, &child(&p, "mode")));
                FileMount { source, target: field(r, "target"), uid: field(r, "uid"), gid: field(r, "gid"), mode }
            }
            None => match r.string(item, &p) {
                Some(source) => FileMount { source, target: None, uid: None, gid: None, mode: None },
                None => continue,
            },
        };
        out.push(mount);
    }
    out
}
