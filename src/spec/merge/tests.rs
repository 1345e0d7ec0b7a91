use std::collections::HashSet;
use std::path::Path as FsPath;
use std::sync::Arc;

use serde_json::{Value as Json, json};

use super::*;
use crate::spec::yaml::parse;

fn load(text: &str, file: &str) -> Node {
    let file: Arc<FsPath> = Arc::from(FsPath::new(file));
    parse(text, Some(&file)).unwrap().unwrap()
}

fn web(service: Node) -> Node {
    let map = |k: &str, v| Node::new(Value::Map(Mapping::from_iter([(k.into(), v)])));
    map("services", map("web", service))
}

fn merged(base: Node, overlay: Node, scope: Scope) -> Json {
    let mut node = merge(base, overlay, scope).unwrap();
    strip_tags(&mut node);
    node.to_json()
}

fn keys(value: &Json) -> Vec<&str> {
    value.as_object().unwrap().keys().map(String::as_str).collect()
}

/// `name: [base, overlay, expected]`, services unless the name starts with `doc`.
const CASES: &str = r#"
scalar: [{image: a, restart: always}, {image: b}, {image: b, restart: always}]
null keeps the base: [{image: a, init: true}, {image: null}, {image: a, init: true}]
scalar replaced by list: [{init: true}, {init: [a]}, {init: [a]}]
command: [{command: [a, b]}, {command: [c]}, {command: [c]}]
null command: [{command: [a]}, {command: null}, {command: null}]
entrypoint: [{entrypoint: a b}, {entrypoint: [c]}, {entrypoint: [c]}]
healthcheck.test: [{healthcheck: {test: [CMD, a], interval: 5s}}, {healthcheck: {test: [CMD, b]}}, {healthcheck: {test: [CMD, b], interval: 5s}}]
env list+map: [{environment: [A=1, B, C=x=y]}, {environment: {B: 2, D: null}}, {environment: {A: '1', B: 2, C: x=y, D: null}}]
env map+list: [{environment: {A: 1, B: 2}}, {environment: [A=3, E=]}, {environment: {A: '3', B: 2, E: ''}}]
env null: [{environment: [A=1]}, {environment: null}, {environment: [A=1]}]
labels and friends: [{labels: [a=1], annotations: {x: 1}, sysctls: [n=1], deploy: {labels: [d=1]}}, {labels: {b: 2}, annotations: [x=2], sysctls: {n: 2}, deploy: {labels: {d: 2}}}, {labels: {a: '1', b: 2}, annotations: {x: '2'}, sysctls: {n: 2}, deploy: {labels: {d: 2}}}]
ports: [{ports: ['8080:80', '443', 9000, '127.0.0.1:5000:5000', '[::1]:53:53/udp']}, {ports: ['8080:80/tcp', {target: 80, published: 8080, protocol: udp}, {target: 443}, {target: 9000, host_ip: 0.0.0.0}, {host_ip: 127.0.0.1, published: '5000', target: 5000}, '::1:53:53/UDP']}, {ports: ['8080:80/tcp', {target: 443}, {target: 9000, host_ip: 0.0.0.0}, {host_ip: 127.0.0.1, published: '5000', target: 5000}, '::1:53:53/UDP', {target: 80, published: 8080, protocol: udp}]}]
volumes by target: [{volumes: [./a:/data, 'cache:/cache:ro', /anon]}, {volumes: [./b:/data, {type: volume, source: x, target: /cache}, ./c:/new, 'a:b:c:d']}, {volumes: [./b:/data, {type: volume, source: x, target: /cache}, /anon, ./c:/new, 'a:b:c:d']}]
secrets: [{secrets: [a, {source: b, target: /run/secrets/c}]}, {secrets: [{source: a2, target: a}, c]}, {secrets: [{source: a2, target: a}, c]}]
configs: [{configs: [a, {source: b, target: /etc/b}]}, {configs: [{source: z, target: /a}, {source: b}]}, {configs: [{source: z, target: /a}, {source: b, target: /etc/b}, {source: b}]}]
env_file: [{env_file: [a.env, b.env]}, {env_file: [{path: a.env, required: false}]}, {env_file: [{path: a.env, required: false}, b.env]}]
env_file strings: [{env_file: a.env}, {env_file: b.env}, {env_file: [a.env, b.env]}]
networks: [{networks: [front, back]}, {networks: {front: {aliases: [x]}, extra: null}}, {networks: {front: {aliases: [x]}, back: null, extra: null}}]
aliases: [{networks: {n: {aliases: [a, b]}}}, {networks: {n: {aliases: [b, c]}}}, {networks: {n: {aliases: [a, b, c]}}}]
extra_hosts: [{extra_hosts: ['a=1.1.1.1']}, {extra_hosts: {a: 1.1.1.1, b: [2.2.2.2, '::1']}}, {extra_hosts: ['a=1.1.1.1', 'b=2.2.2.2', 'b=::1']}]
extra_hosts separators: [{extra_hosts: ['a:1.1.1.1', 'v6=[::1]']}, {extra_hosts: ['a=1.1.1.1', 'v6:::1', 'a=2.2.2.2']}, {extra_hosts: ['a:1.1.1.1', 'v6=[::1]', 'a=2.2.2.2']}]
dns: [{dns: 8.8.8.8, dns_search: a.example}, {dns: [8.8.8.8, 1.1.1.1], dns_search: [b.example, a.example]}, {dns: [8.8.8.8, 1.1.1.1], dns_search: [a.example, b.example]}]
caps: [{cap_add: [NET_ADMIN], cap_drop: [ALL]}, {cap_add: [NET_ADMIN, SYS_TIME], cap_drop: [ALL]}, {cap_add: [NET_ADMIN, SYS_TIME], cap_drop: [ALL]}]
expose: [{expose: [80, '443']}, {expose: ['80', 8080]}, {expose: ['80', '443', 8080]}]
links, volumes_from, tmpfs, devices, profiles: [{links: [db], volumes_from: ['a:ro'], tmpfs: [/run, '/tmp:size=1m'], devices: ['/dev/a:/dev/x'], profiles: [p, q]}, {links: [db, 'cache:c'], volumes_from: [a], tmpfs: '/tmp:size=2m', devices: ['/dev/b:/dev/x:r', /dev/y], profiles: [q, r]}, {links: [db, 'cache:c'], volumes_from: [a], tmpfs: [/run, '/tmp:size=2m'], devices: ['/dev/b:/dev/x:r', /dev/y], profiles: [p, q, r]}]
depends_on list+map: [{depends_on: [db, c]}, {depends_on: {db: {condition: service_healthy}, new: {condition: service_started}}}, {depends_on: {db: {condition: service_healthy, required: true}, c: {condition: service_started, required: true}, new: {condition: service_started}}}]
depends_on map+list: [{depends_on: {db: {condition: service_healthy, restart: true}}}, {depends_on: [db, x]}, {depends_on: {db: {condition: service_started, restart: true, required: true}, x: {condition: service_started, required: true}}}]
build string+map: [{build: ./a}, {build: {dockerfile: D, args: [X=1]}}, {build: {context: ./a, dockerfile: D, args: [X=1]}}]
build map+string: [{build: {context: ./a, args: {X: 1}}}, {build: ./b}, {build: {context: ./b, args: {X: 1}}}]
build strings: [{build: ./a}, {build: ./b}, {build: {context: ./b}}]
build args, labels, tags: [{build: {args: {X: 1}, labels: [l=1], tags: [t1]}}, {build: {args: [Y=2, X], labels: {l: 2}, tags: [t1, t2]}}, {build: {args: {X: null, Y: '2'}, labels: {l: 2}, tags: [t1, t2]}}]
ulimits: [{ulimits: {nofile: {soft: 1, hard: 2}, nproc: 5, core: 0}}, {ulimits: {nofile: {soft: 3}, nproc: {soft: 1, hard: 2}}}, {ulimits: {nofile: {soft: 3}, nproc: {soft: 1, hard: 2}, core: 0}}]
logging same driver: [{logging: {driver: syslog, options: {a: 1, b: 1}}}, {logging: {driver: syslog, options: {b: 2}}}, {logging: {driver: syslog, options: {a: 1, b: 2}}}]
logging new driver: [{logging: {driver: local, options: {max-size: 10m}}}, {logging: {driver: syslog, options: {address: x}}}, {logging: {driver: syslog, options: {address: x}}}]
logging no driver: [{logging: {driver: local, options: {a: 1}}}, {logging: {options: {b: 2}}}, {logging: {driver: local, options: {a: 1, b: 2}}}]
logging null: [{logging: {driver: a}}, {logging: null}, {logging: {driver: a}}]
x- keys: [{x-a: {p: 1}}, {x-a: {q: 2}}, {x-a: {p: 1, q: 2}}]
reset: [{image: a, build: ., ports: ['80:80'], environment: {F: b, K: 1}, networks: {n: {aliases: [x]}}, dns: [a]}, {build: !reset , ports: !reset [], environment: {F: !reset }, networks: {n: {aliases: !reset null}}, labels: !reset {}, dns: [!reset a, b]}, {image: a, environment: {K: 1}, networks: {n: {}}, dns: [a, b]}]
reset list entries: [{volumes: [/a], environment: [A=1]}, {volumes: [!reset /b, /c], environment: [!reset B=1]}, {volumes: [/a, /c], environment: {A: '1'}}]
override: [{volumes: [/a:/a], environment: {A: 1}, networks: {n: {aliases: [x]}}, logging: {options: {a: 1}}}, {volumes: !override [/b:/b], environment: !override {C: 3}, networks: {n: !override {ipv4_address: 10.0.0.2}}, logging: {options: !override {b: 2}}}, {volumes: [/b:/b], environment: {C: 3}, networks: {n: {ipv4_address: 10.0.0.2}}, logging: {options: {b: 2}}}]
base tags are spent: [{ports: !reset [80], volumes: !override [/a:/a]}, {ports: [81], volumes: [/b:/b]}, {ports: [81], volumes: [/a:/a, /b:/b]}]
doc ipam config by subnet: [{networks: {n: {ipam: {config: [{subnet: 10.0.0.0/16, gateway: 10.0.0.1, aux_addresses: {h1: 1}}, {subnet: 10.1.0.0/16}]}}}}, {networks: {n: {ipam: {config: [{subnet: 10.2.0.0/16}, {subnet: 10.0.0.0/16, ip_range: 10.0.5.0/24, aux_addresses: {h2: 2}}]}}}}, {networks: {n: {ipam: {config: [{subnet: 10.0.0.0/16, gateway: 10.0.0.1, aux_addresses: {h1: 1, h2: 2}, ip_range: 10.0.5.0/24}, {subnet: 10.1.0.0/16}, {subnet: 10.2.0.0/16}]}}}}]
doc resource labels: [{networks: {n: {labels: [a=1]}}, volumes: {v: {labels: {a: 1}}}}, {networks: {n: {labels: {b: 2}}}, volumes: {v: {labels: [a=2]}, w: null}}, {networks: {n: {labels: {a: '1', b: 2}}}, volumes: {v: {labels: {a: '2'}}, w: null}}]
doc reset resources: [{services: {web: {image: a}, db: {image: b}}, networks: {n: {external: true}, m: {}}}, {services: {db: !reset {}}, networks: {n: !reset {}}}, {services: {web: {image: a}}, networks: {m: {}}}]
doc override resources: [{services: {db: {image: db, restart: always}}, networks: {n: {external: true, name: x}}}, {services: {db: !override {image: db2}}, networks: {n: !override {}}}, {services: {db: {image: db2}}, networks: {n: {}}}]
doc null service: [{services: {web: null}}, {services: {web: {image: a}}}, {services: {web: {image: a}}}]
"#;

