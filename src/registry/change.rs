//! Deciding a native mutation: one short, synchronous critical section per change.
//!
//! Every mutation (register, status, deregister, a service's removal, an expiry sweep, a
//! revival) is decided under the registry's decision lock, with no `.await` inside: it
//! reads the in-memory table, applies its result there at once, notes how to take that
//! back, and hands the store writes and catalog updates to the committer in one queue
//! send. Whatever the caller does afterwards (a client hanging up drops the handler), the
//! committer finishes the change: a mutation happens entirely or not at all, by
//! construction. Decisions queue in the order they were made, so the store, the table
//! and the catalog see every instance's changes in one order.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use switchboard_connectors::{Instance, InstanceKey, ServiceKey, Update};
use tokio::sync::{mpsc, oneshot, watch};

use super::record::Entry;
use crate::store::{InstanceOp, StoreError, StoredInstance};

/// Counters a committed change adds to (bumped once it is durable, whoever waits).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Counts {
    pub registrations: u64,
    pub deregistrations: u64,
    pub expiries: u64,
    pub revivals: u64,
    pub auto_deregistrations: u64,
}

impl Counts {
    pub fn add(&mut self, other: Counts) {
        self.registrations += other.registrations;
        self.deregistrations += other.deregistrations;
        self.expiries += other.expiries;
        self.revivals += other.revivals;
        self.auto_deregistrations += other.auto_deregistrations;
    }
}

/// How to take one table change back if the store refuses the batch holding it.
pub(super) enum Undo {
    /// `id` pointed at `previous` before (`None`: it did not exist).
    Slot {
        id: String,
        previous: Option<Arc<Entry>>,
    },
    /// `entry`'s record was `previous` (and its expiry flag `expired`) before.
    Record {
        entry: Arc<Entry>,
        previous: Box<StoredInstance>,
        expired: bool,
    },
}

/// A decided change on its way to the store and the catalog.
pub(super) struct Pending {
    /// Its place in decision order (1, 2, ...).
    pub seq: u64,
    pub ops: Vec<InstanceOp>,
    pub updates: Vec<Update>,
    pub undo: Vec<Undo>,
    pub counts: Counts,
    pub reply: oneshot::Sender<Result<(), StoreError>>,
}

/// The native instances in memory: by id (read without the decision lock, by heartbeats
/// and reads) and by endpoint (for takeover, under the lock).
pub(super) struct Table {
    pub entries: DashMap<String, Arc<Entry>>,
    decisions: Mutex<Decisions>,
    /// The last change queued.
    decided: AtomicU64,
    /// The last change finished: published, or refused and taken back (they finish in
    /// order).
    finished: watch::Sender<u64>,
}

/// What only the decision lock's holder touches.
pub(super) struct Decisions {
    /// Entries by a hash of (service, host, port); lookups compare the real endpoint.
    endpoints: HashMap<u64, Vec<Arc<Entry>>>,
    hasher: RandomState,
    /// Sends decided changes to the committer, in decision order; `None` once closed.
    queue: Option<mpsc::UnboundedSender<Pending>>,
}

impl Table {
    pub fn new(queue: mpsc::UnboundedSender<Pending>) -> Table {
        Table {
            entries: DashMap::new(),
            decisions: Mutex::new(Decisions {
                endpoints: HashMap::new(),
                hasher: RandomState::new(),
                queue: Some(queue),
            }),
            decided: AtomicU64::new(0),
            finished: watch::Sender::new(0),
        }
    }

    /// Waits until every change queued before this call has finished, so a read of the
    /// table after it agrees with the catalog and the store about those changes (reads
    /// right after a write see it; reads never see a change before it is durable).
    pub async fn settled(&self) {
        let wanted = self.decided.load(Ordering::SeqCst);
        let mut finished = self.finished.subscribe();
        let _ = finished.wait_for(|done| *done >= wanted).await;
    }

    /// Records that every change up to `seq` has finished.
    pub fn finish(&self, seq: u64) {
        self.finished.send_if_modified(|done| {
            let moved = seq > *done;
            *done = (*done).max(seq);
            moved
        });
    }

