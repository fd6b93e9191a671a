//! What one watch knows about the keys below the prefix: which etcd key holds which
//! instance. It turns listings and PUT/DELETE events into [`Update`]s, so a delete finds
//! the instance its key held, and a PUT that moves a key to another service or id removes
//! the old instance. Two keys that yield the same instance are both remembered; the most
//! recently written one is reported, and deleting it falls back to the other.
//!
//! The catalog keeps the instances, so this keeps per key only the key and which instance
//! it holds (the service shared by all instances of the service, the id shared by the two
//! maps): about 160 bytes a key at 100 000 keys. Whole instances are kept only while two
//! or more keys yield the same instance, for the fallback; the key that held it alone
//! before the others came is the exception: neither its instance nor its key were kept.
//! When the fallback lands on that key, [`Step::Fetch`] asks the watch to read it again.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::convert::Converter;
use crate::{Instance, InstanceKey, ServiceKey, Update};

/// One key-value as read from etcd, key already made text.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub key: String,
    pub value: Vec<u8>,
    pub mod_revision: i64,
}

/// What the watch does for one event, in order.
#[derive(Debug, PartialEq)]
pub(crate) enum Step {
    /// Send this update.
    Send(Update),
    /// Read a key again, before the next event, and send what [`Tracker::fetched`] makes
    /// of it.
    Fetch(Fetch),
}

/// A key the fallback lands on whose instance was not kept.
#[derive(Debug, PartialEq)]
pub(crate) struct Fetch {
    pub key: String,
    /// The revision to read at: the key still held the value written at `revision`.
    pub at: i64,
    revision: i64,
    target: Ident,
}

/// Which instance a key holds, small: the service is shared by all of its instances, the
/// id by `by_key` and `single`/`shared`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Ident {
    service: Arc<ServiceKey>,
    id: Arc<str>,
}

impl Ident {
    fn is(&self, instance: &Instance) -> bool {
        *self.service == instance.service && *self.id == *instance.id
    }

    fn key(&self) -> InstanceKey {
        InstanceKey {
            service: ServiceKey::clone(&self.service),
            id: String::from(&*self.id),
        }
    }
}

/// An instance that two or more keys yield.
#[derive(Debug)]
struct Shared {
    /// The revision of the key that held the instance alone before the others came, while
    /// it still holds it. Its instance and key were not kept.
    first: Option<i64>,
    /// The other keys, with their instances.
    members: Vec<Member>,
}

#[derive(Debug)]
struct Member {
    key: Box<str>,
    revision: i64,
    instance: Instance,
}

impl Shared {
    fn holders(&self) -> usize {
        self.members.len() + usize::from(self.first.is_some())
    }

    /// The most recently written member; among members written at one revision (in one
    /// transaction), the greatest key.
    fn newest(&self) -> Option<usize> {
        (0..self.members.len()).max_by(|&a, &b| {
            let (a, b) = (&self.members[a], &self.members[b]);
            (a.revision, &a.key).cmp(&(b.revision, &b.key))
        })
    }
}

#[derive(Debug)]
pub(crate) struct Tracker {
    converter: Converter,
    /// etcd key -> the instance it holds.
    by_key: HashMap<Box<str>, Ident>,
    /// Instances one key holds -> the revision that key was written at.
    single: HashMap<Ident, i64>,
    /// Instances two or more keys hold.
    shared: HashMap<Ident, Shared>,
    /// The services of the instances held, each once.
    services: HashSet<Arc<ServiceKey>>,
}

impl Tracker {
    pub(crate) fn new(converter: Converter) -> Self {
        Tracker {
            converter,
            by_key: HashMap::new(),
            single: HashMap::new(),
            shared: HashMap::new(),
            services: HashSet::new(),
        }
    }

