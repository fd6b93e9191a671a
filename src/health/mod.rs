//! Health checks Switchboard runs for native instances (HTTP and TCP; TTL checks are the
//! registry's heartbeat TTL). One mechanism behind every door: a registration through the
//! native API or Consul's agent API stores check definitions with the instance
//! ([`crate::store::CheckDefinition`]); this module runs them on a jittered schedule
//! with bounded concurrency and reports results through
//! [`crate::registry::Registry::record_check`], the registry's normal write path.
//!
//! `runner.rs` is the task (results, re-reads, deregistration after critical),
//! `schedule.rs` when each check runs, `http.rs` and `tcp.rs` the probes. What the runner
//! does is counted in [`crate::telemetry::HealthMetrics`].

mod http;
mod runner;
mod schedule;
mod tcp;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::duration::serde_text;
use crate::registry::Registry;
use crate::telemetry::Metrics;

/// Starts the check runner over `registry`'s instances; it stops when `stop` turns true.
/// Fails only if the HTTP clients cannot be made (no usable TLS backend).
pub fn spawn(
    registry: Arc<Registry>,
    config: &HealthConfig,
    metrics: Arc<Metrics>,
    stop: watch::Receiver<bool>,
) -> Result<JoinHandle<()>, reqwest::Error> {
    let clients = http::Clients::new()?;
    let runner = runner::Runner::new(registry, clients, metrics, config);
    Ok(tokio::spawn(runner.run(stop)))
}

/// `[health]`: the check runner.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Checks running at the same time, at most.
    pub concurrency: usize,
    /// `deregister_critical_after` is never shorter than this (Consul's
    /// `check_deregister_interval_min`).
    #[serde(with = "serde_text")]
    pub deregister_min: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            concurrency: 64,
            deregister_min: Duration::from_secs(60),
        }
    }
}
