//! Sync-back: jobs that copy the merged view (or some sources of it) into the native
//! registry or a writable external source, with no loops and no wipe-outs.
//!
//! Jobs come from `[[syncs]]` in the config file (`origin: file`, read-only through the
//! API) and from `/api/v1/syncs` (stored). Each running job is a [`job::Job`] task; its
//! ledger ([`ledger`]) of what it wrote is kept in the embedded store, and all ledgers
//! together ([`echoes`]) tell every job which instances are copies coming back. What a
//! job does is decided by the pure [`plan`], which `POST /api/v1/syncs:plan` shows.

mod context;
mod echoes;
mod job;
mod ledger;
mod plan;
mod spec;
mod status;
mod target;
mod unsaved;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use chrono::Utc;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use utoipa::ToSchema;

pub use plan::{Delete, Plan, Write, WriteReason, ORIGIN_KEY, SYNC_KEY};
pub use spec::{SpecError, SyncSpec};
pub use status::{SyncFailure, SyncState, SyncStatus};

use self::context::Context;
use self::job::Job;
use self::ledger::{only_target, Ledger};
use self::status::StatusCell;
use crate::catalog::Catalog;
use crate::federation::Federation;
use crate::registry::Registry;
use crate::store::{Blocking, StoreError, StoredSync, SyncStore};
use crate::telemetry::Metrics;
use crate::vocab::{Origin, NATIVE_SOURCE};

