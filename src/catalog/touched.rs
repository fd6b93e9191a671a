//! What a batch of updates touched: which served services, and, when only a few of a
//! service's endpoints changed, which endpoints (the writer re-merges just those); and,
//! per source, which of its own services changed (the change feed carries them, for
//! whoever keeps a copy of a source's view).

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use switchboard_connectors::ServiceKey;

/// Past this many changed endpoints a service is re-merged whole.
const MAX_ENDPOINTS: usize = 4096;

/// What changed in one service.
#[derive(Debug, PartialEq)]
pub enum Dirty {
    /// Anything may have (a source's whole view, its priority or staleness, a rule).
    All,
    /// Only the instances at these endpoints (host, port).
    Endpoints(BTreeSet<(String, u16)>),
}

/// The services a batch touched.
#[derive(Debug, Default)]
pub struct Touched {
    services: HashMap<ServiceKey, Dirty>,
    sources: HashMap<Arc<str>, HashSet<ServiceKey>>,
}

/// What one published batch changed: the change feed's message.
#[derive(Debug, Default)]
pub struct Changes {
    /// Served services some source changed, whether or not what clients see moved (a
    /// lower-priority source's change matters to a job copying that source).
    pub services: Vec<ServiceKey>,
    /// The sources whose own view changed (the native registry, which keeps its own
    /// records, aside), each with its services (under its own keys, before name mapping)
    /// whose instances changed; none when only its staleness did.
    pub sources: HashMap<Arc<str>, HashSet<ServiceKey>>,
}

impl Touched {
    /// Marks the whole service.
    pub fn service(&mut self, key: ServiceKey) {
        self.services.insert(key, Dirty::All);
    }

    /// Marks every service in `keys` whole.
    pub fn services(&mut self, keys: impl IntoIterator<Item = ServiceKey>) {
        for key in keys {
            self.service(key);
        }
    }

    /// Marks one endpoint of a service.
    pub fn endpoint(&mut self, key: ServiceKey, host: &str, port: u16) {
        match self.services.entry(key) {
            Entry::Vacant(vacant) => {
                vacant.insert(Dirty::Endpoints(BTreeSet::from([(host.to_owned(), port)])));
            }
            Entry::Occupied(mut occupied) => {
                if let Dirty::Endpoints(endpoints) = occupied.get_mut() {
                    endpoints.insert((host.to_owned(), port));
                    if endpoints.len() > MAX_ENDPOINTS {
                        occupied.insert(Dirty::All);
                    }
                }
            }
        }
    }

    /// Records that `source`'s own service `raw` changed.
    pub fn raw(&mut self, source: &Arc<str>, raw: &ServiceKey) {
        let services = self.sources.entry(source.clone()).or_default();
        if !services.contains(raw) {
            services.insert(raw.clone());
        }
    }

    /// Records that `source` turned stale or fresh.
    pub fn staleness(&mut self, source: &Arc<str>) {
        self.sources.entry(source.clone()).or_default();
    }

    pub fn is_empty(&self) -> bool {
        self.services.is_empty() && self.sources.is_empty()
    }

    #[cfg(test)]
    pub fn contains(&self, key: &ServiceKey) -> bool {
        self.services.contains_key(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&ServiceKey, &Dirty)> {
        self.services.iter()
    }

    /// The change feed's message for this batch.
    pub fn into_changes(self) -> Changes {
        Changes {
            services: self.services.into_keys().collect(),
            sources: self.sources,
        }
    }
}
