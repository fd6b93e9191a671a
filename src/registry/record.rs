//! A native instance as stored, and its live in-memory entry.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchboard_connectors::{Instance, Status};

/// What the store keeps per native instance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredInstance {
    pub instance: Instance,
    /// Per-instance TTL; `None` uses the registry default.
    pub ttl_seconds: Option<u64>,
    /// Per-instance auto-deregistration delay; `None` uses the registry default.
    pub deregister_after_seconds: Option<u64>,
    /// Set while TTL expiry (not an operator) holds the instance offline: the status a
    /// heartbeat restores.
    pub expired_from: Option<Status>,
    /// Written by a sync-back job: no heartbeats, so no TTL expiry (like a Nacos
    /// persistent instance); the job deletes it when its origin goes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub persistent: bool,
}

impl StoredInstance {
    pub fn new(instance: Instance) -> StoredInstance {
        StoredInstance {
            instance,
            ttl_seconds: None,
            deregister_after_seconds: None,
            expired_from: None,
            persistent: false,
        }
    }

    /// Takes a heartbeat time written by the batch flusher if it is newer.
    pub fn apply_persisted_heartbeat(&mut self, millis: i64) {
        let Some(time) = DateTime::<Utc>::from_timestamp_millis(millis) else {
            return;
        };
        if self
            .instance
            .last_heartbeat
            .is_none_or(|current| current < time)
        {
            self.instance.last_heartbeat = Some(time);
        }
    }
}

/// Whether an instance in this status should receive traffic.
pub fn is_healthy(status: Status) -> bool {
    status == Status::Active
}

/// A native instance in memory. Heartbeats touch only the atomics, so they never wait for
/// the registry's mutation lock or the store.
pub struct Entry {
    pub record: Mutex<StoredInstance>,
    pub last_heartbeat_ms: AtomicI64,
    /// Heartbeat time last written to the store.
    pub flushed_heartbeat_ms: AtomicI64,
    /// Mirrors `record.expired_from.is_some()` for the heartbeat fast path.
    pub expired: AtomicBool,
    /// No expiry before this time (ms): one TTL of grace after a restart.
    pub grace_until_ms: i64,
}

impl Entry {
    pub fn new(record: StoredInstance, grace_until_ms: i64) -> Entry {
        let heartbeat = record
            .instance
            .last_heartbeat
            .map_or(0, |time| time.timestamp_millis());
        Entry {
            expired: AtomicBool::new(record.expired_from.is_some()),
            record: Mutex::new(record),
            last_heartbeat_ms: AtomicI64::new(heartbeat),
            flushed_heartbeat_ms: AtomicI64::new(heartbeat),
            grace_until_ms,
        }
    }

    /// A copy of the record with the live heartbeat time.
    pub fn snapshot(&self) -> StoredInstance {
        let mut record = self.lock().clone();
        record.apply_persisted_heartbeat(self.last_heartbeat_ms.load(Ordering::SeqCst));
        record
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, StoredInstance> {
        // A panic while holding this lock cannot leave a half-written record (updates
        // are single assignments), so a poisoned lock is still safe to use.
        self.record
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
