//! Changing the set of sources at runtime: create, replace, patch, delete, connect and
//! disconnect. Each change is stored first (API sources), so an error leaves both the
//! store and the running set as they were; only the source concerned is touched.

use std::sync::Arc;

use chrono::Utc;
use serde_json::Value;
use switchboard_connectors::{Connector, SourceConfig, SourceConfigError};
use tokio::task::JoinHandle;

use super::document::{merge_patch, restore_secrets};
use super::secrets::missing_secrets;
use super::status::{SourceState, SourceStatus, StatusCell};
use super::supervisor::SourceMetrics;
use super::{Federation, FederationError, Managed};
use crate::store::{Blocking, StoredSource};
use crate::vocab::{Origin, NATIVE_SOURCE};

/// Parses and checks a document, and builds its connector (which checks what only the
/// adapter knows), without starting anything.
pub(super) fn parse(
    document: Value,
) -> Result<(SourceConfig, Arc<dyn Connector>), FederationError> {
    let config = SourceConfig::from_json(document)?;
    if config.id() == NATIVE_SOURCE {
        return Err(FederationError::invalid(
            "id",
            "`native` is the built-in registry's id; choose another",
        ));
    }
    let connector = build(&config)?;
    Ok((config, connector))
}

/// Builds a source's connector; what the adapter refuses names its field when it can.
fn build(config: &SourceConfig) -> Result<Arc<dyn Connector>, FederationError> {
    switchboard_connectors::build(config).map_err(|err| SourceConfigError::from(err).into())
}

/// Stops a supervisor and waits until it has stopped, so nothing it does can land after.
async fn halt(task: Option<JoinHandle<()>>) {
    if let Some(task) = task {
        task.abort();
        let _ = task.await;
    }
}

impl Federation {
    /// Adds a source from the API and connects it.
    pub async fn create(&self, document: Value) -> Result<String, FederationError> {
        let _change = self.changes.lock().await;
        let (config, connector) = parse(document.clone())?;
        let id = config.id().to_owned();
        if self.read().contains_key(&id) {
            return Err(FederationError::Exists(id));
        }
        self.store_source(&id, &document, true).await?;
        let status = Arc::new(StatusCell::new(SourceStatus::initial(&config)));
        let task = self.spawn(&config, connector, &status, false);
        tracing::info!(source.id = %id, "Source created through the API");
        self.write().insert(
            id.clone(),
            Managed {
                origin: Origin::Api,
                document,
                config,
                connected: true,
                status,
                task: Some(task),
            },
        );
        Ok(id)
    }

    /// Replaces an API source's document (`PUT`). Secrets sent as `***` keep their value
    /// unless the document moves the source ([`missing_secrets`]).
    pub async fn replace(&self, id: &str, document: Value) -> Result<(), FederationError> {
        let _change = self.changes.lock().await;
        let current = self.current_document(id)?;
        let request = document.clone();
        self.reconfigure(id, document, &current, &request).await
    }

    /// Applies a JSON merge patch to an API source's document (`PATCH`).
    pub async fn patch(&self, id: &str, patch: &Value) -> Result<(), FederationError> {
        let _change = self.changes.lock().await;
        let current = self.current_document(id)?;
        let mut document = current.clone();
        merge_patch(&mut document, patch);
        self.reconfigure(id, document, &current, patch).await
    }

    /// The stored document of an API source; the errors a change to it can meet first.
    fn current_document(&self, id: &str) -> Result<Value, FederationError> {
        let (origin, document) = self.entry(id, |m| (m.origin, m.document.clone()))?;
        if origin == Origin::File {
            return Err(FederationError::ReadOnly(id.to_owned()));
        }
        Ok(document)
    }

