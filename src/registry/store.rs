//! Durable storage of native instances. The [`Store`] trait is what the registry needs;
//! [`RedbStore`] is the embedded implementation (one redb file in the data dir).

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableTable, TableDefinition};

use super::record::StoredInstance;

/// Instance records by id, JSON-encoded.
const INSTANCES: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("instances");
/// Last heartbeat (ms since the epoch) by instance id, written in batches.
const HEARTBEATS: TableDefinition<'_, &str, i64> = TableDefinition::new("heartbeats");
/// Small bookkeeping values, such as the start-up count.
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
const EPOCH_KEY: &str = "epoch";
/// redb's page cache. Everything here is read once at start-up and otherwise only
/// written, so a small cache costs nothing; redb's default (1 GiB) would keep every page
/// written (saved source views included) in memory.
const CACHE_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database reported an error (I/O, corruption, or the file is in use). Whether a
    /// retry helps depends on the cause; the registry does not retry on its own.
    #[error("store: {0}")]
    Database(Box<redb::Error>),
    #[error("store: cannot encode record: {0}")]
    Encode(#[from] serde_json::Error),
    /// The registry is shutting down and takes no more changes.
    #[error("store: closed for shutdown")]
    Closed,
    /// The store refused the batch this change was written in (the cause is logged once
    /// for the batch); the change was taken back.
    #[error("store: {0}")]
    Refused(String),
}

pub fn db_err<E: Into<redb::Error>>(err: E) -> StoreError {
    StoreError::Database(Box::new(err.into()))
}

/// Creates `tables` if they do not exist yet, in one transaction.
pub fn create_tables(
    db: &Database,
    tables: &[TableDefinition<'_, &str, &[u8]>],
) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(db_err)?;
    for table in tables {
        txn.open_table(*table).map_err(db_err)?;
    }
    txn.commit().map_err(db_err)
}

/// The key range of records filed under `prefix`: keys `{prefix}\0...` (so `a` never
/// takes in `ab`'s records).
pub fn prefix_range(prefix: &str) -> (String, String) {
    (format!("{prefix}\0"), format!("{prefix}\u{1}"))
}

/// Removes every record of `table` filed under `prefix`, inside `txn`.
pub fn remove_prefix(
    txn: &redb::WriteTransaction,
    table: TableDefinition<'_, &str, &[u8]>,
    prefix: &str,
) -> Result<(), StoreError> {
    let mut table = txn.open_table(table).map_err(db_err)?;
    let (from, to) = prefix_range(prefix);
    let keys: Vec<String> = table
        .range(from.as_str()..to.as_str())
        .map_err(db_err)?
        .map(|row| row.map(|(key, _)| key.value().to_owned()))
        .collect::<Result<_, _>>()
        .map_err(db_err)?;
    for key in keys {
        table.remove(key.as_str()).map_err(db_err)?;
    }
    Ok(())
}

/// Writes one record in its own durable transaction.
pub fn put_record(
    db: &Database,
    table: TableDefinition<'_, &str, &[u8]>,
    key: &str,
    bytes: &[u8],
) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(db_err)?;
    txn.open_table(table)
        .map_err(db_err)?
        .insert(key, bytes)
        .map_err(db_err)?;
    txn.commit().map_err(db_err)
}

