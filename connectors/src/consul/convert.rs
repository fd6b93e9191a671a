//! Turns Consul's answers into Switchboard's model: the entries of
//! `/v1/health/service/{name}` into [`Instance`]s, and the service list of
//! `/v1/catalog/services` into the names worth watching. Pure functions, unit-tested
//! here without a Consul.
//!
//! Health follows Consul's own reading of an entry's checks (the node's included): any
//! critical check makes the instance unhealthy; warnings keep it healthy but flagged
//! (`metadata["consul.health"] = "warning"`) and weighted by `Weights.Warning`, as Consul's
//! DNS does; maintenance mode (Consul's `_service_maintenance:`/`_node_maintenance`
//! checks) shows as status `maintenance`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Deserialize;

use super::config::ConsulConfig;
use crate::{Instance, ServiceKey, SourceCommon, Status};

/// Consul registers itself as this service (its servers, port 8300): not an application.
const CONSUL_ITSELF: &str = "consul";
/// Consul's weights are relative integers with a default of 1; Switchboard's default is
/// 100 (Nacos's 1.0 becomes 100 too), so a Consul weight is scaled by this to merge
/// fairly with other sources' instances.
pub(super) const WEIGHT_SCALE: u32 = 100;
/// Switchboard's weights are 0..=10000.
const MAX_WEIGHT: u32 = 10_000;

fn scaled(consul_weight: u32) -> u32 {
    consul_weight.saturating_mul(WEIGHT_SCALE).min(MAX_WEIGHT)
}

