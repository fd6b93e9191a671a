//! The JSON the read endpoints answer with, field for field as Consul writes it
//! (PascalCase, Go's field order), built from the store.
//!
//! Shapes: `/v1/health/service/:name` entries `{Node, Service, Checks}`;
//! `/v1/catalog/services` `{name: [tags]}`; `/v1/agent/services` `{id: AgentService}`.
//! As in Consul, `Tags`, `Meta` and `ServiceTags` are never `null`, and a service's
//! `TaggedAddresses` is left out when empty (Go's `omitempty`), so clients must not need it.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::register::{ServiceDef, Status, TaggedAddress};
use crate::state::{Check, Store, CONSUL_SERVICE};

/// Who the double's one node is.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub datacenter: String,
    pub node: String,
    pub address: String,
    /// The node's UUID, random per double.
    pub id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthEntry {
    pub node: NodeJson,
    pub service: ServiceJson,
    pub checks: Vec<CheckJson>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeJson {
    #[serde(rename = "ID")]
    pub id: String,
    pub node: String,
    pub address: String,
    pub datacenter: String,
    pub tagged_addresses: BTreeMap<String, String>,
    pub meta: BTreeMap<String, String>,
    pub create_index: u64,
    pub modify_index: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceJson {
    #[serde(rename = "ID")]
    pub id: String,
    pub service: String,
    pub tags: Vec<String>,
    pub address: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tagged_addresses: BTreeMap<String, TaggedAddressJson>,
    pub meta: BTreeMap<String, String>,
    pub port: u16,
    pub weights: WeightsJson,
    pub enable_tag_override: bool,
    pub create_index: u64,
    pub modify_index: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaggedAddressJson {
    pub address: String,
    pub port: u16,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct WeightsJson {
    pub passing: i64,
    pub warning: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CheckJson {
    pub node: String,
    #[serde(rename = "CheckID")]
    pub check_id: String,
    pub name: String,
    pub status: &'static str,
    pub notes: String,
    pub output: String,
    #[serde(rename = "ServiceID")]
    pub service_id: String,
    pub service_name: String,
    pub service_tags: Vec<String>,
    #[serde(rename = "Type")]
    pub kind: &'static str,
    pub create_index: u64,
    pub modify_index: u64,
}

/// `/v1/agent/services` values: Consul's `api.AgentService`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AgentServiceJson {
    #[serde(rename = "ID")]
    pub id: String,
    pub service: String,
    pub tags: Vec<String>,
    pub meta: BTreeMap<String, String>,
    pub port: u16,
    pub address: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tagged_addresses: BTreeMap<String, TaggedAddressJson>,
    pub weights: WeightsJson,
    pub enable_tag_override: bool,
    pub datacenter: String,
}

fn tagged(addresses: &BTreeMap<String, TaggedAddress>) -> BTreeMap<String, TaggedAddressJson> {
    addresses
        .iter()
        .map(|(tag, a)| {
            let json = TaggedAddressJson {
                address: a.address.clone(),
                port: a.port,
            };
            (tag.clone(), json)
        })
        .collect()
}

fn node_json(store: &Store, node: &NodeInfo) -> NodeJson {
    let address = node.address.clone();
    let tagged_addresses = ["lan", "lan_ipv4", "wan", "wan_ipv4"]
        .into_iter()
        .map(|tag| (tag.to_owned(), address.clone()))
        .collect();
    NodeJson {
        id: node.id.clone(),
        node: node.node.clone(),
        address,
        datacenter: node.datacenter.clone(),
        tagged_addresses,
        meta: BTreeMap::from([("consul-network-segment".to_owned(), String::new())]),
        create_index: store.node_index(),
        modify_index: store.node_index(),
    }
}

/// The node-level check every health entry carries.
fn serf_health(store: &Store, node: &NodeInfo) -> CheckJson {
    CheckJson {
        node: node.node.clone(),
        check_id: "serfHealth".to_owned(),
        name: "Serf Health Status".to_owned(),
        status: Status::Passing.as_str(),
        notes: String::new(),
        output: "Agent alive and reachable".to_owned(),
        service_id: String::new(),
        service_name: String::new(),
        service_tags: Vec::new(),
        kind: "",
        create_index: store.node_index(),
        modify_index: store.node_index(),
    }
}

fn check_json(check: &Check, service: &ServiceDef, node: &NodeInfo) -> CheckJson {
    CheckJson {
        node: node.node.clone(),
        check_id: check.id.clone(),
        name: check.name.clone(),
        status: check.status.as_str(),
        notes: check.notes.clone(),
        output: check.output.clone(),
        service_id: service.id.clone(),
        service_name: service.name.clone(),
        service_tags: service.tags.clone(),
        kind: check.kind.as_str(),
        create_index: check.create_index,
        modify_index: check.modify_index,
    }
}

fn weights((passing, warning): (i64, i64)) -> WeightsJson {
    WeightsJson { passing, warning }
}

/// Consul's own service on its server node: port 8300, no checks but `serfHealth`.
fn consul_service(store: &Store) -> ServiceJson {
    ServiceJson {
        id: CONSUL_SERVICE.to_owned(),
        service: CONSUL_SERVICE.to_owned(),
        tags: Vec::new(),
        address: String::new(),
        tagged_addresses: BTreeMap::new(),
        meta: BTreeMap::from([
            ("raft_version".to_owned(), "3".to_owned()),
            ("serf_protocol_current".to_owned(), "2".to_owned()),
            ("version".to_owned(), "1.17.0".to_owned()),
        ]),
        port: 8300,
        weights: weights((1, 1)),
        enable_tag_override: false,
        create_index: store.node_index(),
        modify_index: store.node_index(),
    }
}

/// Whether `tags` holds every wanted tag; Consul compares tags case-insensitively.
fn has_tags(tags: &[String], wanted: &[String]) -> bool {
    wanted
        .iter()
        .all(|w| tags.iter().any(|t| t.eq_ignore_ascii_case(w)))
}

/// The body of `/v1/health/service/:name`, ordered by service ID.
pub fn health_entries(
    store: &Store,
    node: &NodeInfo,
    name: &str,
    passing_only: bool,
    wanted_tags: &[String],
) -> Vec<HealthEntry> {
    let mut entries = Vec::new();
    if name == CONSUL_SERVICE && wanted_tags.is_empty() {
        entries.push(HealthEntry {
            node: node_json(store, node),
            service: consul_service(store),
            checks: vec![serf_health(store, node)],
        });
    }
    for service in store.services().filter(|s| s.def.name == name) {
        let def = &service.def;
        if !has_tags(&def.tags, wanted_tags) {
            continue;
        }
        let mut checks = vec![serf_health(store, node)];
        checks.extend(store.checks_of(&def.id).map(|c| check_json(c, def, node)));
        if passing_only && checks.iter().any(|c| c.status != "passing") {
            continue;
        }
        entries.push(HealthEntry {
            node: node_json(store, node),
            service: ServiceJson {
                id: def.id.clone(),
                service: def.name.clone(),
                tags: def.tags.clone(),
                address: def.address.clone(),
                tagged_addresses: tagged(&def.tagged_addresses),
                meta: def.meta.clone(),
                port: def.port,
                weights: weights(def.weights),
                enable_tag_override: def.enable_tag_override,
                create_index: service.create_index,
                modify_index: service.modify_index,
            },
            checks,
        });
    }
    entries
}

/// The body of `/v1/catalog/services`: every name with the union of its instances' tags
/// (sorted here; Consul's order is unspecified), `consul` always included.
pub fn catalog_services(store: &Store) -> BTreeMap<String, Vec<String>> {
    let mut names: BTreeMap<String, Vec<String>> =
        BTreeMap::from([(CONSUL_SERVICE.to_owned(), Vec::new())]);
    for service in store.services() {
        let tags = names.entry(service.def.name.clone()).or_default();
        tags.extend(service.def.tags.iter().cloned());
    }
    for tags in names.values_mut() {
        tags.sort();
        tags.dedup();
    }
    names
}

/// The body of `/v1/agent/services`: the services registered through this agent (not
/// Consul's own), keyed by ID.
pub fn agent_services(store: &Store, node: &NodeInfo) -> BTreeMap<String, AgentServiceJson> {
    store
        .services()
        .map(|service| {
            let def = &service.def;
            let json = AgentServiceJson {
                id: def.id.clone(),
                service: def.name.clone(),
                tags: def.tags.clone(),
                meta: def.meta.clone(),
                port: def.port,
                address: def.address.clone(),
                tagged_addresses: tagged(&def.tagged_addresses),
                weights: weights(def.weights),
                enable_tag_override: def.enable_tag_override,
                datacenter: node.datacenter.clone(),
            };
            (def.id.clone(), json)
        })
        .collect()
}
