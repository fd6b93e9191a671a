//! Native instances as stored: one JSON record per instance, and the last heartbeat time
//! of each, written in batches apart from the record.

use chrono::{DateTime, Utc};
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use switchboard_connectors::{Instance, Status};

use super::redb_backend::{db_err, RedbStore};
use super::StoreError;

/// Instance records by id, JSON-encoded.
const INSTANCES: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("instances");
/// Last heartbeat (ms since the epoch) by instance id, written in batches.
const HEARTBEATS: TableDefinition<'_, &str, i64> = TableDefinition::new("heartbeats");

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
    /// Health checks to run or wait on; their latest results are `instance.checks`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<super::CheckDefinition>,
}

impl StoredInstance {
    pub fn new(instance: Instance) -> StoredInstance {
        StoredInstance {
            instance,
            ttl_seconds: None,
            deregister_after_seconds: None,
            expired_from: None,
            persistent: false,
            checks: Vec::new(),
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

/// One change to the stored instances.
#[derive(Clone, Debug)]
pub enum InstanceOp {
    /// Writes (or replaces) the record under its instance id.
    Put(Box<StoredInstance>),
    /// Deletes the record and its heartbeat row.
    Delete(String),
}

/// Storage the native registry writes through.
pub trait InstanceStore: Send + Sync + 'static {
    /// Every stored instance, with its last persisted heartbeat applied.
    fn load(&self) -> Result<Vec<StoredInstance>, StoreError>;
    /// Applies `ops` in order in one durable transaction: all of them or none.
    fn commit(&self, ops: &[InstanceOp]) -> Result<(), StoreError>;
    /// Records heartbeat times (ms since the epoch) for instances that still exist.
    fn put_heartbeats(&self, beats: &[(String, i64)]) -> Result<(), StoreError>;
}

/// Creates the instance tables in `txn` if they do not exist yet.
pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(INSTANCES).map_err(db_err)?;
    txn.open_table(HEARTBEATS).map_err(db_err)?;
    Ok(())
}

impl InstanceStore for RedbStore {
    fn load(&self) -> Result<Vec<StoredInstance>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let instances = txn.open_table(INSTANCES).map_err(db_err)?;
        let heartbeats = txn.open_table(HEARTBEATS).map_err(db_err)?;
        let mut out = Vec::new();
        for row in instances.iter().map_err(db_err)? {
            let (id, bytes) = row.map_err(db_err)?;
            let mut record: StoredInstance = match serde_json::from_slice(bytes.value()) {
                Ok(record) => record,
                Err(err) => {
                    // Keep the bytes on disk for a later fix; serve the rest.
                    tracing::error!(instance.id = id.value(), error = %err, "Skipping unreadable stored instance");
                    continue;
                }
            };
            if let Some(beat) = heartbeats.get(id.value()).map_err(db_err)? {
                record.apply_persisted_heartbeat(beat.value());
            }
            out.push(record);
        }
        Ok(out)
    }

    fn commit(&self, ops: &[InstanceOp]) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut instances = txn.open_table(INSTANCES).map_err(db_err)?;
            let mut heartbeats = txn.open_table(HEARTBEATS).map_err(db_err)?;
            for op in ops {
                match op {
                    InstanceOp::Put(record) => {
                        let bytes = serde_json::to_vec(record)?;
                        let id = record.instance.id.as_str();
                        instances.insert(id, bytes.as_slice()).map_err(db_err)?;
                    }
                    InstanceOp::Delete(id) => {
                        instances.remove(id.as_str()).map_err(db_err)?;
                        heartbeats.remove(id.as_str()).map_err(db_err)?;
                    }
                }
            }
        }
        txn.commit().map_err(db_err)
    }

    fn put_heartbeats(&self, beats: &[(String, i64)]) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let instances = txn.open_table(INSTANCES).map_err(db_err)?;
            let mut heartbeats = txn.open_table(HEARTBEATS).map_err(db_err)?;
            for (id, millis) in beats {
                // A heartbeat racing a deregistration must not leave a row behind.
                if instances.get(id.as_str()).map_err(db_err)?.is_some() {
                    heartbeats.insert(id.as_str(), *millis).map_err(db_err)?;
                }
            }
        }
        txn.commit().map_err(db_err)
    }
}

#[cfg(test)]
mod tests {
    use switchboard_connectors::{Instance, ServiceKey};

    use super::*;

    fn record(id: &str) -> StoredInstance {
        StoredInstance::new(Instance::new(id, ServiceKey::named("svc"), "10.0.0.1", 80))
    }

    #[test]
    fn records_and_heartbeats_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = RedbStore::open(dir.path()).unwrap();
            store
                .commit(&[
                    InstanceOp::Put(Box::new(record("a"))),
                    InstanceOp::Put(Box::new(record("b"))),
                ])
                .unwrap();
            store
                .put_heartbeats(&[("a".into(), 1_700_000_000_000)])
                .unwrap();
            store.commit(&[InstanceOp::Delete("b".into())]).unwrap();
        }
        let store = RedbStore::open(dir.path()).unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].instance.id, "a");
        assert_eq!(
            loaded[0]
                .instance
                .last_heartbeat
                .unwrap()
                .timestamp_millis(),
            1_700_000_000_000
        );
    }

    #[test]
    fn heartbeats_of_deleted_instances_are_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        store.put_heartbeats(&[("ghost".into(), 5)]).unwrap();
        store
            .commit(&[InstanceOp::Put(Box::new(record("ghost")))])
            .unwrap();
        let loaded = store.load().unwrap();
        assert_ne!(
            loaded[0]
                .instance
                .last_heartbeat
                .map(|t| t.timestamp_millis()),
            Some(5)
        );
    }
}
