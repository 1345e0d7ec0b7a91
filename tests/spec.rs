//! The stack-file loader end to end, on files written to a temporary directory: discovery,
//! overrides, extends, include, profiles, interpolation, validation and their error messages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use berth::spec::{LoadError, Loaded, ProjectOptions, Stage, load};

/// A project directory with files in it.
struct Stack {
    dir: tempfile::TempDir,
}

impl Stack {
    fn new(files: &[(&str, &str)]) -> Self {
        let dir = tempfile::Builder::new().prefix("berth-spec-").tempdir().unwrap();
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        Stack { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn options(&self) -> ProjectOptions {
        ProjectOptions {
            interpolate: true,
            consistency: true,
            working_dir: self.dir.path().to_path_buf(),
            os_env: BTreeMap::new(),
            ..ProjectOptions::default()
        }
    }

    fn load(&self) -> Result<Loaded, LoadError> {
        load(&self.options())
    }

    fn load_with(&self, f: impl FnOnce(&mut ProjectOptions)) -> Result<Loaded, LoadError> {
        let mut o = self.options();
        f(&mut o);
        load(&o)
    }
}

fn json(loaded: &Loaded) -> serde_json::Value {
    serde_json::to_value(&loaded.project).unwrap()
}

#[test]
fn discovery_finds_compose_yaml_and_its_override_from_a_subdirectory() {
    let s = Stack::new(&[
        ("compose.yaml", "services:\n  web:\n    image: busybox\n    environment: {A: base, B: base}\n"),
        ("compose.override.yaml", "services:\n  web:\n    environment: {B: over}\n"),
        ("sub/dir/.keep", ""),
    ]);
    let loaded = s.load_with(|o| o.working_dir = s.path("sub/dir")).unwrap();
    let j = json(&loaded);
    assert_eq!(j["services"]["web"]["environment"], serde_json::json!({"A": "base", "B": "over"}));
    assert_eq!(loaded.project.compose_files.len(), 2);
    assert_eq!(loaded.project.working_dir, s.dir.path());
}

#[test]
fn missing_stack_file_names_the_directory_and_the_candidates() {
    let s = Stack::new(&[]);
    let e = s.load().unwrap_err();
    assert!(e.to_string().contains("compose.yaml, compose.yml, docker-compose.yaml, docker-compose.yml"), "{e}");
}

#[test]
fn later_files_override_earlier_ones_with_compose_merge_rules() {
    let s = Stack::new(&[
        (
            "a.yaml",
            "services:\n  web:\n    image: busybox:1\n    command: [a, b]\n    ports: ['127.0.0.1:8080:80']\n    volumes: ['./x:/data']\n    environment: [A=1, B=2]\n",
        ),
        (
            "b.yaml",
            "services:\n  web:\n    image: busybox:2\n    command: [c]\n    ports: ['127.0.0.1:9090:90']\n    volumes: ['./y:/data']\n    environment: {B: '3'}\n",
        ),
    ]);
    let loaded = s.load_with(|o| o.files = vec![s.path("a.yaml"), s.path("b.yaml")]).unwrap();
    let web = &loaded.project.services["web"];
    assert_eq!(web.image.as_deref(), Some("busybox:2"));
    assert_eq!(web.command.as_deref(), Some(&["c".to_owned()][..]), "command is replaced, never appended");
    assert_eq!(web.ports.len(), 2, "ports append");
    assert_eq!(web.volumes.len(), 1, "volumes merge by target");
    assert!(web.volumes[0].source.as_deref().unwrap().ends_with("/y"));
    assert_eq!(web.environment.get("A"), Some(&Some("1".to_owned())));
    assert_eq!(web.environment.get("B"), Some(&Some("3".to_owned())));
}

#[test]
fn reset_and_override_tags() {
    let s = Stack::new(&[
        (
            "a.yaml",
            "services:\n  web:\n    image: busybox\n    ports: ['8080:80']\n    environment: {A: '1', B: '2'}\n",
        ),
        ("b.yaml", "services:\n  web:\n    ports: !reset []\n    environment: !override {C: '3'}\n"),
    ]);
    let loaded = s.load_with(|o| o.files = vec![s.path("a.yaml"), s.path("b.yaml")]).unwrap();
    let web = &loaded.project.services["web"];
    assert!(web.ports.is_empty());
    assert_eq!(web.environment.keys().collect::<Vec<_>>(), ["C"]);
}

#[test]
fn merge_keys_are_never_dropped() {
    let s = Stack::new(&[(
        "compose.yaml",
        "x-base: &base\n  image: busybox\n  environment: &env {A: '1'}\n  labels: [tier=web]\nservices:\n  web:\n    <<: *base\n    environment:\n      <<: *env\n      B: '2'\n",
    )]);
    let web = &s.load().unwrap().project.services["web"];
    assert_eq!(web.image.as_deref(), Some("busybox"));
    assert_eq!(web.labels.get("tier").map(String::as_str), Some("web"));
    assert_eq!(web.environment.len(), 2);
}

#[test]
fn extends_in_the_same_file_and_another_directory() {
    let s = Stack::new(&[
        (
            "compose.yaml",
            "services:\n  base:\n    image: busybox\n    environment: {A: '1'}\n  web:\n    extends: base\n    environment: {B: '2'}\n  api:\n    extends: {file: common/svc.yaml, service: shared}\n",
        ),
        (
            "common/svc.yaml",
            "services:\n  shared:\n    extends: root\n    env_file: shared.env\n  root:\n    image: alpine\n    volumes: ['./data:/data']\n",
        ),
        ("common/shared.env", "FROM_FILE=yes\n"),
    ]);
    let p = s.load().unwrap().project;
    assert_eq!(p.services["web"].environment.len(), 2);
    let api = &p.services["api"];
    assert_eq!(api.image.as_deref(), Some("alpine"));
    assert_eq!(
        api.environment.get("FROM_FILE"),
        Some(&Some("yes".to_owned())),
        "env_file path is relative to the file that wrote it"
    );
    assert_eq!(api.volumes[0].source.as_deref(), Some(s.path("common/data").to_str().unwrap()));
}

#[test]
fn extends_cycles_and_missing_bases_are_reported() {
    let s = Stack::new(&[("compose.yaml", "services:\n  a:\n    extends: b\n  b:\n    extends: a\n")]);
    let e = s.load().unwrap_err();
    assert!(e.to_string().contains("extends cycle detected: a -> b -> a"), "{e}");
    let s = Stack::new(&[("compose.yaml", "services:\n  web:\n    extends: bse\n  base:\n    image: x\n")]);
    let e = s.load().unwrap_err();
    assert!(e.to_string().contains("did you mean \"base\""), "{e}");
}

#[test]
fn include_loads_other_projects_relative_to_their_own_directory() {
    let s = Stack::new(&[
        (
            "compose.yaml",
            "include:\n  - lib/compose.yaml\nservices:\n  web:\n    image: busybox\n    depends_on: [db]\n",
        ),
        ("lib/compose.yaml", "services:\n  db:\n    image: ${DB_IMAGE}\n    volumes: ['./seed:/seed']\n"),
        ("lib/.env", "DB_IMAGE=postgres:16\n"),
    ]);
    let p = s.load().unwrap().project;
    assert_eq!(p.services["db"].image.as_deref(), Some("postgres:16"), "the included project's own .env is used");
    assert_eq!(p.services["db"].volumes[0].source.as_deref(), Some(s.path("lib/seed").to_str().unwrap()));
}

#[test]
fn include_cycles_are_reported() {
    let s = Stack::new(&[
        ("compose.yaml", "include: [other.yaml]\nservices: {}\n"),
        ("other.yaml", "include: [compose.yaml]\n"),
    ]);
    let e = s.load().unwrap_err();
    assert!(e.to_string().contains("include cycle detected"), "{e}");
    assert_eq!(e.stage(), Some(Stage::Composition));
}

#[test]
fn obsolete_and_unsupported_keys_warn_once_and_are_kept() {
    let s = Stack::new(&[(
        "compose.yaml",
        "version: '3.8'\nservices:\n  a:\n    image: x\n    blkio_config: {weight: 300}\n  b:\n    image: y\n    blkio_config: {weight: 200}\n",
    )]);
    let loaded = s.load().unwrap();
    let messages: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(messages.iter().filter(|m| m.contains("blkio_config")).count(), 1, "{messages:?}");
    assert!(
        messages.iter().any(|m| m.contains("`version` key is obsolete") && m.contains("compose.yaml:1:")),
        "{messages:?}"
    );
    let j = json(&loaded);
    assert_eq!(j["services"]["b"]["blkio_config"]["weight"], 200, "an unsupported key is kept, not dropped");
}

#[test]
fn profiles_enable_services_and_star_enables_all() {
    let s = Stack::new(&[(
        "compose.yaml",
        "services:\n  web:\n    image: a\n  debug:\n    image: b\n    profiles: [debug]\n  tools:\n    image: c\n    profiles: [tools, ops]\n",
    )]);
    let names = |l: Loaded| l.project.services.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(s.load().unwrap()), ["web"]);
    assert_eq!(names(s.load_with(|o| o.profiles = vec!["ops".into()]).unwrap()), ["tools", "web"]);
    assert_eq!(names(s.load_with(|o| o.profiles = vec!["*".into()]).unwrap()), ["debug", "tools", "web"]);
    assert_eq!(
        names(s.load_with(|o| o.services = vec!["debug".into()]).unwrap()),
        ["debug", "web"],
        "naming a service enables it"
    );
    let mut env = BTreeMap::new();
    env.insert("COMPOSE_PROFILES".to_owned(), "debug".to_owned());
    assert_eq!(names(s.load_with(|o| o.os_env = env).unwrap()), ["debug", "web"]);
}

#[test]
fn a_dependency_on_a_disabled_service_is_an_error() {
    let s = Stack::new(&[(
        "compose.yaml",
        "services:\n  web:\n    image: a\n    depends_on: [debug]\n  debug:\n    image: b\n    profiles: [debug]\n",
    )]);
    let e = s.load().unwrap_err();
    assert!(e.to_string().contains("\"debug\" is required by \"web\" but is disabled"), "{e}");
}

#[test]
fn interpolation_uses_the_environment_over_dot_env_and_reports_required_variables() {
    let s = Stack::new(&[
        (
            "compose.yaml",
            "services:\n  web:\n    image: \"busybox:${TAG}\"\n    environment:\n      PORT: ${PORT:-80}\n      COST: $$5\n      UNSET: ${NOPE}\n",
        ),
        (".env", "TAG=from-dotenv\nPORT=8080\n"),
    ]);
    let mut env = BTreeMap::new();
    env.insert("TAG".to_owned(), "from-env".to_owned());
    let loaded = s.load_with(|o| o.os_env = env).unwrap();
    let web = &loaded.project.services["web"];
    assert_eq!(web.image.as_deref(), Some("busybox:from-env"));
    assert_eq!(web.environment["PORT"].as_deref(), Some("8080"));
    assert_eq!(web.environment["COST"].as_deref(), Some("$5"));
    assert_eq!(web.environment["UNSET"].as_deref(), Some(""));
    assert_eq!(loaded.warnings.iter().filter(|w| w.message.contains("\"NOPE\" variable is not set")).count(), 1);

    let s = Stack::new(&[(
        "compose.yaml",
        "services:\n  web:\n    image: x\n    environment:\n      A: ${NEEDED:?please set NEEDED}\n",
    )]);
    let e = s.load().unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("compose.yaml:5:"), "names the file and line: {msg}");
    assert!(msg.contains("services.web.environment.A"), "names the key: {msg}");
    assert!(msg.contains("NEEDED") && msg.contains("please set NEEDED"), "{msg}");
    assert_eq!(e.stage(), Some(Stage::Interpolation));
}

