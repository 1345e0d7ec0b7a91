//! Any bytes as one line on the supervisor's control socket: decoding must return Ok or Err,
//! never panic or hang, and what decodes must survive encoding and decoding again.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::control_line(data);
});
