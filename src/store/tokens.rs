//! API tokens, as the records `auth` writes: JSON documents by token id. The store keeps
//! only a token's hash, never its secret (`auth` hashes before it writes).

use redb::{TableDefinition, WriteTransaction};
use serde_json::Value;

use super::redb_backend::{create, db_err, put_record, read_records, Records, RedbStore};
use super::StoreError;

/// Tokens by id.
const TOKENS: Records = TableDefinition::new("tokens");

/// Creates the token table in `txn` if it does not exist yet.
pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    create(txn, &[TOKENS])
}

/// Access tokens.
pub trait TokenStore: Send + Sync + 'static {
    /// Every stored token by id. An unreadable record is skipped (and logged).
    fn tokens(&self) -> Result<Vec<(String, Value)>, StoreError>;
    fn put_token(&self, id: &str, token: &Value) -> Result<(), StoreError>;
    /// Removes a token; whether it was there.
    fn delete_token(&self, id: &str) -> Result<bool, StoreError>;
}

impl TokenStore for RedbStore {
    fn tokens(&self) -> Result<Vec<(String, Value)>, StoreError> {
        read_records(&self.db, TOKENS, "token")
    }

    fn put_token(&self, id: &str, token: &Value) -> Result<(), StoreError> {
        put_record(&self.db, TOKENS, id, &serde_json::to_vec(token)?)
    }

    fn delete_token(&self, id: &str) -> Result<bool, StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let removed = txn
            .open_table(TOKENS)
            .map_err(db_err)?
            .remove(id)
            .map_err(db_err)?
            .is_some();
        txn.commit().map_err(db_err)?;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tokens_survive_reopening_and_go_when_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let record = json!({"id": "a1", "hash": "00"});
        {
            let store = RedbStore::open(dir.path()).unwrap();
            store.put_token("a1", &record).unwrap();
        }
        let store = RedbStore::open(dir.path()).unwrap();
        assert_eq!(store.tokens().unwrap(), vec![("a1".to_owned(), record)]);
        assert!(store.delete_token("a1").unwrap());
        assert!(!store.delete_token("a1").unwrap());
        assert!(store.tokens().unwrap().is_empty());
    }
}
