//! A Nacos source's own configuration ([`NacosConfig`]): its fields, their defaults, and
//! the checks `NacosConnector::new` runs before anything connects. The password is a
//! [`Secret`]: never shown, serialized or logged.
//!
//! The Nacos namespace to read is the source's common `namespace` field (default
//! `public`), so by default a Nacos namespace lands in the Switchboard namespace of the
//! same name, Nacos's default group `DEFAULT_GROUP` in Switchboard's default group
//! `DEFAULT`, and every other Nacos group in the Switchboard group of the same name; the
//! `place_*` fields and the common `group` move them elsewhere.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::duration::serde_text;
use crate::endpoint::{check_endpoints, Secret};
use crate::ConnectorError;

/// Nacos clients reach a server's gRPC port at its HTTP port plus this.
const GRPC_PORT_OFFSET: u16 = 1000;

/// The fields of an `[[sources]]` table with `type = "nacos"` besides the common ones
/// (`id`, `priority`, `namespace` (the Nacos namespace id), `group`, `max_stale`,
/// `empty_confirm`).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NacosConfig {
    /// HTTP addresses of the Nacos servers (`http://host:8848`); each serves gRPC on its
    /// port + 1000, as Nacos 2.x does.
    pub endpoints: Vec<String>,
    /// Nacos user (when the server has auth enabled); needs `password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Password of `username`. Shown and serialized as `***`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// Nacos groups to federate. Empty (the default): every group.
    #[serde(default)]
    pub groups: Vec<String>,
    /// How often the service list is read to subscribe to new services and drop removed
    /// ones (Nacos pushes instance changes, but not the list of services). Default `10s`.
    #[serde(default = "default_service_refresh", with = "serde_text")]
    pub service_refresh: Duration,
    /// How often the server is checked between refreshes, so an outage shows (and the
    /// last view is served as stale) within this, not within `service_refresh`.
    /// Default `2s`.
    #[serde(default = "default_probe_interval", with = "serde_text")]
    pub probe_interval: Duration,
    /// Deadline for connecting and for each request (default `5s`).
    #[serde(default = "default_timeout", with = "serde_text")]
    pub timeout: Duration,
    /// The Switchboard namespace to place services in. Unset: the Nacos namespace's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place_namespace: Option<String>,
    /// Nacos group → Switchboard group. A group not listed goes to the common `group`
    /// when set, else keeps its name, except `DEFAULT_GROUP`, which goes to `DEFAULT`
    /// (`{ DEFAULT_GROUP = "DEFAULT_GROUP" }` keeps its name).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub place_groups: BTreeMap<String, String>,
    /// Instances Switchboard writes (sync-back) are ephemeral, kept alive by this
    /// connection. Default false: persistent (`ephemeral=false`), needing no heartbeat.
    #[serde(default)]
    pub ephemeral: bool,
}

fn default_service_refresh() -> Duration {
    Duration::from_secs(10)
}

fn default_probe_interval() -> Duration {
    Duration::from_secs(2)
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

impl NacosConfig {
    /// A config with every optional field at its default.
    pub fn new<I, S>(endpoints: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        NacosConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            username: None,
            password: None,
            groups: Vec::new(),
            service_refresh: default_service_refresh(),
            probe_interval: default_probe_interval(),
            timeout: default_timeout(),
            place_namespace: None,
            place_groups: BTreeMap::new(),
            ephemeral: false,
        }
    }

    /// Checks everything that can be checked without connecting. Errors name the field.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        self.check().map_err(ConnectorError::Config)
    }

    fn check(&self) -> Result<(), String> {
        if let Some(i) = self
            .endpoints
            .iter()
            .position(|e| e.starts_with("https://"))
        {
            return Err(format!(
                "`endpoints[{i}]`: nacos sources speak plain http:// (TLS is not supported)"
            ));
        }
        check_endpoints(&self.endpoints, None)?;
        for (i, endpoint) in self.endpoints.iter().enumerate() {
            let (_, port) = split_endpoint(endpoint);
            if port.checked_add(GRPC_PORT_OFFSET).is_none() {
                return Err(format!(
                    "`endpoints[{i}]` port must leave room for gRPC at port + 1000"
                ));
            }
        }
        match (&self.username, &self.password) {
            (Some(user), Some(_)) if user.is_empty() => {
                return Err("`username` must not be empty".to_owned())
            }
            (Some(_), None) => return Err("`username` needs `password`".to_owned()),
            (None, Some(_)) => return Err("`password` needs `username`".to_owned()),
            _ => {}
        }
        if let Some(i) = self.groups.iter().position(|g| !is_name(g)) {
            return Err(format!("`groups[{i}]` {NAME_RULE}"));
        }
        if self.place_namespace.as_deref().is_some_and(|n| !is_name(n)) {
            return Err(format!("`place_namespace` {NAME_RULE}"));
        }
        for (from, to) in &self.place_groups {
            if !is_name(from) || !is_name(to) {
                return Err(format!(
                    "`place_groups` entry `{from}`: both names {NAME_RULE}"
                ));
            }
        }
        if self.service_refresh < Duration::from_secs(1) {
            return Err("`service_refresh` must be at least 1s".to_owned());
        }
        if self.probe_interval < Duration::from_millis(100) {
            return Err("`probe_interval` must be at least 100ms".to_owned());
        }
        if self.timeout.is_zero() {
            return Err("`timeout` must be more than zero".to_owned());
        }
        Ok(())
    }

    /// `host:port` of every endpoint, as the Nacos SDK's `server_addr` lists them.
    pub(crate) fn server_addrs(&self) -> String {
        let addrs: Vec<String> = self
            .endpoints
            .iter()
            .map(|endpoint| {
                let (host, port) = split_endpoint(endpoint);
                format!("{host}:{port}")
            })
            .collect();
        addrs.join(",")
    }
}

