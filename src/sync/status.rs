//! A sync job's status as the API shows it: its state, counters since this start, what
//! waits, and why deletes are held. The job task updates it; readers take copies.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// Lifecycle of a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SyncState {
    /// Following changes and writing them.
    Running,
    /// Paused by an operator (`POST .../pause`); nothing is written.
    Paused,
    /// Running, but its last pass failed (see `last_error`); it retries with backoff.
    Error,
}

/// The latest failure.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SyncFailure {
    pub message: String,
    pub at: DateTime<Utc>,
    /// The service the failed write or delete was for, when there was one.
    pub service: Option<String>,
}

/// `GET /api/v1/syncs/{id}/status`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SyncStatus {
    pub id: String,
    pub state: SyncState,
    /// The target source id (or `native`).
    pub to: String,
    /// When the job last finished a pass.
    pub last_run: Option<DateTime<Utc>>,
    pub last_error: Option<SyncFailure>,
    /// Instances written, deleted, and writes or deletes that failed, since this start.
    pub writes: u64,
    pub deletes: u64,
    pub errors: u64,
    /// Instances written again only to keep them alive in a target that expires them
    /// (after a restart: etcd leases, Consul TTL checks); not counted as writes.
    pub refreshes: u64,
    /// Instances the job has written and keeps (its ledger).
    pub synced: usize,
    /// Services with changes not yet written.
    pub pending_services: usize,
    /// Age of the oldest change not yet written, in milliseconds (0: up to date), as of
    /// the read.
    pub lag_ms: u64,
    /// True while deletes are held back because an origin is down or stale.
    pub deletes_paused: bool,
    /// Deletes held back, and why (the first reason).
    pub held_deletes: usize,
    pub held_reason: Option<String>,
    /// Endpoints the target has from someone else (left alone) at the last pass.
    pub foreign: usize,
    /// Instances skipped at the last pass because a job wrote them into their source.
    pub echoes: usize,
    #[serde(skip)]
    pub oldest_unsynced: Option<DateTime<Utc>>,
}

impl SyncStatus {
    /// This status as the API shows it now: with its lag as of this moment.
    pub fn as_of_now(mut self) -> SyncStatus {
        self.lag_ms = self.oldest_unsynced.map_or(0, |oldest| {
            (Utc::now() - oldest).num_milliseconds().max(0) as u64
        });
        self
    }
}

impl SyncStatus {
    /// A job that has done nothing yet; starting it sets its state.
    pub fn new(id: &str, to: &str) -> SyncStatus {
        SyncStatus {
            id: id.to_owned(),
            state: SyncState::Running,
            to: to.to_owned(),
            last_run: None,
            last_error: None,
            writes: 0,
            deletes: 0,
            errors: 0,
            refreshes: 0,
            synced: 0,
            pending_services: 0,
            lag_ms: 0,
            deletes_paused: false,
            held_deletes: 0,
            held_reason: None,
            foreign: 0,
            echoes: 0,
            oldest_unsynced: None,
        }
    }
}

/// The job's record of itself; the API reads copies.
pub type StatusCell = crate::vocab::StatusCell<SyncStatus>;
