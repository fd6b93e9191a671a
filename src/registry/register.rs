//! Registration semantics: an endpoint (host, port) of a service belongs to its newest
//! registration; ids are the client's or generated (`{service}-{uuid}`).

use std::sync::Arc;

use switchboard_connectors::{Check, Instance, InstanceKey, Status};

use super::change::Done;
use super::checks::{self, CheckDefinition};
use super::record::{is_healthy, Entry};
use super::validate::RegisterRequest;
use super::{now, Registry, RegistryError};
use crate::catalog::InstanceView;
use crate::store::StoredInstance;
use crate::vocab::MAX_NAME_LEN;

/// `{service}-{uuid}`, with the service part shortened so the id stays a valid id
/// (clients send it back on re-registration).
fn generated_id(service: &str) -> String {
    const UUID_PART: usize = 37; // "-" and 36 characters
    let keep = service.len().min(MAX_NAME_LEN - UUID_PART);
    // Service names are ASCII, so any byte offset is a character boundary.
    format!("{}-{}", &service[..keep], uuid::Uuid::now_v7())
}

impl Registry {
    /// Registers (or replaces) an instance. Returns its view and whether it is new.
    ///
    /// An endpoint (host, port) of a service belongs to its newest registration, as in
    /// Nacos: without an `id`, the instance already there is replaced in place (a client
    /// that restarts does not leave a twin); with a new `id`, the old registration is
    /// deleted (a pod that inherits a dead pod's IP takes over at once).
    pub async fn register(
        &self,
        request: RegisterRequest,
    ) -> Result<(InstanceView, bool), RegistryError> {
        self.register_with(request, false, &|_| true).await
    }

