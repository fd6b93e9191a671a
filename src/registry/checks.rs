//! Health-check definitions of native instances: what a registration asks Switchboard to
//! check (TTL, HTTP, TCP), validated once here for every door (the native API and the
//! Consul agent API), and stored with the instance.
//!
//! A TTL check is the registry's heartbeat TTL under Consul's name: a pass renews it, and
//! an instance whose TTL runs out goes offline. HTTP and TCP checks are run by
//! `health`; their results come back through [`crate::registry::Registry::record_check`].

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use switchboard_connectors::CheckStatus;
use utoipa::ToSchema;

use crate::duration;
pub use crate::store::{CheckDefinition, Probe};
use crate::vocab::{invalid, ValidationError};

/// Most checks one instance may have.
pub const MAX_CHECKS: usize = 16;
/// Checks run at most this often (Consul raises shorter intervals to 1 s too).
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// The longest interval, timeout or TTL accepted: one day.
pub const MAX_PERIOD: Duration = Duration::from_secs(86_400);
/// HTTP and TCP checks time out after this by default (Consul's default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A check as a registration asks for it (`checks` in `POST /api/v1/instances`). Give
/// exactly one of `ttl`, `http` or `tcp`. Durations are Go-style text (`"10s"`).
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// Unique per instance; default `service:<instance id>` (with `:<n>` from the second
    /// check on), as Consul names them.
    pub id: Option<String>,
    /// Default `Service '<service>' check`.
    pub name: Option<String>,
    /// A TTL check: passes renew it (heartbeats do too); when it runs out the instance
    /// goes offline.
    #[schema(example = "15s")]
    pub ttl: Option<String>,
    /// An HTTP check: 2xx is passing, 429 warning, anything else critical.
    #[schema(example = "http://10.0.0.7:8080/health")]
    pub http: Option<String>,
    /// HTTP method; default `GET`.
    pub method: Option<String>,
    /// HTTP request headers.
    pub header: Option<BTreeMap<String, Vec<String>>>,
    /// Accept any certificate from an `https` check target.
    pub tls_skip_verify: Option<bool>,
    /// A TCP check: `host:port` that must accept a connection.
    pub tcp: Option<String>,
    /// How often an HTTP or TCP check runs (at least 1 s).
    #[schema(example = "10s")]
    pub interval: Option<String>,
    /// Default 10 s, and never longer than the interval.
    pub timeout: Option<String>,
    /// Deregister the instance once this check has been critical this long: an HTTP or
    /// TCP check never sooner than `[health] deregister_min` (default 1m, as in
    /// Consul); a TTL check this long after its instance expired.
    pub deregister_critical_after: Option<String>,
    /// Initial status, `passing`, `warning` or `critical` (default: critical until the
    /// first result).
    pub status: Option<String>,
    pub notes: Option<String>,
}

fn bad(message: impl Into<String>) -> ValidationError {
    invalid("invalid_check", "checks", message)
}

fn period(text: &Option<String>, what: &str) -> Result<Option<Duration>, ValidationError> {
    let Some(text) = text else { return Ok(None) };
    let value = duration::parse(text).map_err(|err| bad(format!("{what}: {err}")))?;
    if value.is_zero() || value > MAX_PERIOD {
        return Err(bad(format!("{what} must be above 0 and at most 24h")));
    }
    Ok(Some(value))
}

impl CheckRequest {
    /// Validates the `n`-th (from 0) of `count` checks of instance `instance_id` of
    /// `service`, giving it Consul's default id and name. Returns the definition and its
    /// initial status.
    pub fn validate(
        self,
        instance_id: &str,
        service: &str,
        n: usize,
        count: usize,
    ) -> Result<(CheckDefinition, CheckStatus), ValidationError> {
        let probe = match (self.ttl, self.http, self.tcp) {
            (Some(ttl), None, None) => {
                if self.interval.is_some() {
                    return Err(bad("Interval and TTL cannot both be specified"));
                }
                let ttl = period(&Some(ttl), "ttl")?.unwrap_or(MIN_INTERVAL);
                Probe::Ttl { ttl }
            }
            (None, Some(url), None) => {
                let parsed =
                    reqwest::Url::parse(&url).map_err(|err| bad(format!("http `{url}`: {err}")))?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(bad(format!(
                        "http `{url}`: the scheme must be http or https"
                    )));
                }
                let method = self.method.unwrap_or_else(|| "GET".to_owned());
                if reqwest::Method::from_bytes(method.as_bytes()).is_err() {
                    return Err(bad(format!("method `{method}` is not an HTTP method")));
                }
                for (name, values) in self.header.iter().flatten() {
                    use reqwest::header::{HeaderName, HeaderValue};
                    if HeaderName::from_bytes(name.as_bytes()).is_err() {
                        return Err(bad(format!("header `{name}` is not an HTTP header name")));
                    }
                    if let Some(value) = values.iter().find(|v| HeaderValue::from_str(v).is_err()) {
                        return Err(bad(format!(
                            "header `{name}`: `{value}` is not a valid value"
                        )));
                    }
                }
                Probe::Http {
                    url,
                    method,
                    headers: self.header.unwrap_or_default(),
                    tls_skip_verify: self.tls_skip_verify.unwrap_or(false),
                }
            }
            (None, None, Some(address)) => {
                let valid = address
                    .rsplit_once(':')
                    .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
                if !valid {
                    return Err(bad(format!("tcp `{address}` is not host:port")));
                }
                Probe::Tcp { address }
            }
            (None, None, None) => return Err(bad("give one of ttl, http or tcp")),
            _ => return Err(bad("give only one of ttl, http or tcp")),
        };
        let interval = match probe {
            Probe::Ttl { .. } => None,
            _ => Some(
                period(&self.interval, "interval")?
                    .ok_or_else(|| bad("Interval must be > 0 for HTTP and TCP checks"))?
                    .max(MIN_INTERVAL),
            ),
        };
        let timeout = period(&self.timeout, "timeout")?;
        let deregister_critical_after =
            period(&self.deregister_critical_after, "deregister_critical_after")?;
        let status = match self.status.as_deref() {
            None | Some("") => CheckStatus::Critical,
            Some(text) => CheckStatus::parse(text)
                .ok_or_else(|| bad("Status for checks must 'passing', 'warning', 'critical'"))?,
        };
        let id = match self.id {
            Some(id) if !id.is_empty() => id,
            _ if count > 1 => format!("service:{instance_id}:{}", n + 1),
            _ => format!("service:{instance_id}"),
        };
        if id.len() > 256 {
            return Err(bad("a check id is at most 256 bytes"));
        }
        let name = match self.name {
            Some(name) if !name.is_empty() => name,
            _ => format!("Service '{service}' check"),
        };
        let definition = CheckDefinition {
            id,
            name,
            probe,
            interval,
            timeout,
            deregister_critical_after,
            notes: self.notes.unwrap_or_default(),
        };
        Ok((definition, status))
    }
}

