//! Request bodies read the way Consul's Go decoder reads them, so a body Consul takes is
//! taken here and a body Consul refuses is refused with Consul's words.
//!
//! Go's `encoding/json` matches keys to struct fields case-insensitively (py-consul sends
//! `name`, Spring `Name`), leaves a field alone when its value is `null`, and Consul
//! refuses any key that names no field (`json: unknown field "<k>"`). Consul also takes a
//! few snake_case aliases, and durations as Go text (`"10s"`) or nanoseconds. A body is
//! parsed into a [`Value`] once; [`Fields`] then matches one object against a field list
//! and hands out typed values with Go's mismatch texts. Every error here is the text
//! after Consul's `Request decode failed: `.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

/// One field of a Go struct: its name and the other keys Consul translates to it.
pub type Field = (&'static str, &'static [&'static str]);

/// The JSON of a request body. An empty body is Go's `EOF`.
pub fn parse(body: &[u8]) -> Result<Value, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err("EOF".to_owned());
    }
    serde_json::from_slice(body).map_err(|err| match err.classify() {
        serde_json::error::Category::Eof => "unexpected EOF".to_owned(),
        _ => err.to_string(),
    })
}

/// The fields found in one JSON object, `null`s left out, by their Go names.
pub struct Fields<'a> {
    /// Where this object is, for mismatch texts (`ServiceDefinition.Check`).
    path: String,
    found: Vec<(&'static str, &'a Value)>,
}

