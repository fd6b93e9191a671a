//! The ledger's changes on their way to the store: kept in memory as they happen (the
//! latest per instance) and written in batches of `LEDGER_BATCH`, and at the end of every
//! pass.

use super::{Job, LEDGER_BATCH};
use crate::store::Blocking;
use crate::sync::ledger::{LedgerEntry, Spot};

impl Job {
    /// Puts (or with `None` removes) `spot` in the ledger and the echo index; the store
    /// follows in batches.
    pub(super) fn record(&mut self, spot: Spot, entry: Option<LedgerEntry>) {
        match entry {
            Some(entry) => {
                if self.ledger.insert(spot.clone(), entry.clone()).is_none() {
                    self.ctx.echoes.add(&self.spec.to, &spot);
                    self.status
                        .update(|status| status.synced = self.ledger.len());
                }
                self.unsaved.set(spot, Some(entry));
            }
            None => {
                if self.ledger.remove(&spot).is_some() {
                    self.ctx.echoes.remove(&self.spec.to, &spot);
                    self.status
                        .update(|status| status.synced = self.ledger.len());
                }
                self.unsaved.set(spot, None);
            }
        }
    }

    /// Saves the ledger once a batch has gathered: a crash loses at most one batch of
    /// entries, and those copies are adopted (not written again) at the next start.
    pub(super) async fn save_full_batch(&mut self) {
        if self.unsaved.len() >= LEDGER_BATCH {
            self.save_ledger().await;
        }
    }

    pub(super) async fn save_ledger(&mut self) {
        if self.unsaved.is_empty() {
            return;
        }
        let changes = self.unsaved.take();
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
                self.unsaved.restore(changes);
            }
            Err(err) => self.fail(format!("saving the ledger: {err}"), None),
        }
    }
}
