//! What a batch of updates touched: which served services, and, when only a few of a
//! service's endpoints changed, which endpoints. The writer re-merges just those.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};

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

    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    #[cfg(test)]
    pub fn contains(&self, key: &ServiceKey) -> bool {
        self.services.contains_key(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&ServiceKey, &Dirty)> {
        self.services.iter()
    }

    pub fn into_keys(self) -> impl Iterator<Item = ServiceKey> {
        self.services.into_keys()
    }
}
