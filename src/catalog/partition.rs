//! One source's share of the catalog, and the wipe-out guard.
//!
//! A backend that briefly answers "no instances" must not wipe a service. When an update
//! would take a served service from N > 0 instances to none and the source has an
//! `empty_confirm` delay, the partition keeps serving the old instances and holds the
//! emptying until the delay ends; if the source reports instances for the service again
//! meanwhile, those replace the old ones and the hold ends.

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use switchboard_connectors::{Instance, InstanceKey, ServiceKey, Update};
use tokio::time::Instant;

use super::SourceMeta;

/// An instance in a partition, found by its own id: keying by the id inside the instance
/// instead of a copy of it saves a string per cached instance.
#[derive(Clone, Debug)]
pub(super) struct ById(pub Arc<Instance>);

impl PartialEq for ById {
    fn eq(&self, other: &ById) -> bool {
        self.0.id == other.0.id
    }
}

impl Eq for ById {}

impl Hash for ById {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Must hash like `str`, since lookups go through `Borrow<str>`.
        self.0.id.as_str().hash(state);
    }
}

impl Borrow<str> for ById {
    fn borrow(&self) -> &str {
        &self.0.id
    }
}

/// One service's instances in one partition.
pub(super) type Instances = HashSet<ById>;

/// A service whose emptying waits for confirmation.
struct Held {
    until: Instant,
    /// What the source says now (empty, or it would not be held).
    desired: Instances,
}

/// What one source currently reports, by service then by the source's instance id.
#[derive(Default)]
pub(super) struct Partition {
    pub meta: SourceMeta,
    pub services: HashMap<ServiceKey, Instances>,
    held: HashMap<ServiceKey, Held>,
    /// Emptyings held so far (for metrics).
    pub holds: u64,
}

impl Partition {
    pub fn instance_count(&self) -> usize {
        self.services.values().map(HashSet::len).sum()
    }

    /// Applies `update` as of `now`, recording every service it touched.
    pub fn apply(&mut self, update: Update, now: Instant, touched: &mut HashSet<ServiceKey>) {
        match update {
            Update::Reset(instances) => {
                let mut next: HashMap<ServiceKey, Instances> = HashMap::new();
                for instance in instances {
                    next.entry(instance.service.clone())
                        .or_default()
                        .replace(ById(Arc::new(instance)));
                }
                let gone: Vec<ServiceKey> = self
                    .services
                    .keys()
                    .chain(self.held.keys())
                    .filter(|key| !next.contains_key(*key))
                    .cloned()
                    .collect();
                for key in gone {
                    self.set_service(key.clone(), Instances::new(), now);
                    touched.insert(key);
                }
                for (key, instances) in next {
                    self.set_service(key.clone(), instances, now);
                    touched.insert(key);
                }
            }
            Update::Service(key, instances) => {
                let instances = instances
                    .into_iter()
                    .filter(|i| i.service == key)
                    .map(|i| ById(Arc::new(i)))
                    .collect();
                self.set_service(key.clone(), instances, now);
                touched.insert(key);
            }
            Update::Upsert(instances) => {
                for instance in instances {
                    touched.insert(instance.service.clone());
                    self.upsert(instance);
                }
            }
            Update::Remove(keys) => {
                for key in keys {
                    self.remove(&key, now);
                    touched.insert(key.service);
                }
            }
            Update::Skipped { .. } => {}
        }
    }

    /// Replaces a service's instances, holding an emptying when the guard applies.
    fn set_service(&mut self, key: ServiceKey, desired: Instances, now: Instant) {
        if !desired.is_empty() {
            self.held.remove(&key);
            self.services.insert(key, desired);
            return;
        }
        if let Some(held) = self.held.get_mut(&key) {
            held.desired = desired;
            return;
        }
        let served = self.services.get(&key).is_some_and(|s| !s.is_empty());
        match self.meta.empty_confirm {
            Some(confirm) if served => {
                tracing::warn!(
                    service = %key,
                    confirm = ?confirm,
                    "Source reports no instances for a served service; holding for confirmation"
                );
                self.holds += 1;
                self.held.insert(
                    key,
                    Held {
                        until: now + confirm,
                        desired,
                    },
                );
            }
            _ => {
                self.services.remove(&key);
            }
        }
    }

    fn upsert(&mut self, instance: Instance) {
        let key = instance.service.clone();
        let instance = Arc::new(instance);
        if let Some(mut held) = self.held.remove(&key) {
            // The service is back: what the source says now replaces the held instances.
            held.desired.replace(ById(instance));
            self.services.insert(key, held.desired);
            return;
        }
        self.services
            .entry(key)
            .or_default()
            .replace(ById(instance));
    }

    fn remove(&mut self, key: &InstanceKey, now: Instant) {
        if let Some(held) = self.held.get_mut(&key.service) {
            held.desired.remove(key.id.as_str());
            return;
        }
        let Some(service) = self.services.get_mut(&key.service) else {
            return;
        };
        if service.len() == 1 && service.contains(key.id.as_str()) {
            self.set_service(key.service.clone(), Instances::new(), now);
        } else {
            service.remove(key.id.as_str());
        }
    }

    /// Applies held emptyings whose confirmation time has come.
    pub fn expire_holds(&mut self, now: Instant, touched: &mut HashSet<ServiceKey>) {
        let due: Vec<ServiceKey> = self
            .held
            .iter()
            .filter(|(_, held)| held.until <= now)
            .map(|(key, _)| key.clone())
            .collect();
        for key in due {
            self.held.remove(&key);
            self.services.remove(&key);
            tracing::info!(service = %key, "Source still reports no instances; service emptied");
            touched.insert(key);
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
        let mut touched = HashSet::new();
        p.apply(Update::Reset(vec![instance("a", "a1")]), now, &mut touched);
        p.apply(Update::Reset(vec![]), now, &mut touched);
        assert_eq!(ids(&p, "a"), vec!["a1"], "still served while held");
        assert_eq!(p.holds, 1);
        assert_eq!(p.next_due(), Some(now + Duration::from_secs(10)));

        let mut touched = HashSet::new();
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
        let mut touched = HashSet::new();
        p.apply(Update::Reset(vec![instance("a", "a1")]), now, &mut touched);
        let key = InstanceKey {
            service: ServiceKey::named("a"),
            id: "a1".into(),
        };
        p.apply(Update::Remove(vec![key]), now, &mut touched);
        assert_eq!(ids(&p, "a"), vec!["a1"]);
        p.apply(Update::Upsert(vec![instance("a", "a2")]), now, &mut touched);
        assert_eq!(ids(&p, "a"), vec!["a2"]);
        assert_eq!(p.next_due(), None);
    }

    #[test]
    fn without_a_guard_or_when_partly_emptied_changes_apply_at_once() {
        let mut p = Partition::default();
        let now = Instant::now();
        let mut touched = HashSet::new();
        p.apply(Update::Reset(vec![instance("a", "a1")]), now, &mut touched);
        p.apply(Update::Reset(vec![]), now, &mut touched);
        assert!(ids(&p, "a").is_empty());

        let mut p = guarded();
        p.apply(
            Update::Reset(vec![instance("a", "a1"), instance("a", "a2")]),
            now,
            &mut touched,
        );
        let key = InstanceKey {
            service: ServiceKey::named("a"),
            id: "a1".into(),
        };
        p.apply(Update::Remove(vec![key]), now, &mut touched);
        assert_eq!(ids(&p, "a"), vec!["a2"]);
        assert_eq!(p.holds, 0);
    }
}
