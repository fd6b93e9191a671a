//! The flat document form of a [`SourceConfig`] (a `[[sources]]` table, or the JSON body
//! the API takes and shows): reading it with errors that name the field at fault
//! ([`SourceConfigError`]), and writing it with secrets masked.
//!
//! Reading splits the table in two by key: the common keys go to [`SourceCommon`], the
//! rest to the adapter `type` selects, and each part is read with its path tracked, so
//! a wrong value deep inside (`tls.ca`) is named as precisely as a typo at the top.

use std::fmt;

use serde::de::{DeserializeOwned, Error as _};
use serde::ser::{Error as _, SerializeMap};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::common::{check_id, COMMON_KEYS};
use super::{AdapterConfig, SourceCommon, SourceConfig, ADAPTER_TYPES};
use crate::ConnectorError;

/// Why a source document was refused, and which field is at fault when one is: a path
/// such as `type`, `tokn`, `endpoints[0]` or `tls.ca`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceConfigError {
    /// Path of the offending field; `None` when the document as a whole is wrong.
    pub field: Option<String>,
    /// What is wrong, without the field's path.
    pub message: String,
}

impl SourceConfigError {
    fn at(field: impl Into<String>, message: impl Into<String>) -> SourceConfigError {
        SourceConfigError {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// Splits a validation message of the form "`path` what" or "`path`: what".
    fn from_message(message: String) -> SourceConfigError {
        let split = message
            .strip_prefix('`')
            .and_then(|rest| rest.split_once('`'))
            .filter(|(field, _)| is_path(field));
        match split {
            Some((field, rest)) => {
                let rest = rest.trim_start_matches(':').trim_start();
                SourceConfigError::at(field, rest)
            }
            None => SourceConfigError {
                field: None,
                message,
            },
        }
    }
}

impl fmt::Display for SourceConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "`{field}`: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for SourceConfigError {}

impl From<ConnectorError> for SourceConfigError {
    fn from(err: ConnectorError) -> SourceConfigError {
        match err {
            ConnectorError::Config(message) => SourceConfigError::from_message(message),
            other => SourceConfigError {
                field: None,
                message: other.to_string(),
            },
        }
    }
}

/// Field paths as serde_path_to_error and the validations write them.
fn is_path(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-[]".contains(&b))
}

impl SourceConfig {
    /// Reads and validates a source document (the API's JSON body). The error names the
    /// field at fault. An id the server reserves (`native`) is not refused here.
    pub fn from_json(value: Value) -> Result<SourceConfig, SourceConfigError> {
        let config = parse(value)?;
        config.validate()?;
        Ok(config)
    }
}

/// Reads the document's types without validating it (config files validate later, with
/// every source's position known).
fn parse(value: Value) -> Result<SourceConfig, SourceConfigError> {
    let Value::Object(mut fields) = value else {
        return Err(SourceConfigError {
            field: None,
            message: "a source must be an object of keys (`id`, `type`, ...)".to_owned(),
        });
    };
    let kind = match fields.remove("type") {
        Some(Value::String(kind)) => kind,
        Some(_) => return Err(SourceConfigError::at("type", "must be a string")),
        None => {
            return Err(SourceConfigError::at(
                "type",
                format!("is required (one of {})", known_types()),
            ))
        }
    };
    let mut common = Map::new();
    for key in COMMON_KEYS {
        if let Some(value) = fields.remove(*key) {
            common.insert((*key).to_owned(), value);
        }
    }
    let common: SourceCommon = read_part(Value::Object(common))?;
    check_id(&common.id).map_err(SourceConfigError::from_message)?;
    let rest = Value::Object(fields);
    let adapter = match kind.as_str() {
        #[cfg(feature = "consul")]
        "consul" => AdapterConfig::Consul(read_part(rest).map_err(or_common_key)?),
        #[cfg(feature = "etcd")]
        "etcd" => AdapterConfig::Etcd(read_part(rest).map_err(or_common_key)?),
        #[cfg(feature = "nacos")]
        "nacos" => AdapterConfig::Nacos(read_part(rest).map_err(or_common_key)?),
        other if ADAPTER_TYPES.contains(&other) => {
            let _ = rest;
            return Err(SourceConfigError::at(
                "type",
                format!("source type `{other}` is not available in this build"),
            ));
        }
        other => {
            return Err(SourceConfigError::at(
                "type",
                format!(
                    "unknown source type `{other}`; expected one of {}",
                    known_types()
                ),
            ))
        }
    };
    Ok(SourceConfig { common, adapter })
}

/// An unknown top-level key may be a misspelt common key, which the adapter's list of
/// its own keys does not show.
#[cfg(any(feature = "etcd", feature = "consul", feature = "nacos"))]
fn or_common_key(mut err: SourceConfigError) -> SourceConfigError {
    let top_level = err
        .field
        .as_deref()
        .is_some_and(|f| !f.contains(['.', '[']));
    if top_level && err.message.starts_with("unknown key") {
        let common: Vec<String> = COMMON_KEYS.iter().map(|k| format!("`{k}`")).collect();
        err.message = format!("{}; or one of {}", err.message, common.join(", "));
    }
    err
}

fn known_types() -> String {
    let quoted: Vec<String> = ADAPTER_TYPES.iter().map(|t| format!("`{t}`")).collect();
    quoted.join(", ")
}

/// Reads one part of the document, naming the field serde failed on.
fn read_part<T: DeserializeOwned>(value: Value) -> Result<T, SourceConfigError> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let message = err.into_inner().to_string();
        serde_error(&path, message)
    })
}

