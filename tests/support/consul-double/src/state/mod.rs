//! The double's state store: the services and checks registered on its one node, and the
//! Raft-like indexes Consul's blocking queries compare against.
//!
//! Indexes: `index` is the global one (every write bumps it, like Raft's log index).
//! `services_index` is the index of the services table (`/v1/catalog/services` blocks on
//! it): it moves when a service row is written. Each service name has its own index, the
//! last write that changed its health result (an instance's row, a check's definition,
//! status or output); after the last instance goes, the name keeps that index as a
//! tombstone, so a watcher of the name wakes and reads `[]` with a higher index. Writes that
//! change nothing (re-registering an identical service, passing an already passing check
//! with the same output) do not move the per-query indexes, as in Consul, whose state store
//! skips unchanged rows; a re-registration still bumps the global index (it is a Raft write).
//!
//! Check status changes and the timers (TTL expiry, `DeregisterCriticalServiceAfter`) are in
//! `checks.rs`; timers are deadlines stored here and fired by `timers.rs`, so the store
//! never sleeps.

mod checks;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use tokio::time::Instant;

use crate::register::{CheckDef, CheckKind, Registration, ServiceDef, Status};

/// A registered service instance.
#[derive(Clone, Debug)]
pub struct Service {
    pub def: ServiceDef,
    pub create_index: u64,
    pub modify_index: u64,
}

/// A service's check.
#[derive(Clone, Debug)]
pub struct Check {
    pub id: String,
    pub name: String,
    pub service_id: String,
    pub notes: String,
    pub kind: CheckKind,
    pub ttl: Option<Duration>,
    pub deregister_after: Option<Duration>,
    pub status: Status,
    pub output: String,
    /// The output last set through the API: Consul quotes it when the TTL runs out.
    pub last_output: String,
    /// When the TTL runs out unless refreshed; `None` once it has run out.
    pub ttl_deadline: Option<Instant>,
    /// Since when the check has been critical (for `DeregisterCriticalServiceAfter`).
    pub critical_since: Option<Instant>,
    pub create_index: u64,
    pub modify_index: u64,
}

/// Why a check update was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum CheckError {
    /// No check has that ID (Consul: 404).
    Unknown,
    /// The check is not a TTL check, so only its probe may set it (Consul: 500).
    NotTtl,
}

/// Services, checks and indexes of the one node.
#[derive(Debug)]
pub struct Store {
    index: u64,
    services_index: u64,
    /// The node's and the built-in `consul` service's create/modify index.
    node_index: u64,
    /// Per service name: the last write that changed its health result (kept after the
    /// last instance is gone, as a tombstone).
    names: HashMap<String, u64>,
    services: BTreeMap<String, Service>,
    checks: BTreeMap<String, Check>,
}

/// The name Consul's own service is listed under.
pub const CONSUL_SERVICE: &str = "consul";

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

impl Store {
    /// A store holding only the node (with `serfHealth`) and Consul's own service, all
    /// written at index 1.
    pub fn new() -> Store {
        Store {
            index: 1,
            services_index: 1,
            node_index: 1,
            names: HashMap::from([(CONSUL_SERVICE.to_owned(), 1)]),
            services: BTreeMap::new(),
            checks: BTreeMap::new(),
        }
    }

    /// The global (Raft) index.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The index `/v1/catalog/services` reports and blocks on.
    pub fn services_index(&self) -> u64 {
        self.services_index
    }

    pub fn node_index(&self) -> u64 {
        self.node_index
    }

    /// The index `/v1/health/service/:name` reports and blocks on. A name never seen uses
    /// the services table's index, as Consul falls back to a table index for a service
    /// that does not exist (so its watchers may wake on unrelated registrations).
    pub fn name_index(&self, name: &str) -> u64 {
        self.names.get(name).copied().unwrap_or(self.services_index)
    }

    pub fn services(&self) -> impl Iterator<Item = &Service> {
        self.services.values()
    }

    #[cfg(test)]
    pub fn service(&self, id: &str) -> Option<&Service> {
        self.services.get(id)
    }

