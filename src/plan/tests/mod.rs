//! The plan end to end: small stack files loaded with the real loader, planned against a
//! hand-made image.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod files;
mod mounts;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::*;
use crate::image::config::{ConfigFile, RunConfig};
use crate::image::{Digest, Layer};
use crate::runtime::caps::DOCKER_DEFAULT_CAPS;
use crate::runtime::spec::Rlimit;
use crate::spec::{ProjectOptions, load};

const HOST_RESOLV: &str = "nameserver 127.0.0.53\nnameserver 192.168.1.1\nsearch lan\n";
const HOST_HOSTS: &str = "127.0.0.1\tlocalhost\n127.0.1.1\tbuildhost\n";

/// A loaded project and an image to plan it against.
pub(super) struct Fixture {
    _dir: tempfile::TempDir,
    pub(super) project: Project,
    pub(super) image: ImageRecord,
}

pub(super) fn image(f: impl FnOnce(&mut RunConfig)) -> ImageRecord {
    let mut config = ConfigFile::default();
    config.config.env = Some(vec!["PATH=/usr/bin:/bin".into(), "LANG=C.UTF-8".into(), "SHARED=image".into()]);
    config.config.cmd = Some(vec!["sh".into()]);
    f(&mut config.config);
    ImageRecord {
        id: Digest::of(b"config"),
        manifest: None,
        layers: vec![Layer { diff_id: Digest::of(b"base"), blob: None, media_type: String::new(), size: 1 }],
        config,
        host_binds: vec![PathBuf::from("/usr")],
    }
}

pub(super) fn fixture_with_env(yaml: &str, env: &[(&str, &str)]) -> Fixture {
    let dir = tempfile::Builder::new().prefix("berth-plan-").tempdir().unwrap();
    let file = dir.path().join("compose.yaml");
    std::fs::write(&file, yaml).unwrap();
    let env: BTreeMap<String, String> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let project = load(&ProjectOptions::for_file(&file, env)).unwrap().project;
    Fixture { _dir: dir, project, image: image(|_| {}) }
}

pub(super) fn fixture(yaml: &str) -> Fixture {
    fixture_with_env(yaml, &[])
}

impl Fixture {
    pub(super) fn ctx(&self) -> PlanContext<'_> {
        PlanContext {
            project: &self.project,
            state_root: Path::new("/var/lib/berth"),
            image: &self.image,
            layer_root: PathBuf::from("/var/lib/berth/images/l"),
            layer_links: vec!["base".into(), "middle".into(), "top".into()],
            host_resolv_conf: HOST_RESOLV,
            host_hosts: HOST_HOSTS,
            host_hostname: "buildhost\n",
        }
    }

    fn plan_with(&self, service: &str, overrides: &RunOverrides) -> Result<ContainerSpec, PlanError> {
        container_spec(&self.ctx(), &self.project.services[service], overrides)
    }

    pub(super) fn plan(&self, service: &str) -> Result<ContainerSpec, PlanError> {
        self.plan_with(service, &RunOverrides { index: 1, ..RunOverrides::default() })
    }
}

