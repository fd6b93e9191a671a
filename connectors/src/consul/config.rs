//! A Consul source's own configuration ([`ConsulConfig`]): its fields, their defaults, and
//! the checks `ConsulConnector::new` runs before anything connects. The ACL token is a
//! [`Secret`]: never shown, serialized or logged.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::duration::serde_text;
use crate::endpoint::{check_endpoints, Secret, TlsConfig};
use crate::ConnectorError;

/// The longest `wait` Consul honours; it caps longer ones silently, we refuse them.
const MAX_WAIT: Duration = Duration::from_secs(600);

/// The fields of an `[[sources]]` table with `type = "consul"` besides the common ones
/// (`id`, `priority`, `namespace`, `group`, `max_stale`, `empty_confirm`).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConsulConfig {
    /// HTTP(S) addresses of Consul agents or servers (`http://host:8500`). One is used at
    /// a time, in order; the next is tried when it stops answering.
    pub endpoints: Vec<String>,
    /// ACL token, sent as `X-Consul-Token`. Shown and serialized as `***`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// Datacenter to read (`?dc=`); unset: the agent's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacenter: Option<String>,
    /// TLS for `https://` endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// Serve only instances whose checks all pass. Default false: instances with a
    /// critical check are kept, with `healthy: false`.
    #[serde(default)]
    pub only_passing: bool,
    /// Tags an instance must all carry to be served (a string or a list). Empty: all.
    #[serde(default, deserialize_with = "crate::one_or_many")]
    pub tag_filter: Vec<String>,
    /// How long one blocking query waits for a change (default `5m`, at most `10m`).
    #[serde(default = "default_wait", with = "serde_text")]
    pub wait: Duration,
    /// Deadline for connecting and for each request that does not block (default `5s`).
    #[serde(default = "default_timeout", with = "serde_text")]
    pub timeout: Duration,
    /// TTL of the check on instances Switchboard registers (sync-back); Switchboard
    /// passes it three times per TTL (default `30s`).
    #[serde(default = "default_check_ttl", with = "serde_text")]
    pub check_ttl: Duration,
    /// Consul deregisters an instance Switchboard registered once its check has been
    /// critical this long (Switchboard stopped keeping it alive). Unset: never.
    #[serde(
        default,
        with = "serde_text::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub deregister_critical_after: Option<Duration>,
}

