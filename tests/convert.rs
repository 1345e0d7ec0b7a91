//! `berth convert` against Kubernetes' own schemas: every example and every corpus file that
//! loads and runs images is converted, and each manifest must pass `kubernetes-validate
//! --strict` (PyPI, installed into a virtualenv by tests/fixtures/kubernetes-validate.sh) and
//! the naming rules the schemas do not check. A golden stack covers every mapping.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use berth::convert::{self, BindMounts, Format, Options, is_dns_label, is_label_value, is_qualified_name};
use berth::spec::{ProjectOptions, load};
use serde_json::Value;

/// The oldest Kubernetes release still commonly run and the newest the package knows.
const KUBERNETES_VERSIONS: &[&str] = &["1.30.0", "1.37.0"];

/// Files per kubernetes-validate run: one Python start-up for many manifests.
const BATCH: usize = 400;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn corpus_dir() -> PathBuf {
    let dir = repo().join("../shared/corpus");
    assert!(
        dir.join("manifest.json").is_file(),
        "the compose corpus is missing at {}: clone berth next to the shared/ folder",
        dir.display()
    );
    dir
}

/// Runs kubernetes-validate on `files` for every version in [`KUBERNETES_VERSIONS`]; returns
/// how many manifests passed, and fails the test on any error, warning or a missing tool.
fn validate(files: &[PathBuf]) -> usize {
    // The first run makes the virtualenv; two tests must not make it at once.
    static VENV: Mutex<()> = Mutex::new(());
    let _guard = VENV.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut passed = 0;
    for version in KUBERNETES_VERSIONS {
        for batch in files.chunks(BATCH) {
            let out = Command::new("bash")
                .arg(repo().join("tests/fixtures/kubernetes-validate.sh"))
                .env("KV_VENV", Path::new(env!("CARGO_TARGET_TMPDIR")).join("kv-venv"))
                .args(["--strict", "-k", version])
                .args(batch)
                .output()
                .expect("bash runs");
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let bad: Vec<&str> = stdout.lines().filter(|l| !l.starts_with("INFO")).collect();
            assert!(
                out.status.success() && bad.is_empty() && !stdout.is_empty(),
                "kubernetes-validate -k {version} failed (it is installed from PyPI into a virtualenv; \
                 python3 with venv and network access to PyPI are needed):\n{}\n{stderr}",
                bad.join("\n")
            );
            passed += stdout.lines().filter(|l| l.contains(" passed for resource ")).count();
        }
    }
    passed
}

/// What the schemas leave to the API server: names, labels, selectors, references inside a
/// pod. Returns the problems.
fn check_semantics(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let object: Value = if file.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).unwrap()
    } else {
        serde_saphyr::from_str(&text).unwrap()
    };
    let mut problems = Vec::new();
    let mut fail = |what: String| problems.push(format!("{}: {what}", file.display()));
    let kind = object["kind"].as_str().unwrap_or_default();
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let subdomain = |s: &str| s.len() <= 253 && s.split('.').all(is_dns_label_1123);
    if (kind == "Service" && !is_dns_label(name)) || !subdomain(name) {
        fail(format!("{kind} name {name:?} is not a valid name"));
    }
    let labels = |v: &Value| -> Vec<(String, Option<String>)> {
        v.as_object().into_iter().flatten().map(|(k, v)| (k.clone(), v.as_str().map(str::to_owned))).collect()
    };
    let mut all = labels(&object["metadata"]["labels"]);
    all.extend(labels(&object["spec"]["template"]["metadata"]["labels"]));
    for (k, v) in all {
        if !is_qualified_name(&k) || !v.as_deref().is_some_and(is_label_value) {
            fail(format!("label {k}={v:?} is invalid"));
        }
    }
    let template = &object["spec"]["template"];
    if let Some(selector) = object["spec"]["selector"]["matchLabels"].as_object() {
        for (k, v) in selector {
            if template["metadata"]["labels"][k] != *v {
                fail(format!("the selector {k}={v} does not select the pod template"));
            }
        }
    }
    let pod = &template["spec"];
    if pod.is_object() {
        let mut volumes: BTreeSet<String> =
            pod["volumes"].as_array().into_iter().flatten().map(|v| v["name"].as_str().unwrap().to_owned()).collect();
        let claims = object["spec"]["volumeClaimTemplates"].as_array().into_iter().flatten();
        volumes.extend(claims.map(|c| c["metadata"]["name"].as_str().unwrap().to_owned()));
        let mut names = BTreeSet::new();
        let containers = pod["containers"].as_array().into_iter().chain(pod["initContainers"].as_array()).flatten();
        for c in containers {
            let cname = c["name"].as_str().unwrap_or_default();
            if !is_dns_label_1123(cname) || !names.insert(cname.to_owned()) {
                fail(format!("container name {cname:?} is invalid or repeated"));
            }
            let mut paths = BTreeSet::new();
            for m in c["volumeMounts"].as_array().into_iter().flatten() {
                let v = m["name"].as_str().unwrap();
                if !volumes.contains(v) {
                    fail(format!("container {cname} mounts {v:?}, which is no volume of the pod"));
                }
                if !paths.insert(m["mountPath"].as_str().unwrap().to_owned()) {
                    fail(format!("container {cname} mounts {} twice", m["mountPath"]));
                }
            }
        }
    }
    if kind == "Service" {
        let ports = object["spec"]["ports"].as_array().unwrap();
        let names: BTreeSet<&str> = ports.iter().filter_map(|p| p["name"].as_str()).collect();
        if names.len() != ports.len() || names.iter().any(|n| n.len() > 15) {
            fail("Service port names must be unique IANA names".into());
        }
    }
    problems
}

