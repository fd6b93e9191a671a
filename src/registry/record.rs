//! A native instance in memory: its stored record and the live heartbeat atomics.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Mutex;

use switchboard_connectors::{CheckStatus, Instance, Status};

use crate::store::StoredInstance;

/// Whether an instance should receive traffic: active, with no critical check.
pub fn is_healthy(instance: &Instance) -> bool {
    instance.status == Status::Active
        && (instance.checks.iter()).all(|check| check.status != CheckStatus::Critical)
}

/// Sets every TTL check of `instance` to `status` with `output` (from the previous
/// output when given a function); returns whether any status changed. TTL checks are not
/// run: a heartbeat passes them and a missed TTL fails them.
pub fn set_ttl_checks(
    instance: &mut Instance,
    status: CheckStatus,
    output: impl Fn(&str) -> String,
) -> bool {
    let mut changed = false;
    for check in (instance.checks.iter_mut()).filter(|check| check.kind == TTL_KIND) {
        changed |= check.status != status;
        check.status = status;
        check.output = output(&check.output);
    }
    changed
}

/// The `kind` of a TTL check's result (`Probe::kind`).
pub const TTL_KIND: &str = "ttl";

/// The output of a TTL check that ran out, as Consul writes it.
pub fn ttl_expired_output(last: &str) -> String {
    if last.is_empty() {
        "TTL expired".to_owned()
    } else {
        format!("TTL expired (last output before timeout follows): {last}")
    }
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
