//! The sync-back entry point: copies written into the native registry by a sync job.

use switchboard_connectors::Instance;

use super::validate::RegisterRequest;
use super::{Registry, RegistryError};
use crate::catalog::InstanceView;

impl Registry {
    /// Registers a copy written by a sync-back job: validated like any registration,
    /// stored durably, never expired by TTL.
    pub async fn register_persistent(
        &self,
        instance: &Instance,
    ) -> Result<InstanceView, RegistryError> {
        let request = RegisterRequest {
            id: Some(instance.id.clone()),
            service: Some(instance.service.name.clone()),
            namespace: Some(instance.service.namespace.clone()),
            group: Some(instance.service.group.clone()),
            host: Some(instance.host.clone()),
            port: Some(i64::from(instance.port)),
            protocol: Some(instance.protocol.clone()),
            version: instance.version.clone(),
            weight: Some(i64::from(instance.weight)),
            status: Some(instance.status.as_str().to_owned()),
            metadata: Some(instance.metadata.clone()),
            tags: Some(instance.tags.clone()),
            ..RegisterRequest::default()
        };
        Ok(self.register_with(request, true, &|_| true).await?.0)
    }
}
