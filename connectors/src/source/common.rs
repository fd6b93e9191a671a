//! [`SourceCommon`]: the fields every source has whatever its type, their defaults, and
//! the checks on them. The name-mapping fields (`include`, `exclude`, `service_rename`,
//! `service_prefix`) are only declared and checked here; the server applies them.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::duration::serde_text;
use crate::{ConnectorError, DEFAULT_GROUP, DEFAULT_NAMESPACE};

/// Keys that belong to [`SourceCommon`] whatever the adapter, in the order a serialized
/// source shows them.
pub(super) const COMMON_KEYS: &[&str] = &[
    "id",
    "priority",
    "namespace",
    "group",
    "max_stale",
    "empty_confirm",
    "include",
    "exclude",
    "service_rename",
    "service_prefix",
];

/// The longest served service name a rename or prefix may produce on its own.
const MAX_NAME_LEN: usize = 128;

/// What every source has.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourceCommon {
    /// Unique id, 1-64 characters of `[A-Za-z0-9._-]`; shown in `sources` of instances.
    pub id: String,
    /// Higher wins when two sources report the same endpoint; 0 or more (default 0).
    #[serde(default)]
    pub priority: i32,
    /// Namespace to place this source's services in (default `public`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Group to place this source's services in (default `DEFAULT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// How long a down source's last view is served (stale) before it is dropped.
    /// Unset: served until the source comes back.
    #[serde(
        default,
        with = "serde_text::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_stale: Option<Duration>,
    /// How long an update that would empty a service is held for confirmation.
    #[serde(default = "default_empty_confirm", with = "serde_text")]
    pub empty_confirm: Duration,
    /// Services to federate, as globs over the name the source uses (`*` any run of
    /// characters, `?` one), like Consul's or Nacos's service list filters: `["pay-*"]`.
    /// Empty (the default): every service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Services never to federate, as globs over the source's name; wins over `include`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Source name → served name, for a service that is called differently in the
    /// registry it comes from (`{ "orders" = "orders-svc" }`). Exact names, no globs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub service_rename: BTreeMap<String, String>,
    /// Prepended to the name of every service not in `service_rename`, so two
    /// registries' `orders` can be served side by side (`"dc2-"` → `dc2-orders`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_prefix: Option<String>,
}

impl SourceCommon {
    /// A source with this id and every other field at its default.
    pub fn new(id: impl Into<String>) -> SourceCommon {
        SourceCommon {
            id: id.into(),
            priority: 0,
            namespace: None,
            group: None,
            max_stale: None,
            empty_confirm: default_empty_confirm(),
            include: Vec::new(),
            exclude: Vec::new(),
            service_rename: BTreeMap::new(),
            service_prefix: None,
        }
    }

    /// The namespace this source's services are placed in.
    pub fn placed_namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE)
    }

    /// The group this source's services are placed in.
    pub fn placed_group(&self) -> &str {
        self.group.as_deref().unwrap_or(DEFAULT_GROUP)
    }

    /// Checks the rules the types cannot express. The message starts with the field's
    /// path in backticks (`` `include[0]`: ... ``).
    pub fn validate(&self) -> Result<(), ConnectorError> {
        self.check().map_err(ConnectorError::Config)
    }

    fn check(&self) -> Result<(), String> {
        check_id(&self.id)?;
        if self.priority < 0 {
            return Err("`priority`: must be 0 or more".to_owned());
        }
        for (field, globs) in [("include", &self.include), ("exclude", &self.exclude)] {
            for (i, glob) in globs.iter().enumerate() {
                if !is_glob(glob) {
                    return Err(format!(
                        "`{field}[{i}]`: must be a service-name glob \
                         ([A-Za-z0-9._-] with * and ?)"
                    ));
                }
            }
        }
        for (from, to) in &self.service_rename {
            if !is_name(from) {
                return Err(format!(
                    "`service_rename`: source name `{from}` {NAME_RULE}"
                ));
            }
            if !is_name(to) {
                return Err(format!("`service_rename.{from}`: {NAME_RULE}"));
            }
        }
        if let Some(prefix) = &self.service_prefix {
            if !is_name(prefix) {
                return Err(format!(
                    "`service_prefix`: {NAME_RULE} (omit it for no prefix)"
                ));
            }
        }
        Ok(())
    }
}

