//! The service model: what every source reports and what the catalog merges.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Namespace a service lands in when its source names none.
pub const DEFAULT_NAMESPACE: &str = "public";
/// Group a service lands in when its source names none.
pub const DEFAULT_GROUP: &str = "DEFAULT";

/// Identifies a service: `(namespace, group, name)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceKey {
    pub namespace: String,
    pub group: String,
    pub name: String,
}

impl ServiceKey {
    pub fn new(
        namespace: impl Into<String>,
        group: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        Self {
            namespace: namespace.into(),
            group: group.into(),
            name: name.into(),
        }
    }

    /// A service in the default namespace and group.
    pub fn named(name: impl Into<String>) -> Self {
        Self::new(DEFAULT_NAMESPACE, DEFAULT_GROUP, name)
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.namespace, self.group, self.name)
    }
}

/// Identifies one instance inside one source: the service plus the source's own id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceKey {
    pub service: ServiceKey,
    pub id: String,
}

/// Lifecycle status of an instance.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Serving traffic.
    #[default]
    Active,
    /// Registered but not meant to take traffic.
    Inactive,
    /// Taken out on purpose for maintenance.
    Maintenance,
    /// Gone: set by an operator, or by TTL expiry when heartbeats stop.
    Offline,
}

impl Status {
    pub const ALL: [Status; 4] = [
        Status::Active,
        Status::Inactive,
        Status::Maintenance,
        Status::Offline,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Inactive => "inactive",
            Status::Maintenance => "maintenance",
            Status::Offline => "offline",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One endpoint of a service as a single source reports it.
///
/// The catalog merges instances of different sources that share an endpoint
/// `(host, port)` into one; the merged form adds `sources` and staleness.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Instance {
    /// The source's identifier of this instance.
    pub id: String,
    pub service: ServiceKey,
    pub host: String,
    pub port: u16,
    pub protocol: String,
    pub version: Option<String>,
    /// Relative load-balancing weight, 0..=10000.
    pub weight: u32,
    pub status: Status,
    pub healthy: bool,
    pub metadata: BTreeMap<String, String>,
    pub tags: Vec<String>,
    pub register_time: Option<DateTime<Utc>>,
    pub start_time: Option<DateTime<Utc>>,
    pub last_heartbeat: Option<DateTime<Utc>>,
    pub offline_time: Option<DateTime<Utc>>,
    /// The health checks run for this instance and their latest results (native
    /// instances with checks; empty for the rest). A critical check makes it unhealthy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
}

/// The result of one health check, as Consul names them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Passing,
    /// Degraded but still serving (an HTTP 429, or a client's explicit warn).
    Warning,
    /// Failing: the instance is not served. New checks start here until they pass.
    #[default]
    Critical,
}

impl CheckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Passing => "passing",
            CheckStatus::Warning => "warning",
            CheckStatus::Critical => "critical",
        }
    }

    pub fn parse(text: &str) -> Option<CheckStatus> {
        [
            CheckStatus::Passing,
            CheckStatus::Warning,
            CheckStatus::Critical,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// One health check of an instance and its latest result. The output is the one seen
/// when the status last changed (outputs alone do not republish the instance).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Check {
    /// Unique per instance (Consul's `CheckID`, e.g. `service:web-1`).
    pub id: String,
    pub name: String,
    /// `ttl`, `http` or `tcp`.
    pub kind: String,
    pub status: CheckStatus,
    #[serde(default)]
    pub output: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub notes: String,
}

impl Instance {
    /// A healthy, active instance with default attributes.
    pub fn new(
        id: impl Into<String>,
        service: ServiceKey,
        host: impl Into<String>,
        port: u16,
    ) -> Self {
        Self {
            id: id.into(),
            service,
            host: host.into(),
            port,
            protocol: "http".to_owned(),
            version: None,
            weight: 100,
            status: Status::Active,
            healthy: true,
            metadata: BTreeMap::new(),
            tags: Vec::new(),
            register_time: None,
            start_time: None,
            last_heartbeat: None,
            offline_time: None,
            checks: Vec::new(),
        }
    }

    /// `host:port`, with IPv6 hosts in brackets.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    pub fn key(&self) -> InstanceKey {
        InstanceKey {
            service: self.service.clone(),
            id: self.id.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_brackets_ipv6_hosts() {
        let v4 = Instance::new("a", ServiceKey::named("s"), "10.0.0.1", 80);
        let v6 = Instance::new("b", ServiceKey::named("s"), "::1", 8080);
        assert_eq!(v4.address(), "10.0.0.1:80");
        assert_eq!(v6.address(), "[::1]:8080");
    }

    #[test]
    fn status_round_trips_through_text_and_json() {
        for status in Status::ALL {
            assert_eq!(Status::parse(status.as_str()), Some(status));
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{status}\""));
        }
        assert_eq!(Status::parse("ACTIVE"), None);
    }
}
