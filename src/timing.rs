//! Phase timings for finding where a command spends its time: with `BERTH_TIMINGS=1` in the
//! environment, each [`phase`] prints the milliseconds since the process started to stderr.

use std::sync::OnceLock;
use std::time::Instant;

/// The clock's zero, when timings are on.
static START: OnceLock<Option<Instant>> = OnceLock::new();

/// Turns timings on when the environment asks for them; call first thing in `main`.
pub fn init() {
    START.get_or_init(|| std::env::var_os("BERTH_TIMINGS").is_some_and(|v| v == "1").then(Instant::now));
}

/// Prints `berth: timing <name> <ms>` when timings are on.
pub fn phase(name: &str) {
    if let Some(Some(start)) = START.get() {
        eprintln!("berth: timing {name} {:.2} ms", start.elapsed().as_secs_f64() * 1000.0);
    }
}
