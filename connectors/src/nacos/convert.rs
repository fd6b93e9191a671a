//! Nacos's names and instances in Switchboard's model: which services are federated
//! (`groups`), where they are placed (namespace and group), and an SDK
//! `ServiceInstance` as an [`Instance`].

use std::collections::{BTreeMap, BTreeSet, HashSet};

use nacos_sdk::api::naming::ServiceInstance;

use super::config::NacosConfig;
use super::NacosService;
use crate::{Instance, ServiceKey, SourceCommon, Status};

/// Nacos's weight 1.0 (its default) is Switchboard's default 100.
const WEIGHT_SCALE: f64 = 100.0;
const MAX_WEIGHT: f64 = 10_000.0;

/// Turns one source's Nacos data into instances; cheap to clone.
#[derive(Clone, Debug)]
pub(super) struct Converter {
    /// Federated groups; empty: all.
    groups: BTreeSet<String>,
    namespace: String,
    place_groups: BTreeMap<String, String>,
    /// Where groups not in `place_groups` go; `None`: they keep their name.
    default_group: Option<String>,
}

/// One service's instances, and what was skipped: `(key, reason)`.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Converted {
    pub instances: Vec<Instance>,
    pub skipped: Vec<(String, String)>,
}

impl Converter {
    pub fn new(common: &SourceCommon, config: &NacosConfig) -> Converter {
        let namespace = config
            .place_namespace
            .clone()
            .unwrap_or_else(|| common.placed_namespace().to_owned());
        Converter {
            groups: config.groups.iter().cloned().collect(),
            namespace,
            place_groups: config.place_groups.clone(),
            default_group: common.group.clone(),
        }
    }

    /// The services of `list` this source federates.
    pub fn watched(&self, list: Vec<NacosService>) -> BTreeSet<NacosService> {
        list.into_iter()
            .filter(|service| self.groups.is_empty() || self.groups.contains(&service.group))
            .collect()
    }

    /// Where a Nacos service is placed.
    pub fn service_key(&self, service: &NacosService) -> ServiceKey {
        let group = self
            .place_groups
            .get(&service.group)
            .or(self.default_group.as_ref())
            .unwrap_or(&service.group);
        ServiceKey::new(&self.namespace, group, &service.name)
    }

    /// The Nacos group a Switchboard group is written back to (sync-back): the one placed
    /// there, else the same name.
    pub fn nacos_group(&self, group: &str) -> String {
        let renamed = self.place_groups.iter().find(|(_, to)| *to == group);
        match renamed {
            Some((from, _)) => from.clone(),
            None => group.to_owned(),
        }
    }

    pub fn convert(&self, service: &NacosService, hosts: Vec<ServiceInstance>) -> Converted {
        let key = self.service_key(service);
        let mut converted = Converted::default();
        let mut ids = HashSet::new();
        for host in hosts {
            match instance(&key, host) {
                Ok(instance) if ids.insert(instance.id.clone()) => {
                    converted.instances.push(instance)
                }
                Ok(instance) => converted.skipped.push((
                    format!("{}/{}", service.name, instance.id),
                    "instance id reported twice".to_owned(),
                )),
                Err((id, reason)) => converted
                    .skipped
                    .push((format!("{}/{id}", service.name), reason)),
            }
        }
        converted
    }
}

/// One SDK instance; an unusable one is `Err((its id, why))`.
fn instance(key: &ServiceKey, host: ServiceInstance) -> Result<Instance, (String, String)> {
    let cluster = host
        .cluster_name
        .clone()
        .unwrap_or_else(|| "DEFAULT".to_owned());
    let id = match &host.instance_id {
        Some(id) if !id.is_empty() => id.clone(),
        _ => format!("{}#{}#{cluster}", host.ip, host.port),
    };
    let port = match u16::try_from(host.port) {
        Ok(port) if port > 0 => port,
        _ => return Err((id, format!("port {} is not 1-65535", host.port))),
    };
    if host.ip.is_empty() {
        return Err((id, "no ip".to_owned()));
    }
    let mut instance = Instance::new(id, key.clone(), host.ip, port);
    instance.weight = weight(host.weight);
    instance.healthy = host.healthy;
    if !host.enabled {
        instance.status = Status::Inactive;
    }
    instance.version = host.metadata.get("version").cloned();
    instance.metadata = host.metadata.into_iter().collect();
    instance
        .metadata
        .insert("nacos.cluster".to_owned(), cluster);
    let ephemeral = if host.ephemeral { "true" } else { "false" };
    instance
        .metadata
        .insert("nacos.ephemeral".to_owned(), ephemeral.to_owned());
    Ok(instance)
}

