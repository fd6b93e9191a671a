//! The native registry: instances that register with Switchboard itself.
//!
//! Registrations, status changes and deletions are decided in one short critical section
//! each (`change.rs`), written durably to the [`Store`] in group commits shared by every
//! change decided meanwhile (`committer.rs`), then published to the catalog as the
//! `native` source; each is acknowledged once published. A change, once decided, is
//! finished whatever its caller does. Heartbeats only touch in-memory atomics;
//! [`Registry::flush_heartbeats`] writes them in batches.
//! [`Registry::sweep`] marks instances whose TTL passed `offline` (kept, with
//! `offline_time`), revives them when heartbeats resume, and deletes those offline longer
//! than `deregister_after`.

mod background;
mod change;
#[cfg(test)]
mod commit_tests;
mod committer;
mod config;
mod expiry;
mod record;
mod replies;
mod validate;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use switchboard_connectors::{Instance, InstanceKey, ServiceKey, Status, Update};

pub use background::spawn_background;
pub use config::RegistryConfig;
pub use replies::{HeartbeatReply, InstanceHealth, RemovalReport};
pub use validate::RegisterRequest;

use self::change::{Done, Table};
use self::committer::Committer;
use self::record::{is_healthy, Entry};
use crate::catalog::{Catalog, InstanceView, SourceMeta};
use crate::duration;
use crate::store::{Blocking, InstanceStore, StoreError, StoredInstance};
use crate::telemetry::Metrics;
use crate::vocab::{ValidationError, MAX_NAME_LEN, NATIVE_SOURCE};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("instance `{0}` not found")]
    NotFound(String),
    #[error("service `{0}` has no native instances")]
    ServiceNotFound(String),
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The store failed; nothing was changed in memory or in the catalog.
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Registry {
    store: Arc<dyn InstanceStore>,
    /// The instances in memory; changed only by decided changes (`change.rs`).
    table: Arc<Table>,
    /// The group-commit task, awaited by [`Registry::close`].
    committer: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    config: RegistryConfig,
    metrics: Arc<Metrics>,
}

/// Registry times are kept to the millisecond, as the store keeps heartbeats.
pub(crate) fn now() -> DateTime<Utc> {
    let time = Utc::now();
    DateTime::from_timestamp_millis(time.timestamp_millis()).unwrap_or(time)
}

/// `{service}-{uuid}`, with the service part shortened so the id stays a valid id
/// (clients send it back on re-registration).
fn generated_id(service: &str) -> String {
    const UUID_PART: usize = 37; // "-" and 36 characters
    let keep = service.len().min(MAX_NAME_LEN - UUID_PART);
    // Service names are ASCII, so any byte offset is a character boundary.
    format!("{}-{}", &service[..keep], uuid::Uuid::now_v7())
}

