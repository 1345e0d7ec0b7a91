use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::json;

use super::*;

/// Service keys berth implements; every other service key must be annotated "ignored".
const SUPPORTED_SERVICE_KEYS: &str = "
    image build command entrypoint environment env_file ports expose volumes tmpfs depends_on
    restart healthcheck networks network_mode hostname container_name user working_dir labels
    stop_signal stop_grace_period init tty stdin_open read_only cap_add cap_drop privileged
    ulimits shm_size sysctls extra_hosts dns dns_search mem_limit cpus cpu_shares pids_limit
    deploy scale develop secrets configs profiles extends links volumes_from pid ipc
    pull_policy platform label_file attach annotations domainname group_add cpuset cpu_quota
    cpu_period mem_reservation memswap_limit post_start pre_stop logging dns_opt uts security_opt
    x-berth-restart-on-unhealthy";

/// Network, volume, secret and config keys berth implements.
const SUPPORTED_RESOURCE_KEYS: &str = "
    name driver ipam external internal labels attachable enable_ipv4 enable_ipv6 driver_opts
    file environment content";

fn schema() -> &'static Schema {
    Schema::compiled()
}

fn violations(doc: &Value) -> Vec<SchemaViolation> {
    schema().validate(doc)
}

fn corpus_dir() -> PathBuf {
    // CI checks the repository out with shared/ beside it.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    assert!(dir.join("manifest.json").is_file(), "compose corpus not found at {}", dir.display());
    dir
}

