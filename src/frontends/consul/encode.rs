//! Merged instances in Consul's shapes: a `/v1/health/service` entry (`{Node, Service,
//! Checks}`) and a `/v1/catalog/service` entry (a `ServiceNode`), encoded once per chunk
//! into the catalog's slots (see [`crate::catalog::formats`]).
//!
//! How Switchboard maps onto Consul (documented in `docs/consul.md`):
//! - Node: an instance's host is its node (name and address), except that an instance
//!   read from a Consul source keeps its Consul node's name (`consul.node` metadata).
//!   The node's ID is a UUID derived from its name, so it is stable.
//! - Service: the instance id is `ID`; the service name is `<group>@@<name>` outside the
//!   default group; metadata keys Consul would refuse are left out (and counted in
//!   `switchboard_consul_meta_dropped_total`); `switchboard-sources` lists the sources
//!   reporting it. `Weights.Passing` is the instance's weight.
//! - Checks: every node's `serfHealth`; the instance's own checks (native checks that
//!   Switchboard runs, with their latest output); and `switchboard:<id>`, the instance's
//!   status: passing when active and healthy, or when stale (fail static: the check's
//!   output says since when its sources are unreachable), critical when inactive,
//!   offline, or reported unhealthy by its source. Maintenance adds Consul's
//!   `_service_maintenance:<id>` check.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::IpAddr;

use prometheus_client::metrics::counter::Counter;
use serde::Serialize;
use switchboard_connectors::{CheckStatus, Instance, ServiceKey, Status};

use super::consul_service_name;
use crate::catalog::formats::InstanceEncoder;
use crate::catalog::InstanceView;
use crate::registry::{maintenance_check_id, DEFAULT_MAINTENANCE_REASON};

/// Metadata key a Consul source keeps its node's name in.
pub const NODE_META_KEY: &str = "consul.node";
/// The service metadata key listing the sources that report an instance.
pub const SOURCES_META_KEY: &str = "switchboard-sources";

/// The per-entry indexes Consul shows. Switchboard keeps no index per entry; clients use
/// `X-Consul-Index`.
const ENTRY_INDEX: u64 = 1;

/// Encodes instances for the Consul door of one Switchboard.
pub struct ConsulShapes {
    pub datacenter: String,
    /// Metadata keys left out because Consul would refuse them.
    pub dropped_meta: Counter,
}

impl ConsulShapes {
    pub fn new(datacenter: &str, dropped_meta: Counter) -> ConsulShapes {
        ConsulShapes {
            datacenter: datacenter.to_owned(),
            dropped_meta,
        }
    }
}

/// The node an instance is shown on.
pub fn node_name(instance: &Instance) -> &str {
    (instance.metadata.get(NODE_META_KEY))
        .map(String::as_str)
        .filter(|node| !node.is_empty())
        .unwrap_or(&instance.host)
}

