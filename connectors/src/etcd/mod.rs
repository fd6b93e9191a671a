//! The etcd adapter: federates instances registered under a key prefix of an etcd v3
//! cluster. [`EtcdConfig`] is its `[[sources]]` table; [`EtcdConnector`] lists the prefix,
//! then streams the prefix watch as updates.
//!
//! - `config.rs`: fields, defaults, validation, secrets.
//! - `convert.rs`: one key and value to an [`crate::Instance`] (JSON or `host:port`).
//! - `fields.rs`: single fields of a value (address, weight, status, times, metadata).
//! - `template.rs`: `key_template` parsing and matching.
//! - `state.rs`: which key holds which instance, events to updates.
//! - `watch.rs`: connect, list, watch, recover.

mod config;
mod convert;
mod fields;
mod state;
mod template;
mod watch;

#[cfg(test)]
mod live_tests;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;

pub use config::{EtcdConfig, Secret, TlsConfig, ValueFormat};

use crate::{BoxUpdateStream, Connector, ConnectorError, SourceCommon};
use convert::Converter;
use state::Tracker;

/// Watches one prefix of one etcd cluster.
#[derive(Debug)]
pub struct EtcdConnector {
    common: SourceCommon,
    config: EtcdConfig,
    converter: Converter,
    /// Index into `config.endpoints` of the endpoint last used; failover moves it.
    in_use: Arc<AtomicUsize>,
}

impl EtcdConnector {
    /// Checks the configuration; connects only in [`Connector::watch`].
    pub fn new(common: SourceCommon, config: EtcdConfig) -> Result<EtcdConnector, ConnectorError> {
        config.validate()?;
        let converter = Converter::new(&common, &config)?;
        Ok(EtcdConnector {
            common,
            config,
            converter,
            in_use: Arc::new(AtomicUsize::new(0)),
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

    /// The endpoint of the last successful connection (the first one before any).
    fn endpoint(&self) -> Option<String> {
        let index = self.in_use.load(Ordering::Relaxed);
        self.config.endpoints.get(index).cloned()
    }
}