fn default_wait() -> Duration {
    Duration::from_secs(300)
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_check_ttl() -> Duration {
    Duration::from_secs(30)
}

impl ConsulConfig {
    /// A config with every optional field at its default.
    pub fn new<I, S>(endpoints: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ConsulConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            token: None,
            datacenter: None,
            tls: None,
            only_passing: false,
            tag_filter: Vec::new(),
            wait: default_wait(),
            timeout: default_timeout(),
            check_ttl: default_check_ttl(),
            deregister_critical_after: None,
        }
    }

    /// Checks everything that can be checked without connecting. Errors name the field.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        self.check().map_err(ConnectorError::Config)
    }

    fn check(&self) -> Result<(), String> {
        check_endpoints(&self.endpoints, self.tls.as_ref())?;
        if let Some(token) = &self.token {
            let printable = token.expose().bytes().all(|b| b.is_ascii_graphic());
            if token.expose().is_empty() || !printable {
                return Err("`token` must be non-empty printable ASCII".to_owned());
            }
        }
        if let Some(dc) = &self.datacenter {
            let ok = !dc.is_empty()
                && dc
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !ok {
                return Err("`datacenter` must be 1+ characters of [A-Za-z0-9._-]".to_owned());
            }
        }
        if let Some(i) = self.tag_filter.iter().position(String::is_empty) {
            return Err(format!("`tag_filter[{i}]` must not be empty"));
        }
        if self.wait.is_zero() || self.wait > MAX_WAIT {
            return Err("`wait` must be more than zero and at most 10m".to_owned());
        }
        if self.timeout.is_zero() {
            return Err("`timeout` must be more than zero".to_owned());
        }
        if self.check_ttl < Duration::from_secs(1) {
            return Err("`check_ttl` must be at least 1s".to_owned());
        }
        if self
            .deregister_critical_after
            .is_some_and(|after| after.is_zero())
        {
            return Err("`deregister_critical_after` must be more than zero".to_owned());
        }
        Ok(())
    }

    /// How long one blocking request may take before it counts as lost: the wait, the
    /// server's jitter (up to wait/16), and the ordinary timeout on top.
    pub(crate) fn blocking_deadline(&self) -> Duration {
        self.wait + self.wait / 16 + self.timeout
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(json: serde_json::Value) -> Result<ConsulConfig, String> {
        crate::config_checks::parse(json)
    }

    fn config_error(config: &ConsulConfig) -> String {
        crate::config_checks::config_error(config.validate())
    }

    #[test]
    fn defaults_fill_everything_but_endpoints() {
        let config = parse(json!({ "endpoints": ["http://127.0.0.1:8500"] })).unwrap();
        assert_eq!(config, ConsulConfig::new(["http://127.0.0.1:8500"]));
        assert_eq!(config.wait, Duration::from_secs(300));
        assert!(!config.only_passing && config.tag_filter.is_empty());
        config.validate().unwrap();
        assert_eq!(config.blocking_deadline(), Duration::from_millis(323_750));
    }

    #[test]
    fn parses_every_field_and_hides_the_token() {
        let config = parse(json!({
            "endpoints": ["https://consul-a:8501", "https://consul-b:8501"],
            "token": "s3cr3t-token",
            "datacenter": "eu-west",
            "tls": { "ca": "/etc/consul/ca.pem", "cert": "/c.pem", "key": "/k.pem" },
            "only_passing": true,
            "tag_filter": "v1",
            "wait": "30s",
            "timeout": "2s",
            "check_ttl": "10s",
            "deregister_critical_after": "1m",
        }))
        .unwrap();
        config.validate().unwrap();
        assert_eq!(config.tag_filter, ["v1"]);
        assert_eq!(config.token.as_ref().unwrap().expose(), "s3cr3t-token");
        let shown = serde_json::to_string(&config).unwrap();
        assert!(
            !shown.contains("s3cr3t") && shown.contains("\"***\""),
            "{shown}"
        );
        assert!(!format!("{config:?}").contains("s3cr3t"));
        let list = parse(json!({ "endpoints": ["http://a:1"], "tag_filter": ["a", "b"] }));
        assert_eq!(list.unwrap().tag_filter, ["a", "b"]);
    }

    #[test]
    fn unknown_fields_and_bad_values_are_named() {
        let err = parse(json!({ "endpoints": ["http://a:1"], "tokn": "x" })).unwrap_err();
        assert!(err.contains("tokn"), "{err}");
        let err = parse(json!({ "endpoints": ["http://a:1"], "wait": "soon" })).unwrap_err();
        assert!(err.contains("soon"), "{err}");
        let cases = [
            (json!({ "endpoints": [] }), "`endpoints` must list"),
            (json!({ "endpoints": ["consul:8500"] }), "`endpoints[0]`"),
            (
                json!({ "endpoints": ["http://a:1"], "wait": "11m" }),
                "`wait`",
            ),
            (
                json!({ "endpoints": ["http://a:1"], "wait": "0s" }),
                "`wait`",
            ),
            (
                json!({ "endpoints": ["http://a:1"], "token": "" }),
                "`token`",
            ),
            (
                json!({ "endpoints": ["http://a:1"], "datacenter": "a b" }),
                "`datacenter`",
            ),
            (
                json!({ "endpoints": ["http://a:1"], "tag_filter": [""] }),
                "`tag_filter[0]`",
            ),
            (
                json!({ "endpoints": ["http://a:1"], "check_ttl": "10ms" }),
                "`check_ttl`",
            ),
            (json!({ "endpoints": ["https://a:1"] }), "no `tls` table"),
        ];
        for (json, expected) in cases {
            let message = config_error(&parse(json.clone()).unwrap());
            assert!(message.contains(expected), "{json}: {message}");
        }
    }
}