#[test]
fn merge_rules() {
    let cases = load(CASES, "cases.yaml");
    for (name, case) in cases.as_map().unwrap() {
        let [base, overlay, want] = case.as_seq().unwrap() else { panic!("{name}") };
        let (base, overlay) = (base.clone(), overlay.clone());
        let got = match name.strip_prefix("doc ") {
            Some(_) => merged(base, overlay, Scope::Document),
            None => merged(web(base), web(overlay), Scope::Document)["services"]["web"].take(),
        };
        assert_eq!(got, want.to_json(), "case {name}");
    }
    assert_eq!(cases.as_map().unwrap().len(), 46);
}

/// `name: [base, overlay, path of the error]`.
const ERRORS: &str = r#"
shapes: [{services: {web: {deploy: {}}}}, {services: {web: {deploy: [x]}}}, services.web.deploy]
build: [{services: {web: {build: ./a}}}, {services: {web: {build: [x]}}}, services.web.build]
list: [{services: {web: {volumes: [/a]}}}, {services: {web: {volumes: /b}}}, services.web.volumes]
depends_on: [{services: {web: {depends_on: [a]}}}, {services: {web: {depends_on: 1}}}, services.web.depends_on]
root: [{services: {}}, [a], (top level)]
env entry: [{services: {web: {environment: [A]}}}, {services: {web: {environment: [B, {C: 1}]}}}, 'services.web.environment[1]']
name entry: [{services: {web: {depends_on: [a]}}}, {services: {web: {depends_on: [[b]]}}}, 'services.web.depends_on[0]']
host entry: [{services: {web: {extra_hosts: []}}}, {services: {web: {extra_hosts: {h: {}}}}}, services.web.extra_hosts.h]
"#;

