//! Group commit: every native change decided while the store was busy goes to disk in
//! one transaction (one fsync), then to the catalog in one batch.
//!
//! The committer takes whatever the decision queue holds, writes it in one durable
//! transaction on a blocking thread, hands the catalog updates to the catalog writer in
//! the same order, and answers each change once the catalog has published it (so a read
//! after the 2xx sees it). While one batch is being published, the next one is already
//! being written. If the store refuses a batch, that batch and every change decided after
//! it are taken back from the in-memory table, newest first, and each caller gets the
//! error: memory, store and catalog keep agreeing.

use std::sync::{Arc, Weak};

use switchboard_connectors::Update;
use tokio::sync::mpsc;

use super::change::{push_coalesced, Counts, Pending, Table};
use crate::catalog::Catalog;
use crate::store::{Blocking, InstanceOp, InstanceStore, StoreError};
use crate::telemetry::Metrics;

/// Most decided changes written in one transaction.
const MAX_BATCH: usize = 4096;

/// What the committer task needs.
pub(super) struct Committer {
    pub store: Arc<dyn InstanceStore>,
    /// Weak: the registry owns the table (and the queue's sender), so dropping the
    /// registry ends this task.
    pub table: Weak<Table>,
    pub catalog: Catalog,
    pub source: Arc<str>,
    pub metrics: Arc<Metrics>,
}

impl Committer {
    /// Runs until every sender of the queue is gone (the registry was dropped).
    pub async fn run(self, mut queue: mpsc::UnboundedReceiver<Pending>) {
        let mut batch = Vec::with_capacity(64);
        while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
            let mut pending = std::mem::take(&mut batch);
            let ops: Vec<InstanceOp> = (pending.iter_mut())
                .flat_map(|change| std::mem::take(&mut change.ops))
                .collect();
            match self.store.blocking(move |store| store.commit(&ops)).await {
                Ok(()) => self.publish(pending).await,
                Err(err) => self.refuse(pending, &mut queue, err),
            }
        }
    }

    /// Hands a durable batch to the catalog and answers its callers once it is published.
    async fn publish(&self, pending: Vec<Pending>) {
        let mut counts = Counts::default();
        let mut updates: Vec<Update> = Vec::new();
        let mut replies = Vec::with_capacity(pending.len());
        let last = pending.last().map_or(0, |change| change.seq);
        for change in pending {
            counts.add(change.counts);
            for update in change.updates {
                push_coalesced(&mut updates, update);
            }
            replies.push(change.reply);
        }
        self.count(counts);
        let published = self.catalog.submit(&self.source, updates).await;
        // Waiting for the publish happens beside the next batch's write.
        let table = self.table.clone();
        tokio::spawn(async move {
            let _ = published.await;
            if let Some(table) = table.upgrade() {
                table.finish(last);
            }
            for reply in replies {
                let _ = reply.send(Ok(()));
            }
        });
    }

    /// Takes back a batch the store refused, and every change decided after it.
    fn refuse(
        &self,
        pending: Vec<Pending>,
        queue: &mut mpsc::UnboundedReceiver<Pending>,
        err: StoreError,
    ) {
        tracing::error!(error = %err, changes = pending.len(), "Store refused a batch of native changes; taking them back");
        let Some(table) = self.table.upgrade() else {
            return; // The registry is gone, and its table with it.
        };
        // Holding the lock, nothing new is decided: whatever the queue holds now is
        // everything decided on top of the refused batch.
        let mut decisions = table.lock_decisions();
        let mut refused = pending;
        while let Ok(later) = queue.try_recv() {
            refused.push(later);
        }
        let message = err.to_string();
        let last = refused.last().map_or(0, |change| change.seq);
        for change in refused.into_iter().rev() {
            table.undo(&mut decisions, change.undo);
            let _ = change.reply.send(Err(StoreError::Refused(message.clone())));
        }
        table.finish(last);
    }

    fn count(&self, counts: Counts) {
        let metrics = &self.metrics;
        metrics.registrations.inc_by(counts.registrations);
        metrics.deregistrations.inc_by(counts.deregistrations);
        metrics.expiries.inc_by(counts.expiries);
        metrics.revivals.inc_by(counts.revivals);
        (metrics.auto_deregistrations).inc_by(counts.auto_deregistrations);
    }
}
