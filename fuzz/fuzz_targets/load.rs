//! Any bytes given as a stack file: the loader must return Ok or Err, never panic, hang or
//! blow the stack. Every stage runs: YAML, interpolation, include/extends (paths that do not
//! exist), merging, schema, normalisation, semantic checks and the dependency graph.
#![no_main]

use std::collections::BTreeMap;
use std::path::PathBuf;

use berth::spec::{ProjectOptions, load};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let opts = ProjectOptions {
        files: vec![PathBuf::from("-")],
        stdin: Some(text.to_owned()),
        profiles: vec!["*".into()],
        interpolate: true,
        consistency: true,
        working_dir: PathBuf::from("/nonexistent/berth-fuzz"),
        os_env: BTreeMap::from([("SET".to_owned(), "1".to_owned()), ("EMPTY".to_owned(), String::new())]),
        ..ProjectOptions::default()
    };
    if let Ok(loaded) = load(&opts) {
        if let Ok(graph) = berth::spec::validate::dependency_graph(&loaded.project) {
            let _ = graph.start_waves();
        }
        let _ = serde_json::to_string(&loaded.project);
    }
});