impl<'a> Fields<'a> {
    /// Matches `value` (an object, or `null` for no fields) against `fields`. `go_type`
    /// names the struct in the text for a value that is not an object.
    pub fn of(
        value: &'a Value,
        path: &str,
        go_type: &str,
        fields: &[Field],
    ) -> Result<Fields<'a>, String> {
        let mut found = Vec::new();
        match value {
            Value::Null => {}
            Value::Object(object) => {
                for (key, value) in object {
                    let field = (fields.iter())
                        .find(|(name, aliases)| {
                            name.eq_ignore_ascii_case(key)
                                || aliases.iter().any(|a| a.eq_ignore_ascii_case(key))
                        })
                        .ok_or_else(|| format!("json: unknown field {}", go_quote(key)))?;
                    if !value.is_null() {
                        found.retain(|(name, _)| *name != field.0);
                        found.push((field.0, value));
                    }
                }
            }
            other => {
                let place = match path.split_once('.') {
                    Some(_) => format!("Go struct field {path}"),
                    None => "Go value".to_owned(),
                };
                return Err(format!(
                    "json: cannot unmarshal {} into {place} of type {go_type}",
                    kind(other)
                ));
            }
        }
        Ok(Fields {
            path: path.to_owned(),
            found,
        })
    }

    pub fn get(&self, name: &str) -> Option<&'a Value> {
        (self.found.iter())
            .find(|(field, _)| *field == name)
            .map(|(_, value)| *value)
    }

    /// Whether every field given is its type's zero value (Go's `Empty()` of a check).
    pub fn is_zero(&self) -> bool {
        self.found.iter().all(|(_, value)| is_zero(value))
    }

    /// Whether `name` is given with a value other than its zero value.
    pub fn is_set(&self, name: &str) -> bool {
        self.get(name).is_some_and(|value| !is_zero(value))
    }

    fn mismatch(&self, name: &str, value: &Value, go_type: &str) -> String {
        format!(
            "json: cannot unmarshal {} into Go struct field {}.{name} of type {go_type}",
            kind(value),
            self.path
        )
    }

    /// The path of a field of this object, for a nested [`Fields::of`].
    pub fn path_of(&self, name: &str) -> String {
        format!("{}.{name}", self.path)
    }

    pub fn string(&self, name: &str) -> Result<Option<String>, String> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(other) => Err(self.mismatch(name, other, "string")),
        }
    }

    /// A string field, `""` when absent (Go's zero value).
    pub fn text(&self, name: &str) -> Result<String, String> {
        Ok(self.string(name)?.unwrap_or_default())
    }

    pub fn int(&self, name: &str) -> Result<i64, String> {
        match self.get(name) {
            None => Ok(0),
            Some(value) => (value.as_i64()).ok_or_else(|| self.mismatch(name, value, "int")),
        }
    }

    pub fn bool(&self, name: &str) -> Result<bool, String> {
        match self.get(name) {
            None => Ok(false),
            Some(Value::Bool(value)) => Ok(*value),
            Some(other) => Err(self.mismatch(name, other, "bool")),
        }
    }

    /// A `[]string`; a `null` element is `""`, as Go decodes it.
    pub fn strings(&self, name: &str) -> Result<Vec<String>, String> {
        let Some(value) = self.get(name) else {
            return Ok(Vec::new());
        };
        let items = (value.as_array()).ok_or_else(|| self.mismatch(name, value, "[]string"))?;
        (items.iter())
            .map(|item| match item {
                Value::Null => Ok(String::new()),
                Value::String(text) => Ok(text.clone()),
                other => Err(self.mismatch(name, other, "string")),
            })
            .collect()
    }

    /// A `map[string]string`; a `null` value is `""`.
    pub fn string_map(&self, name: &str) -> Result<BTreeMap<String, String>, String> {
        let Some(value) = self.get(name) else {
            return Ok(BTreeMap::new());
        };
        let object =
            (value.as_object()).ok_or_else(|| self.mismatch(name, value, "map[string]string"))?;
        (object.iter())
            .map(|(key, item)| match item {
                Value::Null => Ok((key.clone(), String::new())),
                Value::String(text) => Ok((key.clone(), text.clone())),
                other => Err(self.mismatch(name, other, "string")),
            })
            .collect()
    }

    /// A `map[string][]string` (HTTP check headers).
    pub fn string_lists(&self, name: &str) -> Result<BTreeMap<String, Vec<String>>, String> {
        let Some(value) = self.get(name) else {
            return Ok(BTreeMap::new());
        };
        let object =
            (value.as_object()).ok_or_else(|| self.mismatch(name, value, "map[string][]string"))?;
        let mut out = BTreeMap::new();
        for (key, item) in object {
            let list = match item {
                Value::Null => Vec::new(),
                Value::Array(items) => (items.iter())
                    .map(|item| match item {
                        Value::Null => Ok(String::new()),
                        Value::String(text) => Ok(text.clone()),
                        other => Err(self.mismatch(name, other, "string")),
                    })
                    .collect::<Result<_, _>>()?,
                other => return Err(self.mismatch(name, other, "[]string")),
            };
            out.insert(key.clone(), list);
        }
        Ok(out)
    }

    /// A duration, as Consul reads one: Go text or a number of nanoseconds; 0 when absent.
    pub fn nanos(&self, name: &str) -> Result<i64, String> {
        match self.get(name) {
            None => Ok(0),
            Some(Value::String(text)) => parse_go_duration(text),
            Some(Value::Number(number)) => (number.as_i64())
                .or_else(|| number.as_f64().map(|ns| ns as i64))
                .ok_or_else(|| self.mismatch(name, &Value::Number(number.clone()), "Duration")),
            Some(other) => Err(self.mismatch(name, other, "time.Duration")),
        }
    }

    /// The elements of an array field (`null` elements kept: the caller decides).
    pub fn array(&self, name: &str, go_type: &str) -> Result<&'a [Value], String> {
        match self.get(name) {
            None => Ok(&[]),
            Some(Value::Array(items)) => Ok(items),
            Some(other) => Err(self.mismatch(name, other, go_type)),
        }
    }

    /// An object field that is only checked to be one (its content is not used).
    pub fn object(&self, name: &str, go_type: &str) -> Result<Option<&'a Value>, String> {
        match self.get(name) {
            None => Ok(None),
            Some(value @ Value::Object(_)) => Ok(Some(value)),
            Some(other) => Err(self.mismatch(name, other, go_type)),
        }
    }
}