#[test]
fn keys_are_never_interpolated_and_no_interpolate_keeps_values() {
    let s = Stack::new(&[(
        "compose.yaml",
        "services:\n  web:\n    image: \"${IMG:-busybox}\"\n    labels:\n      ${KEY}: v\n",
    )]);
    let p = s.load().unwrap().project;
    assert!(p.services["web"].labels.contains_key("${KEY}"));
    let p = s.load_with(|o| o.interpolate = false).unwrap().project;
    assert_eq!(p.services["web"].image.as_deref(), Some("${IMG:-busybox}"));
}

#[test]
fn environment_bare_keys_take_the_host_value_and_env_files_come_first() {
    let s = Stack::new(&[
        (
            "compose.yaml",
            "services:\n  web:\n    image: x\n    env_file: [one.env, {path: missing.env, required: false}]\n    environment: [FROM_HOST, ABSENT, OVER=env]\n",
        ),
        ("one.env", "OVER=file\nFILE_ONLY=1\n"),
    ]);
    let mut env = BTreeMap::new();
    env.insert("FROM_HOST".to_owned(), "h".to_owned());
    let web = s.load_with(|o| o.os_env = env).unwrap().project.services["web"].clone();
    assert_eq!(web.environment["FROM_HOST"].as_deref(), Some("h"));
    assert_eq!(web.environment["ABSENT"], None);
    assert_eq!(web.environment["OVER"].as_deref(), Some("env"));
    assert_eq!(web.environment["FILE_ONLY"].as_deref(), Some("1"));

    let s = Stack::new(&[("compose.yaml", "services:\n  web:\n    image: x\n    env_file: nope.env\n")]);
    assert!(s.load().unwrap_err().to_string().contains("nope.env"));
}

