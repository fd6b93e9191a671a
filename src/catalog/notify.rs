//! Per-service wake-ups for blocking queries and SSE watchers.

use dashmap::DashMap;
use switchboard_connectors::ServiceKey;
use tokio::sync::watch;

/// One `watch` channel per service that somebody waits on, carrying the service's index.
/// Services nobody watches cost nothing.
#[derive(Default)]
pub struct Notifier {
    channels: DashMap<ServiceKey, watch::Sender<u64>>,
}

impl Notifier {
    /// Subscribes to `key`; `current` seeds a channel created by this call.
    pub fn subscribe(&self, key: &ServiceKey, current: u64) -> watch::Receiver<u64> {
        if let Some(sender) = self.channels.get(key) {
            return sender.subscribe();
        }
        self.channels
            .entry(key.clone())
            .or_insert_with(|| watch::channel(current).0)
            .subscribe()
    }

    /// Tells the watchers of `key` its new index.
    pub fn notify(&self, key: &ServiceKey, index: u64) {
        if let Some(sender) = self.channels.get(key) {
            sender.send_replace(index);
        }
    }

    /// Drops channels nobody listens to any more.
    pub fn prune(&self) {
        self.channels
            .retain(|_, sender| sender.receiver_count() > 0);
    }
}
