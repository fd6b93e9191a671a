//! Reading single fields of an instance value: addresses (`host:port`, `[v6]:port`,
//! `scheme://...`), weights, statuses, timestamps and metadata, with the leniency real
//! registries need (Go's capitalised field names, numeric statuses, zero times).

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Map, Value};

use crate::Status;

/// Weight when the value names none.
pub(super) const DEFAULT_WEIGHT: u32 = 100;
/// The model's weight range is `0..=MAX_WEIGHT`.
const MAX_WEIGHT: u32 = 10_000;

/// A JSON object looked up by normalised field name, so `register_time`, `RegisterTime`
/// and `registerTime` are one field (Go encodes untagged fields capitalised).
pub(super) struct Fields<'a> {
    by_name: BTreeMap<String, &'a Value>,
}

impl<'a> Fields<'a> {
    pub(super) fn new(object: &'a Map<String, Value>) -> Self {
        let by_name = object
            .iter()
            .filter(|(_, value)| !value.is_null())
            .map(|(name, value)| (normalise(name), value))
            .collect();
        Fields { by_name }
    }

    pub(super) fn get(&self, names: &[&str]) -> Option<&'a Value> {
        names
            .iter()
            .find_map(|name| self.by_name.get(*name).copied())
    }

    /// A non-empty string (numbers are accepted and printed).
    pub(super) fn text(&self, names: &[&str]) -> Option<String> {
        names
            .iter()
            .find_map(|name| match self.by_name.get(*name)? {
                Value::String(text) if !text.trim().is_empty() => Some(text.trim().to_owned()),
                Value::Number(number) => Some(number.to_string()),
                _ => None,
            })
    }
}

