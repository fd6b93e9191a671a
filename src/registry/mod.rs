//! The native registry: instances that register with Switchboard itself.
//!
//! Registrations, status changes and deletions are decided in one short critical section
//! each (`change.rs`), written durably to the [`InstanceStore`] in group commits shared by
//! every change decided meanwhile (`committer.rs`), then published to the catalog as the
//! `native` source; each is acknowledged once published. A change, once decided, is
//! finished whatever its caller does. Heartbeats only touch in-memory atomics;
//! [`Registry::flush_heartbeats`] writes them in batches.
//! [`Registry::sweep`] marks instances whose TTL passed `offline` (kept, with
//! `offline_time`), revives them when heartbeats resume, and deletes those offline longer
//! than `deregister_after`.
//!
//! This file opens and closes the registry; `register.rs` holds registration semantics,
//! `lifecycle.rs` heartbeats, status and deletions, `reads.rs` the API's reads,
//! `sync_back.rs` the sync-back entry point, `expiry.rs` and `background.rs` the sweeps.

mod background;
mod change;
pub mod checks;
#[cfg(test)]
mod commit_tests;
mod committer;
mod config;
mod expiry;
mod health;
mod lifecycle;
mod reads;
mod record;
mod register;
mod replies;
mod sync_back;
mod validate;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use switchboard_connectors::Update;

pub use background::spawn_background;
pub use config::RegistryConfig;
pub use health::{
    maintenance_check_id, CheckRecorded, CheckedInstance, DEFAULT_MAINTENANCE_REASON,
};
pub use replies::{HeartbeatReply, InstanceHealth, RemovalReport};
pub use validate::RegisterRequest;

use self::change::{Done, Table};
use self::committer::Committer;
use self::record::Entry;
use crate::catalog::{Catalog, InstanceView, SourceMeta};
use crate::store::{Blocking, InstanceStore, StoreError, StoredInstance};
use crate::telemetry::Metrics;
use crate::vocab::{ValidationError, NATIVE_SOURCE};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("instance `{0}` not found")]
    NotFound(String),
    #[error("instance has no check `{0}`")]
    CheckNotFound(String),
    #[error("service `{0}` has no native instances")]
    ServiceNotFound(String),
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// A registration would replace instance `id`, which is in a namespace the caller
    /// does not reach (ids are unique across namespaces).
    #[error("instance `{0}` is registered in a namespace outside this token's")]
    OutOfReach(String),
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
    /// Bumped by every registration with checks (see [`Registry::checks_changed`]).
    checks_version: tokio::sync::watch::Sender<u64>,
}

/// Registry times are kept to the millisecond, as the store keeps heartbeats.
pub(crate) fn now() -> DateTime<Utc> {
    let time = Utc::now();
    DateTime::from_timestamp_millis(time.timestamp_millis()).unwrap_or(time)
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
            checks_version: tokio::sync::watch::Sender::new(0),
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

    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }
}