#[test]
fn yaml_errors_carry_file_line_and_column() {
    let s = Stack::new(&[("compose.yaml", "services:\n  web:\n    image: a\n    image: b\n")]);
    let e = s.load().unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("compose.yaml:4:5") && msg.contains("duplicate"), "{msg}");
    assert_eq!(e.stage(), Some(Stage::Yaml));
    let s = Stack::new(&[("compose.yaml", "services: {}\n---\nservices: {}\n")]);
    assert!(s.load().unwrap_err().to_string().contains("several"));
    let s = Stack::new(&[("compose.yaml", "# nothing here\n")]);
    assert!(s.load().unwrap_err().to_string().contains("empty compose file"));
}

#[test]
fn schema_errors_name_the_yaml_path_and_line() {
    let s = Stack::new(&[("compose.yaml", "services:\n  web:\n    image: a\n    wrongField: 1\n")]);
    let e = s.load().unwrap_err();
    let msg = e.to_string();
    assert_eq!(e.stage(), Some(Stage::Schema));
    assert!(msg.contains("wrongField"), "{msg}");
    assert!(msg.contains("compose.yaml:"), "{msg}");
}

#[test]
fn semantic_errors_are_all_reported_with_locations() {
    let s = Stack::new(&[(
        "compose.yaml",
        "services:\n  web:\n    image: a\n    depends_on: [dbb]\n    ports: ['8080:80', 'x:80']\n    healthcheck: {test: [CMD, 'true'], interval: 1x}\n  db:\n    image: b\n    network_mode: host\n    networks: [front]\n    volumes: ['undeclared:/data']\n    container_name: same\n  other:\n    image: c\n    container_name: same\n    ports: ['8080:81']\nnetworks:\n  front: {}\n",
    )]);
    let e = s.load().unwrap_err();
    let msg = e.to_string();
    for expected in [
        "invalid duration",
        "services.web.healthcheck.interval",
        "services.web.ports[1]",
        "network_mode cannot be combined with networks",
        "undefined volume \"undeclared\"",
        "container name \"same\" is already used",
    ] {
        assert!(msg.contains(expected), "missing {expected:?} in:\n{msg}");
    }
    let s = Stack::new(&[(
        "compose.yaml",
        "services:\n  web:\n    image: a\n    depends_on: [dbb]\n  db:\n    image: b\n",
    )]);
    let msg = s.load().unwrap_err().to_string();
    assert!(msg.contains("undefined service \"dbb\" (did you mean \"db\"?)"), "{msg}");
    assert!(msg.contains("compose.yaml:4:"), "{msg}");
}

