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

use super::ledger::{content_hash, service_entries, Ledger, LedgerEntry, Spot};
use super::spec::{From, SyncSpec};
use crate::catalog::ServiceReports;

/// Metadata key naming the source a written instance was copied from.
pub const ORIGIN_KEY: &str = "switchboard.origin";
/// Metadata key naming the sync job that wrote an instance.
pub const SYNC_KEY: &str = "switchboard.sync";
/// How Consul, which allows no `.` in metadata keys, keeps [`SYNC_KEY`].
const SYNC_KEY_MANGLED: &str = "switchboard_sync";
/// How long after a write a target may still not show it (its own propagation) before
/// the copy counts as lost and is written again.
const MISSING_GRACE: chrono::TimeDelta = chrono::TimeDelta::seconds(30);

/// The sync job that wrote `instance`, as far as its metadata says.
fn written_by(instance: &Instance) -> Option<&str> {
    (instance.metadata.get(SYNC_KEY))
        .or_else(|| instance.metadata.get(SYNC_KEY_MANGLED))
        .map(String::as_str)
}

/// What the planner asks about the world besides the reports.
pub trait World {
    /// Whether some job wrote `name` at `host:port` into `source`.
    fn is_echo(&self, source: &str, name: &str, host: &str, port: u16) -> bool;
    /// `Err(why)` when `source`'s silence cannot be trusted (down, stale, not yet synced).
    fn trusts_absence(&self, source: &str) -> Result<(), String>;
    /// Whether the catalog holds a live view of `target` (connected, synced, fresh), so
    /// a copy it does not show is really gone.
    fn sees(&self, target: &str) -> bool;
}

/// Why an instance is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WriteReason {
    /// Not written before.
    New,
    /// Its content changed since it was written.
    Changed,
    /// Written before, but the target no longer has it (it expired or was removed there).
    Missing,
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
    /// Ledger entries whose endpoint someone else now holds in the target: forgotten,
    /// neither written over nor deleted.
    #[serde(skip)]
    pub released: Vec<Spot>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
            && self.deletes.is_empty()
            && self.adopted.is_empty()
            && self.released.is_empty()
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
    let target_seen = world.sees(&spec.to);
    for report in reports {
        plan_service(spec, report, ledger, world, target_seen, now, &mut plan);
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
    target_seen: bool,
    now: DateTime<Utc>,
    plan: &mut Plan,
) {
    let key = &report.key;
    let mut wanted: BTreeMap<(&str, u16), Wanted<'_>> = BTreeMap::new();
    // `"*"` copies the merged view: only endpoints clients get (merge rules, max_stale).
    let served: Option<std::collections::HashSet<(&str, u16)>> = matches!(spec.from, From::All)
        .then(|| {
            report
                .served
                .iter()
                .map(|(host, port)| (host.as_str(), *port))
                .collect()
        });
    if spec.covers(&key.name) {
        for slice in &report.sources {
            if !spec.from.includes(&slice.source, &spec.to) {
                continue;
            }
            for (raw, instance) in &slice.instances {
                let echo = written_by(instance).is_some()
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
                if served
                    .as_ref()
                    .is_some_and(|served| !served.contains(&endpoint))
                {
                    continue;
                }
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
    // A copy counts as lost only where the target has a live view that lists the
    // service: a target still discovering new services (Nacos reads its service list
    // every few seconds) proves nothing about copies it has not looked at yet.
    let target_trusted = target_seen
        && !report.raw_of_target.is_empty()
        && !(report.sources.iter()).any(|slice| *slice.source == *spec.to && slice.stale);
    let in_target: HashMap<(&str, u16), &Instance> = report
        .raw_of_target
        .iter()
        .map(|instance| ((instance.host.as_str(), instance.port), instance.as_ref()))
        .collect();
    for (endpoint, want) in &wanted {
        let written = written_copy(want.instance, key, want.origin, &spec.id);
        let hash = content_hash(&written);
        let spot = Spot::of(&written);
        let there = in_target.get(endpoint).copied();
        let reason = match ledger.get(&spot) {
            Some(entry) if there.is_some_and(|there| !is_ours(there, entry, &spec.id)) => {
                plan.released.push(spot);
                continue;
            }
            Some(entry) if entry.hash == hash => {
                let lost =
                    there.is_none() && target_trusted && now - entry.written_at > MISSING_GRACE;
                if !lost {
                    continue;
                }
                WriteReason::Missing
            }
            Some(_) => WriteReason::Changed,
            None => match there {
                Some(there) if written_by(there) == Some(&spec.id) || there.id == written.id => {
                    let entry = LedgerEntry {
                        target: spec.to.clone(),
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
    let service_range = service_entries(ledger, key);
    for (spot, entry) in service_range {
        let endpoint = (spot.host.as_str(), spot.port);
        if wanted.contains_key(&endpoint) {
            continue;
        }
        if !spec.delete {
            continue;
        }
        if (in_target.get(&endpoint)).is_some_and(|there| !is_ours(there, entry, &spec.id)) {
            plan.released.push(spot.clone());
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

/// Whether the instance the target holds at a ledger entry's endpoint is still the job's
/// copy: its metadata names the job, or (metadata stripped) it keeps the written id.
fn is_ours(there: &Instance, entry: &LedgerEntry, job: &str) -> bool {
    match written_by(there) {
        Some(writer) => writer == job,
        None => there.id == entry.written.id,
    }
}

/// `{service}-{host}-{port}-{hash}`, anything but `[A-Za-z0-9._-]` as `_`: readable in
/// every target, the same for an endpoint whichever source it comes from, and distinct
/// across namespaces and groups (the hash covers the whole service key and endpoint).
fn synced_id(key: &ServiceKey, host: &str, port: u16) -> String {
    let readable: String = format!("{}-{host}-{port}", key.name)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let whole = format!(
        "{}\0{}\0{}\0{host}\0{port}",
        key.namespace, key.group, key.name
    );
    format!(
        "{readable}-{:08x}",
        super::ledger::short_hash(whole.as_bytes())
    )
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