    /// Takes the decision lock. Never held across an `.await`.
    pub fn decide(&self) -> Change<'_> {
        let decisions = self.lock_decisions();
        Change {
            table: self,
            decisions,
            ops: Vec::new(),
            updates: Vec::new(),
            undo: Vec::new(),
            counts: Counts::default(),
        }
    }

    /// The decision lock. A panic while deciding leaves no half-applied change behind
    /// (every table change is recorded for undo as it is made, and nothing is queued
    /// until the end), so a poisoned lock is still safe to use.
    pub fn lock_decisions(&self) -> MutexGuard<'_, Decisions> {
        self.decisions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes no more changes: the committer finishes what is queued, then stops.
    pub fn close(&self) {
        self.lock_decisions().queue = None;
    }

    /// Puts an entry loaded from the store into the table (before anything is decided).
    pub fn load(&self, entry: Arc<Entry>) {
        let id = entry.lock().instance.id.clone();
        self.lock_decisions().index(&entry);
        self.entries.insert(id, entry);
    }

    /// Takes back `undo`, newest first.
    pub fn undo(&self, decisions: &mut Decisions, undo: Vec<Undo>) {
        for step in undo.into_iter().rev() {
            match step {
                Undo::Slot { id, previous } => {
                    let current = match &previous {
                        Some(entry) => self.entries.insert(id, entry.clone()),
                        None => self.entries.remove(&id).map(|(_, entry)| entry),
                    };
                    if let Some(current) = current {
                        decisions.unindex(&current);
                    }
                    if let Some(previous) = previous {
                        decisions.index(&previous);
                    }
                }
                Undo::Record {
                    entry,
                    previous,
                    expired,
                } => {
                    *entry.lock() = *previous;
                    entry.expired.store(expired, Ordering::SeqCst);
                }
            }
        }
    }
}

impl Decisions {
    fn endpoint_hash(&self, service: &ServiceKey, host: &str, port: u16) -> u64 {
        self.hasher.hash_one((service, host, port))
    }

    /// The endpoint hash of an entry (its endpoint never changes in place).
    fn hash_of(&self, entry: &Entry) -> u64 {
        let record = entry.lock();
        let i = &record.instance;
        self.endpoint_hash(&i.service, &i.host, i.port)
    }

    fn index(&mut self, entry: &Arc<Entry>) {
        let hash = self.hash_of(entry);
        self.endpoints.entry(hash).or_default().push(entry.clone());
    }

    fn unindex(&mut self, entry: &Arc<Entry>) {
        let hash = self.hash_of(entry);
        if let Some(bucket) = self.endpoints.get_mut(&hash) {
            bucket.retain(|other| !Arc::ptr_eq(other, entry));
            if bucket.is_empty() {
                self.endpoints.remove(&hash);
            }
        }
    }
}

/// Answers once a submitted change is durable and published, or was taken back.
pub(super) type Done = oneshot::Receiver<Result<(), StoreError>>;

/// One mutation being decided: holds the decision lock until [`Change::submit`].
pub(super) struct Change<'a> {
    table: &'a Table,
    decisions: MutexGuard<'a, Decisions>,
    ops: Vec<InstanceOp>,
    updates: Vec<Update>,
    undo: Vec<Undo>,
    pub counts: Counts,
}