#[test]
fn the_same_host_port_published_twice_loads_but_fails_the_preflight() {
    let s = Stack::new(&[(
        "compose.yaml",
        "services:\n  a:\n    image: x\n    ports: ['8000-8010:80']\n  b:\n    image: x\n    ports: ['127.0.0.1:8005:80']\n  c:\n    image: x\n    ports: ['8005:80/udp']\n",
    )]);
    // `docker compose config` accepts it; `up` is what cannot run it.
    let loaded = s.load().unwrap();
    let all = loaded.project.services.keys().map(String::as_str);
    let msg = berth::spec::preflight::check(&loaded.project, &loaded.document, all).unwrap_err().to_string();
    assert!(msg.contains("host port 8005/tcp is published twice: by service \"a\" and by service \"b\""), "{msg}");
    assert!(msg.contains("compose.yaml:7:"), "the line of b's ports: {msg}");
    assert!(!msg.contains("udp"), "a different protocol does not clash: {msg}");
    let apart = berth::spec::preflight::check(&loaded.project, &loaded.document, ["a", "c"]);
    assert!(apart.is_ok(), "services not started together do not clash: {apart:?}");
}

#[test]
fn dependency_cycles_print_the_cycle() {
    let s = Stack::new(&[(
        "compose.yaml",
        "services:\n  a: {image: x, depends_on: [b]}\n  b: {image: x, depends_on: [c]}\n  c: {image: x, depends_on: [a]}\n",
    )]);
    let msg = s.load().unwrap_err().to_string();
    assert!(msg.contains("dependency cycle detected: a -> b -> c -> a"), "{msg}");
}

