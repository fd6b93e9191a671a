//! Sources created through the API, kept as the documents they were given (secrets
//! included, so they come back after a restart), and every source's last view
//! (`views.rs`).

use redb::{TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::redb_backend::{create, db_err, put_record, read_records, Records, RedbStore};
use super::views::{self, SavedView, ViewChanges, VIEWS, VIEW_META};
use super::StoreError;

/// API-created sources by id.
const SOURCES: Records = TableDefinition::new("sources");

/// Creates the source and view tables in `txn` if they do not exist yet.
pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    create(txn, &[SOURCES, VIEWS, VIEW_META])
}

/// An API-created source as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoredSource {
    /// The source document with its secrets.
    pub document: Value,
    /// Whether the operator wants it connected.
    pub connected: bool,
}

/// Sources and their saved views.
pub trait SourceStore: Send + Sync + 'static {
    /// Every stored source by id. An unreadable record is skipped (and logged), its bytes
    /// kept for a later fix.
    fn sources(&self) -> Result<Vec<(String, StoredSource)>, StoreError>;
    fn put_source(&self, id: &str, source: &StoredSource) -> Result<(), StoreError>;
    /// Removes a source and its saved view in one transaction.
    fn delete_source(&self, id: &str) -> Result<(), StoreError>;
    /// A source's saved view, if there is one. Unreadable services are skipped.
    fn view(&self, id: &str) -> Result<Option<SavedView>, StoreError>;
    /// Removes the whole views of `forget`, then writes `changes`, in one transaction.
    fn save_views(&self, changes: &[ViewChanges], forget: &[String]) -> Result<(), StoreError>;
    /// Removes the saved views of sources not in `known` (a source taken out of the
    /// config file while Switchboard was stopped).
    fn retain_views(&self, known: &[String]) -> Result<(), StoreError>;
}

impl SourceStore for RedbStore {
    fn sources(&self) -> Result<Vec<(String, StoredSource)>, StoreError> {
        read_records(&self.db, SOURCES, "source")
    }

    fn put_source(&self, id: &str, source: &StoredSource) -> Result<(), StoreError> {
        put_record(&self.db, SOURCES, id, &serde_json::to_vec(source)?)
    }

    fn delete_source(&self, id: &str) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        txn.open_table(SOURCES)
            .map_err(db_err)?
            .remove(id)
            .map_err(db_err)?;
        views::remove_views(&txn, &[id.to_owned()])?;
        txn.commit().map_err(db_err)
    }

    fn view(&self, id: &str) -> Result<Option<SavedView>, StoreError> {
        views::view(self, id)
    }

    fn save_views(&self, changes: &[ViewChanges], forget: &[String]) -> Result<(), StoreError> {
        views::save_views(self, changes, forget)
    }

    fn retain_views(&self, known: &[String]) -> Result<(), StoreError> {
        views::retain_views(self, known)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use switchboard_connectors::ServiceKey;

    use super::*;
    use crate::store::view_key;

    fn store(dir: &std::path::Path) -> RedbStore {
        RedbStore::open(dir).unwrap()
    }

    #[test]
    fn sources_and_views_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = store(dir.path());
            let source = StoredSource {
                document: json!({"id": "a", "type": "etcd", "password": "secret"}),
                connected: false,
            };
            store.put_source("a", &source).unwrap();
            let web = ServiceKey::named("web");
            let instance = switchboard_connectors::Instance::new("w1", web.clone(), "10.0.0.1", 80);
            let gone = ServiceKey::named("gone");
            let changes = |instances: Option<Vec<u8>>| ViewChanges {
                source: "a".into(),
                stale_since: None,
                services: vec![
                    (
                        view_key("a", &web),
                        Some(serde_json::to_vec(&[&instance]).unwrap()),
                    ),
                    (view_key("a", &gone), instances),
                ],
            };
            store
                .save_views(&[changes(Some(b"[]".to_vec()))], &[])
                .unwrap();
            store.save_views(&[changes(None)], &[]).unwrap();
            // Another source whose id starts the same is not part of `a`'s view.
            let other = ViewChanges {
                source: "ab".into(),
                stale_since: None,
                services: vec![(view_key("ab", &web), Some(b"[]".to_vec()))],
            };
            store.save_views(&[other], &[]).unwrap();
        }
        let store = store(dir.path());
        let sources = store.sources().unwrap();
        assert_eq!(sources[0].1.document["password"], "secret");
        assert!(!sources[0].1.connected);
        let view = store.view("a").unwrap().unwrap();
        assert_eq!(
            view.services.len(),
            1,
            "the gone service's record is removed"
        );
        assert_eq!(view.services[0].service, ServiceKey::named("web"));
        assert_eq!(view.services[0].instances[0].id, "w1");
        store
            .retain_views(&["a".to_owned(), "ab".to_owned()])
            .unwrap();
        assert!(store.view("a").unwrap().is_some());
        store.retain_views(&["ab".to_owned()]).unwrap();
        assert!(store.view("a").unwrap().is_none());
        assert_eq!(store.view("ab").unwrap().unwrap().services.len(), 1);
        store.delete_source("a").unwrap();
        assert!(store.sources().unwrap().is_empty());
        assert!(store.view("a").unwrap().is_none());
    }
}
