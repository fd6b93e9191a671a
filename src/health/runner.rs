//! The runner: one task owns the schedule, starts due checks as tasks of their own (at
//! most `[health] concurrency` probing at once), records each result through the
//! registry and reschedules the check. It re-reads the registry's checked instances when
//! a registration with checks is made, and forgets a check when the registry says its
//! instance is gone or no longer has it. A reaper deregisters instances whose check has
//! been critical longer than its `deregister_critical_after`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use switchboard_connectors::CheckStatus;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{sleep_until, Instant, MissedTickBehavior};

use super::http::Clients;
use super::schedule::{Due, Key, Schedule};
use super::tcp;
use super::HealthConfig;
use crate::registry::checks::DEFAULT_TIMEOUT;
use crate::registry::{CheckRecorded, Registry, RegistryError};
use crate::store::{CheckDefinition, Probe};
use crate::telemetry::Metrics;

/// Registrations come in bursts; the checked instances are re-read at most this often.
const RELOAD_GAP: Duration = Duration::from_millis(200);
/// How often checks critical for too long are looked for (Consul's reaper: 30 s).
const REAP_INTERVAL: Duration = Duration::from_secs(1);

pub struct Runner {
    registry: Arc<Registry>,
    clients: Arc<Clients>,
    metrics: Arc<Metrics>,
    limit: Arc<Semaphore>,
    deregister_min: Duration,
    schedule: Schedule,
    probes: JoinSet<Outcome>,
    /// The check each probe task runs, to reschedule it if the task panics.
    running: HashMap<tokio::task::Id, (Key, u64)>,
    /// Checks now critical that have a `deregister_critical_after`.
    reapable: HashSet<Key>,
}

/// What one run found and whether the registry took it.
pub struct Outcome {
    key: Key,
    slot: u64,
    status: CheckStatus,
    recorded: Result<CheckRecorded, RegistryError>,
}

/// How long a run may take: the check's timeout (default 10 s), never above its interval.
pub fn timeout_of(check: &CheckDefinition) -> Duration {
    let timeout = check.timeout.unwrap_or(DEFAULT_TIMEOUT);
    check
        .interval
        .map_or(timeout, |interval| timeout.min(interval))
}

/// Runs one HTTP or TCP check; `None` for a TTL check, which is never run.
async fn probe(clients: &Clients, check: &CheckDefinition) -> Option<(CheckStatus, String)> {
    let timeout = timeout_of(check);
    Some(match &check.probe {
        Probe::Http {
            url,
            method,
            headers,
            tls_skip_verify,
        } => {
            let skip_verify = *tls_skip_verify;
            clients
                .check(url, method, headers, skip_verify, timeout)
                .await
        }
        Probe::Tcp { address } => tcp::check(address, timeout).await,
        Probe::Ttl { .. } => return None,
    })
}

impl Runner {
    pub fn new(
        registry: Arc<Registry>,
        clients: Clients,
        metrics: Arc<Metrics>,
        config: &HealthConfig,
    ) -> Runner {
        Runner {
            registry,
            clients: Arc::new(clients),
            metrics,
            limit: Arc::new(Semaphore::new(config.concurrency.max(1))),
            deregister_min: config.deregister_min,
            schedule: Schedule::default(),
            probes: JoinSet::new(),
            running: HashMap::new(),
            reapable: HashSet::new(),
        }
    }

