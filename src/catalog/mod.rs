//! The merged catalog: what every discovery read is served from.
//!
//! One writer task is the only one to change the partitions, one per source (the native
//! registry is a source too). It drains changes in batches, recomputes only the services
//! they touch, gives each changed service a new index from one monotonically increasing
//! counter, pre-encodes that service's JSON, and publishes an immutable [`Snapshot`] that
//! readers load without locks (`arc-swap`). Watchers are woken per service through the
//! [`Notifier`], and whoever follows the change feed learns what each batch changed. Its
//! queue carries changes only: explain and sync reports read the partitions directly
//! (`inputs.rs`).

mod chunks;
mod explain;
pub mod formats;
pub(crate) mod glob;
#[cfg(test)]
mod incremental_tests;
mod inputs;
mod instances;
mod merge;
mod merge_settings;
mod names;
mod notify;
mod partition;
mod reports;
mod rules;
mod snapshot;
mod touched;
mod view;
mod writer;

use std::collections::HashSet;
use std::sync::Arc;

use arc_swap::ArcSwap;
use switchboard_connectors::{ServiceKey, Update};
use tokio::sync::{broadcast, mpsc, oneshot};

pub use explain::{Explanation, InstanceVerdict, MergedInto, Reason, SourceReport};
pub use merge_settings::{MergeRulesView, MergeSettings, RuleView};
pub use names::{Mapped, NameMap};
pub use notify::{Notifier, Subscription};
pub use reports::{KeyFilter, ServiceReports, SourceSlice};
pub use rules::{MergeRule, MergeRules, Policy};
pub use snapshot::{InstanceView, ServiceSummary, ServiceView, Snapshot, SourceCounts};
pub use touched::Changes;

use self::inputs::SharedInputs;
use crate::store::SavedView;
use crate::telemetry::Metrics;

/// How a source takes part in merging.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SourceMeta {
    /// Higher wins when two sources report the same endpoint.
    pub priority: i32,
    /// Set while the source is unreachable: its data is served but flagged stale.
    pub stale_since: Option<chrono::DateTime<chrono::Utc>>,
    /// Hold updates that would empty a served service this long (the wipe-out guard).
    /// `None`: apply them at once (the native registry's own deletions).
    pub empty_confirm: Option<std::time::Duration>,
    /// How the source's service names become served names.
    pub names: Arc<NameMap>,
    /// Stale longer than `max_stale`: kept (for `explain` and a later recovery) but not
    /// served.
    pub expired: bool,
}

pub(crate) enum Command {
    Apply {
        source: Arc<str>,
        update: Update,
        /// Set before the update, in the same batch (a reconnect's reset turns fresh
        /// atomically with its data).
        meta: Option<SourceMeta>,
        /// False for a source's first view after its configuration changed: services
        /// it no longer reports go at once instead of waiting out the wipe-out guard.
        guarded: bool,
        done: Option<oneshot::Sender<u64>>,
    },
    /// Removes a source's partition outright (no guard): `max_stale` ran out, or an
    /// operator disconnected the source.
    Drop {
        source: Arc<str>,
        done: Option<oneshot::Sender<u64>>,
    },
    /// Changes nothing: answered once everything sent before it is published and
    /// announced on the change feed.
    Flush { done: Option<oneshot::Sender<u64>> },
    /// Replaces the merge rules; every service is re-merged.
    SetRules {
        rules: Arc<MergeRules>,
        done: Option<oneshot::Sender<u64>>,
    },
}

/// How many published batches of changed services the change feed buffers per
/// receiver; one that falls further behind is told it lagged and re-reads everything.
const CHANGE_FEED_DEPTH: usize = 1024;

/// A cheap, cloneable handle: send changes to the writer, read snapshots, subscribe, ask
/// about the sources' raw reports.
#[derive(Clone)]
pub struct Catalog {
    commands: mpsc::Sender<Command>,
    current: Arc<ArcSwap<Snapshot>>,
    notifier: Arc<Notifier>,
    inputs: SharedInputs,
    changes: broadcast::Sender<Arc<Changes>>,
}

impl Catalog {
    /// Starts the writer task with indexes counting from 0.
    pub fn start(metrics: Arc<Metrics>) -> Catalog {
        Catalog::start_at(metrics, 0)
    }

    /// Starts the writer task; the first change gets index `base + 1`. A base above any
    /// index an earlier run issued keeps clients' blocking queries correct across restarts.
    pub fn start_at(metrics: Arc<Metrics>, base: u64) -> Catalog {
        let (commands, receiver) = mpsc::channel(4096);
        let current = Arc::new(ArcSwap::from_pointee(Snapshot::empty_at(base)));
        let notifier = Arc::new(Notifier::default());
        let (changes, _) = broadcast::channel(CHANGE_FEED_DEPTH);
        let inputs = SharedInputs::default();
        let writer = writer::Writer::new(
            current.clone(),
            notifier.clone(),
            inputs.clone(),
            changes.clone(),
            metrics,
            base,
        );
        tokio::spawn(writer.run(receiver));
        Catalog {
            commands,
            current,
            notifier,
            inputs,
            changes,
        }
    }

    /// Services with at least one watcher (their wake-up channels).
    pub fn watched_services(&self) -> usize {
        self.notifier.watched()
    }

