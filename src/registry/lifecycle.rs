//! An instance's life after registration: heartbeats (and revival after expiry), status
//! changes, deregistration, and removing a whole service.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use switchboard_connectors::{CheckStatus, InstanceKey, ServiceKey, Status};

use super::change::Done;
use super::record::{is_healthy, set_ttl_checks, Entry, TTL_KIND};
use super::replies::{HeartbeatReply, RemovalReport};
use super::{now, Registry, RegistryError};
use crate::catalog::InstanceView;

impl Registry {
    /// Renews an instance's TTL. An instance that expired comes back to the status it had.
    ///
    /// A heartbeat is a TTL pass: TTL checks that are not passing (new ones start
    /// critical) turn passing, through a decided change. A door that reports another
    /// status for a TTL check (Consul's `warn`, `fail`) uses
    /// [`Registry::update_ttl_check`] instead.
    pub async fn heartbeat(&self, id: &str) -> Result<HeartbeatReply, RegistryError> {
        let entry = self.entry(id)?;
        let (time, revived) = self.renew(id, &entry).await?;
        let ttl_failing = (entry.lock().instance.checks.iter())
            .any(|check| check.kind == TTL_KIND && check.status != CheckStatus::Passing);
        if ttl_failing {
            let done = self.decide_check(id, &entry, |instance| {
                set_ttl_checks(instance, CheckStatus::Passing, |_| String::new());
            });
            if let Some(done) = done {
                Self::finish(done).await?;
            }
        }
        let status = entry.lock().instance.status;
        Ok(HeartbeatReply {
            id: id.to_owned(),
            status,
            last_heartbeat: time,
            revived,
        })
    }

    /// A TTL check's update (Consul's `pass`, `warn`, `fail`): renews the instance's TTL
    /// as a heartbeat does, and gives that one check `status` and `output` in the same
    /// step, so a `fail` never shows as a pass first.
    pub async fn update_ttl_check(
        &self,
        id: &str,
        check_id: &str,
        status: CheckStatus,
        output: &str,
    ) -> Result<(), RegistryError> {
        let entry = self.entry(id)?;
        self.touch(&entry);
        if entry.expired.load(Ordering::SeqCst) {
            // Revived with this check's own result in the same change: a `fail` that
            // revives an expired instance never shows a pass first.
            let revival = self.decide_revival(id, &entry, |instance| {
                if let Some(check) = instance.checks.iter_mut().find(|c| c.id == check_id) {
                    check.status = status;
                    check.output = output.to_owned();
                }
            });
            if let Some(done) = revival {
                Self::finish(done).await?;
                return Ok(());
            }
        }
        self.record_check(id, check_id, status, output).await?;
        Ok(())
    }

    /// Records a heartbeat's time (in memory; flushed in batches).
    fn touch(&self, entry: &Entry) -> chrono::DateTime<chrono::Utc> {
        let time = now();
        entry
            .last_heartbeat_ms
            .fetch_max(time.timestamp_millis(), Ordering::SeqCst);
        self.metrics.heartbeats.inc();
        time
    }

    /// Renews the TTL, reviving an expired instance; the time, and whether it revived.
    async fn renew(
        &self,
        id: &str,
        entry: &Arc<Entry>,
    ) -> Result<(chrono::DateTime<chrono::Utc>, bool), RegistryError> {
        let time = self.touch(entry);
        let revived = entry.expired.load(Ordering::SeqCst) && self.revive(id, entry).await?;
        Ok((time, revived))
    }

    /// Brings an expired instance back; false if someone else already did or it is gone.
    pub(super) async fn revive(&self, id: &str, entry: &Arc<Entry>) -> Result<bool, RegistryError> {
        // A heartbeat is a TTL pass.
        let passed = |instance: &mut switchboard_connectors::Instance| {
            set_ttl_checks(instance, CheckStatus::Passing, |_| String::new());
        };
        let Some(done) = self.decide_revival(id, entry, passed) else {
            return Ok(false);
        };
        Self::finish(done).await?;
        tracing::info!(instance.id = id, "Expired instance revived by heartbeat");
        Ok(true)
    }

