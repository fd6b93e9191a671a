//! The federation: one supervised task per external source, feeding the catalog.
//!
//! Sources come from the config file (`origin: file`, read-only through the API) and from
//! the REST API (`origin: api`, stored in the embedded store so they come back after a
//! restart). Each connected source has a [`supervisor::Supervisor`]; the API reads their
//! [`SourceStatus`] and changes the set at runtime ([`manage`]). On start, every source's
//! last saved view is loaded as stale before its connector runs ([`persist`]), so a
//! restart during a backend outage still serves that backend's last instances.
//! Readiness waits until every source connected at start has delivered its first full
//! view or failed its first connection attempt.

mod backoff;
mod document;
mod error;
mod manage;
mod persist;
mod probe;
mod status;
mod supervisor;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use chrono::Utc;
use serde::Serialize;
use serde_json::Value;
use switchboard_connectors::{SourceConfig, Update};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use utoipa::ToSchema;

pub use error::FederationError;
pub use probe::ProbeReport;
pub use status::{LastError, SourceState, SourceStatus, StatusCell};

use self::persist::ViewSaver;
use self::supervisor::Supervisor;
use crate::catalog::{Catalog, NameMap, Snapshot, SourceMeta};
use crate::store::{Blocking, SourceStore, StoredSource};
use crate::telemetry::Metrics;
use crate::vocab::{Origin, NATIVE_SOURCE};

/// Sources that have not yet settled (first full view, or first failure).
#[derive(Default)]
pub struct Readiness {
    pending: Mutex<HashSet<String>>,
}

impl Readiness {
    /// Marks a source settled; later calls are no-ops.
    pub fn settle(&self, source: &str) {
        self.lock().remove(source);
    }

