//! Raw tree → [`Project`]: one typed form per key, relative paths resolved, names derived.

pub(crate) mod canonical;
pub(crate) mod read;
mod sections;
pub(crate) mod service;

use std::collections::BTreeMap;
use std::path::Path;

use super::error::SpecError;
use super::model::{FileObject, Ipam, IpamPool, Network, Project, Volume};
use super::yaml::Node;
use read::{Reader, child, index, resolve_path};
use service::ServiceContext;

/// Top-level keys modelled by [`Project`].
const TOP_LEVEL: &[&str] = &["name", "version", "services", "networks", "volumes", "secrets", "configs", "include"];

/// Which services to keep.
#[derive(Debug, Default)]
pub(crate) struct ProfileSelection<'a> {
    /// Enabled profiles; `*` enables every one.
    pub profiles: &'a [String],
    /// Services named on the command line: they are enabled whatever their profiles.
    pub services: &'a [String],
}

impl ProfileSelection<'_> {
    fn enables(&self, name: &str, profiles: &[String]) -> bool {
        profiles.is_empty()
            || self.services.iter().any(|s| s == name)
            || self.profiles.iter().any(|p| p == "*" || profiles.contains(p))
    }
}

/// Normalises a fully merged document. Values that could not be read are left out of the
/// project and reported, so that later checks can still run and every problem is shown at once.
pub(crate) fn project(
    doc: &Node,
    name: &str,
    project_dir: &Path,
    env: &BTreeMap<String, String>,
    selection: &ProfileSelection<'_>,
) -> (Project, Vec<SpecError>) {
    let mut r = Reader::default();
    let mut project = Project { name: name.to_owned(), working_dir: project_dir.to_path_buf(), ..Project::default() };
    let Some(top) = doc.as_map() else {
        r.error(doc, "", format!("a stack file must be a mapping, not {}", doc.kind_name()));
        return (project, r.errors);
    };
    project.other = Reader::verbatim(top, TOP_LEVEL);

    let ctx = ServiceContext { project_dir, env };
    if let Some(services) = top.get("services").and_then(Node::as_map) {
        for (svc_name, node) in services {
            let s = service::service(&mut r, &ctx, svc_name, node, &child("services", svc_name));
            if selection.enables(svc_name, &s.profiles) {
                project.services.insert(svc_name.clone(), s);
            } else {
                project.disabled_services.insert(svc_name.clone(), s);
            }
        }
    }

    if let Some(n) = top.get("networks").and_then(Node::as_map) {
        for (key, node) in n {
            project.networks.insert(key.clone(), network(&mut r, name, key, node, &child("networks", key)));
        }
    }
    // The default network exists when a service uses it, by naming it or by naming none.
    // A provider service runs no container, so it joins no network.
    let uses_default = project.services.values_mut().fold(false, |used, s| {
        if s.network_mode.is_none() && s.networks.is_empty() && !s.other.contains_key("provider") {
            s.networks.insert("default".into(), None);
        }
        used || s.networks.contains_key("default")
    });
    if uses_default && !project.networks.contains_key("default") {
        project.networks.insert("default".into(), Network { name: format!("{name}_default"), ..Network::default() });
    }

    if let Some(v) = top.get("volumes").and_then(Node::as_map) {
        for (key, node) in v {
            project.volumes.insert(key.clone(), volume(&mut r, project_dir, name, key, node, &child("volumes", key)));
        }
    }
    for (section, target) in [("secrets", &mut project.secrets), ("configs", &mut project.configs)] {
        if let Some(m) = top.get(section).and_then(Node::as_map) {
            for (key, node) in m {
                target.insert(key.clone(), file_object(&mut r, project_dir, name, key, node, &child(section, key)));
            }
        }
    }
    (project, r.errors)
}

/// `<project>_<key>` unless `name:` is given; an external object is called by its key, or
/// by the name the legacy `external: {name: x}` form gives.
fn object_name(
    r: &mut Reader,
    project: &str,
    key: &str,
    map: Option<&indexmap::IndexMap<String, Node>>,
    path: &str,
    external: bool,
) -> String {
    let legacy = || map?.get("external")?.get("name");
    let named = map.and_then(|m| m.get("name")).or_else(legacy);
    match named.and_then(|n| r.string(n, &child(path, "name"))) {
        Some(n) => n,
        None if external => key.to_owned(),
        None => format!("{project}_{key}"),
    }
}

fn external(r: &mut Reader, map: Option<&indexmap::IndexMap<String, Node>>, path: &str) -> bool {
    map.and_then(|m| m.get("external")).is_some_and(|n| match n.as_map() {
        // The legacy `external: {name: x}` form.
        Some(_) => true,
        None => r.boolean(n, &child(path, "external")).unwrap_or(false),
    })
}

