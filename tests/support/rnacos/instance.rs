//! What a test writes into rnacos: a [`Registration`] (one instance, with Nacos's
//! defaults), sent through the HTTP OpenAPI by `RnacosServer::register` and friends, or
//! through a `nacos-sdk` client from [`RnacosServer::sdk_client`] over gRPC, which is
//! the only way to register an unhealthy instance in rnacos.

use std::collections::BTreeMap;

use nacos_sdk::api::naming::{NamingService, NamingServiceBuilder, ServiceInstance};
use nacos_sdk::api::props::ClientProps;

use super::{RnacosServer, DEFAULT_GROUP, PUBLIC};

impl RnacosServer {
    /// A `nacos-sdk` naming client of `namespace` connected to this rnacos (logged in as
    /// the admin when auth is on), as an application embedding Nacos's client would have.
    /// The SDK cannot shut a client down: its connection, and the ephemeral instances
    /// registered through it, outlive the value until rnacos dies (or the test process
    /// ends), so tests give SDK-registered services names of their own.
    pub async fn sdk_client(&self, namespace: &str) -> NamingService {
        let props = ClientProps::new()
            .server_addr(format!("127.0.0.1:{}", self.http_port))
            .namespace(namespace)
            .app_name("switchboard-tests")
            // Environment variables must not redirect the test's client, and its cache
            // files belong in the test's directory, not in $HOME.
            .env_first(false)
            .cache_dir(self.dir.path().join("sdk-cache"));
        let builder = match &self.admin {
            Some((username, password)) => {
                let props = props.auth_username(username).auth_password(password);
                NamingServiceBuilder::new(props).enable_auth_plugin_http()
            }
            None => NamingServiceBuilder::new(props),
        };
        builder
            .build()
            .await
            .unwrap_or_else(|err| panic!("nacos-sdk client: {err}\n{}", self.log_tail()))
    }
}

/// One Nacos instance as a test writes it. `new` gives Nacos's defaults (namespace
/// `public`, group `DEFAULT_GROUP`, cluster `DEFAULT`, weight 1, enabled, healthy) and a
/// persistent instance, which needs no heartbeats to stay.
#[derive(Clone, Debug)]
pub struct Registration {
    pub namespace: String,
    pub group: String,
    pub service: String,
    pub ip: String,
    pub port: u16,
    pub cluster: String,
    pub weight: f64,
    pub enabled: bool,
    /// Only gRPC registrations carry it: rnacos sets every HTTP one healthy.
    pub healthy: bool,
    pub ephemeral: bool,
    pub metadata: BTreeMap<String, String>,
}

impl Registration {
    pub fn new(service: &str, ip: &str, port: u16) -> Registration {
        Registration {
            namespace: PUBLIC.to_owned(),
            group: DEFAULT_GROUP.to_owned(),
            service: service.to_owned(),
            ip: ip.to_owned(),
            port,
            cluster: "DEFAULT".to_owned(),
            weight: 1.0,
            enabled: true,
            healthy: true,
            ephemeral: false,
            metadata: BTreeMap::new(),
        }
    }

    /// The same instance in `namespace` (an id) and `group`.
    pub fn placed(mut self, namespace: &str, group: &str) -> Registration {
        namespace.clone_into(&mut self.namespace);
        group.clone_into(&mut self.group);
        self
    }

    /// The same instance with metadata `key = value` added.
    pub fn meta(mut self, key: &str, value: &str) -> Registration {
        self.metadata.insert(key.to_owned(), value.to_owned());
        self
    }

    /// `ip:port`, as Switchboard shows an instance's address.
    pub fn address(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }

    /// What identifies the instance to rnacos's HTTP API.
    pub(super) fn key_params(&self) -> Vec<(&'static str, String)> {
        vec![
            ("namespaceId", self.namespace.clone()),
            ("groupName", self.group.clone()),
            ("serviceName", self.service.clone()),
            ("ip", self.ip.clone()),
            ("port", self.port.to_string()),
            ("clusterName", self.cluster.clone()),
            ("ephemeral", self.ephemeral.to_string()),
        ]
    }

    pub(super) fn params(&self) -> Vec<(&'static str, String)> {
        let mut params = self.key_params();
        params.extend([
            ("weight", self.weight.to_string()),
            ("enabled", self.enabled.to_string()),
            ("healthy", self.healthy.to_string()),
            ("metadata", serde_json::to_string(&self.metadata).unwrap()),
        ]);
        params
    }

    /// The instance as `nacos-sdk` registers it.
    pub fn sdk_instance(&self) -> ServiceInstance {
        ServiceInstance {
            instance_id: None,
            ip: self.ip.clone(),
            port: i32::from(self.port),
            weight: self.weight,
            healthy: self.healthy,
            enabled: self.enabled,
            ephemeral: self.ephemeral,
            cluster_name: Some(self.cluster.clone()),
            service_name: Some(self.service.clone()),
            metadata: self.metadata.clone().into_iter().collect(),
        }
    }

    /// Registers (or overwrites) the instance through `client` (of its namespace).
    pub async fn register_with(&self, client: &NamingService) {
        let group = Some(self.group.clone());
        client
            .register_instance(self.service.clone(), group, self.sdk_instance())
            .await
            .unwrap_or_else(|err| panic!("nacos-sdk register {self:?}: {err}"));
    }

    /// Deregisters the instance through `client` (of its namespace).
    pub async fn deregister_with(&self, client: &NamingService) {
        let group = Some(self.group.clone());
        client
            .deregister_instance(self.service.clone(), group, self.sdk_instance())
            .await
            .unwrap_or_else(|err| panic!("nacos-sdk deregister {self:?}: {err}"));
    }
}
