//! Any bytes as a Dockerfile: the parser (directives, continuations, heredocs, JSON forms,
//! flags) and what the builder derives before any I/O (stages, targets, word expansion).
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::dockerfile(data);
});
