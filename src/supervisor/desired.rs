//! What the supervisor runs: the project as the last `up` loaded it, each service's image and
//! config hash, and the project's networks. `up` on a running project swaps in a new one and
//! recreates the services whose hash changed.

use std::collections::BTreeMap;
use std::path::Path;

use sha2::{Digest as _, Sha256};

use super::SupervisorError;
use crate::image::{ImageRecord, Store};
use crate::network::setup;
use crate::network::store::NetworkRecord;
use crate::spec::{Project, Service};

/// The project as the supervisor should run it.
#[derive(Debug)]
pub struct Desired {
    /// The project.
    pub project: Project,
    /// Each service's image.
    pub images: BTreeMap<String, ImageRecord>,
    /// The project's networks by key.
    pub networks: BTreeMap<String, NetworkRecord>,
    /// Each service's config hash (see [`config_hash`]).
    pub hashes: BTreeMap<String, String>,
}

impl Desired {
    /// Resolves every service's image in `store` and makes the networks the services join
    /// (networks that exist are kept as they are).
    pub fn resolve(root: &Path, project: Project, store: &Store) -> Result<Desired, SupervisorError> {
        let mut images: BTreeMap<String, ImageRecord> = BTreeMap::new();
        for (name, service) in &project.services {
            let image = service.image_name(&project.name).ok_or_else(|| {
                SupervisorError::Other(format!("service {name:?} has neither an image nor a build section"))
            })?;
            let record =
                store.resolve(&image).map_err(|e| SupervisorError::Other(e.to_string()))?.ok_or_else(|| {
                    SupervisorError::Other(format!("service {name:?}: image {image} is not in the store"))
                })?;
            images.insert(name.clone(), record);
        }
        let keys: Vec<&str> = project
            .services
            .values()
            .filter(|s| has_own_network(s))
            .flat_map(|s| s.networks.keys().map(String::as_str))
            .collect();
        let networks = setup::ensure_networks(root, &project, keys)?;
        crate::fault::point("after-network");
        let hashes = project
            .services
            .iter()
            .filter_map(|(name, service)| Some((name.clone(), config_hash(service, images.get(name)?))))
            .collect();
        Ok(Desired { project, images, networks, hashes })
    }
}

/// Whether a service gets a network namespace of its own on bridge networks (not `host`,
/// `none` or another container's).
pub fn has_own_network(service: &Service) -> bool {
    service.network_mode.as_deref().is_none_or(|m| m.is_empty() || m == "bridge" || m == "default")
}

/// compose's `com.docker.compose.config-hash`: sha256 of the service's canonical JSON without
/// the keys that do not change a container (`build`, `pull_policy`, `scale`,
/// `deploy.replicas`, `depends_on`, `profiles`, and `develop`, which only watch reads), here
/// with the image id folded in, so a changed image recreates too.
pub fn config_hash(service: &Service, image: &ImageRecord) -> String {
    let mut json = serde_json::to_value(service).unwrap_or_default();
    if let Some(object) = json.as_object_mut() {
        // `retain` keeps the order of the other keys (`remove` may swap them).
        object.retain(|key, _| {
            !["build", "pull_policy", "scale", "depends_on", "profiles", "develop"].contains(&key.as_str())
        });
        if let Some(deploy) = object.get_mut("deploy").and_then(serde_json::Value::as_object_mut) {
            deploy.retain(|key, _| key != "replicas");
        }
    }
    let mut hasher = Sha256::new();
    hasher.update(json.to_string().as_bytes());
    hasher.update(b"\n");
    hasher.update(image.id.to_string().as_bytes());
    let digest = hasher.finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(yaml_env: &str, scale: Option<u64>) -> Service {
        let mut service = Service { name: "web".into(), image: Some("busybox".into()), scale, ..Service::default() };
        service.environment.insert("A".into(), Some(yaml_env.into()));
        service
    }

    fn image(id: &str) -> ImageRecord {
        let id = format!("sha256:{}", id.repeat(64));
        serde_json::from_value(
            serde_json::json!({"id": id, "layers": [], "config": {"rootfs": {"type": "layers", "diff_ids": []}}}),
        )
        .expect("record")
    }

    #[test]
    fn the_hash_follows_what_makes_the_container_and_ignores_scale_and_dependencies() {
        let base = config_hash(&service("1", None), &image("a"));
        assert_eq!(base.len(), 64);
        assert_eq!(base, config_hash(&service("1", Some(3)), &image("a")), "scale does not recreate");
        let mut dependent = service("1", None);
        let started = crate::spec::model::Condition::Started;
        dependent
            .depends_on
            .insert("db".into(), crate::spec::model::DependsOn { condition: started, required: true, restart: false });
        dependent.profiles.push("dev".into());
        assert_eq!(base, config_hash(&dependent, &image("a")), "depends_on and profiles do not recreate");
        assert_ne!(base, config_hash(&service("2", None), &image("a")), "an environment value does");
        assert_ne!(base, config_hash(&service("1", None), &image("b")), "a new image does");
    }
}
