//! What every networked adapter's config shares: endpoint URLs and the checks on them,
//! client TLS files, and [`Secret`] for passwords and tokens, which never reach `Debug`
//! output, serialized config or error messages.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ConnectorError;

/// How secrets (passwords, tokens, TLS keys) are shown and serialized.
pub const SECRET_MASK: &str = "***";

/// Checks a source's `endpoints`: at least one, each `scheme://host:port`, all `https://`
/// exactly when a `tls` table is set. Errors name the field.
pub(crate) fn check_endpoints(endpoints: &[String], tls: Option<&TlsConfig>) -> Result<(), String> {
    if endpoints.is_empty() {
        return Err("`endpoints` must list at least one URL".to_owned());
    }
    for (i, url) in endpoints.iter().enumerate() {
        check_endpoint(url).map_err(|why| format!("`endpoints[{i}]` {why}"))?;
        let https = url.starts_with("https://");
        if https && tls.is_none() {
            return Err(format!(
                "`endpoints[{i}]` is https but there is no `tls` table (set `tls.ca`)"
            ));
        }
        if !https && tls.is_some() {
            return Err(format!(
                "`endpoints[{i}]` must be an https:// URL when `tls` is set"
            ));
        }
    }
    match tls {
        Some(tls) => tls.check(),
        None => Ok(()),
    }
}

/// The (already checked) `endpoints` parsed once, for the HTTP-speaking adapters.
#[cfg(any(feature = "consul", feature = "nacos"))]
pub(crate) fn parse_urls(
    endpoints: &[String],
) -> Result<std::sync::Arc<[reqwest::Url]>, ConnectorError> {
    endpoints
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let url = reqwest::Url::parse(text);
            url.map_err(|err| ConnectorError::Config(format!("`endpoints[{i}]`: {err}")))
        })
        .collect()
}

/// Runs `attempt` on each of `endpoints` in turn, from `first`, until one succeeds or
/// fails with an error `fail_over` says another endpoint cannot fix. Returns the endpoint
/// that succeeded with its result, or the last error.
#[cfg(any(feature = "consul", feature = "nacos"))]
pub(crate) async fn on_any_endpoint<T, F, Fut>(
    endpoints: &[reqwest::Url],
    first: usize,
    fail_over: fn(&ConnectorError) -> bool,
    mut attempt: F,
) -> Result<(usize, T), ConnectorError>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<T, ConnectorError>>,
{
    let count = endpoints.len();
    let mut last_error = None;
    for offset in 0..count {
        let endpoint = (first + offset) % count;
        match attempt(endpoint).await {
            Ok(found) => return Ok((endpoint, found)),
            Err(err) if fail_over(&err) => {
                let url = &endpoints[endpoint];
                tracing::debug!(endpoint = %url, error = %err, "endpoint failed, trying the next");
                last_error = Some(err);
            }
            Err(err) => return Err(err),
        }
    }
    Err(last_error.unwrap_or_else(|| ConnectorError::Config("no endpoints".into())))
}

/// Checks `scheme://host:port[/]`; the reason never repeats the URL, which might hold
/// credentials.
fn check_endpoint(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or("must start with http:// or https://")?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.contains('@') {
        return Err("must not contain credentials; use `username` and `password`".to_owned());
    }
    if !path.is_empty() {
        return Err("must not have a path (expected scheme://host:port)".to_owned());
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, port) = bracketed
            .split_once("]:")
            .ok_or("must be scheme://[ipv6]:port")?;
        (host, port)
    } else {
        authority
            .rsplit_once(':')
            .ok_or("must include a port (e.g. http://127.0.0.1:2379)")?
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_:".contains(c));
    if !host_ok {
        return Err("has an invalid host".to_owned());
    }
    match port.parse::<u16>() {
        Ok(port) if port > 0 => Ok(()),
        _ => Err("has an invalid port".to_owned()),
    }
}

/// Client TLS: the CA that signed the servers' certificates, and optionally a client
/// certificate and key for servers that verify clients (etcd's `--client-cert-auth`,
/// Consul's `verify_incoming`).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of the CA to trust.
    pub ca: PathBuf,
    /// PEM client certificate; needs `key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert`. Serialized as `***`, like every secret.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "masked"
    )]
    pub key: Option<PathBuf>,
}

/// Writes `***` in place of a write-only value.
fn masked<T, S: Serializer>(_: &T, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(SECRET_MASK)
}

impl TlsConfig {
    /// The files are read when connecting (so renewed certificates are picked up on
    /// reconnect); an unreadable one is then a configuration error naming the field.
    pub(crate) fn check(&self) -> Result<(), String> {
        match (&self.cert, &self.key) {
            (Some(_), None) => Err("`tls.cert` needs `tls.key`".to_owned()),
            (None, Some(_)) => Err("`tls.key` needs `tls.cert`".to_owned()),
            _ => Ok(()),
        }
    }
}

/// The PEM files of a [`TlsConfig`], read.
pub(crate) struct TlsFiles {
    pub ca: Vec<u8>,
    /// Client certificate and key, when configured.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl TlsConfig {
    /// Reads the files now (on every connect, so renewed certificates are picked up); an
    /// unreadable one is a configuration error naming the field.
    pub(crate) async fn read(&self) -> Result<TlsFiles, ConnectorError> {
        let ca = read_pem("ca", &self.ca).await?;
        let identity = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                Some((read_pem("cert", cert).await?, read_pem("key", key).await?))
            }
            _ => None,
        };
        Ok(TlsFiles { ca, identity })
    }
}

async fn read_pem(field: &str, path: &Path) -> Result<Vec<u8>, ConnectorError> {
    tokio::fs::read(path).await.map_err(|err| {
        ConnectorError::Config(format!(
            "`tls.{field}`: cannot read {}: {err}",
            path.display()
        ))
    })
}

/// A secret string: compared normally, but printed and serialized as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(secret.into())
    }

    /// The secret itself, for handing to the client library only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Secret {
    fn from(secret: &str) -> Self {
        Secret::new(secret)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SECRET_MASK)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(SECRET_MASK)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}
