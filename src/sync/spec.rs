//! A sync job's definition: `[[syncs]]` in the config file and the body of
//! `/api/v1/syncs`. Checked on its own here; whether its sources exist and its target
//! can be written is checked against the running federation ([`super::Syncs`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::catalog::glob;
use crate::duration::serde_text;
use crate::vocab::NATIVE_SOURCE;

/// Writes per second when a job sets no `rate_limit`.
pub const DEFAULT_RATE_LIMIT: f64 = 500.0;

/// The slowest and fastest a job may write: one write per 10 s keeps a stop (which
/// waits for the current slot) prompt. `SyncSpec`'s schema repeats them (a test checks).
const MIN_RATE_LIMIT: f64 = 0.1;
const MAX_RATE_LIMIT: f64 = 1_000_000.0;

/// One sync job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncSpec {
    /// Unique id (`[A-Za-z0-9._-]`, at most 64).
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$", example = "to-native")]
    pub id: String,
    /// Source ids to copy from (`native` is the built-in registry), or `"*"`: every
    /// source but the target, merged.
    #[serde(default)]
    #[schema(schema_with = crate::vocab::schemas::source_ids)]
    pub from: From,
    /// Service-name globs (`*`, `?`) of the services copied: one string or a list.
    #[serde(
        default = "every_service",
        deserialize_with = "switchboard_connectors::one_or_many"
    )]
    #[schema(schema_with = crate::vocab::schemas::globs)]
    pub services: Vec<String>,
    /// The source written into (an etcd, Consul or Nacos source), or `native`.
    #[schema(min_length = 1, example = "native")]
    pub to: String,
    /// Delete from the target what the job wrote once its origin is gone.
    #[serde(default = "yes")]
    pub delete: bool,
    /// Most writes and deletes per second.
    #[serde(default = "default_rate_limit")]
    #[schema(minimum = 0.1, maximum = 1000000.0)]
    pub rate_limit: f64,
    /// How long a service must be quiet before its changes are written (coalescing).
    #[serde(default = "default_debounce", with = "serde_text")]
    #[schema(value_type = String, example = "500ms")]
    pub debounce: Duration,
}

/// Where a job reads from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum From {
    /// Every source except the target.
    #[default]
    All,
    /// These sources.
    Sources(Vec<String>),
}

impl From {
    /// Whether instances of `source` are copied by a job writing into `target`.
    pub fn includes(&self, source: &str, target: &str) -> bool {
        source != target
            && match self {
                From::All => true,
                From::Sources(ids) => ids.iter().any(|id| id == source),
            }
    }
}

impl Serialize for From {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            From::All => serializer.serialize_str("*"),
            From::Sources(ids) => ids.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for From {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let ids = switchboard_connectors::one_or_many(deserializer)?;
        if ids.len() == 1 && ids[0] == "*" {
            return Ok(From::All);
        }
        Ok(From::Sources(ids))
    }
}

fn every_service() -> Vec<String> {
    vec!["*".to_owned()]
}

fn yes() -> bool {
    true
}

fn default_rate_limit() -> f64 {
    DEFAULT_RATE_LIMIT
}

fn default_debounce() -> Duration {
    Duration::from_millis(500)
}

/// A definition that does not hold, with the field at fault.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecError {
    pub field: Option<String>,
    pub message: String,
}

