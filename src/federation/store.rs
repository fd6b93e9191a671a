//! What the federation keeps in the embedded store: sources created through the API (as
//! the documents they were given, secrets included, so they come back after a restart),
//! every source's last view (for warm restarts), and the API's merge rules.

use std::sync::Arc;

use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::catalog::{MergeRule, SavedView};
use crate::registry::{db_err, StoreError};

/// API-created sources by id.
const SOURCES: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("sources");
/// Each source's last view by source id.
const VIEWS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("source_views");
/// Small settings by name.
const SETTINGS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("settings");
const MERGE_RULES_KEY: &str = "merge_rules";

/// An API-created source as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoredSource {
    /// The source document with its secrets.
    pub document: Value,
    /// Whether the operator wants it connected.
    pub connected: bool,
}

/// The federation's tables. Every method is synchronous and durable when it returns Ok
/// (callers run it on a blocking thread).
#[derive(Clone)]
pub struct SourceStore {
    db: Arc<Database>,
}

impl SourceStore {
    pub fn open(db: Arc<Database>) -> Result<SourceStore, StoreError> {
        let txn = db.begin_write().map_err(db_err)?;
        txn.open_table(SOURCES).map_err(db_err)?;
        txn.open_table(VIEWS).map_err(db_err)?;
        txn.open_table(SETTINGS).map_err(db_err)?;
        txn.commit().map_err(db_err)?;
        Ok(SourceStore { db })
    }

    /// Runs `work` on a blocking thread, as every method here must be.
    pub async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&SourceStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || work(&store))
            .await
            .unwrap_or_else(|err| {
                let io = std::io::Error::other(format!("store task failed: {err}"));
                Err(StoreError::Database(Box::new(redb::Error::Io(io))))
            })
    }

    /// Every stored source by id. An unreadable record is skipped (and logged), its bytes
    /// kept for a later fix.
    pub fn sources(&self) -> Result<Vec<(String, StoredSource)>, StoreError> {
        self.read_all(SOURCES)
    }

    pub fn put_source(&self, id: &str, source: &StoredSource) -> Result<(), StoreError> {
        self.put(SOURCES, id, &serde_json::to_vec(source)?)
    }

    /// Removes a source and its saved view in one transaction.
    pub fn delete_source(&self, id: &str) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            txn.open_table(SOURCES)
                .map_err(db_err)?
                .remove(id)
                .map_err(db_err)?;
            txn.open_table(VIEWS)
                .map_err(db_err)?
                .remove(id)
                .map_err(db_err)?;
        }
        txn.commit().map_err(db_err)
    }

    /// A source's saved view, if there is a readable one.
    pub fn view(&self, id: &str) -> Result<Option<SavedView>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(VIEWS).map_err(db_err)?;
        let Some(bytes) = table.get(id).map_err(db_err)? else {
            return Ok(None);
        };
        match serde_json::from_slice(bytes.value()) {
            Ok(view) => Ok(Some(view)),
            Err(err) => {
                tracing::warn!(source.id = id, error = %err, "Ignoring an unreadable saved view");
                Ok(None)
            }
        }
    }

    /// Saves views (already encoded) and removes others, in one transaction.
    pub fn save_views(
        &self,
        puts: &[(String, Vec<u8>)],
        deletes: &[String],
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut table = txn.open_table(VIEWS).map_err(db_err)?;
            for (id, bytes) in puts {
                table
                    .insert(id.as_str(), bytes.as_slice())
                    .map_err(db_err)?;
            }
            for id in deletes {
                table.remove(id.as_str()).map_err(db_err)?;
            }
        }
        txn.commit().map_err(db_err)
    }

    /// Removes the saved views of sources that no longer exist (a source taken out of the
    /// config file while Switchboard was stopped).
    pub fn retain_views(&self, known: &[String]) -> Result<(), StoreError> {
        let stale: Vec<String> = {
            let txn = self.db.begin_read().map_err(db_err)?;
            let table = txn.open_table(VIEWS).map_err(db_err)?;
            let mut stale = Vec::new();
            for row in table.iter().map_err(db_err)? {
                let (id, _) = row.map_err(db_err)?;
                if !known.iter().any(|k| k == id.value()) {
                    stale.push(id.value().to_owned());
                }
            }
            stale
        };
        if stale.is_empty() {
            return Ok(());
        }
        self.save_views(&[], &stale)
    }

    /// The merge rules set through the API (empty when never set).
    pub fn merge_rules(&self) -> Result<Vec<MergeRule>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(SETTINGS).map_err(db_err)?;
        let Some(bytes) = table.get(MERGE_RULES_KEY).map_err(db_err)? else {
            return Ok(Vec::new());
        };
        Ok(serde_json::from_slice(bytes.value())?)
    }

    pub fn put_merge_rules(&self, rules: &[MergeRule]) -> Result<(), StoreError> {
        self.put(SETTINGS, MERGE_RULES_KEY, &serde_json::to_vec(rules)?)
    }

    fn put(
        &self,
        table: TableDefinition<'_, &str, &[u8]>,
        key: &str,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        txn.open_table(table)
            .map_err(db_err)?
            .insert(key, bytes)
            .map_err(db_err)?;
        txn.commit().map_err(db_err)
    }

    fn read_all<T: for<'de> Deserialize<'de>>(
        &self,
        table: TableDefinition<'_, &str, &[u8]>,
    ) -> Result<Vec<(String, T)>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(table).map_err(db_err)?;
        let mut out = Vec::new();
        for row in table.iter().map_err(db_err)? {
            let (key, bytes) = row.map_err(db_err)?;
            match serde_json::from_slice(bytes.value()) {
                Ok(value) => out.push((key.value().to_owned(), value)),
                Err(err) => {
                    tracing::error!(key = key.value(), error = %err, "Skipping an unreadable stored record")
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::catalog::Policy;

    fn store(dir: &std::path::Path) -> SourceStore {
        let db = Database::create(dir.join("test.redb")).unwrap();
        SourceStore::open(Arc::new(db)).unwrap()
    }

    #[test]
    fn sources_views_and_rules_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = store(dir.path());
            let source = StoredSource {
                document: json!({"id": "a", "type": "etcd", "password": "secret"}),
                connected: false,
            };
            store.put_source("a", &source).unwrap();
            store
                .save_views(
                    &[(
                        "a".into(),
                        br#"{"stale_since":null,"services":[]}"#.to_vec(),
                    )],
                    &[],
                )
                .unwrap();
            let rule = MergeRule {
                services: vec!["pay-*".into()],
                policy: Policy::Failover,
            };
            store.put_merge_rules(&[rule]).unwrap();
        }
        let store = store(dir.path());
        let sources = store.sources().unwrap();
        assert_eq!(sources[0].1.document["password"], "secret");
        assert!(!sources[0].1.connected);
        assert!(store.view("a").unwrap().is_some());
        assert_eq!(store.merge_rules().unwrap()[0].policy, Policy::Failover);
        store.retain_views(&["a".to_owned()]).unwrap();
        assert!(store.view("a").unwrap().is_some());
        store.retain_views(&[]).unwrap();
        assert!(store.view("a").unwrap().is_none());
        store.delete_source("a").unwrap();
        assert!(store.sources().unwrap().is_empty());
        assert!(store.view("a").unwrap().is_none());
    }
}
