//! Everything Switchboard keeps on disk, behind one handle opened once in `App::start`.
//!
//! Each kind of record is reached through a small trait, so that another backend is one
//! new module implementing them and no caller changes:
//! - [`InstanceStore`] (`instances.rs`): native instances and their heartbeat times;
//! - [`SourceStore`] (`sources.rs`, `views.rs`): sources created through the API and
//!   every source's last view, for warm restarts;
//! - [`SettingStore`] (`settings.rs`): small named settings (the API's merge rules) and
//!   the start-up count;
//! - [`SyncStore`] (`syncs.rs`): sync jobs created through the API, pauses and ledgers;
//! - [`TokenStore`] (`tokens.rs`): access tokens, hashed.
//!
//! [`redb`](redb_backend) is the embedded default: one file in the data dir, owner-only
//! (`private.rs`) as it holds API sources' secrets in clear. Every trait
//! method is synchronous and durable when it returns Ok; async callers run it on a
//! blocking thread through [`Blocking::blocking`].

mod checks;
mod instances;
#[cfg(unix)]
mod private;
mod redb_backend;
mod settings;
mod sources;
mod syncs;
mod tokens;
mod views;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

pub use checks::{CheckDefinition, Probe};
pub use instances::{InstanceOp, InstanceStore, StoredInstance};
pub use redb_backend::RedbStore;
pub use settings::SettingStore;
pub use sources::{SourceStore, StoredSource};
pub use syncs::{Ledger, LedgerChange, LedgerEntry, Spot, StoredSync, SyncStore};
pub use tokens::TokenStore;
pub use views::{view_key, SavedService, SavedView, ViewChanges};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database reported an error (I/O, corruption, or the file is in use). Whether a
    /// retry helps depends on the cause; nothing here retries on its own.
    #[error("store: {0}")]
    Database(Box<redb::Error>),
    #[error("store: cannot encode record: {0}")]
    Encode(#[from] serde_json::Error),
    /// The registry is shutting down and takes no more changes.
    #[error("store: closed for shutdown")]
    Closed,
    /// The store refused the batch this change was written in (the cause is logged once
    /// for the batch); the change was taken back.
    #[error("store: {0}")]
    Refused(String),
}

/// The opened store: one handle per kind of record, all on the same backend.
#[derive(Clone)]
pub struct Store {
    pub instances: Arc<dyn InstanceStore>,
    pub sources: Arc<dyn SourceStore>,
    pub settings: Arc<dyn SettingStore>,
    pub syncs: Arc<dyn SyncStore>,
    pub tokens: Arc<dyn TokenStore>,
}

impl Store {
    /// Opens (or creates) the embedded store in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        Ok(Store::on(Arc::new(RedbStore::open(data_dir)?)))
    }

    /// Every kind of record on `backend`.
    pub fn on<B>(backend: Arc<B>) -> Store
    where
        B: InstanceStore + SourceStore + SettingStore + SyncStore + TokenStore,
    {
        Store {
            instances: backend.clone(),
            sources: backend.clone(),
            settings: backend.clone(),
            syncs: backend.clone(),
            tokens: backend,
        }
    }
}

/// Writes a secret for the operator (the bootstrap token) into a file only its owner
/// may read (`0600` on Unix; elsewhere the data dir's ACLs decide).
pub fn write_secret(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    #[cfg(unix)]
    return private::write_secret(file, bytes);
    #[cfg(not(unix))]
    return std::fs::write(file, bytes);
}

/// Running store calls from async code: every backend call blocks, so it goes to a
/// blocking thread.
pub trait Blocking<S: ?Sized> {
    /// Runs `work` with the store on a blocking thread.
    fn blocking<T, F>(&self, work: F) -> impl Future<Output = Result<T, StoreError>> + Send
    where
        T: Send + 'static,
        F: FnOnce(&S) -> Result<T, StoreError> + Send + 'static;
}

impl<S: ?Sized + Send + Sync + 'static> Blocking<S> for Arc<S> {
    fn blocking<T, F>(&self, work: F) -> impl Future<Output = Result<T, StoreError>> + Send
    where
        T: Send + 'static,
        F: FnOnce(&S) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.clone();
        async move {
            tokio::task::spawn_blocking(move || work(&store))
                .await
                .unwrap_or_else(|err| {
                    let io = std::io::Error::other(format!("store task failed: {err}"));
                    Err(StoreError::Database(Box::new(redb::Error::Io(io))))
                })
        }
    }
}