/// Go's zero value test: `null`, `""`, `false`, `0`, and (leniently) `[]` and `{}`.
fn is_zero(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(value) => !value,
        Value::Number(number) => number.as_f64() == Some(0.0),
        Value::String(text) => text.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(object) => object.is_empty(),
    }
}

/// How Go's mismatch texts name a JSON value.
fn kind(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(_) => "bool".to_owned(),
        Value::Number(number) => format!("number {number}"),
        Value::String(_) => "string".to_owned(),
        Value::Array(_) => "array".to_owned(),
        Value::Object(_) => "object".to_owned(),
    }
}

/// Go's `%q` of `text`: double-quoted, with quotes, backslashes and control characters
/// escaped.
pub fn go_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 && c.is_control() => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `time.ParseDuration`, in nanoseconds, with Go's error texts.
pub fn parse_go_duration(text: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {}", go_quote(text));
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let (whole, tail) = rest.split_at(digits(rest));
        let (fraction, tail) = match tail.strip_prefix('.') {
            Some(after) => after.split_at(digits(after)),
            None => ("", tail),
        };
        if whole.is_empty() && fraction.is_empty() {
            return Err(invalid());
        }
        let unit_len = (tail.find(|c: char| c == '.' || c.is_ascii_digit())).unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let scale: i128 = match unit {
            "" => return Err(format!("time: missing unit in duration {}", go_quote(text))),
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            other => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    go_quote(other),
                    go_quote(text)
                ))
            }
        };
        let whole: i128 = match whole {
            "" => 0,
            digits => digits.parse().map_err(|_| invalid())?,
        };
        // Digits past the 18th cannot change a nanosecond count that fits an i64.
        let fraction = &fraction[..fraction.len().min(18)];
        let part = match fraction {
            "" => 0,
            digits => {
                digits.parse::<i128>().map_err(|_| invalid())? * scale
                    / 10i128.pow(digits.len() as u32)
            }
        };
        total = (whole.checked_mul(scale))
            .and_then(|ns| ns.checked_add(part))
            .and_then(|ns| ns.checked_add(total))
            .filter(|ns| *ns <= i64::MAX as i128)
            .ok_or_else(invalid)?;
        rest = next;
    }
    Ok(if negative { -total } else { total } as i64)
}