/// One element of `/v1/health/service/{name}`; only the fields Switchboard reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Entry {
    #[serde(default)]
    node: Option<Node>,
    service: Service,
    #[serde(default)]
    checks: Option<Vec<Check>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Node {
    #[serde(default)]
    node: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    datacenter: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Service {
    #[serde(rename = "ID")]
    id: String,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    address: String,
    #[serde(default)]
    meta: Option<BTreeMap<String, String>>,
    #[serde(default)]
    port: i64,
    #[serde(default)]
    weights: Option<Weights>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Weights {
    #[serde(default = "one")]
    passing: u32,
    #[serde(default = "one")]
    warning: u32,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Check {
    #[serde(rename = "CheckID", default)]
    check_id: String,
    #[serde(default)]
    status: String,
}

/// The `/v1/catalog/services` body: name to the union of its instances' tags.
pub(super) type Catalog = BTreeMap<String, Option<Vec<String>>>;

/// One service's instances, and the entries that could not be used.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Converted {
    /// Sorted by id, so two answers compare equal when nothing changed.
    pub instances: Vec<Instance>,
    /// `(entry, why)` for entries skipped (no address, no port).
    pub skipped: Vec<(String, String)>,
}

/// Converts the answers of one source.
#[derive(Clone, Debug)]
pub(super) struct Converter {
    namespace: String,
    group: String,
    datacenter: Option<String>,
    tag_filter: Vec<String>,
}

impl Converter {
    pub fn new(common: &SourceCommon, config: &ConsulConfig) -> Converter {
        Converter {
            namespace: common.placed_namespace().to_owned(),
            group: common.placed_group().to_owned(),
            datacenter: config.datacenter.clone(),
            tag_filter: config.tag_filter.clone(),
        }
    }

    pub fn service_key(&self, name: &str) -> ServiceKey {
        ServiceKey::new(self.namespace.clone(), self.group.clone(), name)
    }

    /// The services worth a watcher: not Consul itself, and (with a tag filter) only those
    /// whose instances carry every filtered tag between them.
    pub fn watched(&self, catalog: &Catalog) -> BTreeSet<String> {
        let wanted = catalog.iter().filter(|(name, tags)| {
            let tags = tags.as_deref().unwrap_or_default();
            name.as_str() != CONSUL_ITSELF && self.tag_filter.iter().all(|t| tags.contains(t))
        });
        wanted.map(|(name, _)| name.clone()).collect()
    }

    /// The instances of service `name` from its health entries.
    pub fn convert(&self, name: &str, entries: Vec<Entry>) -> Converted {
        let mut per_id: HashMap<&str, usize> = HashMap::new();
        for entry in &entries {
            *per_id.entry(entry.service.id.as_str()).or_default() += 1;
        }
        // IDs are unique per agent only: `web` on two nodes is two instances.
        let shared: BTreeSet<String> = per_id
            .into_iter()
            .filter(|&(_, count)| count > 1)
            .map(|(id, _)| id.to_owned())
            .collect();
        let mut converted = Converted::default();
        for entry in entries {
            let node = entry.node.unwrap_or_default();
            let id = if shared.contains(&entry.service.id) {
                format!("{}@{}", entry.service.id, node.node)
            } else {
                entry.service.id.clone()
            };
            match self.instance(name, id.clone(), node, entry.service, entry.checks) {
                Ok(Some(instance)) => converted.instances.push(instance),
                Ok(None) => {}
                Err(why) => converted.skipped.push((format!("{name}/{id}"), why)),
            }
        }
        converted.instances.sort_by(|a, b| a.id.cmp(&b.id));
        converted
    }

    /// `Ok(None)`: filtered out by `tag_filter`.
    fn instance(
        &self,
        name: &str,
        id: String,
        node: Node,
        service: Service,
        checks: Option<Vec<Check>>,
    ) -> Result<Option<Instance>, String> {
        let tags = service.tags.unwrap_or_default();
        if !self.tag_filter.iter().all(|t| tags.contains(t)) {
            return Ok(None);
        }
        let host = if service.address.is_empty() {
            node.address
        } else {
            service.address
        };
        if host.is_empty() {
            return Err("neither Service.Address nor Node.Address is set".to_owned());
        }
        let port = match u16::try_from(service.port) {
            Ok(port) if port > 0 => port,
            _ => return Err(format!("port {} is not 1-65535", service.port)),
        };
        let health = Health::of(checks.as_deref().unwrap_or_default());
        let weights = service.weights.unwrap_or(Weights {
            passing: 1,
            warning: 1,
        });
        let mut metadata = service.meta.unwrap_or_default();
        let datacenter = match &self.datacenter {
            Some(dc) if node.datacenter.is_empty() => dc.clone(),
            _ => node.datacenter,
        };
        if !datacenter.is_empty() {
            metadata.insert("consul.datacenter".to_owned(), datacenter);
        }
        metadata.insert("consul.node".to_owned(), node.node);
        let mut instance = Instance::new(id, self.service_key(name), host, port);
        instance.weight = scaled(weights.passing);
        match health {
            Health::Passing => {}
            Health::Warning => {
                metadata.insert("consul.health".to_owned(), "warning".to_owned());
                instance.weight = scaled(weights.warning);
            }
            Health::Critical => instance.healthy = false,
            Health::Maintenance => {
                instance.healthy = false;
                instance.status = Status::Maintenance;
            }
        }
        instance.version = metadata.get("version").cloned();
        if let Some(protocol) = metadata.get("protocol") {
            instance.protocol = protocol.clone();
        }
        instance.tags = tags;
        instance.metadata = metadata;
        Ok(Some(instance))
    }
}

/// An entry's health, worst check first.
#[derive(Debug, PartialEq)]
enum Health {
    Passing,
    Warning,
    Critical,
    Maintenance,
}

impl Health {
    fn of(checks: &[Check]) -> Health {
        let maintenance = checks.iter().any(|c| {
            c.check_id == "_node_maintenance" || c.check_id.starts_with("_service_maintenance:")
        });
        if maintenance {
            Health::Maintenance
        } else if checks
            .iter()
            .any(|c| c.status != "passing" && c.status != "warning")
        {
            Health::Critical
        } else if checks.iter().any(|c| c.status == "warning") {
            Health::Warning
        } else {
            Health::Passing
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn converter(tag_filter: &[&str]) -> Converter {
        let common: SourceCommon =
            serde_json::from_value(json!({ "id": "consul-main", "namespace": "prod" })).unwrap();
        let mut config = ConsulConfig::new(["http://127.0.0.1:8500"]);
        config.datacenter = Some("dc9".into());
        config.tag_filter = tag_filter.iter().map(|t| (*t).to_owned()).collect();
        Converter::new(&common, &config)
    }

    /// A health entry as Consul writes it, with the node's serfHealth check.
    fn entry(id: &str, node: &str, address: &str, port: i64, statuses: &[&str]) -> Value {
        let mut checks = vec![json!({ "CheckID": "serfHealth", "Status": "passing" })];
        for (n, status) in statuses.iter().enumerate() {
            checks.push(json!({ "CheckID": format!("service:{id}:{n}"), "Status": status }));
        }
        json!({
            "Node": { "ID": "x", "Node": node, "Address": "10.1.0.1", "Datacenter": "dc1" },
            "Service": {
                "ID": id, "Service": "web", "Tags": ["v1", "blue"], "Address": address,
                "Meta": { "version": "1.2.0" }, "Port": port,
                "Weights": { "Passing": 10, "Warning": 1 },
            },
            "Checks": checks,
        })
    }

    fn convert(converter: &Converter, entries: Vec<Value>) -> Converted {
        let entries: Vec<Entry> = serde_json::from_value(Value::Array(entries)).unwrap();
        converter.convert("web", entries)
    }

    #[test]
    fn maps_every_field() {
        let converted = convert(
            &converter(&[]),
            vec![entry("web-1", "n1", "10.0.0.5", 80, &[])],
        );
        let [instance] = converted.instances.as_slice() else {
            panic!("{converted:?}")
        };
        assert_eq!(instance.id, "web-1");
        assert_eq!(instance.service, ServiceKey::new("prod", "DEFAULT", "web"));
        assert_eq!(instance.address(), "10.0.0.5:80");
        assert_eq!(instance.tags, ["v1", "blue"]);
        assert_eq!(
            instance.weight, 1000,
            "Consul's 10, scaled to Switchboard's"
        );
        assert!(instance.healthy);
        assert_eq!(instance.status, Status::Active);
        assert_eq!(instance.version.as_deref(), Some("1.2.0"));
        assert_eq!(instance.metadata["consul.node"], "n1");
        assert_eq!(instance.metadata["consul.datacenter"], "dc1");
        assert_eq!(instance.metadata["version"], "1.2.0");
        assert!(!instance.metadata.contains_key("consul.health"));
    }

    #[test]
    fn empty_service_address_falls_back_to_the_node() {
        let converted = convert(&converter(&[]), vec![entry("web-1", "n1", "", 80, &[])]);
        assert_eq!(converted.instances[0].host, "10.1.0.1");
    }

    #[test]
    fn health_follows_the_worst_check() {
        let cases: [(&[&str], bool, Option<&str>, u32); 4] = [
            (&["passing", "passing"], true, None, 1000),
            (&["passing", "warning"], true, Some("warning"), 100),
            (&["warning", "critical"], false, None, 1000),
            (&["mystery"], false, None, 1000),
        ];
        for (statuses, healthy, flag, weight) in cases {
            let converted = convert(&converter(&[]), vec![entry("w", "n1", "h", 1, statuses)]);
            let instance = &converted.instances[0];
            assert_eq!(instance.healthy, healthy, "{statuses:?}");
            assert_eq!(
                instance.metadata.get("consul.health").map(String::as_str),
                flag
            );
            assert_eq!(instance.weight, weight, "{statuses:?}");
        }
    }

    #[test]
    fn maintenance_mode_is_a_status() {
        let mut value = entry("w", "n1", "h", 1, &[]);
        value["Checks"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "CheckID": "_service_maintenance:w", "Status": "critical" }));
        let converted = convert(&converter(&[]), vec![value]);
        assert_eq!(converted.instances[0].status, Status::Maintenance);
        assert!(!converted.instances[0].healthy);
    }

    #[test]
    fn ids_shared_across_nodes_are_told_apart() {
        let converted = convert(
            &converter(&[]),
            vec![
                entry("web", "n1", "10.0.0.1", 80, &[]),
                entry("web", "n2", "10.0.0.2", 80, &[]),
            ],
        );
        let ids: Vec<&str> = converted.instances.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["web@n1", "web@n2"]);
    }

    #[test]
    fn unusable_entries_are_skipped_with_a_reason() {
        let mut no_address = entry("a", "n1", "", 80, &[]);
        no_address["Node"]["Address"] = json!("");
        let entries = vec![
            no_address,
            entry("b", "n1", "h", 0, &[]),
            entry("c", "n1", "h", 70000, &[]),
        ];
        let converted = convert(&converter(&[]), entries);
        assert!(converted.instances.is_empty());
        let reasons: Vec<&str> = converted
            .skipped
            .iter()
            .map(|(_, why)| why.as_str())
            .collect();
        assert!(reasons[0].contains("Address"), "{reasons:?}");
        assert!(reasons[1].contains("port 0") && reasons[2].contains("port 70000"));
        assert_eq!(converted.skipped[0].0, "web/a");
    }

    #[test]
    fn tag_filter_applies_to_services_and_instances() {
        let filtered = converter(&["blue"]);
        let catalog: Catalog = serde_json::from_value(json!({
            "consul": [], "web": ["v1", "blue"], "db": ["v1"], "cache": null,
        }))
        .unwrap();
        assert_eq!(
            filtered.watched(&catalog),
            BTreeSet::from(["web".to_owned()])
        );
        let all: Vec<String> = converter(&[]).watched(&catalog).into_iter().collect();
        assert_eq!(all, ["cache", "db", "web"]);
        let mut green = entry("g", "n1", "h", 1, &[]);
        green["Service"]["Tags"] = json!(["v1", "green"]);
        let converted = convert(&filtered, vec![green, entry("b", "n1", "h", 2, &[])]);
        let ids: Vec<&str> = converted.instances.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["b"]);
    }
}
