//! One service's instances in one partition, found by id (how sources update and remove
//! them) and by endpoint (how the writer re-merges only the endpoints a change touched).

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use switchboard_connectors::Instance;

/// An instance in a partition, found by its own id: keying by the id inside the instance
/// instead of a copy of it saves a string per cached instance.
#[derive(Clone, Debug)]
pub struct ById(pub Arc<Instance>);

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

/// The instances at one endpoint: almost always one, so no allocation for it.
#[derive(Clone, Debug)]
enum AtEndpoint {
    One(Arc<Instance>),
    Many(Vec<Arc<Instance>>),
}

/// A service's instances by id, with an index by endpoint.
#[derive(Clone, Debug, Default)]
pub struct Instances {
    by_id: HashSet<ById>,
    /// By a hash of (host, port); lookups compare the real endpoint.
    by_endpoint: HashMap<u64, AtEndpoint>,
}

/// FNV-1a of an endpoint: cheap, and only spreads endpoints over the index's keys.
fn endpoint_hash(host: &str, port: u16) -> u64 {
    crate::fnv::hash(&[host.as_bytes(), &port.to_le_bytes()])
}

impl Instances {
    pub fn new() -> Instances {
        Instances::default()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub fn contains(&self, id: &str) -> bool {
        self.by_id.contains(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &ById> {
        self.by_id.iter()
    }

    /// The instances at an endpoint.
    pub fn at<'a>(&'a self, host: &'a str, port: u16) -> impl Iterator<Item = &'a Arc<Instance>> {
        let found: &[Arc<Instance>] = match self.by_endpoint.get(&endpoint_hash(host, port)) {
            Some(AtEndpoint::One(one)) => std::slice::from_ref(one),
            Some(AtEndpoint::Many(many)) => many,
            None => &[],
        };
        found
            .iter()
            .filter(move |i| i.port == port && i.host == host)
    }

    /// Adds an instance, or replaces the one with its id; returns the one replaced.
    pub fn replace(&mut self, instance: ById) -> Option<ById> {
        let old = self.by_id.replace(instance.clone());
        if let Some(old) = &old {
            self.unindex(&old.0);
        }
        self.index(instance.0);
        old
    }

    /// Removes the instance with this id and returns it.
    pub fn take(&mut self, id: &str) -> Option<ById> {
        let old = self.by_id.take(id)?;
        self.unindex(&old.0);
        Some(old)
    }

    fn index(&mut self, instance: Arc<Instance>) {
        let hash = endpoint_hash(&instance.host, instance.port);
        match self.by_endpoint.remove(&hash) {
            None => {
                self.by_endpoint.insert(hash, AtEndpoint::One(instance));
            }
            Some(AtEndpoint::One(other)) => {
                self.by_endpoint
                    .insert(hash, AtEndpoint::Many(vec![other, instance]));
            }
            Some(AtEndpoint::Many(mut many)) => {
                many.push(instance);
                self.by_endpoint.insert(hash, AtEndpoint::Many(many));
            }
        }
    }

    fn unindex(&mut self, instance: &Arc<Instance>) {
        let hash = endpoint_hash(&instance.host, instance.port);
        let remaining = match self.by_endpoint.remove(&hash) {
            Some(AtEndpoint::Many(mut many)) => {
                many.retain(|other| !Arc::ptr_eq(other, instance));
                match many.len() {
                    0 => None,
                    1 => many.pop().map(AtEndpoint::One),
                    _ => Some(AtEndpoint::Many(many)),
                }
            }
            Some(AtEndpoint::One(one)) if !Arc::ptr_eq(&one, instance) => {
                Some(AtEndpoint::One(one))
            }
            _ => None,
        };
        if let Some(remaining) = remaining {
            self.by_endpoint.insert(hash, remaining);
        }
    }
}

impl FromIterator<ById> for Instances {
    fn from_iter<I: IntoIterator<Item = ById>>(iter: I) -> Instances {
        let mut instances = Instances::new();
        for instance in iter {
            instances.replace(instance);
        }
        instances
    }
}

impl<const N: usize> From<[ById; N]> for Instances {
    fn from(array: [ById; N]) -> Instances {
        array.into_iter().collect()
    }
}

impl IntoIterator for Instances {
    type Item = ById;
    type IntoIter = std::collections::hash_set::IntoIter<ById>;

    fn into_iter(self) -> Self::IntoIter {
        self.by_id.into_iter()
    }
}

impl<'a> IntoIterator for &'a Instances {
    type Item = &'a ById;
    type IntoIter = std::collections::hash_set::Iter<'a, ById>;

    fn into_iter(self) -> Self::IntoIter {
        self.by_id.iter()
    }
}

#[cfg(test)]
mod tests {
    use switchboard_connectors::ServiceKey;

    use super::*;

    fn at(id: &str, port: u16) -> ById {
        ById(Arc::new(Instance::new(
            id,
            ServiceKey::named("s"),
            "10.0.0.1",
            port,
        )))
    }

    fn ids_at(instances: &Instances, port: u16) -> Vec<String> {
        let mut ids: Vec<String> = instances
            .at("10.0.0.1", port)
            .map(|i| i.id.clone())
            .collect();
        ids.sort();
        ids
    }

    #[test]
    fn the_endpoint_index_follows_replacements_and_removals() {
        let mut instances = Instances::from([at("a", 80), at("b", 80), at("c", 81)]);
        assert_eq!(ids_at(&instances, 80), ["a", "b"]);
        instances.replace(at("a", 82));
        assert_eq!(ids_at(&instances, 80), ["b"]);
        assert_eq!(ids_at(&instances, 82), ["a"]);
        assert!(instances.take("b").is_some());
        assert!(ids_at(&instances, 80).is_empty());
        assert!(instances.take("b").is_none());
        assert_eq!(instances.len(), 2);
    }
}
