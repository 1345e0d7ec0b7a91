//! Service `ports`: the short syntax `[[HOST_IP:]HOST[-END]:]CONTAINER[-END][/PROTO]` and
//! the checks the long syntax shares with it.
//!
//! Expansion follows docker/go-connections `ParsePortSpec` as compose-go uses it, so one
//! short entry becomes the same list of mappings, in the same order, as in docker compose.

use std::fmt;
use std::net::IpAddr;

/// One published or exposed container port, in compose's normalized (long) form.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PortMapping {
    /// Human-readable name of the mapping.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `ingress` (the default) or `host`.
    pub mode: String,
    /// Host address to bind; all addresses when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    /// Port inside the container.
    pub target: u16,
    /// Host port (`8080`) or host range to pick from (`8000-8010`); ephemeral when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published: Option<String>,
    /// `tcp` (the default), `udp` or `sctp`.
    pub protocol: String,
    /// Application protocol hint such as `http`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
}

/// Which part of a port entry a bad value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortRole {
    /// The host side of a short-syntax entry.
    Host,
    /// The container side of a short-syntax entry.
    Container,
    /// The long-syntax `target`.
    Target,
    /// The long-syntax `published`.
    Published,
}

impl fmt::Display for PortRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Host => "host port",
            Self::Container => "container port",
            Self::Target => "target port",
            Self::Published => "published port",
        })
    }
}

/// A port entry that docker compose would reject.
///
/// `spec` is the short-syntax entry as written, or for the long syntax the offending field.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PortError {
    /// Nothing where the container port belongs.
    #[error("invalid port {spec:?}: no container port specified")]
    Empty {
        /// The entry as written.
        spec: String,
    },
    /// A port that is not a decimal number.
    #[error("invalid port {spec:?}: {role} {value:?} is not a number")]
    NotANumber {
        /// The entry as written.
        spec: String,
        /// Where the value sits in the entry.
        role: PortRole,
        /// The offending text.
        value: String,
    },
    /// A port outside 1-65535.
    #[error("invalid port {spec:?}: {role} {value} is out of range (1-65535)")]
    OutOfRange {
        /// The entry as written.
        spec: String,
        /// Where the value sits in the entry.
        role: PortRole,
        /// The offending text.
        value: String,
    },
    /// A range whose end is below its start.
    #[error("invalid port {spec:?}: {role} range {value:?} ends before it starts")]
    ReversedRange {
        /// The entry as written.
        spec: String,
        /// Where the range sits in the entry.
        role: PortRole,
        /// The offending range.
        value: String,
    },
    /// A container range without a host range of the same length.
    #[error("invalid port {spec:?}: container range {container:?} needs a host range of the same length, not {host:?}")]
    RangeMismatch {
        /// The entry as written.
        spec: String,
        /// The host side.
        host: String,
        /// The container side.
        container: String,
    },
    /// A protocol other than tcp, udp or sctp.
    #[error("invalid port {spec:?}: protocol {protocol:?} is not one of tcp, udp or sctp")]
    Protocol {
        /// The entry as written.
        spec: String,
        /// The offending protocol.
        protocol: String,
    },
    /// A host address that is not an IPv4 or IPv6 address.
    #[error(
        "invalid port {spec:?}: host IP {ip:?} is not a valid IP address (put IPv6 addresses in brackets, e.g. [::1]:80:80)"
    )]
    HostIp {
        /// The entry as written.
        spec: String,
        /// The offending address.
        ip: String,
    },
    /// A long-syntax mode other than host or ingress.
    #[error("invalid port {spec:?}: mode {mode:?} is not one of host or ingress")]
    Mode {
        /// The entry as written.
        spec: String,
        /// The offending mode.
        mode: String,
    },
}

fn parse_port(spec: &str, role: PortRole, value: &str) -> Result<u16, PortError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PortError::NotANumber { spec: spec.to_owned(), role, value: value.to_owned() });
    }
    match value.parse::<u16>() {
        Ok(port) if port != 0 => Ok(port),
        _ => Err(PortError::OutOfRange { spec: spec.to_owned(), role, value: value.to_owned() }),
    }
}

