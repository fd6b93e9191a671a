//! Check results and maintenance mode: how health reaches a native instance.
//!
//! A check's status change is an ordinary decided change (durable, then published), so
//! every door and every watcher sees it; an output that changes alone is kept in memory
//! only (it shows in the agent's live view, and is written with the next real change),
//! so a check that runs every second does not write or wake anyone while nothing moves.

use std::sync::Arc;

use switchboard_connectors::{Check, CheckStatus, Instance, Status};

use super::record::{is_healthy, Entry};
use super::{Registry, RegistryError};
use crate::catalog::InstanceView;
use crate::store::{CheckDefinition, StoredInstance};

/// The id of the check maintenance mode adds, as Consul names it.
pub fn maintenance_check_id(instance_id: &str) -> String {
    format!("_service_maintenance:{instance_id}")
}

/// Consul's note for maintenance mode entered without a reason.
pub const DEFAULT_MAINTENANCE_REASON: &str =
    "Maintenance mode is enabled for this service, but no reason was provided. This is a default message.";

/// What [`Registry::record_check`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckRecorded {
    /// The status changed: the instance was republished.
    Changed,
    /// Same status; only the output (if any) was updated.
    Unchanged,
}

/// A native instance with checks for `health` to run.
#[derive(Clone, Debug)]
pub struct CheckedInstance {
    pub id: String,
    pub checks: Vec<CheckDefinition>,
}

impl Registry {
    /// Records a check's result on instance `id`. A new status goes through the normal
    /// write path (the instance turns unhealthy while any check is critical).
    pub async fn record_check(
        &self,
        id: &str,
        check_id: &str,
        status: CheckStatus,
        output: &str,
    ) -> Result<CheckRecorded, RegistryError> {
        let entry = self.entry(id)?;
        {
            let mut record = entry.lock();
            let check = (record.instance.checks.iter_mut())
                .find(|check| check.id == check_id)
                .ok_or_else(|| RegistryError::CheckNotFound(check_id.to_owned()))?;
            if check.status == status {
                if check.output != output {
                    check.output = output.to_owned();
                }
                return Ok(CheckRecorded::Unchanged);
            }
        }
        let Some(done) = self.decide_check(id, &entry, |instance| {
            if let Some(check) = (instance.checks.iter_mut()).find(|check| check.id == check_id) {
                check.status = status;
                check.output = output.to_owned();
            }
        }) else {
            return Err(RegistryError::NotFound(id.to_owned()));
        };
        Self::finish(done).await?;
        Ok(CheckRecorded::Changed)
    }

    /// Decides a change to an instance's check results; `None` if it is gone.
    pub(super) fn decide_check(
        &self,
        id: &str,
        entry: &Arc<Entry>,
        edit: impl FnOnce(&mut Instance),
    ) -> Option<super::change::Done> {
        let mut change = self.table.decide();
        if !change.is_current(id, entry) {
            return None;
        }
        let mut record: StoredInstance = entry.snapshot();
        edit(&mut record.instance);
        record.instance.healthy = is_healthy(&record.instance);
        change.upsert(record.instance.clone());
        change.set_record(entry, record);
        Some(change.submit())
    }

    /// Puts an instance in maintenance (status `maintenance`, with Consul's maintenance
    /// check carrying `reason`) or takes it out (back to `active`).
    pub async fn set_maintenance(
        &self,
        id: &str,
        enable: bool,
        reason: Option<&str>,
    ) -> Result<InstanceView, RegistryError> {
        let entry = self.entry(id)?;
        let check_id = maintenance_check_id(id);
        let (done, view) = {
            let mut change = self.table.decide();
            if !change.is_current(id, &entry) {
                return Err(RegistryError::NotFound(id.to_owned()));
            }
            let mut record = entry.snapshot();
            record.instance.checks.retain(|check| check.id != check_id);
            if enable {
                record.instance.status = Status::Maintenance;
                record.instance.checks.push(Check {
                    id: check_id,
                    name: "Service Maintenance Mode".to_owned(),
                    kind: "maintenance".to_owned(),
                    status: CheckStatus::Critical,
                    output: String::new(),
                    notes: reason
                        .filter(|reason| !reason.is_empty())
                        .unwrap_or(DEFAULT_MAINTENANCE_REASON)
                        .to_owned(),
                });
                record.expired_from = None;
                record.instance.offline_time = None;
            } else if record.instance.status == Status::Maintenance {
                record.instance.status = Status::Active;
                record.expired_from = None;
                record.instance.offline_time = None;
            }
            // Disabling maintenance on an instance not in it (an expired one, say)
            // leaves its status and its expiry alone: a heartbeat still revives it.
            record.instance.healthy = is_healthy(&record.instance);
            let view = self.view(&record);
            change.upsert(record.instance.clone());
            change.set_record(&entry, record);
            (change.submit(), view)
        };
        Self::finish(done).await?;
        Ok(view)
    }

    /// The instance holding check `check_id`. Consul's default ids name the instance
    /// (`service:<id>`, `service:<id>:<n>`), so those are found at once; others by a scan.
    pub fn check_owner(&self, check_id: &str) -> Option<String> {
        let holds = |entry: &Entry| {
            entry
                .lock()
                .instance
                .checks
                .iter()
                .any(|c| c.id == check_id)
        };
        if let Some(rest) = check_id.strip_prefix("service:") {
            let mut guesses = vec![rest];
            if let Some((id, n)) = rest.rsplit_once(':') {
                if n.parse::<u32>().is_ok() {
                    guesses.push(id);
                }
            }
            let found = guesses
                .into_iter()
                .find(|id| self.entry(id).is_ok_and(|entry| holds(&entry)));
            if let Some(id) = found {
                return Some(id.to_owned());
            }
        }
        (self.table.entries.iter())
            .find(|entry| holds(entry.value()))
            .map(|entry| entry.key().clone())
    }

    /// The definition of check `check_id` of instance `id`.
    pub fn check_definition(&self, id: &str, check_id: &str) -> Option<CheckDefinition> {
        let entry = self.entry(id).ok()?;
        let record = entry.lock();
        record.checks.iter().find(|c| c.id == check_id).cloned()
    }

    /// Every native instance with checks, for `health` to schedule.
    pub fn checked_instances(&self) -> Vec<CheckedInstance> {
        (self.table.entries.iter())
            .filter_map(|entry| {
                let record = entry.lock();
                (!record.checks.is_empty()).then(|| CheckedInstance {
                    id: entry.key().clone(),
                    checks: record.checks.clone(),
                })
            })
            .collect()
    }

    /// Changes whenever a registration with checks is made, so `health` re-reads
    /// [`Registry::checked_instances`].
    pub fn checks_changed(&self) -> tokio::sync::watch::Receiver<u64> {
        self.checks_version.subscribe()
    }

    /// Every native instance as stored, with live heartbeat times and check outputs.
    pub async fn records(&self) -> Vec<StoredInstance> {
        self.table.settled().await;
        (self.table.entries.iter())
            .map(|entry| entry.snapshot())
            .collect()
    }
}
