//! Keep-alive after a restart: copies in targets that need keeping alive (Consul, leased
//! etcd, ephemeral Nacos) are registered again from the ledger, counted as refreshes.

use tokio::sync::watch;

use super::Job;
use crate::sync::target::Target;

impl Job {
    /// After a restart, copies in a target that expires them (etcd leases, Consul TTL
    /// checks) are written again so this run keeps them alive.
    pub(super) async fn refresh_kept_alive(&mut self, stop: &watch::Receiver<bool>) {
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
}
