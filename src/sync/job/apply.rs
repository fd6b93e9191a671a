//! Applying a plan: writes and deletes through the target, at most `rate_limit`
//! operations per second, each recorded in the ledger as it succeeds.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::Utc;
use switchboard_connectors::ServiceKey;
use tokio::sync::watch;
use tokio::time::Instant;

use super::Job;
use crate::sync::ledger::{LedgerEntry, Spot};
use crate::sync::plan::Plan;
use crate::sync::target::Target;

impl Job {
    pub(super) async fn apply(
        &mut self,
        plan: Plan,
        stop: &watch::Receiver<bool>,
    ) -> BTreeSet<ServiceKey> {
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
                    self.done(spot, Some(entry)).await;
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
                    self.done(spot, None).await;
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

    /// Records a write (`Some`) or a delete (`None`) the target took: in the ledger, the
    /// job's status and its metrics.
    async fn done(&mut self, spot: Spot, entry: Option<LedgerEntry>) {
        let written = entry.is_some();
        self.record(spot, entry);
        self.save_full_batch().await;
        self.status.update(|status| {
            if written {
                status.writes += 1;
            } else {
                status.deletes += 1;
            }
        });
        let metrics = &self.ctx.metrics.sync;
        let counter = if written {
            &metrics.writes
        } else {
            &metrics.deletes
        };
        counter.get_or_create(&self.labels).inc();
    }

    pub(super) fn target_ref(&self) -> &Target {
        self.target
            .as_ref()
            .expect("built before a pass applies anything")
    }

    /// Waits for the rate limit's next slot; false when the job is stopping instead.
    pub(super) async fn pace(&mut self, stop: &watch::Receiver<bool>) -> bool {
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
}
