//! Nacos's names and instances in Switchboard's model: which services are federated
//! (`groups`), where they are placed (namespace and group) and which Nacos group a
//! Switchboard group is written back to, and an SDK `ServiceInstance` as an [`Instance`].
//!
//! Nacos's default group `DEFAULT_GROUP` is Switchboard's default group `DEFAULT`, so a
//! service registered in Nacos the default way meets the same service registered
//! anywhere else the default way. Placement and write-back are one mapping read both
//! ways: a copy written into a Nacos group is read back into the Switchboard group it
//! was written for, never into another (which would serve it twice).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use nacos_sdk::api::naming::ServiceInstance;

use super::config::NacosConfig;
use super::NacosService;
use crate::{ConnectorError, Instance, ServiceKey, SourceCommon, Status, DEFAULT_GROUP};

/// The group Nacos puts a service in when its client names none.
const NACOS_DEFAULT_GROUP: &str = "DEFAULT_GROUP";

/// Nacos's weight 1.0 (its default) is Switchboard's default 100.
const WEIGHT_SCALE: f64 = 100.0;
const MAX_WEIGHT: f64 = 10_000.0;

/// Turns one source's Nacos data into instances; cheap to clone.
#[derive(Clone, Debug)]
pub(super) struct Converter {
    /// Federated groups; empty: all.
    groups: BTreeSet<String>,
    namespace: String,
    /// `place_groups` as configured, plus `DEFAULT_GROUP` → `DEFAULT` unless configured
    /// otherwise (or a common `group` other than `DEFAULT` takes every group).
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
        let mut place_groups = config.place_groups.clone();
        // A common `group` gathers every group not listed; when it is `DEFAULT` the entry
        // changes nothing on reading but makes `DEFAULT` write back to `DEFAULT_GROUP`.
        if common
            .group
            .as_deref()
            .is_none_or(|group| group == DEFAULT_GROUP)
        {
            place_groups
                .entry(NACOS_DEFAULT_GROUP.to_owned())
                .or_insert_with(|| DEFAULT_GROUP.to_owned());
        }
        Converter {
            groups: config.groups.iter().cloned().collect(),
            namespace,
            place_groups,
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
    /// there (`DEFAULT_GROUP` first when several are, then the first by name), else the
    /// same name. A Nacos group of that name placed elsewhere (by default, `DEFAULT_GROUP`
    /// itself) cannot take it: the copy would come back in the other group and be served
    /// twice, so that is a [`ConnectorError::Config`] naming the fix.
    pub fn nacos_group(&self, group: &str) -> Result<String, ConnectorError> {
        let mut placed_here = (self.place_groups.iter())
            .filter(|(_, to)| *to == group)
            .map(|(from, _)| from);
        let preferred = placed_here
            .clone()
            .find(|from| *from == NACOS_DEFAULT_GROUP);
        if let Some(from) = preferred.or_else(|| placed_here.next()) {
            return Ok(from.clone());
        }
        match self.place_groups.get(group) {
            Some(elsewhere) => Err(ConnectorError::Config(format!(
                "Switchboard group `{group}` has no Nacos group to be written to: Nacos \
                 group `{group}` is read as `{elsewhere}`; place a Nacos group in \
                 `{group}` with `place_groups` (`{{ {group} = \"{group}\" }}` keeps the name)"
            ))),
            None => Ok(group.to_owned()),
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
        // Nacos's default group is Switchboard's.
        assert_eq!(instance.service, ServiceKey::new("dev", "DEFAULT", "pay"));
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
        assert_eq!(converter.nacos_group("alpha").unwrap(), "A");
        assert_eq!(converter.nacos_group("B").unwrap(), "B");

        let everything_in_one = converter_with_group("all");
        assert_eq!(
            everything_in_one.service_key(&service("B", "y")).group,
            "all"
        );
    }

    fn converter_with_group(group: &str) -> Converter {
        converter(serde_json::json!({}), Some(group))
    }

    fn placing(place_groups: serde_json::Value) -> Converter {
        converter(serde_json::json!({ "place_groups": place_groups }), None)
    }

    /// The Switchboard group Nacos group `group` is read into.
    fn read(converter: &Converter, group: &str) -> String {
        converter.service_key(&service(group, "orders")).group
    }

    /// Every group in `groups` that is written somewhere is read back from there into
    /// itself, so a copy never shows up a second time in another group.
    fn assert_round_trips(converter: &Converter, groups: &[&str]) {
        for group in groups {
            if let Ok(nacos) = converter.nacos_group(group) {
                assert_eq!(read(converter, &nacos), *group, "written to {nacos}");
            }
        }
    }

    const GROUPS: [&str; 5] = ["DEFAULT", "DEFAULT_GROUP", "payments", "X", "edge"];

    #[test]
    fn nacos_default_group_is_switchboard_default_group_both_ways() {
        let converter = converter(serde_json::json!({}), None);
        assert_eq!(
            converter.service_key(&service("DEFAULT_GROUP", "orders")),
            ServiceKey::new("dev", "DEFAULT", "orders")
        );
        assert_eq!(converter.nacos_group("DEFAULT").unwrap(), "DEFAULT_GROUP");
        // Every other group keeps its name, both ways.
        assert_eq!(read(&converter, "payments"), "payments");
        assert_eq!(converter.nacos_group("payments").unwrap(), "payments");
        assert_round_trips(&converter, &GROUPS);
    }

    #[test]
    fn a_nacos_group_named_default_is_read_but_never_written() {
        let converter = converter(serde_json::json!({}), None);
        // Read like `DEFAULT_GROUP` (the service holds both groups' instances)...
        assert_eq!(read(&converter, "DEFAULT"), "DEFAULT");
        // ...and `DEFAULT` is written to `DEFAULT_GROUP` only.
        assert_eq!(converter.nacos_group("DEFAULT").unwrap(), "DEFAULT_GROUP");
        // A Switchboard group `DEFAULT_GROUP` has no Nacos group that reads back into
        // it: refused, not written where it would come back as `DEFAULT`.
        let err = converter.nacos_group("DEFAULT_GROUP").unwrap_err();
        assert!(!err.is_retryable(), "{err}");
        let message = err.to_string();
        assert!(message.contains("`place_groups`"), "{message}");
        assert!(message.contains("read as `DEFAULT`"), "{message}");
    }

    #[test]
    fn place_groups_still_overrides_the_default_group() {
        let converter = placing(serde_json::json!({ "DEFAULT_GROUP": "X" }));
        assert_eq!(read(&converter, "DEFAULT_GROUP"), "X");
        assert_eq!(converter.nacos_group("X").unwrap(), "DEFAULT_GROUP");
        // `DEFAULT` is no longer taken by `DEFAULT_GROUP`: it keeps its name.
        assert_eq!(read(&converter, "DEFAULT"), "DEFAULT");
        assert_eq!(converter.nacos_group("DEFAULT").unwrap(), "DEFAULT");
        assert!(converter.nacos_group("DEFAULT_GROUP").is_err());
        assert_round_trips(&converter, &GROUPS);
    }

    #[test]
    fn the_old_placement_is_one_entry_away() {
        let converter = placing(serde_json::json!({ "DEFAULT_GROUP": "DEFAULT_GROUP" }));
        for group in GROUPS {
            assert_eq!(read(&converter, group), group);
            assert_eq!(converter.nacos_group(group).unwrap(), group);
        }
    }

    #[test]
    fn several_groups_in_the_default_one_write_back_to_default_group() {
        let converter = placing(serde_json::json!({ "A": "DEFAULT" }));
        assert_eq!(read(&converter, "A"), "DEFAULT");
        assert_eq!(read(&converter, "DEFAULT_GROUP"), "DEFAULT");
        assert_eq!(converter.nacos_group("DEFAULT").unwrap(), "DEFAULT_GROUP");
        assert!(converter.nacos_group("A").is_err(), "read as DEFAULT");
        assert_round_trips(&converter, &GROUPS);

        let elsewhere = placing(serde_json::json!({ "A": "DEFAULT", "DEFAULT_GROUP": "Z" }));
        assert_eq!(elsewhere.nacos_group("DEFAULT").unwrap(), "A");
        assert_round_trips(&elsewhere, &GROUPS);
    }

    #[test]
    fn the_common_group_gathers_the_default_group_too() {
        let edge = converter_with_group("edge");
        assert_eq!(read(&edge, "DEFAULT_GROUP"), "edge");
        assert_eq!(edge.nacos_group("edge").unwrap(), "edge");
        // Gathered into `DEFAULT`: written back to Nacos's default group.
        let default = converter_with_group("DEFAULT");
        assert_eq!(read(&default, "DEFAULT_GROUP"), "DEFAULT");
        assert_eq!(read(&default, "payments"), "DEFAULT");
        assert_eq!(default.nacos_group("DEFAULT").unwrap(), "DEFAULT_GROUP");
        assert_round_trips(&default, &["DEFAULT"]);
    }
}
