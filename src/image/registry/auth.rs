//! Credentials from the docker config file (`auths`); credential helpers are not run.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;

use super::warn;
use crate::image::ImageError;
use crate::image::reference::DOCKER_HUB;

/// The parts of a docker config file berth reads.
#[derive(Debug, Default, Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    registrytoken: Option<String>,
}

/// The credentials for `registry` from the docker config file, and where they came from.
pub(super) fn credentials(
    registry: &str,
    explicit: Option<&Path>,
) -> Result<(RegistryAuth, Option<PathBuf>), ImageError> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => match std::env::var_os("DOCKER_CONFIG") {
            Some(dir) => PathBuf::from(dir).join("config.json"),
            None => match std::env::var_os("HOME") {
                Some(home) => PathBuf::from(home).join(".docker/config.json"),
                None => return Ok((RegistryAuth::Anonymous, None)),
            },
        },
    };
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound && explicit.is_none() => {
            return Ok((RegistryAuth::Anonymous, None));
        }
        Err(e) => return Err(ImageError::io(path, e)),
    };
    let config: DockerConfig = serde_json::from_slice(&bytes)
        .map_err(|e| ImageError::Malformed(format!("{}: invalid docker config file: {e}", path.display())))?;
    let (auth, warning) = lookup_credentials(&config, registry)
        .map_err(|why| ImageError::Malformed(format!("{}: the credentials for {registry}: {why}", path.display())))?;
    if let Some(w) = warning {
        warn(&format!("{}: {w}", path.display()));
    }
    let source = (!matches!(auth, RegistryAuth::Anonymous)).then_some(path);
    Ok((auth, source))
}

/// `https://index.docker.io/v1/` → `docker.io`; `http://host:5000/x` → `host:5000`.
fn auth_key(key: &str) -> String {
    let key = key.strip_prefix("https://").or_else(|| key.strip_prefix("http://")).unwrap_or(key);
    let host = key.split('/').next().unwrap_or(key).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => DOCKER_HUB.to_owned(),
        _ => host,
    }
}

/// The credentials the file holds for `registry`, and the warning to give when a credential
/// helper (which berth does not run) is configured for it.
fn lookup_credentials(config: &DockerConfig, registry: &str) -> Result<(RegistryAuth, Option<String>), String> {
    let entry = config.auths.iter().find(|(k, _)| auth_key(k) == registry).map(|(_, v)| v);
    let auth = match entry {
        Some(e) => entry_credentials(e)?,
        None => None,
    };
    let helper = config.cred_helpers.iter().find(|(k, _)| auth_key(k) == registry).map(|(_, v)| v);
    let warning = helper.or(config.creds_store.as_ref()).map(|h| {
        let then = if auth.is_some() { "using the credentials stored in the file" } else { "pulling anonymously" };
        format!("credential helpers are not supported (docker-credential-{h} for {registry}); {then}")
    });
    Ok((auth.unwrap_or(RegistryAuth::Anonymous), warning))
}