/// serde names a missing or unknown field in its message; the path is the map that
/// should hold it (or, for an unknown one, may already end with its name).
fn serde_error(path: &str, message: String) -> SourceConfigError {
    let below = |name: &str| match path {
        "." | "" => name.to_owned(),
        _ if path == name || path.ends_with(&format!(".{name}")) => path.to_owned(),
        _ => format!("{path}.{name}"),
    };
    let named = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|rest| rest.split_once('`'))
            .map(|(name, rest)| (name.to_owned(), rest.to_owned()))
    };
    if let Some((name, _)) = named("missing field `") {
        return SourceConfigError::at(below(&name), "is required");
    }
    if let Some((name, rest)) = named("unknown field `") {
        return SourceConfigError::at(below(&name), format!("unknown key{rest}"));
    }
    match path {
        "." | "" => SourceConfigError {
            field: None,
            message,
        },
        _ => SourceConfigError::at(path, message),
    }
}

/// Config files read sources through this (the same split as [`SourceConfig::from_json`],
/// without the validation, which `Config` runs knowing the source's position).
impl<'de> Deserialize<'de> for SourceConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let fields = Map::<String, Value>::deserialize(deserializer)?;
        parse(Value::Object(fields)).map_err(D::Error::custom)
    }
}

impl Serialize for SourceConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Document<'a> {
            id: &'a str,
            #[serde(rename = "type")]
            kind: &'static str,
            #[serde(flatten)]
            common: CommonRest,
            #[serde(flatten)]
            adapter: &'a AdapterConfig,
        }
        let common = match serde_json::to_value(&self.common).map_err(S::Error::custom)? {
            Value::Object(common) => common,
            _ => return Err(S::Error::custom("source common fields are not a map")),
        };
        Document {
            id: &self.common.id,
            kind: self.type_name(),
            common: CommonRest(common),
            adapter: &self.adapter,
        }
        .serialize(serializer)
    }
}

/// The serialized common fields but `id`, in [`COMMON_KEYS`] order.
struct CommonRest(Map<String, Value>);

