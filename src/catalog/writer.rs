//! The catalog's single writer: applies each batch of changes to the partitions, re-merges
//! the services they touched, publishes the new snapshot and announces what changed.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use switchboard_connectors::ServiceKey;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;

use super::chunks;
use super::inputs::{Inputs, SharedInputs};
use super::notify::Notifier;
use super::partition::Partition;
use super::rules::Policy;
use super::snapshot::{ByName, ServiceView, Snapshot, SourceCounts};
use super::touched::{Changes, Dirty, Touched};
use super::Command;
use crate::telemetry::{Metrics, SourceLabels};

/// Most commands folded into one published snapshot.
const MAX_BATCH: usize = 1024;

pub(crate) struct Writer {
    current: Arc<ArcSwap<Snapshot>>,
    notifier: Arc<Notifier>,
    metrics: Arc<Metrics>,
    /// The partitions and rules; only this task changes them.
    inputs: SharedInputs,
    /// Latest view of every service with instances.
    by_name: ByName,
    index: u64,
    /// The last change that emptied a service (see [`Snapshot::absent_index`]).
    absent_index: u64,
    /// Services with at least one instance (kept as views change, not recounted).
    live_services: usize,
    /// Where what each batch changed is announced (sync-back jobs and the view saver
    /// listen).
    change_feed: broadcast::Sender<Arc<Changes>>,
}

impl Writer {
    pub fn new(
        current: Arc<ArcSwap<Snapshot>>,
        notifier: Arc<Notifier>,
        inputs: SharedInputs,
        change_feed: broadcast::Sender<Arc<Changes>>,
        metrics: Arc<Metrics>,
        base: u64,
    ) -> Writer {
        Writer {
            current,
            notifier,
            metrics,
            inputs,
            by_name: ByName::default(),
            index: base,
            absent_index: base,
            live_services: 0,
            change_feed,
        }
    }

    pub async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            let due = (self.inputs.read().partitions.values())
                .filter_map(Partition::next_due)
                .min();
            tokio::select! {
                received = commands.recv_many(&mut batch, MAX_BATCH) => {
                    if received == 0 {
                        return;
                    }
                    self.process(std::mem::take(&mut batch));
                }
                // A held emptying is due: an empty batch applies it.
                _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                    self.process(Vec::new());
                }
            }
        }
    }

    fn process(&mut self, batch: Vec<Command>) {
        let now = Instant::now();
        let mut touched = Touched::default();
        let mut acks: Vec<oneshot::Sender<u64>> = Vec::new();
        // Applied, merged and published under the write lock, so a question (read under
        // the read lock) sees the partitions and the snapshot of the same batch.
        let shared = self.inputs.clone();
        let mut inputs = shared.write();
        let dropped = apply(&mut inputs, batch, now, &mut touched, &mut acks);
        for source in dropped {
            self.metrics.source_instances.remove(&SourceLabels {
                source: source.to_string(),
            });
        }
        let changed: Vec<(ServiceKey, u64)> = (touched.iter())
            .filter_map(|(key, dirty)| self.recompute(&inputs, key, dirty))
            .collect();
        let counts = inputs.source_counts();
        self.record_metrics(&counts);
        // Counts can move without any view changing (a guard hold, an empty source), and
        // the status API reads them from the snapshot.
        let publish = !changed.is_empty() || *self.current.load().sources() != counts;
        if publish {
            self.publish(counts);
        }
        drop(inputs);
        if publish {
            for (key, index) in &changed {
                self.notifier.notify(key, *index);
            }
            if !changed.is_empty() {
                self.notifier.notify_catalog(self.index);
            }
        }
        self.announce(touched);
        for ack in acks {
            let _ = ack.send(self.index);
        }
    }

    /// Re-merges one service, or only its `dirty` endpoints; returns its new index if
    /// what clients see changed.
    fn recompute(
        &mut self,
        inputs: &Inputs,
        key: &ServiceKey,
        dirty: &Dirty,
    ) -> Option<(ServiceKey, u64)> {
        let views: &[Arc<ServiceView>] = self.by_name.get(key.name.as_str()).map_or(&[], |v| v);
        let slot = views.iter().position(|view| view.key == *key);
        let old = slot.map(|i| views[i].clone());
        let policy = inputs.rules.policy_for(&key.name).0;
        let chunks = match (dirty, policy, &old) {
            // A few endpoints of a served service under `union`: only they are merged,
            // and only the chunks holding them are encoded again.
            (Dirty::Endpoints(endpoints), Policy::Union, Some(old)) if !old.is_empty() => {
                let edits: Vec<_> = inputs
                    .merge_endpoints(key, endpoints)
                    .into_iter()
                    .filter(|(endpoint, new)| match (old.at(*endpoint), new) {
                        (Some(was), Some(now)) => !chunks::same(was, now),
                        (was, now) => was.is_some() || now.is_some(),
                    })
                    .collect();
                if edits.is_empty() {
                    return None;
                }
                chunks::patch(old.chunks(), edits)
            }
            _ => {
                let merged = inputs.merge(key, policy);
                let unchanged = match &old {
                    Some(old) => {
                        old.len() == merged.len()
                            && old
                                .instances()
                                .zip(&merged)
                                .all(|(a, b)| chunks::same(a, b))
                    }
                    None => merged.is_empty(),
                };
                if unchanged {
                    return None;
                }
                chunks::layout(merged, old.as_ref().map_or(&[], |old| old.chunks()))
            }
        };
        self.index += 1;
        let view = Arc::new(ServiceView::from_chunks(key.clone(), self.index, chunks));
        let was_live = old.as_ref().is_some_and(|old| !old.is_empty());
        match (was_live, view.is_empty()) {
            (false, false) => self.live_services += 1,
            (true, true) => self.live_services -= 1,
            _ => {}
        }
        let mut updated: Vec<Arc<ServiceView>> = views.to_vec();
        if view.is_empty() {
            // An emptied service leaves no view behind (names come and go by the
            // hundred thousand); it answers the absent index, which is this change's.
            if let Some(i) = slot {
                updated.remove(i);
            }
            self.absent_index = self.index;
        } else {
            match slot {
                Some(i) => updated[i] = view,
                None => updated.push(view),
            }
        }
        if updated.is_empty() {
            self.by_name.remove(&key.name);
        } else {
            self.by_name
                .insert(Arc::from(key.name.as_str()), updated.into());
        }
        Some((key.clone(), self.index))
    }

    /// Tells change-feed listeners (if any) what this batch changed.
    fn announce(&self, touched: Touched) {
        if touched.is_empty() || self.change_feed.receiver_count() == 0 {
            return;
        }
        let _ = self.change_feed.send(Arc::new(touched.into_changes()));
    }

    fn publish(&self, counts: HashMap<String, SourceCounts>) {
        let snapshot = Snapshot::new(self.index, self.absent_index, self.by_name.clone(), counts);
        self.current.store(Arc::new(snapshot));
    }

    fn record_metrics(&self, counts: &HashMap<String, SourceCounts>) {
        for (source, counts) in counts {
            self.metrics
                .source_instances
                .get_or_create(&SourceLabels {
                    source: source.clone(),
                })
                .set(counts.instances as i64);
        }
        self.metrics.catalog_services.set(self.live_services as i64);
        self.metrics.catalog_index.set(self.index);
    }
}

