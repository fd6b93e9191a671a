//! Go's `time.ParseDuration`, which Consul uses for `?wait=` and for the `TTL`, `Interval`,
//! `Timeout` and `DeregisterCriticalServiceAfter` fields of a check: decimal numbers with
//! an optional fraction and a unit each (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`), summed
//! (`1m30s`, `1.5h`, `-2s`). A lone `0` needs no unit. The error texts are Go's, because
//! Consul copies them into its `400` bodies.

use std::time::Duration;

/// Nanoseconds per unit, as in Go's `unitMap`.
const UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000), // U+00B5 micro sign
    ("μs", 1_000), // U+03BC Greek small letter mu
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Go's limit: a duration is an `int64` of nanoseconds.
const MAX_NANOS: u128 = i64::MAX as u128;

/// Parses a Go duration. A negative duration parses (as Go's does) but is returned as zero:
/// every caller in Consul treats "not positive" alike (default wait, invalid TTL).
pub fn parse(text: &str) -> Result<Duration, String> {
    let invalid = || format!("time: invalid duration \"{text}\"");
    let mut rest = text;
    let mut negative = false;
    if let Some(stripped) = rest.strip_prefix('-') {
        negative = true;
        rest = stripped;
    } else if let Some(stripped) = rest.strip_prefix('+') {
        rest = stripped;
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        if !rest.starts_with(|c: char| c == '.' || c.is_ascii_digit()) {
            return Err(invalid());
        }
        let int_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let whole: u128 = if int_len == 0 {
            0
        } else {
            rest[..int_len].parse().map_err(|_| invalid())?
        };
        if whole > MAX_NANOS {
            return Err(invalid());
        }
        rest = &rest[int_len..];
        // Go keeps the fraction as an integer plus a scale, dropping digits that overflow.
        let (mut fraction, mut scale, mut frac_len) = (0u64, 1f64, 0usize);
        let had_dot = rest.starts_with('.');
        if had_dot {
            rest = &rest[1..];
            frac_len = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            let mut overflowed = false;
            for digit in rest[..frac_len].bytes() {
                if overflowed {
                    continue;
                }
                match fraction
                    .checked_mul(10)
                    .and_then(|f| f.checked_add(u64::from(digit - b'0')))
                {
                    Some(next) => {
                        fraction = next;
                        scale *= 10.0;
                    }
                    None => overflowed = true,
                }
            }
            rest = &rest[frac_len..];
        }
        if int_len == 0 && frac_len == 0 {
            return Err(invalid());
        }
        let unit_len = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        if unit_len == 0 {
            return Err(format!("time: missing unit in duration \"{text}\""));
        }
        let unit_text = &rest[..unit_len];
        rest = &rest[unit_len..];
        let Some(&(_, unit)) = UNITS.iter().find(|(name, _)| *name == unit_text) else {
            return Err(format!(
                "time: unknown unit \"{unit_text}\" in duration \"{text}\""
            ));
        };
        let mut value = whole * unit;
        if fraction > 0 {
            // Truncation, not rounding, as in Go.
            value += (fraction as f64 * (unit as f64 / scale)) as u128;
        }
        total += value;
        if total > MAX_NANOS + u128::from(negative) {
            return Err(invalid());
        }
    }
    if negative {
        return Ok(Duration::ZERO);
    }
    Ok(Duration::from_nanos(total as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn parses_what_go_parses() {
        assert_eq!(parse("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("150ms"), Ok(ms(150)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("1.5s"), Ok(ms(1500)));
        assert_eq!(parse(".5s"), Ok(ms(500)));
        assert_eq!(parse("5.s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse("1h2m3s4ms5us6ns"), Ok(Duration::new(3723, 4_005_006)));
        assert_eq!(parse("3µs"), Ok(Duration::from_micros(3)));
        assert_eq!(parse("3μs"), Ok(Duration::from_micros(3)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("+2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse("0.000000001s"), Ok(Duration::from_nanos(1)));
    }

    #[test]
    fn negative_durations_parse_as_zero() {
        assert_eq!(parse("-5s"), Ok(Duration::ZERO));
        assert_eq!(parse("-0"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_what_go_rejects_with_gos_messages() {
        assert_eq!(parse(""), Err("time: invalid duration \"\"".to_owned()));
        assert_eq!(parse("."), Err("time: invalid duration \".\"".to_owned()));
        assert_eq!(parse("s"), Err("time: invalid duration \"s\"".to_owned()));
        assert_eq!(parse("-"), Err("time: invalid duration \"-\"".to_owned()));
        assert_eq!(
            parse("10"),
            Err("time: missing unit in duration \"10\"".to_owned())
        );
        assert_eq!(
            parse("10x"),
            Err("time: unknown unit \"x\" in duration \"10x\"".to_owned())
        );
        assert!(parse("1s ").is_err());
        assert!(parse("9999999999999999999h").is_err());
        assert!(parse("3000000h").is_err());
    }
}