    pub fn is_ready(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A source as the API shows it: its status, where it comes from, and its configuration
/// with secrets shown as `***`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SourceView {
    #[serde(flatten)]
    pub status: SourceStatus,
    pub origin: Origin,
    /// Whether the operator wants it connected (`POST .../connect`/`disconnect`).
    pub connected: bool,
    /// The source's document with defaults filled in; secrets read `***`.
    #[schema(value_type = Object)]
    pub config: Value,
}

/// One source and what runs for it.
struct Managed {
    origin: Origin,
    /// The document as given, secrets included (API sources; null for file sources,
    /// which the API never changes).
    document: Value,
    config: SourceConfig,
    connected: bool,
    status: Arc<StatusCell>,
    task: Option<JoinHandle<()>>,
}

/// Every source and its supervisor.
pub struct Federation {
    sources: RwLock<BTreeMap<String, Managed>>,
    /// Serialises changes to the set of sources, so two API calls never interleave.
    changes: tokio::sync::Mutex<()>,
    readiness: Arc<Readiness>,
    catalog: Catalog,
    metrics: Arc<Metrics>,
    store: Arc<dyn SourceStore>,
    saver: ViewSaver,
    stop: watch::Receiver<bool>,
}

/// How a source's service names are mapped, from its common fields.
pub(crate) fn names_of(config: &SourceConfig) -> NameMap {
    let common = &config.common;
    NameMap {
        include: common.include.clone(),
        exclude: common.exclude.clone(),
        rename: common.service_rename.clone(),
        prefix: common.service_prefix.clone(),
    }
}

/// How a source takes part in merging, given its staleness.
pub(crate) fn meta_of(
    config: &SourceConfig,
    names: Arc<NameMap>,
    stale_since: Option<chrono::DateTime<Utc>>,
    expired: bool,
) -> SourceMeta {
    SourceMeta {
        priority: config.common.priority,
        stale_since,
        empty_confirm: Some(config.common.empty_confirm),
        names,
        expired,
    }
}

/// Whether a view stale since `stale_since` is past the source's `max_stale`.
pub(crate) fn past_max_stale(
    config: &SourceConfig,
    stale_since: Option<chrono::DateTime<Utc>>,
) -> bool {
    match (config.common.max_stale, stale_since) {
        (Some(max_stale), Some(since)) => {
            (Utc::now() - since).to_std().unwrap_or_default() >= max_stale
        }
        _ => false,
    }
}

impl Federation {
    /// Loads the API's stored sources next to the file's, puts every connected source's
    /// saved view into the catalog as stale, and starts their supervisors, which run
    /// until `stop` turns true. A bad file source fails here, naming the source; a stored
    /// one that no longer parses is logged and left in the store untouched.
    pub async fn start(
        file: &[SourceConfig],
        catalog: &Catalog,
        metrics: &Arc<Metrics>,
        stop: &watch::Receiver<bool>,
        store: Arc<dyn SourceStore>,
    ) -> anyhow::Result<Federation> {
        let stored = store.blocking(|store| store.sources()).await?;
        // Views of stored sources are kept even when a source no longer parses: fixed
        // through the API, it comes back with its view.
        let known: Vec<String> = stored
            .iter()
            .map(|(id, _)| id.clone())
            .chain(file.iter().map(|config| config.id().to_owned()))
            .collect();
        let mut entries: Vec<(Origin, Value, SourceConfig, bool)> = file
            .iter()
            .map(|config| (Origin::File, Value::Null, config.clone(), true))
            .collect();
        for (
            id,
            StoredSource {
                document,
                connected,
            },
        ) in stored
        {
            if file.iter().any(|config| config.id() == id) {
                tracing::warn!(source.id = %id, "A stored API source has the id of a file source; the file's wins");
                continue;
            }
            match SourceConfig::from_json(document.clone()) {
                Ok(config) => entries.push((Origin::Api, document, config, connected)),
                Err(err) => {
                    tracing::error!(source.id = %id, error = %err, "A stored source no longer parses; not started")
                }
            }
        }
        store
            .blocking(move |store| store.retain_views(&known))
            .await?;
        let federation = Federation {
            sources: RwLock::new(BTreeMap::new()),
            changes: tokio::sync::Mutex::new(()),
            readiness: Arc::new(Readiness::default()),
            saver: ViewSaver::start(catalog.clone(), store.clone()),
            catalog: catalog.clone(),
            metrics: metrics.clone(),
            store,
            stop: stop.clone(),
        };
        for (origin, document, config, connected) in entries {
            let status = Arc::new(StatusCell::new(SourceStatus::initial(&config)));
            let mut task = None;
            if connected {
                match switchboard_connectors::build(&config) {
                    Ok(connector) => {
                        let loaded = federation.load_saved_view(&config, &status).await;
                        federation.readiness.lock().insert(config.id().to_owned());
                        task = Some(federation.spawn(&config, connector, &status, loaded));
                    }
                    Err(err) if origin == Origin::File => {
                        anyhow::bail!("source `{}`: {err}", config.id())
                    }
                    // A stored source must not stop the server from starting: it shows
                    // as down with the reason, and can be fixed through the API.
                    Err(err) => {
                        tracing::error!(source.id = config.id(), error = %err, "Cannot start a stored source");
                        status.update(|s| {
                            s.state = SourceState::Down;
                            s.last_error = Some(LastError {
                                kind: err.kind(),
                                message: err.to_string(),
                                time: Utc::now(),
                            });
                        });
                    }
                }
            } else {
                status.update(|s| s.state = SourceState::Disconnected);
            }
            federation.write().insert(
                config.id().to_owned(),
                Managed {
                    origin,
                    document,
                    config,
                    connected,
                    status,
                    task,
                },
            );
        }
        Ok(federation)
    }

