//! Start-up: the file's sources and the stored ones, each connected source's saved view
//! served as stale until its connector delivers its own, and a supervisor each.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use chrono::Utc;
use serde_json::Value;
use switchboard_connectors::{SourceConfig, Update};
use tokio::sync::watch;

use super::meta::{meta_of, names_of, past_max_stale};
use super::persist::ViewSaver;
use super::readiness::Readiness;
use super::set::Managed;
use super::status::{LastError, SourceState, SourceStatus, StatusCell};
use super::Federation;
use crate::catalog::Catalog;
use crate::store::{Blocking, SourceStore, StoredSource};
use crate::telemetry::Metrics;
use crate::vocab::Origin;

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
                        federation.readiness.wait_for(config.id());
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
}
