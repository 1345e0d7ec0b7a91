//! `berth port SERVICE PRIVATE_PORT`: where a container port of a service is published on the
//! host, `HOST_IP:HOST_PORT`, as `docker compose port` prints it; from the published ports the
//! supervisor holds for the container.

use anyhow::anyhow;

use super::{EXIT_INVALID, Failure, GlobalOptions, emit, load_project};
use crate::supervisor::status::ContainerStatus;

/// `berth port`.
#[derive(Debug, clap::Args)]
pub struct PortArgs {
    /// tcp or udp.
    #[arg(long, default_value = "tcp", value_parser = ["tcp", "udp", "sctp"], ignore_case = true)]
    pub protocol: String,
    /// The replica, when the service has several.
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    /// The service.
    pub service: String,
    /// The container port.
    pub private_port: u16,
}

pub(super) fn port(global: &GlobalOptions, args: &PortArgs) -> Result<(), Failure> {
    let loaded = load_project(&global.project_options())?;
    let project = &loaded.project;
    let Some(service) = project.services.get(&args.service) else {
        return Err(Failure { code: EXIT_INVALID, error: anyhow!("no such service: {:?}", args.service) });
    };
    let name = crate::plan::container_name(project, service, args.index);
    let containers = super::ps::containers(global, &project.name);
    let container = containers
        .iter()
        .find(|c| c.name == name && c.state != "exited")
        .ok_or_else(|| Failure { code: 1, error: anyhow!("no container found for {}-{}", args.service, args.index) })?;
    let protocol = args.protocol.to_ascii_lowercase();
    emit(&format!("{}\n", mapping(container, args.private_port, &protocol)?))
}

/// `HOST_IP:HOST_PORT` of the container's `port/protocol`, or compose's error naming the ports
/// it does publish.
fn mapping(container: &ContainerStatus, port: u16, protocol: &str) -> Result<String, Failure> {
    if let Some(p) = container.publishers.iter().find(|p| p.target_port == port && p.protocol == protocol) {
        // An IPv6 address needs brackets before a port.
        let host = if p.url.contains(':') { format!("[{}]", p.url) } else { p.url.clone() };
        return Ok(format!("{host}:{}", p.published_port));
    }
    let published: Vec<String> = container
        .publishers
        .iter()
        .map(|p| format!("{}/{} -> {}", p.target_port, p.protocol, p.published_port))
        .collect();
    let published = if published.is_empty() { "it publishes none".to_owned() } else { published.join(", ") };
    Err(Failure { code: 1, error: anyhow!("no port {port}/{protocol} for container {}: {published}", container.name) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::status::Publisher;

    #[test]
    fn a_published_port_prints_as_address_and_port_and_a_missing_one_names_the_others() {
        let publisher = |url: &str, target, published, protocol: &str| Publisher {
            url: url.into(),
            target_port: target,
            published_port: published,
            protocol: protocol.into(),
        };
        let container = ContainerStatus {
            id: "0".repeat(32),
            name: "shop-web-1".into(),
            image: String::new(),
            command: String::new(),
            project: "shop".into(),
            service: "web".into(),
            created: 0,
            state: "running".into(),
            health: String::new(),
            exit_code: 0,
            started_at: 0,
            finished_at: 0,
            restarts: 0,
            starts: Vec::new(),
            publishers: vec![publisher("0.0.0.0", 80, 18080, "tcp"), publisher("::", 53, 5353, "udp")],
            health_output: String::new(),
        };
        assert_eq!(mapping(&container, 80, "tcp").unwrap(), "0.0.0.0:18080");
        assert_eq!(mapping(&container, 53, "udp").unwrap(), "[::]:5353");
        let e = mapping(&container, 80, "udp").unwrap_err();
        assert_eq!(e.error.to_string(), "no port 80/udp for container shop-web-1: 80/tcp -> 18080, 53/udp -> 5353");
    }
}
