//! A source's view as saved for a warm restart: its instances under the source's own
//! service names (so the name mapping in force at the next start applies), and since
//! when it was stale, if it was. Saved service by service, so a change rewrites only
//! the services it touched.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchboard_connectors::{Instance, ServiceKey};

/// One source's last view; as the catalog hands it over for saving, only the services
/// changed since the last save (a service with no instances is gone).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SavedView {
    /// Set when the source was already unreachable when this view was saved.
    pub stale_since: Option<DateTime<Utc>>,
    pub services: Vec<SavedService>,
}

/// One of the source's services, under the source's own key.
#[derive(Debug, Serialize, Deserialize)]
pub struct SavedService {
    pub service: ServiceKey,
    pub instances: Vec<Arc<Instance>>,
}

impl SavedView {
    /// The instances as the source reported them, ready for a full-view update.
    pub fn into_instances(self) -> Vec<Instance> {
        self.services
            .into_iter()
            .flat_map(|saved| {
                let service = saved.service;
                saved.instances.into_iter().map(move |instance| {
                    let mut instance = Arc::unwrap_or_clone(instance);
                    instance.service = service.clone();
                    instance
                })
            })
            .collect()
    }
}
