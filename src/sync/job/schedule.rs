//! Debounce scheduling: which changed services a job waits on, and when each is due
//! (quiet for `debounce`, or waiting longer than `debounce x MAX_WAIT_FACTOR`).

use std::time::Duration;

use chrono::Utc;
use switchboard_connectors::ServiceKey;
use tokio::time::Instant;

use super::{Job, Pending, MAX_WAIT_FACTOR};
use crate::sync::ledger::service_entries;

impl Job {
    pub(super) fn mark(&mut self, keys: &[ServiceKey]) {
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

    pub(super) fn has_ledger_service(&self, key: &ServiceKey) -> bool {
        service_entries(&self.ledger, key).next().is_some()
    }

    pub(super) fn max_wait(&self) -> Duration {
        (self.spec.debounce * MAX_WAIT_FACTOR).max(Duration::from_secs(1))
    }

    pub(super) fn ready_at(&self, pending: &Pending) -> Instant {
        (pending.last + self.spec.debounce).min(pending.first + self.max_wait())
    }

    pub(super) fn next_due(&self) -> Instant {
        let pending = self.pending.values().map(|p| self.ready_at(p)).min();
        let due = pending.map_or(self.full_due, |at| at.min(self.full_due));
        self.retry_at.map_or(due, |retry| due.max(retry))
    }
}
