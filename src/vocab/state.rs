//! Where a source or a sync job stands, as every part that reports or acts on it says
//! it.

use std::sync::Mutex;

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

/// A status a task keeps up to date while the API reads copies (a source's supervisor,
/// a sync job).
pub struct StatusCell<T>(Mutex<T>);

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
