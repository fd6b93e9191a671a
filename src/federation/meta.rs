//! A source's configuration as the catalog sees it: its name mapping, priority,
//! staleness and wipe-out guard.

use std::sync::Arc;

use chrono::Utc;
use switchboard_connectors::SourceConfig;

use crate::catalog::{NameMap, SourceMeta};

/// How a source's service names are mapped, from its common fields.
pub(crate) fn names_of(config: &SourceConfig) -> NameMap {
    let common = &config.common;
    NameMap {
        include: common.include.clone(),
        exclude: common.exclude.clone(),
        rename: common.service_rename.clone(),
        prefix: common.service_prefix.clone(),
    }
}

/// How a source takes part in merging, given its staleness.
pub(crate) fn meta_of(
    config: &SourceConfig,
    names: Arc<NameMap>,
    stale_since: Option<chrono::DateTime<Utc>>,
    expired: bool,
) -> SourceMeta {
    SourceMeta {
        priority: config.common.priority,
        stale_since,
        empty_confirm: Some(config.common.empty_confirm),
        names,
        expired,
    }
}

/// Whether a view stale since `stale_since` is past the source's `max_stale`.
pub(crate) fn past_max_stale(
    config: &SourceConfig,
    stale_since: Option<chrono::DateTime<Utc>>,
) -> bool {
    match (config.common.max_stale, stale_since) {
        (Some(max_stale), Some(since)) => {
            (Utc::now() - since).to_std().unwrap_or_default() >= max_stale
        }
        _ => false,
    }
}
