//! What a source's status says, and where the supervisor records it.

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// Lifecycle of a source, as its supervisor sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SourceState {
    /// Opening a connection and a watch.
    Connecting,
    /// Connected; waiting for the first full view.
    Syncing,
    /// Serving a live view.
    Ready,
    /// Live, but some of what the source holds could not be used (see `last_error`).
    Degraded,
    /// Unreachable or failing; its last view is served, flagged stale.
    Down,
    /// Stopped on purpose.
    Disconnected,
}

impl SourceState {
    pub const ALL: [SourceState; 6] = [
        SourceState::Connecting,
        SourceState::Syncing,
        SourceState::Ready,
        SourceState::Degraded,
        SourceState::Down,
        SourceState::Disconnected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SourceState::Connecting => "connecting",
            SourceState::Syncing => "syncing",
            SourceState::Ready => "ready",
            SourceState::Degraded => "degraded",
            SourceState::Down => "down",
            SourceState::Disconnected => "disconnected",
        }
    }
}

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

/// A status a task keeps up to date while the API reads copies (a source's supervisor,
/// a sync job).
pub struct StatusCell<T = SourceStatus>(Mutex<T>);

impl<T: Clone> StatusCell<T> {
    pub fn new(status: T) -> StatusCell<T> {
        StatusCell(Mutex::new(status))
    }

    pub fn update<R>(&self, change: impl FnOnce(&mut T) -> R) -> R {
        // Updates are plain field assignments; a poisoned lock still holds a usable value.
        let mut status = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        change(&mut status)
    }

    pub fn get(&self) -> T {
        self.update(|status| status.clone())
    }
}