/// Runs `work` with a clone of `store` on a blocking thread, as every redb call must be
/// from async code.
pub async fn on_blocking_thread<S, T>(
    store: &S,
    work: impl FnOnce(&S) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError>
where
    S: Clone + Send + 'static,
    T: Send + 'static,
{
    let store = store.clone();
    tokio::task::spawn_blocking(move || work(&store))
        .await
        .unwrap_or_else(|err| {
            let io = std::io::Error::other(format!("store task failed: {err}"));
            Err(StoreError::Database(Box::new(redb::Error::Io(io))))
        })
}

/// Every JSON record of `table` by key. An unreadable record is skipped and logged (as
/// `what`), its bytes kept for a later fix.
pub fn read_records<T: serde::de::DeserializeOwned>(
    db: &Database,
    table: TableDefinition<'_, &str, &[u8]>,
    what: &str,
) -> Result<Vec<(String, T)>, StoreError> {
    let txn = db.begin_read().map_err(db_err)?;
    let table = txn.open_table(table).map_err(db_err)?;
    let mut out = Vec::new();
    for row in table.iter().map_err(db_err)? {
        let (key, bytes) = row.map_err(db_err)?;
        match serde_json::from_slice(bytes.value()) {
            Ok(record) => out.push((key.value().to_owned(), record)),
            Err(err) => {
                tracing::error!(key = key.value(), error = %err, "Skipping an unreadable stored {what}")
            }
        }
    }
    Ok(out)
}

/// One change to the stored instances.
#[derive(Clone, Debug)]
pub enum StoreOp {
    /// Writes (or replaces) the record under its instance id.
    Put(Box<StoredInstance>),
    /// Deletes the record and its heartbeat row.
    Delete(String),
}

/// Storage the native registry writes through. Every method is synchronous and durable
/// when it returns Ok (callers run it on a blocking thread).
pub trait Store: Send + Sync + 'static {
    /// Every stored instance, with its last persisted heartbeat applied.
    fn load(&self) -> Result<Vec<StoredInstance>, StoreError>;
    /// Applies `ops` in order in one durable transaction: all of them or none.
    fn commit(&self, ops: &[StoreOp]) -> Result<(), StoreError>;
    /// Records heartbeat times (ms since the epoch) for instances that still exist.
    fn put_heartbeats(&self, beats: &[(String, i64)]) -> Result<(), StoreError>;
    /// Counts one more start-up and returns the count (1 on a new store). The catalog
    /// derives its first index from it, so indexes keep rising across restarts.
    fn next_epoch(&self) -> Result<u64, StoreError>;
}

/// The embedded store: `switchboard.redb` in the data dir.
pub struct RedbStore {
    db: Arc<Database>,
}

impl RedbStore {
    pub fn open(data_dir: &Path) -> Result<RedbStore, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|err| db_err(redb::StorageError::Io(err)))?;
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(data_dir.join("switchboard.redb"))
            .map_err(db_err)?;
        let txn = db.begin_write().map_err(db_err)?;
        txn.open_table(INSTANCES).map_err(db_err)?;
        txn.open_table(HEARTBEATS).map_err(db_err)?;
        txn.open_table(META).map_err(db_err)?;
        txn.commit().map_err(db_err)?;
        Ok(RedbStore { db: Arc::new(db) })
    }

    /// The database, for other parts that keep their own tables in the same file.
    pub fn database(&self) -> Arc<Database> {
        self.db.clone()
    }
}

impl Store for RedbStore {
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

    fn commit(&self, ops: &[StoreOp]) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut instances = txn.open_table(INSTANCES).map_err(db_err)?;
            let mut heartbeats = txn.open_table(HEARTBEATS).map_err(db_err)?;
            for op in ops {
                match op {
                    StoreOp::Put(record) => {
                        let bytes = serde_json::to_vec(record)?;
                        let id = record.instance.id.as_str();
                        instances.insert(id, bytes.as_slice()).map_err(db_err)?;
                    }
                    StoreOp::Delete(id) => {
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

    fn next_epoch(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let epoch = {
            let mut meta = txn.open_table(META).map_err(db_err)?;
            let previous = meta
                .get(EPOCH_KEY)
                .map_err(db_err)?
                .map_or(0, |v| v.value());
            meta.insert(EPOCH_KEY, previous + 1).map_err(db_err)?;
            previous + 1
        };
        txn.commit().map_err(db_err)?;
        Ok(epoch)
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
                    StoreOp::Put(Box::new(record("a"))),
                    StoreOp::Put(Box::new(record("b"))),
                ])
                .unwrap();
            store
                .put_heartbeats(&[("a".into(), 1_700_000_000_000)])
                .unwrap();
            store.commit(&[StoreOp::Delete("b".into())]).unwrap();
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
    fn the_epoch_counts_start_ups() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            RedbStore::open(dir.path()).unwrap().next_epoch().unwrap(),
            1
        );
        assert_eq!(
            RedbStore::open(dir.path()).unwrap().next_epoch().unwrap(),
            2
        );
    }

    #[test]
    fn heartbeats_of_deleted_instances_are_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        store.put_heartbeats(&[("ghost".into(), 5)]).unwrap();
        store
            .commit(&[StoreOp::Put(Box::new(record("ghost")))])
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