impl Change<'_> {
    /// The entry registered as `id` now (pending changes included).
    pub fn entry(&self, id: &str) -> Option<Arc<Entry>> {
        self.table.entries.get(id).map(|entry| entry.clone())
    }

    /// Whether `entry` is still the registered instance `id` (not replaced or deleted).
    pub fn is_current(&self, id: &str, entry: &Arc<Entry>) -> bool {
        self.table
            .entries
            .get(id)
            .is_some_and(|current| Arc::ptr_eq(&current, entry))
    }

    /// A check of `checks` whose id another instance than `id` (or those it `replaced`)
    /// already uses, and that instance. Consul's default ids (`service:<id>...`) name their own instance, so
    /// only other ids are looked for, in a scan of the instances.
    pub fn check_held_elsewhere(
        &self,
        id: &str,
        replaced: &[String],
        checks: &[(
            crate::store::CheckDefinition,
            switchboard_connectors::CheckStatus,
        )],
    ) -> Option<(String, String)> {
        let own = format!("service:{id}");
        let custom: Vec<&str> = (checks.iter())
            .map(|(check, _)| check.id.as_str())
            .filter(|check| *check != own && !check.starts_with(&format!("{own}:")))
            .collect();
        if custom.is_empty() {
            return None;
        }
        self.table.entries.iter().find_map(|entry| {
            if entry.key() == id || replaced.contains(entry.key()) {
                return None;
            }
            let record = entry.lock();
            (record.instance.checks.iter())
                .find(|check| custom.contains(&check.id.as_str()))
                .map(|check| (check.id.clone(), entry.key().clone()))
        })
    }

    /// Ids registered at an endpoint of a service, oldest registration first.
    pub fn ids_at_endpoint(&self, service: &ServiceKey, host: &str, port: u16) -> Vec<String> {
        let hash = self.decisions.endpoint_hash(service, host, port);
        let mut found: Vec<(Option<DateTime<Utc>>, String)> = (self.decisions.endpoints)
            .get(&hash)
            .into_iter()
            .flatten()
            .filter_map(|entry| {
                let record = entry.lock();
                let i = &record.instance;
                (i.service == *service && i.host == host && i.port == port)
                    .then(|| (i.register_time, i.id.clone()))
            })
            .collect();
        found.sort();
        found.into_iter().map(|(_, id)| id).collect()
    }

    /// Makes `entry` the instance `id` (`None`: deletes it) in memory and in the store.
    pub fn set_entry(&mut self, id: &str, entry: Option<Arc<Entry>>) {
        let previous = match &entry {
            Some(entry) => {
                self.ops
                    .push(InstanceOp::Put(Box::new(entry.lock().clone())));
                self.decisions.index(entry);
                self.table.entries.insert(id.to_owned(), entry.clone())
            }
            None => {
                self.ops.push(InstanceOp::Delete(id.to_owned()));
                self.table.entries.remove(id).map(|(_, entry)| entry)
            }
        };
        if let Some(previous) = &previous {
            self.decisions.unindex(previous);
        }
        self.undo.push(Undo::Slot {
            id: id.to_owned(),
            previous,
        });
    }

    /// Replaces `entry`'s record in memory and in the store (its endpoint is unchanged).
    pub fn set_record(&mut self, entry: &Arc<Entry>, record: StoredInstance) {
        let expired = record.expired_from.is_some();
        self.ops.push(InstanceOp::Put(Box::new(record.clone())));
        let previous = std::mem::replace(&mut *entry.lock(), record);
        let was_expired = entry.expired.swap(expired, Ordering::SeqCst);
        self.undo.push(Undo::Record {
            entry: entry.clone(),
            previous: Box::new(previous),
            expired: was_expired,
        });
    }

    /// Shows `instance` in the catalog once the change is durable.
    pub fn upsert(&mut self, instance: Instance) {
        push_coalesced(&mut self.updates, Update::Upsert(vec![instance]));
    }

    /// Removes an instance from the catalog once the change is durable.
    pub fn remove(&mut self, key: InstanceKey) {
        push_coalesced(&mut self.updates, Update::Remove(vec![key]));
    }

    /// Whether this change does anything.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Queues the change for the committer and releases the lock. The returned receiver
    /// answers once the change is durable and published (or the store refused it, and
    /// it was taken back). Dropping the receiver does not stop the change.
    pub fn submit(self) -> Done {
        let (reply, answer) = oneshot::channel();
        let seq = self.table.decided.load(Ordering::SeqCst) + 1;
        let pending = Pending {
            seq,
            ops: self.ops,
            updates: self.updates,
            undo: self.undo,
            counts: self.counts,
            reply,
        };
        let sent = match &self.decisions.queue {
            Some(queue) => queue.send(pending),
            None => Err(mpsc::error::SendError(pending)),
        };
        match sent {
            Ok(()) => self.table.decided.store(seq, Ordering::SeqCst),
            Err(mpsc::error::SendError(pending)) => {
                // The committer is gone (shutting down): nothing may change.
                let mut decisions = self.decisions;
                self.table.undo(&mut decisions, pending.undo);
                let _ = pending.reply.send(Err(StoreError::Closed));
            }
        }
        answer
    }
}

/// Appends `update`, folding it into the last one when both are of the same kind (order
/// between kinds is kept: an upsert then a removal of one instance is not a removal then
/// an upsert).
pub(super) fn push_coalesced(updates: &mut Vec<Update>, update: Update) {
    match (updates.last_mut(), update) {
        (Some(Update::Upsert(batch)), Update::Upsert(more)) => batch.extend(more),
        (Some(Update::Remove(batch)), Update::Remove(more)) => batch.extend(more),
        (_, update) => updates.push(update),
    }
}

/// Waits for a submitted change to be durable and published (or taken back).
pub(super) async fn wait(done: Done) -> Result<(), StoreError> {
    done.await.unwrap_or(Err(StoreError::Closed))
}
