//! The catalog's single writer: owns the partitions, merges, indexes and publishes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use switchboard_connectors::{Instance, ServiceKey, Update};
use tokio::sync::{mpsc, oneshot};

use super::merge::{self, Reported};
use super::notify::Notifier;
use super::snapshot::{ServiceView, Snapshot, ViewsOfName};
use super::{Command, SourceMeta};
use crate::telemetry::{Metrics, SourceLabels};

/// Most commands folded into one published snapshot.
const MAX_BATCH: usize = 1024;
/// How often channels with no listeners are dropped.
const PRUNE_EVERY: Duration = Duration::from_secs(30);

/// What one source currently reports, by service then by the source's instance id.
#[derive(Default)]
struct Partition {
    meta: SourceMeta,
    services: HashMap<ServiceKey, HashMap<String, Instance>>,
}

impl Partition {
    fn instance_count(&self) -> usize {
        self.services.values().map(HashMap::len).sum()
    }

    /// Applies `update` and records every service it touched.
    fn apply(&mut self, update: Update, touched: &mut HashSet<ServiceKey>) {
        match update {
            Update::Reset(instances) => {
                touched.extend(self.services.keys().cloned());
                self.services.clear();
                for instance in instances {
                    touched.insert(instance.service.clone());
                    self.insert(instance);
                }
            }
            Update::Service(key, instances) => {
                touched.insert(key.clone());
                self.services.remove(&key);
                for instance in instances.into_iter().filter(|i| i.service == key) {
                    self.insert(instance);
                }
            }
            Update::Upsert(instances) => {
                for instance in instances {
                    touched.insert(instance.service.clone());
                    self.insert(instance);
                }
            }
            Update::Remove(keys) => {
                for key in keys {
                    if let Some(service) = self.services.get_mut(&key.service) {
                        service.remove(&key.id);
                        if service.is_empty() {
                            self.services.remove(&key.service);
                        }
                    }
                    touched.insert(key.service);
                }
            }
        }
    }

    fn insert(&mut self, instance: Instance) {
        self.services
            .entry(instance.service.clone())
            .or_default()
            .insert(instance.id.clone(), instance);
    }
}

pub(crate) struct Writer {
    current: Arc<ArcSwap<Snapshot>>,
    notifier: Arc<Notifier>,
    metrics: Arc<Metrics>,
    partitions: HashMap<Arc<str>, Partition>,
    /// Latest view of every service ever seen (removed ones stay as empty views).
    by_name: HashMap<Arc<str>, ViewsOfName>,
    index: u64,
    last_prune: Instant,
}

impl Writer {
    pub fn new(
        current: Arc<ArcSwap<Snapshot>>,
        notifier: Arc<Notifier>,
        metrics: Arc<Metrics>,
        base: u64,
    ) -> Writer {
        Writer {
            current,
            notifier,
            metrics,
            partitions: HashMap::new(),
            by_name: HashMap::new(),
            index: base,
            last_prune: Instant::now(),
        }
    }