    /// Runs checks until `stop` turns true, then cancels the runs in flight.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut changes = self.registry.checks_changed();
        changes.borrow_and_update();
        self.reload();
        let mut last_reload = Instant::now();
        let mut reload_at: Option<Instant> = None;
        let mut reap = tokio::time::interval(REAP_INTERVAL);
        reap.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let wake = self.schedule.next_wake();
            tokio::select! {
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                }
                changed = changes.changed(), if reload_at.is_none() => {
                    if changed.is_err() {
                        break;
                    }
                    reload_at = Some((last_reload + RELOAD_GAP).max(Instant::now()));
                }
                () = sleep_until(reload_at.unwrap_or_else(Instant::now)), if reload_at.is_some() => {
                    reload_at = None;
                    changes.borrow_and_update();
                    self.reload();
                    last_reload = Instant::now();
                }
                () = sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => {
                    self.start_due();
                }
                Some(joined) = self.probes.join_next_with_id() => match joined {
                    Ok((id, outcome)) => {
                        self.running.remove(&id);
                        self.finished(outcome);
                    }
                    Err(err) => self.panicked(err),
                },
                _ = reap.tick(), if !self.reapable.is_empty() => self.reap().await,
            }
        }
        self.probes.shutdown().await;
    }

    fn reload(&mut self) {
        let instances = self.registry.checked_instances();
        let scheduled = self.schedule.reconcile(instances, Instant::now());
        let schedule = &self.schedule;
        self.reapable.retain(|key| schedule.get(key).is_some());
        tracing::debug!(checks = scheduled, "Health checks scheduled");
    }

    fn start_due(&mut self) {
        for Due {
            key,
            slot,
            definition,
        } in self.schedule.take_due(Instant::now())
        {
            let registry = self.registry.clone();
            let clients = self.clients.clone();
            let metrics = self.metrics.clone();
            let limit = self.limit.clone();
            let task_key = key.clone();
            let task = self.probes.spawn(async move {
                let (id, check_id) = &task_key;
                let permit = limit.acquire_owned().await;
                let started = Instant::now();
                let ran = probe(&clients, &definition).await;
                let took = started.elapsed();
                drop(permit);
                let Some((status, output)) = ran else {
                    // Not a check the runner runs: forget it.
                    let recorded = Err(RegistryError::CheckNotFound(check_id.clone()));
                    let status = CheckStatus::Critical;
                    return Outcome {
                        key: task_key,
                        slot,
                        status,
                        recorded,
                    };
                };
                let kind = definition.probe.kind();
                metrics.health.ran(kind, status.as_str(), took);
                let recorded = registry.record_check(id, check_id, status, &output).await;
                Outcome {
                    key: task_key,
                    slot,
                    status,
                    recorded,
                }
            });
            self.running.insert(task.id(), (key, slot));
        }
    }

    /// Takes a run's result: forgets a check its instance no longer has, tracks how long
    /// it has been critical, and schedules the next run.
    fn finished(&mut self, outcome: Outcome) {
        let Outcome {
            key,
            slot,
            status,
            recorded,
        } = outcome;
        let (id, check_id) = &key;
        match recorded {
            Err(RegistryError::NotFound(_) | RegistryError::CheckNotFound(_)) => {
                tracing::debug!(instance.id = %id, check.id = %check_id, "Check dropped: its instance is gone or no longer has it");
                self.schedule.remove(&key, slot);
                return;
            }
            Err(err) => {
                tracing::warn!(instance.id = %id, check.id = %check_id, error = %err, "Check result not recorded; the next run tries again");
                self.schedule.finish(&key, slot, Instant::now());
                return;
            }
            Ok(CheckRecorded::Changed) => {
                tracing::info!(instance.id = %id, check.id = %check_id, status = status.as_str(), "Check status changed");
            }
            Ok(CheckRecorded::Unchanged) => {}
        }
        let now = Instant::now();
        let Some(scheduled) = self.schedule.finish(&key, slot, now) else {
            return;
        };
        if status != CheckStatus::Critical {
            scheduled.critical_since = None;
            self.reapable.remove(&key);
        } else {
            scheduled.critical_since.get_or_insert(now);
            if scheduled.definition.deregister_critical_after.is_some() {
                self.reapable.insert(key);
            }
        }
    }

    fn panicked(&mut self, err: tokio::task::JoinError) {
        if let Some((key, slot)) = self.running.remove(&err.id()) {
            tracing::error!(instance.id = %key.0, check.id = %key.1, error = %err, "Check run failed; the next run tries again");
            self.schedule.finish(&key, slot, Instant::now());
        }
    }

    /// Deregisters each instance with a check critical for longer than its
    /// `deregister_critical_after` (at least `[health] deregister_min`).
    async fn reap(&mut self) {
        let now = Instant::now();
        let mut due = Vec::new();
        let schedule = &self.schedule;
        let deregister_min = self.deregister_min;
        self.reapable.retain(|key| {
            let Some(scheduled) = schedule.get(key) else {
                return false;
            };
            let definition = &scheduled.definition;
            let (Some(since), Some(after)) = (
                scheduled.critical_since,
                definition.deregister_critical_after,
            ) else {
                return false;
            };
            let after = after.max(deregister_min);
            if now.duration_since(since) >= after {
                due.push((key.clone(), definition.clone(), after));
            }
            true
        });
        for ((id, check_id), definition, after) in due {
            // Only the registration that has this very check: one made since may not.
            if self.registry.check_definition(&id, &check_id).as_ref() != Some(&definition) {
                continue;
            }
            match self.registry.deregister(&id).await {
                Ok(_) => {
                    self.metrics.health.deregistrations.inc();
                    tracing::info!(instance.id = %id, check.id = %check_id, after = ?after, "Deregistered an instance whose check stayed critical past deregister_critical_after");
                }
                Err(RegistryError::NotFound(_)) => {}
                Err(err) => {
                    tracing::warn!(instance.id = %id, error = %err, "Deregistering an instance critical too long failed; will retry");
                    continue;
                }
            }
            self.schedule.remove_instance(&id);
            self.reapable.retain(|(instance, _)| *instance != id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeout_defaults_to_10s_and_never_exceeds_the_interval() {
        let mut check = CheckDefinition {
            id: "c".into(),
            name: "c".into(),
            probe: Probe::Tcp {
                address: "127.0.0.1:1".into(),
            },
            interval: Some(Duration::from_secs(30)),
            timeout: None,
            deregister_critical_after: None,
            notes: String::new(),
        };
        assert_eq!(timeout_of(&check), Duration::from_secs(10));
        check.interval = Some(Duration::from_secs(2));
        assert_eq!(timeout_of(&check), Duration::from_secs(2));
        check.timeout = Some(Duration::from_millis(500));
        assert_eq!(timeout_of(&check), Duration::from_millis(500));
        check.timeout = Some(Duration::from_secs(5));
        assert_eq!(timeout_of(&check), Duration::from_secs(2));
    }
}
