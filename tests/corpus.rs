//! The loader against 338 real compose files from public projects (`../shared/corpus`), with
//! the ground truth in its `manifest.json`: service names, depends_on edges, validity.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use berth::spec::{ProjectOptions, load};
use serde_json::Value;

fn corpus_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    assert!(
        dir.join("manifest.json").is_file(),
        "the compose corpus is missing at {}: clone berth next to the shared/ folder",
        dir.display()
    );
    dir
}

fn options(file: &Path) -> ProjectOptions {
    // A clean, fixed environment: results must not depend on the machine.
    ProjectOptions::for_file(file, BTreeMap::from([("HOME".to_owned(), "/root".to_owned())]))
}

fn strings(v: &Value) -> BTreeSet<String> {
    v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()).collect()
}

fn edges(v: &Value) -> BTreeSet<(String, String)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| (e[0].as_str().unwrap().to_owned(), e[1].as_str().unwrap().to_owned()))
        .collect()
}

/// Files whose ground truth describes the file as written, while a loader resolves more:
/// `include` imports other files' services and `extends` inherits their depends_on.
fn composes_other_files(entry: &Value) -> bool {
    entry["features"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| matches!(f.as_str(), Some("include" | "extends" | "extends_file")))
}

/// Files the loader rejects although the manifest calls them schema-valid, each with its reason.
/// Each is printed, and each must still be rejected (not loaded, not panicking).
const KNOWN_EXCEPTIONS: &[(&str, &str)] = &[
    (
        "podman-compose/tests/integration/extends_w_file/docker-compose.yml",
        "extends a service of common-services.yml, a legacy v1 file (services at the top level) that compose v2 no longer reads",
    ),
    (
        "compose-go/schema/using-variables.yaml",
        "compose-go's schema fixture: every value is ${VARIABLE}, so no value makes it a project (name, ports and sizes at once); it is checked against the schema only",
    ),
];

/// Variables the upstream tests set before loading these files.
const UPSTREAM_ENV: &[(&str, &str, &str)] = &[
    ("docker-compose/pkg/e2e/fixtures/logs-test/cat.yaml", "FILE", "./hello.txt"),
    ("podman-compose/tests/integration/interpolation/docker-compose-command-interpolation.yml", "CMD_VAR", "echo hi"),
];

/// Why a schema-valid file must be rejected, from the manifest's own facts: a depends_on cycle,
/// or an env_file that is missing upstream or was left out of the corpus.
fn expected_rejection(entry: &Value, text: &str) -> Option<String> {
    if entry["features"].as_array().unwrap().iter().any(|f| f == "depends_on_cycle") {
        return Some("dependency cycle detected".into());
    }
    entry["references"].as_array().unwrap().iter().find_map(|r| {
        let missing = r["path"].is_null() || r["copied"] == false;
        // An env_file marked `required: false` may be missing.
        (r["kind"] == "env_file" && missing && !text.contains("required: false"))
            .then(|| r["value"].as_str().unwrap().to_owned())
    })
}

