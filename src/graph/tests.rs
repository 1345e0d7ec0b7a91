use super::render::{dot_id, mermaid_text};
use super::*;

fn strings(list: &str) -> Vec<String> {
    list.split_whitespace().map(str::to_owned).collect()
}

/// `edges` is written "a>b c>d": a depends on b, c on d.
fn build(services: &str, edges: &str) -> Result<DependencyGraph, GraphError> {
    let deps = edges.split_whitespace().filter_map(|e| e.split_once('>'));
    let deps = deps.map(|(a, b)| Dependency::new(a, b));
    DependencyGraph::new(strings(services), deps)
}

/// Waves written "a b | c".
fn flat(waves: Vec<Vec<String>>) -> String {
    let waves: Vec<String> = waves.iter().map(|w| w.join(" ")).collect();
    waves.join(" | ")
}

#[test]
fn start_and_stop_waves() {
    for (services, edges, start, stop) in [
        ("a b c", "a>b b>c", "c | b | a", "a | b | c"),
        ("w db app api", "app>w app>api api>db w>db", "db | api w | app", "app | api w | db"),
        ("c a b a", "", "a b c", "a b c"),
        // x is unrelated, so it stops at once rather than mirroring its start.
        ("a b c x", "a>b b>c", "c x | b | a", "a x | b | c"),
        ("", "", "", ""),
    ] {
        let g = build(services, edges).unwrap();
        assert_eq!(flat(g.start_waves()), start, "start of {services}");
        assert_eq!(flat(g.stop_waves()), stop, "stop of {services}");
    }
}

#[test]
fn cycles_print_one_loop_from_its_smallest_service() {
    for (services, edges, cycle) in [
        ("a b", "b>a a>a", "a -> a"),
        ("b a", "b>a a>b", "a -> b -> a"),
        (
            "service1 service2 service3",
            "service1>service2 service2>service3 service3>service1",
            "service1 -> service2 -> service3 -> service1",
        ),
        ("app db m q x zz", "app>x x>q q>m m>x zz>m m>db", "m -> x -> q -> m"),
        // The shortest loop through `a` wins over the longer one and over y/z.
        ("a b c y z", "a>b b>c c>a b>a y>z z>y", "a -> b -> a"),
    ] {
        let err = build(services, edges).unwrap_err().to_string();
        assert_eq!(err, format!("dependency cycle detected: {cycle}"));
    }
}

