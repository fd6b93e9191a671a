//! One running sync job: follows the catalog's change feed, waits until a changed
//! service has been quiet for `debounce`, plans it against the ledger and applies the
//! plan at most `rate_limit` operations per second. Failed writes are retried with
//! backoff and counted; nothing is dropped. Every `RESYNC` (and after the feed lagged)
//! every covered service is planned again, which also heals a target that lost copies.
//!
//! This file runs the job's loop and its planning passes; `schedule.rs` decides when a
//! changed service is due, `apply.rs` carries a plan out, `ledger_writes.rs` saves the
//! ledger, `keepalive.rs` refreshes kept-alive copies after a restart and `report.rs`
//! keeps the job's status and metrics.

mod apply;
mod keepalive;
mod ledger_writes;
mod report;
mod schedule;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use switchboard_connectors::{ServiceKey, SourceConfig};
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use super::context::Context;
use super::ledger::Ledger;
use super::plan;
use super::spec::SyncSpec;
use super::status::{StatusCell, SyncState};
use super::target::Target;
use super::unsaved::Unsaved;
use crate::telemetry::SyncLabels;

/// How often every covered service is planned again, changed or not.
const RESYNC: Duration = Duration::from_secs(30);
/// Longest a service that keeps changing waits (its changes are written at least this
/// often even if it is never quiet for `debounce`).
const MAX_WAIT_FACTOR: u32 = 10;
/// Ledger changes written per transaction.
const LEDGER_BATCH: usize = 256;
/// How often a job looks at its sources' states (for `deletes_paused`).
const OUTAGE_CHECK: Duration = Duration::from_secs(1);
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// A service with changes not yet written.
#[derive(Clone, Copy)]
struct Pending {
    first: Instant,
    first_at: chrono::DateTime<Utc>,
    last: Instant,
}

pub struct Job {
    ctx: Arc<Context>,
    spec: SyncSpec,
    ledger: Ledger,
    status: Arc<StatusCell>,
    labels: SyncLabels,
    target: Option<Target>,
    /// The target source's configuration `target` was built from (`None`: native).
    target_config: Option<SourceConfig>,
    pending: HashMap<ServiceKey, Pending>,
    full_due: Instant,
    /// Set after a failed pass: nothing runs before it.
    retry_at: Option<Instant>,
    backoff: Duration,
    /// When the next operation may start (the rate limit).
    next_slot: Instant,
    unsaved: Unsaved,
    /// Deletes held back, by service as last planned: how many, and why the first was.
    held: BTreeMap<ServiceKey, (usize, String)>,
    /// Whether a source was untrusted at the last check.
    outage_seen: bool,
}

impl Job {
    pub fn new(ctx: Arc<Context>, spec: SyncSpec, ledger: Ledger, status: Arc<StatusCell>) -> Job {
        let labels = SyncLabels {
            sync: spec.id.clone(),
        };
        // Counters show from the start, at zero, as Prometheus expects.
        let metrics = &ctx.metrics.sync;
        for family in [&metrics.writes, &metrics.deletes, &metrics.errors] {
            drop(family.get_or_create(&labels));
        }
        let now = Instant::now();
        Job {
            ctx,
            labels,
            spec,
            ledger,
            status,
            target: None,
            target_config: None,
            pending: HashMap::new(),
            full_due: now,
            retry_at: None,
            backoff: BACKOFF_MIN,
            next_slot: now,
            unsaved: Unsaved::default(),
            held: BTreeMap::new(),
            outage_seen: false,
        }
    }

    /// Runs until `stop` turns true; the ledger is saved, then returned.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> Ledger {
        let mut changes = self.ctx.catalog.changes();
        let mut outages = tokio::time::interval(OUTAGE_CHECK);
        outages.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.refresh_kept_alive(&stop).await;
        loop {
            if *stop.borrow() {
                break;
            }
            let due = self.next_due();
            tokio::select! {
                _ = stop.changed() => {}
                received = changes.recv() => match received {
                    Ok(changes) => self.mark(&changes.services),
                    Err(broadcast::error::RecvError::Lagged(_)) => self.full_due = Instant::now(),
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = tokio::time::sleep_until(due) => self.run_due(&stop).await,
                _ = outages.tick() => self.watch_outages(),
            }
        }
        self.save_ledger().await;
        self.ledger
    }

