//! The words every part of Switchboard shares: the native source's name, where a source
//! or job comes from, what state it is in, and the rules names and statuses follow. A
//! leaf: it imports no other module of the crate, so `config`, `registry`, `federation`,
//! `sync` and `api` can all use it without importing each other.

mod names;
pub mod schemas;
mod state;

use serde::Serialize;
use utoipa::ToSchema;

pub(crate) use names::{invalid, validate_id};
pub use names::{
    parse_status, validate_name, ValidationError, ID_PATTERN, MAX_NAME_LEN, NAME_PATTERN,
};
pub use state::{SourceState, StatusCell};

/// Source id of native instances (those registered with Switchboard itself) in the
/// catalog; no configured source may take it.
pub const NATIVE_SOURCE: &str = "native";

/// Where a source's or a sync job's definition comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// The config file: read-only through the API.
    File,
    /// Created through the API and kept in the store.
    Api,
}
