//! Any bytes given as a stack file: the loader must return Ok or Err, never panic, hang or
//! blow the stack. Every stage runs: YAML, interpolation, include/extends (paths that do not
//! exist), merging, schema, normalisation, semantic checks and the dependency graph.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::load_stack(data);
});
