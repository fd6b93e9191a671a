//! One running sync job: follows the catalog's change feed, waits until a changed
//! service has been quiet for `debounce`, plans it against the ledger and applies the
//! plan at most `rate_limit` operations per second. Failed writes are retried with
//! backoff and counted; nothing is dropped. Every `RESYNC` (and after the feed lagged)
//! every covered service is planned again, which also heals a target that lost copies.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use switchboard_connectors::{ServiceKey, SourceConfig};
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use super::echoes::Echoes;
use super::ledger::{service_entries, Ledger, LedgerEntry, Spot};
use super::plan::{self, Plan, World};
use super::spec::{From, SyncSpec};
use super::status::{StatusCell, SyncFailure, SyncState};
use super::target::{Target, WriteError};
use crate::catalog::{Catalog, KeyFilter, ServiceReports};
use crate::federation::Federation;
use crate::registry::Registry;
use crate::store::{Blocking, LedgerChange, SyncStore};
use crate::telemetry::{Metrics, SyncLabels};
use crate::vocab::{SourceState, NATIVE_SOURCE};

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

/// What every job shares.
pub struct Context {
    pub catalog: Catalog,
    pub federation: Arc<Federation>,
    pub registry: Arc<Registry>,
    pub store: Arc<dyn SyncStore>,
    pub echoes: Echoes,
    pub metrics: Arc<Metrics>,
}

impl World for Context {
    fn is_echo(&self, source: &str, name: &str, host: &str, port: u16) -> bool {
        self.echoes.contains(source, name, host, port)
    }

    fn trusts_absence(&self, source: &str) -> Result<(), String> {
        if source == NATIVE_SOURCE {
            return Ok(());
        }
        // A deleted or disconnected source is an operator's decision, not an outage.
        match self.federation.source_state(source) {
            None | Some(SourceState::Ready | SourceState::Degraded | SourceState::Disconnected) => {
                Ok(())
            }
            Some(other) => Err(format!("source `{source}` is {}", other.as_str())),
        }
    }

    fn sees(&self, target: &str) -> bool {
        target == NATIVE_SOURCE
            || matches!(
                self.federation.source_state(target),
                Some(SourceState::Ready | SourceState::Degraded)
            )
    }
}

impl Context {
    /// The target `spec` writes into, built from `config`, the target source's
    /// configuration ([`Context::target_config`]).
    pub fn target(
        &self,
        spec: &SyncSpec,
        config: Option<&SourceConfig>,
    ) -> Result<Target, WriteError> {
        if spec.to_native() {
            return Ok(Target::Native(self.registry.clone()));
        }
        let config = config.ok_or_else(|| {
            WriteError::NotWritable(format!("target source `{}` does not exist", spec.to))
        })?;
        Target::external(config)
    }

    /// The configuration of `spec`'s target source (`None` for the native registry or a
    /// missing source).
    pub fn target_config(&self, spec: &SyncSpec) -> Option<SourceConfig> {
        (!spec.to_native())
            .then(|| self.federation.source_config(&spec.to))
            .flatten()
    }