/// Nacos's float weight (0.0-10000.0, default 1.0) ×100, rounded and capped.
fn weight(nacos: f64) -> u32 {
    if nacos.is_nan() || nacos <= 0.0 {
        return 0;
    }
    (nacos * WEIGHT_SCALE).round().min(MAX_WEIGHT) as u32
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn converter(toml_extra: serde_json::Value, group: Option<&str>) -> Converter {
        let mut config = NacosConfig::new(["http://127.0.0.1:8848"]);
        if let Some(groups) = toml_extra.get("groups") {
            config.groups = serde_json::from_value(groups.clone()).unwrap();
        }
        if let Some(place) = toml_extra.get("place_groups") {
            config.place_groups = serde_json::from_value(place.clone()).unwrap();
        }
        let common: SourceCommon = serde_json::from_value(serde_json::json!({
            "id": "nacos",
            "namespace": "dev",
            "group": group,
        }))
        .unwrap();
        Converter::new(&common, &config)
    }

    fn service(group: &str, name: &str) -> NacosService {
        NacosService {
            group: group.to_owned(),
            name: name.to_owned(),
        }
    }

    fn host(ip: &str, port: i32) -> ServiceInstance {
        ServiceInstance {
            ip: ip.to_owned(),
            port,
            ..ServiceInstance::default()
        }
    }

    #[test]
    fn maps_every_field() {
        let converter = converter(serde_json::json!({}), None);
        let mut nacos = host("10.0.0.1", 8080);
        nacos.instance_id = Some("10.0.0.1#8080#east#DEFAULT_GROUP@@pay".to_owned());
        nacos.weight = 2.5;
        nacos.healthy = false;
        nacos.enabled = false;
        nacos.ephemeral = false;
        nacos.cluster_name = Some("east".to_owned());
        nacos.metadata = HashMap::from([("version".to_owned(), "1.2".to_owned())]);
        let converted = converter.convert(&service("DEFAULT_GROUP", "pay"), vec![nacos]);
        let instance = &converted.instances[0];
        assert_eq!(instance.id, "10.0.0.1#8080#east#DEFAULT_GROUP@@pay");
        assert_eq!(
            instance.service,
            ServiceKey::new("dev", "DEFAULT_GROUP", "pay")
        );
        assert_eq!((instance.host.as_str(), instance.port), ("10.0.0.1", 8080));
        assert_eq!(instance.weight, 250);
        assert!(!instance.healthy);
        assert_eq!(instance.status, Status::Inactive);
        assert_eq!(instance.version.as_deref(), Some("1.2"));
        assert_eq!(instance.metadata["nacos.cluster"], "east");
        assert_eq!(instance.metadata["nacos.ephemeral"], "false");
        assert_eq!(instance.metadata["version"], "1.2");
    }

    #[test]
    fn defaults_ids_and_skips_what_cannot_be_served() {
        let converter = converter(serde_json::json!({}), None);
        let hosts = vec![
            host("10.0.0.1", 80),
            host("10.0.0.1", 80),
            host("10.0.0.2", 0),
            host("", 81),
        ];
        let converted = converter.convert(&service("G", "s"), hosts);
        assert_eq!(converted.instances.len(), 1);
        assert_eq!(converted.instances[0].id, "10.0.0.1#80#DEFAULT");
        assert_eq!(converted.instances[0].weight, 100);
        assert_eq!(converted.instances[0].status, Status::Active);
        let reasons: Vec<&str> = converted.skipped.iter().map(|s| s.1.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "instance id reported twice",
                "port 0 is not 1-65535",
                "no ip"
            ]
        );
    }

    #[test]
    fn weights_scale_round_and_cap() {
        assert_eq!(weight(1.0), 100);
        assert_eq!(weight(0.015), 2);
        assert_eq!(weight(0.0), 0);
        assert_eq!(weight(-1.0), 0);
        assert_eq!(weight(f64::NAN), 0);
        assert_eq!(weight(1e9), 10_000);
    }

    #[test]
    fn groups_filter_and_placement() {
        let converter = converter(
            serde_json::json!({
                "groups": ["A", "B"],
                "place_groups": { "A": "alpha" },
            }),
            None,
        );
        let list = vec![service("A", "x"), service("B", "y"), service("C", "z")];
        let watched: Vec<_> = converter.watched(list).into_iter().collect();
        assert_eq!(watched, [service("A", "x"), service("B", "y")]);
        assert_eq!(
            converter.service_key(&service("A", "x")),
            ServiceKey::new("dev", "alpha", "x")
        );
        assert_eq!(converter.service_key(&service("B", "y")).group, "B");
        assert_eq!(converter.nacos_group("alpha"), "A");
        assert_eq!(converter.nacos_group("B"), "B");

        let everything_in_one = converter_with_group("all");
        assert_eq!(
            everything_in_one.service_key(&service("B", "y")).group,
            "all"
        );
    }

    fn converter_with_group(group: &str) -> Converter {
        converter(serde_json::json!({}), Some(group))
    }
}
