//! Reading a JSON object the way Consul decodes request bodies: field names match without
//! regard to case or underscores (`Name`, `name`, `enable_tag_override` and
//! `EnableTagOverride` all work, as with Consul's mapstructure decoding and snake_case
//! translation), `null` counts as absent, unknown fields are ignored, and a field of the
//! wrong type is a decode error (Consul's `Request decode failed: ...`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::duration;

/// A JSON object whose fields are looked up like Consul's decoder does.
pub struct Fields<'a>(&'a Map<String, Value>);

/// Folds a field name to the form Consul's decoder compares: lower case, no `_` or `-`.
fn fold(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

impl<'a> Fields<'a> {
    /// Wraps `value`, which must be an object (`what` names it in the error).
    pub fn of(value: &'a Value, what: &str) -> Result<Fields<'a>, String> {
        match value {
            Value::Object(map) => Ok(Fields(map)),
            other => Err(format!("{what}: expected an object, got {}", kind(other))),
        }
    }

    /// The value of the first field whose folded name is one of `names`; `null` is absent.
    pub fn get(&self, names: &[&str]) -> Option<&'a Value> {
        let wanted: Vec<String> = names.iter().map(|n| fold(n)).collect();
        self.0
            .iter()
            .find(|(key, value)| !value.is_null() && wanted.contains(&fold(key)))
            .map(|(_, value)| value)
    }

    /// Whether no field at all is set (Consul skips an empty `Check` object).
    pub fn is_empty(&self) -> bool {
        self.0.values().all(Value::is_null)
    }

    pub fn string(&self, names: &[&str]) -> Result<Option<String>, String> {
        match self.get(names) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(wrong(names[0], "a string", other)),
        }
    }

    pub fn boolean(&self, names: &[&str]) -> Result<bool, String> {
        match self.get(names) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(wrong(names[0], "a boolean", other)),
        }
    }

    pub fn integer(&self, names: &[&str]) -> Result<Option<i64>, String> {
        match self.get(names) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| format!("'{}' expected an integer, got {n}", names[0])),
            Some(other) => Err(wrong(names[0], "an integer", other)),
        }
    }

    pub fn strings(&self, names: &[&str]) -> Result<Vec<String>, String> {
        match self.get(names) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(wrong(names[0], "a list of strings", other)),
                })
                .collect(),
            Some(other) => Err(wrong(names[0], "a list of strings", other)),
        }
    }

    pub fn string_map(&self, names: &[&str]) -> Result<BTreeMap<String, String>, String> {
        match self.get(names) {
            None => Ok(BTreeMap::new()),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(key, value)| match value {
                    Value::String(s) => Ok((key.clone(), s.clone())),
                    other => Err(wrong(names[0], "a map of strings", other)),
                })
                .collect(),
            Some(other) => Err(wrong(names[0], "a map of strings", other)),
        }
    }

    /// A Go duration: a string such as `"10s"`, or a number of nanoseconds (Consul's
    /// decode hook accepts both).
    pub fn duration(&self, names: &[&str]) -> Result<Option<Duration>, String> {
        match self.get(names) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => duration::parse(s).map(Some),
            Some(Value::Number(n)) => {
                Ok(Some(Duration::from_nanos(n.as_u64().unwrap_or_default())))
            }
            Some(other) => Err(wrong(names[0], "a duration", other)),
        }
    }

    /// A nested object, or `None` when absent.
    pub fn object(&self, names: &[&str]) -> Result<Option<Fields<'a>>, String> {
        self.get(names).map(|v| Fields::of(v, names[0])).transpose()
    }

    /// The entries of a nested object, each value as an object.
    pub fn objects_by_key(&self, names: &[&str]) -> Result<Vec<(String, Fields<'a>)>, String> {
        match self.get(names) {
            None => Ok(Vec::new()),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(key, value)| Ok((key.clone(), Fields::of(value, names[0])?)))
                .collect(),
            Some(other) => Err(wrong(names[0], "an object", other)),
        }
    }

    /// The items of a nested array, each as an object.
    pub fn object_list(&self, names: &[&str]) -> Result<Vec<Fields<'a>>, String> {
        match self.get(names) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .filter(|item| !item.is_null())
                .map(|item| Fields::of(item, names[0]))
                .collect(),
            Some(other) => Err(wrong(names[0], "a list of objects", other)),
        }
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn wrong(field: &str, expected: &str, got: &Value) -> String {
    format!("'{field}' expected {expected}, got {}", kind(got))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_match_without_case_or_underscores() {
        let body = json!({"name": "web", "enable_tag_override": true, "Port": null});
        let fields = Fields::of(&body, "body").unwrap();
        assert_eq!(fields.string(&["Name"]).unwrap().as_deref(), Some("web"));
        assert!(fields.boolean(&["EnableTagOverride"]).unwrap());
        assert_eq!(fields.integer(&["Port"]).unwrap(), None);
    }

    #[test]
    fn wrong_types_are_errors() {
        let body = json!({"Port": "80", "Tags": "a"});
        let fields = Fields::of(&body, "body").unwrap();
        assert!(fields.integer(&["Port"]).is_err());
        assert!(fields.strings(&["Tags"]).is_err());
    }
}