const NAME_RULE: &str = "must be 1-128 characters of [A-Za-z0-9._:-]";

/// Nacos's own rule for namespace, group and service names (plus `:`).
fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}

/// `http://host:port[/]` (already checked) → (host, port).
fn split_endpoint(endpoint: &str) -> (&str, u16) {
    let rest = endpoint.strip_prefix("http://").unwrap_or(endpoint);
    let authority = rest.trim_end_matches('/');
    let (host, port) = authority.rsplit_once(':').unwrap_or((authority, "0"));
    (host, port.parse().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(json: serde_json::Value) -> Result<NacosConfig, String> {
        crate::config_checks::parse(json)
    }

    fn config_error(config: &NacosConfig) -> String {
        crate::config_checks::config_error(config.validate())
    }

    #[test]
    fn defaults_fill_everything_but_endpoints() {
        let config = parse(json!({ "endpoints": ["http://127.0.0.1:8848"] })).unwrap();
        assert_eq!(config, NacosConfig::new(["http://127.0.0.1:8848"]));
        assert_eq!(config.service_refresh, Duration::from_secs(10));
        assert!(config.groups.is_empty() && !config.ephemeral);
        config.validate().unwrap();
        assert_eq!(config.server_addrs(), "127.0.0.1:8848");
    }

    #[test]
    fn parses_every_field_and_hides_the_password() {
        let config = parse(json!({
            "endpoints": ["http://nacos-a:8848", "http://[::1]:8848/"],
            "username": "nacos",
            "password": "s3cr3t-pass",
            "groups": ["DEFAULT_GROUP", "payments"],
            "service_refresh": "30s",
            "probe_interval": "500ms",
            "timeout": "2s",
            "place_namespace": "prod",
            "place_groups": { "DEFAULT_GROUP": "DEFAULT" },
            "ephemeral": true,
        }))
        .unwrap();
        config.validate().unwrap();
        assert_eq!(config.server_addrs(), "nacos-a:8848,[::1]:8848");
        assert_eq!(config.place_groups["DEFAULT_GROUP"], "DEFAULT");
        let shown = serde_json::to_string(&config).unwrap();
        assert!(
            !shown.contains("s3cr3t") && shown.contains("\"***\""),
            "{shown}"
        );
        assert!(!format!("{config:?}").contains("s3cr3t"));
    }

    #[test]
    fn the_default_group_may_keep_its_nacos_name() {
        let config = parse(json!({
            "endpoints": ["http://127.0.0.1:8848"],
            "place_groups": { "DEFAULT_GROUP": "DEFAULT_GROUP" },
        }))
        .unwrap();
        config.validate().unwrap();
        assert_eq!(config.place_groups["DEFAULT_GROUP"], "DEFAULT_GROUP");
    }

    #[test]
    fn unknown_fields_and_bad_values_are_named() {
        let err = parse(json!({ "endpoints": ["http://a:1"], "group": "x" })).unwrap_err();
        assert!(err.contains("group"), "{err}");
        let err = parse(json!({ "endpoints": ["http://a:1"], "timeout": "soon" })).unwrap_err();
        assert!(err.contains("soon"), "{err}");
        let cases = [
            (json!({ "endpoints": [] }), "`endpoints` must list"),
            (json!({ "endpoints": ["nacos:8848"] }), "`endpoints[0]`"),
            (json!({ "endpoints": ["https://a:1"] }), "plain http://"),
            (json!({ "endpoints": ["http://a:65000"] }), "port + 1000"),
            (
                json!({ "endpoints": ["http://a:1"], "username": "u" }),
                "`username` needs `password`",
            ),
            (
                json!({ "endpoints": ["http://a:1"], "password": "p" }),
                "`password` needs `username`",
            ),
            (
                json!({ "endpoints": ["http://a:1"], "groups": ["a b"] }),
                "`groups[0]`",
            ),
            (
                json!({ "endpoints": ["http://a:1"], "place_groups": { "A": "" } }),
                "`place_groups` entry `A`",
            ),
            (
                json!({ "endpoints": ["http://a:1"], "service_refresh": "10ms" }),
                "`service_refresh`",
            ),
            (
                json!({ "endpoints": ["http://a:1"], "probe_interval": "1ms" }),
                "`probe_interval`",
            ),
        ];
        for (json, expected) in cases {
            let message = config_error(&parse(json.clone()).unwrap());
            assert!(message.contains(expected), "{json}: {message}");
        }
    }
}