fn entry_credentials(e: &AuthEntry) -> Result<Option<RegistryAuth>, String> {
    if let Some(encoded) = e.auth.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
        let engines = [base64::engine::general_purpose::STANDARD, base64::engine::general_purpose::STANDARD_NO_PAD];
        let bytes = engines.iter().find_map(|engine| engine.decode(encoded).ok()).ok_or("\"auth\" is not base64")?;
        let text = String::from_utf8(bytes).map_err(|_| "\"auth\" is not UTF-8")?;
        let (user, password) = text.split_once(':').ok_or("\"auth\" is not base64 of user:password")?;
        return Ok(Some(RegistryAuth::Basic(user.to_owned(), password.to_owned())));
    }
    if let (Some(user), Some(password)) = (&e.username, &e.password)
        && !user.is_empty()
    {
        return Ok(Some(RegistryAuth::Basic(user.clone(), password.clone())));
    }
    Ok(e.registrytoken.as_ref().filter(|t| !t.is_empty()).map(|t| RegistryAuth::Bearer(t.clone())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> DockerConfig {
        serde_json::from_str(json).unwrap()
    }

    fn basic(auth: &RegistryAuth) -> Option<(&str, &str)> {
        match auth {
            RegistryAuth::Basic(u, p) => Some((u, p)),
            _ => None,
        }
    }

    #[test]
    fn auth_keys_are_normalised_as_docker_writes_them() {
        assert_eq!(auth_key("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(auth_key("registry-1.docker.io"), "docker.io");
        assert_eq!(auth_key("http://LOCALHOST:5000/v2/"), "localhost:5000");
        assert_eq!(auth_key("ghcr.io"), "ghcr.io");
    }

    #[test]
    fn credentials_from_auth_or_username_and_password() {
        // "dXNlcjpwYTpzcw==" is base64 of "user:pa:ss": the password may hold colons.
        let c = config(
            r#"{"auths": {"https://index.docker.io/v1/": {"auth": "dXNlcjpwYTpzcw=="},
                          "ghcr.io": {"username": "u", "password": "p"},
                          "quay.io": {"registrytoken": "tok"}}}"#,
        );
        let (hub, warning) = lookup_credentials(&c, "docker.io").unwrap();
        assert_eq!(basic(&hub), Some(("user", "pa:ss")));
        assert!(warning.is_none());
        assert_eq!(basic(&lookup_credentials(&c, "ghcr.io").unwrap().0), Some(("u", "p")));
        assert!(matches!(lookup_credentials(&c, "quay.io").unwrap().0, RegistryAuth::Bearer(t) if t == "tok"));
        assert!(matches!(lookup_credentials(&c, "example.com").unwrap().0, RegistryAuth::Anonymous));
        let bad = config(r#"{"auths": {"ghcr.io": {"auth": "not base64!"}}}"#);
        assert!(lookup_credentials(&bad, "ghcr.io").unwrap_err().contains("base64"));
        let no_colon = config(r#"{"auths": {"ghcr.io": {"auth": "dXNlcg=="}}}"#);
        assert!(lookup_credentials(&no_colon, "ghcr.io").unwrap_err().contains("user:password"));
    }

    #[test]
    fn credential_helpers_are_named_in_one_warning() {
        let c = config(r#"{"auths": {"ghcr.io": {}}, "credHelpers": {"ghcr.io": "gcloud"}}"#);
        let (auth, warning) = lookup_credentials(&c, "ghcr.io").unwrap();
        assert!(matches!(auth, RegistryAuth::Anonymous));
        let warning = warning.unwrap();
        assert!(warning.contains("docker-credential-gcloud") && warning.contains("anonymously"), "{warning}");
        assert!(lookup_credentials(&c, "quay.io").unwrap().1.is_none(), "the helper is for ghcr.io only");
        let store = config(r#"{"auths": {"quay.io": {"auth": "dTpw"}}, "credsStore": "desktop"}"#);
        let (auth, warning) = lookup_credentials(&store, "quay.io").unwrap();
        assert_eq!(basic(&auth), Some(("u", "p")));
        assert!(warning.unwrap().contains("using the credentials stored in the file"));
    }

    #[test]
    fn a_missing_default_file_is_anonymous_but_a_named_one_must_exist() {
        let dir = tempfile::Builder::new().prefix("berth-auth-").tempdir().unwrap();
        let missing = dir.path().join("config.json");
        assert!(credentials("ghcr.io", Some(&missing)).is_err());
        std::fs::write(&missing, "{not json").unwrap();
        let err = credentials("ghcr.io", Some(&missing)).unwrap_err().to_string();
        assert!(err.contains("invalid docker config file"), "{err}");
        std::fs::write(&missing, r#"{"auths": {"ghcr.io": {"auth": "dTpw"}}}"#).unwrap();
        let (auth, source) = credentials("ghcr.io", Some(&missing)).unwrap();
        assert_eq!(basic(&auth), Some(("u", "p")));
        assert_eq!(source.as_deref(), Some(missing.as_path()));
    }
}
