//! A source's configuration: the fields every source has ([`SourceCommon`]) and the
//! adapter's own ([`AdapterConfig`]), selected by `type`. Both parts reject unknown
//! fields, so a typo in a `[[sources]]` table (or a source document sent to the API) is
//! an error that names the field. [`json`] reads and writes the flat document form.

mod common;
mod json;

use std::sync::Arc;

use serde::{Serialize, Serializer};

pub use self::common::{is_glob, is_id, SourceCommon};
pub use self::json::SourceConfigError;
use crate::{Connector, ConnectorError};

/// Every adapter type Switchboard knows, built in or not.
pub const ADAPTER_TYPES: &[&str] = &["etcd", "consul", "nacos"];

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

/// The adapter's own fields (no `type`); secrets as `***`.
impl Serialize for AdapterConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match *self {
            #[cfg(feature = "consul")]
            AdapterConfig::Consul(ref consul) => consul.serialize(serializer),
            #[cfg(feature = "etcd")]
            AdapterConfig::Etcd(ref etcd) => etcd.serialize(serializer),
            #[cfg(feature = "nacos")]
            AdapterConfig::Nacos(ref nacos) => nacos.serialize(serializer),
        }
    }
}

/// One `[[sources]]` entry, or one source document of the API.
///
/// It deserializes from a flat table (`id`, `type`, the common keys, the adapter's keys)
/// without checking more than the types; [`SourceConfig::from_json`] also validates and
/// says which field is at fault. It serializes to the same flat form with every default
/// filled in and secrets (`password`, `token`, `tls.key`) as `***`.
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

    /// Checks the common and the adapter's fields without connecting. The message starts
    /// with the field's path in backticks.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        self.common.validate()?;
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