fn is_dns_label_1123(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn berth(dir: &Path, args: &[&str]) -> std::process::Output {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("convert-root");
    Command::new(env!("CARGO_BIN_EXE_berth")).current_dir(dir).arg("--root").arg(root).args(args).output().unwrap()
}

/// Variables the upstream tests set before loading these corpus files (as in corpus.rs).
const UPSTREAM_ENV: &[(&str, &str, &str)] = &[
    ("docker-compose/pkg/e2e/fixtures/logs-test/cat.yaml", "FILE", "./hello.txt"),
    ("podman-compose/tests/integration/interpolation/docker-compose-command-interpolation.yml", "CMD_VAR", "echo hi"),
];

#[test]
fn examples_and_the_corpus_convert_to_manifests_that_kubernetes_validates() {
    let out_dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    let mut converted = 0;
    let mut skipped: BTreeMap<String, Vec<String>> = BTreeMap::new();

    // The examples through the command line, in both formats, as a user runs it.
    let mut examples: Vec<PathBuf> =
        std::fs::read_dir(repo().join("examples")).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    examples.sort();
    for dir in &examples {
        for format in ["yaml", "json"] {
            let name = dir.file_name().unwrap().to_string_lossy();
            let dest = out_dir.path().join(format!("example-{name}-{format}"));
            let out = berth(dir, &["convert", "--format", format, "-o", dest.to_str().unwrap()]);
            assert!(out.status.success(), "convert {}: {}", dir.display(), String::from_utf8_lossy(&out.stderr));
            let written: Vec<PathBuf> = std::fs::read_dir(&dest).unwrap().map(|e| e.unwrap().path()).collect();
            assert!(!written.is_empty(), "{}: no manifests", dir.display());
            files.extend(written);
        }
        converted += 1;
    }
    assert!(converted >= 5, "only {converted} examples found");

    // Every corpus file that must load, through the library with a fixed environment.
    let corpus = corpus_dir();
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(corpus.join("manifest.json")).unwrap()).unwrap();
    for (i, entry) in manifest["files"].as_array().unwrap().iter().enumerate() {
        let rel = entry["path"].as_str().unwrap();
        if entry["valid"] != true || entry["intentionally_invalid"] == true || !entry["expected_failure"].is_null() {
            skipped.entry("not a valid stack in the manifest".into()).or_default().push(rel.into());
            continue;
        }
        let file = corpus.join(rel);
        let mut opts = ProjectOptions::for_file(&file, BTreeMap::from([("HOME".to_owned(), "/root".to_owned())]));
        for (_, var, value) in UPSTREAM_ENV.iter().filter(|(p, _, _)| *p == rel) {
            opts.os_env.insert((*var).to_owned(), (*value).to_owned());
        }
        if entry["features"].as_array().unwrap().iter().any(|f| f == "service_without_image_or_build") {
            opts.consistency = false;
        }
        let project = match load(&opts) {
            Ok(l) => l.project,
            Err(e) => {
                let why = e.errors[0].message.clone();
                let reason = if why.contains("env file") {
                    "does not load: an env file is missing upstream (corpus.rs expects this)"
                } else if why.contains("cycle") {
                    "does not load: a depends_on cycle (corpus.rs expects this)"
                } else {
                    "does not load (a known exception in corpus.rs)"
                };
                skipped.entry(reason.into()).or_default().push(format!("{rel}: {why}"));
                continue;
            }
        };
        if project.services.is_empty() {
            skipped
                .entry("no services (networks or volumes only, or every service in a profile)".into())
                .or_default()
                .push(rel.into());
            continue;
        }
        if !project.services.values().any(|s| s.image.is_some()) {
            skipped.entry("build-only: no service names an image".into()).or_default().push(rel.into());
            continue;
        }
        // Host paths become hostPath volumes here, so that shape is validated too.
        let options = Options { namespace: Some("corpus".into()), bind_mounts: BindMounts::HostPath };
        let result = convert::convert(&project, &options).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert!(
            result.objects.iter().any(|o| matches!(o["kind"].as_str(), Some("Deployment" | "StatefulSet" | "Job"))),
            "{rel}: no workload"
        );
        for w in &result.warnings {
            assert!(!w.key.is_empty() && !w.message.is_empty(), "{rel}: an empty warning: {w:?}");
        }
        let dest = out_dir.path().join(format!("corpus-{i}"));
        files.extend(convert::write_dir(&result.objects, &dest, Format::Yaml).unwrap());
        converted += 1;
    }

    let problems: Vec<String> = files.iter().flat_map(|f| check_semantics(f)).collect();
    assert!(
        problems.is_empty(),
        "{} manifests break Kubernetes' naming rules:\n{}",
        problems.len(),
        problems.join("\n")
    );
    let validated = validate(&files);
    let skipped_count: usize = skipped.values().map(Vec::len).sum();
    let reasons: Vec<String> = skipped.iter().map(|(why, files)| format!("{} {why}", files.len())).collect();
    println!(
        "converted {converted} files, validated {validated} manifests ({} files × Kubernetes {}), skipped {skipped_count} ({})",
        files.len(),
        KUBERNETES_VERSIONS.join(" and "),
        reasons.join("; ")
    );
    for (why, list) in &skipped {
        if why.starts_with("does not load") || why.starts_with("build-only") {
            for f in list {
                println!("  skipped ({why}): {f}");
            }
        }
    }
    assert_eq!(validated, files.len() * KUBERNETES_VERSIONS.len(), "every manifest must be validated");
    assert!(converted > 200, "only {converted} files converted: is the corpus complete?");
}