    /// Replaces everything with a listing: `Reset` first, then one `Skipped` per value
    /// that does not convert.
    pub(crate) fn reset(&mut self, entries: Vec<Entry>) -> Vec<Update> {
        self.by_key.clear();
        self.single.clear();
        self.shared.clear();
        self.services.clear();
        let mut skipped = Vec::new();
        let mut held = Vec::with_capacity(entries.len());
        for entry in entries {
            match self.converter.convert(&entry.key, &entry.value) {
                Ok(instance) => held.push((entry.key, entry.mod_revision, instance)),
                Err(reason) => skipped.push(Update::Skipped {
                    key: entry.key,
                    reason,
                }),
            }
        }
        // By instance, then by write: the last of each instance's keys is the one reported.
        fn rank(
            (key, revision, instance): &(String, i64, Instance),
        ) -> (&ServiceKey, &String, i64, &String) {
            (&instance.service, &instance.id, *revision, key)
        }
        let mut order: Vec<usize> = (0..held.len()).collect();
        order.sort_unstable_by(|&a, &b| rank(&held[a]).cmp(&rank(&held[b])));
        let same = |a: &Instance, b: &Instance| a.service == b.service && a.id == b.id;
        let mut held: Vec<_> = held.into_iter().map(Some).collect();
        let mut current = Vec::new();
        let mut group = Vec::new();
        for (at, &index) in order.iter().enumerate() {
            let Some(this) = held[index].take() else {
                continue;
            };
            let ends = order.get(at + 1).is_none_or(|&next| {
                held[next]
                    .as_ref()
                    .is_none_or(|(_, _, next)| !same(next, &this.2))
            });
            group.push(this);
            if ends {
                current.push(self.load(std::mem::take(&mut group)));
            }
        }
        let mut updates = vec![Update::Reset(current)];
        updates.extend(skipped);
        updates
    }

    /// Keeps the keys of one instance from a listing; returns the instance to report.
    fn load(&mut self, mut group: Vec<(String, i64, Instance)>) -> Instance {
        if group.len() == 1 {
            let (key, revision, instance) = group.remove(0);
            let ident = self.ident(&instance);
            self.by_key.insert(key.into_boxed_str(), ident.clone());
            self.single.insert(ident, revision);
            return instance;
        }
        let newest = group[group.len() - 1].2.clone();
        let ident = self.ident(&newest);
        let mut members = Vec::with_capacity(group.len());
        for (key, revision, instance) in group {
            let key = key.into_boxed_str();
            self.by_key.insert(key.clone(), ident.clone());
            members.push(Member {
                key,
                revision,
                instance,
            });
        }
        self.shared.insert(
            ident,
            Shared {
                first: None,
                members,
            },
        );
        newest
    }

    /// A key was written.
    pub(crate) fn put(&mut self, entry: Entry) -> Vec<Step> {
        let Entry {
            key,
            value,
            mod_revision,
        } = entry;
        let converted = self.converter.convert(&key, &value);
        let moved_from = self.remove_holder(&key);
        let mut steps = Vec::new();
        match converted {
            Ok(instance) => {
                let target = match &moved_from {
                    Some(old) if old.is(&instance) => old.clone(),
                    Some(old) => {
                        steps.push(self.after_loss(old, mod_revision));
                        self.ident(&instance)
                    }
                    None => self.ident(&instance),
                };
                self.add_holder(key, target, mod_revision, &instance);
                steps.push(Step::Send(Update::Upsert(vec![instance])));
            }
            Err(reason) => {
                if let Some(old) = &moved_from {
                    steps.push(self.after_loss(old, mod_revision));
                }
                steps.push(Step::Send(Update::Skipped { key, reason }));
            }
        }
        if let Some(old) = moved_from {
            self.release(old);
        }
        steps
    }

    /// A key was deleted (by a client or by its lease expiring) at `revision`.
    pub(crate) fn delete(&mut self, key: &str, revision: i64) -> Vec<Step> {
        let Some(old) = self.remove_holder(key) else {
            return Vec::new();
        };
        let step = self.after_loss(&old, revision);
        self.release(old);
        vec![step]
    }