/// Go's `time.Duration.String` (`10s`, `1m30s`, `1.5s`, `500ms`, `0s`).
pub fn format_go_duration(duration: Duration) -> String {
    let ns = duration.as_nanos();
    // `value` in units of 10^-`decimals`, written with its fraction's trailing zeros cut.
    let fixed = |value: u128, decimals: u32| {
        let unit = 10u128.pow(decimals);
        let fraction = format!("{:0width$}", value % unit, width = decimals as usize);
        match fraction.trim_end_matches('0') {
            "" => format!("{}", value / unit),
            fraction => format!("{}.{fraction}", value / unit),
        }
    };
    match ns {
        0 => "0s".to_owned(),
        ns if ns < 1_000 => format!("{ns}ns"),
        ns if ns < 1_000_000 => format!("{}µs", fixed(ns, 3)),
        ns if ns < 1_000_000_000 => format!("{}ms", fixed(ns, 6)),
        ns => {
            let (hours, minutes) = (ns / 3_600_000_000_000, ns / 60_000_000_000 % 60);
            let seconds = fixed(ns % 60_000_000_000, 9);
            match (hours, minutes) {
                (0, 0) => format!("{seconds}s"),
                (0, m) => format!("{m}m{seconds}s"),
                (h, m) => format!("{h}h{m}m{seconds}s"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const FIELDS: &[Field] = &[("Name", &[]), ("TLSSkipVerify", &["tls_skip_verify"])];

    #[test]
    fn keys_match_case_insensitively_with_aliases_and_nulls_are_absent() {
        let body = json!({"name": "web", "tls_skip_verify": true});
        let fields = Fields::of(&body, "T", "T", FIELDS).unwrap();
        assert_eq!(fields.string("Name").unwrap().as_deref(), Some("web"));
        assert!(fields.bool("TLSSkipVerify").unwrap());
        let nulls = json!({"NAME": null, "TlsSkipVerify": null});
        let fields = Fields::of(&nulls, "T", "T", FIELDS).unwrap();
        assert_eq!(fields.string("Name").unwrap(), None);
        assert!(fields.is_zero());
    }

    #[test]
    fn unknown_keys_and_wrong_types_get_gos_texts() {
        let body = json!({"Name": "web", "ID": "x"});
        let err = Fields::of(&body, "T", "T", FIELDS).err().unwrap();
        assert_eq!(err, r#"json: unknown field "ID""#);
        let body = json!({"Name": 5});
        let fields = Fields::of(&body, "ServiceDefinition", "T", FIELDS).unwrap();
        assert_eq!(
            fields.string("Name").unwrap_err(),
            "json: cannot unmarshal number 5 into Go struct field ServiceDefinition.Name of type string"
        );
        let array = json!([]);
        let err = Fields::of(
            &array,
            "ServiceDefinition",
            "structs.ServiceDefinition",
            FIELDS,
        );
        assert_eq!(
            err.err().unwrap(),
            "json: cannot unmarshal array into Go value of type structs.ServiceDefinition"
        );
    }

    #[test]
    fn bodies() {
        assert_eq!(parse(b"").unwrap_err(), "EOF");
        assert_eq!(parse(b" \n").unwrap_err(), "EOF");
        assert_eq!(parse(br#"{"Name":"#).unwrap_err(), "unexpected EOF");
        assert!(parse(b"{").is_err());
        assert_eq!(parse(b"null").unwrap(), Value::Null);
    }

    #[test]
    fn durations_parse_as_go_does() {
        let ok = |text: &str| parse_go_duration(text).unwrap();
        assert_eq!(ok("10s"), 10_000_000_000);
        assert_eq!(ok("1h30m"), 5_400_000_000_000);
        assert_eq!(ok("1.5s"), 1_500_000_000);
        assert_eq!(ok(".5ms"), 500_000);
        assert_eq!(ok("250µs"), 250_000);
        assert_eq!(ok("-1s"), -1_000_000_000);
        assert_eq!(ok("0"), 0);
        assert_eq!(
            parse_go_duration("").unwrap_err(),
            r#"time: invalid duration """#
        );
        assert_eq!(
            parse_go_duration("soon").unwrap_err(),
            r#"time: invalid duration "soon""#
        );
        assert_eq!(
            parse_go_duration("10").unwrap_err(),
            r#"time: missing unit in duration "10""#
        );
        assert_eq!(
            parse_go_duration("10x").unwrap_err(),
            r#"time: unknown unit "x" in duration "10x""#
        );
        assert!(parse_go_duration("99999999999h").is_err());
        let body = json!({"Name": 10_000_000_000u64});
        let fields = Fields::of(&body, "T", "T", FIELDS).unwrap();
        assert_eq!(fields.nanos("Name").unwrap(), 10_000_000_000);
    }

    #[test]
    fn durations_print_as_go_does() {
        let text = |ns: u64| format_go_duration(Duration::from_nanos(ns));
        assert_eq!(text(0), "0s");
        assert_eq!(text(10_000_000_000), "10s");
        assert_eq!(text(90_000_000_000), "1m30s");
        assert_eq!(text(3_600_000_000_000), "1h0m0s");
        assert_eq!(text(1_500_000_000), "1.5s");
        assert_eq!(text(500_000_000), "500ms");
        assert_eq!(text(1_500), "1.5µs");
        assert_eq!(text(7), "7ns");
    }

    #[test]
    fn quoting() {
        assert_eq!(go_quote("a\"b\\c\n"), r#""a\"b\\c\n""#);
        assert_eq!(go_quote("é"), "\"é\"");
    }
}