/// A stable UUID for a node name.
pub fn node_id(node: &str) -> String {
    let high = crate::fnv::hash(&[b"node:", node.as_bytes()]);
    let low = crate::fnv::hash(&[b"id:", node.as_bytes()]);
    let hex = format!("{high:016x}{low:016x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Why Consul would refuse a metadata pair, in its words; `None` when it accepts it
/// (keys `^[a-zA-Z0-9_-]+$`, at most 128 bytes, not `consul-` prefixed; values at most
/// 512 bytes).
pub fn meta_refusal(key: &str, value: &str) -> Option<&'static str> {
    if key.is_empty() {
        Some("Key cannot be blank")
    } else if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        Some("Key contains invalid characters")
    } else if key.len() > 128 {
        Some("Key is too long (limit: 128 characters)")
    } else if key.starts_with("consul-") {
        Some("Key prefix 'consul-' is reserved for internal use")
    } else if value.len() > 512 {
        Some("Value is too long (limit: 512 characters)")
    } else {
        None
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Node<'a> {
    #[serde(rename = "ID")]
    id: &'a str,
    node: &'a str,
    address: &'a str,
    datacenter: &'a str,
    tagged_addresses: NodeAddresses<'a>,
    meta: BTreeMap<&'a str, &'a str>,
    create_index: u64,
    modify_index: u64,
}

#[derive(Serialize)]
struct NodeAddresses<'a> {
    lan: &'a str,
    wan: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Weights {
    passing: u32,
    warning: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct TaggedAddress<'a> {
    address: &'a str,
    port: u16,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Proxy {
    mode: &'static str,
    mesh_gateway: Empty,
    expose: Empty,
}

/// An empty JSON object.
#[derive(Serialize)]
pub struct Empty {}

const PROXY: Proxy = Proxy {
    mode: "",
    mesh_gateway: Empty {},
    expose: Empty {},
};

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Service<'a> {
    #[serde(rename = "ID")]
    id: &'a str,
    service: &'a str,
    tags: &'a [String],
    address: &'a str,
    tagged_addresses: BTreeMap<String, TaggedAddress<'a>>,
    meta: BTreeMap<&'a str, Cow<'a, str>>,
    port: u16,
    weights: Weights,
    enable_tag_override: bool,
    proxy: Proxy,
    connect: Empty,
    peer_name: &'static str,
    create_index: u64,
    modify_index: u64,
}

/// One health check in Consul's `HealthCheck` shape.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthCheck<'a> {
    pub node: &'a str,
    #[serde(rename = "CheckID")]
    pub check_id: String,
    pub name: &'a str,
    pub status: &'static str,
    pub notes: &'a str,
    pub output: String,
    #[serde(rename = "ServiceID")]
    pub service_id: &'a str,
    pub service_name: &'a str,
    pub service_tags: &'a [String],
    #[serde(rename = "Type")]
    pub kind: &'a str,
    pub interval: &'a str,
    pub timeout: &'a str,
    pub exposed_port: u16,
    pub definition: Empty,
    pub create_index: u64,
    pub modify_index: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct HealthEntry<'a> {
    node: Node<'a>,
    service: Service<'a>,
    checks: Vec<HealthCheck<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ServiceNode<'a> {
    #[serde(rename = "ID")]
    id: &'a str,
    node: &'a str,
    address: &'a str,
    datacenter: &'a str,
    tagged_addresses: NodeAddresses<'a>,
    node_meta: BTreeMap<&'a str, &'a str>,
    service_kind: &'static str,
    #[serde(rename = "ServiceID")]
    service_id: &'a str,
    service_name: &'a str,
    service_tags: &'a [String],
    service_address: &'a str,
    service_tagged_addresses: BTreeMap<String, TaggedAddress<'a>>,
    service_weights: Weights,
    service_meta: BTreeMap<&'a str, Cow<'a, str>>,
    service_port: u16,
    service_socket_path: &'static str,
    service_enable_tag_override: bool,
    service_proxy: Proxy,
    service_connect: Empty,
    service_locality: Option<()>,
    create_index: u64,
    modify_index: u64,
}

/// The parts both shapes share, computed once per instance.
struct Parts<'a> {
    node: &'a str,
    node_id: String,
    name: String,
    meta: BTreeMap<&'a str, Cow<'a, str>>,
    tagged: BTreeMap<String, TaggedAddress<'a>>,
}

