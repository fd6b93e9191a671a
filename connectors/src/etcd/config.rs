//! An etcd source's own configuration ([`EtcdConfig`]): its fields, their defaults, and the
//! checks `EtcdConnector::new` runs before anything connects. Secrets never reach `Debug`
//! output, serialized config or error messages.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::template::{KeyTemplate, Segment};
use crate::duration::serde_text;
use crate::endpoint::check_endpoints;
pub use crate::endpoint::{Secret, TlsConfig};
use crate::ConnectorError;

/// The fields of an `[[sources]]` table with `type = "etcd"` besides the common ones
/// (`id`, `priority`, `namespace`, `group`, `max_stale`, `empty_confirm`).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdConfig {
    /// Client URLs of the cluster's members (`http://host:port`, or `https://` with `tls`).
    /// One is used at a time, in order; the next is tried when it stops answering.
    pub endpoints: Vec<String>,
    /// User for etcd's authentication; needs `password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Password of `username`. Shown and serialized as `***`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// TLS for `https://` endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// Key prefix watched (default `/services/`). A `/` is appended when missing, so
    /// `/services` does not also match `/services-old/...`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// How values are read (default `auto`).
    #[serde(default)]
    pub format: ValueFormat,
    /// Layout of a key below `prefix`: `/`-separated segments, each a literal or one of
    /// `{service}`, `{version}`, `{id}` (default `{service}/{id}`).
    #[serde(default = "default_key_template")]
    pub key_template: String,
    /// Deadline for connecting, authenticating and each listing request (default `5s`).
    #[serde(default = "default_timeout", with = "serde_text")]
    pub timeout: Duration,
    /// When Switchboard writes instances here (sync-back): the TTL of the lease its keys
    /// carry (default `30s`, at least `2s`; rounded up to whole seconds). Switchboard
    /// keeps the lease alive, so the keys vanish about this long after it stops.
    #[serde(default = "default_write_lease_ttl", with = "serde_text")]
    pub write_lease_ttl: Duration,
    /// Write keys without a lease, so they stay until deregistered (default `false`).
    #[serde(default)]
    pub write_persistent: bool,
}

fn default_prefix() -> String {
    "/services/".to_owned()
}

fn default_key_template() -> String {
    "{service}/{id}".to_owned()
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_write_lease_ttl() -> Duration {
    Duration::from_secs(30)
}

/// etcd's shortest lease: it raises shorter TTLs to about 1.5 election timeouts (1.5s
/// with its defaults), and whole seconds are what it grants.
const MIN_WRITE_LEASE_TTL: Duration = Duration::from_secs(2);

impl EtcdConfig {
    /// A config with every optional field at its default.
    pub fn new<I, S>(endpoints: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        EtcdConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            username: None,
            password: None,
            tls: None,
            prefix: default_prefix(),
            format: ValueFormat::default(),
            key_template: default_key_template(),
            timeout: default_timeout(),
            write_lease_ttl: default_write_lease_ttl(),
            write_persistent: false,
        }
    }

    /// Checks everything that can be checked without connecting. Errors name the field.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        self.check().map_err(ConnectorError::Config)
    }

    fn check(&self) -> Result<(), String> {
        check_endpoints(&self.endpoints, self.tls.as_ref())?;
        match (&self.username, &self.password) {
            (Some(user), Some(_)) if user.is_empty() => {
                return Err("`username` must not be empty".to_owned())
            }
            (Some(_), None) => return Err("`username` needs `password`".to_owned()),
            (None, Some(_)) => return Err("`password` needs `username`".to_owned()),
            _ => {}
        }
        if self.timeout.is_zero() {
            return Err("`timeout` must be more than zero".to_owned());
        }
        if self.write_lease_ttl < MIN_WRITE_LEASE_TTL {
            return Err(format!(
                "`write_lease_ttl` must be at least {} (etcd's shortest lease)",
                crate::duration::format(MIN_WRITE_LEASE_TTL)
            ));
        }
        let template = KeyTemplate::parse(&self.key_template)
            .map_err(|why| format!("`key_template` {why}"))?;
        if self.format == ValueFormat::Plain && !template.has(Segment::Service) {
            return Err(
                "`key_template` must contain `{service}` when `format` is `plain`".to_owned(),
            );
        }
        Ok(())
    }

    /// The prefix as watched: ends with `/` unless empty.
    pub(crate) fn effective_prefix(&self) -> String {
        if self.prefix.is_empty() || self.prefix.ends_with('/') {
            self.prefix.clone()
        } else {
            format!("{}/", self.prefix)
        }
    }
}

