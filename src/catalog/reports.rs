//! What each source reports per served service, with the state that decides whether its
//! silence can be trusted: the input of sync-back jobs. Read from the partitions under
//! the catalog's read lock; discovery reads never go through here.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use switchboard_connectors::{Instance, ServiceKey};

use super::partition::Partition;
use super::snapshot::Snapshot;

/// Which services a question is about.
pub enum KeyFilter {
    /// These served keys (whether or not any source reports them now).
    Keys(Vec<ServiceKey>),
    /// Every served key some source reports that matches.
    Matching(Arc<dyn Fn(&ServiceKey) -> bool + Send + Sync>),
}

/// One source's instances of one served service.
#[derive(Clone, Debug)]
pub struct SourceSlice {
    pub source: Arc<str>,
    pub priority: i32,
    /// Stale (unreachable) or past `max_stale`: its missing instances prove nothing.
    pub stale: bool,
    /// The wipe-out guard holds an emptying of one of its services under this name.
    pub held: bool,
    /// Each instance with the source's own service key (before name mapping).
    pub instances: Vec<(ServiceKey, Arc<Instance>)>,
}

/// Every source's report of one served service.
#[derive(Clone, Debug)]
pub struct ServiceReports {
    pub key: ServiceKey,
    pub sources: Vec<SourceSlice>,
    /// What the question's target source holds under its own services of the same
    /// name (in any namespace and group: a target places what it reads back in its own):
    /// where a sync job's writes into it show up.
    pub raw_of_target: Vec<Arc<Instance>>,
    /// The endpoints clients get for `key` (the merged view, merge rules applied).
    pub served: Vec<(String, u16)>,
}

/// Answers a reports question over the partitions; `snapshot` tells what clients get.
pub(super) fn reports(
    partitions: &HashMap<Arc<str>, Partition>,
    filter: &KeyFilter,
    target: Option<&str>,
    snapshot: &Snapshot,
) -> Vec<ServiceReports> {
    let keys: BTreeSet<ServiceKey> = match filter {
        KeyFilter::Keys(keys) => keys.iter().cloned().collect(),
        KeyFilter::Matching(matches) => partitions
            .values()
            .flat_map(Partition::served_keys)
            .filter(|key| matches(key))
            .cloned()
            .collect(),
    };
    let target = target.and_then(|id| partitions.get(id));
    // The target's own services by name, for the names asked about, built once.
    let names: HashSet<&str> = keys.iter().map(|key| key.name.as_str()).collect();
    let mut target_by_name: HashMap<&str, Vec<&ServiceKey>> = HashMap::new();
    for raw in target
        .into_iter()
        .flat_map(|partition| partition.services.keys())
        .filter(|raw| names.contains(raw.name.as_str()))
    {
        target_by_name
            .entry(raw.name.as_str())
            .or_default()
            .push(raw);
    }
    keys.iter()
        .map(|key| {
            let sources = partitions
                .iter()
                .filter_map(|(source, partition)| slice(source, partition, key))
                .collect();
            let raw_of_target = (target_by_name.get(key.name.as_str()).into_iter().flatten())
                .filter_map(|raw| target.and_then(|partition| partition.services.get(*raw)))
                .flat_map(|instances| instances.iter().map(|by_id| by_id.0.clone()))
                .collect();
            let served = served_endpoints(snapshot, key);
            ServiceReports {
                key: key.clone(),
                sources,
                raw_of_target,
                served,
            }
        })
        .collect()
}

/// The endpoints clients get for `key` in `snapshot`.
fn served_endpoints(snapshot: &Snapshot, key: &ServiceKey) -> Vec<(String, u16)> {
    let view = snapshot.service(&key.namespace, &key.group, &key.name);
    (view.into_iter().flat_map(|view| view.instances()))
        .map(|i| (i.instance.host.clone(), i.instance.port))
        .collect()
}

fn slice(source: &Arc<str>, partition: &Partition, key: &ServiceKey) -> Option<SourceSlice> {
    let mut held = false;
    let mut instances = Vec::new();
    for (raw, bucket) in partition.served_as(key) {
        held |= partition.is_held(raw);
        instances.extend(bucket.iter().map(|by_id| (raw.clone(), by_id.0.clone())));
    }
    if instances.is_empty() && !held {
        return None;
    }
    Some(SourceSlice {
        source: source.clone(),
        priority: partition.meta.priority,
        stale: partition.meta.stale_since.is_some() || partition.meta.expired,
        held,
        instances,
    })
}