fn default_empty_confirm() -> Duration {
    Duration::from_secs(10)
}

/// The id rule of sources (and of the server's other named things, such as sync jobs):
/// 1-64 characters of `[A-Za-z0-9._-]`.
pub fn is_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// The id rule; the message names the field.
pub(super) fn check_id(id: &str) -> Result<(), String> {
    if is_id(id) {
        Ok(())
    } else {
        Err("`id`: must be 1-64 characters of [A-Za-z0-9._-]".to_owned())
    }
}

const NAME_RULE: &str = "must be 1-128 characters of [A-Za-z0-9._-]";

/// A service name (or a part of one) as the federation serves it.
fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// A service-name glob: a name that may also hold `*` and `?`.
pub fn is_glob(glob: &str) -> bool {
    !glob.is_empty()
        && glob
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-*?".contains(&b))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(json: serde_json::Value) -> SourceCommon {
        serde_json::from_value(json).unwrap()
    }

    fn config_error(common: &SourceCommon) -> String {
        crate::config_checks::config_error(common.validate())
    }

    #[test]
    fn name_mapping_fields_default_to_no_mapping() {
        let common = parse(json!({ "id": "a" }));
        assert_eq!(common, SourceCommon::new("a"));
        assert!(common.include.is_empty() && common.exclude.is_empty());
        assert!(common.service_rename.is_empty() && common.service_prefix.is_none());
        common.validate().unwrap();
        let shown = serde_json::to_value(&common).unwrap();
        for key in ["include", "exclude", "service_rename", "service_prefix"] {
            assert!(shown.get(key).is_none(), "{key} shown: {shown}");
        }
    }

    #[test]
    fn name_mapping_fields_parse_and_validate() {
        let common = parse(json!({
            "id": "a",
            "priority": 5,
            "include": ["pay-*", "orders", "v?"],
            "exclude": ["*-canary"],
            "service_rename": { "orders": "orders-svc" },
            "service_prefix": "dc2-",
        }));
        common.validate().unwrap();
        assert_eq!(common.include, ["pay-*", "orders", "v?"]);
        assert_eq!(common.exclude, ["*-canary"]);
        assert_eq!(common.service_rename["orders"], "orders-svc");
        assert_eq!(common.service_prefix.as_deref(), Some("dc2-"));
        let shown = serde_json::to_value(&common).unwrap();
        assert_eq!(shown["service_rename"], json!({ "orders": "orders-svc" }));
        assert_eq!(shown["include"], json!(["pay-*", "orders", "v?"]));
    }

    #[test]
    fn bad_values_are_named_first() {
        let cases = [
            (json!({ "id": "a b" }), "`id`:"),
            (
                json!({ "id": "a", "priority": -1 }),
                "`priority`: must be 0 or more",
            ),
            (json!({ "id": "a", "include": [""] }), "`include[0]`:"),
            (
                json!({ "id": "a", "include": ["a", "b c"] }),
                "`include[1]`:",
            ),
            (json!({ "id": "a", "exclude": ["a/b"] }), "`exclude[0]`:"),
            (
                json!({ "id": "a", "service_rename": { "orders": "" } }),
                "`service_rename.orders`:",
            ),
            (
                json!({ "id": "a", "service_rename": { "orders": "a*" } }),
                "`service_rename.orders`:",
            ),
            (
                json!({ "id": "a", "service_rename": { "a b": "c" } }),
                "`service_rename`:",
            ),
            (
                json!({ "id": "a", "service_rename": { "o": "x".repeat(129) } }),
                "`service_rename.o`:",
            ),
            (
                json!({ "id": "a", "service_prefix": "" }),
                "`service_prefix`:",
            ),
            (
                json!({ "id": "a", "service_prefix": "a:" }),
                "`service_prefix`:",
            ),
        ];
        for (json, expected) in cases {
            let message = config_error(&parse(json.clone()));
            assert!(message.starts_with(expected), "{json}: {message}");
        }
    }
}