    /// Decides a revival; `checks` sets the TTL checks' results it brings.
    pub(super) fn decide_revival(
        &self,
        id: &str,
        entry: &Arc<Entry>,
        checks: impl FnOnce(&mut switchboard_connectors::Instance),
    ) -> Option<Done> {
        let mut change = self.table.decide();
        if !change.is_current(id, entry) || !entry.expired.load(Ordering::SeqCst) {
            return None;
        }
        let mut record = entry.snapshot();
        let status = record.expired_from.take()?;
        record.instance.status = status;
        checks(&mut record.instance);
        record.instance.healthy = is_healthy(&record.instance);
        record.instance.offline_time = None;
        change.upsert(record.instance.clone());
        change.set_record(entry, record);
        change.counts.revivals += 1;
        Some(change.submit())
    }

    /// Sets an instance's status (an operator's decision: it ends any expiry hold).
    pub async fn set_status(
        &self,
        id: &str,
        status: Status,
    ) -> Result<InstanceView, RegistryError> {
        let (done, view) = self.decide_status(id, status)?;
        Self::finish(done).await?;
        Ok(view)
    }

    pub(super) fn decide_status(
        &self,
        id: &str,
        status: Status,
    ) -> Result<(Done, InstanceView), RegistryError> {
        let mut change = self.table.decide();
        let entry = self.entry(id)?;
        let mut record = entry.snapshot();
        if record.instance.status != status || record.expired_from.is_some() {
            record.instance.offline_time = (status == Status::Offline).then(now);
        }
        record.instance.status = status;
        record.instance.healthy = is_healthy(&record.instance);
        record.expired_from = None;
        let view = self.view(&record);
        change.upsert(record.instance.clone());
        change.set_record(&entry, record);
        Ok((change.submit(), view))
    }

    /// Deletes an instance for good.
    pub async fn deregister(&self, id: &str) -> Result<InstanceView, RegistryError> {
        let (done, view) = self.decide_deregistration(id)?;
        Self::finish(done).await?;
        Ok(view)
    }

    pub(super) fn decide_deregistration(
        &self,
        id: &str,
    ) -> Result<(Done, InstanceView), RegistryError> {
        let mut change = self.table.decide();
        let entry = self.entry(id)?;
        let record = entry.snapshot();
        change.set_entry(id, None);
        change.remove(record.instance.key());
        change.counts.deregistrations += 1;
        Ok((change.submit(), self.view(&record)))
    }

    /// Deletes every native instance of a service, in one transaction: all of them or,
    /// when the store fails, none (an error, not a partial report).
    pub async fn remove_service(
        &self,
        service: &ServiceKey,
    ) -> Result<RemovalReport, RegistryError> {
        let (done, removed) = self.decide_removal(service)?;
        Self::finish(done).await?;
        Ok(RemovalReport {
            service_name: service.name.clone(),
            namespace: service.namespace.clone(),
            group: service.group.clone(),
            total_instances: removed,
            removed_count: removed,
            errors: Vec::new(),
        })
    }

    /// Decides the removal of every native instance of `service`; returns how many.
    pub(super) fn decide_removal(
        &self,
        service: &ServiceKey,
    ) -> Result<(Done, usize), RegistryError> {
        let mut change = self.table.decide();
        let ids: Vec<String> = (self.table.entries.iter())
            .filter(|entry| entry.lock().instance.service == *service)
            .map(|entry| entry.key().clone())
            .collect();
        if ids.is_empty() {
            return Err(RegistryError::ServiceNotFound(service.name.clone()));
        }
        for id in &ids {
            change.set_entry(id, None);
            change.remove(InstanceKey {
                service: service.clone(),
                id: id.clone(),
            });
        }
        change.counts.deregistrations += ids.len() as u64;
        Ok((change.submit(), ids.len()))
    }
}