fn network(r: &mut Reader, project: &str, key: &str, node: &Node, path: &str) -> Network {
    let map = node.as_map();
    let ext = external(r, map, path);
    let mut net = Network { name: object_name(r, project, key, map, path, ext), external: ext, ..Network::default() };
    let Some(map) = map else { return net };
    net.other = Reader::verbatim(map, &["name", "driver", "ipam", "external", "internal", "labels"]);
    canonical::network(&mut net.other);
    net.driver = map.get("driver").and_then(|n| r.string(n, &child(path, "driver")));
    net.internal = map.get("internal").and_then(|n| r.boolean(n, &child(path, "internal"))).unwrap_or(false);
    net.labels = map.get("labels").map(|n| r.labels(n, &child(path, "labels"))).unwrap_or_default();
    if let Some(ipam) = map.get("ipam").and_then(Node::as_map) {
        let ip = child(path, "ipam");
        let mut pools = Vec::new();
        for (i, pool) in ipam.get("config").and_then(Node::as_seq).unwrap_or_default().iter().enumerate() {
            let pp = index(&child(&ip, "config"), i);
            let field = |r: &mut Reader, k: &str| pool.get(k).and_then(|n| r.string(n, &child(&pp, k)));
            let entry = IpamPool {
                subnet: field(r, "subnet"),
                ip_range: field(r, "ip_range"),
                gateway: field(r, "gateway"),
                aux_addresses: pool
                    .get("aux_addresses")
                    .map(|n| r.labels(n, &child(&pp, "aux_addresses")))
                    .unwrap_or_default(),
            };
            if let Some(subnet) = &entry.subnet
                && let Err(why) = check_cidr(subnet)
            {
                r.error(pool.get("subnet").unwrap_or(pool), &child(&pp, "subnet"), why);
            }
            pools.push(entry);
        }
        net.ipam =
            Some(Ipam { driver: ipam.get("driver").and_then(|n| r.string(n, &child(&ip, "driver"))), config: pools });
    }
    net
}

/// An IPv4 or IPv6 subnet in CIDR form.
fn check_cidr(text: &str) -> Result<(), String> {
    let bad = || format!("invalid subnet {text:?}: expected an address/prefix such as 172.28.0.0/16");
    let (addr, prefix) = text.split_once('/').ok_or_else(bad)?;
    let prefix: u8 = prefix.parse().map_err(|_| bad())?;
    match addr.parse::<std::net::IpAddr>().map_err(|_| bad())? {
        std::net::IpAddr::V4(_) if prefix <= 32 => Ok(()),
        std::net::IpAddr::V6(_) if prefix <= 128 => Ok(()),
        _ => Err(bad()),
    }
}

fn volume(r: &mut Reader, dir: &Path, project: &str, key: &str, node: &Node, path: &str) -> Volume {
    let map = node.as_map();
    let ext = external(r, map, path);
    let mut vol = Volume { name: object_name(r, project, key, map, path, ext), external: ext, ..Volume::default() };
    let Some(map) = map else { return vol };
    vol.other = Reader::verbatim(map, &["name", "driver", "external", "labels"]);
    vol.driver = map.get("driver").and_then(|n| r.string(n, &child(path, "driver")));
    canonical::volume(&mut vol.other, vol.driver.as_deref(), dir);
    vol.labels = map.get("labels").map(|n| r.labels(n, &child(path, "labels"))).unwrap_or_default();
    vol
}

fn file_object(r: &mut Reader, dir: &Path, project: &str, key: &str, node: &Node, path: &str) -> FileObject {
    let map = node.as_map();
    let ext = external(r, map, path);
    let mut obj =
        FileObject { name: object_name(r, project, key, map, path, ext), external: ext, ..FileObject::default() };
    let Some(map) = map else { return obj };
    obj.other = Reader::verbatim(map, &["name", "file", "environment", "content", "external"]);
    obj.file = map
        .get("file")
        .and_then(|n| r.string(n, &child(path, "file")))
        .map(|f| resolve_path(dir, &f).display().to_string());
    obj.environment = map.get("environment").and_then(|n| r.string(n, &child(path, "environment")));
    obj.content = map.get("content").and_then(|n| r.string(n, &child(path, "content")));
    let sources = [obj.file.is_some(), obj.environment.is_some(), obj.content.is_some(), obj.external]
        .iter()
        .filter(|b| **b)
        .count();
    if sources > 1 {
        r.error(node, path, "give exactly one of file, environment, content or external");
    }
    obj
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::yaml;

    fn load(text: &str) -> Project {
        let doc = yaml::parse(text, None).unwrap().unwrap();
        let (p, errors) = project(&doc, "p", Path::new("/srv/app"), &BTreeMap::new(), &ProfileSelection::default());
        assert!(errors.is_empty(), "{errors:?}");
        p
    }

    #[test]
    fn providers_join_no_network_and_legacy_external_names_are_kept() {
        let p = load(
            "services:\n  m: {provider: {type: model}}\n  web: {image: x, networks: {}}\n\
             volumes:\n  v: {external: {name: shared}}\nnetworks:\n  n: {external: true}\n",
        );
        assert!(p.services["m"].networks.is_empty(), "a provider runs no container");
        assert!(p.services["web"].networks.contains_key("default"), "an empty networks map means the default one");
        assert_eq!(p.volumes["v"].name, "shared");
        assert_eq!(p.networks["n"].name, "n");
    }

    #[test]
    fn network_and_volume_options_take_compose_form() {
        let p = load(
            "services:\n  web: {image: x}\nnetworks:\n  n:\n    driver_opts: {mtu: 1400}\n    ipam:\n      config:\n        \
             - {subnet: 10.0.0.0/24, aux_addresses: {h: 10.0.0.5}}\nvolumes:\n  v:\n    driver: local\n    \
             driver_opts: {o: bind, type: none, device: ./data}\n",
        );
        let ipam = p.networks["n"].ipam.as_ref().unwrap();
        assert_eq!(ipam.config[0].aux_addresses["h"], "10.0.0.5");
        assert_eq!(p.networks["n"].other["driver_opts"]["mtu"], "1400");
        assert_eq!(p.volumes["v"].other["driver_opts"]["device"], "/srv/app/data");
    }
}
