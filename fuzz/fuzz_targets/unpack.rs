//! Any bytes as an image layer blob (tar, gzip or zstd): unpacked into an empty directory,
//! with the check that nothing beside that directory changed (no escape through `..`,
//! absolute names, symlinks, hard links or whiteouts).
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::unpack_layer(data);
});
