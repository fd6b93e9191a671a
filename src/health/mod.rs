//! Health checks Switchboard runs for native instances (HTTP and TCP; TTL checks are the
//! registry's heartbeat TTL). One mechanism behind every door: a registration through the
//! native API or Consul's agent API stores check definitions with the instance
//! ([`crate::store::CheckDefinition`]); this module runs them on a jittered schedule
//! with bounded concurrency and reports results through
//! [`crate::registry::Registry::record_check`], the registry's normal write path.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::duration::serde_text;

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