    /// The checks of service `id`, ordered by check ID.
    pub fn checks_of<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a Check> + 'a {
        self.checks.values().filter(move |c| c.service_id == id)
    }

    /// Starts a write: bumps the global index and returns it.
    fn write(&mut self) -> u64 {
        self.index += 1;
        self.index
    }

    /// Registers (or re-registers) a service with its checks, as the agent endpoint does.
    pub fn register(&mut self, reg: Registration, replace_checks: bool, now: Instant) {
        let idx = self.write();
        let id = reg.service.id.clone();
        let name = reg.service.name.clone();
        // Names whose health result this write changes.
        let mut touched: HashSet<String> = HashSet::new();

        match self.services.get_mut(&id) {
            Some(existing) if existing.def == reg.service => {}
            Some(existing) => {
                touched.insert(existing.def.name.clone());
                existing.def = reg.service;
                existing.modify_index = idx;
                self.services_index = idx;
            }
            None => {
                let service = Service {
                    def: reg.service,
                    create_index: idx,
                    modify_index: idx,
                };
                self.services.insert(id.clone(), service);
                self.services_index = idx;
            }
        }
        if self.services[&id].modify_index == idx {
            touched.insert(name.clone());
        }

        let several = reg.checks.len() > 1;
        let mut listed = HashSet::new();
        for (n, def) in reg.checks.into_iter().enumerate() {
            let check_id = def.id.clone().unwrap_or_else(|| match several {
                true => format!("service:{id}:{}", n + 1),
                false => format!("service:{id}"),
            });
            listed.insert(check_id.clone());
            let check_name = def
                .name
                .clone()
                .unwrap_or_else(|| format!("Service '{name}' check"));
            if let Some(owner) = self.upsert_check(check_id, check_name, &id, def, idx, now) {
                touched.insert(owner);
                touched.insert(name.clone());
            }
        }
        if replace_checks {
            let before = self.checks.len();
            self.checks
                .retain(|cid, c| c.service_id != id || listed.contains(cid));
            if self.checks.len() != before {
                touched.insert(name.clone());
            }
        }
        for touched_name in touched {
            self.names.insert(touched_name, idx);
        }
    }

    /// Adds or redefines one check. An existing check keeps its status and output (Consul
    /// restores them from a snapshot when a service is re-registered) but its TTL clock
    /// restarts. Returns the name of the service that owned the check before, when the
    /// write changed anything.
    fn upsert_check(
        &mut self,
        check_id: String,
        check_name: String,
        service_id: &str,
        def: CheckDef,
        idx: u64,
        now: Instant,
    ) -> Option<String> {
        let ttl_deadline = def.ttl.map(|ttl| now + ttl);
        if let Some(existing) = self.checks.get_mut(&check_id) {
            existing.ttl_deadline = ttl_deadline;
            existing.last_output.clear();
            let same = existing.service_id == service_id
                && existing.name == check_name
                && existing.notes == def.notes
                && existing.kind == def.kind
                && existing.ttl == def.ttl
                && existing.deregister_after == def.deregister_after;
            if same {
                return None;
            }
            let previous_owner = existing.service_id.clone();
            existing.service_id = service_id.to_owned();
            existing.name = check_name;
            existing.notes = def.notes;
            existing.kind = def.kind;
            existing.ttl = def.ttl;
            existing.deregister_after = def.deregister_after;
            existing.modify_index = idx;
            return Some(self.name_of(&previous_owner));
        }
        let status = def.status.unwrap_or(Status::Critical);
        let check = Check {
            id: check_id.clone(),
            name: check_name,
            service_id: service_id.to_owned(),
            notes: def.notes,
            kind: def.kind,
            ttl: def.ttl,
            deregister_after: def.deregister_after,
            status,
            output: String::new(),
            last_output: String::new(),
            ttl_deadline,
            critical_since: (status == Status::Critical).then_some(now),
            create_index: idx,
            modify_index: idx,
        };
        self.checks.insert(check_id, check);
        Some(self.name_of(service_id))
    }

    fn name_of(&self, service_id: &str) -> String {
        self.services
            .get(service_id)
            .map(|s| s.def.name.clone())
            .unwrap_or_default()
    }

    /// Removes a service and its checks; `false` (and no write) if the ID is unknown.
    pub fn deregister(&mut self, id: &str) -> bool {
        let Some(service) = self.services.remove(id) else {
            return false;
        };
        let idx = self.write();
        self.checks.retain(|_, c| c.service_id != id);
        self.services_index = idx;
        self.names.insert(service.def.name, idx);
        true
    }

    /// A snapshot restore: every index drops to `index` (or stays, if already lower).
    pub fn restore(&mut self, index: u64) {
        let lower = |value: &mut u64| *value = (*value).min(index);
        lower(&mut self.index);
        lower(&mut self.services_index);
        lower(&mut self.node_index);
        self.names.values_mut().for_each(lower);
        for service in self.services.values_mut() {
            lower(&mut service.create_index);
            lower(&mut service.modify_index);
        }
        for check in self.checks.values_mut() {
            lower(&mut check.create_index);
            lower(&mut check.modify_index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reg(body: serde_json::Value) -> Registration {
        Registration::decode(body.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn identical_reregistration_moves_only_the_global_index() {
        let mut store = Store::new();
        let now = Instant::now();
        store.register(reg(json!({"Name": "web", "Port": 80})), false, now);
        let (web, services) = (store.name_index("web"), store.services_index());
        store.register(reg(json!({"Name": "web", "Port": 80})), false, now);
        assert_eq!(store.name_index("web"), web);
        assert_eq!(store.services_index(), services);
        assert_eq!(store.index(), web + 1);
        store.register(reg(json!({"Name": "web", "Port": 81})), false, now);
        assert_eq!(store.name_index("web"), store.index());
    }

    #[test]
    fn a_write_to_one_name_leaves_the_others() {
        let mut store = Store::new();
        let now = Instant::now();
        store.register(reg(json!({"Name": "a"})), false, now);
        let a = store.name_index("a");
        store.register(reg(json!({"Name": "b"})), false, now);
        assert_eq!(store.name_index("a"), a);
        assert!(store.name_index("b") > a);
    }

    #[test]
    fn deregistering_the_last_instance_leaves_a_tombstone() {
        let mut store = Store::new();
        let now = Instant::now();
        store.register(reg(json!({"Name": "web"})), false, now);
        let before = store.name_index("web");
        assert!(store.deregister("web"));
        assert!(store.name_index("web") > before);
        assert!(!store.deregister("web"));
    }

    #[test]
    fn reregistration_keeps_check_status_and_replace_drops_unlisted_checks() {
        let mut store = Store::new();
        let now = Instant::now();
        let two = json!({"Name": "web", "Checks": [{"TTL": "10s"}, {"TTL": "10s"}]});
        store.register(reg(two.clone()), false, now);
        store
            .update_check("service:web:1", Status::Passing, "ok", now)
            .unwrap();
        store.register(reg(two), false, now);
        let first = store.checks_of("web").next().unwrap();
        assert_eq!(
            (first.status, first.output.as_str()),
            (Status::Passing, "ok")
        );

        let one = json!({"Name": "web", "Checks": [{"TTL": "10s"}]});
        store.register(reg(one.clone()), false, now);
        // Not replacing: the old :1 and :2 stay beside the new `service:web`.
        assert_eq!(store.checks_of("web").count(), 3);
        store.register(reg(one), true, now);
        let ids: Vec<_> = store.checks_of("web").map(|c| c.id.clone()).collect();
        assert_eq!(ids, ["service:web"]);
    }

    #[test]
    fn restore_lowers_every_index() {
        let mut store = Store::new();
        let now = Instant::now();
        store.register(reg(json!({"Name": "web"})), false, now);
        store.register(reg(json!({"Name": "db"})), false, now);
        store.restore(2);
        assert_eq!(store.index(), 2);
        assert_eq!(store.name_index("db"), 2);
        assert_eq!(store.services_index(), 2);
        assert_eq!(store.service("db").unwrap().create_index, 2);
    }
}