impl SpecError {
    pub fn at(field: impl Into<String>, message: impl Into<String>) -> SpecError {
        SpecError {
            field: Some(field.into()),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for SpecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{field}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl SyncSpec {
    /// Reads and checks a JSON definition; the error names the field at fault.
    pub fn from_json(value: Value) -> Result<SyncSpec, SpecError> {
        let spec: SyncSpec = serde_path_to_error::deserialize(value).map_err(|err| {
            let path = err.path().to_string();
            let message = err.into_inner().to_string();
            let field = match path.as_str() {
                "." | "" => unknown_or_missing_field(&message),
                _ => Some(path),
            };
            SpecError { field, message }
        })?;
        spec.validate()?;
        Ok(spec)
    }

    /// Checks everything that needs no other part of the server.
    pub fn validate(&self) -> Result<(), SpecError> {
        check_id(&self.id).map_err(|message| SpecError::at("id", message))?;
        if let From::Sources(ids) = &self.from {
            if ids.is_empty() {
                return Err(SpecError::at("from", "names no source (use \"*\" for all)"));
            }
            for (i, id) in ids.iter().enumerate() {
                if id == &self.to {
                    return Err(SpecError::at(
                        format!("from[{i}]"),
                        format!(
                            "`{id}` is the target too; a job never copies a source into itself"
                        ),
                    ));
                }
            }
        }
        if self.to.is_empty() || self.to == "*" {
            return Err(SpecError::at("to", "must name one source id or `native`"));
        }
        glob::check_globs(&self.services)
            .map_err(|(field, message)| SpecError::at(field, message))?;
        if !(MIN_RATE_LIMIT..=MAX_RATE_LIMIT).contains(&self.rate_limit) {
            let message =
                format!("must be between {MIN_RATE_LIMIT} and {MAX_RATE_LIMIT} writes per second");
            return Err(SpecError::at("rate_limit", message));
        }
        if self.debounce > Duration::from_secs(3600) {
            return Err(SpecError::at("debounce", "must not exceed 1h"));
        }
        Ok(())
    }

    /// Whether the job copies service `name`.
    pub fn covers(&self, name: &str) -> bool {
        glob::any_matches(&self.services, name)
    }

    /// Whether the target is the built-in registry.
    pub fn to_native(&self) -> bool {
        self.to == NATIVE_SOURCE
    }
}

/// serde names a missing or unknown field only in its message.
fn unknown_or_missing_field(message: &str) -> Option<String> {
    let quoted = message.split('`').nth(1)?;
    Some(quoted.to_owned())
}

fn check_id(id: &str) -> Result<(), String> {
    if switchboard_connectors::is_id(id) {
        Ok(())
    } else {
        Err(format!("`{id}` is not a sync id ([A-Za-z0-9._-], 1 to 64)"))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_schema_states_the_rate_limits() {
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(SyncSpec::schema()).unwrap();
        let rate = &schema["properties"]["rate_limit"];
        assert_eq!(rate["minimum"], MIN_RATE_LIMIT);
        assert_eq!(rate["maximum"], MAX_RATE_LIMIT);
    }

    #[test]
    fn defaults_fill_in_and_star_means_every_source() {
        let spec = SyncSpec::from_json(json!({"id": "j", "to": "nacos"})).unwrap();
        assert_eq!(spec.from, From::All);
        assert_eq!(spec.services, vec!["*"]);
        assert!(spec.delete);
        assert_eq!(spec.rate_limit, DEFAULT_RATE_LIMIT);
        assert_eq!(spec.debounce, Duration::from_millis(500));
        let shown = serde_json::to_value(&spec).unwrap();
        assert_eq!(shown["from"], "*");
        assert_eq!(shown["debounce"], "500ms");
        let listed = SyncSpec::from_json(json!({"id": "j", "to": "n", "from": "etcd"})).unwrap();
        assert_eq!(listed.from, From::Sources(vec!["etcd".into()]));
        assert!(listed.from.includes("etcd", "n"));
        assert!(!From::All.includes("n", "n"), "never the target itself");
    }

    #[test]
    fn bad_definitions_name_the_field() {
        let cases = [
            (json!({"to": "n"}), "id"),
            (json!({"id": "a b", "to": "n"}), "id"),
            (json!({"id": "j"}), "to"),
            (json!({"id": "j", "to": "*"}), "to"),
            (json!({"id": "j", "to": "n", "from": []}), "from"),
            (json!({"id": "j", "to": "n", "from": ["a", "n"]}), "from[1]"),
            (
                json!({"id": "j", "to": "n", "services": ["a/b"]}),
                "services[0]",
            ),
            (json!({"id": "j", "to": "n", "rate_limit": 0}), "rate_limit"),
            (
                json!({"id": "j", "to": "n", "rate_limit": 1e-20}),
                "rate_limit",
            ),
            (
                json!({"id": "j", "to": "n", "debounce": "soon"}),
                "debounce",
            ),
            (json!({"id": "j", "to": "n", "delete": "yes"}), "delete"),
            (json!({"id": "j", "to": "n", "color": "red"}), "color"),
        ];
        for (document, field) in cases {
            let err = SyncSpec::from_json(document.clone()).unwrap_err();
            assert_eq!(err.field.as_deref(), Some(field), "{document}: {err}");
        }
    }
}
