//! What one watch knows about the keys below the prefix: which etcd key holds which
//! instance. It turns listings and PUT/DELETE events into [`Update`]s, so a delete finds
//! the instance its key held, and a PUT that moves a key to another service or id removes
//! the old instance. Two keys that yield the same instance are both remembered; the most
//! recently written one is reported, and deleting it falls back to the other.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::convert::Converter;
use crate::{Instance, InstanceKey, Update};

/// One key-value as read from etcd, key already made text.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub key: String,
    pub value: Vec<u8>,
    pub mod_revision: i64,
}

#[derive(Debug)]
pub(crate) struct Tracker {
    converter: Converter,
    /// etcd key -> (instance, revision it was written at).
    by_key: HashMap<String, (Instance, i64)>,
    /// instance -> etcd keys that yield it.
    owners: HashMap<InstanceKey, BTreeSet<String>>,
}

impl Tracker {
    pub(crate) fn new(converter: Converter) -> Self {
        Tracker {
            converter,
            by_key: HashMap::new(),
            owners: HashMap::new(),
        }
    }

    /// Replaces everything with a listing: `Reset` first, then one `Skipped` per value
    /// that does not convert.
    pub(crate) fn reset(&mut self, entries: Vec<Entry>) -> Vec<Update> {
        self.by_key.clear();
        self.owners.clear();
        let mut skipped = Vec::new();
        for entry in entries {
            match self.converter.convert(&entry.key, &entry.value) {
                Ok(instance) => self.insert(entry.key, instance, entry.mod_revision),
                Err(reason) => skipped.push(Update::Skipped {
                    key: entry.key,
                    reason,
                }),
            }
        }
        let current: BTreeMap<InstanceKey, Instance> = self
            .owners
            .keys()
            .filter_map(|key| self.winner(key).map(|i| (key.clone(), i.clone())))
            .collect();
        let mut updates = vec![Update::Reset(current.into_values().collect())];
        updates.extend(skipped);
        updates
    }

    /// A key was written.
    pub(crate) fn put(&mut self, entry: Entry) -> Vec<Update> {
        let mut updates = Vec::new();
        let converted = self.converter.convert(&entry.key, &entry.value);
        let moved_from = self.forget(&entry.key);
        match converted {
            Ok(instance) => {
                let target = instance.key();
                if let Some(old) = moved_from.filter(|old| *old != target) {
                    updates.extend(self.after_loss(old));
                }
                self.insert(entry.key, instance.clone(), entry.mod_revision);
                updates.push(Update::Upsert(vec![instance]));
            }
            Err(reason) => {
                if let Some(old) = moved_from {
                    updates.extend(self.after_loss(old));
                }
                updates.push(Update::Skipped {
                    key: entry.key,
                    reason,
                });
            }
        }
        updates
    }

    /// A key was deleted (by a client or by its lease expiring).
    pub(crate) fn delete(&mut self, key: &str) -> Vec<Update> {
        self.forget(key)
            .map(|old| self.after_loss(old))
            .into_iter()
            .flatten()
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.owners.len()
    }

    fn insert(&mut self, key: String, instance: Instance, revision: i64) {
        self.owners
            .entry(instance.key())
            .or_default()
            .insert(key.clone());
        self.by_key.insert(key, (instance, revision));
    }

    /// Drops a key; returns the instance it held.
    fn forget(&mut self, key: &str) -> Option<InstanceKey> {
        let (instance, _) = self.by_key.remove(key)?;
        let target = instance.key();
        if let Some(keys) = self.owners.get_mut(&target) {
            keys.remove(key);
            if keys.is_empty() {
                self.owners.remove(&target);
            }
        }
        Some(target)
    }

    /// After a key of `target` went away: the instance is gone, or another key still holds
    /// it and its value is reported again.
    fn after_loss(&self, target: InstanceKey) -> Option<Update> {
        match self.winner(&target) {
            Some(instance) => Some(Update::Upsert(vec![instance.clone()])),
            None => Some(Update::Remove(vec![target])),
        }
    }

    /// The most recently written of the keys that hold `target`.
    fn winner(&self, target: &InstanceKey) -> Option<&Instance> {
        self.owners
            .get(target)?
            .iter()
            .filter_map(|key| self.by_key.get(key))
            .max_by_key(|(_, revision)| *revision)
            .map(|(instance, _)| instance)
    }
}