    /// What a [`Step::Fetch`] read: the update to send, or why this no longer matches
    /// etcd (the watch then lists again).
    pub(crate) fn fetched(&mut self, fetch: Fetch, read: Option<Entry>) -> Result<Update, String> {
        let Fetch {
            key,
            at,
            revision,
            target,
        } = fetch;
        let entry = read.ok_or_else(|| format!("`{key}` is missing at revision {at}"))?;
        if entry.mod_revision != revision {
            return Err(format!(
                "`{key}` read at revision {at} was written at {}, not {revision}",
                entry.mod_revision
            ));
        }
        let instance = self
            .converter
            .convert(&key, &entry.value)
            .map_err(|why| format!("`{key}` read again does not convert: {why}"))?;
        if !target.is(&instance) {
            return Err(format!("`{key}` read again yields another instance"));
        }
        // Still shared (it won a tie): keep its instance from now on.
        if let Some(shared) = self.shared.get_mut(&target) {
            if shared.first.take().is_some() {
                shared.members.push(Member {
                    key: key.into_boxed_str(),
                    revision,
                    instance: instance.clone(),
                });
            }
        }
        Ok(Update::Upsert(vec![instance]))
    }

    pub(crate) fn len(&self) -> usize {
        self.single.len() + self.shared.len()
    }

    /// The instance's identity, its service shared with the instances kept.
    fn ident(&mut self, instance: &Instance) -> Ident {
        let service = match self.services.get(&instance.service) {
            Some(service) => Arc::clone(service),
            None => {
                let service = Arc::new(instance.service.clone());
                self.services.insert(Arc::clone(&service));
                service
            }
        };
        Ident {
            service,
            id: Arc::from(instance.id.as_str()),
        }
    }

    /// Forgets the service of a dropped instance when no instance kept has it.
    fn release(&mut self, ident: Ident) {
        // Only `services` and `ident` hold it.
        if Arc::strong_count(&ident.service) == 2 {
            self.services.remove(&*ident.service);
        }
    }

    /// `key` now holds `target`. Shares `target`'s id with the maps when it is kept.
    fn add_holder(&mut self, key: String, target: Ident, revision: i64, instance: &Instance) {
        let member = |key: &str| Member {
            key: key.into(),
            revision,
            instance: instance.clone(),
        };
        let ident = if let Some((kept, first)) = self.single.remove_entry(&target) {
            let shared = Shared {
                first: Some(first),
                members: vec![member(&key)],
            };
            self.shared.insert(kept.clone(), shared);
            kept
        } else if let Some((kept, mut shared)) = self.shared.remove_entry(&target) {
            shared.members.push(member(&key));
            self.shared.insert(kept.clone(), shared);
            kept
        } else {
            self.single.insert(target.clone(), revision);
            target
        };
        self.by_key.insert(key.into_boxed_str(), ident);
    }

    /// Drops a key; returns the instance it held. An instance it shared keeps its record,
    /// with one holder fewer, until `after_loss` or `add_holder`.
    fn remove_holder(&mut self, key: &str) -> Option<Ident> {
        let ident = self.by_key.remove(key)?;
        if self.single.remove(&ident).is_none() {
            if let Some(shared) = self.shared.get_mut(&ident) {
                match shared.members.iter().position(|m| &*m.key == key) {
                    Some(at) => drop(shared.members.swap_remove(at)),
                    None => shared.first = None,
                }
            }
        }
        Some(ident)
    }

    /// After a key of `target` went away (at revision `at`): the instance is gone, or
    /// another key still holds it and its value is reported again.
    fn after_loss(&mut self, target: &Ident, at: i64) -> Step {
        let Some((kept, mut shared)) = self.shared.remove_entry(target) else {
            return Step::Send(Update::Remove(vec![target.key()]));
        };
        let newest = shared.newest().map(|i| &shared.members[i]);
        // The first holder was written before the members, or in one transaction with
        // some: it wins when it is the last holder or wins a tie (the greater key).
        let mut first = None;
        if let Some(revision) = shared.first {
            if newest.is_none_or(|m| m.revision <= revision) {
                match self.first_key(&kept, &shared) {
                    Some(key) if newest.is_none_or(|m| m.revision < revision || *m.key < *key) => {
                        first = Some((key, revision));
                    }
                    Some(_) => {}
                    // Cannot happen: every holder is in `by_key`.
                    None => shared.first = None,
                }
            }
        }
        let step = match (first, shared.newest()) {
            (Some((key, revision)), _) => Step::Fetch(Fetch {
                key,
                at: revision.max(at - 1),
                revision,
                target: kept.clone(),
            }),
            (None, Some(i)) => Step::Send(Update::Upsert(vec![shared.members[i].instance.clone()])),
            (None, None) => Step::Send(Update::Remove(vec![kept.key()])),
        };
        if shared.holders() >= 2 {
            self.shared.insert(kept, shared);
        } else if let Some(revision) = shared.first {
            self.single.insert(kept, revision);
        } else if let Some(member) = shared.members.pop() {
            // Holds it alone again: its instance is no longer kept.
            self.single.insert(kept, member.revision);
        }
        step
    }

