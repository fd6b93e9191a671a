//! The embedded backend: one redb file, `switchboard.redb`, in the data dir. Each kind of
//! record keeps its own tables; the helpers here are what their implementations share.

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableTable, TableDefinition};

use super::StoreError;

/// redb's page cache. Everything here is read once at start-up and otherwise only
/// written, so a small cache costs nothing; redb's default (1 GiB) would keep every page
/// written (saved source views included) in memory.
const CACHE_BYTES: usize = 4 * 1024 * 1024;

/// The embedded store. It implements every record trait of [`super`].
pub struct RedbStore {
    pub(super) db: Arc<Database>,
}

impl RedbStore {
    /// Opens (or creates) `switchboard.redb` in `data_dir`, with every table. The dir
    /// and the file are made the owner's only first (`private.rs`): the file holds
    /// secrets in clear.
    pub fn open(data_dir: &Path) -> Result<RedbStore, StoreError> {
        let io_err = |err| db_err(redb::StorageError::Io(err));
        let file = data_dir.join("switchboard.redb");
        #[cfg(unix)]
        {
            super::private::data_dir(data_dir).map_err(io_err)?;
            super::private::secret_file(&file).map_err(io_err)?;
        }
        // Elsewhere the dir's ACLs are the operator's to set (see docs/operations.md).
        #[cfg(not(unix))]
        std::fs::create_dir_all(data_dir).map_err(io_err)?;
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(file)
            .map_err(db_err)?;
        // Every table exists from the start, created in one transaction.
        let txn = db.begin_write().map_err(db_err)?;
        super::instances::create_tables(&txn)?;
        super::sources::create_tables(&txn)?;
        super::settings::create_tables(&txn)?;
        super::syncs::create_tables(&txn)?;
        super::tokens::create_tables(&txn)?;
        txn.commit().map_err(db_err)?;
        Ok(RedbStore { db: Arc::new(db) })
    }
}

pub(super) fn db_err<E: Into<redb::Error>>(err: E) -> StoreError {
    StoreError::Database(Box::new(err.into()))
}

/// A table of JSON records by string key.
pub(super) type Records = TableDefinition<'static, &'static str, &'static [u8]>;

/// Creates `tables` in `txn` if they do not exist yet.
pub(super) fn create(txn: &redb::WriteTransaction, tables: &[Records]) -> Result<(), StoreError> {
    for table in tables {
        txn.open_table(*table).map_err(db_err)?;
    }
    Ok(())
}

/// The key range of records filed under `prefix`: keys `{prefix}\0...` (so `a` never
/// takes in `ab`'s records).
pub(super) fn prefix_range(prefix: &str) -> (String, String) {
    (format!("{prefix}\0"), format!("{prefix}\u{1}"))
}

/// Removes every record of `table` filed under `prefix`, inside `txn`.
pub(super) fn remove_prefix(
    txn: &redb::WriteTransaction,
    table: Records,
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
pub(super) fn put_record(
    db: &Database,
    table: Records,
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

/// Every JSON record of `table` by key. An unreadable record is skipped and logged (as
/// `what`), its bytes kept for a later fix.
pub(super) fn read_records<T: serde::de::DeserializeOwned>(
    db: &Database,
    table: Records,
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

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use serde_json::json;

    use super::*;
    use crate::store::SettingStore;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_store_is_the_owners_only_also_when_it_was_not() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data");
        let file = dir.join("switchboard.redb");
        let store = RedbStore::open(&dir).unwrap();
        store.put_setting("kept", &json!({"a": 1})).unwrap();
        drop(store);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&file), 0o600);
        // A file made readable by others (a copy, a restore) is tightened at the next
        // open, its records intact.
        let loose = std::fs::Permissions::from_mode(0o644);
        std::fs::set_permissions(&file, loose).unwrap();
        let store = RedbStore::open(&dir).unwrap();
        assert_eq!(mode(&file), 0o600);
        assert_eq!(store.setting("kept").unwrap(), Some(json!({"a": 1})));
    }
}
