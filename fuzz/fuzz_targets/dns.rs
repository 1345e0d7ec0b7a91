//! Any bytes as a DNS message to the embedded resolver, over UDP or TCP, with an optional
//! upstream answer to relay: it answers, forwards or drops, and a reply fits the transport.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::dns_message(data);
});
