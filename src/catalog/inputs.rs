//! What the catalog merges: every source's partition and the merge rules in force.
//!
//! The writer task is the only one that changes them. It holds the write lock while it
//! applies a batch, re-merges what the batch touched and publishes the new snapshot, so
//! whoever holds the read lock sees the partitions and the snapshot of the same batch.
//! Questions that need the sources' raw reports (explain, sync reports, a source's view
//! for saving) read them under the read lock from the caller's task: they never queue
//! behind pending changes, and wait at most for the one batch being published.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use switchboard_connectors::{Instance, ServiceKey};

use super::chunks::Endpoint;
use super::instances::Instances;
use super::merge::{self, Reported};
use super::partition::Partition;
use super::rules::{MergeRules, Policy};
use super::snapshot::SourceCounts;
use super::view::InstanceView;

#[derive(Default)]
pub(super) struct Inputs {
    pub partitions: HashMap<Arc<str>, Partition>,
    pub rules: Arc<MergeRules>,
}

/// The inputs, shared by the writer and the catalog's handles.
#[derive(Clone, Default)]
pub(super) struct SharedInputs(Arc<RwLock<Inputs>>);

impl SharedInputs {
    pub fn read(&self) -> RwLockReadGuard<'_, Inputs> {
        // The writer panicking mid-batch stops the catalog anyway; what was applied is
        // still readable for questions.
        self.0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn write(&self) -> RwLockWriteGuard<'_, Inputs> {
        self.0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Inputs {
    /// Every source's reports of `key` served by `policy`, sorted by endpoint.
    pub fn merge(&self, key: &ServiceKey, policy: Policy) -> Vec<InstanceView> {
        let reports: Vec<Reported<'_>> = self
            .reports_from(key, |instances| instances.iter().map(|by_id| &by_id.0))
            .collect();
        merge::merge(policy, reports)
    }

    /// Under `union`, the instance served at each of `endpoints` (`None`: none now).
    pub fn merge_endpoints<'a>(
        &self,
        key: &ServiceKey,
        endpoints: &'a BTreeSet<(String, u16)>,
    ) -> Vec<(Endpoint<'a>, Option<InstanceView>)> {
        // `endpoints` is sorted, so the edits are too. Each endpoint's reports are found
        // in each partition's endpoint index, without going over the service's instances.
        endpoints
            .iter()
            .map(|(host, port)| {
                let reports = self
                    .reports_from(key, |instances| instances.at(host, *port))
                    .collect();
                ((host.as_str(), *port), merge::merge_one(reports))
            })
            .collect()
    }

    /// The reports `pick` takes from each served source's instances of `key`.
    fn reports_from<'a, I>(
        &'a self,
        key: &'a ServiceKey,
        pick: impl Fn(&'a Instances) -> I + Copy + 'a,
    ) -> impl Iterator<Item = Reported<'a>> + 'a
    where
        I: Iterator<Item = &'a Arc<Instance>> + 'a,
    {
        self.partitions
            .iter()
            .filter(|(_, partition)| !partition.meta.expired)
            .flat_map(move |(source, partition)| {
                partition
                    .served_as(key)
                    .flat_map(move |(_, instances)| pick(instances))
                    .map(move |instance| Reported {
                        source,
                        meta: &partition.meta,
                        instance,
                    })
            })
    }

    /// What each source contributes now (an expired source: nothing).
    pub fn source_counts(&self) -> HashMap<String, SourceCounts> {
        self.partitions
            .iter()
            .map(|(source, partition)| {
                let serving = !partition.meta.expired;
                let counts = SourceCounts {
                    instances: if serving {
                        partition.instance_count()
                    } else {
                        0
                    },
                    services: if serving {
                        partition.service_count()
                    } else {
                        0
                    },
                    guard_holds: partition.holds,
                };
                (source.to_string(), counts)
            })
            .collect()
    }
}