    /// The key of a shared instance's first holder: the one key holding it that is not a
    /// member. Looks at every key, but only when that holder wins the fallback, which then
    /// reads etcd anyway.
    fn first_key(&self, target: &Ident, shared: &Shared) -> Option<String> {
        self.by_key
            .iter()
            .find(|&(key, ident)| ident == target && shared.members.iter().all(|m| m.key != *key))
            .map(|(key, _)| String::from(&**key))
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
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::etcd::EtcdConfig;
    use crate::SourceCommon;

    fn converter() -> Converter {
        let common = SourceCommon {
            id: "t".into(),
            priority: 0,
            namespace: None,
            group: None,
            max_stale: None,
            empty_confirm: std::time::Duration::from_secs(1),
            ..SourceCommon::new("t")
        };
        let config = EtcdConfig::new(["http://127.0.0.1:2379"]);
        Converter::new(&common, &config).unwrap()
    }

    fn tracker() -> Tracker {
        Tracker::new(converter())
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

    /// The updates of steps that read nothing again.
    fn sent(steps: Vec<Step>) -> Vec<Update> {
        steps
            .into_iter()
            .map(|step| match step {
                Step::Send(update) => update,
                Step::Fetch(fetch) => panic!("unexpected read of {fetch:?}"),
            })
            .collect()
    }

    /// Value `x` at `address`: every key holding it yields the same instance.
    fn same(address: &str) -> String {
        format!(r#"{{"id":"x","address":"{address}"}}"#)
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
        let up = sent(t.put(entry("/services/a/1", "10.0.0.1:80", 2)));
        assert_eq!(addresses(&up[0]), ["10.0.0.1:80"]);
        assert_eq!(
            sent(t.delete("/services/a/1", 3)),
            [Update::Remove(vec![ikey("a", "1")])]
        );
        assert!(
            t.delete("/services/a/1", 4).is_empty(),
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
        let updates = sent(t.put(entry(
            "/services/a/k",
            r#"{"id":"new","address":"10.0.0.1:80"}"#,
            3,
        )));
        assert_eq!(updates[0], Update::Remove(vec![ikey("a", "old")]));
        assert!(matches!(&updates[1], Update::Upsert(list) if list[0].id == "new"));
        assert_eq!(
            sent(t.delete("/services/a/k", 4)),
            [Update::Remove(vec![ikey("a", "new")])]
        );
    }

    #[test]
    fn a_value_turning_bad_removes_the_instance_and_reports_it() {
        let mut t = tracker();
        t.reset(vec![entry("/services/a/1", "10.0.0.1:80", 2)]);
        let updates = sent(t.put(entry("/services/a/1", "nonsense", 3)));
        assert_eq!(updates[0], Update::Remove(vec![ikey("a", "1")]));
        assert!(
            matches!(&updates[1], Update::Skipped { key, reason } if key == "/services/a/1" && reason.contains("host:port"))
        );
        assert!(t.delete("/services/a/1", 4).is_empty());
    }

    #[test]
    fn two_keys_for_one_instance_fall_back_on_delete() {
        let mut t = tracker();
        let reset = t.reset(vec![
            entry("/services/a/k1", &same("10.0.0.1:80"), 5),
            entry("/services/a/k2", &same("10.0.0.2:80"), 3),
        ]);
        assert_eq!(addresses(&reset[0]), ["10.0.0.1:80"], "newest write wins");
        let fallback = sent(t.delete("/services/a/k1", 6));
        assert_eq!(addresses(&fallback[0]), ["10.0.0.2:80"]);
        assert_eq!(
            sent(t.delete("/services/a/k2", 7)),
            [Update::Remove(vec![ikey("a", "x")])]
        );
    }

    #[test]
    fn a_key_written_after_falls_back_to_its_kept_instance() {
        // An instance registering again under a new key, the old key expiring later.
        let mut t = tracker();
        t.reset(vec![entry("/services/a/old", &same("10.0.0.1:80"), 2)]);
        let up = sent(t.put(entry("/services/a/new", &same("10.0.0.2:80"), 3)));
        assert_eq!(addresses(&up[0]), ["10.0.0.2:80"]);
        assert_eq!((t.len(), t.shared.len()), (1, 1));
        let fallback = sent(t.delete("/services/a/old", 4));
        assert_eq!(addresses(&fallback[0]), ["10.0.0.2:80"]);
        assert!(t.shared.is_empty(), "one key again: no instance kept");
        assert_eq!(
            sent(t.delete("/services/a/new", 5)),
            [Update::Remove(vec![ikey("a", "x")])]
        );
    }

    #[test]
    fn falling_back_to_the_first_key_reads_it_again() {
        let mut t = tracker();
        t.reset(vec![]);
        sent(t.put(entry("/services/a/k1", &same("10.0.0.1:80"), 2)));
        sent(t.put(entry("/services/a/k2", &same("10.0.0.2:80"), 3)));
        let mut steps = t.delete("/services/a/k2", 4);
        let Some(Step::Fetch(fetch)) = steps.pop() else {
            panic!("expected a read of k1: {steps:?}");
        };
        assert!(steps.is_empty());
        assert_eq!((fetch.key.as_str(), fetch.at), ("/services/a/k1", 3));
        let read = entry("/services/a/k1", &same("10.0.0.1:80"), 2);
        let fallback = t.fetched(fetch, Some(read)).unwrap();
        assert_eq!(addresses(&fallback), ["10.0.0.1:80"]);
        assert!(t.shared.is_empty());
        assert_eq!(
            sent(t.delete("/services/a/k1", 5)),
            [Update::Remove(vec![ikey("a", "x")])]
        );
    }

    #[test]
    fn a_read_that_does_not_match_is_an_error() {
        let fetching = || {
            let mut t = tracker();
            t.reset(vec![]);
            sent(t.put(entry("/services/a/k1", &same("10.0.0.1:80"), 2)));
            sent(t.put(entry("/services/a/k2", &same("10.0.0.2:80"), 3)));
            match t.delete("/services/a/k2", 4).remove(0) {
                Step::Fetch(fetch) => (t, fetch),
                other => panic!("expected a read: {other:?}"),
            }
        };
        let (mut t, fetch) = fetching();
        assert!(t.fetched(fetch, None).unwrap_err().contains("missing"));
        let (mut t, fetch) = fetching();
        let rewritten = entry("/services/a/k1", &same("10.0.0.1:80"), 3);
        assert!(t.fetched(fetch, Some(rewritten)).is_err());
        let (mut t, fetch) = fetching();
        let other = entry("/services/a/k1", "10.0.0.1:80", 2);
        let err = t.fetched(fetch, Some(other)).unwrap_err();
        assert!(err.contains("another instance"), "{err}");
    }

    #[test]
    fn the_first_key_wins_a_tie_by_its_greater_key() {
        let mut t = tracker();
        t.reset(vec![]);
        // One transaction writes k2 then k1 for the same instance, then k3 comes.
        sent(t.put(entry("/services/a/k2", &same("10.0.0.2:80"), 5)));
        sent(t.put(entry("/services/a/k1", &same("10.0.0.1:80"), 5)));
        sent(t.put(entry("/services/a/k3", &same("10.0.0.3:80"), 6)));
        let Step::Fetch(fetch) = t.delete("/services/a/k3", 7).remove(0) else {
            panic!("k2 wins the tie with k1 and was not kept");
        };
        assert_eq!((fetch.key.as_str(), fetch.at), ("/services/a/k2", 6));
        let read = entry("/services/a/k2", &same("10.0.0.2:80"), 5);
        assert_eq!(
            addresses(&t.fetched(fetch, Some(read)).unwrap()),
            ["10.0.0.2:80"]
        );
        // k2's instance is kept now: its delete falls back to k1 without a read.
        let fallback = sent(t.delete("/services/a/k2", 8));
        assert_eq!(addresses(&fallback[0]), ["10.0.0.1:80"]);
        assert!(t.shared.is_empty());
    }

    #[test]
    fn keys_of_distinct_instances_keep_no_instance_and_share_services() {
        let mut t = tracker();
        t.reset(vec![entry("/services/a/0", "10.0.0.1:80", 1)]);
        for i in 1..50 {
            sent(t.put(entry(&format!("/services/a/{i}"), "10.0.0.1:80", i + 1)));
            sent(t.put(entry(&format!("/services/b/{i}"), "10.0.0.1:80", i + 1)));
        }
        sent(t.put(entry("/services/a/7", "10.0.0.9:80", 60)));
        assert_eq!((t.len(), t.shared.len(), t.services.len()), (99, 0, 2));
        let a = t.single.keys().find(|i| i.service.name == "a").unwrap();
        assert_eq!(Arc::strong_count(&a.service), 1 + 2 * 50);
        for i in 1..50 {
            sent(t.delete(&format!("/services/b/{i}"), 100 + i));
        }
        assert_eq!(t.services.len(), 1, "b is forgotten with its last instance");
        let (key, ident) = t.by_key.iter().next().unwrap();
        let (kept, _) = t.single.get_key_value(ident).unwrap();
        assert!(
            Arc::ptr_eq(&ident.id, &kept.id),
            "{key}: one id for both maps"
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

    /// The tracker as it was when it kept every instance, to compare against.
    struct Reference {
        converter: Converter,
        by_key: HashMap<String, (Instance, i64)>,
        owners: HashMap<InstanceKey, BTreeSet<String>>,
    }

    impl Reference {
        fn reset(&mut self, entries: Vec<Entry>) -> Vec<Update> {
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

        fn put(&mut self, entry: Entry) -> Vec<Update> {
            let mut updates = Vec::new();
            let converted = self.converter.convert(&entry.key, &entry.value);
            let moved_from = self.forget(&entry.key);
            match converted {
                Ok(instance) => {
                    let target = instance.key();
                    if let Some(old) = moved_from.filter(|old| *old != target) {
                        updates.push(self.after_loss(old));
                    }
                    self.insert(entry.key, instance.clone(), entry.mod_revision);
                    updates.push(Update::Upsert(vec![instance]));
                }
                Err(reason) => {
                    if let Some(old) = moved_from {
                        updates.push(self.after_loss(old));
                    }
                    updates.push(Update::Skipped {
                        key: entry.key,
                        reason,
                    });
                }
            }
            updates
        }

        fn delete(&mut self, key: &str) -> Vec<Update> {
            self.forget(key)
                .map(|old| self.after_loss(old))
                .into_iter()
                .collect()
        }

        fn insert(&mut self, key: String, instance: Instance, revision: i64) {
            self.owners
                .entry(instance.key())
                .or_default()
                .insert(key.clone());
            self.by_key.insert(key, (instance, revision));
        }

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

        fn after_loss(&self, target: InstanceKey) -> Update {
            match self.winner(&target) {
                Some(instance) => Update::Upsert(vec![instance.clone()]),
                None => Update::Remove(vec![target]),
            }
        }

        fn winner(&self, target: &InstanceKey) -> Option<&Instance> {
            self.owners
                .get(target)?
                .iter()
                .filter_map(|key| self.by_key.get(key))
                .max_by_key(|(_, revision)| *revision)
                .map(|(instance, _)| instance)
        }
    }

    /// etcd's key space with its history, to read a key at a revision.
    #[derive(Default)]
    struct Store {
        history: Vec<(i64, String, Option<String>)>,
    }

    impl Store {
        fn read(&self, key: &str, at: i64) -> Option<Entry> {
            let (revision, _, value) = self
                .history
                .iter()
                .rev()
                .find(|(revision, k, _)| *revision <= at && k == key)?;
            value.as_ref().map(|value| entry(key, value, *revision))
        }

        fn listing(&self) -> Vec<Entry> {
            let mut latest = BTreeMap::new();
            for (revision, key, value) in &self.history {
                latest.insert(key, value.as_ref().map(|value| (value, *revision)));
            }
            latest
                .into_iter()
                .filter_map(|(key, now)| now.map(|(value, revision)| entry(key, value, revision)))
                .collect()
        }
    }

    /// Sends or reads, as the watch does.
    fn resolve(t: &mut Tracker, store: &Store, steps: Vec<Step>) -> Vec<Update> {
        steps
            .into_iter()
            .map(|step| match step {
                Step::Send(update) => update,
                Step::Fetch(fetch) => {
                    let read = store.read(&fetch.key, fetch.at);
                    t.fetched(fetch, read).unwrap()
                }
            })
            .collect()
    }

    #[test]
    fn behaves_as_when_it_kept_every_instance() {
        // xorshift: the same pseudo-random histories on every run.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut random = move |below: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % below as u64) as usize
        };
        let keys = [
            "/services/a/k1",
            "/services/a/k2",
            "/services/a/k3",
            "/services/a/k4",
            "/services/b/k1",
            "/services/b/k2",
            "/services/loose1",
            "/services/loose2",
        ];
        let mut fetches = 0;
        for _ in 0..300 {
            let mut t = tracker();
            let mut reference = Reference {
                converter: converter(),
                by_key: HashMap::new(),
                owners: HashMap::new(),
            };
            let mut store = Store::default();
            let mut revision = 1;
            assert_eq!(t.reset(vec![]), reference.reset(vec![]));
            for _ in 0..60 {
                if random(15) == 0 {
                    let listing = store.listing();
                    assert_eq!(t.reset(listing.clone()), reference.reset(listing));
                    continue;
                }
                // A transaction of one to three writes of distinct keys: etcd has all of
                // them before the watch sees the first.
                revision += 1;
                let mut writes: Vec<(&str, Option<String>)> = Vec::new();
                for _ in 0..1 + random(3) {
                    let key = keys[random(keys.len())];
                    if writes.iter().any(|(k, _)| *k == key) {
                        continue;
                    }
                    let address = format!("10.0.0.{}:80", random(4));
                    let id = ["x", "y"][random(2)];
                    let name = ["a", "b"][random(2)];
                    let value = match random(8) {
                        0 | 1 => None,
                        2 => Some("garbage".to_owned()),
                        3 => Some(address),
                        _ => Some(format!(
                            r#"{{"id":"{id}","name":"{name}","address":"{address}"}}"#
                        )),
                    };
                    store
                        .history
                        .push((revision, key.to_owned(), value.clone()));
                    writes.push((key, value));
                }
                for (key, value) in writes {
                    let (expected, steps) = match value {
                        None => (reference.delete(key), t.delete(key, revision)),
                        Some(value) => {
                            let put = entry(key, &value, revision);
                            (reference.put(put.clone()), t.put(put))
                        }
                    };
                    fetches += steps.iter().filter(|s| matches!(s, Step::Fetch(_))).count();
                    assert_eq!(resolve(&mut t, &store, steps), expected);
                    assert_eq!(t.len(), reference.owners.len());
                }
            }
            // Nothing is kept for an instance only one key holds.
            for (ident, shared) in &t.shared {
                assert!(shared.holders() >= 2, "{ident:?}: {shared:?}");
            }
            assert_eq!(t.by_key.len(), reference.by_key.len());
        }
        assert!(
            fetches > 10,
            "the histories read keys again {fetches} times"
        );
    }
}
