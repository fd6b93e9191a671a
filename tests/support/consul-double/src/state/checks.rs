//! Check health over time: setting a TTL check through the API, TTL expiry, and reaping
//! services whose check stayed critical for `DeregisterCriticalServiceAfter`. The store
//! keeps each timer as a deadline; `timers.rs` sleeps until the next one and fires it.

use std::collections::HashSet;

use tokio::time::Instant;

use super::{Check, CheckError, Store};
use crate::register::Status;

impl Store {
    /// Sets a TTL check's status and output and restarts its TTL clock (pass/warn/fail and
    /// update). Setting what is already there writes nothing, as Consul's agent does not
    /// sync an unchanged check.
    pub fn update_check(
        &mut self,
        id: &str,
        status: Status,
        output: &str,
        now: Instant,
    ) -> Result<(), CheckError> {
        let check = self.checks.get_mut(id).ok_or(CheckError::Unknown)?;
        let ttl = check.ttl.ok_or(CheckError::NotTtl)?;
        check.ttl_deadline = Some(now + ttl);
        check.last_output = output.to_owned();
        self.set_status(id, status, output.to_owned(), now);
        Ok(())
    }

    /// Writes a check's status and output if they differ from what is stored.
    fn set_status(&mut self, id: &str, status: Status, output: String, now: Instant) {
        let Some(check) = self.checks.get(id) else {
            return;
        };
        if check.status == status && check.output == output {
            return;
        }
        let idx = self.write();
        let check = self.checks.get_mut(id).expect("checked above");
        if status != Status::Critical {
            check.critical_since = None;
        } else if check.status != Status::Critical {
            check.critical_since = Some(now);
        }
        check.status = status;
        check.output = output;
        check.modify_index = idx;
        let service_id = check.service_id.clone();
        let name = self.name_of(&service_id);
        self.names.insert(name, idx);
    }

    /// The earliest deadline of any timer: a TTL running out, or a critical check's
    /// service due to be reaped.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.checks
            .values()
            .flat_map(|c| [c.ttl_deadline, reap_deadline(c)])
            .flatten()
            .min()
    }

    /// Fires every timer due at `now`: expired TTL checks turn critical, and services whose
    /// check has been critical for its `DeregisterCriticalServiceAfter` are deregistered.
    pub fn fire_timers(&mut self, now: Instant) {
        let expired: Vec<String> = self
            .checks
            .values()
            .filter(|c| c.ttl_deadline.is_some_and(|d| d <= now))
            .map(|c| c.id.clone())
            .collect();
        for id in expired {
            let check = self.checks.get_mut(&id).expect("listed above");
            check.ttl_deadline = None;
            // Consul's CheckTTL quotes the last output it was given.
            let output = match check.last_output.as_str() {
                "" => "TTL expired".to_owned(),
                last => format!("TTL expired (last output before timeout follows): {last}"),
            };
            self.set_status(&id, Status::Critical, output, now);
        }
        let doomed: HashSet<String> = self
            .checks
            .values()
            .filter(|c| reap_deadline(c).is_some_and(|d| d <= now))
            .map(|c| c.service_id.clone())
            .collect();
        for service_id in doomed {
            tracing::debug!(service.id = %service_id, "Reaping service with a critical check");
            self.deregister(&service_id);
        }
    }
}

/// When a critical check's service is due to be reaped, if it has a deadline at all.
fn reap_deadline(check: &Check) -> Option<Instant> {
    Some(check.critical_since? + check.deregister_after?)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::register::Registration;
    use serde_json::json;

    fn reg(body: serde_json::Value) -> Registration {
        Registration::decode(body.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn ttl_expiry_and_reaping() {
        let mut store = Store::new();
        let now = Instant::now();
        let body = json!({"Name": "web", "Check": {"TTL": "1s", "Status": "passing",
            "DeregisterCriticalServiceAfter": "2s"}});
        store.register(reg(body), false, now);
        store
            .update_check("service:web", Status::Passing, "fine", now)
            .unwrap();
        assert_eq!(store.next_deadline(), Some(now + Duration::from_secs(1)));
        store.fire_timers(now + Duration::from_secs(1));
        let check = store.checks_of("web").next().unwrap();
        assert_eq!(check.status, Status::Critical);
        assert_eq!(
            check.output,
            "TTL expired (last output before timeout follows): fine"
        );
        assert_eq!(store.next_deadline(), Some(now + Duration::from_secs(3)));
        store.fire_timers(now + Duration::from_secs(3));
        assert!(store.service("web").is_none());
    }
}
