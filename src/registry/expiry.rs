//! TTL expiry and heartbeat persistence: the registry's periodic work.
//!
//! A sweep marks instances whose TTL passed `offline` (remembering the status to restore),
//! revives expired instances whose heartbeats resumed, and deletes those offline longer
//! than `deregister_after`. The flush writes heartbeat times changed since the last one,
//! in one transaction, so heartbeats never cost an fsync each.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use switchboard_connectors::{Status, Update};

use super::record::{is_healthy, Entry};
use super::{now, Registry, StoreError};

impl Registry {
    /// Applies TTL expiry, revival and auto-deregistration as of now.
    pub async fn sweep(&self) -> Result<(), StoreError> {
        let time = now();
        let now_ms = time.timestamp_millis();
        let candidates: Vec<(String, Arc<Entry>)> = self
            .entries
            .iter()
            .filter(|entry| self.sweep_action(entry.value(), now_ms).is_some())
            .map(|entry| (entry.key().clone(), entry.value().clone()))
            .collect();
        if candidates.is_empty() {
            return Ok(());
        }
        let _guard = self.mutation.lock().await;
        let (mut puts, mut deletes, mut changed) = (Vec::new(), Vec::new(), Vec::new());
        // Re-check under the lock: a heartbeat may have arrived since.
        for (id, entry) in &candidates {
            if !self.is_current(id, entry) {
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
                }
                SweepAction::Revive => {
                    let status = record.expired_from.take().unwrap_or(Status::Active);
                    record.instance.status = status;
                    record.instance.healthy = is_healthy(status);
                    record.instance.offline_time = None;
                }
                SweepAction::Delete => {
                    deletes.push(id.clone());
                    changed.push((action, entry.clone(), record));
                    continue;
                }
            }
            puts.push(record.clone());
            changed.push((action, entry.clone(), record));
        }
        if changed.is_empty() {
            return Ok(());
        }
        self.persist(puts, deletes).await?;
        let (mut upserts, mut removes) = (Vec::new(), Vec::new());
        for (action, entry, record) in changed {
            let id = record.instance.id.clone();
            match action {
                SweepAction::Delete => {
                    self.entries.remove(&id);
                    removes.push(record.instance.key());
                    self.metrics.auto_deregistrations.inc();
                    tracing::info!(instance.id = %id, "Deleted instance offline longer than deregister_after");
                }
                SweepAction::Expire | SweepAction::Revive => {
                    let expired = action == SweepAction::Expire;
                    upserts.push(record.instance.clone());
                    *entry.lock() = record;
                    entry.expired.store(expired, Ordering::SeqCst);
                    if expired {
                        self.metrics.expiries.inc();
                        tracing::info!(instance.id = %id, "Instance missed its TTL; marked offline");
                    } else {
                        self.metrics.revivals.inc();
                    }
                }
            }
        }
        if !upserts.is_empty() {
            self.catalog
                .apply(&self.source, Update::Upsert(upserts))
                .await;
        }
        if !removes.is_empty() {
            self.catalog
                .apply(&self.source, Update::Remove(removes))
                .await;
        }
        Ok(())
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
        let pending: Vec<(Arc<Entry>, String, i64)> = self
            .entries
            .iter()
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
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.put_heartbeats(&beats))
            .await
            .expect("heartbeat flush does not panic")?;
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
