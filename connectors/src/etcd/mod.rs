//! The etcd adapter: federates instances registered under a key prefix of an etcd v3
//! cluster. [`EtcdConfig`] is its `[[sources]]` table; [`EtcdConnector`] lists the prefix,
//! then streams the prefix watch as updates. It is also writable (sync-back): instances
//! written become keys its own watch reads back.
//!
//! - `config.rs`: fields, defaults, validation, secrets.
//! - `convert.rs`: one key and value to an [`crate::Instance`] (JSON or `host:port`).
//! - `fields.rs`: single fields of a value (address, weight, status, times, metadata).
//! - `template.rs`: `key_template` parsing, matching and rendering.
//! - `state.rs`: which key holds which instance, events to updates.
//! - `client.rs`: connect (auth, TLS), fail over between endpoints, map errors.
//! - `watch.rs`: list, watch, recover.
//! - `encode.rs`: an instance to the key and value the watch reads back as it.
//! - `link.rs`: the writer's client, failing over on its own.
//! - `writer.rs`: puts and deletes keys under a kept-alive lease.

mod client;
mod config;
mod convert;
mod encode;
mod fields;
mod link;
mod state;
mod template;
mod watch;
mod writer;

#[cfg(test)]
mod live_tests;
#[cfg(test)]
mod writer_tests;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;

pub use config::{EtcdConfig, Secret, TlsConfig, ValueFormat};

use crate::{BoxUpdateStream, Connector, ConnectorError, RegistryWriter, SourceCommon};
use convert::Converter;
use state::Tracker;
use writer::EtcdWriter;

/// Watches one prefix of one etcd cluster.
#[derive(Debug)]
pub struct EtcdConnector {
    common: SourceCommon,
    config: EtcdConfig,
    converter: Converter,
    /// Index into `config.endpoints` of the endpoint last used; failover moves it.
    in_use: Arc<AtomicUsize>,
    writer: EtcdWriter,
}

impl EtcdConnector {
    /// Checks the configuration; connects only in [`Connector::watch`].
    pub fn new(common: SourceCommon, config: EtcdConfig) -> Result<EtcdConnector, ConnectorError> {
        config.validate()?;
        let converter = Converter::new(&common, &config)?;
        let in_use = Arc::new(AtomicUsize::new(0));
        let writer = EtcdWriter::new(common.id.clone(), &config, in_use.clone())?;
        Ok(EtcdConnector {
            common,
            config,
            converter,
            in_use,
            writer,
        })
    }

    pub fn config(&self) -> &EtcdConfig {
        &self.config
    }
}

#[async_trait]
impl Connector for EtcdConnector {
    async fn watch(&self) -> Result<BoxUpdateStream, ConnectorError> {
        watch::Session::start(
            self.common.id.clone(),
            self.config.clone(),
            self.in_use.clone(),
            Tracker::new(self.converter.clone()),
        )
        .await
    }

    /// Instances written become keys below the prefix (see `writer.rs`).
    fn writer(&self) -> Option<&dyn RegistryWriter> {
        Some(&self.writer)
    }

    /// The endpoint of the last successful connection (the first one before any).
    fn endpoint(&self) -> Option<String> {
        let index = self.in_use.load(Ordering::Relaxed);
        self.config.endpoints.get(index).cloned()
    }
}