#[test]
fn errors_name_the_path_and_point_at_the_overlay() {
    for (name, case) in load(ERRORS, "errors.yaml").as_map().unwrap() {
        let [base, overlay, path] = case.as_seq().unwrap() else { panic!("{name}") };
        let e = merge(base.clone(), overlay.clone(), Scope::Document).unwrap_err();
        assert_eq!((Some(e.path()), e.location().line), (path.as_str(), case.location.line));
    }
    let (base, overlay) = (load("a:\n  b: {}", "a.yaml"), load("a:\n  b: [x]", "b.yaml"));
    let text = merge(base, overlay, Scope::Document).unwrap_err().to_string();
    let want = "b.yaml:2:6: a.b: cannot merge a list onto a mapping (from a.yaml:2:6); write";
    assert!(text.starts_with(want), "{text}");
    let e = merge(load("{a: {}}", "a"), load("{a: 1}", "b"), Scope::Service).unwrap_err();
    assert_eq!(e.path(), "a");
}

#[test]
fn tags_stay_on_the_result_until_stripped() {
    let base = load("{image: a, ports: [80]}", "a.yaml");
    let overlay = load("{ports: !reset [], command: !override [x]}", "b.yaml");
    let mut node = merge(base, overlay, Scope::Service).unwrap();
    let tag = |key| node.get(key).and_then(|n| n.tag);
    assert_eq!((tag("ports"), tag("command")), (Some(Tag::Reset), Some(Tag::Override)));
    strip_tags(&mut node);
    assert_eq!(node.to_json(), json!({"image": "a", "command": ["x"]}));
}

