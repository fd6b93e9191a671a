//! The planner: from what the sources report, what the target holds and the job's ledger,
//! the writes and deletes that bring the target up to date. Pure, so `syncs:plan` shows
//! exactly what running the job does.
//!
//! - **Desired:** per service the job covers, one instance per endpoint from the sources
//!   it reads (the highest priority, then the lowest id, wins), minus *echoes*: instances
//!   some job wrote into that source (known from the ledgers, so this holds even when the
//!   source strips metadata) or that carry `switchboard.sync`.
//! - **Writes:** desired instances not in the ledger (new) or whose content hash changed.
//!   An endpoint the target already has that the job did not write belongs to someone
//!   else: it is left alone, and so never deleted either. One carrying this job's
//!   `switchboard.sync` is the job's own write whose ledger entry was lost (a crash between
//!   the two): it is adopted, not written again.
//! - **Deletes:** ledger entries no longer desired, only while their origin's silence can
//!   be trusted (it is live and fresh, and the wipe-out guard holds none of its services);
//!   otherwise they are held and the status says why.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;
use switchboard_connectors::{Instance, ServiceKey};
use utoipa::ToSchema;

use super::ledger::{content_hash, Ledger, LedgerEntry, Spot};
use super::spec::SyncSpec;
use crate::catalog::ServiceReports;

/// Metadata key naming the source a written instance was copied from.
pub const ORIGIN_KEY: &str = "switchboard.origin";
/// Metadata key naming the sync job that wrote an instance.
pub const SYNC_KEY: &str = "switchboard.sync";

/// What the planner asks about the world besides the reports.
pub trait World {
    /// Whether some job wrote `name` at `host:port` into `source`.
    fn is_echo(&self, source: &str, name: &str, host: &str, port: u16) -> bool;
    /// `Err(why)` when `source`'s silence cannot be trusted (down, stale, not yet synced).
    fn trusts_absence(&self, source: &str) -> Result<(), String>;
}

/// Why an instance is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WriteReason {
    /// Not written before.
    New,
    /// Its content changed since it was written.
    Changed,
}

/// One planned write.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Write {
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub instance: Instance,
    pub origin: String,
    pub reason: WriteReason,
    #[serde(skip)]
    pub hash: u64,
}

/// One planned delete (or a delete held back).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Delete {
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub instance: Instance,
    pub origin: String,
    /// Set when the delete is held back, saying why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
}

/// What a job would do now.
#[derive(Clone, Debug, Default, Serialize, ToSchema)]
pub struct Plan {
    pub writes: Vec<Write>,
    pub deletes: Vec<Delete>,
    /// Deletes not made because the origin is down or stale, or the guard holds it.
    pub held_deletes: Vec<Delete>,
    /// Endpoints the target has from someone else: never written over, never deleted.
    pub foreign: usize,
    /// Instances not copied because a job wrote them into their source.
    pub echoes: usize,
    /// The job's own earlier writes found in the target without a ledger entry.
    #[serde(skip)]
    pub adopted: Vec<(Spot, LedgerEntry)>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.deletes.is_empty() && self.adopted.is_empty()
    }
}

/// Plans `reports` (services the caller chose, including every ledger service among them).
pub fn plan(
    spec: &SyncSpec,
    reports: &[ServiceReports],
    ledger: &Ledger,
    world: &dyn World,
    now: DateTime<Utc>,
) -> Plan {
    let mut plan = Plan::default();
    for report in reports {
        plan_service(spec, report, ledger, world, now, &mut plan);
    }
    plan
}

/// A desired instance: the source it comes from and the instance as that source has it.
struct Wanted<'a> {
    priority: i32,
    origin: &'a str,
    instance: &'a Instance,
}

