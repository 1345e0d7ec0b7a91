//! Scalar mini-languages of the compose format: durations, byte sizes and CPU counts.
//!
//! The accepted syntax follows what docker compose (compose-go) accepts, so that a file
//! that loads there loads here with the same value, and `config` prints the same text.

use std::fmt::Write as _;
use std::time::Duration;

/// Go durations are signed 64-bit nanosecond counts; compose cannot represent more.
const MAX_NANOS: u64 = i64::MAX as u64;
const NANOS_PER_SEC: u128 = 1_000_000_000;

/// A duration, size or CPU count that could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum UnitError {
    /// The text is not a duration compose accepts.
    #[error("invalid duration {input:?}: {reason}")]
    Duration {
        /// The text as written.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The text is not a byte size compose accepts.
    #[error("invalid size {input:?}: {reason}")]
    Bytes {
        /// The text as written.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The text is not a non-negative CPU count.
    #[error("invalid cpus value {input:?}: expected a non-negative number such as 0.5 or 2")]
    Cpus {
        /// The text as written.
        input: String,
    },
}

const DURATION_HINT: &str = "expected a number with a unit such as 1m30s or 500ms";
const BYTES_HINT: &str = "expected a number with an optional unit b, k, m, g, t or p such as 512m or 1.5g";

fn duration_error(input: &str, reason: impl Into<String>) -> UnitError {
    UnitError::Duration { input: input.to_owned(), reason: reason.into() }
}

fn bytes_error(input: &str, reason: impl Into<String>) -> UnitError {
    UnitError::Bytes { input: input.to_owned(), reason: reason.into() }
}

fn duration_unit_nanos(unit: &str) -> Option<u64> {
    // compose-go parses durations with go-str2duration, which adds days and weeks to
    // Go's units; both micro signs (U+00B5 and U+03BC) are accepted.
    Some(match unit {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3_600 * 1_000_000_000,
        "d" => 86_400 * 1_000_000_000,
        "w" => 7 * 86_400 * 1_000_000_000,
        _ => return None,
    })
}

fn leading_digits(s: &str) -> usize {
    s.bytes().take_while(u8::is_ascii_digit).count()
}

/// Nanoseconds contributed by a fractional part; Go computes this in floating point, and
/// so do we, to land on the same nanosecond.
#[expect(clippy::cast_possible_truncation, reason = "truncation toward zero is exactly Go's int64(float64) conversion")]
fn fraction_nanos(digits: &str, unit: u64) -> u64 {
    let mut value: i64 = 0;
    let mut scale: f64 = 1.0;
    for digit in digits.bytes() {
        // Go stops accumulating precision once the digits no longer fit in an int64.
        let Some(next) = value.checked_mul(10).and_then(|v| v.checked_add(i64::from(digit - b'0'))) else {
            break;
        };
        value = next;
        scale *= 10.0;
    }
    (value as f64 * (unit as f64 / scale)) as u64
}

/// Parses a duration such as `1m30s`, `500ms`, `1.5h` or `2d` (Go syntax plus `d` and `w`).
///
/// A bare `0` is accepted as compose does; any other number needs a unit. Negative
/// durations are rejected.
pub fn parse_duration(s: &str) -> Result<Duration, UnitError> {
    let mut rest = match s.as_bytes().first() {
        Some(b'+') => &s[1..],
        Some(b'-') => return Err(duration_error(s, "negative durations are not allowed")),
        _ => s,
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(duration_error(s, DURATION_HINT));
    }
    let too_large = || duration_error(s, "the value is too large (at most about 292 years)");
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let int_len = leading_digits(rest);
        let (int_digits, after_int) = rest.split_at(int_len);
        let (frac_digits, after_number) = match after_int.strip_prefix('.') {
            Some(frac) => frac.split_at(leading_digits(frac)),
            None => ("", after_int),
        };
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err(duration_error(s, DURATION_HINT));
        }
        let unit_len = after_number.find(|c: char| c == '.' || c.is_ascii_digit()).unwrap_or(after_number.len());
        let (unit, remainder) = after_number.split_at(unit_len);
        if unit.is_empty() {
            let number = &rest[..rest.len() - after_number.len()];
            return Err(duration_error(s, format!("missing unit after {number:?}; {DURATION_HINT}")));
        }
        let Some(unit_nanos) = duration_unit_nanos(unit) else {
            return Err(duration_error(
                s,
                format!("unknown unit {unit:?}; valid units are ns, us, ms, s, m, h, d and w"),
            ));
        };
        let whole = if int_digits.is_empty() { 0 } else { int_digits.parse::<u64>().map_err(|_| too_large())? };
        let mut part = whole.checked_mul(unit_nanos).filter(|v| *v <= MAX_NANOS).ok_or_else(too_large)?;
        part = part
            .checked_add(fraction_nanos(frac_digits, unit_nanos))
            .filter(|v| *v <= MAX_NANOS)
            .ok_or_else(too_large)?;
        total = total.checked_add(part).filter(|v| *v <= MAX_NANOS).ok_or_else(too_large)?;
        rest = remainder;
    }
    Ok(Duration::from_nanos(total))
}

