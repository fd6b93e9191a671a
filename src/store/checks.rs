//! Health-check definitions as stored with their native instance (validated by the
//! registry, run by `health`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use switchboard_connectors::{Check, CheckStatus};

use crate::duration;

/// What a check probes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Probe {
    Ttl {
        #[serde(with = "duration::serde_text")]
        ttl: Duration,
    },
    Http {
        url: String,
        method: String,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        headers: BTreeMap<String, Vec<String>>,
        #[serde(default)]
        tls_skip_verify: bool,
    },
    Tcp {
        address: String,
    },
}

impl Probe {
    pub fn kind(&self) -> &'static str {
        match self {
            Probe::Ttl { .. } => "ttl",
            Probe::Http { .. } => "http",
            Probe::Tcp { .. } => "tcp",
        }
    }
}

/// A validated check, as stored with its instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckDefinition {
    pub id: String,
    pub name: String,
    #[serde(flatten)]
    pub probe: Probe,
    /// How often an HTTP or TCP check runs; `None` for TTL checks.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "duration::serde_text::option"
    )]
    pub interval: Option<Duration>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "duration::serde_text::option"
    )]
    pub timeout: Option<Duration>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "duration::serde_text::option"
    )]
    pub deregister_critical_after: Option<Duration>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub notes: String,
}

impl CheckDefinition {
    /// The check's result before any run: `status` if the registration gave one.
    pub fn initial(&self, status: CheckStatus) -> Check {
        Check {
            id: self.id.clone(),
            name: self.name.clone(),
            kind: self.probe.kind().to_owned(),
            status,
            output: String::new(),
            notes: self.notes.clone(),
        }
    }

    /// The shortest TTL among `checks`: the instance's heartbeat TTL.
    pub fn ttl_of(checks: &[CheckDefinition]) -> Option<Duration> {
        (checks.iter())
            .filter_map(|check| match check.probe {
                Probe::Ttl { ttl } => Some(ttl),
                _ => None,
            })
            .min()
    }

    /// The shortest `deregister_critical_after` among the TTL checks of `checks`.
    pub fn ttl_deregister_after(checks: &[CheckDefinition]) -> Option<Duration> {
        (checks.iter())
            .filter(|check| matches!(check.probe, Probe::Ttl { .. }))
            .filter_map(|check| check.deregister_critical_after)
            .min()
    }
}
