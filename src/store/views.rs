//! A source's view as saved for a warm restart: its instances under the source's own
//! service names (so the name mapping in force at the next start applies), and since
//! when it was stale, if it was. Saved service by service, so a change rewrites only
//! the services it touched.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use switchboard_connectors::{Instance, ServiceKey};

use super::redb_backend::{db_err, prefix_range, remove_prefix, Records, RedbStore};
use super::StoreError;

/// Each source's last view: a service's instances by [`view_key`].
pub(super) const VIEWS: Records = TableDefinition::new("source_views");
/// Each source's staleness when its view was last saved, by source id.
pub(super) const VIEW_META: Records = TableDefinition::new("source_view_meta");
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

/// One source's last view. As handed over for saving, the services to write: those
/// changed since the last save, or all of them when the view is saved whole (a service
/// with no instances is gone).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SavedView {
    /// Set when the source was already unreachable when this view was saved.
    pub stale_since: Option<DateTime<Utc>>,
    pub services: Vec<SavedService>,
}

/// One of the source's services, under the source's own key.
#[derive(Debug, Serialize, Deserialize)]
pub struct SavedService {
    pub service: ServiceKey,
    pub instances: Vec<Arc<Instance>>,
}

impl SavedView {
    /// The instances as the source reported them, ready for a full-view update.
    pub fn into_instances(self) -> Vec<Instance> {
        self.services
            .into_iter()
            .flat_map(|saved| {
                let service = saved.service;
                saved.instances.into_iter().map(move |instance| {
                    let mut instance = Arc::unwrap_or_clone(instance);
                    instance.service = service.clone();
                    instance
                })
            })
            .collect()
    }
}

/// A source's saved view, if there is one. Unreadable services are skipped.
pub(super) fn view(store: &RedbStore, id: &str) -> Result<Option<SavedView>, StoreError> {
    let txn = store.db.begin_read().map_err(db_err)?;
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
pub(super) fn save_views(
    store: &RedbStore,
    changes: &[ViewChanges],
    forget: &[String],
) -> Result<(), StoreError> {
    let txn = store.db.begin_write().map_err(db_err)?;
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
pub(super) fn retain_views(store: &RedbStore, known: &[String]) -> Result<(), StoreError> {
    let unknown: Vec<String> = {
        let txn = store.db.begin_read().map_err(db_err)?;
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
    save_views(store, &[], &unknown)
}

/// Removes the whole saved views of `sources` inside `txn`.
pub(super) fn remove_views(
    txn: &redb::WriteTransaction,
    sources: &[String],
) -> Result<(), StoreError> {
    let mut meta = txn.open_table(VIEW_META).map_err(db_err)?;
    for id in sources {
        meta.remove(id.as_str()).map_err(db_err)?;
        remove_prefix(txn, VIEWS, id)?;
    }
    Ok(())
}
