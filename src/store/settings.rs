//! Small named settings (the merge rules set through the API), as JSON documents, and
//! the start-up count the catalog's indexes are derived from.

use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde_json::Value;

use super::redb_backend::{db_err, put_record, Records, RedbStore};
use super::StoreError;

/// Settings by name, JSON-encoded.
const SETTINGS: Records = TableDefinition::new("settings");
/// Small bookkeeping counters, such as the start-up count.
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
const EPOCH_KEY: &str = "epoch";

/// Creates the settings tables in `txn` if they do not exist yet.
pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(SETTINGS).map_err(db_err)?;
    txn.open_table(META).map_err(db_err)?;
    Ok(())
}

/// Named settings and the start-up count.
pub trait SettingStore: Send + Sync + 'static {
    /// The setting `name`, if it was ever set.
    fn setting(&self, name: &str) -> Result<Option<Value>, StoreError>;
    /// Replaces the setting `name`.
    fn put_setting(&self, name: &str, value: &Value) -> Result<(), StoreError>;
    /// Counts one more start-up and returns the count (1 on a new store). The catalog
    /// derives its first index from it, so indexes keep rising across restarts.
    fn next_epoch(&self) -> Result<u64, StoreError>;
}

impl SettingStore for RedbStore {
    fn setting(&self, name: &str) -> Result<Option<Value>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(SETTINGS).map_err(db_err)?;
        let Some(bytes) = table.get(name).map_err(db_err)? else {
            return Ok(None);
        };
        Ok(Some(serde_json::from_slice(bytes.value())?))
    }

    fn put_setting(&self, name: &str, value: &Value) -> Result<(), StoreError> {
        put_record(&self.db, SETTINGS, name, &serde_json::to_vec(value)?)
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
    use serde_json::json;

    use super::*;

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
    fn settings_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let rules = json!([{"services": ["pay-*"], "policy": "failover"}]);
        {
            let store = RedbStore::open(dir.path()).unwrap();
            assert_eq!(store.setting("merge_rules").unwrap(), None);
            store.put_setting("merge_rules", &rules).unwrap();
        }
        let store = RedbStore::open(dir.path()).unwrap();
        assert_eq!(store.setting("merge_rules").unwrap(), Some(rules));
    }
}