fn manifest() -> Value {
    let text = std::fs::read_to_string(corpus_dir().join("manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn load_yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    let options = serde_saphyr::options! { strict_booleans: true, legacy_octal_numbers: true };
    serde_saphyr::from_str_with_options::<Value>(&text, options).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn parseable(entry: &Value) -> bool {
    entry["yaml_ok"] == json!(true) && entry["documents"].as_u64().unwrap_or(0) > 0
}

fn schema_stage_failure(entry: &Value) -> bool {
    entry["intentionally_invalid"] == json!(true) && entry["expected_failure"]["stage"] == json!("schema")
}

#[test]
fn embedded_schema_is_draft_2020_12_with_an_invalid_host_id() {
    let raw = schema().as_json();
    assert_eq!(raw["$schema"], json!("https://json-schema.org/draft/2020-12/schema"));
    assert_eq!(raw["$id"], json!("https://berth.invalid/schema/compose.schema.json"));
    assert!(violations(&json!({"services": {"web": {"image": "nginx"}}})).is_empty());
}

#[test]
fn every_annotated_section_marks_each_key() {
    fn support(supported: bool) -> &'static str {
        if supported { "supported" } else { "ignored" }
    }
    let raw = schema().as_json();
    let wanted: Vec<&str> = SUPPORTED_SERVICE_KEYS.split_whitespace().collect();
    let service = raw["$defs"]["service"]["properties"].as_object().unwrap();
    for (key, sub) in service {
        let expected = support(wanted.contains(&key.as_str()));
        assert_eq!(sub[SUPPORT_ANNOTATION], expected, "service key {key}");
    }
    let missing: Vec<_> = wanted.iter().filter(|k| !service.contains_key(**k)).collect();
    assert!(missing.is_empty(), "service keys missing from the schema: {missing:?}");
    for (key, sub) in raw["properties"].as_object().unwrap() {
        assert_eq!(sub[SUPPORT_ANNOTATION], support(key != "models"), "top-level {key}");
    }
    let resource: Vec<&str> = SUPPORTED_RESOURCE_KEYS.split_whitespace().collect();
    for section in ["network", "volume", "secret", "config"] {
        for (key, sub) in raw["$defs"][section]["properties"].as_object().unwrap() {
            // Secret and config drivers are Swarm features berth has no use for.
            let swarm_only = matches!(section, "secret" | "config") && key.starts_with("driver");
            // An existing secret or config lives in a swarm: `config` prints it, `up` refuses it.
            let expected = if matches!(section, "secret" | "config") && key == "external" {
                "refused"
            } else {
                support(resource.contains(&key.as_str()) && !swarm_only)
            };
            assert_eq!(sub[SUPPORT_ANNOTATION], expected, "{section} key {key}");
        }
    }
}

#[test]
fn every_valid_corpus_file_passes() {
    let dir = corpus_dir();
    let mut checked = 0;
    let mut failures = Vec::new();
    for entry in manifest()["files"].as_array().unwrap() {
        let valid = entry["valid"] == json!(true) || entry["valid_compose_go_schema"] == json!(true);
        if !valid || !parseable(entry) || schema_stage_failure(entry) {
            continue;
        }
        let path = entry["path"].as_str().unwrap();
        let found = violations(&load_yaml(&dir.join(path)));
        if !found.is_empty() {
            failures.push(format!("{path}: {found:?}"));
        }
        checked += 1;
    }
    println!("{checked} valid corpus files validated with no violation");
    assert!(checked > 100, "only {checked} corpus files checked");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn invalid_corpus_files_are_rejected_readably() {
    let dir = corpus_dir();
    let mut rejected = 0;
    for entry in manifest()["files"].as_array().unwrap() {
        let invalid_for_compose = entry["valid"] == json!(false) && entry["valid_compose_go_schema"] == json!(false);
        if !parseable(entry) || !(schema_stage_failure(entry) || invalid_for_compose) {
            continue;
        }
        let path = entry["path"].as_str().unwrap();
        let found = violations(&load_yaml(&dir.join(path)));
        assert!(!found.is_empty(), "{path} should break the schema");
        println!("{path}:");
        for violation in &found {
            println!("    {violation}");
            assert!(violation.message.chars().count() < 300, "too long: {}", violation.message);
            assert!(!violation.message.contains('{'), "raw JSON leaked: {}", violation.message);
        }
        rejected += 1;
    }
    assert!(rejected >= 3, "only {rejected} invalid files checked");
}

/// Each case: a service body with one mistake, where it is, and what berth says.
#[test]
fn each_mistake_gets_one_readable_message() {
    let enum_start =
        "must be one of \"service_started\", \"service_healthy\", \"service_completed_successfully\", found";
    // `json!` keeps rustfmt from spreading the table over five lines per case.
    let cases = json!([
        [{"wrongField": 1}, "", "additional property \"wrongField\" is not allowed"],
        [{"imgae": "a"}, "", "additional property \"imgae\" is not allowed (did you mean \"image\"?)"],
        [{"ports": "9001:9001"}, "/ports", "must be a list, found \"9001:9001\""],
        [{"environment": 5}, "/environment", "must be a mapping or a list of strings, found 5"],
        [{"command": {}}, "/command", "must be a string, a list of strings or null, found an empty mapping"],
        [{"cap_add": [1]}, "/cap_add/0", "must be a string, found 1"],
        [{"healthcheck": {"retries": true}}, "/healthcheck/retries", "must be a number or a string, found true"],
        [{"x-berth-restart-on-unhealthy": [true]}, "/x-berth-restart-on-unhealthy",
            "must be a boolean or a string, found a list"],
        [{"labels": {"k": {"deep": 1}}}, "/labels/k", "must be a string, a number, a boolean or null, found a mapping"],
        [{"depends_on": {"db": {"condition": "stopped"}}}, "/depends_on/db/condition",
            format!("{enum_start} \"stopped\"")],
        [{"depends_on": {"db": {"condition": "x".repeat(500)}}}, "/depends_on/db/condition",
            format!("{enum_start} \"{}…\"", "x".repeat(60))],
        [{"depends_on": {"db": {"required": false}}}, "/depends_on/db", "missing required property \"condition\""],
        [{"secrets": [{"source": "s", "type": "env"}]}, "/secrets/0", "additional property \"type\" is not allowed"],
        [{"build": {"secrets": {"s": {}}}}, "/build/secrets", "must be a list of strings or mappings, found a mapping"],
        [{"ports": ["80:80", "443:443", "80:80"]}, "/ports",
            "must not contain duplicate items: item 2 repeats item 0 (\"80:80\")"]
    ]);
    for case in cases.as_array().unwrap() {
        let mut service = case[0].clone();
        service["image"] = json!("nginx");
        let found = violations(&json!({"services": {"web": service}}));
        let pointer = format!("/services/web{}", case[1].as_str().unwrap());
        let message = case[2].as_str().unwrap().to_owned();
        assert_eq!(found, vec![SchemaViolation { pointer, message }]);
    }
}

#[test]
fn top_level_keys_and_resource_names_are_checked() {
    let found = violations(&json!({"webapp": {}, "services": {"my web": {"image": "a"}}}));
    let messages: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        vec![
            "services: \"my web\" is not a valid name: use only letters, digits, '.', '_' and '-'",
            "additional property \"webapp\" is not allowed",
        ]
    );
}

#[test]
fn interpolated_strings_are_accepted_where_numbers_or_booleans_go() {
    let doc = json!({"services": {"web": {
        "image": "a",
        "cpus": "${CPUS}",
        "privileged": "${PRIV:-false}",
        "init": "true",
        "read_only": "${RO}",
        "ports": ["${PORT}:80", {"target": "${T}", "published": "${P}"}],
        "scale": "${N}",
        "oom_score_adj": "${OOM}",
        "pids_limit": "${PIDS}",
        "healthcheck": {"retries": "${R}", "disable": "${D}"},
        "deploy": {"replicas": "${N}", "resources": {"limits": {"cpus": "${C}", "pids": "${P}"}}},
        "depends_on": {"db": {"condition": "service_started", "required": "${REQ}"}},
        "ulimits": {"nofile": {"soft": "${S}", "hard": "${H}"}},
        "networks": {"n": {"priority": "${PRIO}"}},
        "pull_policy": "${PULL}",
        "x-berth-restart-on-unhealthy": "${RESTART_UNHEALTHY}"
    }}});
    assert_eq!(violations(&doc), Vec::new());
}

#[test]
fn violations_come_most_specific_first() {
    let doc = json!({"bogus": 1, "services": {"web": {"image": 1, "healthcheck": {"retries": []}}}});
    let depths: Vec<usize> = violations(&doc).iter().map(|v| pointer_depth(&v.pointer)).collect();
    assert_eq!(depths, vec![4, 3, 0]);
}

#[test]
fn hostile_documents_do_not_panic() {
    let hostile = json!([null, [], 42, "x", {"services": null}, {"services": {"web": []}}]);
    for doc in hostile.as_array().unwrap() {
        assert!(!violations(doc).is_empty(), "{doc} should be rejected");
        assert!(schema().unsupported_keys(doc).is_empty());
    }
    let mut deep = json!("leaf");
    for _ in 0..200 {
        deep = json!({"x": deep});
    }
    let doc = json!({"services": {"web": {"image": "a", "x-deep": deep, "labels": {"k": deep}}}});
    assert_eq!(violations(&doc).len(), 1);
}

#[test]
fn unsupported_keys_lists_ignored_keys_only() {
    let doc = json!({
        "models": {"m": {"model": "ai/x"}},
        "x-common": {"blkio_config": {}},
        "services": {
            "web": {"image": "a", "blkio_config": {"weight": 10}, "ports": ["80"], "x-note": 1},
            "a/b": {"image": "a", "runtime": "crun"}
        },
        "networks": {"n": {"driver": "bridge", "attachable": true}},
        "secrets": {"s": {"file": "f", "template_driver": "golang"}},
        "configs": {"c": {"content": "x", "template_driver": "golang"}}
    });
    assert_eq!(
        schema().unsupported_keys(&doc),
        vec![
            "/models",
            "/services/web/blkio_config",
            "/services/a~1b/runtime",
            "/secrets/s/template_driver",
            "/configs/c/template_driver",
        ]
    );
}

#[test]
fn pointers_become_yaml_paths() {
    let cases = [
        ("/services/web/ports/1", "services.web.ports[1]"),
        ("/services/a.b/image", "services[\"a.b\"].image"),
        ("/services/a~1b/x~0y", "services[\"a/b\"][\"x~y\"]"),
        ("/a/~01", "a[\"~1\"]"),
        ("/x-ext/", "x-ext[\"\"]"),
        ("", ""),
    ];
    for (pointer, path) in cases {
        assert_eq!(pointer_to_yaml_path(pointer), path);
    }
    let violation = SchemaViolation { pointer: "/services/web/ports".into(), message: "m".into() };
    assert_eq!(violation.to_string(), "services.web.ports: m");
}

#[test]
fn timing_of_compilation_and_a_large_document() {
    let started = Instant::now();
    let fresh = Schema::from_json(SCHEMA_JSON).unwrap();
    fresh.validator();
    let compiled = started.elapsed();
    let mut services = serde_json::Map::new();
    for i in 0..500 {
        services.insert(
            format!("svc{i}"),
            json!({
                "image": format!("registry.example/app{i}:1.{i}"),
                "command": ["serve", "--port", "8080"],
                "environment": {"INDEX": i, "MODE": "prod"},
                "ports": [format!("{}:8080", 10000 + i)],
                "volumes": ["data:/data", {"type": "bind", "source": "./conf", "target": "/conf"}],
                "depends_on": {"svc0": {"condition": "service_healthy"}},
                "healthcheck": {"test": ["CMD", "true"], "interval": "5s", "retries": 3},
                "deploy": {"resources": {"limits": {"cpus": "0.5", "memory": "256M"}}},
                "labels": ["tier=web"],
                "networks": {"front": {"aliases": [format!("a{i}")]}}
            }),
        );
    }
    let doc = json!({"services": services, "volumes": {"data": null}, "networks": {"front": {}}});
    let started = Instant::now();
    let found = fresh.validate(&doc);
    let validated = started.elapsed();
    let started = Instant::now();
    let ignored = fresh.unsupported_keys(&doc);
    let scanned = started.elapsed();
    println!("schema compile: {compiled:?}; validate 500 services: {validated:?}; unsupported_keys: {scanned:?}");
    assert!(found.is_empty(), "{found:?}");
    assert!(ignored.is_empty());
}