/// The fixture directory as it appears in output, so golden files do not depend on the clone.
fn normalise(text: &str, dir: &Path) -> String {
    text.replace(dir.to_str().unwrap(), "<fixtures>")
}

fn golden(name: &str, actual: &str) {
    let path = repo().join("tests/fixtures/convert").join(name);
    if std::env::var_os("BERTH_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (BERTH_UPDATE_GOLDEN=1 writes it)", path.display()));
    if expected != actual {
        let line = expected.lines().zip(actual.lines()).position(|(a, b)| a != b).unwrap_or(0);
        panic!(
            "{} differs from the output at line {} (BERTH_UPDATE_GOLDEN=1 rewrites it):\nexpected: {:?}\nactual:   {:?}",
            path.display(),
            line + 1,
            expected.lines().nth(line),
            actual.lines().nth(line)
        );
    }
}

#[test]
fn a_stack_with_every_mapping_converts_as_the_golden_files_say() {
    let dir = repo().join("tests/fixtures/convert");
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .current_dir(&dir)
        .env("SHOP_DB_PASSWORD", "hunter2")
        .arg("--root")
        .arg(Path::new(env!("CARGO_TARGET_TMPDIR")).join("convert-root"))
        .args(["-f", "everything.yaml", "convert"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    golden("everything.expected.yaml", &normalise(&stdout, &dir));
    golden("everything.warnings.txt", &normalise(&stderr, &dir));
    for line in stderr.lines() {
        assert!(line.starts_with("warning: "), "one warning per line: {line}");
    }

    // The golden output is valid too.
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("everything.yaml");
    std::fs::write(&file, &stdout).unwrap();
    let kinds = stdout.matches("\nkind: ").count() + usize::from(stdout.starts_with("kind: "));
    assert!(kinds > 10, "{kinds} objects");
    assert_eq!(validate(&[file]), kinds * KUBERNETES_VERSIONS.len());
}

#[test]
fn convert_writes_one_file_per_object_or_one_file_and_rejects_a_bad_namespace() {
    let dir = repo().join("examples/quickstart");
    let tmp = tempfile::tempdir().unwrap();
    let one = tmp.path().join("all.yaml");
    let out = berth(&dir, &["convert", "-n", "shop", "-o", one.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&one).unwrap();
    assert_eq!(text.matches("namespace: shop").count(), text.matches("\nkind: ").count() + 1, "{text}");
    assert!(text.contains("  namespace: shop\n"), "the RoleBinding names the namespace");

    let many = tmp.path().join("manifests");
    let out = berth(&dir, &["convert", "-o", many.to_str().unwrap()]);
    assert!(out.status.success());
    let mut names: Vec<String> =
        std::fs::read_dir(&many).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert!(names.contains(&"statefulset-db.yaml".to_owned()), "{names:?}");
    assert!(names.contains(&"job-migrate.yaml".to_owned()), "{names:?}");
    assert!(names.contains(&"deployment-api.yaml".to_owned()), "{names:?}");

    let out = berth(&dir, &["convert", "--format", "json"]);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["kind"], "List");
    assert!(list["items"].as_array().unwrap().len() >= 5);

    let out = berth(&dir, &["convert", "-n", "Not_Valid"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid namespace"));
}