impl ConsulShapes {
    fn parts<'a>(&self, view: &'a InstanceView) -> Parts<'a> {
        let i = &*view.instance;
        let node = node_name(i);
        let mut meta = BTreeMap::new();
        let mut dropped = 0;
        for (key, value) in &i.metadata {
            if key == NODE_META_KEY {
                continue;
            }
            if meta_refusal(key, value).is_none() && meta.len() < 63 {
                meta.insert(key.as_str(), Cow::Borrowed(value.as_str()));
            } else {
                dropped += 1;
            }
        }
        if dropped > 0 {
            self.dropped_meta.inc_by(dropped);
        }
        meta.insert(SOURCES_META_KEY, Cow::Owned(view.sources.join(",")));
        let mut tagged = BTreeMap::new();
        if let Ok(ip) = i.host.parse::<IpAddr>() {
            let family = if ip.is_ipv4() { "ipv4" } else { "ipv6" };
            for side in ["lan", "wan"] {
                let address = TaggedAddress {
                    address: &i.host,
                    port: i.port,
                };
                tagged.insert(format!("{side}_{family}"), address);
            }
        }
        Parts {
            node,
            node_id: node_id(node),
            name: consul_service_name(&i.service.group, &i.service.name),
            meta,
            tagged,
        }
    }

    fn weights(instance: &Instance) -> Weights {
        Weights {
            passing: instance.weight,
            warning: 1,
        }
    }

    fn node<'a>(&'a self, node: &'a str, node_id: &'a str) -> Node<'a> {
        Node {
            id: node_id,
            node,
            address: node,
            datacenter: &self.datacenter,
            tagged_addresses: NodeAddresses {
                lan: node,
                wan: node,
            },
            meta: BTreeMap::new(),
            create_index: ENTRY_INDEX,
            modify_index: ENTRY_INDEX,
        }
    }
}

/// The status check's status and output for an instance.
pub fn status_check(view: &InstanceView) -> (CheckStatus, String) {
    let i = &*view.instance;
    let sources = view.sources.join(", ");
    if view.stale {
        let since = view
            .stale_since
            .map(|time| format!(" since {}", time.to_rfc3339()))
            .unwrap_or_default();
        return (
            CheckStatus::Passing,
            format!("Stale: every source reporting this instance ({sources}) has been unreachable{since}; serving its last known state"),
        );
    }
    match i.status {
        Status::Active if i.healthy || !i.checks.is_empty() => {
            (CheckStatus::Passing, format!("Active (sources: {sources})"))
        }
        Status::Active => (
            CheckStatus::Critical,
            format!("Reported unhealthy by its source (sources: {sources})"),
        ),
        Status::Inactive => (
            CheckStatus::Critical,
            "Inactive: registered but not taking traffic".to_owned(),
        ),
        Status::Maintenance => (CheckStatus::Critical, "In maintenance".to_owned()),
        Status::Offline => (
            CheckStatus::Critical,
            match i.offline_time {
                Some(time) => format!("Offline since {}", time.to_rfc3339()),
                None => "Offline".to_owned(),
            },
        ),
    }
}

/// Whether Consul's `?passing` keeps this instance: every check of it passing. A stale
/// instance stays (fail static).
pub fn passing(view: &InstanceView) -> bool {
    view.stale
        || (view.instance.status == Status::Active
            && view.instance.healthy
            && (view.instance.checks.iter()).all(|check| check.status == CheckStatus::Passing))
}

/// The checks Consul shows for an instance (node check first).
pub fn checks<'a>(
    view: &'a InstanceView,
    node: &'a str,
    service_name: &'a str,
) -> Vec<HealthCheck<'a>> {
    let i = &*view.instance;
    let check = |check_id: String, name: &'a str, status: CheckStatus, kind: &'a str| HealthCheck {
        node,
        check_id,
        name,
        status: status.as_str(),
        notes: "",
        output: String::new(),
        service_id: &i.id,
        service_name,
        service_tags: &i.tags,
        kind,
        interval: "",
        timeout: "",
        exposed_port: 0,
        definition: Empty {},
        create_index: ENTRY_INDEX,
        modify_index: ENTRY_INDEX,
    };
    let mut out = Vec::with_capacity(2 + i.checks.len());
    out.push(HealthCheck {
        service_id: "",
        service_name: "",
        service_tags: &[],
        output: "Agent alive and reachable".to_owned(),
        ..check(
            "serfHealth".to_owned(),
            "Serf Health Status",
            CheckStatus::Passing,
            "",
        )
    });
    let (status, output) = status_check(view);
    out.push(HealthCheck {
        output,
        ..check(
            format!("switchboard:{}", i.id),
            "Switchboard instance status",
            status,
            "",
        )
    });
    let maintenance = maintenance_check_id(&i.id);
    if i.status == Status::Maintenance && !i.checks.iter().any(|c| c.id == maintenance) {
        out.push(HealthCheck {
            notes: DEFAULT_MAINTENANCE_REASON,
            ..check(
                maintenance,
                "Service Maintenance Mode",
                CheckStatus::Critical,
                "maintenance",
            )
        });
    }
    for own in &i.checks {
        out.push(HealthCheck {
            notes: &own.notes,
            output: own.output.clone(),
            ..check(own.id.clone(), &own.name, own.status, &own.kind)
        });
    }
    out
}