#[test]
fn an_extends_result_still_resets_the_previous_file() {
    // compose-go applies a file's tags to the extended service and to the earlier files.
    let base = load("{image: a, command: [x], ports: [80], volumes: [/a:/a]}", "c.yaml");
    let extending = load("{ports: !reset [], volumes: !override [/b:/b]}", "o.yaml");
    let extended = merge(base, extending, Scope::Service).unwrap();
    let previous = load("{image: old, ports: [1], volumes: [/c:/c]}", "p.yaml");
    let got = merged(web(previous), web(extended), Scope::Document);
    let want = json!({"image": "a", "command": ["x"], "volumes": ["/b:/b"]});
    assert_eq!(got["services"]["web"], want);
}

#[test]
fn an_extends_chain_appends_to_an_overridden_base() {
    // compose-go's TestOverrideMiddle and TestOverrideSelfExtends.
    let base = load("{volumes: [/foo:/foo], depends_on: [one]}", "base.yaml");
    let middle = load("{volumes: !override [/b:/b], depends_on: !override [two]}", "o.yaml");
    let middle = merge(base, middle, Scope::Service).unwrap();
    let top = load("{volumes: [/zot:/zot], depends_on: [base]}", "compose.yaml");
    let got = merged(middle, top, Scope::Service);
    assert_eq!(got["volumes"], json!(["/b:/b", "/zot:/zot"]));
    assert_eq!(keys(&got["depends_on"]), ["two", "base"]);
}

#[test]
fn base_keys_come_first_then_new_keys() {
    let base = "services: {b: {}, a: {image: a, restart: no, environment: [Z=1, A=1]}}\nx: 1";
    let overlay = "volumes: {}\nservices: {c: {}, a: {user: u, image: b, environment: {M: 1}}}";
    let got = merged(load(base, "a"), load(overlay, "b"), Scope::Document);
    assert_eq!(keys(&got), ["services", "x", "volumes"]);
    assert_eq!(keys(&got["services"]), ["b", "a", "c"]);
    assert_eq!(keys(&got["services"]["a"]), ["image", "restart", "environment", "user"]);
    assert_eq!(keys(&got["services"]["a"]["environment"]), ["Z", "A", "M"]);
}

#[test]
fn locations_come_from_the_right_file() {
    let base = "services:\n  web:\n    image: a\n    restart: no\n    environment: [A=1]\n    depends_on: [db]";
    let overlay = "services:\n  web:\n    image: b\n    environment: {B: 2}\n    depends_on: {x: {}}";
    let node = merge(load(base, "a.yaml"), load(overlay, "b.yaml"), Scope::Document).unwrap();
    let want = [
        ("/services/web", "a.yaml:3:5"),
        ("/services/web/image", "b.yaml:3:12"),
        ("/services/web/restart", "a.yaml:4:14"),
        ("/services/web/environment", "a.yaml:5:18"),
        ("/services/web/environment/A", "a.yaml:5:19"),
        ("/services/web/environment/B", "b.yaml:4:22"),
        ("/services/web/depends_on/db/condition", "a.yaml:6:18"),
        ("/services/web/depends_on/x", "b.yaml:5:21"),
    ];
    for (pointer, at) in want {
        assert_eq!(node.locate(pointer).location.to_string(), at, "{pointer}");
    }
}