/// Writes `value / 10^precision` with trailing fractional zeros (and a bare dot) removed.
fn write_decimal(out: &mut String, value: u128, precision: u32) {
    let divisor = 10u128.pow(precision);
    let (whole, frac) = (value / divisor, value % divisor);
    let _ = write!(out, "{whole}");
    if frac != 0 {
        let digits = format!("{frac:0width$}", width = precision as usize);
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
}

/// Formats a duration exactly as Go's `time.Duration.String()` does (`1m30s`, `500ms`, `1h0m0s`).
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    let mut out = String::new();
    if nanos == 0 {
        out.push_str("0s");
    } else if nanos < 1_000 {
        let _ = write!(out, "{nanos}ns");
    } else if nanos < 1_000_000 {
        write_decimal(&mut out, nanos, 3);
        out.push_str("\u{b5}s");
    } else if nanos < NANOS_PER_SEC {
        write_decimal(&mut out, nanos, 6);
        out.push_str("ms");
    } else {
        let total_secs = nanos / NANOS_PER_SEC;
        let minutes = total_secs / 60;
        if minutes > 0 {
            let hours = minutes / 60;
            if hours > 0 {
                let _ = write!(out, "{hours}h");
            }
            let _ = write!(out, "{}m", minutes % 60);
        }
        write_decimal(&mut out, (total_secs % 60) * NANOS_PER_SEC + nanos % NANOS_PER_SEC, 9);
        out.push('s');
    }
    out
}

/// Parses a decimal number the way Go's `strconv.ParseFloat` reads what docker users write.
fn parse_decimal(s: &str) -> Option<f64> {
    // Rust also accepts "inf" and "nan", which no compose file means; keep to plain numbers.
    let plain = s.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    if !plain || !s.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

fn binary_multiplier(prefix: u8) -> Option<u64> {
    Some(match prefix {
        b'k' => 1 << 10,
        b'm' => 1 << 20,
        b'g' => 1 << 30,
        b't' => 1 << 40,
        b'p' => 1 << 50,
        _ => return None,
    })
}

/// Parses a byte size as docker's `RAMInBytes` does: 1024-based, case-insensitive
/// suffixes `b`, `k`, `m`, `g`, `t`, `p`, optionally followed by `b` or `ib` (`512m`,
/// `1gb`, `1.5GiB`, `2048`). Fractions of a byte are truncated.
pub fn parse_bytes(s: &str) -> Result<u64, UnitError> {
    // compose-go tries a plain integer first, so values beyond f64 precision stay exact.
    if let Ok(n) = s.parse::<i64>() {
        return u64::try_from(n).map_err(|_| bytes_error(s, "negative sizes are not allowed"));
    }
    let (number, suffix) = match s.split_once(' ') {
        Some(parts) => parts,
        None => {
            let Some(last) = s.rfind(|c: char| c.is_ascii_digit() || c == '.') else {
                return Err(bytes_error(s, BYTES_HINT));
            };
            s.split_at(last + 1)
        }
    };
    let Some(value) = parse_decimal(number) else {
        return Err(bytes_error(s, BYTES_HINT));
    };
    if value < 0.0 {
        return Err(bytes_error(s, "negative sizes are not allowed"));
    }
    let suffix = suffix.to_ascii_lowercase();
    let bad_suffix = || {
        bytes_error(
            s,
            format!("unknown unit {suffix:?}; valid units are b, k, m, g, t and p, optionally followed by b or ib"),
        )
    };
    let multiplier = match suffix.as_bytes() {
        [] | [b'b'] => 1,
        [prefix] => binary_multiplier(*prefix).ok_or_else(bad_suffix)?,
        [prefix, b'b'] | [prefix, b'i', b'b'] => binary_multiplier(*prefix).ok_or_else(bad_suffix)?,
        _ => return Err(bad_suffix()),
    };
    let bytes = value * multiplier as f64;
    // i64::MAX as f64 rounds up to 2^63, so anything at or above it does not fit.
    if bytes >= i64::MAX as f64 {
        return Err(bytes_error(s, "the value is too large"));
    }
    #[expect(
        clippy::cast_possible_truncation,
        reason = "the range is checked above; truncation matches Go's int64(float64)"
    )]
    Ok(bytes as u64)
}