    /// Swaps in a new document: only this source reconnects. Its instances stay served,
    /// stale, until the new connection's first full view replaces them. `request` is what
    /// the client sent (the PUT body or the patch): only what it sends counts as a secret
    /// given again.
    async fn reconfigure(
        &self,
        id: &str,
        mut document: Value,
        current: &Value,
        request: &Value,
    ) -> Result<(), FederationError> {
        let Some(object) = document.as_object_mut() else {
            return Err(FederationError::Invalid {
                field: None,
                message: "a source document must be a JSON object".to_owned(),
            });
        };
        match object.get("id") {
            None => {
                object.insert("id".to_owned(), Value::String(id.to_owned()));
            }
            Some(given) if given.as_str() == Some(id) => {}
            Some(_) => {
                return Err(FederationError::invalid(
                    "id",
                    format!(
                        "the document's `id` must be `{id}`, the source's id (ids cannot change)"
                    ),
                ))
            }
        }
        let missing = missing_secrets(current, &document, request);
        if !missing.is_empty() {
            return Err(FederationError::SecretsRequired(missing));
        }
        restore_secrets(&mut document, current);
        let (config, connector) = parse(document.clone())?;
        let connected = self.entry(id, |m| m.connected)?;
        self.store_source(id, &document, connected).await?;
        let (old_task, old_status) = {
            let mut sources = self.write();
            let managed = sources
                .get_mut(id)
                .ok_or_else(|| FederationError::NotFound(id.to_owned()))?;
            (managed.task.take(), managed.status.get())
        };
        halt(old_task).await;
        let status = Arc::new(StatusCell::new(SourceStatus::initial(&config)));
        let task = if connected {
            let stale_since = old_status.stale_since.unwrap_or_else(Utc::now);
            status.update(|s| s.stale_since = Some(stale_since));
            Some(self.spawn(&config, connector, &status, true))
        } else {
            status.update(|s| s.state = SourceState::Disconnected);
            None
        };
        tracing::info!(source.id = %id, "Source reconfigured through the API");
        if let Some(managed) = self.write().get_mut(id) {
            managed.document = document;
            managed.config = config;
            managed.status = status;
            managed.task = task;
        }
        Ok(())
    }

    /// Removes an API source and everything it contributed.
    pub async fn delete(&self, id: &str) -> Result<(), FederationError> {
        let _change = self.changes.lock().await;
        self.current_document(id)?;
        let key = id.to_owned();
        self.store
            .blocking(move |store| store.delete_source(&key))
            .await?;
        let removed = self.write().remove(id);
        if let Some(managed) = removed {
            halt(managed.task).await;
        }
        self.withdraw(id).await;
        self.readiness.settle(id);
        SourceMetrics::forget(&self.metrics, id);
        tracing::info!(source.id = %id, "Source deleted through the API");
        Ok(())
    }

    /// Stops a source and takes its instances out of the catalog (an operator's action,
    /// unlike an outage, which keeps them stale).
    pub async fn disconnect(&self, id: &str) -> Result<(), FederationError> {
        let _change = self.changes.lock().await;
        let (origin, document) = self.entry(id, |m| (m.origin, m.document.clone()))?;
        if origin == Origin::Api {
            self.store_source(id, &document, false).await?;
        }
        let task = self.write().get_mut(id).and_then(|m| {
            m.connected = false;
            m.task.take()
        });
        halt(task).await;
        self.withdraw(id).await;
        if let Some(managed) = self.read().get(id) {
            managed.status.update(|s| {
                s.state = SourceState::Disconnected;
                s.endpoint = None;
                s.stale_since = None;
            });
        }
        SourceMetrics::new(&self.metrics, id).show_state(SourceState::Disconnected);
        self.readiness.settle(id);
        tracing::info!(source.id = %id, "Source disconnected through the API");
        Ok(())
    }

    /// Connects a disconnected source again; a connected one is left as it is.
    pub async fn connect(&self, id: &str) -> Result<(), FederationError> {
        let _change = self.changes.lock().await;
        let (origin, document, config, connected) = self.entry(id, |m| {
            (m.origin, m.document.clone(), m.config.clone(), m.connected)
        })?;
        if connected {
            return Ok(());
        }
        if origin == Origin::Api {
            self.store_source(id, &document, true).await?;
        }
        let connector = build(&config)?;
        let status = Arc::new(StatusCell::new(SourceStatus::initial(&config)));
        let task = self.spawn(&config, connector, &status, false);
        if let Some(managed) = self.write().get_mut(id) {
            managed.connected = true;
            managed.status = status;
            managed.task = Some(task);
        }
        tracing::info!(source.id = %id, "Source connected through the API");
        Ok(())
    }

    /// Takes a source's instances out of the catalog and forgets its saved view.
    async fn withdraw(&self, id: &str) {
        let source: Arc<str> = Arc::from(id);
        self.catalog.drop_source(&source).await;
        self.saver.forget(id);
    }

    async fn store_source(
        &self,
        id: &str,
        document: &Value,
        connected: bool,
    ) -> Result<(), FederationError> {
        let id = id.to_owned();
        let record = StoredSource {
            document: document.clone(),
            connected,
        };
        self.store
            .blocking(move |store| store.put_source(&id, &record))
            .await?;
        Ok(())
    }
}