    /// [`Registry::register`] for a caller that reaches only the namespaces `reaches`
    /// admits: an id registered in another namespace is [`RegistryError::OutOfReach`],
    /// decided under the same lock as the registration, so it cannot slip in between.
    /// [`Registry::register_within`] for an agent-style registration (Consul's): an
    /// instance without a TTL check is never expired by TTL, as a Consul agent keeps its
    /// services until they are deregistered.
    pub async fn register_agent(
        &self,
        request: RegisterRequest,
        reaches: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<(InstanceView, bool), RegistryError> {
        let has_ttl = (request.checks.iter().flatten()).any(|check| check.ttl.is_some());
        self.register_with(request, !has_ttl, reaches).await
    }

    pub async fn register_within(
        &self,
        request: RegisterRequest,
        reaches: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<(InstanceView, bool), RegistryError> {
        self.register_with(request, false, reaches).await
    }

    pub(super) async fn register_with(
        &self,
        request: RegisterRequest,
        persistent: bool,
        reaches: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<(InstanceView, bool), RegistryError> {
        let (done, registered) = self.decide_registration(request, persistent, reaches)?;
        // Before waiting: the change is decided and will be made whatever the caller
        // does next, and `health` must learn of its checks even if the caller hangs up.
        if !registered.0.checks.is_empty() {
            self.checks_version.send_modify(|version| *version += 1);
        }
        Self::finish(done).await?;
        Ok(registered)
    }

    /// Decides a registration (see [`Registry::register`]) and queues it.
    pub(super) fn decide_registration(
        &self,
        request: RegisterRequest,
        persistent: bool,
        reaches: &dyn Fn(&str) -> bool,
    ) -> Result<(Done, (InstanceView, bool)), RegistryError> {
        let valid = request.validate()?;
        let time = now();
        let mut change = self.table.decide();
        let holders = change.ids_at_endpoint(&valid.service, &valid.host, valid.port);
        let id = match &valid.id {
            Some(id) => id.clone(),
            None => holders
                .first()
                .cloned()
                .unwrap_or_else(|| generated_id(&valid.service.name)),
        };
        let previous = change
            .entry(&id)
            .map(|entry| entry.lock().instance.service.clone());
        if previous
            .as_ref()
            .is_some_and(|old| !reaches(&old.namespace))
        {
            return Err(RegistryError::OutOfReach(id));
        }
        let mut instance = Instance::new(id.clone(), valid.service, valid.host, valid.port);
        instance.protocol = valid.protocol;
        instance.version = valid.version;
        instance.weight = valid.weight;
        instance.status = valid.status;
        instance.metadata = valid.metadata;
        instance.tags = valid.tags;
        instance.register_time = Some(time);
        instance.start_time = Some(valid.start_time.unwrap_or(time));
        instance.last_heartbeat = Some(time);
        instance.offline_time = (valid.status == Status::Offline).then_some(time);
        let checks = checks::validate_all(valid.checks, &id, &instance.service.name)?;
        if let Some((check, owner)) = change.check_held_elsewhere(&id, &holders, &checks) {
            return Err(RegistryError::Invalid(crate::vocab::invalid(
                "invalid_check",
                "checks",
                format!("check id `{check}` is already used by instance `{owner}`: check ids are updated by id alone, so they must be unique"),
            )));
        }
        let earlier: Vec<Check> = (change.entry(&id))
            .map(|entry| entry.lock().instance.checks.clone())
            .unwrap_or_default();
        // A check registered again keeps its last result, as in Consul.
        instance.checks = (checks.iter())
            .map(|(check, status)| {
                (earlier
                    .iter()
                    .find(|old| old.id == check.id && old.kind == check.probe.kind()))
                .map_or_else(
                    || check.initial(*status),
                    |old| Check {
                        name: check.name.clone(),
                        notes: check.notes.clone(),
                        ..old.clone()
                    },
                )
            })
            .collect();
        instance.healthy = is_healthy(&instance);
        let checks: Vec<CheckDefinition> = checks.into_iter().map(|(check, _)| check).collect();
        let seconds = |duration: std::time::Duration| duration.as_secs_f64().ceil() as u64;
        let check_ttl = CheckDefinition::ttl_of(&checks).map(seconds);
        // A TTL check turns critical when its instance expires, so its
        // `deregister_critical_after` is the registry's deregistration of instances
        // offline by expiry; `[health] deregister_min` does not apply to it.
        let ttl_deregister = CheckDefinition::ttl_deregister_after(&checks).map(seconds);
        // Checks other than a TTL tell an instance's health: no heartbeats are expected.
        let persistent = persistent || (!checks.is_empty() && check_ttl.is_none());
        let record = StoredInstance {
            instance,
            ttl_seconds: check_ttl.or(valid.ttl_seconds),
            deregister_after_seconds: valid.deregister_after_seconds.or(ttl_deregister),
            expired_from: None,
            persistent,
            checks,
        };
        let view = self.view(&record);
        let key = record.instance.key();
        // Upsert before removing what it replaces, so the endpoint never blinks out.
        change.upsert(record.instance.clone());
        change.set_entry(&id, Some(Arc::new(Entry::new(record, 0))));
        for other in holders.into_iter().filter(|other| *other != id) {
            tracing::info!(instance.id = %other, by = %id, "Registration replaced by a newer one at the same endpoint");
            change.set_entry(&other, None);
            change.remove(InstanceKey {
                service: key.service.clone(),
                id: other,
            });
        }
        if let Some(old_service) = previous.as_ref().filter(|old| **old != key.service) {
            change.remove(InstanceKey {
                service: old_service.clone(),
                id,
            });
        }
        change.counts.registrations += 1;
        Ok((change.submit(), (view, previous.is_none())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_valid_ids_even_for_the_longest_names() {
        let long = "a".repeat(MAX_NAME_LEN);
        let id = generated_id(&long);
        assert_eq!(id.len(), MAX_NAME_LEN);
        let request = RegisterRequest {
            id: Some(id),
            service: Some(long),
            address: Some("10.0.0.1:80".into()),
            ..RegisterRequest::default()
        };
        assert!(request.validate().is_ok());
        assert!(generated_id("orders").starts_with("orders-"));
    }
}
