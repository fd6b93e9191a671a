//! The Consul adapter: federates the services of a Consul datacenter through the HTTP API,
//! with blocking queries, so a change arrives as soon as Consul has it instead of on a
//! polling period. [`ConsulConfig`] is its `[[sources]]` table; [`ConsulConnector`]
//! watches, and writes (agent registrations with a TTL check) for sync-back.
//!
//! - `config.rs`: fields, defaults, validation, the token as a secret.
//! - `http.rs`: one request to an agent, and Consul's errors mapped.
//! - `blocking.rs`: a blocking query's index rules and rate limit.
//! - `convert.rs`: health entries to instances, the service list to watched names.
//! - `watch.rs`: one session: complete view, then a watcher per service.
//! - `writer.rs`: registering, deregistering, and keeping TTL checks passing.

mod blocking;
mod config;
mod convert;
mod http;
mod watch;
mod writer;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;

pub use config::ConsulConfig;

use crate::{BoxUpdateStream, Connector, ConnectorError, RegistryWriter, SourceCommon};
use convert::Converter;
use writer::ConsulWriter;

/// Watches (and writes) the services of one Consul datacenter.
pub struct ConsulConnector {
    config: ConsulConfig,
    converter: Converter,
    /// Index into `config.endpoints` of the endpoint last used; failover moves it.
    in_use: Arc<AtomicUsize>,
    writer: ConsulWriter,
}

impl ConsulConnector {
    /// Checks the configuration; connects only in [`Connector::watch`].
    pub fn new(
        common: SourceCommon,
        config: ConsulConfig,
    ) -> Result<ConsulConnector, ConnectorError> {
        config.validate()?;
        let in_use = Arc::new(AtomicUsize::new(0));
        Ok(ConsulConnector {
            converter: Converter::new(&common, &config),
            writer: ConsulWriter::new(config.clone(), in_use.clone()),
            config,
            in_use,
        })
    }

    pub fn config(&self) -> &ConsulConfig {
        &self.config
    }
}

#[async_trait]
impl Connector for ConsulConnector {
    async fn watch(&self) -> Result<BoxUpdateStream, ConnectorError> {
        watch::start(&self.config, self.converter.clone(), &self.in_use).await
    }

    fn writer(&self) -> Option<&dyn RegistryWriter> {
        Some(&self.writer)
    }

    /// The endpoint of the last successful connection (the first one before any).
    fn endpoint(&self) -> Option<String> {
        let index = self.in_use.load(Ordering::Relaxed);
        self.config.endpoints.get(index).cloned()
    }
}