#[test]
fn every_valid_corpus_file_loads_with_the_right_services_and_edges() {
    let dir = corpus_dir();
    let manifest: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let (mut loaded, mut exact, mut superset, mut rejected_as_expected, mut failures) = (0, 0, 0, 0, Vec::new());
    let mut skipped = Vec::new();
    for entry in manifest["files"].as_array().unwrap() {
        let rel = entry["path"].as_str().unwrap();
        let must_load =
            entry["valid"] == true && entry["intentionally_invalid"] != true && entry["expected_failure"].is_null();
        if !must_load {
            continue;
        }
        let file = dir.join(rel);
        let mut opts = options(&file);
        for (_, var, value) in UPSTREAM_ENV.iter().filter(|(p, _, _)| *p == rel) {
            opts.os_env.insert((*var).to_owned(), (*value).to_owned());
        }
        if let Some((_, why)) = KNOWN_EXCEPTIONS.iter().find(|(p, _)| *p == rel) {
            assert!(load(&opts).is_err(), "{rel} is listed as an exception but loads: remove it from the list");
            skipped.push(format!("{rel}: {why}"));
            continue;
        }
        if let Some(why) = expected_rejection(entry, &std::fs::read_to_string(&file).unwrap()) {
            match load(&opts) {
                Err(e) if e.to_string().contains(&why) => rejected_as_expected += 1,
                Err(e) => failures.push(format!("{rel}: rejected, but not for {why:?}: {e}")),
                Ok(_) => failures.push(format!("{rel}: loaded, but the manifest shows it must fail ({why})")),
            }
            continue;
        }
        // Overlay fragments and extends targets have services without image or build, as
        // compose's `config --no-consistency` accepts.
        if entry["features"].as_array().unwrap().iter().any(|f| f == "service_without_image_or_build") {
            opts.consistency = false;
        }
        let project = match load(&opts) {
            Ok(l) => l.project,
            Err(e) => {
                failures.push(format!("{rel}: {e}"));
                continue;
            }
        };
        loaded += 1;
        let want_services = strings(&entry["services"]);
        let got_services: BTreeSet<String> =
            project.services.keys().chain(project.disabled_services.keys()).cloned().collect();
        let want_edges = edges(&entry["depends_on_edges"]);
        let got_edges: BTreeSet<(String, String)> = project
            .services
            .values()
            .flat_map(|s| s.depends_on.keys().map(move |d| (s.name.clone(), d.clone())))
            .collect();
        if composes_other_files(entry) {
            if want_services.is_subset(&got_services) && want_edges.is_subset(&got_edges) {
                superset += 1;
            } else {
                failures.push(format!("{rel}: services {got_services:?} / edges {got_edges:?} do not contain {want_services:?} / {want_edges:?}"));
            }
        } else if want_services == got_services && want_edges == got_edges {
            exact += 1;
        } else {
            failures.push(format!(
                "{rel}: services {got_services:?} edges {got_edges:?}, manifest says {want_services:?} {want_edges:?}"
            ));
        }
    }
    println!(
        "corpus: {loaded} loaded; {exact} match the manifest exactly, {superset} (include/extends) contain it; \
         {rejected_as_expected} rejected as their manifest facts require (cycle, missing env file); {} failed; {} known exceptions",
        failures.len(),
        skipped.len()
    );
    for s in &skipped {
        println!("  exception: {s}");
    }
    assert!(
        failures.is_empty(),
        "{} corpus files did not load as the manifest says:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(loaded > 250, "only {loaded} corpus files were loaded: is the manifest complete?");
}

#[test]
fn intentionally_invalid_corpus_files_are_rejected_with_an_error() {
    let dir = corpus_dir();
    let manifest: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let mut rejected = 0;
    let mut accepted = Vec::new();
    for entry in manifest["files"].as_array().unwrap() {
        if entry["intentionally_invalid"] != true {
            continue;
        }
        let stage = entry["expected_failure"]["stage"].as_str().unwrap_or_default();
        if !matches!(stage, "yaml" | "schema" | "load" | "semantic" | "interpolation") {
            continue;
        }
        let rel = entry["path"].as_str().unwrap();
        match load(&options(&dir.join(rel))) {
            Err(e) => {
                rejected += 1;
                println!("  rejected {rel} ({stage}): {}", e.errors[0]);
                assert!(!e.errors[0].message.is_empty());
            }
            Ok(_) => {
                accepted.push(format!("{rel} (expected a {stage} error: {})", entry["expected_failure"]["message"]))
            }
        }
    }
    println!("corpus: {rejected} intentionally invalid files rejected, {} accepted", accepted.len());
    assert!(accepted.is_empty(), "accepted invalid files:\n{}", accepted.join("\n"));
    assert!(rejected >= 10, "expected at least 10 load-time failures in the corpus, saw {rejected}");
}

#[test]
fn the_schema_only_fixture_passes_the_schema() {
    let file = corpus_dir().join("compose-go/schema/using-variables.yaml");
    let doc = berth::spec::yaml::parse(&std::fs::read_to_string(file).unwrap(), None).unwrap().unwrap();
    let violations = berth::spec::schema::Schema::compiled().validate(&doc.to_json());
    assert!(
        violations.is_empty(),
        "{:?}",
        violations.iter().map(|v| format!("{}: {}", v.pointer, v.message)).collect::<Vec<_>>()
    );
}