#[test]
fn unknown_names_are_reported_with_suggestions() {
    for (edges, msg) in [
        ("web>dbb", r#"service "web" depends on undefined service "dbb" (did you mean "db"?)"#),
        ("web>zookeeper", r#"service "web" depends on undefined service "zookeeper""#),
        ("wbe>web", r#"no such service: "wbe" (did you mean "web"?)"#),
    ] {
        assert_eq!(build("web db", edges).unwrap_err().to_string(), msg);
    }
    // The reported error does not depend on input order.
    let (forward, backward) = (build("a b", "a>x b>y"), build("a b", "b>y a>x"));
    assert_eq!(forward.unwrap_err(), backward.unwrap_err());
}

#[test]
fn unknown_optional_dependency_is_dropped() {
    let mut optional = Dependency::new("web", "cache");
    optional.required = false;
    let g = DependencyGraph::new(strings("web"), [optional.clone()]).unwrap();
    assert!(g.dependencies_of("web").is_empty());
    assert_eq!(g.ignored_dependencies(), [optional]);
}

#[test]
fn closures_select_dependencies_and_dependents() {
    let edges = "web>api api>db admin>db worker>queue";
    let g = build("web api db admin worker queue lone", edges).unwrap();
    let picked = g.with_dependencies(&strings("web worker")).unwrap();
    assert_eq!(Vec::from_iter(picked), strings("api db queue web worker"));
    let err = g.with_dependencies(&strings("web wrker")).unwrap_err().to_string();
    assert_eq!(err, r#"no such service: "wrker" (did you mean "worker"?)"#);
    let dependents = g.with_dependents(&strings("db nope"));
    assert_eq!(Vec::from_iter(dependents), strings("admin api db web"));
    assert_eq!(Vec::from_iter(g.with_dependents(&strings("web"))), ["web"]);
}

#[test]
fn restart_dependents_follow_only_restart_edges() {
    let mut api = Dependency::new("api", "db");
    api.restart = true;
    let proxy = Dependency::implicit("proxy", "api", EdgeOrigin::NetworkMode);
    let deps = [api, Dependency::new("web", "api"), proxy];
    let g = DependencyGraph::new(strings("db api web proxy"), deps).unwrap();
    let restarted = g.restart_dependents(&strings("db"));
    assert_eq!(Vec::from_iter(restarted), strings("api db proxy"));
    assert!(!Dependency::implicit("a", "b", EdgeOrigin::VolumesFrom).restart);
}

#[test]
fn duplicate_edges_merge_to_the_strongest() {
    let mut explicit = Dependency::new("api", "db");
    (explicit.required, explicit.condition) = (false, Condition::Healthy);
    let mut done = Dependency::new("api", "db");
    (done.required, done.condition) = (false, Condition::CompletedSuccessfully);
    let link = Dependency::implicit("api", "db", EdgeOrigin::Links);
    let g = DependencyGraph::new(strings("api db"), [link, explicit, done]).unwrap();
    let merged = g.dependencies_of("api");
    assert_eq!(merged.len(), 1);
    let d = merged[0];
    assert_eq!(d.condition, Condition::CompletedSuccessfully);
    assert_eq!(d.origin, EdgeOrigin::DependsOn);
    assert!(d.required && d.restart);
}

#[test]
fn direct_neighbours_are_sorted() {
    let g = build("app b c m y z", "app>z app>b app>m y>b c>b").unwrap();
    let deps: Vec<&str> = g.dependencies_of("app").iter().map(|d| &*d.dependency).collect();
    assert_eq!(deps, ["b", "m", "z"]);
    assert_eq!(g.dependents_of("b"), ["app", "c", "y"]);
    assert!(g.dependencies_of("nope").is_empty() && g.dependents_of("nope").is_empty());
    assert!(g.contains("m") && !g.contains("n"));
}

#[test]
fn did_you_mean_picks_best_close_match() {
    let names = ["db", "web", "worker", "postgres"];
    for (typo, expected) in
        [("dbb", Some("db")), ("DB", Some("db")), ("postgrse", Some("postgres")), ("redis", None), ("db", None)]
    {
        assert_eq!(did_you_mean(typo, names).as_deref(), expected, "{typo}");
    }
    assert_eq!(did_you_mean("ab", ["bb", "ac"]).as_deref(), Some("ac"));
    assert_eq!(did_you_mean(&"x".repeat(1000), ["x"]), None);
}

fn sample() -> DependencyGraph {
    let mut api_db = Dependency::new("api", "db");
    api_db.condition = Condition::Healthy;
    let mut worker_cache = Dependency::new("worker", "cache");
    worker_cache.required = false;
    let network = Dependency::implicit("worker", "api", EdgeOrigin::NetworkMode);
    let deps = [api_db, Dependency::new("api", "cache"), worker_cache, network];
    DependencyGraph::new(strings("db cache api worker"), deps).unwrap()
}

#[test]
fn render_text_lists_waves_and_edges() {
    let expected = "wave 1  cache, db\nwave 2  api  ← cache (started), db (healthy)\nwave 3  \
            worker  ← api (started, restart, via network_mode), cache (started, optional)\n";
    assert_eq!(sample().render_text(), expected);
    let g = build("a longname db", "a>db longname>db").unwrap();
    let text = g.render_text();
    assert!(text.ends_with("wave 2  a         ← db (started)\n        longname  ← db (started)\n"));
    assert_eq!(build("", "").unwrap().render_text(), "");
}

#[test]
fn render_dot_and_mermaid_carry_waves_and_conditions() {
    let dot = sample().render_dot();
    for line in [
        "digraph dependencies {\n",
        "  { rank=same; \"cache\"; \"db\"; }\n",
        "  \"api\" -> \"db\" [label=\"service_healthy\"];\n",
        "  \"worker\" -> \"cache\" [label=\"service_started, optional\", style=dashed];\n",
        "  \"worker\" -> \"api\" [label=\"service_started, restart, via network_mode\"];\n",
    ] {
        assert!(dot.contains(line), "{line} in {dot}");
    }
    let mermaid = sample().render_mermaid();
    for line in [
        "graph TD\n  subgraph wave1[\"wave 1\"]\n    s1[\"cache\"]\n    s2[\"db\"]\n  end\n",
        "  s0 -->|\"service_healthy\"| s2\n",
        "  s3 -.->|\"service_started, optional\"| s1\n",
    ] {
        assert!(mermaid.contains(line), "{line} in {mermaid}");
    }
    assert_eq!(mermaid_text("a\"#<b>"), "a#quot;#35;#lt;b#gt;");
    assert_eq!(dot_id("a\"b\\"), r#""a\"b\\""#);
}

#[test]
fn serializes_with_compose_spellings() {
    let mut d = Dependency::implicit("web", "db", EdgeOrigin::VolumesFrom);
    d.condition = Condition::CompletedSuccessfully;
    let expected = r#"{"service":"web","dependency":"db","condition":"service_completed_successfully","required":true,"restart":false,"origin":"volumes_from"}"#;
    assert_eq!(serde_json::to_string(&d).unwrap(), expected);
    let healthy = serde_json::to_string(&Condition::Healthy).unwrap();
    assert_eq!(healthy, r#""service_healthy""#);
    assert_eq!(Condition::Started.to_string(), "service_started");
    assert_eq!(EdgeOrigin::NetworkMode.to_string(), "network_mode");
}

/// `n` services where service i depends on i/2 and, unless 3 divides i, on i/3.
fn generated(n: usize) -> (Vec<String>, Vec<Dependency>) {
    let names: Vec<String> = (0..n).map(|i| format!("svc{i:03}")).collect();
    let mut deps = Vec::new();
    for i in 1..n {
        deps.push(Dependency::new(&names[i], &names[i / 2]));
        if i % 3 != 0 {
            deps.push(Dependency::new(&names[i], &names[i / 3]));
        }
    }
    (names, deps)
}

#[test]
fn large_generated_graph_is_fast_and_ordered() {
    let (names, deps) = generated(500);
    assert!(deps.len() > 800);
    let clock = std::time::Instant::now();
    let g = DependencyGraph::new(names, deps.clone()).unwrap();
    let (start, stop) = (g.start_waves(), g.stop_waves());
    // Generous for debug builds; a release build takes well under 1 ms.
    let elapsed = clock.elapsed();
    assert!(elapsed.as_millis() < 50, "took {elapsed:?}");
    assert_eq!(start.iter().map(Vec::len).sum::<usize>(), 500);
    let wave = |waves: &[Vec<String>], s| waves.iter().position(|w| w.contains(s));
    for d in &deps {
        assert!(wave(&start, &d.dependency) < wave(&start, &d.service));
        assert!(wave(&stop, &d.service) < wave(&stop, &d.dependency));
    }
}

#[test]
fn large_graph_cycle_is_an_actual_cycle() {
    let (names, mut deps) = generated(500);
    deps.push(Dependency::new("svc001", "svc499"));
    let Err(GraphError::Cycle { path }) = DependencyGraph::new(names, deps.clone()) else {
        panic!("expected a cycle");
    };
    assert_eq!(path[0], "svc001");
    for (i, from) in path.iter().enumerate() {
        let to = &path[(i + 1) % path.len()];
        let edge = |d: &Dependency| (&d.service, &d.dependency) == (from, to);
        assert!(deps.iter().any(edge));
    }
}

#[test]
fn deep_chain_does_not_overflow_the_stack() {
    let names: Vec<String> = (0..20_000).map(|i| format!("s{i:05}")).collect();
    let chain = names.windows(2).map(|w| Dependency::new(&w[1], &w[0]));
    let mut deps: Vec<Dependency> = chain.collect();
    let g = DependencyGraph::new(names.clone(), deps.clone()).unwrap();
    assert_eq!(g.start_waves().len(), 20_000);
    deps.push(Dependency::new("s00000", "s19999"));
    let err = DependencyGraph::new(names, deps).unwrap_err();
    assert!(matches!(err, GraphError::Cycle { path } if path.len() == 20_000));
}
