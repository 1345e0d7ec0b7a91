//! Image references with Docker Hub naming: `busybox` is `docker.io/library/busybox:latest`.

use std::fmt;
use std::str::FromStr;

use super::{Digest, ImageError};

/// The registry of unqualified names.
pub const DOCKER_HUB: &str = "docker.io";

/// A parsed, normalised image reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// `docker.io`, `localhost:5000`, `ghcr.io`, …
    pub registry: String,
    /// `library/busybox`, `org/app`, …
    pub repository: String,
    /// The tag; `latest` when neither tag nor digest is given.
    pub tag: Option<String>,
    /// A pinned manifest digest.
    pub digest: Option<Digest>,
}

impl Reference {
    /// Whether the registry is on this machine's loopback, where docker allows plain HTTP.
    pub fn is_loopback_registry(&self) -> bool {
        let host = match self.registry.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => self.registry.as_str(),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// The short form users write: `busybox:latest`, `org/app:1`, `localhost:5000/x:y`.
    pub fn familiar(&self) -> String {
        let repo = match (self.registry.as_str(), self.repository.strip_prefix("library/")) {
            (DOCKER_HUB, Some(short)) => short.to_owned(),
            (DOCKER_HUB, None) => self.repository.clone(),
            _ => format!("{}/{}", self.registry, self.repository),
        };
        let mut out = repo;
        if let Some(tag) = &self.tag {
            out = format!("{out}:{tag}");
        }
        if let Some(d) = &self.digest {
            out = format!("{out}@{d}");
        }
        out
    }

    /// The repository without the registry, as `docker images` shows it.
    pub fn familiar_repository(&self) -> String {
        match (self.registry.as_str(), self.repository.strip_prefix("library/")) {
            (DOCKER_HUB, Some(short)) => short.to_owned(),
            (DOCKER_HUB, None) => self.repository.clone(),
            _ => format!("{}/{}", self.registry, self.repository),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

fn valid_component(c: &str) -> bool {
    // [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let ch = b[i];
        if ch.is_ascii_lowercase() || ch.is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && matches!(b[i], b'.' | b'_' | b'-') {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok || start == i {
            return false;
        }
    }
    true
}

/// `host[:port]`, with the host a DNS name, an IPv4 address or a bracketed IPv6 address.
fn valid_registry(r: &str) -> bool {
    let (host, port) = if let Some(rest) = r.strip_prefix('[') {
        match rest.split_once(']') {
            Some((v6, tail)) if v6.parse::<std::net::Ipv6Addr>().is_ok() => ("v6", tail.strip_prefix(':')),
            _ => return false,
        }
    } else {
        match r.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (r, None),
        }
    };
    let host_ok = host == "v6"
        || (!host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            }));
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

impl FromStr for Reference {
    type Err = ImageError;

    fn from_str(s: &str) -> Result<Self, ImageError> {
        let bad = |why: &str| ImageError::InvalidReference(format!("invalid image reference {s:?}: {why}"));
        if s.is_empty() {
            return Err(bad("it is empty"));
        }
        let (name, digest) = match s.split_once('@') {
            Some((n, d)) => (n, Some(d.parse::<Digest>()?)),
            None => (s, None),
        };
        // A tag follows the last colon that comes after the last slash (a registry port does not).
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name[last_slash..].rfind(':') {
            Some(i) => (&name[..last_slash + i], Some(name[last_slash + i + 1..].to_owned())),
            None => (name, None),
        };
        if let Some(t) = &tag
            && !valid_tag(t)
        {
            return Err(bad("the tag may hold letters, digits, '_', '.' and '-', at most 128"));
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, rest)) if first.contains('.') || first.contains(':') || first == "localhost" => {
                (first.to_owned(), rest.to_owned())
            }
            _ => (DOCKER_HUB.to_owned(), name.to_owned()),
        };
        if !valid_registry(&registry) {
            return Err(bad("the registry must be a host name or address with an optional :port"));
        }
        let registry = if registry == "index.docker.io" { DOCKER_HUB.to_owned() } else { registry };
        if path.is_empty() || !path.split('/').all(valid_component) {
            return Err(bad("repository names use lowercase letters, digits and separators (. _ __ -) between them"));
        }
        let repository = if registry == DOCKER_HUB && !path.contains('/') { format!("library/{path}") } else { path };
        let tag = if tag.is_none() && digest.is_none() { Some("latest".to_owned()) } else { tag };
        Ok(Reference { registry, repository, tag, digest })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Reference {
        s.parse().unwrap()
    }

    #[test]
    fn docker_hub_names_are_normalised() {
        assert_eq!(r("busybox").to_string(), "docker.io/library/busybox:latest");
        assert_eq!(r("busybox").familiar(), "busybox:latest");
        assert_eq!(r("org/app:1.2").to_string(), "docker.io/org/app:1.2");
        assert_eq!(r("index.docker.io/library/redis:7").to_string(), "docker.io/library/redis:7");
    }

    #[test]
    fn registries_ports_and_digests() {
        let x = r("localhost:5000/team/app:v1");
        assert_eq!(
            (x.registry.as_str(), x.repository.as_str(), x.tag.as_deref()),
            ("localhost:5000", "team/app", Some("v1"))
        );
        assert!(x.is_loopback_registry());
        assert!(r("127.0.0.1:5000/a").is_loopback_registry());
        assert!(r("[::1]:5000/a").is_loopback_registry());
        assert!(!r("ghcr.io/a/b").is_loopback_registry());
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let pinned = r(&format!("ghcr.io/a/b@{d}"));
        assert_eq!(pinned.tag, None);
        assert_eq!(pinned.digest.unwrap().to_string(), d);
        assert_eq!(r("localhost:5000/app").tag.as_deref(), Some("latest"));
    }

    #[test]
    fn invalid_references_are_refused_with_a_reason() {
        for bad in ["", "UPPER", "a//b", "a:", "-a", "a:b:c/d", "a@sha256:12", "a:"] {
            assert!(bad.parse::<Reference>().is_err(), "{bad}");
        }
        let e = "Busybox".parse::<Reference>().unwrap_err().to_string();
        assert!(e.contains("lowercase"), "{e}");
    }
}