    pub async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while commands.recv_many(&mut batch, MAX_BATCH).await > 0 {
            self.process(std::mem::take(&mut batch));
        }
    }

    fn process(&mut self, batch: Vec<Command>) {
        let mut touched = HashSet::new();
        let mut acks: Vec<oneshot::Sender<u64>> = Vec::new();
        for command in batch {
            match command {
                Command::Apply {
                    source,
                    update,
                    done,
                } => {
                    self.partitions
                        .entry(source)
                        .or_default()
                        .apply(update, &mut touched);
                    acks.extend(done);
                }
                Command::Source { source, meta, done } => {
                    let partition = self.partitions.entry(source).or_default();
                    partition.meta = meta;
                    touched.extend(partition.services.keys().cloned());
                    acks.extend(done);
                }
            }
        }
        let changed: Vec<(ServiceKey, u64)> = touched
            .into_iter()
            .filter_map(|key| self.recompute(key))
            .collect();
        if !changed.is_empty() {
            self.publish();
            for (key, index) in &changed {
                self.notifier.notify(key, *index);
            }
        }
        self.record_metrics();
        for ack in acks {
            let _ = ack.send(self.index);
        }
        if self.last_prune.elapsed() > PRUNE_EVERY {
            self.notifier.prune();
            self.last_prune = Instant::now();
        }
    }

    /// Re-merges one service; returns its new index if what clients see changed.
    fn recompute(&mut self, key: ServiceKey) -> Option<(ServiceKey, u64)> {
        let reports: Vec<Reported<'_>> = self
            .partitions
            .iter()
            .filter_map(|(source, partition)| {
                let instances = partition.services.get(&key)?;
                Some(instances.values().map(move |instance| Reported {
                    source,
                    meta: &partition.meta,
                    instance,
                }))
            })
            .flatten()
            .collect();
        let merged = merge::union(reports);
        let views: &[Arc<ServiceView>] = self.by_name.get(key.name.as_str()).map_or(&[], |v| v);
        let slot = views.iter().position(|view| view.key == key);
        let unchanged = match slot {
            Some(i) => views[i].instances == merged,
            None => merged.is_empty(),
        };
        if unchanged {
            return None;
        }
        self.index += 1;
        let view = Arc::new(ServiceView::new(key.clone(), self.index, merged));
        let mut updated: Vec<Arc<ServiceView>> = views.to_vec();
        match slot {
            Some(i) => updated[i] = view,
            None => updated.push(view),
        }
        self.by_name
            .insert(Arc::from(key.name.as_str()), updated.into());
        Some((key, self.index))
    }

    fn publish(&self) {
        let snapshot = Snapshot::new(self.index, self.by_name.clone());
        self.current.store(Arc::new(snapshot));
    }

    fn record_metrics(&self) {
        for (source, partition) in &self.partitions {
            self.metrics
                .catalog_instances
                .get_or_create(&SourceLabels {
                    source: source.to_string(),
                })
                .set(partition.instance_count() as i64);
        }
        let live = self
            .by_name
            .values()
            .flat_map(|views| views.iter())
            .filter(|view| !view.is_empty())
            .count();
        self.metrics.catalog_services.set(live as i64);
        self.metrics.catalog_index.set(self.index);
    }
}

#[cfg(test)]
mod tests {
    use switchboard_connectors::InstanceKey;

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
        assert_eq!(
            snap.service("public", "DEFAULT", "b")
                .unwrap()
                .instances
                .len(),
            2
        );

        // Re-sending identical data does not move the index.
        let third = catalog
            .apply(&native, Update::Upsert(vec![instance("b", "b2", 2)]))
            .await;
        assert_eq!(third, second);
    }

    #[tokio::test]
    async fn removing_the_last_instance_leaves_an_empty_view_with_a_new_index() {
        let catalog = Catalog::start(Arc::new(Metrics::new()));
        let native: Arc<str> = Arc::from("native");
        let added = catalog
            .apply(&native, Update::Upsert(vec![instance("a", "a1", 1)]))
            .await;
        let key = InstanceKey {
            service: ServiceKey::named("a"),
            id: "a1".into(),
        };
        let removed = catalog.apply(&native, Update::Remove(vec![key])).await;
        assert!(removed > added);
        let snap = catalog.snapshot();
        let view = snap.service("public", "DEFAULT", "a").unwrap();
        assert!(view.is_empty());
        assert_eq!(view.index, removed);
        assert!(snap.services().is_empty());
        assert_eq!(&snap.listing(None, None)[..], b"[]");
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
        assert!(a.has_changed().unwrap());
        assert_eq!(*a.borrow_and_update(), index);
        assert!(!b.has_changed().unwrap());
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
        let decoded: serde_json::Value = serde_json::from_slice(&view.encoded).unwrap();
        assert_eq!(decoded[0]["id"], "a1");
        assert_eq!(decoded[0]["address"], "10.0.0.1:1");
        assert_eq!(decoded[0]["sources"][0], "native");
    }
}
