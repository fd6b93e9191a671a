//! One source's share of the catalog, and the wipe-out guard.
//!
//! A backend that briefly answers "no instances" must not wipe a service. When an update
//! would take a served service from N > 0 instances to none and the source has an
//! `empty_confirm` delay, the partition keeps serving the old instances and holds the
//! emptying until the delay ends; if the source reports instances for the service again
//! meanwhile, those replace the old ones and the hold ends.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use switchboard_connectors::{Instance, InstanceKey, ServiceKey, Update};
use tokio::time::Instant;

pub(super) use super::instances::{ById, Instances};
use super::names::{Mapped, NameMap};
use super::touched::Touched;
use super::SourceMeta;
use crate::store::{SavedService, SavedView};
use crate::vocab::NATIVE_SOURCE;

/// A service whose emptying waits for confirmation.
struct Held {
    until: Instant,
    /// What the source says now (empty, or it would not be held).
    desired: Instances,
}

/// What one source currently reports, by the source's own service key then by the
/// source's instance id. Instances carry the key they are served under (the source's
/// name mapping applied); keeping the buckets by the source's key lets removals find
/// them, lets several source services be served as one, and lets the view be saved
/// and re-mapped later.
#[derive(Default)]
pub(super) struct Partition {
    /// The source's id.
    pub id: Arc<str>,
    pub meta: SourceMeta,
    pub services: HashMap<ServiceKey, Instances>,
    /// Served key -> the source's keys served under it (usually just one).
    served: HashMap<ServiceKey, Vec<ServiceKey>>,
    held: HashMap<ServiceKey, Held>,
    /// The source's services its name mapping leaves out (usually none).
    unserved: HashSet<ServiceKey>,
    /// Instances in served buckets, kept as buckets change (publishing reads it every
    /// batch, so it is not recounted).
    served_instances: usize,
    /// Emptyings held so far (for metrics).
    pub holds: u64,
}

impl Partition {
    pub fn new(id: Arc<str>) -> Partition {
        Partition {
            id,
            ..Partition::default()
        }
    }

    /// Instances served from this partition (excluded ones do not count).
    pub fn instance_count(&self) -> usize {
        self.served_instances
    }

    /// Services served from this partition.
    pub fn service_count(&self) -> usize {
        self.served.len()
    }

    /// Every served key this partition has instances for.
    pub fn served_keys(&self) -> impl Iterator<Item = &ServiceKey> {
        self.served.keys()
    }