/// Why a change to the jobs was refused.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("{0}")]
    Invalid(SpecError),
    #[error("sync job `{0}` already exists")]
    Exists(String),
    #[error("sync job `{0}` not found")]
    NotFound(String),
    #[error("sync job `{0}` comes from the config file; change it there")]
    ReadOnly(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A job as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncView {
    #[serde(flatten)]
    pub status: SyncStatus,
    pub origin: Origin,
    pub paused: bool,
    /// The definition with defaults filled in.
    pub config: SyncSpec,
}

/// One job and its task.
struct Managed {
    spec: SyncSpec,
    origin: Origin,
    paused: bool,
    status: Arc<StatusCell>,
    running: Option<Running>,
}

struct Running {
    stop: watch::Sender<bool>,
    /// Gives back the job's ledger when it ends.
    task: JoinHandle<Ledger>,
}

/// Every sync job.
pub struct Syncs {
    jobs: RwLock<BTreeMap<String, Managed>>,
    /// Serialises changes, so two API calls never interleave.
    changes: tokio::sync::Mutex<()>,
    /// Set at shutdown: no job starts after it.
    closed: std::sync::atomic::AtomicBool,
    ctx: Arc<Context>,
}

impl Syncs {
    /// Loads file and stored jobs and starts the ones not paused. A file job that names a
    /// missing or unwritable source stops the start with an error naming it.
    pub async fn start(
        file: &[SyncSpec],
        catalog: &Catalog,
        federation: &Arc<Federation>,
        registry: &Arc<Registry>,
        metrics: &Arc<Metrics>,
        store: Arc<dyn SyncStore>,
    ) -> anyhow::Result<Syncs> {
        let ctx = Arc::new(Context {
            catalog: catalog.clone(),
            federation: federation.clone(),
            registry: registry.clone(),
            store: store.clone(),
            echoes: Default::default(),
            metrics: metrics.clone(),
        });
        let syncs = Syncs {
            jobs: RwLock::default(),
            changes: tokio::sync::Mutex::new(()),
            closed: Default::default(),
            ctx,
        };
        let (stored, paused) = store
            .blocking(|store| Ok((store.syncs()?, store.paused()?)))
            .await?;
        let mut specs: Vec<(SyncSpec, Origin)> = Vec::new();
        for (i, spec) in file.iter().enumerate() {
            syncs
                .check_sources(spec)
                .map_err(|err| anyhow::anyhow!("config: syncs[{i}].{err}"))?;
            specs.push((spec.clone(), Origin::File));
        }
        let stored_ids: Vec<String> = stored.iter().map(|(id, _)| id.clone()).collect();
        for (id, stored) in stored {
            if file.iter().any(|spec| spec.id == id) {
                tracing::warn!(sync = %id, "A stored sync job has the id of a file job; the file job wins");
                continue;
            }
            match SyncSpec::from_json(stored.document) {
                Ok(spec) => specs.push((spec, Origin::Api)),
                Err(err) => {
                    tracing::error!(sync = %id, error = %err, "Skipping a stored sync job that no longer parses")
                }
            }
        }
        // A stored job that no longer parses keeps its ledger for when it is fixed.
        let mut ids: Vec<String> = specs.iter().map(|(spec, _)| spec.id.clone()).collect();
        ids.extend(stored_ids);
        store
            .blocking(move |store| store.forget_other_jobs(&ids))
            .await?;
        // Every ledger is in the echo index before any job runs: a job's first pass
        // must already know every other job's copies.
        let mut loaded = Vec::new();
        for (spec, origin) in specs {
            let ledger = syncs.load_ledger(&spec).await?;
            loaded.push((spec, origin, ledger));
        }
        for (spec, origin, ledger) in loaded {
            let is_paused = paused.contains(&spec.id);
            let status = Arc::new(StatusCell::new(SyncStatus::new(&spec.id, &spec.to)));
            syncs.launch(spec, origin, is_paused, ledger, status);
        }
        Ok(syncs)
    }

    /// Every job.
    pub fn views(&self) -> Vec<SyncView> {
        self.read().values().map(view).collect()
    }

    pub fn view(&self, id: &str) -> Option<SyncView> {
        self.read().get(id).map(view)
    }

    /// Checks, stores and starts a new job.
    pub async fn create(&self, document: Value) -> Result<String, SyncError> {
        let spec = SyncSpec::from_json(document.clone()).map_err(SyncError::Invalid)?;
        let _change = self.changes.lock().await;
        if self.read().contains_key(&spec.id) {
            return Err(SyncError::Exists(spec.id));
        }
        self.check_sources(&spec).map_err(SyncError::Invalid)?;
        let id = spec.id.clone();
        let stored = StoredSync {
            document: serde_json::to_value(&spec).unwrap_or(document),
        };
        let key = id.clone();
        (self.ctx.store)
            .blocking(move |store| store.put_sync(&key, &stored))
            .await?;
        let ledger = self.load_ledger(&spec).await?;
        let status = Arc::new(StatusCell::new(SyncStatus::new(&spec.id, &spec.to)));
        self.launch(spec, Origin::Api, false, ledger, status);
        Ok(id)
    }

    /// Replaces a job's definition (its target cannot change: its ledger is about it).
    pub async fn replace(&self, id: &str, mut document: Value) -> Result<(), SyncError> {
        if self.entry(id, |m| m.origin)? == Origin::File {
            return Err(SyncError::ReadOnly(id.to_owned()));
        }
        if let Value::Object(fields) = &mut document {
            fields
                .entry("id")
                .or_insert_with(|| Value::String(id.to_owned()));
        }
        let spec = SyncSpec::from_json(document).map_err(SyncError::Invalid)?;
        if spec.id != id {
            let message = format!("the body's id `{}` is not the path's `{id}`", spec.id);
            return Err(SyncError::Invalid(SpecError::at("id", message)));
        }
        let _change = self.changes.lock().await;
        let (origin, paused, to) = self.entry(id, |m| (m.origin, m.paused, m.spec.to.clone()))?;
        if origin == Origin::File {
            return Err(SyncError::ReadOnly(id.to_owned()));
        }
        if spec.to != to {
            let message = format!(
                "a job's target cannot change (it is `{to}`); delete the job and create a new one"
            );
            return Err(SyncError::Invalid(SpecError::at("to", message)));
        }
        self.check_sources(&spec).map_err(SyncError::Invalid)?;
        let stored = StoredSync {
            document: serde_json::to_value(&spec).unwrap_or_default(),
        };
        let key = id.to_owned();
        (self.ctx.store)
            .blocking(move |store| store.put_sync(&key, &stored))
            .await?;
        self.relaunch(id, spec, Origin::Api, paused).await
    }

    /// Stops a job and forgets it with its ledger. What it wrote stays in the target,
    /// no longer managed (deleting a job is not a reason to take instances away).
    pub async fn delete(&self, id: &str) -> Result<(), SyncError> {
        let _change = self.changes.lock().await;
        let (origin, spec) = self.entry(id, |m| (m.origin, m.spec.clone()))?;
        if origin == Origin::File {
            return Err(SyncError::ReadOnly(id.to_owned()));
        }
        let ledger = self.stop_and_take_ledger(&spec).await?;
        let key = id.to_owned();
        (self.ctx.store)
            .blocking(move |store| store.delete_sync(&key))
            .await?;
        self.write().remove(id);
        for spot in ledger.keys() {
            self.ctx.echoes.remove(&spec.to, spot);
        }
        self.ctx.metrics.sync.forget(id);
        Ok(())
    }

    /// Pauses (stops writing, keeps the ledger) or resumes a job; the choice is stored.
    pub async fn set_paused(&self, id: &str, paused: bool) -> Result<(), SyncError> {
        let _change = self.changes.lock().await;
        let (spec, origin, was) = self.entry(id, |m| (m.spec.clone(), m.origin, m.paused))?;
        if was == paused {
            return Ok(());
        }
        let key = id.to_owned();
        (self.ctx.store)
            .blocking(move |store| store.set_paused(&key, paused))
            .await?;
        self.relaunch(id, spec, origin, paused).await
    }

    /// What `document`'s job would write and delete now (its ledger if it exists).
    pub async fn plan(&self, document: Value) -> Result<Plan, SyncError> {
        let spec = SyncSpec::from_json(document).map_err(SyncError::Invalid)?;
        self.check_sources(&spec).map_err(SyncError::Invalid)?;
        let (id, to) = (spec.id.clone(), spec.to.clone());
        let ledger = (self.ctx.store)
            .blocking(move |store| store.ledger(&id).map(|l| only_target(l, &to)))
            .await?;
        let reports = self.ctx.reports(&spec, &ledger, None);
        Ok(plan::plan(&spec, &reports, &ledger, &*self.ctx, Utc::now()))
    }

    /// Stops every job, saving its ledger.
    pub async fn shutdown(&self) {
        let _change = self.changes.lock().await;
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        let ids: Vec<String> = self.read().keys().cloned().collect();
        for id in ids {
            self.halt(&id).await;
        }
    }

    /// Source ids a job names must exist, and its target must be writable.
    fn check_sources(&self, spec: &SyncSpec) -> Result<(), SpecError> {
        let exists =
            |id: &str| id == NATIVE_SOURCE || self.ctx.federation.source_state(id).is_some();
        if let spec::From::Sources(ids) = &spec.from {
            for (i, id) in ids.iter().enumerate() {
                if !exists(id) {
                    return Err(SpecError::at(
                        format!("from[{i}]"),
                        format!("no source `{id}`"),
                    ));
                }
            }
        }
        if !exists(&spec.to) {
            return Err(SpecError::at("to", format!("no source `{}`", spec.to)));
        }
        if let Some(config) = self.ctx.target_config(spec) {
            target::Target::external(&config).map_err(|err| {
                SpecError::at("to", format!("cannot write to `{}`: {err}", spec.to))
            })?;
        }
        Ok(())
    }

    /// Job `spec`'s stored ledger, its entries put in the echo index.
    async fn load_ledger(&self, spec: &SyncSpec) -> Result<Ledger, SyncError> {
        let ledger = self.stored_ledger(spec).await?;
        for spot in ledger.keys() {
            self.ctx.echoes.add(&spec.to, spot);
        }
        Ok(ledger)
    }

    /// Job `spec`'s ledger as stored. Entries about another target (a file job whose `to`
    /// changed) are dropped: the job's copies there are no longer its business.
    async fn stored_ledger(&self, spec: &SyncSpec) -> Result<Ledger, SyncError> {
        let (id, to) = (spec.id.clone(), spec.to.clone());
        let ledger = (self.ctx.store)
            .blocking(move |store| store.ledger_for(&id, &to))
            .await?;
        Ok(ledger)
    }

    /// Stops job `spec`'s task, if it runs, and returns its final ledger (the stored one
    /// for a paused job).
    async fn stop_and_take_ledger(&self, spec: &SyncSpec) -> Result<Ledger, SyncError> {
        match self.halt(&spec.id).await {
            Some(ledger) => Ok(ledger),
            None => self.stored_ledger(spec).await,
        }
    }

    /// Lists job `spec` and starts its task unless paused (or the server is stopping).
    fn launch(
        &self,
        spec: SyncSpec,
        origin: Origin,
        paused: bool,
        ledger: Ledger,
        status: Arc<StatusCell>,
    ) {
        status.update(|s| {
            s.synced = ledger.len();
            s.state = if paused {
                SyncState::Paused
            } else {
                SyncState::Running
            };
        });
        let closed = self.closed.load(std::sync::atomic::Ordering::SeqCst);
        let running = (!paused && !closed).then(|| {
            let job = Job::new(self.ctx.clone(), spec.clone(), ledger, status.clone());
            let (stop, stopped) = watch::channel(false);
            let task = tokio::spawn(job.run(stopped));
            Running { stop, task }
        });
        let managed = Managed {
            spec,
            origin,
            paused,
            status,
            running,
        };
        self.write().insert(managed.spec.id.clone(), managed);
    }

    /// Stops job `id` and starts it again as `spec`, keeping its status counters. Its
    /// target never changes (`replace` refuses that), so its copies stay in the echo
    /// index as they are.
    async fn relaunch(
        &self,
        id: &str,
        spec: SyncSpec,
        origin: Origin,
        paused: bool,
    ) -> Result<(), SyncError> {
        let (old, status) = self.entry(id, |m| (m.spec.clone(), m.status.clone()))?;
        let ledger = self.stop_and_take_ledger(&old).await?;
        self.launch(spec, origin, paused, ledger, status);
        Ok(())
    }

    /// Stops job `id`'s task, if it runs, and returns its final ledger.
    async fn halt(&self, id: &str) -> Option<Ledger> {
        let running = self.write().get_mut(id)?.running.take()?;
        let _ = running.stop.send(true);
        match running.task.await {
            Ok(ledger) => Some(ledger),
            Err(err) => {
                tracing::error!(sync = %id, error = %err, "A sync job ended abnormally");
                None
            }
        }
    }

    fn entry<T>(&self, id: &str, pick: impl FnOnce(&Managed) -> T) -> Result<T, SyncError> {
        self.read()
            .get(id)
            .map(pick)
            .ok_or_else(|| SyncError::NotFound(id.to_owned()))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Managed>> {
        self.jobs.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Managed>> {
        self.jobs.write().unwrap_or_else(|p| p.into_inner())
    }
}

fn view(managed: &Managed) -> SyncView {
    let mut status = managed.status.get().as_of_now();
    // A job's task only ends when it is stopped; one that ended on its own failed.
    if managed
        .running
        .as_ref()
        .is_some_and(|running| running.task.is_finished())
    {
        status.state = SyncState::Error;
        status.last_error = Some(SyncFailure {
            message: "the job's task ended unexpectedly; pause and resume the job to restart it"
                .to_owned(),
            at: Utc::now(),
            service: None,
        });
    }
    SyncView {
        status,
        origin: managed.origin,
        paused: managed.paused,
        config: managed.spec.clone(),
    }
}