fn parse_range(spec: &str, role: PortRole, value: &str) -> Result<(u16, u16), PortError> {
    let Some((start_text, end_text)) = value.split_once('-') else {
        let port = parse_port(spec, role, value)?;
        return Ok((port, port));
    };
    let start = parse_port(spec, role, start_text)?;
    // go-connections treats "80-80" as a single port without reading the end again.
    if start_text == end_text {
        return Ok((start, start));
    }
    let end = parse_port(spec, role, end_text)?;
    if end < start {
        return Err(PortError::ReversedRange { spec: spec.to_owned(), role, value: value.to_owned() });
    }
    Ok((start, end))
}

fn parse_protocol(spec: &str, protocol: &str) -> Result<String, PortError> {
    let lower = protocol.to_ascii_lowercase();
    match lower.as_str() {
        "tcp" | "udp" | "sctp" => Ok(lower),
        _ => Err(PortError::Protocol { spec: spec.to_owned(), protocol: protocol.to_owned() }),
    }
}

/// Checks a host address, returning it without the brackets IPv6 may be written in.
fn parse_host_ip<'a>(spec: &str, ip: &'a str) -> Result<&'a str, PortError> {
    let bare = match ip.strip_prefix('[') {
        Some(inner) => inner.strip_suffix(']').unwrap_or(ip),
        None => ip,
    };
    if bare.parse::<IpAddr>().is_err() {
        return Err(PortError::HostIp { spec: spec.to_owned(), ip: ip.to_owned() });
    }
    Ok(bare)
}

/// Parses one short-syntax `ports` entry into the mappings docker compose derives from it.
///
/// A container range yields one mapping per port, paired one-to-one with an equally long
/// host range; a host range with a single container port stays one mapping whose
/// `published` is the whole range. Mappings come in compose's order, which sorts the
/// container ports as text (so `998-1001` yields 1000, 1001, 998, 999).
pub fn parse_port_short(spec: &str) -> Result<Vec<PortMapping>, PortError> {
    // Splitting from the right lets an unbracketed IPv6 address keep its colons.
    let mut parts = spec.rsplitn(3, ':');
    let container_part = parts.next().unwrap_or_default();
    let host = parts.next().unwrap_or_default();
    let ip = parts.next().unwrap_or_default();

    let (container, protocol) = container_part.split_once('/').unwrap_or((container_part, ""));
    if container.is_empty() {
        return Err(PortError::Empty { spec: spec.to_owned() });
    }
    let protocol = if protocol.is_empty() { "tcp".to_owned() } else { parse_protocol(spec, protocol)? };
    let host_ip = if ip.is_empty() { None } else { Some(parse_host_ip(spec, ip)?) };

    let (start, end) = parse_range(spec, PortRole::Container, container)?;
    let host_range = if host.is_empty() { None } else { Some(parse_range(spec, PortRole::Host, host)?) };
    if let Some((host_start, host_end)) = host_range
        && start != end
        && end - start != host_end - host_start
    {
        return Err(PortError::RangeMismatch {
            spec: spec.to_owned(),
            host: host.to_owned(),
            container: container.to_owned(),
        });
    }

    let mut mappings: Vec<PortMapping> = (start..=end)
        .zip(0u16..)
        .map(|(target, offset)| PortMapping {
            name: None,
            mode: "ingress".to_owned(),
            host_ip: host_ip.map(str::to_owned),
            target,
            published: host_range.map(|(host_start, host_end)| {
                if start == end && host_start != host_end {
                    format!("{host_start}-{host_end}")
                } else {
                    // Equal lengths were checked above, so this stays within host_end.
                    host_start.saturating_add(offset).to_string()
                }
            }),
            protocol: protocol.clone(),
            app_protocol: None,
        })
        .collect();
    mappings.sort_by_cached_key(|m| m.target.to_string());
    Ok(mappings)
}

/// Validates a `published` value (`8080` or `8000-8010`) and returns its first and last port.
pub fn host_port_range(published: &str) -> Result<(u16, u16), PortError> {
    parse_range(published, PortRole::Published, published)
}

/// Treats an empty string as absent, as compose's `omitempty` does.
fn present(value: Option<String>) -> Option<String> {
    value.filter(|s| !s.is_empty())
}

