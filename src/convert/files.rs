//! Environment, env files, secrets and configs: env entries, ConfigMaps and Secrets.

use std::path::Path;

use base64::Engine;
use indexmap::IndexMap;
use serde_json::{Map, Value as Json, json};

use super::container::escape;
use super::names::{data_key, dns_label};
use super::{Ctx, Warning};
use crate::spec::model::FileObject;
use crate::spec::{Service, dotenv};

/// Kubernetes stores an object in etcd, which refuses one over 1 MiB.
const MAX_OBJECT_BYTES: usize = 1 << 20;

/// The env entries of a service's container, and the `envFrom` of its env-file ConfigMap.
///
/// Variables whose value came from `env_file` (and that `environment` does not override) go
/// to a ConfigMap named `<service>-env`, so the file stays one object to edit; the rest are
/// listed in `env`, which Kubernetes lets win over `envFrom` as compose lets `environment`
/// win over `env_file`. A key with no value is unset in compose too, so it is left out.
pub(super) fn environment(ctx: &mut Ctx<'_>, service: &Service) -> (Vec<Json>, Option<Json>) {
    let from_files = env_file_values(ctx, service);
    let mut data = Map::new();
    let mut env = Vec::new();
    for (key, value) in &service.environment {
        let Some(value) = value else { continue };
        let valid_key = !key.is_empty() && data_key(key) == *key;
        if valid_key && from_files.get(key) == Some(value) {
            data.insert(key.clone(), json!(value));
        } else {
            env.push(json!({"name": key, "value": escape(value)}));
        }
    }
    if data.is_empty() {
        return (env, None);
    }
    let name = format!("{}-env", ctx.names[&service.name]);
    let mut cm = Map::new();
    cm.insert("apiVersion".into(), json!("v1"));
    cm.insert("kind".into(), json!("ConfigMap"));
    cm.insert("metadata".into(), ctx.metadata(&name, ctx.selector(&service.name)));
    cm.insert("data".into(), Json::Object(data));
    ctx.push(Json::Object(cm));
    (env, Some(json!({"configMapRef": {"name": name}})))
}

/// The variables the service's env files define, read again as the loader read them.
fn env_file_values(ctx: &mut Ctx<'_>, service: &Service) -> IndexMap<String, String> {
    let mut vars = IndexMap::new();
    for f in &service.env_file {
        let path = ctx.project.working_dir.join(&f.path);
        let Ok(text) = std::fs::read_to_string(&path) else {
            // Missing optional files define nothing; the loader rejected missing required ones.
            continue;
        };
        let parsed = match f.format.as_deref() {
            Some("raw") => dotenv::parse_raw(&text, &ctx.project.environment).map(|m| vars.extend(m)),
            _ => dotenv::parse_into(&text, &ctx.project.environment, &mut vars).map(drop),
        };
        if parsed.is_err() {
            // The loader read it; if it now reads differently, its values stay in `env`.
            return IndexMap::new();
        }
    }
    vars
}

/// The Kubernetes name of a secret's or config's object: the external name as it is (it
/// exists already), else the key.
pub(super) fn object_name(key: &str, object: Option<&FileObject>) -> String {
    match object {
        Some(o) if o.external && !o.name.is_empty() => dns_label(&o.name, 253),
        _ => dns_label(key, 253),
    }
}

/// A Secret for every secret and a ConfigMap for every config the services use, holding the
/// file's, variable's or inline content under the compose key.
pub(super) fn project_files(ctx: &mut Ctx<'_>) {
    let project = ctx.project;
    let used = project.used_resources();
    for (kind, objects, keys) in
        [("secret", &project.secrets, &used.secrets), ("config", &project.configs, &used.configs)]
    {
        for (key, object) in objects.iter().filter(|(k, _)| keys.contains(k.as_str())) {
            let subject = format!("{kind} {key:?}");
            for other in object.other.keys().filter(|k| !k.starts_with("x-")) {
                ctx.warn_about(subject.clone(), other, "has no Kubernetes equivalent: left out");
            }
            if object.external {
                continue;
            }
            let Some(content) = content(ctx, &subject, object) else { continue };
            if content.len() > MAX_OBJECT_BYTES {
                let msg =
                    format!("{} bytes: over Kubernetes' 1 MiB object limit; the API will refuse it", content.len());
                ctx.warn_about(subject.clone(), "file", msg);
            }
            let name = object_name(key, Some(object));
            let mut obj = Map::new();
            obj.insert("apiVersion".into(), json!("v1"));
            let b64 = base64::engine::general_purpose::STANDARD.encode(&content);
            if kind == "secret" {
                obj.insert("kind".into(), json!("Secret"));
                obj.insert("metadata".into(), ctx.metadata(&name, Map::new()));
                obj.insert("type".into(), json!("Opaque"));
                obj.insert("data".into(), json!({ data_key(key): b64 }));
            } else {
                obj.insert("kind".into(), json!("ConfigMap"));
                obj.insert("metadata".into(), ctx.metadata(&name, Map::new()));
                match String::from_utf8(content) {
                    Ok(text) => obj.insert("data".into(), json!({ data_key(key): text })),
                    Err(_) => obj.insert("binaryData".into(), json!({ data_key(key): b64 })),
                };
            }
            ctx.push(Json::Object(obj));
        }
    }
}

/// The bytes of a secret or config; a source that cannot be read gives empty content and a
/// warning, so that the pods referring to it still validate.
fn content(ctx: &mut Ctx<'_>, subject: &str, object: &FileObject) -> Option<Vec<u8>> {
    let mut fail = |key: &str, msg: String| {
        ctx.warnings.insert(Warning { subject: subject.to_owned(), key: key.to_owned(), message: msg });
        Some(Vec::new())
    };
    if let Some(file) = &object.file {
        let path = Path::new(file);
        if path.is_dir() {
            return fail("file", format!("{file} is a directory: Kubernetes mounts one file per key; left empty"));
        }
        return match std::fs::read(path) {
            Ok(bytes) => Some(bytes),
            Err(e) => fail("file", format!("{file}: {e}: left empty")),
        };
    }
    if let Some(var) = &object.environment {
        return match ctx.project.environment.get(var) {
            Some(v) => Some(v.clone().into_bytes()),
            None => fail("environment", format!("the variable {var} is not set: left empty")),
        };
    }
    if let Some(text) = &object.content {
        return Some(text.clone().into_bytes());
    }
    fail("file", "no file, environment or content: left empty".into())
}