/// Applies a batch's changes to the partitions and rules, recording what they touched and
/// whom to answer once published; returns the sources it dropped. An empty batch is the
/// timer of a held emptying.
fn apply(
    inputs: &mut Inputs,
    batch: Vec<Command>,
    now: Instant,
    touched: &mut Touched,
    acks: &mut Vec<oneshot::Sender<u64>>,
) -> Vec<Arc<str>> {
    let mut dropped = Vec::new();
    for command in batch {
        match command {
            Command::Apply {
                source,
                update,
                meta,
                guarded,
                done,
            } => {
                let partition = (inputs.partitions.entry(source.clone()))
                    .or_insert_with(|| Partition::new(source.clone()));
                // The same meta again (a supervisor repeating its state, a warm view's
                // source connecting) changes no view: nothing to re-merge.
                if let Some(meta) = meta.filter(|meta| *meta != partition.meta) {
                    touched.services(partition.served_keys().cloned());
                    partition.rename(meta.names.clone(), touched);
                    if meta.stale_since != partition.meta.stale_since {
                        touched.staleness(&source);
                    }
                    partition.meta = meta;
                }
                partition.apply(update, now, guarded, touched);
                acks.extend(done);
            }
            Command::Drop { source, done } => {
                if let Some(partition) = inputs.partitions.remove(&source) {
                    touched.services(partition.served_keys().cloned());
                }
                dropped.push(source);
                acks.extend(done);
            }
            Command::Flush { done } => acks.extend(done),
            Command::SetRules { rules, done } => {
                inputs.rules = rules;
                for partition in inputs.partitions.values() {
                    touched.services(partition.served_keys().cloned());
                }
                acks.extend(done);
            }
        }
    }
    for partition in inputs.partitions.values_mut() {
        partition.expire_holds(now, touched);
    }
    dropped
}

#[cfg(test)]
mod tests {
    use switchboard_connectors::{Instance, InstanceKey, Update};

    use super::super::Catalog;
    use super::*;

    fn instance(service: &str, id: &str, port: u16) -> Instance {
        Instance::new(id, ServiceKey::named(service), "10.0.0.1", port)
    }