/// How a value is read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueFormat {
    /// A JSON object if the value parses as one, else `host:port`.
    #[default]
    Auto,
    /// Always a JSON object describing the instance.
    Json,
    /// Always `host:port` (the key names service and id).
    Plain,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(json: serde_json::Value) -> Result<EtcdConfig, String> {
        crate::config_checks::parse(json)
    }

    fn config_error(config: &EtcdConfig) -> String {
        crate::config_checks::config_error(config.validate())
    }

    #[test]
    fn defaults_fill_everything_but_endpoints() {
        let config = parse(json!({ "endpoints": ["http://127.0.0.1:2379"] })).unwrap();
        assert_eq!(config, EtcdConfig::new(["http://127.0.0.1:2379"]));
        assert_eq!(config.prefix, "/services/");
        assert_eq!(config.format, ValueFormat::Auto);
        assert_eq!(config.key_template, "{service}/{id}");
        assert_eq!(config.timeout, Duration::from_secs(5));
        assert_eq!(config.write_lease_ttl, Duration::from_secs(30));
        assert!(!config.write_persistent);
        config.validate().unwrap();
        let shown = serde_json::to_value(&config).unwrap();
        assert_eq!(shown["write_lease_ttl"], "30s");
        assert_eq!(shown["write_persistent"], false);
    }

    #[test]
    fn parses_every_field() {
        let config = parse(json!({
            "endpoints": ["https://10.0.0.1:2379", "https://[::1]:2379"],
            "username": "root",
            "password": "hunter2",
            "tls": { "ca": "/etc/etcd/ca.pem" },
            "prefix": "/fyerrpc/services",
            "format": "json",
            "key_template": "{service}/{version}/{id}",
            "timeout": "750ms",
            "write_lease_ttl": "1m",
            "write_persistent": true,
        }))
        .unwrap();
        config.validate().unwrap();
        assert_eq!(config.password, Some(Secret::new("hunter2")));
        assert_eq!(config.effective_prefix(), "/fyerrpc/services/");
        assert_eq!(config.timeout, Duration::from_millis(750));
        assert_eq!(config.format, ValueFormat::Json);
        let shown = serde_json::to_value(&config).unwrap();
        assert_eq!(shown["password"], "***");
        assert_eq!(shown["timeout"], "750ms");
        assert_eq!(shown["tls"]["ca"], "/etc/etcd/ca.pem");
        assert_eq!(config.write_lease_ttl, Duration::from_secs(60));
        assert!(config.write_persistent);
        assert_eq!(shown["write_lease_ttl"], "1m0s");
        assert_eq!(shown["write_persistent"], true);
    }

    #[test]
    fn write_lease_ttl_is_at_least_two_seconds() {
        let mut config = EtcdConfig::new(["http://127.0.0.1:2379"]);
        config.write_lease_ttl = Duration::from_millis(1999);
        assert!(config_error(&config).contains("`write_lease_ttl` must be at least 2s"));
        config.write_lease_ttl = Duration::from_secs(2);
        config.validate().unwrap();
        let err =
            parse(json!({ "endpoints": ["http://a:1"], "write_lease_ttl": "soon" })).unwrap_err();
        assert!(err.contains("`soon`"), "{err}");
    }

    #[test]
    fn unknown_fields_are_rejected_by_name() {
        let err = parse(json!({ "endpoints": ["http://a:1"], "prefx": "/x/" })).unwrap_err();
        assert!(err.contains("prefx"), "{err}");
        let err = parse(json!({ "endpoints": ["http://a:1"], "format": "yaml" })).unwrap_err();
        assert!(err.contains("yaml"), "{err}");
    }

    #[test]
    fn secrets_never_show() {
        let mut config = EtcdConfig::new(["http://127.0.0.1:2379"]);
        config.username = Some("root".into());
        config.password = Some("hunter2".into());
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("hunter2") && debug.contains("***"),
            "{debug}"
        );
        let json = serde_json::to_string(&config).unwrap();
        assert!(
            !json.contains("hunter2") && json.contains("\"***\""),
            "{json}"
        );
        assert_eq!(config.password.as_ref().unwrap().expose(), "hunter2");
    }

    #[test]
    fn bad_endpoints_are_named() {
        let cases = [
            (vec![], "`endpoints` must list"),
            (
                vec!["127.0.0.1:2379"],
                "`endpoints[0]` must start with http://",
            ),
            (
                vec!["http://a:1", "http://:2379"],
                "`endpoints[1]` has an invalid host",
            ),
            (vec!["http://host"], "`endpoints[0]` must include a port"),
            (vec!["http://host:99999"], "invalid port"),
            (vec!["http://host:2379/v3"], "must not have a path"),
            (vec!["https://host:2379"], "no `tls` table"),
        ];
        for (endpoints, expected) in cases {
            let config = EtcdConfig::new(endpoints.clone());
            let message = config_error(&config);
            assert!(message.contains(expected), "{endpoints:?}: {message}");
        }
    }

    #[test]
    fn credentials_in_urls_are_rejected_without_echoing_them() {
        let config = EtcdConfig::new(["http://root:hunter2@127.0.0.1:2379"]);
        let message = config_error(&config);
        assert!(
            message.contains("credentials") && !message.contains("hunter2"),
            "{message}"
        );
    }

    #[test]
    fn username_and_password_go_together() {
        let mut config = EtcdConfig::new(["http://127.0.0.1:2379"]);
        config.username = Some("root".into());
        assert!(config_error(&config).contains("`username` needs `password`"));
        config.username = None;
        config.password = Some("x".into());
        assert!(config_error(&config).contains("`password` needs `username`"));
    }

    #[test]
    fn tls_needs_https_and_a_key_with_the_cert() {
        let mut config = EtcdConfig::new(["http://127.0.0.1:2379"]);
        config.tls = Some(TlsConfig {
            ca: "/nonexistent/ca.pem".into(),
            cert: None,
            key: None,
        });
        assert!(config_error(&config).contains("https:// URL when `tls` is set"));
        config.endpoints = vec!["https://127.0.0.1:2379".into()];
        config.validate().unwrap();
        config.tls.as_mut().unwrap().cert = Some("/x".into());
        assert!(config_error(&config).contains("`tls.cert` needs `tls.key`"));
    }

    #[test]
    fn bad_templates_are_named() {
        for (template, expected) in [
            ("", "must not be empty"),
            ("{service}//{id}", "empty segment"),
            ("{service}/{name}", "`{name}` is not a placeholder"),
            ("{service}-{id}", "is not a placeholder"),
            ("{service}/{id}/{id}", "repeats `{id}`"),
        ] {
            let mut config = EtcdConfig::new(["http://127.0.0.1:2379"]);
            config.key_template = template.to_owned();
            let message = config_error(&config);
            assert!(
                message.starts_with("`key_template`") && message.contains(expected),
                "{template}: {message}"
            );
        }
        let mut config = EtcdConfig::new(["http://127.0.0.1:2379"]);
        config.key_template = "{id}".to_owned();
        config.validate().unwrap();
        config.format = ValueFormat::Plain;
        assert!(config_error(&config).contains("must contain `{service}`"));
    }
}