#[test]
fn the_project_name_is_offered_to_interpolation() {
    let s = Stack::new(&[(
        "compose.yaml",
        "name: shop\nservices:\n  web:\n    image: busybox\n    environment: {P: \"${COMPOSE_PROJECT_NAME}\"}\n",
    )]);
    assert_eq!(s.load().unwrap().project.services["web"].environment["P"].as_deref(), Some("shop"));
    let p = s.load_with(|o| o.project_name = Some("flagged".into())).unwrap().project;
    assert_eq!(p.services["web"].environment["P"].as_deref(), Some("flagged"));
}

#[test]
fn project_names_follow_compose_precedence() {
    let s = Stack::new(&[("compose.yaml", "name: fromfile\nservices: {web: {image: x}}\n")]);
    assert_eq!(s.load().unwrap().project.name, "fromfile");
    assert_eq!(s.load_with(|o| o.project_name = Some("flag".into())).unwrap().project.name, "flag");
    let e = s.load_with(|o| o.project_name = Some("Bad Name".into())).unwrap_err();
    assert!(e.to_string().contains("invalid project name"));
    let p = s.load().unwrap().project;
    assert_eq!(p.networks["default"].name, "fromfile_default");
}

#[test]
fn normalised_forms_for_the_keys_local_dev_uses() {
    let s = Stack::new(&[(
        "compose.yaml",
        r#"services:
  web:
    image: busybox
    command: echo "hello world"
    entrypoint: ["/bin/sh", "-c"]
    ports: ["3000-3001:4000-4001/udp", {target: 80, published: "8080", host_ip: 127.0.0.1}]
    volumes: ["data:/data:ro", "~/cfg:/cfg", {type: tmpfs, target: /tmp, tmpfs: {size: 64m}}]
    healthcheck: {test: "curl -f localhost", interval: 1m30s, start_period: 500ms}
    depends_on:
      db: {condition: service_healthy, restart: true}
    extra_hosts: ["host.docker.internal:host-gateway", "other=10.0.0.1"]
    mem_limit: 512m
    cpus: "1.5"
    ulimits: {nofile: {soft: 1024, hard: 2048}, nproc: 512}
    restart: on-failure:3
    deploy: {restart_policy: {condition: on-failure, delay: 5s, max_attempts: 3}}
    stop_grace_period: 1m
    x-berth-restart-on-unhealthy: true
  db:
    image: postgres
volumes:
  data:
"#,
    )]);
    let p = s.load().unwrap().project;
    let web = &p.services["web"];
    assert_eq!(web.command.as_deref(), Some(&["echo".to_owned(), "hello world".to_owned()][..]));
    assert_eq!(web.ports.len(), 3);
    assert_eq!(web.ports[0].published.as_deref(), Some("3000"));
    assert_eq!(web.ports[0].protocol, "udp");
    assert!(web.volumes[0].read_only);
    assert!(
        web.volumes[1].source.as_deref().unwrap().ends_with("/cfg")
            && web.volumes[1].source.as_deref().unwrap().starts_with('/')
    );
    let hc = web.healthcheck.as_ref().unwrap();
    assert_eq!(hc.test, ["CMD-SHELL", "curl -f localhost"]);
    assert_eq!(hc.interval.unwrap().0, std::time::Duration::from_secs(90));
    assert_eq!(web.mem_limit, Some(512 * 1024 * 1024));
    assert_eq!(web.cpus, Some(1.5));
    assert_eq!(web.ulimits["nproc"].soft, 512);
    assert_eq!(web.extra_hosts["host.docker.internal"], ["host-gateway"]);
    assert!(web.depends_on["db"].restart);
    let j = serde_json::to_value(&p).unwrap();
    assert_eq!(j["services"]["web"]["depends_on"]["db"]["condition"], "service_healthy");
    assert_eq!(j["services"]["web"]["healthcheck"]["interval"], "1m30s");
    assert_eq!(j["services"]["web"]["x-berth-restart-on-unhealthy"], true, "x- keys are kept");
    assert_eq!(j["volumes"]["data"]["name"], format!("{}_data", p.name));
}