impl Serialize for CommonRest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for key in &COMMON_KEYS[1..] {
            if let Some(value) = self.0.get(*key) {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn refused(document: Value) -> SourceConfigError {
        match SourceConfig::from_json(document.clone()) {
            Ok(config) => panic!("{document} was accepted: {config:?}"),
            Err(err) => err,
        }
    }

    fn etcd_document() -> Value {
        json!({
            "id": "etcd-a",
            "type": "etcd",
            "priority": 10,
            "namespace": "prod",
            "max_stale": "30s",
            "include": ["pay-*"],
            "service_rename": { "orders": "orders-svc" },
            "endpoints": ["https://10.0.0.1:2379"],
            "username": "root",
            "password": "hunter2",
            "tls": { "ca": "/ca.pem", "cert": "/c.pem", "key": "/k.pem" },
        })
    }

    #[cfg(feature = "etcd")]
    #[test]
    fn serializes_flat_with_id_and_type_first_and_defaults_filled_in() {
        let config = SourceConfig::from_json(etcd_document()).unwrap();
        let text = serde_json::to_string(&config).unwrap();
        assert!(
            text.starts_with(r#"{"id":"etcd-a","type":"etcd","priority":10,"namespace":"prod""#),
            "{text}"
        );
        let shown: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(shown["prefix"], "/services/");
        assert_eq!(shown["write_lease_ttl"], "30s");
        assert_eq!(shown["write_persistent"], false);
        assert_eq!(shown["empty_confirm"], "10s");
        assert_eq!(shown["include"], json!(["pay-*"]));
        assert_eq!(shown["service_rename"]["orders"], "orders-svc");
        assert!(shown.get("group").is_none(), "{shown}");
    }

    #[test]
    fn secrets_are_masked() {
        let mut documents = Vec::new();
        if cfg!(feature = "etcd") {
            documents.push((etcd_document(), vec!["/password", "/tls/key"]));
        }
        if cfg!(feature = "consul") {
            let consul = json!({
                "id": "c", "type": "consul", "endpoints": ["https://a:8501"],
                "token": "s3cr3t-token",
                "tls": { "ca": "/ca.pem", "cert": "/c.pem", "key": "/k.pem" },
            });
            documents.push((consul, vec!["/token", "/tls/key"]));
        }
        if cfg!(feature = "nacos") {
            let nacos = json!({
                "id": "n", "type": "nacos", "endpoints": ["http://a:8848"],
                "username": "nacos", "password": "hunter2",
            });
            documents.push((nacos, vec!["/password"]));
        }
        for (document, secrets) in documents {
            let config = SourceConfig::from_json(document.clone()).unwrap();
            let shown = serde_json::to_value(&config).unwrap();
            for pointer in secrets {
                assert_eq!(shown.pointer(pointer), Some(&json!("***")), "{shown}");
            }
            let text = shown.to_string();
            assert!(
                !text.contains("hunter2") && !text.contains("s3cr3t") && !text.contains("/k.pem"),
                "{text}"
            );
            assert_eq!(shown["tls"].get("ca"), document["tls"].get("ca"));
        }
    }

    #[cfg(feature = "etcd")]
    #[test]
    fn documents_round_trip_once_secrets_are_restored() {
        let original = SourceConfig::from_json(etcd_document()).unwrap();
        let mut shown = serde_json::to_value(&original).unwrap();
        assert_ne!(SourceConfig::from_json(shown.clone()).unwrap(), original);
        shown["password"] = json!("hunter2");
        shown["tls"]["key"] = json!("/k.pem");
        assert_eq!(SourceConfig::from_json(shown).unwrap(), original);
        // What config files go through.
        let read: SourceConfig = serde_json::from_value(etcd_document()).unwrap();
        assert_eq!(read, original);
    }

    #[cfg(feature = "consul")]
    #[test]
    fn errors_name_the_field() {
        let consul = |extra: Value| {
            let mut document = json!({ "id": "c", "type": "consul", "endpoints": ["http://a:1"] });
            for (key, value) in extra.as_object().unwrap() {
                match value {
                    Value::Null => document.as_object_mut().unwrap().remove(key),
                    _ => document
                        .as_object_mut()
                        .unwrap()
                        .insert(key.clone(), value.clone()),
                };
            }
            document
        };
        let cases = [
            (consul(json!({ "type": "zookeeper" })), "type", "zookeeper"),
            (consul(json!({ "type": null })), "type", "required"),
            (consul(json!({ "type": 3 })), "type", "string"),
            (consul(json!({ "tokn": "x" })), "tokn", "unknown key"),
            (consul(json!({ "priorty": 1 })), "priorty", "unknown key"),
            (
                consul(json!({ "endpoints": null })),
                "endpoints",
                "required",
            ),
            (consul(json!({ "id": null })), "id", "required"),
            (consul(json!({ "id": "a b" })), "id", "1-64"),
            (consul(json!({ "id": "" })), "id", "1-64"),
            (
                consul(json!({ "priority": "high" })),
                "priority",
                "invalid type",
            ),
            (consul(json!({ "priority": -1 })), "priority", "0 or more"),
            (consul(json!({ "max_stale": "soon" })), "max_stale", "soon"),
            (consul(json!({ "wait": "soon" })), "wait", "soon"),
            (consul(json!({ "wait": "11m" })), "wait", "10m"),
            (
                consul(json!({ "endpoints": "http://a:1" })),
                "endpoints",
                "sequence",
            ),
            (
                consul(json!({ "endpoints": [1] })),
                "endpoints[0]",
                "invalid type",
            ),
            (
                consul(json!({ "endpoints": [] })),
                "endpoints",
                "at least one",
            ),
            (
                consul(json!({ "endpoints": ["a:1"] })),
                "endpoints[0]",
                "http://",
            ),
            (
                consul(json!({ "tls": { "key": "/k" } })),
                "tls.ca",
                "required",
            ),
            (
                consul(json!({ "tls": { "ca": 1 } })),
                "tls.ca",
                "invalid type",
            ),
            (
                consul(json!({ "tls": { "ca": "/ca", "crt": "/c" } })),
                "tls.crt",
                "unknown key",
            ),
            (
                consul(
                    json!({ "endpoints": ["https://a:1"], "tls": { "ca": "/ca", "cert": "/c" } }),
                ),
                "tls.cert",
                "needs `tls.key`",
            ),
            (consul(json!({ "include": ["a b"] })), "include[0]", "glob"),
            (consul(json!({ "include": "a" })), "include", "sequence"),
            (
                consul(json!({ "service_rename": { "o": "" } })),
                "service_rename.o",
                "1-128",
            ),
            (
                consul(json!({ "service_prefix": "a/" })),
                "service_prefix",
                "1-128",
            ),
            (
                consul(json!({ "namespace": 1 })),
                "namespace",
                "invalid type",
            ),
        ];
        for (document, field, words) in cases {
            let err = refused(document.clone());
            assert_eq!(err.field.as_deref(), Some(field), "{document}: {err}");
            assert!(err.message.contains(words), "{document}: {err}");
            assert_eq!(err.to_string(), format!("`{field}`: {}", err.message));
        }
        let err = refused(json!(["not", "a", "table"]));
        assert_eq!(err.field, None, "{err}");
        let err = refused(consul(json!({ "type": "zookeeper" })));
        assert!(err.message.contains("`etcd`, `consul`, `nacos`"), "{err}");
        let native = SourceConfig::from_json(consul(json!({ "id": "native" }))).unwrap();
        assert_eq!(native.id(), "native");
    }

    #[test]
    fn validation_messages_split_into_field_and_message() {
        let split = |message: &str| SourceConfigError::from(ConnectorError::Config(message.into()));
        assert_eq!(
            split("`endpoints[1]` has an invalid host"),
            SourceConfigError::at("endpoints[1]", "has an invalid host")
        );
        assert_eq!(
            split("`tls.cert`: cannot read /x: gone"),
            SourceConfigError::at("tls.cert", "cannot read /x: gone")
        );
        assert_eq!(split("no field here").field, None);
        assert_eq!(split("`a b` is no path").field, None);
    }
}
