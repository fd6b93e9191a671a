//! TTL expiry and heartbeat persistence: the registry's periodic work.
//!
//! A sweep marks instances whose TTL passed `offline` (remembering the status to restore),
//! revives expired instances whose heartbeats resumed, and deletes those offline longer
//! than `deregister_after`. TTL checks follow in the same change: an expiry turns them
//! critical (`TTL expired`), a revival passing again. The flush writes heartbeat times changed since the last one,
//! in one transaction, so heartbeats never cost an fsync each.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use switchboard_connectors::{CheckStatus, Status};

use super::change::{wait, Done};
use super::record::{is_healthy, set_ttl_checks, ttl_expired_output, Entry};
use super::{now, Registry};
use crate::store::{Blocking, StoreError};

impl Registry {
    /// Applies TTL expiry, revival and auto-deregistration as of now, as one change.
    pub async fn sweep(&self) -> Result<(), StoreError> {
        match self.decide_sweep() {
            Some(done) => wait(done).await,
            None => Ok(()),
        }
    }

    fn decide_sweep(&self) -> Option<Done> {
        let time = now();
        let now_ms = time.timestamp_millis();
        let candidates: Vec<(String, Arc<Entry>)> = (self.table.entries.iter())
            .filter(|entry| self.sweep_action(entry.value(), now_ms).is_some())
            .map(|entry| (entry.key().clone(), entry.value().clone()))
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let mut change = self.table.decide();
        // Re-check under the decision lock: a heartbeat, a deregistration or a new
        // registration may have come since.
        for (id, entry) in &candidates {
            if !change.is_current(id, entry) {
                continue;
            }
            let Some(action) = self.sweep_action(entry, now_ms) else {
                continue;
            };
            let mut record = entry.snapshot();
            match action {
                SweepAction::Expire => {
                    record.expired_from = Some(record.instance.status);
                    record.instance.status = Status::Offline;
                    record.instance.healthy = false;
                    record.instance.offline_time = Some(time);
                    set_ttl_checks(
                        &mut record.instance,
                        CheckStatus::Critical,
                        ttl_expired_output,
                    );
                    change.counts.expiries += 1;
                    tracing::info!(instance.id = %id, "Instance missed its TTL; marked offline");
                }
                SweepAction::Revive => {
                    let status = record.expired_from.take().unwrap_or(Status::Active);
                    record.instance.status = status;
                    set_ttl_checks(&mut record.instance, CheckStatus::Passing, |_| {
                        String::new()
                    });
                    record.instance.healthy = is_healthy(&record.instance);
                    record.instance.offline_time = None;
                    change.counts.revivals += 1;
                }
                SweepAction::Delete => {
                    change.set_entry(id, None);
                    change.remove(record.instance.key());
                    change.counts.auto_deregistrations += 1;
                    tracing::info!(instance.id = %id, "Deleting instance offline longer than deregister_after");
                    continue;
                }
            }
            change.upsert(record.instance.clone());
            change.set_record(entry, record);
        }
        (!change.is_empty()).then(|| change.submit())
    }

    fn sweep_action(&self, entry: &Entry, now_ms: i64) -> Option<SweepAction> {
        let record = entry.lock();
        let heartbeat = entry.last_heartbeat_ms.load(Ordering::SeqCst);
        if record.expired_from.is_some() {
            let offline_ms = record
                .instance
                .offline_time
                .map_or(0, |t| t.timestamp_millis());
            // A heartbeat that raced the expiry revives here.
            if heartbeat > offline_ms {
                return Some(SweepAction::Revive);
            }
            let limit = self.deregister_after_of(&record)?;
            return (now_ms - offline_ms > limit.as_millis() as i64).then_some(SweepAction::Delete);
        }
        if record.instance.status == Status::Offline || record.persistent {
            return None;
        }
        (now_ms > self.deadline_ms(entry, &record)).then_some(SweepAction::Expire)
    }

    /// Writes heartbeat times that changed since the last flush, in one transaction.
    pub async fn flush_heartbeats(&self) -> Result<usize, StoreError> {
        let pending: Vec<(Arc<Entry>, String, i64)> = (self.table.entries.iter())
            .filter_map(|entry| {
                let beat = entry.last_heartbeat_ms.load(Ordering::SeqCst);
                (beat > entry.flushed_heartbeat_ms.load(Ordering::SeqCst))
                    .then(|| (entry.value().clone(), entry.key().clone(), beat))
            })
            .collect();
        if pending.is_empty() {
            return Ok(0);
        }
        let beats: Vec<(String, i64)> = pending
            .iter()
            .map(|(_, id, beat)| (id.clone(), *beat))
            .collect();
        self.store
            .blocking(move |store| store.put_heartbeats(&beats))
            .await?;
        for (entry, _, beat) in &pending {
            entry
                .flushed_heartbeat_ms
                .fetch_max(*beat, Ordering::SeqCst);
        }
        Ok(pending.len())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SweepAction {
    Expire,
    Revive,
    Delete,
}
