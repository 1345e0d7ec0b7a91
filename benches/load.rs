//! Loading speed: the largest file of the shared compose corpus, and a generated 500-service
//! stack, each loaded, validated and ordered (start waves) end to end.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use berth::spec::validate::dependency_graph;
use berth::spec::{ProjectOptions, load};
use criterion::{Criterion, criterion_group, criterion_main};

fn options(file: &Path) -> ProjectOptions {
    ProjectOptions::for_file(file, BTreeMap::from([("TAG".to_owned(), "1.36".to_owned())]))
}

/// The largest corpus file that loads.
fn largest_corpus_file() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("manifest.json")).expect("the shared corpus is beside the repo"),
    )
    .unwrap();
    let mut candidates: Vec<&serde_json::Value> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["valid"] == true && e["intentionally_invalid"] != true && e["expected_failure"].is_null())
        .collect();
    candidates.sort_by_key(|e| std::cmp::Reverse(e["size"].as_u64().unwrap_or(0)));
    candidates
        .into_iter()
        .map(|e| dir.join(e["path"].as_str().unwrap()))
        .find(|p| load(&options(p)).is_ok())
        .expect("some corpus file loads")
}

/// A stack shaped like real ones: anchors, interpolation, ports, volumes, health checks and
/// depends_on edges to up to three earlier services.
pub fn generate_stack(services: usize) -> String {
    let mut y = String::from(
        "name: generated\nx-common: &common\n  image: busybox:${TAG:-latest}\n  restart: unless-stopped\n  stop_signal: SIGKILL\n  labels: {tier: bench}\nservices:\n",
    );
    for i in 0..services {
        writeln!(y, "  svc{i}:\n    <<: *common\n    command: [\"sleep\", \"infinity\"]").unwrap();
        writeln!(y, "    environment:\n      INDEX: \"{i}\"\n      PEER: svc{}\n", i / 2).unwrap();
        writeln!(y, "    ports: [\"127.0.0.1:{}:80\"]", 20000 + i).unwrap();
        writeln!(y, "    volumes: [\"data{}:/data\", \"./conf:/etc/conf:ro\"]", i % 10).unwrap();
        writeln!(y, "    healthcheck: {{test: [\"CMD\", \"true\"], interval: 1s, retries: 3}}").unwrap();
        if i > 0 {
            y.push_str("    depends_on:\n");
            for d in [i / 2, i.saturating_sub(1), i / 3]
                .into_iter()
                .filter(|d| *d < i)
                .collect::<std::collections::BTreeSet<_>>()
            {
                writeln!(y, "      svc{d}: {{condition: service_started}}").unwrap();
            }
        }
    }
    y.push_str("volumes:\n");
    for v in 0..10 {
        writeln!(y, "  data{v}:").unwrap();
    }
    y
}

fn bench_load(c: &mut Criterion) {
    let corpus = largest_corpus_file();
    c.bench_function(&format!("load largest corpus file ({})", corpus.file_name().unwrap().to_string_lossy()), |b| {
        b.iter(|| load(&options(&corpus)).unwrap())
    });

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("compose.yaml");
    std::fs::write(&file, generate_stack(500)).unwrap();
    c.bench_function("load + validate + order 500 services", |b| {
        b.iter(|| {
            let loaded = load(&options(&file)).unwrap();
            dependency_graph(&loaded.project).unwrap().start_waves()
        })
    });
}

criterion_group!(benches, bench_load);
criterion_main!(benches);
