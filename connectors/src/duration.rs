//! Go-style duration text (`"250ms"`, `"30s"`, `"5m"`, `"1h30m"`), as Consul and etcd users
//! write it: parsed from config and query strings, printed for uptimes.

use std::time::Duration;

/// The longest duration accepted (about 31 700 years): far beyond any timeout, and small
/// enough that adding it to a clock cannot overflow.
const MAX_SECONDS: f64 = 1e12;

/// Parses `"1h30m"`, `"30s"`, `"250ms"`, `"1.5s"`. A bare number is seconds
/// (Consul accepts `wait=10` too).
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let total = seconds(text)?;
    if !total.is_finite() || total > MAX_SECONDS {
        return Err(format!("duration `{text}` is too large"));
    }
    Ok(Duration::from_secs_f64(total))
}

/// [`parse`] for a limit the caller caps anyway (a blocking query's `wait`): a duration
/// too large counts as the longest one instead of being an error, and surrounding spaces
/// are not trimmed, so the accepted text is exactly the grammar.
pub fn parse_capped(text: &str) -> Result<Duration, String> {
    Ok(Duration::from_secs_f64(seconds(text)?.min(MAX_SECONDS)))
}

/// The number of seconds `text` says, unbounded.
fn seconds(text: &str) -> Result<f64, String> {
    if text.is_empty() {
        return Err("empty duration".to_owned());
    }
    // Only digits: `u64::from_str` would also take a sign.
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<f64>()
            .map_err(|_| format!("duration `{text}` is not a number"));
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("duration `{text}` is missing a unit (ms, s, m, h)"))?;
        let (number, tail) = rest.split_at(number_len);
        let value: f64 = number
            .parse()
            .map_err(|_| format!("duration `{text}` has no number before its unit"))?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            other => return Err(format!("duration `{text}` has unknown unit `{other}`")),
        };
        total += value * scale;
        rest = next;
    }
    Ok(total)
}

/// Prints a duration the way Go does for whole seconds: `3h25m10s`, `45s`, `0s`.
pub fn format(duration: Duration) -> String {
    let secs = duration.as_secs();
    let (hours, minutes, seconds) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&format!("{seconds}s"));
    out
}

/// Serde adapters so config files can say `default_ttl = "30s"`.
pub mod serde_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        super::parse(&text).map_err(serde::de::Error::custom)
    }

    /// Whole seconds the Go way (`10s`, `1m30s`), anything finer in milliseconds
    /// (`250ms`), so a config read back looks like what was written.
    pub fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
        if value.subsec_nanos() == 0 {
            s.serialize_str(&super::format(*value))
        } else {
            s.serialize_str(&format!("{}ms", value.as_millis()))
        }
    }

    /// The same for optional durations.
    pub mod option {
        use std::time::Duration;

        use serde::{Deserialize, Deserializer, Serializer};

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            let text = String::deserialize(d)?;
            super::super::parse(&text)
                .map(Some)
                .map_err(serde::de::Error::custom)
        }

        pub fn serialize<S: Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match value {
                Some(value) => super::serialize(value, s),
                None => s.serialize_none(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_style_durations() {
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("10"), Ok(Duration::from_secs(10)));
    }

    #[test]
    fn rejects_malformed_durations() {
        let huge = u64::MAX.to_string();
        for bad in ["", "s", "10x", "abc", "-5s", "1..2s", "1e400h", &huge] {
            assert!(parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn capped_parse_takes_the_same_grammar_and_caps_instead_of_failing() {
        let longest = Duration::from_secs_f64(MAX_SECONDS);
        assert_eq!(parse_capped("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_capped(&u64::MAX.to_string()), Ok(longest));
        assert_eq!(parse_capped(&"9".repeat(400)), Ok(longest));
        assert_eq!(parse_capped("99999999999h"), Ok(longest));
        for bad in ["", " 5s", "+5", "1..2s", "5x"] {
            assert!(parse_capped(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn config_values_read_back_as_written() {
        #[derive(serde::Serialize)]
        struct Shown {
            #[serde(with = "serde_text")]
            value: Duration,
        }
        for (duration, text) in [(30, "30s"), (90, "1m30s")] {
            let shown = Shown {
                value: Duration::from_secs(duration),
            };
            assert_eq!(serde_json::to_value(&shown).unwrap()["value"], text);
        }
        let shown = Shown {
            value: Duration::from_millis(1500),
        };
        let text = serde_json::to_value(&shown).unwrap()["value"].clone();
        assert_eq!(text, "1500ms");
        assert_eq!(
            parse(text.as_str().unwrap()),
            Ok(Duration::from_millis(1500))
        );
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format(Duration::from_secs(12310)), "3h25m10s");
        assert_eq!(format(Duration::from_secs(45)), "45s");
        assert_eq!(format(Duration::from_secs(60)), "1m0s");
        assert_eq!(format(Duration::ZERO), "0s");
    }
}