#[test]
fn stdin_is_a_stack_file() {
    let s = Stack::new(&[]);
    let p = s.load_with(|o| {
        o.files = vec![PathBuf::from("-")];
        o.stdin = Some("services:\n  web:\n    image: busybox\n".into());
    });
    assert_eq!(p.unwrap().project.services.len(), 1);
}

fn berth(dir: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .current_dir(dir)
        .args(args)
        .env_remove("COMPOSE_FILE")
        .output()
        .unwrap()
}

#[test]
fn config_quiet_accepts_every_example_stack() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&examples).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.join("compose.yaml").is_file() {
            continue;
        }
        let out = berth(&dir, &["config", "-q"]);
        assert!(out.status.success(), "{}: {}", dir.display(), String::from_utf8_lossy(&out.stderr));
        assert!(out.stdout.is_empty());
        checked += 1;
    }
    println!("config -q: {checked} example stacks valid");
    assert!(checked >= 4);
}

#[test]
fn a_broken_file_exits_2_and_prints_its_location() {
    let s = Stack::new(&[("compose.yaml", "services:\n  web:\n    image: [unclosed\n")]);
    let out = berth(s.dir.path(), &["config", "-q"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("compose.yaml:"), "{err}");
    let out = berth(s.dir.path(), &["no-such-command"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn config_json_is_the_canonical_compose_form_and_graph_prints_waves() {
    let s = Stack::new(&[(
        "compose.yaml",
        "services:\n  db: {image: x, healthcheck: {test: [CMD, 'true']}}\n  api: {image: y, depends_on: {db: {condition: service_healthy}}}\n  web: {image: z, depends_on: [api]}\n",
    )]);
    let out = berth(s.dir.path(), &["config", "--format", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        j["services"]["api"]["depends_on"]["db"],
        serde_json::json!({"condition": "service_healthy", "required": true})
    );
    assert_eq!(j["services"]["web"]["depends_on"]["api"]["condition"], "service_started");
    let out = berth(s.dir.path(), &["config", "--services"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "api\ndb\nweb\n");
    let text = String::from_utf8(berth(s.dir.path(), &["graph"]).stdout).unwrap();
    let wave_of = |name: &str| text.lines().position(|l| l.contains(name)).unwrap();
    assert!(wave_of("db") < wave_of("api") && wave_of("api") < wave_of("web"), "{text}");
    let dot = String::from_utf8(berth(s.dir.path(), &["graph", "--format", "dot"]).stdout).unwrap();
    assert!(dot.starts_with("digraph"), "{dot}");
    let mermaid = String::from_utf8(berth(s.dir.path(), &["graph", "--format", "mermaid"]).stdout).unwrap();
    assert!(mermaid.contains("flowchart") || mermaid.contains("graph"), "{mermaid}");
    let out = berth(s.dir.path(), &["completion", "bash"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("berth"));
}

/// A stack using the keys whose canonical form differs most from how they are written.
const GOLDEN_STACK: &str = r#"name: golden
services:
  web:
    image: busybox
    command: echo hi
    mem_limit: 512m
    shm_size: 64m
    ports: ["127.0.0.1:8080-8081:80-81/udp", {target: 443, published: 8443}]
    volumes: ["./data:/data:ro", "cache:/cache:nocopy", {type: bind, source: ./src, target: /src/, bind: {propagation: rshared}}, {type: tmpfs, target: /t, tmpfs: {size: 1m, mode: 0755}}]
    environment: {A: "1", UNSET_IN_GOLDEN: null}
    extra_hosts: ["db.local:10.0.0.2", "gw=host-gateway"]
    healthcheck: {test: curl -f localhost, interval: 90s, retries: 3}
    links: [db]
    ulimits: {nproc: 30, nofile: {soft: 10, hard: 20}}
    secrets: [pw, {source: pw, target: /etc/pw, mode: "0400"}]
    configs: [{source: conf, target: /etc/conf}]
    deploy: {restart_policy: {condition: on-failure, delay: 5s, window: 2m}}
    logging: {driver: json-file, options: {max-file: 3}}
    devices: ["/dev/fuse"]
    pull_policy: if_not_present
    networks: {front: {aliases: [w], gw_priority: 1}}
  db:
    build: {context: ./db, args: {V: 1, UNSET_IN_GOLDEN: null}}
    healthcheck: {disable: true}
    volumes_from: [cache]
    networks: [front]
  cache:
    image: redis
    network_mode: none
networks:
  front: {ipam: {config: [{subnet: 10.0.0.0/24}]}}
  spare: {}
volumes:
  cache: {external: {name: shared-cache}}
  spare: {}
secrets:
  pw: {file: ./pw.txt}
configs:
  conf: {content: hello}
"#;

/// What `docker compose config --format json` (v2.40.3) prints for [`GOLDEN_STACK`], with the
/// project directory written as `{dir}`.
const GOLDEN_COMPOSE_JSON: &str = r#"{
  "configs": {"conf": {"content": "hello", "name": "golden_conf"}},
  "name": "golden",
  "networks": {"front": {"ipam": {"config": [{"subnet": "10.0.0.0/24"}]}, "name": "golden_front"}},
  "secrets": {"pw": {"file": "{dir}/pw.txt", "name": "golden_pw"}},
  "services": {
    "cache": {"command": null, "entrypoint": null, "image": "redis", "network_mode": "none"},
    "db": {
      "build": {"args": {"V": "1"}, "context": "{dir}/db", "dockerfile": "Dockerfile"},
      "command": null,
      "depends_on": {"cache": {"condition": "service_started", "required": true}},
      "entrypoint": null,
      "healthcheck": {"disable": true},
      "networks": {"front": null},
      "volumes_from": ["cache"]
    },
    "web": {
      "command": ["echo", "hi"],
      "configs": [{"source": "conf", "target": "/etc/conf"}],
      "depends_on": {"db": {"condition": "service_started", "required": true, "restart": true}},
      "deploy": {
        "placement": {},
        "resources": {},
        "restart_policy": {"condition": "on-failure", "delay": "5s", "window": "2m0s"}
      },
      "devices": [{"permissions": "rwm", "source": "/dev/fuse", "target": "/dev/fuse"}],
      "entrypoint": null,
      "environment": {"A": "1", "UNSET_IN_GOLDEN": null},
      "extra_hosts": ["db.local=10.0.0.2", "gw=host-gateway"],
      "healthcheck": {"interval": "1m30s", "retries": 3, "test": ["CMD-SHELL", "curl -f localhost"]},
      "image": "busybox",
      "links": ["db"],
      "logging": {"driver": "json-file", "options": {"max-file": "3"}},
      "mem_limit": "536870912",
      "networks": {"front": {"aliases": ["w"], "gw_priority": 1}},
      "ports": [
        {"host_ip": "127.0.0.1", "mode": "ingress", "protocol": "udp", "published": "8080", "target": 80},
        {"host_ip": "127.0.0.1", "mode": "ingress", "protocol": "udp", "published": "8081", "target": 81},
        {"mode": "ingress", "protocol": "tcp", "published": "8443", "target": 443}
      ],
      "pull_policy": "missing",
      "secrets": [
        {"source": "pw", "target": "/run/secrets/pw"},
        {"mode": "0400", "source": "pw", "target": "/etc/pw"}
      ],
      "shm_size": "67108864",
      "ulimits": {"nofile": {"hard": 20, "soft": 10}, "nproc": 30},
      "volumes": [
        {"bind": {"create_host_path": true}, "read_only": true, "source": "{dir}/data", "target": "/data", "type": "bind"},
        {"source": "cache", "target": "/cache", "type": "volume", "volume": {"nocopy": true}},
        {"bind": {"propagation": "rshared"}, "source": "{dir}/src", "target": "/src", "type": "bind"},
        {"target": "/t", "tmpfs": {"mode": 493, "size": "1048576"}, "type": "tmpfs"}
      ]
    }
  },
  "volumes": {"cache": {"external": true, "name": "shared-cache"}}
}"#;

#[test]
fn config_json_equals_docker_compose_config_json() {
    let s = Stack::new(&[("compose.yaml", GOLDEN_STACK), ("pw.txt", "pw")]);
    // A clean environment, as the golden output was made with: no variable may leak in.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .current_dir(s.dir.path())
        .args(["config", "--format", "json"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let dir = s.dir.path().to_str().unwrap();
    let want: serde_json::Value = serde_json::from_str(&GOLDEN_COMPOSE_JSON.replace("{dir}", dir)).unwrap();
    assert_eq!(got["services"]["web"], want["services"]["web"], "the service with most keys, for a readable diff");
    assert_eq!(got, want);
}

#[test]
fn config_output_loads_back_to_the_same_project() {
    let s = Stack::new(&[
        (
            "compose.yaml",
            "services:\n  web:\n    image: busybox\n    command: sh -c 'echo $$HOME ${GREETING}'\n    environment: {PRICE: $$5}\n    ports: ['127.0.0.1:8080:80']\n    volumes: ['./data:/data', 'cache:/cache']\n    healthcheck: {test: [CMD, 'true'], interval: 1m30s}\n    depends_on:\n      db: {condition: service_healthy}\n  db:\n    image: postgres\n    healthcheck: {test: [CMD, 'true']}\nvolumes:\n  cache:\n",
        ),
        (".env", "GREETING=hi\n"),
    ]);
    for format in ["json", "yaml"] {
        let first = berth(s.dir.path(), &["config", "--format", format]);
        assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
        let printed = s.path(&format!("printed.{format}"));
        std::fs::write(&printed, &first.stdout).unwrap();
        let again =
            berth(s.dir.path(), &["-f", printed.to_str().unwrap(), "-p", "berth-spec", "config", "--format", format]);
        assert!(again.status.success(), "{format}: {}", String::from_utf8_lossy(&again.stderr));
        let strip_name = |out: &[u8]| {
            String::from_utf8_lossy(out)
                .lines()
                .filter(|l| !l.contains("\"name\"") && !l.starts_with("name:") && !l.contains("_default"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(strip_name(&first.stdout), strip_name(&again.stdout), "{format} output must load back unchanged");
    }
    let j: serde_json::Value =
        serde_json::from_slice(&berth(s.dir.path(), &["config", "--format", "json"]).stdout).unwrap();
    assert_eq!(
        j["services"]["web"]["environment"]["PRICE"], "$$5",
        "a literal $ is escaped in output, as compose does"
    );
}
