//! Per-service wake-ups for blocking queries and SSE watchers.

use std::sync::Arc;

use dashmap::DashMap;
use futures::StreamExt;
use switchboard_connectors::ServiceKey;
use tokio::sync::watch;
use tokio_stream::wrappers::WatchStream;

/// One `watch` channel per service that somebody waits on, carrying the service's index.
/// Services nobody watches cost nothing: the last subscription to go removes its
/// service's channel. One more channel carries the index of the last batch that changed
/// any service, for catalog-wide blocking queries.
#[derive(Default)]
pub struct Notifier {
    channels: DashMap<ServiceKey, watch::Sender<u64>>,
    catalog: watch::Sender<u64>,
}

/// A watcher of one service: the receiver, and on drop the removal of the service's
/// channel when this was its last watcher.
pub struct Subscription {
    /// Dropped before `_leaving` (fields drop in order), so the count it checks no
    /// longer includes this one.
    pub receiver: watch::Receiver<u64>,
    _leaving: Leaving,
}

struct Leaving {
    notifier: Arc<Notifier>,
    key: ServiceKey,
}

impl Drop for Leaving {
    fn drop(&mut self) {
        // Under the shard's lock, so a watcher subscribing at this moment either comes
        // first (and keeps the channel) or finds it gone and creates a new one.
        self.notifier
            .channels
            .remove_if(&self.key, |_, sender| sender.receiver_count() == 0);
    }
}

impl Subscription {
    /// The index as a stream: the current one first, then the latest after each change.
    /// The channel is kept until the stream drops (the stream's receiver goes first).
    pub fn into_stream(self) -> impl futures::Stream<Item = u64> {
        let Subscription { receiver, _leaving } = self;
        WatchStream::new(receiver).map(move |index| {
            let _watching = &_leaving;
            index
        })
    }
}

impl Notifier {
    /// Subscribes to `key`; `current` seeds a channel created by this call.
    pub fn subscribe(self: &Arc<Self>, key: &ServiceKey, current: u64) -> Subscription {
        let receiver = match self.channels.get(key) {
            Some(sender) => sender.subscribe(),
            None => self
                .channels
                .entry(key.clone())
                .or_insert_with(|| watch::channel(current).0)
                .subscribe(),
        };
        Subscription {
            receiver,
            _leaving: Leaving {
                notifier: self.clone(),
                key: key.clone(),
            },
        }
    }

    /// Tells the watchers of `key` its new index.
    pub fn notify(&self, key: &ServiceKey, index: u64) {
        if let Some(sender) = self.channels.get(key) {
            sender.send_replace(index);
        }
    }

    /// Tells catalog-wide watchers that a batch changed services, at `index`.
    pub fn notify_catalog(&self, index: u64) {
        self.catalog.send_replace(index);
    }

    /// A watcher of every service: it changes whenever any service does.
    pub fn subscribe_catalog(&self) -> watch::Receiver<u64> {
        self.catalog.subscribe()
    }

    /// Services with at least one watcher.
    pub fn watched(&self) -> usize {
        self.channels.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_watcher_to_go_removes_the_channel() {
        let notifier = Arc::new(Notifier::default());
        let key = ServiceKey::named("a");
        let first = notifier.subscribe(&key, 1);
        let second = notifier.subscribe(&key, 1);
        drop(first);
        assert_eq!(notifier.watched(), 1, "one watcher is left");
        notifier.notify(&key, 2);
        assert_eq!(*second.receiver.borrow(), 2);
        drop(second);
        assert_eq!(notifier.watched(), 0);
    }

    #[test]
    fn churn_of_watched_names_leaves_no_channel() {
        let notifier = Arc::new(Notifier::default());
        for i in 0..10_000 {
            let key = ServiceKey::named(format!("gone-{i}"));
            let watcher = notifier.subscribe(&key, 0);
            notifier.notify(&key, 1);
            drop(watcher);
        }
        assert_eq!(notifier.watched(), 0);
    }
}