#[test]
fn a_single_file_is_stripped_and_deduplicated() {
    let text = "ports: !reset [80]\ncommand: !override [x]\ndns: [!reset a, b]\nvolumes: [.:/f, b:/b, s:/f]\nenvironment: [A=1, B=1, A=2]";
    let mut node = web(load(text, "c.yaml"));
    strip_tags(&mut node);
    enforce_unicity(&mut node, Scope::Document);
    let want = json!({"command": ["x"], "dns": ["b"], "volumes": ["s:/f", "b:/b"],
                      "environment": ["A=2", "B=1"]});
    assert_eq!(node.to_json()["services"]["web"], want);
    let mut root = load("!reset {a: 1}", "c.yaml");
    strip_tags(&mut root);
    assert!(root.is_null());
}

#[test]
fn deep_trees_do_not_overflow_the_stack() {
    // Deeper than the parser's nesting limit, on a test thread's small stack.
    let mut node = Node::new(Value::Int(1));
    for _ in 0..250 {
        node = Node::new(Value::Map(Mapping::from_iter([("a".to_owned(), node)])));
    }
    let got = merge(node.clone(), node, Scope::Document).unwrap();
    assert_eq!(got.locate(&"/a".repeat(250)).value, Value::Int(1));
}

/// A file of the shared compose corpus, next to the repository as `tests/corpus.rs` has it.
fn corpus(path: &str) -> Node {
    let dir = FsPath::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    let text = std::fs::read_to_string(dir.join(path));
    load(&text.unwrap_or_else(|e| panic!("{path}: {e}")), path)
}

#[test]
fn corpus_override_files() {
    let base = corpus("netbox-docker/docker-compose.yml");
    let example = corpus("netbox-docker/docker-compose.override.yml.example");
    let node = merge(base.clone(), example, Scope::Document).unwrap();
    let port = node.locate("/services/netbox/ports/0").location.to_string();
    assert!(port.starts_with("netbox-docker/docker-compose.override.yml.example:4:"));
    let mut want = base.to_json();
    want["services"]["netbox"]["ports"] = json!(["8000:8080"]);
    assert_eq!(node.to_json(), want);
    let test = corpus("netbox-docker/docker-compose.test.yml");
    let overlay = corpus("netbox-docker/docker-compose.test.override.yml");
    let got = merged(test, overlay, Scope::Document);
    assert_eq!(got["services"]["netbox"]["ports"], json!(["127.0.0.1:8000:8080"]));
}

#[test]
fn corpus_extends_reset() {
    let file = corpus("compose-go/loader/testdata/extends/reset.yaml");
    let service = |name| file.get("services").and_then(|s| s.get(name)).unwrap().clone();
    let mut extending = service("base");
    extending.as_map_mut().unwrap().shift_remove("extends");
    let got = merged(service("init"), extending, Scope::Service);
    assert_eq!(got, json!({"image": "alpine:latest"}));
}

#[test]
fn every_corpus_file_merges_onto_itself() {
    let manifest = corpus("manifest.json").to_json();
    // Merging comes after interpolation: `${VAR:-/a}:/b` is no volume spec yet.
    let plain = |e: &&Json| e["valid"] == true && !e["features"].to_string().contains("interp");
    let mut count = 0;
    for entry in manifest["files"].as_array().unwrap().iter().filter(plain) {
        let (path, file) = (&entry["path"], corpus(entry["path"].as_str().unwrap()));
        let got = merged(file.clone(), file, Scope::Document);
        let services = got["services"].as_object().into_iter().flatten();
        let mut names: Vec<_> = services.clone().map(|(name, _)| name).collect();
        names.sort();
        assert_eq!(json!(names), entry["services"], "{path}");
        for (name, service) in services {
            for list in ["ports", "volumes", "secrets"].map(|k| &service[k]) {
                let list = list.as_array().map_or(&[][..], Vec::as_slice);
                let unique: HashSet<_> = list.iter().collect();
                assert_eq!(list.len(), unique.len(), "{path}: {name} kept a duplicate");
            }
        }
        count += 1;
    }
    assert!(count > 150, "only {count} corpus files");
}
