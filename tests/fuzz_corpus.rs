//! The checked-in fuzz corpora (fuzz/corpus/<target>, minimised by `cargo fuzz cmin`) replayed
//! through the fuzz targets' own code (fuzz/harness.rs), so every CI run covers what the fuzzers
//! reached without libFuzzer or a nightly toolchain. A panic is a regression of a fixed finding.

#[path = "../fuzz/harness.rs"]
mod harness;

use std::path::Path;

/// Feeds every file of fuzz/corpus/`target` to `run`; fails if the corpus is missing or empty, or
/// if no input gets past the first gate, so a moved, deleted or stale corpus cannot make the test
/// pass by replaying nothing.
fn replay(target: &str, run: fn(&[u8]) -> bool) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    let mut inputs: Vec<_> = entries.map(|e| e.expect("read the corpus directory").path()).collect();
    inputs.sort();
    let mut accepted = 0;
    assert!(!inputs.is_empty(), "{} holds no inputs", dir.display());
    for input in &inputs {
        let data = std::fs::read(input).unwrap_or_else(|e| panic!("cannot read {}: {e}", input.display()));
        eprintln!("{target}: {}", input.display());
        accepted += usize::from(run(&data));
    }
    eprintln!("{target}: {} inputs replayed, {accepted} accepted", inputs.len());
    assert!(accepted > 0, "no input of {} was accepted", dir.display());
}

#[test]
fn load_corpus() {
    replay("load", harness::load_stack);
}

#[test]
fn dockerfile_corpus() {
    replay("dockerfile", harness::dockerfile);
}

#[test]
fn dns_corpus() {
    replay("dns", harness::dns_message);
}

#[test]
fn unpack_corpus() {
    replay("unpack", harness::unpack_layer);
}

#[test]
fn control_corpus() {
    replay("control", harness::control_line);
}