    /// Serves the source's last saved view, stale, until its connector delivers its own.
    /// Returns whether there was one.
    async fn load_saved_view(&self, config: &SourceConfig, status: &StatusCell) -> bool {
        let id = config.id().to_owned();
        let view = match self.store.blocking(move |store| store.view(&id)).await {
            Ok(Some(view)) => view,
            Ok(None) => return false,
            Err(err) => {
                tracing::error!(source.id = config.id(), error = %err, "Cannot read the saved view");
                return false;
            }
        };
        if view.services.is_empty() {
            return false;
        }
        let stale_since = view.stale_since.unwrap_or_else(Utc::now);
        let instances = view.into_instances();
        tracing::info!(
            source.id = config.id(),
            instances = instances.len(),
            "Serving the source's saved view as stale until it connects"
        );
        status.update(|s| s.stale_since = Some(stale_since));
        let expired = past_max_stale(config, Some(stale_since));
        let meta = meta_of(
            config,
            Arc::new(names_of(config)),
            Some(stale_since),
            expired,
        );
        let source: Arc<str> = Arc::from(config.id());
        self.catalog
            .apply_with_meta(&source, Update::Reset(instances), meta)
            .await;
        true
    }

    /// Starts a supervisor for `config` with `status`.
    fn spawn(
        &self,
        config: &SourceConfig,
        connector: Arc<dyn switchboard_connectors::Connector>,
        status: &Arc<StatusCell>,
        reconfigured: bool,
    ) -> JoinHandle<()> {
        let supervisor = Supervisor::new(
            config.clone(),
            connector,
            self.catalog.clone(),
            status.clone(),
            &self.metrics,
            self.readiness.clone(),
            reconfigured,
        );
        tokio::spawn(supervisor.run(self.stop.clone()))
    }

    /// True once every source connected at start has settled.
    pub fn is_ready(&self) -> bool {
        self.readiness.is_ready()
    }

    /// At shutdown: writes every changed view, so a restart finds the latest, and lets go
    /// of the store.
    pub async fn shutdown(&self) {
        self.saver.stop().await;
    }

    /// One source's status, with counts from `snapshot`.
    pub fn status(&self, id: &str, snapshot: &Snapshot) -> Option<SourceStatus> {
        self.read()
            .get(id)
            .map(|managed| with_counts(managed, snapshot))
    }

    /// Every source as the API shows it.
    pub fn views(&self, snapshot: &Snapshot) -> Vec<SourceView> {
        self.read()
            .values()
            .map(|managed| view_of(managed, snapshot))
            .collect()
    }

    /// One source as the API shows it.
    pub fn view(&self, id: &str, snapshot: &Snapshot) -> Option<SourceView> {
        self.read()
            .get(id)
            .map(|managed| view_of(managed, snapshot))
    }

    /// Source `id`'s current state.
    pub fn source_state(&self, id: &str) -> Option<SourceState> {
        (self.read().get(id)).map(|managed| managed.status.update(|status| status.state))
    }

    /// Source `id`'s state as `explain` names it: the native registry is always `ready`;
    /// a source the federation does not know (being removed) is `unknown`.
    pub fn state_name(&self, id: &str) -> String {
        if id == NATIVE_SOURCE {
            return SourceState::Ready.as_str().to_owned();
        }
        (self.source_state(id)).map_or_else(|| "unknown".to_owned(), |s| s.as_str().to_owned())
    }

    /// Source `id`'s configuration (for sync-back jobs writing into it).
    pub fn source_config(&self, id: &str) -> Option<SourceConfig> {
        self.read().get(id).map(|managed| managed.config.clone())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Managed>> {
        // Entries are replaced whole; a poisoned lock still holds a consistent map.
        self.sources
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Managed>> {
        self.sources
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn with_counts(managed: &Managed, snapshot: &Snapshot) -> SourceStatus {
    let mut status = managed.status.get();
    if let Some(counts) = snapshot.sources().get(&status.id) {
        status.instances = counts.instances;
        status.services = counts.services;
        status.guard_holds = counts.guard_holds;
    }
    status
}

fn view_of(managed: &Managed, snapshot: &Snapshot) -> SourceView {
    SourceView {
        status: with_counts(managed, snapshot),
        origin: managed.origin,
        connected: managed.connected,
        config: serde_json::to_value(&managed.config).unwrap_or_default(),
    }
}
