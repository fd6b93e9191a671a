//! Writing instances into Nacos (a sync-back target). Persistent instances (the default)
//! go through the HTTP OpenAPI with `ephemeral=false`, so nothing has to keep them
//! alive; ephemeral ones (`ephemeral = true`) go through the SDK, whose gRPC connection
//! keeps them alive and re-registers them after it reconnects.
//!
//! Nacos names an instance by ip, port and cluster, Switchboard by id: every instance
//! written carries `switchboard.id` in its metadata, so a deregistration finds it even
//! after a restart of Switchboard. Metadata keys Switchboard adds on reading
//! (`nacos.*`) are not written back.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use nacos_sdk::api::naming::ServiceInstance;
use reqwest::Method;
use serde::Deserialize;
use tokio::sync::Mutex;

use super::client::{sdk_error, Client};
use super::config::NacosConfig;
use super::convert::Converter;
use super::http::{json, Http, Params};
use super::NacosService;
use crate::{ConnectorError, Instance, InstanceKey, RegistryWriter, Status};

/// The metadata key naming the Switchboard instance an entry was written for.
const ID_KEY: &str = "switchboard.id";
const INSTANCE_PATH: &str = "/nacos/v1/ns/instance";

pub(super) struct NacosWriter {
    ephemeral: bool,
    http: Arc<Http>,
    client: Arc<Client>,
    converter: Converter,
    /// Where each instance written by this process went, so it can be removed (or moved).
    written: Mutex<HashMap<InstanceKey, Entry>>,
}

/// One instance as Nacos identifies it.
#[derive(Clone, Debug, PartialEq)]
struct Entry {
    service: NacosService,
    ip: String,
    port: u16,
    cluster: String,
}

impl Entry {
    /// The parameters naming this persistent instance in the HTTP OpenAPI.
    fn params(&self) -> Params {
        vec![
            ("serviceName", self.service.name.clone()),
            ("groupName", self.service.group.clone()),
            ("ip", self.ip.clone()),
            ("port", self.port.to_string()),
            ("clusterName", self.cluster.clone()),
            ("ephemeral", "false".to_owned()),
        ]
    }
}

