//! What a source's status says, and where the supervisor records it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

pub use crate::vocab::SourceState;

/// A source's status, kept up to date by its supervisor while the API reads copies.
pub type StatusCell = crate::vocab::StatusCell<SourceStatus>;

/// The latest failure or skipped value.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct LastError {
    /// `connection`, `auth`, `protocol`, `config`, or `skipped` (a value the source
    /// holds could not be used).
    pub kind: &'static str,
    pub message: String,
    pub time: DateTime<Utc>,
}

/// `GET /api/v1/sources/{id}`. Never carries credentials.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SourceStatus {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub state: SourceState,
    /// The endpoint in use, when connected.
    pub endpoint: Option<String>,
    pub priority: i32,
    /// Instances and services this source contributes to the catalog now.
    pub instances: usize,
    pub services: usize,
    pub last_error: Option<LastError>,
    /// When the source last delivered a change or a full view.
    pub last_sync: Option<DateTime<Utc>>,
    /// Connection attempts after the first.
    pub reconnects: u64,
    /// Values skipped because they could not be used.
    pub skipped: u64,
    /// Set while the source is down and its instances are served stale.
    pub stale_since: Option<DateTime<Utc>>,
    /// Updates that would have emptied a service, held by the wipe-out guard.
    pub guard_holds: u64,
}

impl SourceStatus {
    /// A source's status before its supervisor's first attempt.
    pub fn initial(config: &switchboard_connectors::SourceConfig) -> SourceStatus {
        SourceStatus {
            id: config.id().to_owned(),
            kind: config.type_name().to_owned(),
            state: SourceState::Connecting,
            endpoint: None,
            priority: config.common.priority,
            instances: 0,
            services: 0,
            last_error: None,
            last_sync: None,
            reconnects: 0,
            skipped: 0,
            stale_since: None,
            guard_holds: 0,
        }
    }
}
