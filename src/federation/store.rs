//! What the federation keeps in the embedded store: sources created through the API (as
//! the documents they were given, secrets included, so they come back after a restart),
//! every source's last view (for warm restarts; one record per service, so a change
//! rewrites only what it touched), and the API's merge rules.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchboard_connectors::ServiceKey;

use crate::catalog::{MergeRule, SavedService, SavedView};
use crate::registry::{
    create_tables, db_err, on_blocking_thread, prefix_range, put_record, read_records,
    remove_prefix, StoreError,
};

/// API-created sources by id.
const SOURCES: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("sources");
/// Each source's last view: a service's instances by [`view_key`].
const VIEWS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("source_views");
/// Each source's staleness when its view was last saved, by source id.
const VIEW_META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("source_view_meta");
/// Separates the parts of a [`view_key`]; no id or name contains it.
const SEP: char = '\u{0}';

/// The key of one service of one source's saved view.
pub fn view_key(source: &str, service: &ServiceKey) -> String {
    format!(
        "{source}{SEP}{}{SEP}{}{SEP}{}",
        service.namespace, service.group, service.name
    )
}

/// The service a [`view_key`] names.
fn service_of(key: &str) -> Option<ServiceKey> {
    let mut parts = key.split(SEP).skip(1);
    let (namespace, group, name) = (parts.next()?, parts.next()?, parts.next()?);
    Some(ServiceKey::new(namespace, group, name))
}

/// The staleness record of a saved view.
#[derive(Debug, Serialize, Deserialize)]
struct ViewMeta {
    stale_since: Option<DateTime<Utc>>,
}

/// What changed in one source's view, encoded for the store.
pub struct ViewChanges {
    pub source: String,
    pub stale_since: Option<DateTime<Utc>>,
    /// By [`view_key`]: the service's instances as JSON, or `None` when it is gone.
    pub services: Vec<(String, Option<Vec<u8>>)>,
}
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
        create_tables(&db, &[SOURCES, VIEWS, VIEW_META, SETTINGS])?;
        Ok(SourceStore { db })
    }

    /// Runs `work` on a blocking thread, as every method here must be.
    pub async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&SourceStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        on_blocking_thread(self, work).await
    }

    /// Every stored source by id. An unreadable record is skipped (and logged), its bytes
    /// kept for a later fix.
    pub fn sources(&self) -> Result<Vec<(String, StoredSource)>, StoreError> {
        read_records(&self.db, SOURCES, "source")
    }

    pub fn put_source(&self, id: &str, source: &StoredSource) -> Result<(), StoreError> {
        put_record(&self.db, SOURCES, id, &serde_json::to_vec(source)?)
    }

    /// Removes a source and its saved view in one transaction.
    pub fn delete_source(&self, id: &str) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        txn.open_table(SOURCES)
            .map_err(db_err)?
            .remove(id)
            .map_err(db_err)?;
        remove_views(&txn, &[id.to_owned()])?;
        txn.commit().map_err(db_err)
    }

    /// A source's saved view, if there is one. Unreadable services are skipped.
    pub fn view(&self, id: &str) -> Result<Option<SavedView>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let meta = txn.open_table(VIEW_META).map_err(db_err)?;
        let Some(bytes) = meta.get(id).map_err(db_err)? else {
            return Ok(None);
        };
        let stale_since = serde_json::from_slice::<ViewMeta>(bytes.value())
            .map(|meta| meta.stale_since)
            .unwrap_or_default();
        let views = txn.open_table(VIEWS).map_err(db_err)?;
        let (from, to) = prefix_range(id);
        let mut services = Vec::new();
        for row in views.range(from.as_str()..to.as_str()).map_err(db_err)? {
            let (key, bytes) = row.map_err(db_err)?;
            let parsed = service_of(key.value()).zip(serde_json::from_slice(bytes.value()).ok());
            match parsed {
                Some((service, instances)) => services.push(SavedService { service, instances }),
                None => tracing::warn!(source.id = id, "Ignoring an unreadable saved service"),
            }
        }
        Ok(Some(SavedView {
            stale_since,
            services,
        }))
    }

    /// Removes whole views, then writes views' changes, in one transaction.
    pub fn save_views(&self, changes: &[ViewChanges], forget: &[String]) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        // Removals were asked for before these changes were taken: they go first.
        remove_views(&txn, forget)?;
        {
            let mut views = txn.open_table(VIEWS).map_err(db_err)?;
            let mut meta = txn.open_table(VIEW_META).map_err(db_err)?;
            for change in changes {
                let record = serde_json::to_vec(&ViewMeta {
                    stale_since: change.stale_since,
                })?;
                meta.insert(change.source.as_str(), record.as_slice())
                    .map_err(db_err)?;
                for (key, instances) in &change.services {
                    match instances {
                        Some(bytes) => views.insert(key.as_str(), bytes.as_slice()),
                        None => views.remove(key.as_str()),
                    }
                    .map_err(db_err)?;
                }
            }
        }
        txn.commit().map_err(db_err)
    }

    /// Removes the saved views of sources that no longer exist (a source taken out of the
    /// config file while Switchboard was stopped).
    pub fn retain_views(&self, known: &[String]) -> Result<(), StoreError> {
        let unknown: Vec<String> = {
            let txn = self.db.begin_read().map_err(db_err)?;
            let meta = txn.open_table(VIEW_META).map_err(db_err)?;
            let mut unknown = Vec::new();
            for row in meta.iter().map_err(db_err)? {
                let (id, _) = row.map_err(db_err)?;
                if !known.iter().any(|k| k == id.value()) {
                    unknown.push(id.value().to_owned());
                }
            }
            unknown
        };
        if unknown.is_empty() {
            return Ok(());
        }
        self.save_views(&[], &unknown)
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
        put_record(
            &self.db,
            SETTINGS,
            MERGE_RULES_KEY,
            &serde_json::to_vec(rules)?,
        )
    }
}

/// Removes the whole saved views of `sources` inside `txn`.
fn remove_views(txn: &redb::WriteTransaction, sources: &[String]) -> Result<(), StoreError> {
    let mut meta = txn.open_table(VIEW_META).map_err(db_err)?;
    for id in sources {
        meta.remove(id.as_str()).map_err(db_err)?;
        remove_prefix(txn, VIEWS, id)?;
    }
    Ok(())
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
        let view = store.view("a").unwrap().unwrap();
        assert_eq!(
            view.services.len(),
            1,
            "the gone service's record is removed"
        );
        assert_eq!(view.services[0].service, ServiceKey::named("web"));
        assert_eq!(view.services[0].instances[0].id, "w1");
        assert_eq!(store.merge_rules().unwrap()[0].policy, Policy::Failover);
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
