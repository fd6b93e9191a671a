//! The running set of sources: one entry per source with its configuration, status and
//! supervisor task, and what reads and changes it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::Value;
use switchboard_connectors::SourceConfig;
use tokio::task::JoinHandle;

use super::status::{SourceState, StatusCell};
use super::supervisor::Supervisor;
use super::{Federation, FederationError};
use crate::vocab::{Origin, NATIVE_SOURCE};

/// One source and what runs for it.
pub(super) struct Managed {
    pub(super) origin: Origin,
    /// The document as given, secrets included (API sources; null for file sources,
    /// which the API never changes).
    pub(super) document: Value,
    pub(super) config: SourceConfig,
    pub(super) connected: bool,
    pub(super) status: Arc<StatusCell>,
    pub(super) task: Option<JoinHandle<()>>,
}

impl Federation {
    /// Starts a supervisor for `config` with `status`.
    pub(super) fn spawn(
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

    /// Source `id`'s current state.
    pub fn source_state(&self, id: &str) -> Option<SourceState> {
        (self.read().get(id)).map(|managed| managed.status.update(|status| status.state))
    }

    /// Every source's state as `explain` names it, the native registry (always `ready`)
    /// included.
    pub fn state_names(&self) -> HashMap<String, &'static str> {
        let mut names: HashMap<String, &'static str> = (self.read().iter())
            .map(|(id, managed)| (id.clone(), managed.status.update(|s| s.state.as_str())))
            .collect();
        names.insert(NATIVE_SOURCE.to_owned(), SourceState::Ready.as_str());
        names
    }

    /// Source `id`'s configuration (for sync-back jobs writing into it).
    pub fn source_config(&self, id: &str) -> Option<SourceConfig> {
        self.read().get(id).map(|managed| managed.config.clone())
    }

    pub(super) fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Managed>> {
        // Entries are replaced whole; a poisoned lock still holds a consistent map.
        self.sources
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Managed>> {
        self.sources
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reads what `read` takes from source `id`; unknown ids are `NotFound`.
    pub(super) fn entry<T>(
        &self,
        id: &str,
        read: impl FnOnce(&Managed) -> T,
    ) -> Result<T, FederationError> {
        self.read()
            .get(id)
            .map(read)
            .ok_or_else(|| FederationError::NotFound(id.to_owned()))
    }
}