    /// Every source's report of the services `spec` covers or `ledger` holds (or only
    /// of `keys`, when given).
    pub fn reports(
        &self,
        spec: &SyncSpec,
        ledger: &Ledger,
        keys: Option<Vec<ServiceKey>>,
    ) -> Vec<ServiceReports> {
        let target = Some(spec.to.as_str());
        match keys {
            Some(keys) => self.catalog.reports(&KeyFilter::Keys(keys), target),
            None => {
                let covering = spec.clone();
                let matching = KeyFilter::Matching(Arc::new(move |key: &ServiceKey| {
                    covering.covers(&key.name)
                }));
                let mut reports = self.catalog.reports(&matching, target);
                let seen: BTreeSet<&ServiceKey> = reports.iter().map(|r| &r.key).collect();
                let unseen: BTreeSet<ServiceKey> = (ledger.keys())
                    .map(|spot| &spot.service)
                    .filter(|key| !seen.contains(key))
                    .cloned()
                    .collect();
                if !unseen.is_empty() {
                    let keys = KeyFilter::Keys(unseen.into_iter().collect());
                    reports.extend(self.catalog.reports(&keys, target));
                }
                reports
            }
        }
    }
}

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
    unsaved: Vec<LedgerChange>,
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
            unsaved: Vec::new(),
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

    fn mark(&mut self, keys: &[ServiceKey]) {
        let now = Instant::now();
        for key in keys {
            let ours = self.spec.covers(&key.name) || self.has_ledger_service(key);
            if !ours {
                continue;
            }
            let pending = self.pending.entry(key.clone()).or_insert(Pending {
                first: now,
                first_at: Utc::now(),
                last: now,
            });
            pending.last = now;
        }
        self.show_pending();
    }

    fn has_ledger_service(&self, key: &ServiceKey) -> bool {
        service_entries(&self.ledger, key).next().is_some()
    }

    fn max_wait(&self) -> Duration {
        (self.spec.debounce * MAX_WAIT_FACTOR).max(Duration::from_secs(1))
    }

    fn ready_at(&self, pending: &Pending) -> Instant {
        (pending.last + self.spec.debounce).min(pending.first + self.max_wait())
    }

    fn next_due(&self) -> Instant {
        let pending = self.pending.values().map(|p| self.ready_at(p)).min();
        let due = pending.map_or(self.full_due, |at| at.min(self.full_due));
        self.retry_at.map_or(due, |retry| due.max(retry))
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

    async fn apply(&mut self, plan: Plan, stop: &watch::Receiver<bool>) -> BTreeSet<ServiceKey> {
        let mut failed = BTreeSet::new();
        for (spot, entry) in plan.adopted {
            self.record(spot, Some(entry));
        }
        for spot in plan.released {
            tracing::info!(sync = %self.spec.id, service = %spot.service, endpoint = %format!("{}:{}", spot.host, spot.port), "Someone else now holds a copied endpoint in the target; it is no longer the job's");
            self.record(spot, None);
        }
        for write in plan.writes {
            if !self.pace(stop).await {
                failed.insert(write.instance.service.clone());
                continue;
            }
            let spot = Spot::of(&write.instance);
            // Known as an echo before the target can show it to another job.
            let fresh = !self.ledger.contains_key(&spot);
            if fresh {
                self.ctx.echoes.add(&self.spec.to, &spot);
            }
            let result = self.target_ref().register(&write.instance).await;
            if fresh {
                self.ctx.echoes.remove(&self.spec.to, &spot);
            }
            match result {
                Ok(()) => {
                    let entry = LedgerEntry {
                        target: self.spec.to.clone(),
                        written: write.instance,
                        origin: write.origin,
                        hash: write.hash,
                        written_at: Utc::now(),
                    };
                    self.record(spot, Some(entry));
                    self.save_full_batch().await;
                    self.status.update(|status| status.writes += 1);
                    self.ctx
                        .metrics
                        .sync
                        .writes
                        .get_or_create(&self.labels)
                        .inc();
                }
                Err(err) => {
                    let permanent = err.is_permanent();
                    self.fail(
                        format!("writing {}: {err}", write.instance.address()),
                        Some(&spot.service),
                    );
                    // A write the target can never take waits for the next resync (or
                    // a change) instead of holding every other service in backoff.
                    if !permanent {
                        failed.insert(spot.service);
                    }
                }
            }
        }
        for delete in plan.deletes {
            if !self.pace(stop).await {
                failed.insert(delete.instance.service.clone());
                continue;
            }
            let spot = Spot::of(&delete.instance);
            match self.target_ref().deregister(&delete.instance).await {
                Ok(()) => {
                    self.record(spot, None);
                    self.save_full_batch().await;
                    self.status.update(|status| status.deletes += 1);
                    self.ctx
                        .metrics
                        .sync
                        .deletes
                        .get_or_create(&self.labels)
                        .inc();
                }
                Err(err) => {
                    self.fail(
                        format!("deleting {}: {err}", delete.instance.address()),
                        Some(&spot.service),
                    );
                    failed.insert(spot.service);
                }
            }
        }
        failed
    }

    fn target_ref(&self) -> &Target {
        self.target
            .as_ref()
            .expect("built before a pass applies anything")
    }

    /// Waits for the rate limit's next slot; false when the job is stopping instead.
    async fn pace(&mut self, stop: &watch::Receiver<bool>) -> bool {
        let mut stop = stop.clone();
        if *stop.borrow_and_update() {
            return false;
        }
        let now = Instant::now();
        if self.next_slot > now {
            tokio::select! {
                _ = tokio::time::sleep_until(self.next_slot) => {}
                _ = stop.changed() => return false,
            }
        }
        let spacing = Duration::from_secs_f64(1.0 / self.spec.rate_limit);
        self.next_slot = self.next_slot.max(now) + spacing;
        true
    }

    /// Puts (or with `None` removes) `spot` in the ledger and the echo index; the store
    /// follows in batches.
    fn record(&mut self, spot: Spot, entry: Option<LedgerEntry>) {
        match entry {
            Some(entry) => {
                if self.ledger.insert(spot.clone(), entry.clone()).is_none() {
                    self.ctx.echoes.add(&self.spec.to, &spot);
                    self.status
                        .update(|status| status.synced = self.ledger.len());
                }
                self.unsaved.push(LedgerChange::Put(spot, Box::new(entry)));
            }
            None => {
                if self.ledger.remove(&spot).is_some() {
                    self.ctx.echoes.remove(&self.spec.to, &spot);
                    self.status
                        .update(|status| status.synced = self.ledger.len());
                }
                self.unsaved.push(LedgerChange::Remove(spot));
            }
        }
    }

    /// Saves the ledger once a batch has gathered: a crash loses at most one batch of
    /// entries, and those copies are adopted (not written again) at the next start.
    async fn save_full_batch(&mut self) {
        if self.unsaved.len() >= LEDGER_BATCH {
            self.save_ledger().await;
        }
    }

    async fn save_ledger(&mut self) {
        if self.unsaved.is_empty() {
            return;
        }
        let changes = std::mem::take(&mut self.unsaved);
        let id = self.spec.id.clone();
        let saved = (self.ctx.store)
            .blocking(move |store| {
                Ok(store
                    .commit_ledger(&id, &changes)
                    .map_err(|err| (err, changes)))
            })
            .await;
        // Kept for the next save when this one fails: the stored ledger must not drift
        // from what the job did.
        match saved {
            Ok(Ok(())) => {}
            Ok(Err((err, changes))) => {
                self.fail(format!("saving the ledger: {err}"), None);
                let newer = std::mem::replace(&mut self.unsaved, changes);
                self.unsaved.extend(newer);
            }
            Err(err) => self.fail(format!("saving the ledger: {err}"), None),
        }
    }

    /// After a restart, copies in a target that expires them (etcd leases, Consul TTL
    /// checks) are written again so this run keeps them alive.
    async fn refresh_kept_alive(&mut self, stop: &watch::Receiver<bool>) {
        if self.ledger.is_empty() {
            return;
        }
        if !self.ensure_target() {
            return;
        }
        let kept_alive = match self.target_ref() {
            Target::Native(_) => false,
            Target::External(connector) => connector.writer().is_some_and(|w| w.keeps_alive()),
        };
        if !kept_alive {
            return;
        }
        let written: Vec<_> = self.ledger.values().map(|e| e.written.clone()).collect();
        for instance in written {
            if !self.pace(stop).await {
                return;
            }
            match self.target_ref().register(&instance).await {
                Ok(()) => self.status.update(|status| status.refreshes += 1),
                Err(err) => {
                    let message = format!("refreshing {}: {err}", instance.address());
                    self.fail(message, Some(&instance.service));
                    // The next full pass finds it missing and writes it.
                }
            }
        }
    }

    fn fail(&self, message: String, service: Option<&ServiceKey>) {
        tracing::warn!(sync = %self.spec.id, error = %message, "Sync write failed");
        self.ctx
            .metrics
            .sync
            .errors
            .get_or_create(&self.labels)
            .inc();
        self.status.update(|status| {
            status.errors += 1;
            status.state = SyncState::Error;
            status.last_error = Some(SyncFailure {
                message,
                at: Utc::now(),
                service: service.map(ToString::to_string),
            });
        });
    }

    /// Shows what `plan` found. A pass over some services replaces only their held
    /// deletes; a full pass replaces all.
    fn show_plan(&mut self, plan: &Plan, everything: bool, planned: &[&ServiceKey]) {
        if everything {
            self.held.clear();
        }
        for key in planned {
            self.held.remove(*key);
        }
        for delete in &plan.held_deletes {
            let why = delete.held.clone().unwrap_or_default();
            let held = (self.held)
                .entry(delete.instance.service.clone())
                .or_insert((0, why));
            held.0 += 1;
        }
        self.status.update(|status| {
            status.foreign = plan.foreign;
            status.echoes = plan.echoes;
        });
        self.show_outages(self.outage());
    }

    /// Why deletes are paused now, if they are: held at the last pass, or a source
    /// they would come from cannot be trusted (whether or not a delete is due).
    fn show_outages(&self, outage: Option<String>) {
        let outage = outage.filter(|_| self.spec.delete);
        let paused = !self.held.is_empty() || outage.is_some();
        let first_held = self.held.values().next().map(|(_, why)| why.clone());
        let reason = first_held.or(outage);
        let held_count: usize = self.held.values().map(|(count, _)| count).sum();
        self.ctx
            .metrics
            .sync
            .deletes_paused
            .get_or_create(&self.labels)
            .set(i64::from(paused));
        self.status.update(|status| {
            status.held_deletes = held_count;
            status.held_reason = reason;
            status.deletes_paused = paused;
        });
    }

    /// Called every second: refreshes the outage part of the status, and once the
    /// sources of held deletes can be trusted again, plans everything at once rather
    /// than at the next resync.
    fn watch_outages(&mut self) {
        let outage = self.outage();
        if self.outage_seen && outage.is_none() && !self.held.is_empty() {
            self.full_due = Instant::now();
        }
        self.outage_seen = outage.is_some();
        self.show_outages(outage);
    }

    /// The first source the job's deletes would come from that cannot be trusted.
    fn outage(&self) -> Option<String> {
        let origins: BTreeSet<&str> = match &self.spec.from {
            From::Sources(ids) => ids.iter().map(String::as_str).collect(),
            From::All => self.ledger.values().map(|e| e.origin.as_str()).collect(),
        };
        (origins.into_iter()).find_map(|origin| self.ctx.trusts_absence(origin).err())
    }

    fn show_pending(&self) {
        let oldest = self.pending.values().map(|p| p.first_at).min();
        let lag = oldest.map_or(0.0, |at| {
            (Utc::now() - at).num_milliseconds().max(0) as f64 / 1000.0
        });
        self.ctx
            .metrics
            .sync
            .lag_seconds
            .get_or_create(&self.labels)
            .set(lag);
        self.status.update(|status| {
            status.pending_services = self.pending.len();
            status.oldest_unsynced = oldest;
        });
    }
}