/// Validates a long-syntax `ports` entry and fills in compose's defaults.
///
/// The long syntax never expands: `target` is a single port and a `published` range
/// stays a range, so the result holds exactly one mapping (a `Vec` so both syntaxes
/// extend the same list). Empty strings count as absent, as compose omits them.
pub fn expand_long(
    target: i64,
    published: Option<String>,
    host_ip: Option<String>,
    protocol: Option<String>,
    mode: Option<String>,
    name: Option<String>,
    app_protocol: Option<String>,
) -> Result<Vec<PortMapping>, PortError> {
    let target = match u16::try_from(target) {
        Ok(port) if port != 0 => port,
        _ => {
            return Err(PortError::OutOfRange {
                spec: target.to_string(),
                role: PortRole::Target,
                value: target.to_string(),
            });
        }
    };
    let published = present(published);
    if let Some(published) = &published {
        host_port_range(published)?;
    }
    let host_ip = match present(host_ip) {
        Some(ip) => Some(parse_host_ip(&ip, &ip)?.to_owned()),
        None => None,
    };
    let protocol = match present(protocol) {
        Some(protocol) => parse_protocol(&protocol, &protocol)?,
        None => "tcp".to_owned(),
    };
    let mode = match present(mode) {
        None => "ingress".to_owned(),
        Some(mode) if mode == "ingress" || mode == "host" => mode,
        Some(mode) => {
            return Err(PortError::Mode { spec: mode.clone(), mode });
        }
    };
    Ok(vec![PortMapping {
        name: present(name),
        mode,
        host_ip,
        target,
        published,
        protocol,
        app_protocol: present(app_protocol),
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(host_ip: Option<&str>, published: Option<&str>, target: u16, protocol: &str) -> PortMapping {
        PortMapping {
            name: None,
            mode: "ingress".to_owned(),
            host_ip: host_ip.map(str::to_owned),
            target,
            published: published.map(str::to_owned),
            protocol: protocol.to_owned(),
            app_protocol: None,
        }
    }

    /// Renders mappings compactly as `ip|published|target/proto` for table comparison.
    fn render(mappings: &[PortMapping]) -> Vec<String> {
        mappings
            .iter()
            .map(|m| {
                format!(
                    "{}|{}|{}/{}",
                    m.host_ip.as_deref().unwrap_or(""),
                    m.published.as_deref().unwrap_or(""),
                    m.target,
                    m.protocol
                )
            })
            .collect()
    }

    #[test]
    fn short_syntax_expands_like_compose() {
        let cases: &[(&str, &[&str])] = &[
            ("80", &["||80/tcp"]),
            ("80/udp", &["||80/udp"]),
            ("80/UDP", &["||80/udp"]),
            ("80/sctp", &["||80/sctp"]),
            ("80/", &["||80/tcp"]),
            ("8080:80", &["|8080|80/tcp"]),
            ("8080:80/udp", &["|8080|80/udp"]),
            ("127.0.0.1:8080:80", &["127.0.0.1|8080|80/tcp"]),
            ("127.0.0.1::80", &["127.0.0.1||80/tcp"]),
            (":8080:80", &["|8080|80/tcp"]),
            ("::80", &["||80/tcp"]),
            ("[::1]:80:80", &["::1|80|80/tcp"]),
            ("[::1]::80", &["::1||80/tcp"]),
            ("::1:8080:80", &["::1|8080|80/tcp"]),
            ("[fe80::1]:8080:80/udp", &["fe80::1|8080|80/udp"]),
            ("[1.2.3.4]:1:2", &["1.2.3.4|1|2/tcp"]),
            ("0.0.0.0:65535:65535", &["0.0.0.0|65535|65535/tcp"]),
            ("3000-3002", &["||3000/tcp", "||3001/tcp", "||3002/tcp"]),
            ("9090-9091:8080-8081", &["|9090|8080/tcp", "|9091|8081/tcp"]),
            ("127.0.0.1:5000-5001:5000-5001/udp", &["127.0.0.1|5000|5000/udp", "127.0.0.1|5001|5001/udp"]),
            ("8000-8010:80", &["|8000-8010|80/tcp"]),
            ("8080-8080:80", &["|8080|80/tcp"]),
            ("8080:80-80", &["|8080|80/tcp"]),
            ("08080:080", &["|8080|80/tcp"]),
            ("998-1001", &["||1000/tcp", "||1001/tcp", "||998/tcp", "||999/tcp"]),
            ("2998-3001:998-1001", &["|3000|1000/tcp", "|3001|1001/tcp", "|2998|998/tcp", "|2999|999/tcp"]),
        ];
        for (spec, expected) in cases {
            let got = parse_port_short(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
            assert_eq!(render(&got), *expected, "{spec}");
        }
    }

    #[test]
    fn short_syntax_sets_compose_defaults() {
        assert_eq!(
            parse_port_short("127.0.0.1:8080:80"),
            Ok(vec![mapping(Some("127.0.0.1"), Some("8080"), 80, "tcp")])
        );
        assert_eq!(parse_port_short("53/udp"), Ok(vec![mapping(None, None, 53, "udp")]));
    }

    #[test]
    fn full_range_expands_without_overflow() {
        let all = parse_port_short("1-65535:1-65535").expect("full range");
        assert_eq!(all.len(), 65535);
        assert!(all.iter().all(|m| m.published == Some(m.target.to_string())));
    }

    /// Asserts `result` failed with `invalid port "{spec}": {reason}`.
    fn assert_fails<T: fmt::Debug>(result: Result<T, PortError>, spec: &str, reason: &str) {
        let err = result.expect_err(spec);
        assert_eq!(err.to_string(), format!("invalid port {spec:?}: {reason}"));
    }

    #[test]
    fn short_syntax_errors() {
        let cases: &[(&str, &str)] = &[
            ("", "no container port specified"),
            ("/udp", "no container port specified"),
            ("8080:", "no container port specified"),
            ("80:abc", "container port \"abc\" is not a number"),
            ("abc:80", "host port \"abc\" is not a number"),
            ("+80", "container port \"+80\" is not a number"),
            (" 80", "container port \" 80\" is not a number"),
            ("80-", "container port \"\" is not a number"),
            ("-80", "container port \"\" is not a number"),
            ("80-90-100", "container port \"90-100\" is not a number"),
            ("80/tcp:80", "host port \"80/tcp\" is not a number"),
            ("0", "container port 0 is out of range (1-65535)"),
            ("0:80", "host port 0 is out of range (1-65535)"),
            ("65536", "container port 65536 is out of range (1-65535)"),
            ("70000:80", "host port 70000 is out of range (1-65535)"),
            ("99999999999999999999", "container port 99999999999999999999 is out of range (1-65535)"),
            ("80-65536", "container port 65536 is out of range (1-65535)"),
            ("90-80", "container port range \"90-80\" ends before it starts"),
            ("9000-8000:80", "host port range \"9000-8000\" ends before it starts"),
            ("8080:80-81", "container range \"80-81\" needs a host range of the same length, not \"8080\""),
            ("8000-8002:80-81", "container range \"80-81\" needs a host range of the same length, not \"8000-8002\""),
            ("80/icmp", "protocol \"icmp\" is not one of tcp, udp or sctp"),
            ("80/tcp/udp", "protocol \"tcp/udp\" is not one of tcp, udp or sctp"),
        ];
        for (spec, reason) in cases {
            assert_fails(parse_port_short(spec), spec, reason);
        }
        let bad_ips = ["localhost", "1.2.3", "[]", "[::1", "[::1]x", "fe80::1%eth0", "[[::1]]"];
        for ip in bad_ips {
            let spec = format!("{ip}:80:80");
            let reason =
                format!("host IP {ip:?} is not a valid IP address (put IPv6 addresses in brackets, e.g. [::1]:80:80)");
            assert_fails(parse_port_short(&spec), &spec, &reason);
        }
        // Too few colons to be an address with ports: the leftover ":" is the address.
        assert!(matches!(parse_port_short("::1:80"), Err(PortError::HostIp { ip, .. }) if ip == ":"));
    }

    #[test]
    fn errors_carry_structured_fields() {
        let expected = PortError::RangeMismatch {
            spec: "8080:80-81".to_owned(),
            host: "8080".to_owned(),
            container: "80-81".to_owned(),
        };
        assert_eq!(parse_port_short("8080:80-81"), Err(expected));
        let expected =
            PortError::NotANumber { spec: "80:abc".to_owned(), role: PortRole::Container, value: "abc".to_owned() };
        assert_eq!(parse_port_short("80:abc"), Err(expected));
    }

    #[test]
    fn host_port_range_accepts_ports_and_ranges() {
        assert_eq!(host_port_range("8080"), Ok((8080, 8080)));
        assert_eq!(host_port_range("8000-8010"), Ok((8000, 8010)));
        assert_eq!(host_port_range("8000-8000"), Ok((8000, 8000)));
        assert_fails(host_port_range("x"), "x", "published port \"x\" is not a number");
        assert_fails(host_port_range(""), "", "published port \"\" is not a number");
        assert_fails(host_port_range("0"), "0", "published port 0 is out of range (1-65535)");
        let reversed = "published port range \"10-5\" ends before it starts";
        assert_fails(host_port_range("10-5"), "10-5", reversed);
    }

    /// Calls `expand_long` with `[published, host_ip, protocol, mode, name, app_protocol]`.
    fn long(target: i64, fields: [Option<&str>; 6]) -> Result<Vec<PortMapping>, PortError> {
        let [published, host_ip, protocol, mode, name, app_protocol] = fields.map(|f| f.map(str::to_owned));
        expand_long(target, published, host_ip, protocol, mode, name, app_protocol)
    }

    #[test]
    fn long_syntax_fills_defaults_and_keeps_ranges() {
        assert_eq!(long(80, [None; 6]), Ok(vec![mapping(None, None, 80, "tcp")]));
        let full = [Some("8000-8010"), Some("::1"), Some("UDP"), Some("host"), Some("web"), Some("http")];
        let expected = PortMapping {
            name: Some("web".to_owned()),
            mode: "host".to_owned(),
            host_ip: Some("::1".to_owned()),
            target: 80,
            published: Some("8000-8010".to_owned()),
            protocol: "udp".to_owned(),
            app_protocol: Some("http".to_owned()),
        };
        assert_eq!(long(80, full), Ok(vec![expected]));
        assert_eq!(long(443, [Some(""); 6]), Ok(vec![mapping(None, None, 443, "tcp")]));
        let bracketed = long(80, [None, Some("[::1]"), None, None, None, None]);
        assert_eq!(bracketed.map(|m| m[0].host_ip.clone()), Ok(Some("::1".to_owned())));
        let ingress = long(65535, [Some("1"), None, None, Some("ingress"), None, None]);
        assert_eq!(ingress, Ok(vec![mapping(None, Some("1"), 65535, "tcp")]));
    }

    #[test]
    fn long_syntax_errors() {
        for target in [0, -1, 65536, i64::MIN, i64::MAX] {
            let spec = target.to_string();
            let reason = format!("target port {target} is out of range (1-65535)");
            assert_fails(long(target, [None; 6]), &spec, &reason);
        }
        let cases: &[([Option<&str>; 6], &str, &str)] = &[
            ([Some("http"), None, None, None, None, None], "http", "published port \"http\" is not a number"),
            ([Some("7-1"), None, None, None, None, None], "7-1", "published port range \"7-1\" ends before it starts"),
            ([Some("0"), None, None, None, None, None], "0", "published port 0 is out of range (1-65535)"),
            ([None, None, Some("icmp"), None, None, None], "icmp", "protocol \"icmp\" is not one of tcp, udp or sctp"),
            ([None, None, None, Some("Host"), None, None], "Host", "mode \"Host\" is not one of host or ingress"),
        ];
        for (fields, spec, reason) in cases {
            assert_fails(long(80, *fields), spec, reason);
        }
        let bad_ip = long(80, [None, Some("example.com"), None, None, None, None]);
        assert!(matches!(bad_ip, Err(PortError::HostIp { ip, .. }) if ip == "example.com"));
    }

    #[test]
    fn serializes_with_compose_keys_and_skips_absent_fields() {
        let short = parse_port_short("127.0.0.1:8080:80").expect("valid");
        assert_eq!(
            serde_json::to_string(&short).expect("serialize"),
            r#"[{"mode":"ingress","host_ip":"127.0.0.1","target":80,"published":"8080","protocol":"tcp"}]"#
        );
        let named = long(80, [None, None, None, None, Some("web"), Some("http")]).expect("valid");
        assert_eq!(
            serde_json::to_string(&named[0]).expect("serialize"),
            r#"{"name":"web","mode":"ingress","target":80,"protocol":"tcp","app_protocol":"http"}"#
        );
    }
}
