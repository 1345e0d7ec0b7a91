//! Time: phase timings for finding where a command spends its time (with `BERTH_TIMINGS=1` in
//! the environment, each [`phase`] prints the milliseconds since the process started to stderr),
//! and the RFC 3339 form timestamps are printed and recorded in.

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

/// RFC 3339 in UTC with nanoseconds, as docker prints log timestamps.
pub fn rfc3339(nanos: u128) -> String {
    let seconds = u64::try_from(nanos / 1_000_000_000).unwrap_or(0);
    let fraction = nanos % 1_000_000_000;
    let days = i64::try_from(seconds / 86_400).unwrap_or(0);
    let rest = seconds % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{fraction:09}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}
