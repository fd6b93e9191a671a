//! A source's configuration: the fields every source has ([`SourceCommon`]) and the
//! adapter's own ([`AdapterConfig`]), selected by `type`. Both parts reject unknown
//! fields, so a typo in a `[[sources]]` table is an error that names the field.

use std::sync::Arc;
use std::time::Duration;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::duration::serde_text;
use crate::{Connector, ConnectorError, DEFAULT_GROUP, DEFAULT_NAMESPACE};

/// Every adapter type Switchboard knows, built in or not.
pub const ADAPTER_TYPES: &[&str] = &["etcd", "consul", "nacos"];

/// Keys that belong to [`SourceCommon`] whatever the adapter.
const COMMON_KEYS: &[&str] = &[
    "id",
    "priority",
    "namespace",
    "group",
    "max_stale",
    "empty_confirm",
];

/// What every source has.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourceCommon {
    /// Unique id, 1-64 characters of `[A-Za-z0-9._-]`; shown in `sources` of instances.
    pub id: String,
    /// Higher wins when two sources report the same endpoint.
    #[serde(default)]
    pub priority: i32,
    /// Namespace to place this source's services in (default `public`).
    pub namespace: Option<String>,
    /// Group to place this source's services in (default `DEFAULT`).
    pub group: Option<String>,
    /// How long a down source's last view is served (stale) before it is dropped.
    /// Unset: served until the source comes back.
    #[serde(
        default,
        with = "serde_text::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_stale: Option<Duration>,
    /// How long an update that would empty a service is held for confirmation.
    #[serde(default = "default_empty_confirm", with = "serde_text")]
    pub empty_confirm: Duration,
}

impl SourceCommon {
    /// The namespace this source's services are placed in.
    pub fn placed_namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE)
    }

    /// The group this source's services are placed in.
    pub fn placed_group(&self) -> &str {
        self.group.as_deref().unwrap_or(DEFAULT_GROUP)
    }
}

fn default_empty_confirm() -> Duration {
    Duration::from_secs(10)
}

/// The adapter-specific part of a source's configuration.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum AdapterConfig {
    #[cfg(feature = "consul")]
    Consul(crate::consul::ConsulConfig),
    #[cfg(feature = "etcd")]
    Etcd(crate::etcd::EtcdConfig),
    #[cfg(feature = "nacos")]
    Nacos(crate::nacos::NacosConfig),
}

impl AdapterConfig {
    pub fn type_name(&self) -> &'static str {
        match *self {
            #[cfg(feature = "consul")]
            AdapterConfig::Consul(_) => "consul",
            #[cfg(feature = "etcd")]
            AdapterConfig::Etcd(_) => "etcd",
            #[cfg(feature = "nacos")]
            AdapterConfig::Nacos(_) => "nacos",
        }
    }
}

/// One `[[sources]]` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceConfig {
    pub common: SourceCommon,
    pub adapter: AdapterConfig,
}

impl SourceConfig {
    pub fn id(&self) -> &str {
        &self.common.id
    }

    pub fn type_name(&self) -> &'static str {
        self.adapter.type_name()
    }

    /// Checks the adapter's fields without connecting; the error names the field.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        match self.adapter {
            #[cfg(feature = "consul")]
            AdapterConfig::Consul(ref consul) => consul.validate(),
            #[cfg(feature = "etcd")]
            AdapterConfig::Etcd(ref etcd) => etcd.validate(),
            #[cfg(feature = "nacos")]
            AdapterConfig::Nacos(ref nacos) => nacos.validate(),
        }
    }
}

impl<'de> Deserialize<'de> for SourceConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut fields = Map::<String, Value>::deserialize(deserializer)?;
        let kind = match fields.remove("type") {
            Some(Value::String(kind)) => kind,
            Some(_) => return Err(D::Error::custom("`type` must be a string")),
            None => return Err(D::Error::missing_field("type")),
        };
        let mut common = Map::new();
        for key in COMMON_KEYS {
            if let Some(value) = fields.remove(*key) {
                common.insert((*key).to_owned(), value);
            }
        }
        let common: SourceCommon =
            serde_json::from_value(Value::Object(common)).map_err(D::Error::custom)?;
        validate_id(&common.id).map_err(D::Error::custom)?;
        let rest = Value::Object(fields);
        let adapter = match kind.as_str() {
            #[cfg(feature = "consul")]
            "consul" => {
                AdapterConfig::Consul(serde_json::from_value(rest).map_err(D::Error::custom)?)
            }
            #[cfg(feature = "etcd")]
            "etcd" => AdapterConfig::Etcd(serde_json::from_value(rest).map_err(D::Error::custom)?),
            #[cfg(feature = "nacos")]
            "nacos" => {
                AdapterConfig::Nacos(serde_json::from_value(rest).map_err(D::Error::custom)?)
            }
            other if ADAPTER_TYPES.contains(&other) => {
                let _ = rest;
                return Err(D::Error::custom(format!(
                    "source type `{other}` is not available in this build"
                )));
            }
            other => return Err(D::Error::unknown_variant(other, ADAPTER_TYPES)),
        };
        Ok(SourceConfig { common, adapter })
    }
}

fn validate_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "source id `{id}` must be 1-64 characters of [A-Za-z0-9._-]"
        ))
    }
}

/// Builds the connector for a source.
pub fn build(config: &SourceConfig) -> Result<Arc<dyn Connector>, ConnectorError> {
    match config.adapter {
        #[cfg(feature = "consul")]
        AdapterConfig::Consul(ref consul) => Ok(Arc::new(crate::consul::ConsulConnector::new(
            config.common.clone(),
            consul.clone(),
        )?)),
        #[cfg(feature = "etcd")]
        AdapterConfig::Etcd(ref etcd) => Ok(Arc::new(crate::etcd::EtcdConnector::new(
            config.common.clone(),
            etcd.clone(),
        )?)),
        #[cfg(feature = "nacos")]
        AdapterConfig::Nacos(ref nacos) => Ok(Arc::new(crate::nacos::NacosConnector::new(
            config.common.clone(),
            nacos.clone(),
        )?)),
    }
}