    /// The latest published snapshot. Never waits for the writer.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Applies an update from `source` and returns once it is visible to readers, with the
    /// catalog index at that moment.
    pub async fn apply(&self, source: &Arc<str>, update: Update) -> u64 {
        self.request(|done| Command::Apply {
            source: source.clone(),
            update,
            meta: None,
            guarded: true,
            done,
        })
        .await
    }

    /// Sends `updates` from `source`, in order, without waiting for them: the receiver
    /// answers (with the catalog index) once all of them are visible to readers. The
    /// writer folds whatever arrives while it is busy into one publish.
    pub async fn submit(&self, source: &Arc<str>, updates: Vec<Update>) -> oneshot::Receiver<u64> {
        let (done, published) = oneshot::channel();
        let mut done = Some(done);
        let last = updates.len().saturating_sub(1);
        for (i, update) in updates.into_iter().enumerate() {
            let command = Command::Apply {
                source: source.clone(),
                update,
                meta: None,
                guarded: true,
                done: if i == last { done.take() } else { None },
            };
            if self.commands.send(command).await.is_err() {
                break;
            }
        }
        if let Some(done) = done {
            let _ = done.send(self.snapshot().index);
        }
        published
    }

    /// [`Catalog::apply`], setting the source's meta first in the same batch.
    pub async fn apply_with_meta(
        &self,
        source: &Arc<str>,
        update: Update,
        meta: SourceMeta,
    ) -> u64 {
        self.request(|done| Command::Apply {
            source: source.clone(),
            update,
            meta: Some(meta),
            guarded: true,
            done,
        })
        .await
    }

    /// A source's first full view after its configuration changed: replaces its
    /// partition without the wipe-out guard, setting its meta in the same batch.
    pub async fn replace_source(
        &self,
        source: &Arc<str>,
        instances: Vec<switchboard_connectors::Instance>,
        meta: SourceMeta,
    ) -> u64 {
        self.request(|done| Command::Apply {
            source: source.clone(),
            update: Update::Reset(instances),
            meta: Some(meta),
            guarded: false,
            done,
        })
        .await
    }

    /// Replaces the merge rules and returns once every service is re-merged.
    pub async fn set_rules(&self, rules: MergeRules) -> u64 {
        self.request(|done| Command::SetRules {
            rules: Arc::new(rules),
            done,
        })
        .await
    }

    /// Explains service `key` (`None`: no source reports it); `state_of` names each
    /// source's state. Reads every source's raw reports without waiting for the writer's
    /// queue; discovery reads never take this path.
    pub fn explain(
        &self,
        key: &ServiceKey,
        state_of: &dyn Fn(&str) -> String,
    ) -> Option<Explanation> {
        let inputs = self.inputs.read();
        explain::explain(&inputs.partitions, &inputs.rules, key, state_of)
    }

    /// Every source's instances of the services `filter` picks, and what `target` holds
    /// under those services' own keys, as of now.
    pub fn reports(&self, filter: &KeyFilter, target: Option<&str>) -> Vec<ServiceReports> {
        // Under the read lock the snapshot is the one published from these partitions.
        let inputs = self.inputs.read();
        let snapshot = self.snapshot();
        reports::reports(&inputs.partitions, filter, target, &snapshot)
    }

    /// `source`'s view as it is now, for saving: its staleness and its `services` (its
    /// own keys; every service when `None`). A service it no longer has comes with no
    /// instances. `None` when the catalog has no such source.
    pub fn source_view(
        &self,
        source: &str,
        services: Option<&HashSet<ServiceKey>>,
    ) -> Option<SavedView> {
        let inputs = self.inputs.read();
        let partition = inputs.partitions.get(source)?;
        Some(partition.view(services))
    }

    /// What each published batch changed.
    pub fn changes(&self) -> broadcast::Receiver<Arc<Changes>> {
        self.changes.subscribe()
    }

    /// Sets a source's priority and staleness; its services are re-merged.
    pub async fn set_source(&self, source: &Arc<str>, meta: SourceMeta) -> u64 {
        // An empty upsert changes no instance: only the meta applies.
        self.apply_with_meta(source, Update::Upsert(Vec::new()), meta)
            .await
    }

    /// Returns once everything sent before it is published and announced on the change
    /// feed (a shutdown's last save waits for it).
    pub async fn flush(&self) -> u64 {
        self.request(|done| Command::Flush { done }).await
    }

    /// Removes everything `source` contributed, bypassing the wipe-out guard.
    pub async fn drop_source(&self, source: &Arc<str>) -> u64 {
        self.request(|done| Command::Drop {
            source: source.clone(),
            done,
        })
        .await
    }

    /// Sends a command and waits until the writer has published it.
    async fn request(&self, command: impl FnOnce(Option<oneshot::Sender<u64>>) -> Command) -> u64 {
        let (done, wait) = oneshot::channel();
        // The writer lives as long as any handle does; a closed channel means the runtime is
        // shutting down, and the last published index is the honest answer.
        if self.commands.send(command(Some(done))).await.is_err() {
            return self.snapshot().index;
        }
        wait.await.unwrap_or_else(|_| self.snapshot().index)
    }

    /// A watcher of the whole catalog: it changes whenever any service does.
    pub fn subscribe_catalog(&self) -> tokio::sync::watch::Receiver<u64> {
        self.notifier.subscribe_catalog()
    }

    /// A watcher of `key`'s index; it changes every time the service does.
    pub fn subscribe(&self, key: &ServiceKey) -> Subscription {
        let current = self
            .snapshot()
            .service_index(&key.namespace, &key.group, &key.name);
        self.notifier.subscribe(key, current)
    }
}