/// Parses a CPU count such as `0.5` or `2`.
pub fn parse_cpus(s: &str) -> Result<f64, UnitError> {
    match parse_decimal(s) {
        // `-0` parses to negative zero; normalise it so callers never see a sign.
        Some(v) if v >= 0.0 => Ok(v + 0.0),
        _ => Err(UnitError::Cpus { input: s.to_owned() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn durations_parse_like_compose() {
        let cases: &[(&str, u64)] = &[
            ("0", 0),
            ("+0", 0),
            ("0s", 0),
            ("1m30s", 90 * SEC),
            ("500ms", 500_000_000),
            ("1.5s", 1_500_000_000),
            ("2h", 7_200 * SEC),
            ("10us", 10_000),
            ("10\u{b5}s", 10_000),
            ("10\u{3bc}s", 10_000),
            ("300ns", 300),
            ("+5s", 5 * SEC),
            (".5s", 500_000_000),
            ("1.s", SEC),
            ("1d", 86_400 * SEC),
            ("1w", 7 * 86_400 * SEC),
            ("1h1m1s1ms1us1ns", 3_661_001_001_001),
            ("1.1h", 3_960 * SEC),
            ("0.333333333333s", 333_333_333),
            ("1.00000000000000000000000001s", SEC),
            ("2562047h47m16.854775807s", MAX_NANOS),
        ];
        for (input, nanos) in cases {
            assert_eq!(parse_duration(input), Ok(Duration::from_nanos(*nanos)), "{input}");
        }
    }

    #[test]
    fn durations_reject_bad_input() {
        let cases: &[(&str, &str)] = &[
            ("", DURATION_HINT),
            ("+", DURATION_HINT),
            ("30", "missing unit after \"30\""),
            ("1m30", "missing unit after \"30\""),
            ("-1s", "negative durations are not allowed"),
            ("-0", "negative durations are not allowed"),
            ("1x", "unknown unit \"x\""),
            ("1 s", "unknown unit \" s\""),
            ("1S", "unknown unit \"S\""),
            ("s", DURATION_HINT),
            (".s", DURATION_HINT),
            ("1s.", DURATION_HINT),
            ("1.5.5s", "missing unit after \"1.5\""),
            ("2562047h47m16.854775808s", "too large"),
            ("99999999999999999999s", "too large"),
            ("100000000w", "too large"),
            ("1\u{2028}s", "unknown unit"),
        ];
        for (input, reason) in cases {
            let err = parse_duration(input).expect_err(input);
            let UnitError::Duration { input: got, reason: why } = &err else {
                panic!("wrong error kind for {input}: {err:?}");
            };
            assert_eq!(got, input);
            assert!(why.contains(reason), "{input}: {why}");
        }
    }

    #[test]
    fn duration_error_message_names_input_and_expectation() {
        let err = parse_duration("1x").expect_err("bad unit");
        assert_eq!(
            err.to_string(),
            "invalid duration \"1x\": unknown unit \"x\"; valid units are ns, us, ms, s, m, h, d and w"
        );
        let err = parse_duration("").expect_err("empty");
        assert_eq!(err.to_string(), "invalid duration \"\": expected a number with a unit such as 1m30s or 500ms");
    }

    #[test]
    fn durations_format_like_go() {
        let cases: &[(u64, &str)] = &[
            (0, "0s"),
            (1, "1ns"),
            (999, "999ns"),
            (1_000, "1\u{b5}s"),
            (1_500, "1.5\u{b5}s"),
            (1_000_000, "1ms"),
            (1_234_567, "1.234567ms"),
            (500_000_000, "500ms"),
            (SEC, "1s"),
            (1_500_000_000, "1.5s"),
            (59 * SEC + 1, "59.000000001s"),
            (60 * SEC, "1m0s"),
            (90 * SEC, "1m30s"),
            (3_600 * SEC, "1h0m0s"),
            (3_661 * SEC, "1h1m1s"),
            (86_400 * SEC, "24h0m0s"),
            (MAX_NANOS, "2562047h47m16.854775807s"),
        ];
        for (nanos, text) in cases {
            assert_eq!(format_duration(Duration::from_nanos(*nanos)), *text, "{nanos}");
        }
    }

    #[test]
    fn durations_round_trip_through_format() {
        for input in ["1m30s", "500ms", "1.5s", "36h", "1\u{b5}s", "7ns", "1h2m3.004s"] {
            let parsed = parse_duration(input).expect(input);
            assert_eq!(parse_duration(&format_duration(parsed)), Ok(parsed), "{input}");
        }
    }

    #[test]
    fn bytes_parse_like_ram_in_bytes() {
        let cases: &[(&str, u64)] = &[
            ("0", 0),
            ("2048", 2048),
            ("+12", 12),
            ("9223372036854775807", 9_223_372_036_854_775_807),
            ("512m", 512 << 20),
            ("512M", 512 << 20),
            ("1gb", 1 << 30),
            ("1GiB", 1 << 30),
            ("1.5g", 3 << 29),
            ("100k", 102_400),
            ("100KB", 102_400),
            ("2t", 2 << 40),
            ("1p", 1 << 50),
            ("32b", 32),
            ("32B", 32),
            ("1 GB", 1 << 30),
            ("1 ", 1),
            ("1.9", 1),
            ("0.5k", 512),
            (".5k", 512),
            ("1e3", 1000),
            ("1e3k", 1_024_000),
            ("1.", 1),
        ];
        for (input, bytes) in cases {
            assert_eq!(parse_bytes(input), Ok(*bytes), "{input}");
        }
    }

    #[test]
    fn bytes_reject_bad_input() {
        let cases: &[(&str, &str)] = &[
            ("", BYTES_HINT),
            ("abc", BYTES_HINT),
            ("k", BYTES_HINT),
            ("-1", "negative sizes are not allowed"),
            ("-1k", "negative sizes are not allowed"),
            ("1x", "unknown unit \"x\""),
            ("1kk", "unknown unit \"kk\""),
            ("1bb", "unknown unit \"bb\""),
            ("1kib ", BYTES_HINT),
            ("1kibb", "unknown unit \"kibb\""),
            ("1mi", "unknown unit \"mi\""),
            ("1e", "unknown unit \"e\""),
            ("1 G B", "unknown unit \"g b\""),
            (" 1k", BYTES_HINT),
            ("1.2.3k", BYTES_HINT),
            ("inf", BYTES_HINT),
            ("1e400", BYTES_HINT),
            ("8p8p", BYTES_HINT),
            ("9223372036854775808", "too large"),
            ("8192p", "too large"),
            ("1\u{e9}", "unknown unit"),
        ];
        for (input, reason) in cases {
            let err = parse_bytes(input).expect_err(input);
            let UnitError::Bytes { input: got, reason: why } = &err else {
                panic!("wrong error kind for {input}: {err:?}");
            };
            assert_eq!(got, input);
            assert!(why.contains(reason), "{input}: {why}");
        }
    }

    #[test]
    fn bytes_error_message_names_input() {
        let err = parse_bytes("12q").expect_err("bad unit");
        assert_eq!(
            err.to_string(),
            "invalid size \"12q\": unknown unit \"q\"; valid units are b, k, m, g, t and p, optionally followed by b or ib"
        );
    }

    #[test]
    fn cpus_parse_non_negative_decimals() {
        let cases: &[(&str, f64)] =
            &[("0.5", 0.5), ("2", 2.0), ("0", 0.0), ("-0", 0.0), ("1.25", 1.25), (".5", 0.5), ("1e1", 10.0)];
        for (input, cpus) in cases {
            let got = parse_cpus(input).expect(input);
            assert!((got - cpus).abs() < f64::EPSILON && got.is_sign_positive(), "{input}: {got}");
        }
    }

    #[test]
    fn cpus_reject_bad_input() {
        for input in ["", "-1", "-0.5", "abc", "1c", "NaN", "inf", "1e400", "0x10", " 1", "1,5"] {
            assert_eq!(parse_cpus(input), Err(UnitError::Cpus { input: input.to_owned() }), "{input}");
        }
        assert_eq!(
            parse_cpus("x").expect_err("x").to_string(),
            "invalid cpus value \"x\": expected a non-negative number such as 0.5 or 2"
        );
    }
}
