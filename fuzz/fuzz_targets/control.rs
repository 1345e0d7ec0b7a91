//! Any bytes as one line on the supervisor's control socket: decoding must return Ok or Err,
//! never panic or hang. Needs `berth::supervisor::control::decode_request` (the typed control
//! protocol of the lifecycle branch), so it builds only with `--features control`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = berth::supervisor::control::decode_request(data);
});