/// An example instance with every optional part, so a filter's selectors can be
/// checked against the shape an encoder writes.
fn sample_view() -> InstanceView {
    let mut instance = Instance::new("id", ServiceKey::named("sample"), "10.0.0.1", 1);
    instance.tags = vec!["tag".into()];
    instance.metadata.insert("key".into(), "value".into());
    InstanceView::from_source(&instance, "sample")
}

/// `encoder`'s shape of an example instance, as JSON.
pub fn sample(encoder: &dyn InstanceEncoder) -> serde_json::Value {
    let mut out = Vec::new();
    encoder.encode(&sample_view(), &mut out);
    serde_json::from_slice(&out).expect("samples encode as JSON")
}

/// Consul's `HealthCheck` shape of an example check, as JSON.
pub fn sample_check() -> serde_json::Value {
    let view = sample_view();
    let checks = checks(&view, "node", "sample");
    serde_json::to_value(&checks[1]).expect("checks serialize")
}

/// The `/v1/health/service` shape.
pub struct HealthShape<'a>(pub &'a ConsulShapes);

impl InstanceEncoder for HealthShape<'_> {
    fn encode(&self, view: &InstanceView, out: &mut Vec<u8>) {
        let (shapes, i) = (self.0, &*view.instance);
        let parts = shapes.parts(view);
        let entry = HealthEntry {
            node: shapes.node(parts.node, &parts.node_id),
            service: Service {
                id: &i.id,
                service: &parts.name,
                tags: &i.tags,
                address: &i.host,
                tagged_addresses: parts.tagged,
                meta: parts.meta,
                port: i.port,
                weights: ConsulShapes::weights(i),
                enable_tag_override: false,
                proxy: PROXY,
                connect: Empty {},
                peer_name: "",
                create_index: ENTRY_INDEX,
                modify_index: ENTRY_INDEX,
            },
            checks: checks(view, parts.node, &parts.name),
        };
        serde_json::to_writer(out, &entry).expect("health entries serialize");
    }
}

/// The `/v1/catalog/service` shape.
pub struct CatalogShape<'a>(pub &'a ConsulShapes);

impl InstanceEncoder for CatalogShape<'_> {
    fn encode(&self, view: &InstanceView, out: &mut Vec<u8>) {
        let (shapes, i) = (self.0, &*view.instance);
        let parts = shapes.parts(view);
        let node = parts.node;
        let entry = ServiceNode {
            id: &parts.node_id,
            node,
            address: node,
            datacenter: &shapes.datacenter,
            tagged_addresses: NodeAddresses {
                lan: node,
                wan: node,
            },
            node_meta: BTreeMap::new(),
            service_kind: "",
            service_id: &i.id,
            service_name: &parts.name,
            service_tags: &i.tags,
            service_address: &i.host,
            service_tagged_addresses: parts.tagged,
            service_weights: ConsulShapes::weights(i),
            service_meta: parts.meta,
            service_port: i.port,
            service_socket_path: "",
            service_enable_tag_override: false,
            service_proxy: PROXY,
            service_connect: Empty {},
            service_locality: None,
            create_index: ENTRY_INDEX,
            modify_index: ENTRY_INDEX,
        };
        serde_json::to_writer(out, &entry).expect("catalog entries serialize");
    }
}

#[cfg(test)]
mod tests {
    use switchboard_connectors::Check;

    use super::*;

    fn shapes() -> ConsulShapes {
        ConsulShapes::new("dc1", Counter::default())
    }

    fn view(instance: Instance) -> InstanceView {
        InstanceView::from_source(&instance, "native")
    }

