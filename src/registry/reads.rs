//! Reads of one instance as the API shows them: its view and its health. Each waits
//! until every change decided before it has finished, so it never shows a change that is
//! not yet durable.

use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use switchboard_connectors::Status;

use super::record::Entry;
use super::replies::InstanceHealth;
use super::{now, Registry, RegistryError};
use crate::catalog::InstanceView;
use crate::duration;
use crate::store::StoredInstance;

impl Registry {
    /// One instance, with its live heartbeat time.
    pub async fn get(&self, id: &str) -> Result<InstanceView, RegistryError> {
        self.table.settled().await;
        Ok(self.view(&self.entry(id)?.snapshot()))
    }

    /// The namespace of registered instance `id`, for access checks; none when unknown.
    pub fn namespace_of(&self, id: &str) -> Option<String> {
        self.service_of(id).map(|service| service.namespace)
    }

    /// The service of registered instance `id`, for access checks; none when unknown.
    /// Read from memory without waiting for the store (a heartbeat's path).
    pub fn service_of(&self, id: &str) -> Option<switchboard_connectors::ServiceKey> {
        let entry = self.entry(id).ok()?;
        let service = entry.lock().instance.service.clone();
        Some(service)
    }

    /// Uptime, registration age and TTL state of one instance.
    pub async fn health(&self, id: &str) -> Result<InstanceHealth, RegistryError> {
        self.table.settled().await;
        let entry = self.entry(id)?;
        let record = entry.snapshot();
        let time = now();
        let since = |t: Option<DateTime<Utc>>| {
            t.map_or(Duration::ZERO, |t| (time - t).to_std().unwrap_or_default())
        };
        let uptime = since(record.instance.start_time);
        let registered = since(record.instance.register_time);
        let ttl = self.ttl_of(&record);
        let expires_in = if record.instance.status == Status::Offline {
            Duration::ZERO
        } else {
            let deadline = self.deadline_ms(&entry, &record);
            Duration::from_millis((deadline - time.timestamp_millis()).max(0) as u64)
        };
        Ok(InstanceHealth {
            id: record.instance.id.clone(),
            service: record.instance.service.name.clone(),
            status: record.instance.status,
            healthy: record.instance.healthy,
            uptime: duration::format(uptime),
            uptime_seconds: uptime.as_secs(),
            register_duration: duration::format(registered),
            register_duration_seconds: registered.as_secs(),
            last_check: record.instance.last_heartbeat,
            ttl_seconds: ttl.as_secs(),
            expires_in_seconds: expires_in.as_secs(),
            checks: record.instance.checks,
        })
    }

    /// When TTL expiry will mark this instance offline (ms since the epoch).
    pub(super) fn deadline_ms(&self, entry: &Entry, record: &StoredInstance) -> i64 {
        let ttl = self.ttl_of(record).as_millis() as i64;
        (entry.last_heartbeat_ms.load(Ordering::SeqCst) + ttl).max(entry.grace_until_ms)
    }
}
