//! The federation: one supervised task per external source, feeding the catalog.
//!
//! Sources come from the config file (`origin: file`, read-only through the API) and from
//! the REST API (`origin: api`, stored in the embedded store so they come back after a
//! restart). Each connected source has a supervisor (`supervisor.rs`: connect, watch,
//! back off, serve the last view stale while down); the API reads their [`SourceStatus`]
//! and changes the set at runtime (`manage.rs`). On start (`start.rs`), every source's
//! last saved view is loaded as stale before its connector runs, so a restart during a
//! backend outage still serves that backend's last instances; `persist.rs` keeps those
//! views saved. A change that moves a source elsewhere must give its secrets again
//! (`secrets.rs`). The running set lives in `set.rs`, what the catalog is told about a
//! source in `meta.rs`, what the API shows in `view.rs`. Readiness (`readiness.rs`) waits
//! until every source connected at start has delivered its first full view or failed its
//! first connection attempt.

mod backoff;
mod document;
mod error;
mod manage;
mod meta;
mod persist;
mod probe;
mod readiness;
mod secrets;
mod set;
mod start;
mod status;
mod supervisor;
#[cfg(test)]
mod tests;
mod view;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use tokio::sync::watch;

pub use error::FederationError;
pub(crate) use meta::{meta_of, names_of, past_max_stale};
pub use probe::ProbeReport;
pub use readiness::Readiness;
pub use status::{LastError, SourceState, SourceStatus, StatusCell};
pub use view::SourceView;

use self::persist::ViewSaver;
use self::set::Managed;
use crate::catalog::Catalog;
use crate::store::SourceStore;
use crate::telemetry::Metrics;

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

impl Federation {
    /// True once every source connected at start has settled.
    pub fn is_ready(&self) -> bool {
        self.readiness.is_ready()
    }

    /// At shutdown: writes every changed view, so a restart finds the latest, and lets go
    /// of the store.
    pub async fn shutdown(&self) {
        self.saver.stop().await;
    }
}