    fn health(view: &InstanceView) -> serde_json::Value {
        let shapes = shapes();
        let mut out = Vec::new();
        HealthShape(&shapes).encode(view, &mut out);
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn a_health_entry_has_consuls_fields() {
        let mut instance = Instance::new("web-1", ServiceKey::named("web"), "10.0.0.5", 8080);
        instance.tags = vec!["v1".into()];
        instance.metadata.insert("version".into(), "1.2".into());
        instance.metadata.insert("bad key".into(), "x".into());
        let shapes = shapes();
        let mut out = Vec::new();
        HealthShape(&shapes).encode(&view(instance), &mut out);
        let entry: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(entry["Node"]["Node"], "10.0.0.5");
        assert_eq!(entry["Node"]["Datacenter"], "dc1");
        assert_eq!(entry["Service"]["ID"], "web-1");
        assert_eq!(entry["Service"]["Service"], "web");
        assert_eq!(entry["Service"]["Port"], 8080);
        assert_eq!(entry["Service"]["Tags"][0], "v1");
        assert_eq!(entry["Service"]["Meta"]["version"], "1.2");
        assert_eq!(entry["Service"]["Meta"]["switchboard-sources"], "native");
        assert!(entry["Service"]["Meta"].get("bad key").is_none());
        assert_eq!(shapes.dropped_meta.get(), 1);
        assert_eq!(entry["Service"]["Weights"]["Passing"], 100);
        assert_eq!(
            entry["Service"]["TaggedAddresses"]["lan_ipv4"]["Port"],
            8080
        );
        assert_eq!(entry["Checks"][0]["CheckID"], "serfHealth");
        assert_eq!(entry["Checks"][1]["CheckID"], "switchboard:web-1");
        assert_eq!(entry["Checks"][1]["Status"], "passing");
    }

    #[test]
    fn statuses_map_onto_check_statuses() {
        let mut instance = Instance::new("i", ServiceKey::named("s"), "h", 1);
        instance.status = Status::Maintenance;
        instance.healthy = false;
        let entry = health(&view(instance.clone()));
        let statuses: Vec<_> = (entry["Checks"].as_array().unwrap().iter())
            .map(|c| {
                (
                    c["CheckID"].as_str().unwrap().to_owned(),
                    c["Status"].clone(),
                )
            })
            .collect();
        assert!(statuses.contains(&("_service_maintenance:i".into(), "critical".into())));
        assert!(!passing(&view(instance.clone())));
        instance.status = Status::Active;
        instance.healthy = true;
        instance.checks = vec![Check {
            id: "service:i".into(),
            name: "n".into(),
            kind: "http".into(),
            status: CheckStatus::Warning,
            output: "HTTP GET http://h:1/: 429 Too Many Requests Output: ".into(),
            notes: String::new(),
        }];
        let entry = health(&view(instance.clone()));
        assert_eq!(entry["Checks"][2]["Status"], "warning");
        assert_eq!(entry["Checks"][2]["Type"], "http");
        assert!(!passing(&view(instance)), "warning is not passing");
    }

    #[test]
    fn a_stale_instance_stays_passing_and_says_so() {
        let mut instance = Instance::new("i", ServiceKey::named("s"), "h", 1);
        instance.healthy = true;
        let mut stale = view(instance);
        stale.stale = true;
        assert!(passing(&stale));
        let entry = health(&stale);
        assert_eq!(entry["Checks"][1]["Status"], "passing");
        let output = entry["Checks"][1]["Output"].as_str().unwrap();
        assert!(output.starts_with("Stale"), "{output}");
    }

    #[test]
    fn node_ids_are_stable_uuids_and_consul_nodes_are_kept() {
        assert_eq!(node_id("a"), node_id("a"));
        assert_ne!(node_id("a"), node_id("b"));
        assert_eq!(node_id("a").len(), 36);
        let mut instance = Instance::new("i", ServiceKey::named("s"), "10.1.0.1", 1);
        instance
            .metadata
            .insert(NODE_META_KEY.into(), "consul-node-1".into());
        assert_eq!(node_name(&instance), "consul-node-1");
        let entry = health(&view(instance));
        assert!(entry["Service"]["Meta"].get(NODE_META_KEY).is_none());
    }
}
