//! What a job shows: its status (state, failures, plan counts, held deletes, pending
//! services and lag) and its metrics.

use std::collections::BTreeSet;

use chrono::Utc;
use switchboard_connectors::ServiceKey;
use tokio::time::Instant;

use super::Job;
use crate::sync::plan::{Plan, World};
use crate::sync::spec::From;
use crate::sync::status::{SyncFailure, SyncState};

impl Job {
    pub(super) fn fail(&self, message: String, service: Option<&ServiceKey>) {
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
    pub(super) fn show_plan(&mut self, plan: &Plan, everything: bool, planned: &[&ServiceKey]) {
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
    pub(super) fn show_outages(&self, outage: Option<String>) {
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
    pub(super) fn watch_outages(&mut self) {
        let outage = self.outage();
        if self.outage_seen && outage.is_none() && !self.held.is_empty() {
            self.full_due = Instant::now();
        }
        self.outage_seen = outage.is_some();
        self.show_outages(outage);
    }

    /// The first source the job's deletes would come from that cannot be trusted.
    pub(super) fn outage(&self) -> Option<String> {
        let origins: BTreeSet<&str> = match &self.spec.from {
            From::Sources(ids) => ids.iter().map(String::as_str).collect(),
            From::All => self.ledger.values().map(|e| e.origin.as_str()).collect(),
        };
        (origins.into_iter()).find_map(|origin| self.ctx.trusts_absence(origin).err())
    }

    pub(super) fn show_pending(&self) {
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