/// Validates a registration's checks: at most [`MAX_CHECKS`], ids distinct.
pub fn validate_all(
    requests: Vec<CheckRequest>,
    instance_id: &str,
    service: &str,
) -> Result<Vec<(CheckDefinition, CheckStatus)>, ValidationError> {
    if requests.len() > MAX_CHECKS {
        return Err(bad(format!("at most {MAX_CHECKS} checks per instance")));
    }
    let count = requests.len();
    let mut checks = Vec::with_capacity(count);
    for (n, request) in requests.into_iter().enumerate() {
        let (definition, status) = request.validate(instance_id, service, n, count)?;
        if checks
            .iter()
            .any(|(other, _): &(CheckDefinition, _)| other.id == definition.id)
        {
            return Err(bad(format!("check id `{}` is given twice", definition.id)));
        }
        checks.push((definition, status));
    }
    Ok(checks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(url: &str) -> CheckRequest {
        CheckRequest {
            http: Some(url.into()),
            interval: Some("10s".into()),
            ..CheckRequest::default()
        }
    }

    #[test]
    fn checks_get_consuls_default_ids_names_and_status() {
        let one = validate_all(vec![http("http://a:1/h")], "web-1", "web").unwrap();
        assert_eq!(one[0].0.id, "service:web-1");
        assert_eq!(one[0].0.name, "Service 'web' check");
        assert_eq!(one[0].1, CheckStatus::Critical);
        let two = validate_all(vec![http("http://a:1/h"), http("http://a:1/g")], "w", "s");
        let ids: Vec<_> = two.unwrap().into_iter().map(|(d, _)| d.id).collect();
        assert_eq!(ids, ["service:w:1", "service:w:2"]);
    }

    #[test]
    fn bad_checks_are_refused_with_a_reason() {
        let cases = [
            CheckRequest::default(),
            CheckRequest {
                ttl: Some("10s".into()),
                interval: Some("10s".into()),
                ..CheckRequest::default()
            },
            CheckRequest {
                http: Some("ftp://x/".into()),
                interval: Some("1s".into()),
                ..CheckRequest::default()
            },
            CheckRequest {
                http: Some("http://x/".into()),
                ..CheckRequest::default()
            },
            CheckRequest {
                tcp: Some("nohost".into()),
                interval: Some("1s".into()),
                ..CheckRequest::default()
            },
            CheckRequest {
                ttl: Some("soon".into()),
                ..CheckRequest::default()
            },
            CheckRequest {
                header: Some([("bad name".into(), vec!["v".into()])].into()),
                ..http("http://x/")
            },
            CheckRequest {
                header: Some([("X-Ok".into(), vec!["line\nbreak".into()])].into()),
                ..http("http://x/")
            },
        ];
        for case in cases {
            let err = validate_all(vec![case.clone()], "i", "s").unwrap_err();
            assert_eq!(err.code, "invalid_check", "{case:?}");
        }
    }

    #[test]
    fn intervals_are_raised_to_their_minimum() {
        let request = CheckRequest {
            tcp: Some("10.0.0.1:80".into()),
            interval: Some("100ms".into()),
            deregister_critical_after: Some("5s".into()),
            ..CheckRequest::default()
        };
        let (check, _) = request.validate("i", "s", 0, 1).unwrap();
        assert_eq!(check.interval, Some(MIN_INTERVAL));
        assert_eq!(
            check.deregister_critical_after,
            Some(Duration::from_secs(5))
        );
    }
}