/// Merges neighbouring `Upsert`s and `Remove`s of one batch of events, keeping order.
pub(crate) fn coalesce(updates: Vec<Update>) -> Vec<Update> {
    let mut merged: Vec<Update> = Vec::with_capacity(updates.len());
    for update in updates {
        match (merged.last_mut(), update) {
            (Some(Update::Upsert(into)), Update::Upsert(more)) => into.extend(more),
            (Some(Update::Remove(into)), Update::Remove(more)) => into.extend(more),
            (_, update) => merged.push(update),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etcd::EtcdConfig;
    use crate::{ServiceKey, SourceCommon};

    fn tracker() -> Tracker {
        let common = SourceCommon {
            id: "t".into(),
            priority: 0,
            namespace: None,
            group: None,
            max_stale: None,
            empty_confirm: std::time::Duration::from_secs(1),
        };
        let config = EtcdConfig::new(["http://127.0.0.1:2379"]);
        Tracker::new(Converter::new(&common, &config).unwrap())
    }

    fn entry(key: &str, value: &str, mod_revision: i64) -> Entry {
        Entry {
            key: key.into(),
            value: value.as_bytes().to_vec(),
            mod_revision,
        }
    }

    fn ikey(service: &str, id: &str) -> InstanceKey {
        InstanceKey {
            service: ServiceKey::named(service),
            id: id.into(),
        }
    }

    fn addresses(update: &Update) -> Vec<String> {
        match update {
            Update::Reset(list) | Update::Upsert(list) => {
                list.iter().map(Instance::address).collect()
            }
            other => panic!("not a list: {other:?}"),
        }
    }

    #[test]
    fn reset_comes_first_then_skipped_values() {
        let mut t = tracker();
        let updates = t.reset(vec![
            entry("/services/a/1", "10.0.0.1:80", 2),
            entry("/services/a/2", "garbage", 3),
            entry("/services/b/1", "10.0.0.2:80", 4),
        ]);
        assert_eq!(addresses(&updates[0]), ["10.0.0.1:80", "10.0.0.2:80"]);
        assert!(matches!(&updates[1], Update::Skipped { key, .. } if key == "/services/a/2"));
        assert_eq!(updates.len(), 2);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn put_then_delete() {
        let mut t = tracker();
        t.reset(vec![]);
        let up = t.put(entry("/services/a/1", "10.0.0.1:80", 2));
        assert_eq!(addresses(&up[0]), ["10.0.0.1:80"]);
        assert_eq!(
            t.delete("/services/a/1"),
            [Update::Remove(vec![ikey("a", "1")])]
        );
        assert!(
            t.delete("/services/a/1").is_empty(),
            "unknown keys remove nothing"
        );
    }

    #[test]
    fn a_put_that_changes_the_id_removes_the_old_instance() {
        let mut t = tracker();
        t.reset(vec![entry(
            "/services/a/k",
            r#"{"id":"old","address":"10.0.0.1:80"}"#,
            2,
        )]);
        let updates = t.put(entry(
            "/services/a/k",
            r#"{"id":"new","address":"10.0.0.1:80"}"#,
            3,
        ));
        assert_eq!(updates[0], Update::Remove(vec![ikey("a", "old")]));
        assert!(matches!(&updates[1], Update::Upsert(list) if list[0].id == "new"));
        assert_eq!(
            t.delete("/services/a/k"),
            [Update::Remove(vec![ikey("a", "new")])]
        );
    }

    #[test]
    fn a_value_turning_bad_removes_the_instance_and_reports_it() {
        let mut t = tracker();
        t.reset(vec![entry("/services/a/1", "10.0.0.1:80", 2)]);
        let updates = t.put(entry("/services/a/1", "nonsense", 3));
        assert_eq!(updates[0], Update::Remove(vec![ikey("a", "1")]));
        assert!(
            matches!(&updates[1], Update::Skipped { key, reason } if key == "/services/a/1" && reason.contains("host:port"))
        );
        assert!(t.delete("/services/a/1").is_empty());
    }

    #[test]
    fn two_keys_for_one_instance_fall_back_on_delete() {
        let mut t = tracker();
        let same = |address: &str| format!(r#"{{"id":"x","address":"{address}"}}"#);
        let reset = t.reset(vec![
            entry("/services/a/k1", &same("10.0.0.1:80"), 5),
            entry("/services/a/k2", &same("10.0.0.2:80"), 3),
        ]);
        assert_eq!(addresses(&reset[0]), ["10.0.0.1:80"], "newest write wins");
        let fallback = t.delete("/services/a/k1");
        assert_eq!(addresses(&fallback[0]), ["10.0.0.2:80"]);
        assert_eq!(
            t.delete("/services/a/k2"),
            [Update::Remove(vec![ikey("a", "x")])]
        );
    }

    #[test]
    fn coalesce_merges_neighbours_only() {
        let a = Instance::new("a", ServiceKey::named("s"), "10.0.0.1", 1);
        let b = Instance::new("b", ServiceKey::named("s"), "10.0.0.2", 1);
        let merged = coalesce(vec![
            Update::Upsert(vec![a.clone()]),
            Update::Upsert(vec![b.clone()]),
            Update::Remove(vec![a.key()]),
            Update::Remove(vec![b.key()]),
            Update::Upsert(vec![a.clone()]),
        ]);
        assert_eq!(
            merged,
            [
                Update::Upsert(vec![a.clone(), b.clone()]),
                Update::Remove(vec![a.key(), b.key()]),
                Update::Upsert(vec![a]),
            ]
        );
    }
}