fn plan_service(
    spec: &SyncSpec,
    report: &ServiceReports,
    ledger: &Ledger,
    world: &dyn World,
    now: DateTime<Utc>,
    plan: &mut Plan,
) {
    let key = &report.key;
    let mut wanted: BTreeMap<(&str, u16), Wanted<'_>> = BTreeMap::new();
    if spec.covers(&key.name) {
        for slice in &report.sources {
            if !spec.from.includes(&slice.source, &spec.to) {
                continue;
            }
            for (raw, instance) in &slice.instances {
                let echo = instance.metadata.contains_key(SYNC_KEY)
                    || world.is_echo(&slice.source, &raw.name, &instance.host, instance.port);
                if echo {
                    plan.echoes += 1;
                    continue;
                }
                let candidate = Wanted {
                    priority: slice.priority,
                    origin: &slice.source,
                    instance,
                };
                let endpoint = (instance.host.as_str(), instance.port);
                let better = wanted.get(&endpoint).is_none_or(|current| {
                    (candidate.priority, std::cmp::Reverse(candidate.origin))
                        > (current.priority, std::cmp::Reverse(current.origin))
                });
                if better {
                    wanted.insert(endpoint, candidate);
                }
            }
        }
    }
    let in_target: HashMap<(&str, u16), &Instance> = report
        .raw_of_target
        .iter()
        .map(|instance| ((instance.host.as_str(), instance.port), instance.as_ref()))
        .collect();
    for (endpoint, want) in &wanted {
        let written = written_copy(want.instance, key, want.origin, &spec.id);
        let hash = content_hash(&written);
        let spot = Spot::of(&written);
        let reason = match ledger.get(&spot) {
            Some(entry) if entry.hash == hash => continue,
            Some(_) => WriteReason::Changed,
            None => match in_target.get(endpoint) {
                Some(there) if there.metadata.get(SYNC_KEY) == Some(&spec.id) => {
                    let entry = LedgerEntry {
                        written,
                        origin: want.origin.to_owned(),
                        hash,
                        written_at: now,
                    };
                    plan.adopted.push((spot, entry));
                    continue;
                }
                Some(_) => {
                    plan.foreign += 1;
                    continue;
                }
                None => WriteReason::New,
            },
        };
        plan.writes.push(Write {
            instance: written,
            origin: want.origin.to_owned(),
            reason,
            hash,
        });
    }
    let service_range = ledger
        .range(service_start(key)..)
        .take_while(|(spot, _)| spot.service == *key);
    for (spot, entry) in service_range {
        if wanted.contains_key(&(spot.host.as_str(), spot.port)) {
            continue;
        }
        if !spec.delete {
            continue;
        }
        let held = origin_holds(report, &entry.origin, world);
        let delete = Delete {
            instance: entry.written.clone(),
            origin: entry.origin.clone(),
            held,
        };
        match delete.held {
            Some(_) => plan.held_deletes.push(delete),
            None => plan.deletes.push(delete),
        }
    }
}

/// Why a delete of something copied from `origin` must wait, if it must.
fn origin_holds(report: &ServiceReports, origin: &str, world: &dyn World) -> Option<String> {
    if let Err(why) = world.trusts_absence(origin) {
        return Some(why);
    }
    let slice = report
        .sources
        .iter()
        .find(|slice| &*slice.source == origin)?;
    if slice.stale {
        return Some(format!("source `{origin}` is stale"));
    }
    slice
        .held
        .then(|| format!("the wipe-out guard holds `{origin}`'s emptying of this service"))
}

/// The first spot of service `key` in ledger order.
fn service_start(key: &ServiceKey) -> Spot {
    Spot {
        service: key.clone(),
        host: String::new(),
        port: 0,
    }
}

/// What the job writes for `instance`: served under `key`, with an id every target
/// accepts and that stays the same for the endpoint, no times (they are the origin's
/// and would make every heartbeat a change), and Switchboard's metadata.
pub fn written_copy(instance: &Instance, key: &ServiceKey, origin: &str, job: &str) -> Instance {
    let mut written = instance.clone();
    written.id = synced_id(key, &instance.host, instance.port);
    written.service = key.clone();
    written.register_time = None;
    written.start_time = None;
    written.last_heartbeat = None;
    written.offline_time = None;
    written
        .metadata
        .retain(|name, _| !name.starts_with("switchboard."));
    written
        .metadata
        .insert(ORIGIN_KEY.to_owned(), origin.to_owned());
    written.metadata.insert(SYNC_KEY.to_owned(), job.to_owned());
    written
}

/// `{service}-{host}-{port}` with anything but `[A-Za-z0-9._-]` as `_`: readable in every
/// target, and the same for an endpoint whichever source it comes from.
fn synced_id(key: &ServiceKey, host: &str, port: u16) -> String {
    format!("{}-{host}-{port}", key.name)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
