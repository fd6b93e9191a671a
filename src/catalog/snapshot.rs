//! Immutable, published views of the catalog. Readers hold an `Arc<Snapshot>`; nothing in
//! here is ever mutated after publication, so no read takes a lock.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde::Serialize;
use switchboard_connectors::ServiceKey;
use utoipa::ToSchema;

pub use super::view::InstanceView;

/// One service in a snapshot, with its response body encoded once at publication.
#[derive(Debug)]
pub struct ServiceView {
    pub key: ServiceKey,
    /// Catalog index of the service's last change.
    pub index: u64,
    pub instances: Vec<InstanceView>,
    /// `instances` as the JSON array `GET .../instances` returns unfiltered.
    pub encoded: Bytes,
    pub healthy_count: usize,
    /// Sources contributing at least one instance.
    pub sources: Vec<String>,
}

impl ServiceView {
    pub fn new(key: ServiceKey, index: u64, instances: Vec<InstanceView>) -> ServiceView {
        let mut json = serde_json::to_vec(&instances).expect("instances serialize");
        // Kept for the service's lifetime: give back the growth slack.
        json.shrink_to_fit();
        let encoded = Bytes::from(json);
        let healthy_count = instances.iter().filter(|i| i.healthy).count();
        let mut sources: Vec<String> = instances
            .iter()
            .flat_map(|i| i.sources.iter().map(|s| s.to_string()))
            .collect();
        sources.sort();
        sources.dedup();
        ServiceView {
            key,
            index,
            instances,
            encoded,
            healthy_count,
            sources,
        }
    }

    /// A removed service keeps an empty view so blocking queries see its index move on.
    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
    }
}

/// A service in the `GET /api/v1/services` listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceSummary {
    pub name: String,
    pub namespace: String,
    pub group: String,
    pub instance_count: usize,
    pub healthy_count: usize,
    /// Sources contributing at least one instance.
    pub sources: Vec<String>,
    /// Index of the service's last change.
    pub index: u64,
}

/// What one source contributes, as of a snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceCounts {
    pub instances: usize,
    pub services: usize,
    /// Emptyings the wipe-out guard has held so far.
    pub guard_holds: u64,
}

/// Every service sharing one name (different namespaces or groups).
pub type ViewsOfName = Arc<[Arc<ServiceView>]>;

/// The whole catalog at one moment.
#[derive(Debug)]
pub struct Snapshot {
    /// Highest index of any change so far.
    pub index: u64,
    /// Services by name; a name usually has one entry (one namespace and group). Shared
    /// pointers throughout, so publishing a snapshot copies no service data.
    by_name: HashMap<Arc<str>, ViewsOfName>,
    /// The unfiltered service listing, encoded on first use.
    listing: OnceLock<Bytes>,
    /// Per-source counts, by source id.
    sources: HashMap<String, SourceCounts>,
}

impl Snapshot {
    pub fn empty() -> Snapshot {
        Snapshot::empty_at(0)
    }

    /// An empty catalog whose index is `index`.
    pub fn empty_at(index: u64) -> Snapshot {
        Snapshot::new(index, HashMap::new(), HashMap::new())
    }

    pub(crate) fn new(
        index: u64,
        by_name: HashMap<Arc<str>, ViewsOfName>,
        sources: HashMap<String, SourceCounts>,
    ) -> Snapshot {
        Snapshot {
            index,
            by_name,
            listing: OnceLock::new(),
            sources,
        }
    }

    /// What each source contributes.
    pub fn sources(&self) -> &HashMap<String, SourceCounts> {
        &self.sources
    }

    /// One service, including a removed one's empty view.
    pub fn service(&self, namespace: &str, group: &str, name: &str) -> Option<&Arc<ServiceView>> {
        self.by_name
            .get(name)?
            .iter()
            .find(|view| view.key.namespace == namespace && view.key.group == group)
    }

    /// Every service with at least one instance, sorted by (namespace, group, name).
    pub fn services(&self) -> Vec<&Arc<ServiceView>> {
        let mut all: Vec<_> = self
            .by_name
            .values()
            .flat_map(|views| views.iter())
            .filter(|view| !view.is_empty())
            .collect();
        all.sort_by(|a, b| a.key.cmp(&b.key));
        all
    }

    /// The `GET /api/v1/services` body for the given filters; unfiltered it is cached.
    pub fn listing(&self, namespace: Option<&str>, group: Option<&str>) -> Bytes {
        let encode = || {
            let summaries: Vec<ServiceSummary> = self
                .services()
                .into_iter()
                .filter(|view| namespace.is_none_or(|ns| view.key.namespace == ns))
                .filter(|view| group.is_none_or(|g| view.key.group == g))
                .map(|view| ServiceSummary {
                    name: view.key.name.clone(),
                    namespace: view.key.namespace.clone(),
                    group: view.key.group.clone(),
                    instance_count: view.instances.len(),
                    healthy_count: view.healthy_count,
                    sources: view.sources.clone(),
                    index: view.index,
                })
                .collect();
            Bytes::from(serde_json::to_vec(&summaries).expect("summaries serialize"))
        };
        if namespace.is_none() && group.is_none() {
            self.listing.get_or_init(encode).clone()
        } else {
            encode()
        }
    }
}
