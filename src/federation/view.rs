//! Sources as the API shows them: status with the catalog's counts, origin, and the
//! configuration with secrets shown as `***`.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::set::Managed;
use super::status::SourceStatus;
use super::Federation;
use crate::catalog::Snapshot;
use crate::vocab::Origin;

/// A source as the API shows it: its status, where it comes from, and its configuration
/// with secrets shown as `***`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SourceView {
    #[serde(flatten)]
    pub status: SourceStatus,
    pub origin: Origin,
    /// Whether the operator wants it connected (`POST .../connect`/`disconnect`).
    pub connected: bool,
    /// The source's document with defaults filled in; secrets read `***`.
    #[schema(value_type = Object)]
    pub config: Value,
}

impl Federation {
    /// One source's status, with counts from `snapshot`.
    pub fn status(&self, id: &str, snapshot: &Snapshot) -> Option<SourceStatus> {
        self.read()
            .get(id)
            .map(|managed| with_counts(managed, snapshot))
    }

    /// Every source as the API shows it.
    pub fn views(&self, snapshot: &Snapshot) -> Vec<SourceView> {
        self.read()
            .values()
            .map(|managed| view_of(managed, snapshot))
            .collect()
    }

    /// One source as the API shows it.
    pub fn view(&self, id: &str, snapshot: &Snapshot) -> Option<SourceView> {
        self.read()
            .get(id)
            .map(|managed| view_of(managed, snapshot))
    }
}

fn with_counts(managed: &Managed, snapshot: &Snapshot) -> SourceStatus {
    let mut status = managed.status.get();
    if let Some(counts) = snapshot.sources().get(&status.id) {
        status.instances = counts.instances;
        status.services = counts.services;
        status.guard_holds = counts.guard_holds;
    }
    status
}

fn view_of(managed: &Managed, snapshot: &Snapshot) -> SourceView {
    SourceView {
        status: with_counts(managed, snapshot),
        origin: managed.origin,
        connected: managed.connected,
        config: serde_json::to_value(&managed.config).unwrap_or_default(),
    }
}
