//! The rules of names, ids and globs as JSON Schemas, built from the same constants as
//! the checks, for the types that carry them into the OpenAPI document: the document then
//! states the rule the server applies.

use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use super::names::{ID_PATTERN, MAX_NAME_LEN, NAME_PATTERN};

fn text(pattern: &str, description: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .min_length(Some(1))
        .max_length(Some(MAX_NAME_LEN))
        .description(Some(description))
        .into()
}

/// A service, namespace or group name.
pub struct Name;

impl PartialSchema for Name {
    fn schema() -> RefOr<Schema> {
        text(
            NAME_PATTERN,
            "A service, namespace or group name: 1-253 characters of [A-Za-z0-9._-]",
        )
    }
}

impl ToSchema for Name {}

/// A native instance id.
pub struct InstanceId;

impl PartialSchema for InstanceId {
    fn schema() -> RefOr<Schema> {
        text(
            ID_PATTERN,
            "An instance id: 1-253 characters of [A-Za-z0-9.:_-]",
        )
    }
}

impl ToSchema for InstanceId {}

/// A service-name glob, as `switchboard_connectors::is_glob` accepts it.
pub const GLOB_PATTERN: &str = "^[A-Za-z0-9._*?-]+$";

/// Service-name globs (`*`, `?`): one string or a non-empty list.
pub fn globs() -> RefOr<Schema> {
    let glob = || {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(GLOB_PATTERN))
    };
    OneOfBuilder::new()
        .item(glob())
        .item(ArrayBuilder::new().items(glob()).min_items(Some(1)))
        .description(Some("Service-name globs (`*`, `?`): one string or a list"))
        .into()
}

/// Sync-job sources: `"*"` (every source but the target), one source id, or a list.
pub fn source_ids() -> RefOr<Schema> {
    let id = || {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
    };
    OneOfBuilder::new()
        .item(id())
        .item(ArrayBuilder::new().items(id()).min_items(Some(1)))
        .description(Some(
            "`\"*\"`: every source but the target; or source ids, one or a non-empty list",
        ))
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pattern's character class, read back, allows exactly the bytes `is_glob` does.
    #[test]
    fn the_glob_pattern_is_is_glob() {
        let class = GLOB_PATTERN
            .strip_prefix("^[A-Za-z0-9")
            .and_then(|rest| rest.strip_suffix("]+$"))
            .expect("alphanumerics and a few more");
        for b in 0..=127u8 {
            let c = b as char;
            let in_pattern = c.is_ascii_alphanumeric() || class.contains(c);
            let accepted = switchboard_connectors::is_glob(&c.to_string());
            assert_eq!(accepted, in_pattern, "{c:?}");
        }
    }
}
