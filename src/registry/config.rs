//! The native registry's settings (`[registry]` in the config file).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::duration::serde_text;

/// The native registry.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// An instance with no heartbeat for this long is marked offline (per-instance
    /// `ttl_seconds` overrides it).
    #[serde(with = "serde_text")]
    pub default_ttl: Duration,
    /// Delete instances that have been offline by expiry for this long. Unset: keep them.
    #[serde(with = "serde_text::option", skip_serializing_if = "Option::is_none")]
    pub deregister_after: Option<Duration>,
    /// How often expiry is checked.
    #[serde(with = "serde_text")]
    pub expiry_interval: Duration,
    /// How often heartbeat times are written to the store, in one batch.
    #[serde(with = "serde_text")]
    pub heartbeat_flush_interval: Duration,
    /// Merge priority of native instances against external sources (higher wins).
    pub priority: i32,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            default_ttl: Duration::from_secs(30),
            deregister_after: None,
            expiry_interval: Duration::from_millis(500),
            heartbeat_flush_interval: Duration::from_secs(1),
            priority: 0,
        }
    }
}