fn v(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn a_minimal_service_gets_dockers_defaults() {
    let f = fixture("name: proj\nservices:\n  web:\n    image: busybox\n");
    let spec = f.plan("web").unwrap();
    assert_eq!(spec.id.len(), 32);
    assert!(spec.id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert_ne!(spec.id, f.plan("web").unwrap().id, "ids are random");
    assert_eq!((spec.name.as_str(), spec.project.as_str(), spec.service.as_str()), ("proj-web-1", "proj", "web"));
    assert_eq!(spec.hostname, spec.id[..12], "docker's default host name is the short id");
    assert_eq!(spec.etc.hostname, format!("{}\n", &spec.id[..12]));
    assert_eq!(spec.rootfs.lower, v(&["top", "middle", "base"]), "overlayfs wants the top layer first");
    assert_eq!(spec.rootfs.host_binds, [PathBuf::from("/usr")]);
    assert_eq!(spec.process.args, ["sh"]);
    assert_eq!(spec.process.cwd, "/");
    assert_eq!(spec.process.user, "");
    assert_eq!(spec.process.capabilities.len(), DOCKER_DEFAULT_CAPS.len());
    assert_eq!(spec.shm_size, DEFAULT_SHM_SIZE);
    assert!(!spec.privileged && !spec.read_only && !spec.init && !spec.process.no_new_privileges);
    assert_eq!(spec.namespaces, crate::runtime::spec::Namespaces::default());
    assert!(spec.mounts.is_empty());
    assert_eq!(spec.etc.hosts, etc::DEFAULT_HOSTS);
    assert_eq!(spec.etc.resolv_conf, "nameserver 192.168.1.1\nsearch lan\n");
    assert_eq!(spec.resources, crate::runtime::spec::Resources::default());
    let spec = f.plan_with("web", &RunOverrides { index: 3, ..RunOverrides::default() }).unwrap();
    assert_eq!(spec.name, "proj-web-3");
    let spec = f.plan_with("web", &RunOverrides { name: Some("proj-web-run-1a2b".into()), ..RunOverrides::default() });
    assert_eq!(spec.unwrap().name, "proj-web-run-1a2b");
}

#[test]
fn service_keys_reach_the_spec() {
    let f = fixture(
        "name: proj\nservices:\n  web:\n    image: busybox\n    container_name: frontend\n    hostname: web.local\n\
         \x20   domainname: example.com\n    privileged: true\n    read_only: true\n    init: true\n    shm_size: 1g\n\
         \x20   tty: true\n    stdin_open: true\n    user: \"1000:1000\"\n    group_add: [audio, 44]\n\
         \x20   security_opt: [\"no-new-privileges:true\", \"label:disable\"]\n    working_dir: /srv/app/\n",
    );
    let spec = f.plan("web").unwrap();
    assert_eq!(spec.name, "frontend");
    assert_eq!((spec.hostname.as_str(), spec.domainname.as_str()), ("web.local", "example.com"));
    assert_eq!(spec.etc.hostname, "web.local\n");
    assert!(spec.privileged && spec.read_only && spec.init);
    assert_eq!(spec.process.capabilities, crate::runtime::caps::kernel_capabilities(), "privileged: every capability");
    assert_eq!(spec.shm_size, 1 << 30);
    assert!(spec.process.tty && spec.process.stdin_open && spec.process.no_new_privileges);
    assert_eq!(spec.process.user, "1000:1000");
    assert_eq!(spec.process.additional_groups, ["audio", "44"]);
    assert_eq!(spec.process.cwd, "/srv/app");
    assert!(spec.process.env.contains(&"TERM=xterm".to_owned()));
    assert!(spec.process.env.contains(&"HOSTNAME=web.local".to_owned()));
}

#[test]
fn the_environment_keeps_dockers_order_and_precedence() {
    let f = fixture_with_env(
        "name: proj\nservices:\n  web:\n    image: busybox\n    tty: true\n    environment:\n      SHARED: service\n\
         \x20     FROM_SHELL:\n      MISSING:\n      LANG:\n      TERM: dumb\n",
        &[("FROM_SHELL", "shell")],
    );
    let overrides =
        RunOverrides { env: v(&["EXTRA=1", "SHARED=override", "FROM_SHELL"]), index: 1, ..RunOverrides::default() };
    let spec = f.plan_with("web", &overrides).unwrap();
    let host = format!("HOSTNAME={}", spec.hostname);
    assert_eq!(
        spec.process.env,
        ["PATH=/usr/bin:/bin", host.as_str(), "TERM=dumb", "SHARED=override", "FROM_SHELL=shell", "EXTRA=1",],
        "a bare key unset in the environment removes the image's value too (LANG), as docker does"
    );
    let mut bare = f.image.clone();
    bare.config.config.env = None;
    let ctx = PlanContext { image: &bare, ..f.ctx() };
    let spec = container_spec(&ctx, &f.project.services["web"], &RunOverrides::default()).unwrap();
    assert_eq!(spec.process.env[0], format!("PATH={DEFAULT_PATH}"));
}

#[test]
fn command_entrypoint_and_overrides_combine_as_docker_does() {
    let f = fixture(
        "name: proj\nservices:\n  cmd:\n    image: x\n    command: echo hi\n  ep:\n    image: x\n    entrypoint: [/ep]\n\
         \x20 both:\n    image: x\n    entrypoint: /ep -v\n    command: [a, b]\n  clear:\n    image: x\n    entrypoint: \"\"\n",
    );
    let mut img = image(|c| c.entrypoint = Some(v(&["/docker-entrypoint.sh"])));
    img.config.config.cmd = Some(v(&["nginx", "-g", "daemon off;"]));
    let ctx = PlanContext { image: &img, ..f.ctx() };
    let args = |name: &str, o: &RunOverrides| container_spec(&ctx, &f.project.services[name], o).unwrap().process.args;
    let none = RunOverrides::default();
    assert_eq!(args("cmd", &none), ["/docker-entrypoint.sh", "echo", "hi"]);
    assert_eq!(args("ep", &none), ["/ep"]);
    assert_eq!(args("both", &none), ["/ep", "-v", "a", "b"]);
    assert_eq!(args("clear", &none), ["nginx", "-g", "daemon off;"]);
    let run = RunOverrides { command: Some(v(&["ls", "-l"])), ..RunOverrides::default() };
    assert_eq!(args("both", &run), ["/ep", "-v", "ls", "-l"]);
    let run = RunOverrides { entrypoint: Some(v(&["/bin/sh", "-c"])), ..RunOverrides::default() };
    assert_eq!(args("cmd", &run), ["/bin/sh", "-c", "echo", "hi"], "run --entrypoint keeps the service's command");
    assert_eq!(
        args("ep", &RunOverrides { entrypoint: Some(Vec::new()), ..RunOverrides::default() }),
        ["nginx", "-g", "daemon off;"]
    );

    let mut empty = image(|_| {});
    empty.config.config.cmd = None;
    let ctx = PlanContext { image: &empty, ..f.ctx() };
    let err = container_spec(&ctx, &f.project.services["clear"], &none).unwrap_err();
    assert_eq!(err.to_string(), r#"service "clear": no command specified"#);
}

#[test]
fn user_and_working_dir_fall_back_to_the_image() {
    let f = fixture("name: proj\nservices:\n  web:\n    image: x\n  rel:\n    image: x\n    working_dir: app\n");
    let img = image(|c| {
        c.user = Some("nginx".into());
        c.working_dir = Some("/usr/share/nginx".into());
    });
    let ctx = PlanContext { image: &img, ..f.ctx() };
    let web = &f.project.services["web"];
    let spec = container_spec(&ctx, web, &RunOverrides::default()).unwrap();
    assert_eq!((spec.process.user.as_str(), spec.process.cwd.as_str()), ("nginx", "/usr/share/nginx"));
    let o = RunOverrides { user: Some("root".into()), workdir: Some("/tmp".into()), ..RunOverrides::default() };
    let spec = container_spec(&ctx, web, &o).unwrap();
    assert_eq!((spec.process.user.as_str(), spec.process.cwd.as_str()), ("root", "/tmp"));
    let err = f.plan("rel").unwrap_err().to_string();
    assert_eq!(err, r#"service "rel": working_dir: "app" is not an absolute path"#);
    let bad = image(|c| c.working_dir = Some("relative".into()));
    let ctx = PlanContext { image: &bad, ..f.ctx() };
    let err = container_spec(&ctx, web, &RunOverrides::default()).unwrap_err().to_string();
    assert!(err.contains("image WorkingDir"), "{err}");
}

#[test]
fn capabilities_ulimits_and_their_errors_name_the_key() {
    let f = fixture(
        "name: proj\nservices:\n  web:\n    image: x\n    cap_add: [net_admin]\n    cap_drop: [ALL]\n\
         \x20   ulimits:\n      nofile: {soft: 1024, hard: 4096}\n      nproc: -1\n\
         \x20 bad:\n    image: x\n    cap_add: [CAP_FOO]\n  lim:\n    image: x\n    ulimits:\n      files: 10\n",
    );
    let spec = f.plan("web").unwrap();
    assert_eq!(spec.process.capabilities, ["CAP_NET_ADMIN"]);
    assert_eq!(
        spec.process.rlimits,
        [Rlimit { resource: 7, soft: 1024, hard: 4096 }, Rlimit { resource: 6, soft: u64::MAX, hard: u64::MAX },]
    );
    assert_eq!(f.plan("bad").unwrap_err().to_string(), r#"service "bad": cap_add: unknown capability "CAP_FOO""#);
    let err = f.plan("lim").unwrap_err().to_string();
    assert!(err.starts_with(r#"service "lim": ulimits: unknown limit "files""#), "{err}");
}

#[test]
fn namespaces_resolve_services_to_their_first_container() {
    let f = fixture(
        "name: proj\nservices:\n  db:\n    image: x\n  vpn:\n    image: x\n    container_name: the-vpn\n\
         \x20 web:\n    image: x\n    network_mode: service:vpn\n    pid: service:db\n    ipc: container:abc\n\
         \x20 host:\n    image: x\n    network_mode: host\n    pid: host\n    ipc: host\n    uts: host\n\
         \x20 none:\n    image: x\n    network_mode: none\n    ipc: shareable\n\
         \x20 bad:\n    image: x\n    pid: private\n",
    );
    let web = f.plan("web").unwrap().namespaces;
    assert_eq!(web.net, NamespaceMode::Container("the-vpn".into()));
    assert_eq!(web.pid, NamespaceMode::Container("proj-db-1".into()));
    assert_eq!(web.ipc, NamespaceMode::Container("abc".into()));
    assert_eq!(web.uts, NamespaceMode::Private);
    let host = f.plan("host").unwrap();
    let ns = &host.namespaces;
    assert_eq!([&ns.net, &ns.pid, &ns.ipc, &ns.uts], [&NamespaceMode::Host; 4]);
    assert_eq!(host.hostname, "buildhost", "the host's name, trimmed");
    assert_eq!((host.etc.hosts.as_str(), host.etc.resolv_conf.as_str()), (HOST_HOSTS, HOST_RESOLV));
    assert!(host.sysctls.is_empty());
    let none = f.plan("none").unwrap();
    assert_eq!((none.namespaces.net, none.namespaces.ipc), (NamespaceMode::None, NamespaceMode::Private));
    assert_eq!(none.sysctls["net.ipv4.ip_unprivileged_port_start"], "0");
    assert!(f.plan("bad").unwrap_err().to_string().starts_with(r#"service "bad": pid: invalid mode "private""#));
}

#[test]
fn joined_networks_refuse_their_own_names_and_files() {
    let f = fixture(
        "name: proj\nservices:\n  db:\n    image: x\n  web:\n    image: x\n    network_mode: service:db\n    hostname: web\n\
         \x20 dns:\n    image: x\n    network_mode: container:db\n    dns: [1.1.1.1]\n",
    );
    assert!(f.plan("web").unwrap_err().to_string().starts_with(r#"service "web": hostname: conflicting options"#));
    assert!(f.plan("dns").unwrap_err().to_string().starts_with(r#"service "dns": dns: conflicting options"#));
}

#[test]
fn hosts_and_resolv_conf_take_the_service_keys() {
    let f = fixture(
        "name: proj\nservices:\n  web:\n    image: x\n    extra_hosts: [\"db.internal=10.0.0.5\", \"gw:host-gateway\"]\n\
         \x20   dns: [9.9.9.9]\n    dns_search: [svc.local]\n    dns_opt: [ndots:1]\n\
         \x20 hostnet:\n    image: x\n    network_mode: host\n    extra_hosts: [\"a=1.2.3.4\"]\n",
    );
    let spec = f.plan("web").unwrap();
    assert_eq!(spec.etc.hosts, format!("{}10.0.0.5\tdb.internal\nhost-gateway\tgw\n", etc::DEFAULT_HOSTS));
    assert_eq!(spec.etc.resolv_conf, "search svc.local\nnameserver 9.9.9.9\noptions ndots:1\n");
    let host = f.plan("hostnet").unwrap();
    assert_eq!(host.etc.hosts, format!("{}1.2.3.4\ta\n", etc::DEFAULT_HOSTS), "docker builds its own file then");
    assert_eq!(host.etc.resolv_conf, HOST_RESOLV);
}

#[test]
fn sysctls_are_checked_against_the_namespaces() {
    let f = fixture(
        "name: proj\nservices:\n  ok:\n    image: x\n    sysctls: {net.core.somaxconn: 1024, kernel.shm_rmid_forced: 1}\n\
         \x20 hostnet:\n    image: x\n    network_mode: host\n    sysctls: [net.ipv4.ip_forward=1]\n\
         \x20 hostipc:\n    image: x\n    ipc: host\n    sysctls: {kernel.msgmax: 1}\n\
         \x20 global:\n    image: x\n    sysctls: {vm.overcommit_memory: 1}\n",
    );
    let ok = f.plan("ok").unwrap().sysctls;
    assert_eq!((ok["net.core.somaxconn"].as_str(), ok["kernel.shm_rmid_forced"].as_str()), ("1024", "1"));
    let err = |name: &str| f.plan(name).unwrap_err().to_string();
    assert!(err("hostnet").contains(r#"sysctls: sysctl "net.ipv4.ip_forward" is not allowed in the host's network"#));
    assert!(err("hostipc").contains(r#"sysctl "kernel.msgmax" is not allowed in the host's IPC"#));
    assert!(err("global").contains(r#"sysctl "vm.overcommit_memory" is not in a separate kernel namespace"#));
}

#[test]
fn resources_come_from_service_keys_and_deploy_limits() {
    let f = fixture(
        "name: proj\nservices:\n  keys:\n    image: x\n    mem_limit: 512m\n    mem_reservation: 256m\n\
         \x20   memswap_limit: -1\n    cpus: 1.5\n    cpu_shares: 512\n    cpuset: 0-1\n    pids_limit: 100\n\
         \x20 deploy:\n    image: x\n    mem_limit: 512m\n    pids_limit: 100\n    deploy:\n      resources:\n\
         \x20       limits: {cpus: '0.5', memory: 1g, pids: 50}\n        reservations: {memory: 128m}\n\
         \x20 quota:\n    image: x\n    cpu_quota: 50000\n  both:\n    image: x\n    cpus: 1\n    cpu_period: 50000\n",
    );
    let keys = f.plan("keys").unwrap().resources;
    assert_eq!(keys.memory_limit, Some(512 << 20));
    assert_eq!(keys.memory_reservation, Some(256 << 20));
    assert_eq!(keys.memory_swap, Some(-1));
    assert_eq!((keys.cpu_quota, keys.cpu_period), (Some(150_000), Some(100_000)));
    assert_eq!(keys.cpu_shares, Some(512));
    assert_eq!(keys.cpuset_cpus.as_deref(), Some("0-1"));
    assert_eq!(keys.pids_limit, Some(100));
    let deploy = f.plan("deploy").unwrap().resources;
    assert_eq!(deploy.memory_limit, Some(1 << 30), "deploy limits win, as in compose");
    assert_eq!(deploy.memory_reservation, Some(128 << 20));
    assert_eq!((deploy.cpu_quota, deploy.cpu_period), (Some(50_000), Some(100_000)));
    assert_eq!(deploy.pids_limit, Some(50));
    let quota = f.plan("quota").unwrap().resources;
    assert_eq!((quota.cpu_quota, quota.cpu_period), (Some(50_000), Some(100_000)));
    let err = f.plan("both").unwrap_err().to_string();
    assert_eq!(err, r#"service "both": cpus: conflicting options: cpus and cpu_period cannot both be set"#);
}

#[test]
fn security_opt_seccomp_picks_the_policy_and_privileged_is_unconfined() {
    use crate::runtime::spec::SeccompPolicy;
    let f = fixture(
        "name: proj\nservices:\n  plain:\n    image: busybox\n  open:\n    image: busybox\n\
         \x20   security_opt: [\"seccomp:unconfined\"]\n  all:\n    image: busybox\n    privileged: true\n\
         \x20 own:\n    image: busybox\n    security_opt: [\"seccomp=p/deny.json\"]\n\
         \x20 bad:\n    image: busybox\n    security_opt: [\"seccomp=p/bad.json\"]\n",
    );
    let dir = f.project.working_dir.join("p");
    std::fs::create_dir_all(&dir).unwrap();
    let deny = r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}"#;
    std::fs::write(dir.join("deny.json"), deny).unwrap();
    std::fs::write(dir.join("bad.json"), r#"{"defaultAction": "SCMP_ACT_ALLOW", "flags": [3]}"#).unwrap();
    assert_eq!(f.plan("plain").unwrap().process.seccomp, SeccompPolicy::Default);
    assert_eq!(f.plan("open").unwrap().process.seccomp, SeccompPolicy::Unconfined);
    assert_eq!(f.plan("all").unwrap().process.seccomp, SeccompPolicy::Unconfined);
    let own = f.plan("own").unwrap().process.seccomp;
    assert_eq!(own, SeccompPolicy::Profile { file: "p/deny.json".into(), json: deny.into() });
    let err = f.plan("bad").unwrap_err().to_string();
    assert!(
        err.starts_with(r#"service "bad": security_opt: seccomp profile p/bad.json: flags[0]: invalid type"#),
        "{err}"
    );
}