    async fn run_due(&mut self, stop: &watch::Receiver<bool>) {
        let now = Instant::now();
        if self.retry_at.is_some_and(|retry| retry > now) {
            return;
        }
        let keys = if self.full_due <= now {
            self.full_due = now + RESYNC;
            None
        } else {
            let ready: Vec<ServiceKey> = (self.pending.iter())
                .filter(|(_, p)| self.ready_at(p) <= now)
                .map(|(key, _)| key.clone())
                .collect();
            if ready.is_empty() {
                return;
            }
            Some(ready)
        };
        let taken: HashMap<ServiceKey, Pending> = match &keys {
            None => std::mem::take(&mut self.pending),
            Some(ready) => (ready.iter())
                .filter_map(|key| self.pending.remove_entry(key))
                .collect(),
        };
        let everything = keys.is_none();
        let (failed, reached) = match self.pass(keys, stop).await {
            Some(failed) => (failed, true),
            // The target could not be built: everything taken waits again, and a full
            // pass is retried as one.
            None => {
                if everything {
                    self.full_due = now;
                }
                (taken.keys().cloned().collect(), false)
            }
        };
        if failed.is_empty() && reached {
            self.retry_at = None;
            self.backoff = BACKOFF_MIN;
        } else {
            // Failed services wait again, keeping their age for the lag.
            for key in failed {
                let pending = taken.get(&key).copied().unwrap_or(Pending {
                    first: now,
                    first_at: Utc::now(),
                    last: now,
                });
                self.pending.entry(key).or_insert(pending);
            }
            self.retry_at = Some(Instant::now() + self.backoff);
            self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        }
        self.show_pending();
    }

    /// Plans and applies `keys` (all covered services when `None`); returns the services
    /// whose writes or deletes failed, or `None` when the target could not be built.
    async fn pass(
        &mut self,
        keys: Option<Vec<ServiceKey>>,
        stop: &watch::Receiver<bool>,
    ) -> Option<BTreeSet<ServiceKey>> {
        let everything = keys.is_none();
        if !self.ensure_target() {
            return None;
        }
        let reports = self.ctx.reports(&self.spec, &self.ledger, keys);
        let plan = plan::plan(&self.spec, &reports, &self.ledger, &*self.ctx, Utc::now());
        let planned: Vec<&ServiceKey> = reports.iter().map(|report| &report.key).collect();
        self.show_plan(&plan, everything, &planned);
        let failed = self.apply(plan, stop).await;
        self.save_ledger().await;
        self.status.update(|status| {
            status.last_run = Some(Utc::now());
            status.synced = self.ledger.len();
            if failed.is_empty() && status.state == SyncState::Error {
                status.state = SyncState::Running;
            }
        });
        let synced = self.ledger.len() as i64;
        self.ctx
            .metrics
            .sync
            .ledger_instances
            .get_or_create(&self.labels)
            .set(synced);
        if everything && !failed.is_empty() {
            // A full pass that failed is retried as a full pass.
            self.full_due = Instant::now();
        }
        Some(failed)
    }

    /// Builds the target's writer, once and again when the target source's configuration
    /// changes; false (and reported) when it cannot be built.
    fn ensure_target(&mut self) -> bool {
        let current = self.ctx.target_config(&self.spec);
        if self.target.is_some() && current == self.target_config {
            return true;
        }
        self.target = None;
        match self.ctx.target(&self.spec, current.as_ref()) {
            Ok(target) => {
                self.target = Some(target);
                self.target_config = current;
                true
            }
            Err(err) => {
                self.fail(err.to_string(), None);
                false
            }
        }
    }
}