fn normalise(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// A parsed `host:port`, optionally with a scheme in front.
#[derive(Debug, PartialEq)]
pub(super) struct Address {
    pub host: String,
    pub port: u16,
    pub scheme: Option<String>,
}

impl Address {
    pub(super) fn canonical(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Parses `host:port`, `[v6]:port` or `scheme://host:port[/path]`.
pub(super) fn parse_address(text: &str) -> Result<Address, String> {
    let text = text.trim();
    let (scheme, rest) = match text.split_once("://") {
        Some((scheme, rest)) => (Some(scheme.to_ascii_lowercase()), rest),
        None => (None, text),
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        bracketed
            .split_once("]:")
            .ok_or_else(|| format!("address `{text}` must be `[ipv6]:port`"))?
    } else {
        let (host, port) = authority
            .rsplit_once(':')
            .ok_or_else(|| format!("address `{text}` is not host:port"))?;
        if host.contains(':') {
            return Err(format!(
                "address `{text}`: an IPv6 host must be in brackets"
            ));
        }
        (host, port)
    };
    if host.is_empty() || host.chars().any(char::is_whitespace) {
        return Err(format!("address `{text}` has no valid host"));
    }
    let port = match port.parse::<u16>() {
        Ok(port) if port > 0 => port,
        _ => return Err(format!("address `{text}` has no valid port")),
    };
    Ok(Address {
        host: host.to_owned(),
        port,
        scheme: scheme.filter(|s| !s.is_empty()),
    })
}

/// Address from separate `host`/`ip` and `port` fields.
pub(super) fn host_and_port(fields: &Fields<'_>) -> Result<Address, String> {
    let host = fields
        .text(&["host", "ip"])
        .ok_or("value has no `address` (nor `host` and `port`)")?;
    let port = match fields.get(&["port"]) {
        Some(Value::Number(n)) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|port| *port > 0)
    .ok_or("value has `host` but no valid `port`")?;
    Ok(Address {
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port,
        scheme: None,
    })
}

pub(super) fn metadata(value: &Value) -> BTreeMap<String, String> {
    let Value::Object(map) = value else {
        return BTreeMap::new();
    };
    map.iter()
        .filter(|(_, value)| !value.is_null())
        .map(|(key, value)| (key.clone(), stringify(value)))
        .collect()
}

fn stringify(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

pub(super) fn tags(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items
            .iter()
            .filter(|v| !v.is_null())
            .map(stringify)
            .collect(),
        _ => Vec::new(),
    }
}

pub(super) fn weight(value: &Value) -> u32 {
    let number = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match number {
        Some(n) if n.is_finite() => n.round().clamp(0.0, f64::from(MAX_WEIGHT)) as u32,
        _ => DEFAULT_WEIGHT,
    }
}

/// Maps the statuses registries write; anything unknown counts as active, since a
/// value that exists in the registry is normally meant to be served.
pub(super) fn status(value: &Value) -> Status {
    match value {
        Value::String(text) => match text.trim().to_ascii_lowercase().as_str() {
            "inactive" | "disabled" => Status::Inactive,
            "maintenance" => Status::Maintenance,
            "offline" | "down" => Status::Offline,
            _ => Status::Active,
        },
        // fyer-rpc's numeric status: 1 enabled, 0 disabled.
        Value::Number(n) if n.as_i64() == Some(0) => Status::Inactive,
        Value::Bool(false) => Status::Inactive,
        _ => Status::Active,
    }
}

/// RFC 3339 text or Unix seconds/milliseconds; Go's zero time counts as unset.
pub(super) fn time(value: &Value) -> Option<DateTime<Utc>> {
    let parsed = match value {
        Value::String(text) => DateTime::parse_from_rfc3339(text.trim())
            .ok()
            .map(|t| t.with_timezone(&Utc)),
        Value::Number(n) => {
            let n = n.as_i64().filter(|n| *n > 0)?;
            if n >= 100_000_000_000 {
                Utc.timestamp_millis_opt(n).single()
            } else {
                Utc.timestamp_opt(n, 0).single()
            }
        }
        _ => None,
    }?;
    (parsed.timestamp() > 0).then_some(parsed)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn at(year: i32, month: u32, day: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(year, month, day, h, 0, 0).unwrap()
    }

    #[test]
    fn field_names_ignore_case_and_separators() {
        let object = json!({"Register_Time": "x", "ID": 7, "name": " ", "gone": null});
        let fields = Fields::new(object.as_object().unwrap());
        assert!(fields.get(&["registertime"]).is_some());
        assert_eq!(fields.text(&["id"]).as_deref(), Some("7"));
        assert_eq!(fields.text(&["name"]), None, "blank text counts as missing");
        assert!(fields.get(&["gone"]).is_none());
    }

    #[test]
    fn addresses() {
        let parsed = parse_address("[::1]:80").unwrap();
        assert_eq!((parsed.host.as_str(), parsed.port), ("::1", 80));
        assert_eq!(parsed.canonical(), "[::1]:80");
        let with_scheme = parse_address("GRPC://10.0.0.1:9090/path").unwrap();
        assert_eq!(with_scheme.scheme.as_deref(), Some("grpc"));
        assert_eq!(with_scheme.canonical(), "10.0.0.1:9090");
        for (text, expected) in [
            ("10.0.0.1", "not host:port"),
            ("::1:80", "brackets"),
            ("[::1]80", "[ipv6]:port"),
            (":80", "no valid host"),
            ("a b:80", "no valid host"),
            ("h:0", "no valid port"),
            ("h:65536", "no valid port"),
        ] {
            let err = parse_address(text).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn weights_default_and_clamp() {
        assert_eq!(weight(&json!(5)), 5);
        assert_eq!(weight(&json!(-3)), 0);
        assert_eq!(weight(&json!(99_999)), 10_000);
        assert_eq!(weight(&json!(2.6)), 3);
        assert_eq!(weight(&json!("40")), 40);
        assert_eq!(weight(&json!("heavy")), DEFAULT_WEIGHT);
        assert_eq!(weight(&json!(true)), DEFAULT_WEIGHT);
    }

    #[test]
    fn statuses_map_case_insensitively() {
        for (value, expected) in [
            (json!("ACTIVE"), Status::Active),
            (json!("Up"), Status::Active),
            (json!("online"), Status::Active),
            (json!("enabled"), Status::Active),
            (json!("Inactive"), Status::Inactive),
            (json!("disabled"), Status::Inactive),
            (json!("MAINTENANCE"), Status::Maintenance),
            (json!("offline"), Status::Offline),
            (json!("down"), Status::Offline),
            (json!("something-new"), Status::Active),
            (json!(1), Status::Active),
            (json!(0), Status::Inactive),
            (json!(false), Status::Inactive),
        ] {
            assert_eq!(status(&value), expected, "{value}");
        }
    }

    #[test]
    fn metadata_and_tags_are_stringified() {
        let meta = metadata(&json!({"n": 3, "b": true, "o": {"x": 1}, "s": "t", "gone": null}));
        assert_eq!(meta["n"], "3");
        assert_eq!(meta["b"], "true");
        assert_eq!(meta["o"], "{\"x\":1}");
        assert_eq!(meta["s"], "t");
        assert!(!meta.contains_key("gone"));
        assert!(metadata(&json!("not an object")).is_empty());
        assert_eq!(tags(&json!(["a", 2, null])), ["a", "2"]);
    }

    #[test]
    fn times_accept_rfc3339_and_unix_and_ignore_the_rest() {
        let ten = Some(at(2023, 10, 27, 10));
        assert_eq!(time(&json!("2023-10-27T10:00:00Z")), ten);
        assert_eq!(time(&json!("2023-10-27T12:00:00+02:00")), ten);
        assert_eq!(
            time(&json!("2023-10-27T10:00:00.123456789Z")).map(|t| t.timestamp()),
            ten.map(|t| t.timestamp())
        );
        assert_eq!(time(&json!("0001-01-01T00:00:00Z")), None, "Go's zero time");
        assert_eq!(time(&json!(1_698_400_800)), ten);
        assert_eq!(time(&json!(1_698_400_800_000_i64)), ten);
        assert_eq!(time(&json!("yesterday")), None);
        assert_eq!(time(&json!(0)), None);
    }
}
