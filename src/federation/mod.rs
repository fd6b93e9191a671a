//! The federation: one supervised task per external source, feeding the catalog.
//!
//! [`Federation::start`] builds a connector per configured source and runs a
//! [`supervisor::Supervisor`] for each; the API reads their [`SourceStatus`]. Readiness
//! waits until every source has delivered its first full view or failed its first
//! connection attempt.

mod backoff;
mod status;
mod supervisor;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use switchboard_connectors::SourceConfig;
use tokio::sync::watch;

pub use status::{LastError, SourceState, SourceStatus};

use self::status::StatusCell;
use self::supervisor::Supervisor;
use crate::catalog::{Catalog, Snapshot};
use crate::telemetry::Metrics;

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

/// Every external source and its supervisor.
pub struct Federation {
    /// Each source's status, as its supervisor keeps it.
    sources: BTreeMap<String, Arc<StatusCell>>,
    readiness: Arc<Readiness>,
}

impl Federation {
    /// Builds every source's connector (a bad source config fails here, naming the
    /// source) and starts its supervisor, which runs until `stop` turns true.
    pub fn start(
        configs: &[SourceConfig],
        catalog: &Catalog,
        metrics: &Arc<Metrics>,
        stop: &watch::Receiver<bool>,
    ) -> anyhow::Result<Federation> {
        let readiness = Arc::new(Readiness::default());
        let mut sources = BTreeMap::new();
        let mut supervisors = Vec::new();
        for config in configs {
            let connector = switchboard_connectors::build(config)
                .map_err(|err| anyhow::anyhow!("source `{}`: {err}", config.id()))?;
            let status = Arc::new(StatusCell::new(SourceStatus::initial(config)));
            readiness
                .pending
                .lock()
                .expect("fresh lock")
                .insert(config.id().to_owned());
            sources.insert(config.id().to_owned(), status.clone());
            supervisors.push(Supervisor::new(
                config.clone(),
                connector,
                catalog.clone(),
                status,
                metrics,
                readiness.clone(),
            ));
        }
        for supervisor in supervisors {
            tokio::spawn(supervisor.run(stop.clone()));
        }
        Ok(Federation { sources, readiness })
    }

    /// True once every source has settled.
    pub fn is_ready(&self) -> bool {
        self.readiness.is_ready()
    }

    /// Every source's status, by id, with counts from `snapshot`.
    pub fn statuses(&self, snapshot: &Snapshot) -> Vec<SourceStatus> {
        self.sources
            .keys()
            .filter_map(|id| self.status(id, snapshot))
            .collect()
    }

    /// One source's status, with counts from `snapshot`.
    pub fn status(&self, id: &str, snapshot: &Snapshot) -> Option<SourceStatus> {
        let mut status = self.sources.get(id)?.get();
        if let Some(counts) = snapshot.sources().get(id) {
            status.instances = counts.instances;
            status.services = counts.services;
            status.guard_holds = counts.guard_holds;
        }
        Some(status)
    }
}
