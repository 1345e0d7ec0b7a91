//! Links the `berth` binary as a position-dependent executable.
//!
//! A PIE berth spends about half a millisecond per command in the dynamic loader applying
//! 33,000 relative relocations and taking the copy-on-write faults they cause, 4% of a whole
//! container run (benches/runtime.sh). A fixed load address costs ASLR of berth's own code and
//! data (the heap, stack and shared libraries stay randomised) — the trade Go makes by default.
//! The objects stay position-independent; only the final link changes, and only for binaries.

fn main() {
    // Without this, cargo reruns the script (and rebuilds the crate) whenever any file of the
    // package changes, README and fuzz corpus included.
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-link-arg-bins=-no-pie");
}