    /// The source's own services served under `key`, with their instances.
    pub fn served_as<'a>(
        &'a self,
        key: &ServiceKey,
    ) -> impl Iterator<Item = (&'a ServiceKey, &'a Instances)> {
        self.served
            .get(key)
            .into_iter()
            .flatten()
            .filter_map(|raw| self.services.get_key_value(raw))
    }

    /// Whether the wipe-out guard holds an emptying of the source's service `raw`.
    pub fn is_held(&self, raw: &ServiceKey) -> bool {
        self.held.contains_key(raw)
    }

    /// Applies `update` as of `now`, recording every served service it touched.
    /// `guarded: false` bypasses the wipe-out guard (a source's first view after its
    /// configuration changed may legitimately drop services).
    pub fn apply(&mut self, update: Update, now: Instant, guarded: bool, touched: &mut Touched) {
        let mut raw_touched = HashSet::new();
        match update {
            Update::Reset(instances) => {
                let mut next: HashMap<ServiceKey, Instances> = HashMap::new();
                for instance in instances {
                    let raw = instance.service.clone();
                    next.entry(raw).or_default().replace(self.place(instance));
                }
                let gone: Vec<ServiceKey> = self
                    .services
                    .keys()
                    .chain(self.held.keys())
                    .filter(|key| !next.contains_key(*key))
                    .cloned()
                    .collect();
                for key in gone {
                    self.set_service(key.clone(), Instances::new(), now, guarded);
                    raw_touched.insert(key);
                }
                for (key, instances) in next {
                    self.set_service(key.clone(), instances, now, guarded);
                    raw_touched.insert(key);
                }
            }
            Update::Service(key, instances) => {
                let instances = instances
                    .into_iter()
                    .filter(|i| i.service == key)
                    .map(|i| self.place(i))
                    .collect();
                self.set_service(key.clone(), instances, now, guarded);
                raw_touched.insert(key);
            }
            Update::Upsert(instances) => {
                for instance in instances {
                    let raw = instance.service.clone();
                    let endpoints = self.upsert(instance);
                    self.touch_endpoints(&raw, endpoints, touched);
                }
            }
            Update::Remove(keys) => {
                for key in keys {
                    let endpoints = self.remove(&key, now);
                    self.touch_endpoints(&key.service, endpoints, touched);
                }
            }
            Update::Skipped { .. } => {}
        }
        self.touch(raw_touched, touched);
    }

    /// Records the served keys of the source's `raw` keys as touched whole, and the raw
    /// keys as changed.
    fn touch(&mut self, raw: HashSet<ServiceKey>, touched: &mut Touched) {
        for key in raw {
            self.touch_endpoints(&key, None, touched);
        }
    }

    /// Records what changed in the source's service `raw`: the endpoints an instance left
    /// and took, or (`None`) the whole service.
    fn touch_endpoints(
        &mut self,
        raw: &ServiceKey,
        endpoints: Option<Vec<(String, u16)>>,
        touched: &mut Touched,
    ) {
        if let Mapped::Served(served) = self.meta.names.map(raw) {
            match endpoints {
                Some(endpoints) => {
                    for (host, port) in endpoints {
                        touched.endpoint(served.clone(), &host, port);
                    }
                }
                None => touched.service(served),
            }
        }
        // The native registry keeps its own records: nobody follows its raw services.
        if &*self.id != NATIVE_SOURCE {
            touched.raw(&self.id, raw);
        }
    }

    /// The instance as stored: under the name it is served as.
    fn place(&self, mut instance: Instance) -> ById {
        let renamed = match self.meta.names.served_name(&instance.service.name) {
            Some(name) if name != instance.service.name => Some(name.into_owned()),
            _ => None,
        };
        if let Some(name) = renamed {
            instance.service.name = name;
        }
        ById(Arc::new(instance))
    }

    /// Adopts a new name mapping: every instance moves to its new served key at once.
    pub fn rename(&mut self, names: Arc<NameMap>, touched: &mut Touched) {
        if names == self.meta.names {
            return;
        }
        touched.services(self.served.keys().cloned());
        self.meta.names = names;
        self.served.clear();
        self.unserved.clear();
        self.served_instances = 0;
        let raws: Vec<ServiceKey> = self.services.keys().cloned().collect();
        for raw in raws {
            let Some(instances) = self.services.remove(&raw) else {
                continue;
            };
            let target = match self.meta.names.map(&raw) {
                Mapped::Served(served) => served,
                Mapped::Excluded => raw.clone(),
            };
            let moved: Instances = instances
                .into_iter()
                .map(|by_id| {
                    if by_id.0.service == target {
                        by_id
                    } else {
                        let mut instance = (*by_id.0).clone();
                        instance.service = target.clone();
                        ById(Arc::new(instance))
                    }
                })
                .collect();
            self.insert_bucket(raw, moved);
        }
        touched.services(self.served.keys().cloned());
    }

    fn insert_bucket(&mut self, raw: ServiceKey, instances: Instances) {
        let added = instances.len();
        match self.services.insert(raw.clone(), instances) {
            Some(old) if !self.unserved.contains(&raw) => {
                self.served_instances = self.served_instances + added - old.len();
            }
            Some(_) => {}
            None => match self.meta.names.map(&raw) {
                Mapped::Served(served) => {
                    self.served.entry(served).or_default().push(raw);
                    self.served_instances += added;
                }
                Mapped::Excluded => {
                    self.unserved.insert(raw);
                }
            },
        }
    }

    fn remove_bucket(&mut self, raw: &ServiceKey) {
        let Some(old) = self.services.remove(raw) else {
            return;
        };
        if self.unserved.remove(raw) {
            return;
        }
        self.served_instances -= old.len();
        if let Mapped::Served(served) = self.meta.names.map(raw) {
            if let Some(raws) = self.served.get_mut(&served) {
                raws.retain(|r| r != raw);
                if raws.is_empty() {
                    self.served.remove(&served);
                }
            }
        }
    }

    /// Replaces a service's instances, holding an emptying when the guard applies.
    fn set_service(&mut self, key: ServiceKey, desired: Instances, now: Instant, guarded: bool) {
        if !desired.is_empty() {
            self.held.remove(&key);
            self.insert_bucket(key, desired);
            return;
        }
        if let Some(held) = self.held.get_mut(&key) {
            if guarded {
                held.desired = desired;
                return;
            }
            self.held.remove(&key);
        }
        // Only a service clients get is worth holding (not one the source's name mapping
        // leaves out).
        let served = self.services.get(&key).is_some_and(|s| !s.is_empty())
            && matches!(self.meta.names.map(&key), Mapped::Served(_));
        let until = self
            .meta
            .empty_confirm
            .and_then(|confirm| now.checked_add(confirm));
        match until {
            Some(until) if served && guarded => {
                tracing::warn!(
                    service = %key,
                    confirm = ?self.meta.empty_confirm,
                    "Source reports no instances for a served service; holding for confirmation"
                );
                self.holds += 1;
                self.held.insert(key, Held { until, desired });
            }
            _ => self.remove_bucket(&key),
        }
    }

    /// Adds or replaces an instance; returns the endpoints whose instances changed (the
    /// one it had before and the one it has now), or `None` when the whole service did.
    fn upsert(&mut self, instance: Instance) -> Option<Vec<(String, u16)>> {
        let key = instance.service.clone();
        let instance = self.place(instance);
        if let Some(mut held) = self.held.remove(&key) {
            // The service is back: what the source says now replaces the held instances.
            held.desired.replace(instance);
            self.insert_bucket(key, held.desired);
            return None;
        }
        let Some(instances) = self.services.get_mut(&key) else {
            self.insert_bucket(key, Instances::from([instance]));
            return None;
        };
        let mut endpoints = vec![(instance.0.host.clone(), instance.0.port)];
        match instances.replace(instance) {
            Some(old)
                if (old.0.host.as_str(), old.0.port)
                    != (endpoints[0].0.as_str(), endpoints[0].1) =>
            {
                endpoints.push((old.0.host.clone(), old.0.port));
            }
            Some(_) => {}
            None if !self.unserved.contains(&key) => self.served_instances += 1,
            None => {}
        }
        Some(endpoints)
    }

    /// Removes an instance; returns the endpoint it had, or `None` when the whole service
    /// changed (it emptied, or the guard holds it).
    fn remove(&mut self, key: &InstanceKey, now: Instant) -> Option<Vec<(String, u16)>> {
        if let Some(held) = self.held.get_mut(&key.service) {
            held.desired.take(key.id.as_str());
            return None;
        }
        let Some(service) = self.services.get_mut(&key.service) else {
            return Some(Vec::new());
        };
        if service.len() == 1 && service.contains(key.id.as_str()) {
            self.set_service(key.service.clone(), Instances::new(), now, true);
            return None;
        }
        let removed = service.take(key.id.as_str());
        if removed.is_some() && !self.unserved.contains(&key.service) {
            self.served_instances -= 1;
        }
        Some(
            removed
                .map(|gone| (gone.0.host.clone(), gone.0.port))
                .into_iter()
                .collect(),
        )
    }

    /// Applies held emptyings whose confirmation time has come.
    pub fn expire_holds(&mut self, now: Instant, touched: &mut Touched) {
        let due: HashSet<ServiceKey> = self
            .held
            .iter()
            .filter(|(_, held)| held.until <= now)
            .map(|(key, _)| key.clone())
            .collect();
        for key in &due {
            self.held.remove(key);
            self.remove_bucket(key);
            tracing::info!(service = %key, "Source still reports no instances; service emptied");
        }
        self.touch(due, touched);
    }

    /// The source's view as it is now, for saving: `services` (its own keys; every
    /// service when `None`), a service it no longer has with no instances. Only pointers
    /// are copied; encoding and writing happen elsewhere.
    pub fn view(&self, services: Option<&HashSet<ServiceKey>>) -> SavedView {
        let saved = |raw: &ServiceKey| SavedService {
            service: raw.clone(),
            instances: (self.services.get(raw).into_iter().flatten())
                .map(|by_id| by_id.0.clone())
                .collect(),
        };
        let services = match services {
            Some(services) => services.iter().map(saved).collect(),
            None => self.services.keys().map(saved).collect(),
        };
        SavedView {
            stale_since: self.meta.stale_since,
            services,
        }
    }

    /// The earliest time a held emptying is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.held.values().map(|held| held.until).min()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn instance(service: &str, id: &str) -> Instance {
        Instance::new(id, ServiceKey::named(service), "10.0.0.1", 80)
    }

    fn guarded() -> Partition {
        Partition {
            meta: SourceMeta {
                empty_confirm: Some(Duration::from_secs(10)),
                ..SourceMeta::default()
            },
            ..Partition::default()
        }
    }

    impl Partition {
        fn apply_guarded(&mut self, update: Update, now: Instant, touched: &mut Touched) {
            self.apply(update, now, true, touched);
        }
    }

    fn ids(partition: &Partition, service: &str) -> Vec<String> {
        let mut ids: Vec<String> = partition
            .services
            .get(&ServiceKey::named(service))
            .map(|s| s.iter().map(|i| i.0.id.clone()).collect())
            .unwrap_or_default();
        ids.sort();
        ids
    }

    #[test]
    fn an_empty_reset_is_held_then_applied_when_confirmed() {
        let mut p = guarded();
        let now = Instant::now();
        let mut touched = Touched::default();
        p.apply_guarded(Update::Reset(vec![instance("a", "a1")]), now, &mut touched);
        p.apply_guarded(Update::Reset(vec![]), now, &mut touched);
        assert_eq!(ids(&p, "a"), vec!["a1"], "still served while held");
        assert_eq!(p.holds, 1);
        assert_eq!(p.next_due(), Some(now + Duration::from_secs(10)));

        let mut touched = Touched::default();
        p.expire_holds(now + Duration::from_secs(9), &mut touched);
        assert_eq!(ids(&p, "a"), vec!["a1"]);
        p.expire_holds(now + Duration::from_secs(10), &mut touched);
        assert!(ids(&p, "a").is_empty());
        assert!(touched.contains(&ServiceKey::named("a")));
    }

    #[test]
    fn instances_returning_during_a_hold_replace_the_old_ones() {
        let mut p = guarded();
        let now = Instant::now();
        let mut touched = Touched::default();
        p.apply_guarded(Update::Reset(vec![instance("a", "a1")]), now, &mut touched);
        let key = InstanceKey {
            service: ServiceKey::named("a"),
            id: "a1".into(),
        };
        p.apply_guarded(Update::Remove(vec![key]), now, &mut touched);
        assert_eq!(ids(&p, "a"), vec!["a1"]);
        p.apply_guarded(Update::Upsert(vec![instance("a", "a2")]), now, &mut touched);
        assert_eq!(ids(&p, "a"), vec!["a2"]);
        assert_eq!(p.next_due(), None);
    }

    #[test]
    fn without_a_guard_or_when_partly_emptied_changes_apply_at_once() {
        let mut p = Partition::default();
        let now = Instant::now();
        let mut touched = Touched::default();
        p.apply_guarded(Update::Reset(vec![instance("a", "a1")]), now, &mut touched);
        p.apply_guarded(Update::Reset(vec![]), now, &mut touched);
        assert!(ids(&p, "a").is_empty());

        let mut p = guarded();
        p.apply_guarded(
            Update::Reset(vec![instance("a", "a1"), instance("a", "a2")]),
            now,
            &mut touched,
        );
        let key = InstanceKey {
            service: ServiceKey::named("a"),
            id: "a1".into(),
        };
        p.apply_guarded(Update::Remove(vec![key]), now, &mut touched);
        assert_eq!(ids(&p, "a"), vec!["a2"]);
        assert_eq!(p.holds, 0);
    }

    fn renaming(prefix: &str) -> Arc<NameMap> {
        Arc::new(NameMap {
            exclude: vec!["hidden".into()],
            prefix: Some(prefix.into()),
            ..NameMap::default()
        })
    }

    #[test]
    fn instances_are_served_under_mapped_names_and_removed_by_their_own() {
        let mut p = Partition::default();
        let now = Instant::now();
        let mut touched = Touched::default();
        p.rename(renaming("x-"), &mut touched);
        p.apply_guarded(
            Update::Reset(vec![instance("a", "a1"), instance("hidden", "h1")]),
            now,
            &mut touched,
        );
        assert!(touched.contains(&ServiceKey::named("x-a")));
        assert!(!touched.iter().any(|(k, _)| k.name.contains("hidden")));
        let served: Vec<_> = p.served_as(&ServiceKey::named("x-a")).collect();
        assert_eq!(served.len(), 1);
        assert_eq!(
            served[0].0,
            &ServiceKey::named("a"),
            "kept by the source's own key"
        );
        let instance = served[0].1.iter().next().unwrap();
        assert_eq!(instance.0.service.name, "x-a");
        assert_eq!(p.instance_count(), 1, "excluded instances are not counted");

        let key = InstanceKey {
            service: ServiceKey::named("a"),
            id: "a1".into(),
        };
        p.apply(Update::Remove(vec![key]), now, false, &mut touched);
        assert_eq!(p.served_as(&ServiceKey::named("x-a")).count(), 0);
    }

    #[test]
    fn a_new_mapping_moves_every_instance_at_once() {
        let mut p = Partition::default();
        let now = Instant::now();
        let mut touched = Touched::default();
        p.rename(renaming("x-"), &mut touched);
        p.apply_guarded(Update::Reset(vec![instance("a", "a1")]), now, &mut touched);
        let mut touched = Touched::default();
        p.rename(renaming("y-"), &mut touched);
        assert!(touched.contains(&ServiceKey::named("x-a")));
        assert!(touched.contains(&ServiceKey::named("y-a")));
        assert_eq!(p.served_as(&ServiceKey::named("x-a")).count(), 0);
        let moved: Vec<_> = p.served_as(&ServiceKey::named("y-a")).collect();
        assert_eq!(moved[0].1.iter().next().unwrap().0.service.name, "y-a");
    }

    #[test]
    fn an_unguarded_reset_drops_services_at_once() {
        let mut p = guarded();
        let now = Instant::now();
        let mut touched = Touched::default();
        p.apply_guarded(Update::Reset(vec![instance("a", "a1")]), now, &mut touched);
        p.apply(
            Update::Reset(vec![instance("b", "b1")]),
            now,
            false,
            &mut touched,
        );
        assert!(ids(&p, "a").is_empty());
        assert_eq!(p.holds, 0);
    }
}

#[cfg(test)]
#[path = "partition_counts.rs"]
mod count_tests;