impl Registry {
    /// Loads every stored instance (each gets one TTL of grace), publishes them and starts
    /// the committer.
    pub async fn open(
        store: Arc<dyn InstanceStore>,
        catalog: Catalog,
        config: RegistryConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Registry>, StoreError> {
        let records = store.blocking(|store| store.load()).await?;
        let (queue, decided) = tokio::sync::mpsc::unbounded_channel();
        let table = Arc::new(Table::new(queue));
        let mut registry = Registry {
            store: store.clone(),
            table: table.clone(),
            committer: std::sync::Mutex::new(None),
            config,
            metrics: metrics.clone(),
        };
        let started = now().timestamp_millis();
        let mut instances = Vec::with_capacity(records.len());
        for record in records {
            let grace = started + registry.ttl_of(&record).as_millis() as i64;
            instances.push(record.instance.clone());
            table.load(Arc::new(Entry::new(record, grace)));
        }
        tracing::info!(instances = instances.len(), "Loaded native instances");
        let source: Arc<str> = Arc::from(NATIVE_SOURCE);
        let meta = SourceMeta {
            priority: registry.config.priority,
            stale_since: None,
            ..SourceMeta::default()
        };
        catalog
            .apply_with_meta(&source, Update::Reset(instances), meta)
            .await;
        let committer = Committer {
            store,
            table: Arc::downgrade(&table),
            catalog,
            source,
            metrics,
        };
        registry.committer = std::sync::Mutex::new(Some(tokio::spawn(committer.run(decided))));
        Ok(Arc::new(registry))
    }

    /// Takes no more changes and waits until every one already decided is durable and
    /// published. Later changes answer `store_unavailable`.
    pub async fn close(&self) {
        self.table.close();
        let committer = self
            .committer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(committer) = committer {
            let _ = committer.await;
        }
    }

    fn ttl_of(&self, record: &StoredInstance) -> Duration {
        record
            .ttl_seconds
            .map_or(self.config.default_ttl, Duration::from_secs)
    }

    fn deregister_after_of(&self, record: &StoredInstance) -> Option<Duration> {
        record
            .deregister_after_seconds
            .map(Duration::from_secs)
            .or(self.config.deregister_after)
    }

    fn entry(&self, id: &str) -> Result<Arc<Entry>, RegistryError> {
        (self.table.entries.get(id))
            .map(|entry| entry.clone())
            .ok_or_else(|| RegistryError::NotFound(id.to_owned()))
    }

    /// Waits for a submitted change to be durable and published.
    async fn finish(done: Done) -> Result<(), RegistryError> {
        Ok(change::wait(done).await?)
    }

    fn view(&self, record: &StoredInstance) -> InstanceView {
        InstanceView::from_source(&record.instance, NATIVE_SOURCE)
    }

    /// Registers (or replaces) an instance. Returns its view and whether it is new.
    ///
    /// An endpoint (host, port) of a service belongs to its newest registration, as in
    /// Nacos: without an `id`, the instance already there is replaced in place (a client
    /// that restarts does not leave a twin); with a new `id`, the old registration is
    /// deleted (a pod that inherits a dead pod's IP takes over at once).
    pub async fn register(
        &self,
        request: RegisterRequest,
    ) -> Result<(InstanceView, bool), RegistryError> {
        self.register_with(request, false).await
    }

    /// Registers a copy written by a sync-back job: validated like any registration,
    /// stored durably, never expired by TTL.
    pub async fn register_persistent(
        &self,
        instance: &Instance,
    ) -> Result<InstanceView, RegistryError> {
        let request = RegisterRequest {
            id: Some(instance.id.clone()),
            service: Some(instance.service.name.clone()),
            namespace: Some(instance.service.namespace.clone()),
            group: Some(instance.service.group.clone()),
            host: Some(instance.host.clone()),
            port: Some(i64::from(instance.port)),
            protocol: Some(instance.protocol.clone()),
            version: instance.version.clone(),
            weight: Some(i64::from(instance.weight)),
            status: Some(instance.status.as_str().to_owned()),
            metadata: Some(instance.metadata.clone()),
            tags: Some(instance.tags.clone()),
            ..RegisterRequest::default()
        };
        Ok(self.register_with(request, true).await?.0)
    }

    async fn register_with(
        &self,
        request: RegisterRequest,
        persistent: bool,
    ) -> Result<(InstanceView, bool), RegistryError> {
        let (done, registered) = self.decide_registration(request, persistent)?;
        Self::finish(done).await?;
        Ok(registered)
    }

    /// Decides a registration (see [`Registry::register`]) and queues it.
    fn decide_registration(
        &self,
        request: RegisterRequest,
        persistent: bool,
    ) -> Result<(Done, (InstanceView, bool)), RegistryError> {
        let valid = request.validate()?;
        let time = now();
        let mut change = self.table.decide();
        let holders = change.ids_at_endpoint(&valid.service, &valid.host, valid.port);
        let id = match &valid.id {
            Some(id) => id.clone(),
            None => holders
                .first()
                .cloned()
                .unwrap_or_else(|| generated_id(&valid.service.name)),
        };
        let previous = change
            .entry(&id)
            .map(|entry| entry.lock().instance.service.clone());
        let mut instance = Instance::new(id.clone(), valid.service, valid.host, valid.port);
        instance.protocol = valid.protocol;
        instance.version = valid.version;
        instance.weight = valid.weight;
        instance.status = valid.status;
        instance.healthy = is_healthy(valid.status);
        instance.metadata = valid.metadata;
        instance.tags = valid.tags;
        instance.register_time = Some(time);
        instance.start_time = Some(valid.start_time.unwrap_or(time));
        instance.last_heartbeat = Some(time);
        instance.offline_time = (valid.status == Status::Offline).then_some(time);
        let record = StoredInstance {
            instance,
            ttl_seconds: valid.ttl_seconds,
            deregister_after_seconds: valid.deregister_after_seconds,
            expired_from: None,
            persistent,
        };
        let view = self.view(&record);
        let key = record.instance.key();
        // Upsert before removing what it replaces, so the endpoint never blinks out.
        change.upsert(record.instance.clone());
        change.set_entry(&id, Some(Arc::new(Entry::new(record, 0))));
        for other in holders.into_iter().filter(|other| *other != id) {
            tracing::info!(instance.id = %other, by = %id, "Registration replaced by a newer one at the same endpoint");
            change.set_entry(&other, None);
            change.remove(InstanceKey {
                service: key.service.clone(),
                id: other,
            });
        }
        if let Some(old_service) = previous.as_ref().filter(|old| **old != key.service) {
            change.remove(InstanceKey {
                service: old_service.clone(),
                id,
            });
        }
        change.counts.registrations += 1;
        Ok((change.submit(), (view, previous.is_none())))
    }

    /// One instance, with its live heartbeat time.
    pub async fn get(&self, id: &str) -> Result<InstanceView, RegistryError> {
        self.table.settled().await;
        Ok(self.view(&self.entry(id)?.snapshot()))
    }

    /// Renews an instance's TTL. An instance that expired comes back to the status it had.
    pub async fn heartbeat(&self, id: &str) -> Result<HeartbeatReply, RegistryError> {
        let entry = self.entry(id)?;
        let time = now();
        entry
            .last_heartbeat_ms
            .fetch_max(time.timestamp_millis(), Ordering::SeqCst);
        self.metrics.heartbeats.inc();
        let revived = entry.expired.load(Ordering::SeqCst) && self.revive(id, &entry).await?;
        let status = entry.lock().instance.status;
        Ok(HeartbeatReply {
            id: id.to_owned(),
            status,
            last_heartbeat: time,
            revived,
        })
    }

    /// Brings an expired instance back; false if someone else already did or it is gone.
    async fn revive(&self, id: &str, entry: &Arc<Entry>) -> Result<bool, RegistryError> {
        let Some(done) = self.decide_revival(id, entry) else {
            return Ok(false);
        };
        Self::finish(done).await?;
        tracing::info!(instance.id = id, "Expired instance revived by heartbeat");
        Ok(true)
    }

    fn decide_revival(&self, id: &str, entry: &Arc<Entry>) -> Option<Done> {
        let mut change = self.table.decide();
        if !change.is_current(id, entry) || !entry.expired.load(Ordering::SeqCst) {
            return None;
        }
        let mut record = entry.snapshot();
        let status = record.expired_from.take()?;
        record.instance.status = status;
        record.instance.healthy = is_healthy(status);
        record.instance.offline_time = None;
        change.upsert(record.instance.clone());
        change.set_record(entry, record);
        change.counts.revivals += 1;
        Some(change.submit())
    }

    /// Sets an instance's status (an operator's decision: it ends any expiry hold).
    pub async fn set_status(
        &self,
        id: &str,
        status: Status,
    ) -> Result<InstanceView, RegistryError> {
        let (done, view) = self.decide_status(id, status)?;
        Self::finish(done).await?;
        Ok(view)
    }

    fn decide_status(
        &self,
        id: &str,
        status: Status,
    ) -> Result<(Done, InstanceView), RegistryError> {
        let mut change = self.table.decide();
        let entry = self.entry(id)?;
        let mut record = entry.snapshot();
        if record.instance.status != status || record.expired_from.is_some() {
            record.instance.offline_time = (status == Status::Offline).then(now);
        }
        record.instance.status = status;
        record.instance.healthy = is_healthy(status);
        record.expired_from = None;
        let view = self.view(&record);
        change.upsert(record.instance.clone());
        change.set_record(&entry, record);
        Ok((change.submit(), view))
    }

    /// Deletes an instance for good.
    pub async fn deregister(&self, id: &str) -> Result<InstanceView, RegistryError> {
        let (done, view) = self.decide_deregistration(id)?;
        Self::finish(done).await?;
        Ok(view)
    }

    fn decide_deregistration(&self, id: &str) -> Result<(Done, InstanceView), RegistryError> {
        let mut change = self.table.decide();
        let entry = self.entry(id)?;
        let record = entry.snapshot();
        change.set_entry(id, None);
        change.remove(record.instance.key());
        change.counts.deregistrations += 1;
        Ok((change.submit(), self.view(&record)))
    }

    /// Deletes every native instance of a service, in one transaction: all of them or,
    /// when the store fails, none (an error, not a partial report).
    pub async fn remove_service(
        &self,
        service: &ServiceKey,
    ) -> Result<RemovalReport, RegistryError> {
        let (done, removed) = self.decide_removal(service)?;
        Self::finish(done).await?;
        Ok(RemovalReport {
            service_name: service.name.clone(),
            namespace: service.namespace.clone(),
            group: service.group.clone(),
            total_instances: removed,
            removed_count: removed,
            errors: Vec::new(),
        })
    }

    /// Decides the removal of every native instance of `service`; returns how many.
    fn decide_removal(&self, service: &ServiceKey) -> Result<(Done, usize), RegistryError> {
        let mut change = self.table.decide();
        let ids: Vec<String> = (self.table.entries.iter())
            .filter(|entry| entry.lock().instance.service == *service)
            .map(|entry| entry.key().clone())
            .collect();
        if ids.is_empty() {
            return Err(RegistryError::ServiceNotFound(service.name.clone()));
        }
        for id in &ids {
            change.set_entry(id, None);
            change.remove(InstanceKey {
                service: service.clone(),
                id: id.clone(),
            });
        }
        change.counts.deregistrations += ids.len() as u64;
        Ok((change.submit(), ids.len()))
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
        })
    }

    /// When TTL expiry will mark this instance offline (ms since the epoch).
    fn deadline_ms(&self, entry: &Entry, record: &StoredInstance) -> i64 {
        let ttl = self.ttl_of(record).as_millis() as i64;
        (entry.last_heartbeat_ms.load(Ordering::SeqCst) + ttl).max(entry.grace_until_ms)
    }

    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_valid_ids_even_for_the_longest_names() {
        let long = "a".repeat(MAX_NAME_LEN);
        let id = generated_id(&long);
        assert_eq!(id.len(), MAX_NAME_LEN);
        let request = RegisterRequest {
            id: Some(id),
            service: Some(long),
            address: Some("10.0.0.1:80".into()),
            ..RegisterRequest::default()
        };
        assert!(request.validate().is_ok());
        assert!(generated_id("orders").starts_with("orders-"));
    }
}
