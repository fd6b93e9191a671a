//! The Nacos adapter: federates the services of one Nacos namespace. Instance changes
//! arrive as pushes through the official SDK (`nacos-sdk`, naming over gRPC); the service
//! list, which Nacos does not push, is re-read every `service_refresh`.
//! [`NacosConfig`] is its `[[sources]]` table; [`NacosConnector`] watches, and writes
//! instances for sync-back.
//!
//! - `config.rs`: fields, defaults, validation, the password as a secret.
//! - `http.rs`: the HTTP OpenAPI: login, the service list across groups, the probe.
//! - `client.rs`: the SDK client, its subscriptions and their one listener.
//! - `convert.rs`: groups watched, placement, SDK instances to instances.
//! - `watch.rs`: one session: complete view, then pushes and list refreshes.
//! - `writer.rs`: registering and deregistering (persistent or ephemeral).

mod client;
mod config;
mod convert;
mod http;
mod watch;
mod writer;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;

pub use config::NacosConfig;

use crate::{BoxUpdateStream, Connector, ConnectorError, RegistryWriter, SourceCommon};
use client::Client;
use convert::Converter;
use http::Http;
use writer::NacosWriter;

/// A service as Nacos names it inside a namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct NacosService {
    group: String,
    name: String,
}

impl NacosService {
    /// From a push, whose service name may be grouped (`group@@name`).
    fn from_event(group: &str, name: &str) -> NacosService {
        let (group, name) = name.split_once("@@").unwrap_or((group, name));
        NacosService {
            group: group.to_owned(),
            name: name.to_owned(),
        }
    }
}

/// Watches (and writes) the services of one Nacos namespace.
pub struct NacosConnector {
    config: NacosConfig,
    converter: Converter,
    http: Arc<Http>,
    client: Arc<Client>,
    /// Index into `config.endpoints` of the endpoint that answered last.
    in_use: Arc<AtomicUsize>,
    writer: NacosWriter,
}

impl NacosConnector {
    /// Checks the configuration; connects only in [`Connector::watch`].
    pub fn new(
        common: SourceCommon,
        config: NacosConfig,
    ) -> Result<NacosConnector, ConnectorError> {
        config.validate()?;
        // The Nacos namespace read is the source's `namespace` (Nacos's default `public`).
        let namespace = common.placed_namespace().to_owned();
        let in_use = Arc::new(AtomicUsize::new(0));
        let http = Arc::new(Http::new(&config, &namespace, in_use.clone())?);
        let client = Arc::new(Client::new(&config, &namespace, &common.id));
        let converter = Converter::new(&common, &config);
        let writer = NacosWriter::new(&config, http.clone(), client.clone(), converter.clone());
        Ok(NacosConnector {
            config,
            converter,
            http,
            client,
            in_use,
            writer,
        })
    }

    pub fn config(&self) -> &NacosConfig {
        &self.config
    }
}

#[async_trait]
impl Connector for NacosConnector {
    async fn watch(&self) -> Result<BoxUpdateStream, ConnectorError> {
        watch::start(watch::Parts {
            config: &self.config,
            http: &self.http,
            client: &self.client,
            converter: &self.converter,
        })
        .await
    }

    fn writer(&self) -> Option<&dyn RegistryWriter> {
        Some(&self.writer)
    }

    /// The endpoint that answered last (the first one before any did).
    fn endpoint(&self) -> Option<String> {
        let index = self.in_use.load(Ordering::Relaxed);
        self.config.endpoints.get(index).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushed_names_may_carry_their_group() {
        let plain = NacosService::from_event("G", "pay");
        let grouped = NacosService::from_event("G", "G@@pay");
        assert_eq!(plain, grouped);
        assert_eq!(plain.group, "G");
        assert_eq!(plain.name, "pay");
    }
}