/// `GET /nacos/v1/ns/instance/list`, the fields needed to find our entries.
#[derive(Deserialize)]
struct InstanceList {
    #[serde(default)]
    hosts: Vec<ListedHost>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListedHost {
    ip: String,
    port: u16,
    #[serde(default)]
    cluster_name: Option<String>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

impl NacosWriter {
    pub fn new(
        config: &NacosConfig,
        http: Arc<Http>,
        client: Arc<Client>,
        converter: Converter,
    ) -> NacosWriter {
        NacosWriter {
            ephemeral: config.ephemeral,
            http,
            client,
            converter,
            written: Mutex::new(HashMap::new()),
        }
    }

    /// Where Nacos keeps `instance`: its service, endpoint and cluster; an error when its
    /// Switchboard group has no Nacos group to go to.
    fn entry_of(&self, instance: &Instance) -> Result<Entry, ConnectorError> {
        let service = NacosService {
            group: self.converter.nacos_group(&instance.service.group)?,
            name: instance.service.name.clone(),
        };
        Ok(Entry {
            service,
            ip: instance.host.clone(),
            port: instance.port,
            cluster: instance
                .metadata
                .get("nacos.cluster")
                .cloned()
                .unwrap_or_else(|| "DEFAULT".to_owned()),
        })
    }

    async fn remove(&self, entry: &Entry) -> Result<(), ConnectorError> {
        if self.ephemeral {
            let naming = self.client.naming().await?;
            let instance = ServiceInstance {
                ip: entry.ip.clone(),
                port: i32::from(entry.port),
                cluster_name: Some(entry.cluster.clone()),
                ephemeral: true,
                ..ServiceInstance::default()
            };
            let service = &entry.service;
            return naming
                .deregister_instance(service.name.clone(), Some(service.group.clone()), instance)
                .await
                .map_err(sdk_error);
        }
        let params = entry.params();
        self.http
            .call(Method::DELETE, INSTANCE_PATH, params)
            .await?;
        Ok(())
    }

    /// Entries in Nacos written for `key` (by any Switchboard process), found by their
    /// `switchboard.id`.
    async fn find(&self, key: &InstanceKey) -> Result<Vec<Entry>, ConnectorError> {
        // A group no copy is written into now may still hold one an earlier version
        // wrote under the group's own name; the lookup by id finds only ours.
        let group = (self.converter.nacos_group(&key.service.group))
            .unwrap_or_else(|_| key.service.group.clone());
        self.find_in(key, group).await
    }

    /// [`find`](Self::find) in Nacos group `group`.
    async fn find_in(
        &self,
        key: &InstanceKey,
        group: String,
    ) -> Result<Vec<Entry>, ConnectorError> {
        let service = NacosService {
            group,
            name: key.service.name.clone(),
        };
        let params: Params = vec![
            ("serviceName", service.name.clone()),
            ("groupName", service.group.clone()),
            ("healthyOnly", "false".to_owned()),
        ];
        let body = self
            .http
            .call(Method::GET, "/nacos/v1/ns/instance/list", params)
            .await;
        let list: InstanceList = match body {
            Ok(body) => json(&body)?,
            // Nacos answers 404/400 for a service it does not know: nothing to remove.
            Err(ConnectorError::Protocol(_)) => return Ok(Vec::new()),
            Err(err) => return Err(err),
        };
        let ours = list
            .hosts
            .into_iter()
            .filter(|host| host.metadata.get(ID_KEY) == Some(&key.id));
        Ok(ours
            .map(|host| Entry {
                service: service.clone(),
                ip: host.ip,
                port: host.port,
                cluster: host.cluster_name.unwrap_or_else(|| "DEFAULT".to_owned()),
            })
            .collect())
    }
}

/// What Nacos stores for `instance`: its metadata without Switchboard's `nacos.*`
/// additions, plus `switchboard.id` (and `version`).
fn metadata(instance: &Instance) -> BTreeMap<String, String> {
    let mut metadata: BTreeMap<String, String> = instance
        .metadata
        .iter()
        .filter(|(key, _)| !key.starts_with("nacos."))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    if let Some(version) = &instance.version {
        metadata.insert("version".to_owned(), version.clone());
    }
    metadata.insert(ID_KEY.to_owned(), instance.id.clone());
    metadata
}

/// Switchboard's weight (default 100) in Nacos's scale (default 1.0).
fn nacos_weight(weight: u32) -> f64 {
    f64::from(weight) / 100.0
}

#[async_trait]
impl RegistryWriter for NacosWriter {
    async fn register(&self, instance: &Instance) -> Result<(), ConnectorError> {
        let entry = self.entry_of(instance)?;
        let key = instance.key();
        let moved = self.written.lock().await.get(&key).cloned();
        if let Some(old) = moved.filter(|old| *old != entry) {
            self.remove(&old).await?;
        }
        let enabled = instance.status == Status::Active;
        let metadata = metadata(instance);
        if self.ephemeral {
            let naming = self.client.naming().await?;
            let nacos = ServiceInstance {
                ip: entry.ip.clone(),
                port: i32::from(entry.port),
                weight: nacos_weight(instance.weight),
                healthy: instance.healthy,
                enabled,
                ephemeral: true,
                cluster_name: Some(entry.cluster.clone()),
                metadata: metadata.into_iter().collect(),
                ..ServiceInstance::default()
            };
            let service = &entry.service;
            naming
                .register_instance(service.name.clone(), Some(service.group.clone()), nacos)
                .await
                .map_err(sdk_error)?;
        } else {
            let metadata = serde_json::to_string(&metadata)
                .map_err(|err| ConnectorError::Protocol(format!("metadata: {err}")))?;
            let mut params = entry.params();
            params.extend([
                ("weight", nacos_weight(instance.weight).to_string()),
                ("healthy", instance.healthy.to_string()),
                ("enabled", enabled.to_string()),
                ("metadata", metadata),
            ]);
            self.http.call(Method::POST, INSTANCE_PATH, params).await?;
        }
        self.written.lock().await.insert(key, entry);
        Ok(())
    }

    /// Ephemeral instances live only as long as this writer's client session.
    fn keeps_alive(&self) -> bool {
        self.ephemeral
    }

    /// Removes the entry at the instance's endpoint: no lookup by `switchboard.id`, so
    /// it works after a restart and in a server that dropped the metadata.
    async fn deregister_instance(&self, instance: &Instance) -> Result<(), ConnectorError> {
        let key = instance.key();
        let group = &instance.service.group;
        let written_to = match self.entry_of(instance) {
            Ok(entry) => {
                self.remove(&entry).await?;
                Some(entry.service.group)
            }
            Err(_) => None,
        };
        // Earlier versions wrote every group to the Nacos group of its own name (before
        // `DEFAULT_GROUP` was `DEFAULT`, `DEFAULT` went to a Nacos group `DEFAULT`). A
        // copy left there is found by id, so whoever else holds the endpoint keeps it.
        if written_to.as_ref() != Some(group) {
            for entry in self.find_in(&key, group.clone()).await? {
                self.remove(&entry).await?;
            }
        }
        self.written.lock().await.remove(&key);
        Ok(())
    }

    async fn deregister(&self, key: &InstanceKey) -> Result<(), ConnectorError> {
        let remembered = self.written.lock().await.get(key).cloned();
        let entries = match remembered {
            Some(entry) => vec![entry],
            None => self.find(key).await?,
        };
        for entry in &entries {
            self.remove(entry).await?;
        }
        self.written.lock().await.remove(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ServiceKey;

    #[test]
    fn metadata_written_back_drops_what_reading_added() {
        let mut instance = Instance::new("i-1", ServiceKey::named("pay"), "10.0.0.1", 80);
        instance.version = Some("2.0".to_owned());
        instance
            .metadata
            .insert("nacos.cluster".to_owned(), "east".to_owned());
        instance.metadata.insert("zone".to_owned(), "a".to_owned());
        let written = metadata(&instance);
        assert_eq!(
            written.into_iter().collect::<Vec<_>>(),
            [
                ("switchboard.id".to_owned(), "i-1".to_owned()),
                ("version".to_owned(), "2.0".to_owned()),
                ("zone".to_owned(), "a".to_owned()),
            ]
        );
        assert_eq!(nacos_weight(100), 1.0);
        assert_eq!(nacos_weight(250), 2.5);
    }
}