    #[tokio::test]
    async fn each_change_gets_a_higher_index_and_unchanged_services_keep_theirs() {
        let catalog = Catalog::start(Arc::new(Metrics::new()));
        let native: Arc<str> = Arc::from("native");
        let first = catalog
            .apply(
                &native,
                Update::Upsert(vec![instance("a", "a1", 1), instance("b", "b1", 1)]),
            )
            .await;
        let snap = catalog.snapshot();
        let a_index = snap.service("public", "DEFAULT", "a").unwrap().index;
        assert_eq!(snap.index, first);

        let second = catalog
            .apply(&native, Update::Upsert(vec![instance("b", "b2", 2)]))
            .await;
        assert!(second > first);
        let snap = catalog.snapshot();
        assert_eq!(
            snap.service("public", "DEFAULT", "a").unwrap().index,
            a_index
        );
        assert_eq!(snap.service("public", "DEFAULT", "b").unwrap().len(), 2);

        // Re-sending identical data does not move the index.
        let third = catalog
            .apply(&native, Update::Upsert(vec![instance("b", "b2", 2)]))
            .await;
        assert_eq!(third, second);
    }

    #[tokio::test]
    async fn removing_the_last_instance_drops_the_view_and_moves_the_services_index() {
        let metrics = Arc::new(Metrics::new());
        let catalog = Catalog::start(metrics.clone());
        let native: Arc<str> = Arc::from("native");
        let added = catalog
            .apply(&native, Update::Upsert(vec![instance("a", "a1", 1)]))
            .await;
        assert_eq!(metrics.catalog_services.get(), 1);
        let key = InstanceKey {
            service: ServiceKey::named("a"),
            id: "a1".into(),
        };
        let removed = catalog.apply(&native, Update::Remove(vec![key])).await;
        assert!(removed > added);
        let snap = catalog.snapshot();
        assert!(snap.service("public", "DEFAULT", "a").is_none());
        assert_eq!(snap.view_count(), 0, "an emptied service leaves no view");
        // A client holding the index from before the removal sees it move on.
        assert_eq!(snap.service_index("public", "DEFAULT", "a"), removed);
        assert!(snap.services().is_empty());
        assert_eq!(metrics.catalog_services.get(), 0, "no live service left");
        assert_eq!(&snap.listing(None, None)[..], b"[]");
    }

    #[tokio::test]
    async fn churn_of_short_lived_names_retains_nothing() {
        let catalog = Catalog::start(Arc::new(Metrics::new()));
        let native: Arc<str> = Arc::from("native");
        let before = catalog.snapshot().view_count();
        for round in 0..100 {
            let names: Vec<String> = (0..1000).map(|i| format!("short-{round}-{i}")).collect();
            let watchers: Vec<_> = (names.iter())
                .map(|name| catalog.subscribe(&ServiceKey::named(name.as_str())))
                .collect();
            let added = names.iter().map(|name| instance(name, "i1", 1)).collect();
            catalog.apply(&native, Update::Upsert(added)).await;
            let removed = (names.iter())
                .map(|name| InstanceKey {
                    service: ServiceKey::named(name.as_str()),
                    id: "i1".into(),
                })
                .collect();
            catalog.apply(&native, Update::Remove(removed)).await;
            drop(watchers);
        }
        let snap = catalog.snapshot();
        assert_eq!(snap.view_count(), before, "100 000 names came and went");
        assert_eq!(catalog.watched_services(), 0, "no wake-up channel is left");
    }

    #[tokio::test]
    async fn reset_replaces_a_partition_atomically() {
        let catalog = Catalog::start(Arc::new(Metrics::new()));
        let source: Arc<str> = Arc::from("etcd");
        catalog
            .apply(
                &source,
                Update::Reset(vec![instance("a", "a1", 1), instance("b", "b1", 1)]),
            )
            .await;
        catalog
            .apply(&source, Update::Reset(vec![instance("c", "c1", 1)]))
            .await;
        let snap = catalog.snapshot();
        let names: Vec<_> = snap.services().iter().map(|v| v.key.name.clone()).collect();
        assert_eq!(names, vec!["c"]);
    }

    #[tokio::test]
    async fn subscribers_wake_on_their_service_only() {
        let catalog = Catalog::start(Arc::new(Metrics::new()));
        let native: Arc<str> = Arc::from("native");
        let mut a = catalog.subscribe(&ServiceKey::named("a"));
        let b = catalog.subscribe(&ServiceKey::named("b"));
        let index = catalog
            .apply(&native, Update::Upsert(vec![instance("a", "a1", 1)]))
            .await;
        assert!(a.receiver.has_changed().unwrap());
        assert_eq!(*a.receiver.borrow_and_update(), index);
        assert!(!b.receiver.has_changed().unwrap());
    }

    #[tokio::test]
    async fn the_encoded_body_is_the_instance_list() {
        let catalog = Catalog::start(Arc::new(Metrics::new()));
        let native: Arc<str> = Arc::from("native");
        catalog
            .apply(&native, Update::Upsert(vec![instance("a", "a1", 1)]))
            .await;
        let snap = catalog.snapshot();
        let view = snap.service("public", "DEFAULT", "a").unwrap();
        let decoded: serde_json::Value = serde_json::from_slice(&view.encoded()).unwrap();
        assert_eq!(decoded[0]["id"], "a1");
        assert_eq!(decoded[0]["address"], "10.0.0.1:1");
        assert_eq!(decoded[0]["sources"][0], "native");
    }
}
