//! Validation of registration input. Every rule has a stable error code the API returns.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use switchboard_connectors::{ServiceKey, Status, DEFAULT_GROUP, DEFAULT_NAMESPACE};
use utoipa::ToSchema;

use crate::vocab::schemas::{InstanceId, Name};
use crate::vocab::{
    invalid, parse_status, validate_id, validate_name, ValidationError, MAX_NAME_LEN,
};

pub const MAX_WEIGHT: i64 = 10_000;
pub const MAX_METADATA_KEYS: usize = 64;
pub const MAX_METADATA_KEY_LEN: usize = 128;
pub const MAX_METADATA_VALUE_LEN: usize = 1024;
pub const MAX_TAGS: usize = 64;
pub const MAX_TAG_LEN: usize = 256;
/// Longest accepted per-instance TTL or deregistration delay: one day.
pub const MAX_TTL_SECONDS: i64 = 86_400;

/// Body of `POST /api/v1/instances`.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// Instance id; generated as `{service}-{uuid}` when absent. Re-registering an id
    /// replaces that instance.
    #[schema(value_type = Option<InstanceId>)]
    pub id: Option<String>,
    /// Service name (`name` is accepted as an alias).
    #[serde(alias = "name")]
    #[schema(value_type = Name, required = true, example = "orders")]
    pub service: Option<String>,
    /// Default `public`.
    #[schema(value_type = Option<Name>)]
    pub namespace: Option<String>,
    /// Default `DEFAULT`.
    #[schema(value_type = Option<Name>)]
    pub group: Option<String>,
    /// `host:port` (a hostname or IPv4 address; IPv6 in brackets, `[::1]:8080`).
    /// Give either `address` or both `host` and `port`.
    #[schema(max_length = 512, example = "10.0.0.7:8080")]
    pub address: Option<String>,
    /// A hostname, IPv4 or IPv6 address; with `port`, instead of `address`.
    pub host: Option<String>,
    #[schema(minimum = 1, maximum = 65535)]
    pub port: Option<i64>,
    /// Default `http`.
    #[schema(pattern = "^[A-Za-z0-9+._-]{1,32}$")]
    pub protocol: Option<String>,
    #[schema(min_length = 1, max_length = 128)]
    pub version: Option<String>,
    /// Default 100.
    #[schema(minimum = 0, maximum = 10000)]
    pub weight: Option<i64>,
    /// `active` (default), `inactive`, `maintenance` or `offline`.
    #[schema(value_type = Option<Status>)]
    pub status: Option<String>,
    /// At most 64 keys of 1-128 bytes; values at most 1024 bytes.
    pub metadata: Option<BTreeMap<String, String>>,
    /// At most 64 tags of 1-256 bytes.
    #[schema(max_items = 64)]
    pub tags: Option<Vec<String>>,
    /// Heartbeat TTL in seconds; default from config (30 s).
    #[schema(minimum = 1, maximum = 86400)]
    pub ttl_seconds: Option<i64>,
    /// Delete the instance after it has been offline by expiry this long.
    #[schema(minimum = 1, maximum = 86400)]
    pub deregister_after_seconds: Option<i64>,
    /// When the instance process started; default: now.
    pub start_time: Option<DateTime<Utc>>,
    /// Health checks Switchboard runs (HTTP, TCP) or waits on (TTL) for this instance.
    /// With checks and no TTL check, the instance is not expired by heartbeat TTL.
    #[schema(max_items = 16)]
    pub checks: Option<Vec<super::checks::CheckRequest>>,
}

/// A registration that passed validation.
#[derive(Clone, Debug)]
pub struct ValidRegistration {
    pub id: Option<String>,
    pub service: ServiceKey,
    pub host: String,
    pub port: u16,
    pub protocol: String,
    pub version: Option<String>,
    pub weight: u32,
    pub status: Status,
    pub metadata: BTreeMap<String, String>,
    pub tags: Vec<String>,
    pub ttl_seconds: Option<u64>,
    pub deregister_after_seconds: Option<u64>,
    pub start_time: Option<DateTime<Utc>>,
    /// Validated with the instance id, once it is known.
    pub checks: Vec<super::checks::CheckRequest>,
}

impl RegisterRequest {
    pub fn validate(self) -> Result<ValidRegistration, ValidationError> {
        let name = self
            .service
            .ok_or_else(|| invalid("invalid_service_name", "service", "service is required"))?;
        validate_name(&name, "invalid_service_name", "service")?;
        let namespace = self
            .namespace
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
        validate_name(&namespace, "invalid_namespace", "namespace")?;
        let group = self.group.unwrap_or_else(|| DEFAULT_GROUP.to_owned());
        validate_name(&group, "invalid_group", "group")?;
        if let Some(id) = &self.id {
            validate_id(id)?;
        }
        let (host, port) = match (self.address, self.host, self.port) {
            (Some(address), None, None) => parse_address(&address)?,
            (None, Some(host), Some(port)) => (validate_host(&host, false)?, validate_port(port)?),
            (None, None, None) => {
                return Err(invalid(
                    "invalid_address",
                    "address",
                    "address is required (host:port)",
                ))
            }
            _ => {
                return Err(invalid(
                    "invalid_address",
                    "address",
                    "give either `address` or both `host` and `port`",
                ))
            }
        };
        let protocol = self.protocol.unwrap_or_else(|| "http".to_owned());
        if protocol.is_empty()
            || protocol.len() > 32
            || !protocol
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+.-_".contains(&b))
        {
            return Err(invalid(
                "invalid_protocol",
                "protocol",
                "protocol must be 1-32 characters of [A-Za-z0-9+._-]",
            ));
        }
        if let Some(version) = &self.version {
            if version.is_empty() || version.len() > 128 {
                return Err(invalid(
                    "invalid_version",
                    "version",
                    "version must be 1-128 bytes",
                ));
            }
        }
        let weight = self.weight.unwrap_or(100);
        if !(0..=MAX_WEIGHT).contains(&weight) {
            return Err(invalid(
                "invalid_weight",
                "weight",
                format!("weight must be between 0 and {MAX_WEIGHT}, got {weight}"),
            ));
        }
        let status = match self.status {
            Some(text) => parse_status(&text)?,
            None => Status::Active,
        };
        let metadata = self.metadata.unwrap_or_default();
        validate_metadata(&metadata)?;
        let tags = self.tags.unwrap_or_default();
        if tags.len() > MAX_TAGS || tags.iter().any(|t| t.is_empty() || t.len() > MAX_TAG_LEN) {
            return Err(invalid(
                "invalid_tags",
                "tags",
                format!("at most {MAX_TAGS} tags, each 1-{MAX_TAG_LEN} bytes"),
            ));
        }
        let ttl_seconds = seconds(self.ttl_seconds, "invalid_ttl", "ttl_seconds")?;
        let deregister_after_seconds = seconds(
            self.deregister_after_seconds,
            "invalid_deregister_after",
            "deregister_after_seconds",
        )?;
        Ok(ValidRegistration {
            id: self.id,
            service: ServiceKey::new(namespace, group, name),
            host,
            port,
            protocol,
            version: self.version,
            weight: weight as u32,
            status,
            metadata,
            tags,
            ttl_seconds,
            deregister_after_seconds,
            start_time: self.start_time,
            checks: self.checks.unwrap_or_default(),
        })
    }
}

/// `host:port` with port 1-65535; IPv6 hosts must be bracketed (`[::1]:80`).
pub fn parse_address(address: &str) -> Result<(String, u16), ValidationError> {
    let bad = |why: &str| invalid("invalid_address", "address", format!("`{address}`: {why}"));
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let (host, port) = rest
            .split_once("]:")
            .ok_or_else(|| bad("expected [ipv6]:port"))?;
        host.parse::<Ipv6Addr>()
            .map_err(|_| bad("not a valid IPv6 address in brackets"))?;
        (host.to_owned(), port)
    } else {
        let (host, port) = address
            .rsplit_once(':')
            .ok_or_else(|| bad("expected host:port"))?;
        if host.contains(':') {
            return Err(bad(
                "IPv6 addresses must be written in brackets, like [::1]:8080",
            ));
        }
        (validate_host(host, true)?, port)
    };
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("port must be a number from 1 to 65535"));
    }
    let port: i64 = port.parse().map_err(|_| bad("port is not a number"))?;
    Ok((
        host,
        validate_port(port).map_err(|_| bad("port must be 1-65535"))?,
    ))
}

fn validate_port(port: i64) -> Result<u16, ValidationError> {
    u16::try_from(port).ok().filter(|p| *p != 0).ok_or_else(|| {
        invalid(
            "invalid_address",
            "port",
            format!("port must be 1-65535, got {port}"),
        )
    })
}

/// A hostname, IPv4 address, or (only when given as a separate `host`) a bare IPv6 address.
fn validate_host(host: &str, in_address: bool) -> Result<String, ValidationError> {
    let bad = || {
        invalid(
            "invalid_address",
            if in_address { "address" } else { "host" },
            format!("`{host}` is not a valid host"),
        )
    };
    if !in_address {
        // A separate `host` may be a bare IPv6 address, or one in a single pair of brackets.
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if bare.parse::<Ipv6Addr>().is_ok() {
            return Ok(bare.to_owned());
        }
    }
    if host.parse::<Ipv4Addr>().is_ok() {
        return Ok(host.to_owned());
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if host.is_empty() || host.len() > MAX_NAME_LEN || !host.split('.').all(label_ok) {
        return Err(bad());
    }
    Ok(host.to_owned())
}

fn validate_metadata(metadata: &BTreeMap<String, String>) -> Result<(), ValidationError> {
    if metadata.len() > MAX_METADATA_KEYS {
        return Err(invalid(
            "invalid_metadata",
            "metadata",
            format!("at most {MAX_METADATA_KEYS} keys, got {}", metadata.len()),
        ));
    }
    for (key, value) in metadata {
        if key.is_empty() || key.len() > MAX_METADATA_KEY_LEN {
            return Err(invalid(
                "invalid_metadata",
                "metadata",
                format!("keys must be 1-{MAX_METADATA_KEY_LEN} bytes"),
            ));
        }
        if value.len() > MAX_METADATA_VALUE_LEN {
            return Err(invalid(
                "invalid_metadata",
                "metadata",
                format!("value of `{key}` is longer than {MAX_METADATA_VALUE_LEN} bytes"),
            ));
        }
    }
    Ok(())
}

fn seconds(
    value: Option<i64>,
    code: &'static str,
    field: &'static str,
) -> Result<Option<u64>, ValidationError> {
    match value {
        None => Ok(None),
        Some(secs) if (1..=MAX_TTL_SECONDS).contains(&secs) => Ok(Some(secs as u64)),
        Some(secs) => Err(invalid(
            code,
            field,
            format!("{field} must be between 1 and {MAX_TTL_SECONDS}, got {secs}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(service: &str, address: &str) -> RegisterRequest {
        RegisterRequest {
            service: Some(service.into()),
            address: Some(address.into()),
            ..RegisterRequest::default()
        }
    }

    fn code(req: RegisterRequest) -> &'static str {
        req.validate().unwrap_err().code
    }

    #[test]
    fn accepts_a_minimal_registration_with_defaults() {
        let valid = request("user-service", "127.0.0.1:8080")
            .validate()
            .unwrap();
        assert_eq!(valid.service, ServiceKey::named("user-service"));
        assert_eq!((valid.host.as_str(), valid.port), ("127.0.0.1", 8080));
        assert_eq!(valid.protocol, "http");
        assert_eq!(valid.weight, 100);
        assert_eq!(valid.status, Status::Active);
    }

    #[test]
    fn service_names() {
        assert!(request(&"a".repeat(253), "h:1").validate().is_ok());
        assert_eq!(
            code(request(&"a".repeat(254), "h:1")),
            "invalid_service_name"
        );
        assert_eq!(code(request("", "h:1")), "invalid_service_name");
        assert_eq!(code(request("bad name", "h:1")), "invalid_service_name");
        assert_eq!(code(request("bad/name", "h:1")), "invalid_service_name");
        assert!(request("A.b_c-9", "h:1").validate().is_ok());
        let missing = RegisterRequest {
            address: Some("h:1".into()),
            ..RegisterRequest::default()
        };
        assert_eq!(code(missing), "invalid_service_name");
    }

    #[test]
    fn addresses() {
        let ok = |a: &str| request("s", a).validate().map(|v| (v.host, v.port));
        assert_eq!(ok("[::1]:8080").unwrap(), ("::1".into(), 8080));
        assert_eq!(
            ok("example.com:65535").unwrap(),
            ("example.com".into(), 65535)
        );
        assert_eq!(ok("10.0.0.1:1").unwrap(), ("10.0.0.1".into(), 1));
        for bad in [
            "10.0.0.1",
            "10.0.0.1:0",
            "10.0.0.1:65536",
            "10.0.0.1:-1",
            "10.0.0.1:http",
            "::1:80",
            "[::1]80",
            "10.0.0.1:+80",
            "[zz::1]:80",
            ":80",
            "bad host:80",
            "[::1]:",
            "",
        ] {
            assert_eq!(ok(bad).unwrap_err().code, "invalid_address", "{bad:?}");
        }
        let split = RegisterRequest {
            service: Some("s".into()),
            host: Some("::1".into()),
            port: Some(9000),
            ..RegisterRequest::default()
        };
        assert_eq!(split.validate().unwrap().host, "::1");
        for unbalanced in ["[::1", "::1]", "[[::1]]"] {
            let split = RegisterRequest {
                service: Some("s".into()),
                host: Some(unbalanced.into()),
                port: Some(9000),
                ..RegisterRequest::default()
            };
            assert_eq!(
                split.validate().unwrap_err().code,
                "invalid_address",
                "{unbalanced}"
            );
        }
    }

    #[test]
    fn weights() {
        let with = |w: i64| RegisterRequest {
            weight: Some(w),
            ..request("s", "h:1")
        };
        assert!(with(0).validate().is_ok());
        assert!(with(10_000).validate().is_ok());
        assert_eq!(code(with(10_001)), "invalid_weight");
        assert_eq!(code(with(-1)), "invalid_weight");
    }

    #[test]
    fn metadata_limits() {
        let with = |m: BTreeMap<String, String>| RegisterRequest {
            metadata: Some(m),
            ..request("s", "h:1")
        };
        let many: BTreeMap<_, _> = (0..64).map(|i| (format!("k{i}"), "v".to_owned())).collect();
        assert!(with(many.clone()).validate().is_ok());
        let mut too_many = many;
        too_many.insert("one-more".into(), "v".into());
        assert_eq!(code(with(too_many)), "invalid_metadata");
        let long_key = BTreeMap::from([("k".repeat(129), "v".to_owned())]);
        assert_eq!(code(with(long_key)), "invalid_metadata");
        let max_key = BTreeMap::from([("k".repeat(128), "v".repeat(1024))]);
        assert!(with(max_key).validate().is_ok());
        let long_value = BTreeMap::from([("k".to_owned(), "v".repeat(1025))]);
        assert_eq!(code(with(long_value)), "invalid_metadata");
    }

    #[test]
    fn status_and_ttl() {
        let status = RegisterRequest {
            status: Some("up".into()),
            ..request("s", "h:1")
        };
        assert_eq!(code(status), "invalid_status");
        let ttl = RegisterRequest {
            ttl_seconds: Some(0),
            ..request("s", "h:1")
        };
        assert_eq!(code(ttl), "invalid_ttl");
        let ttl = RegisterRequest {
            ttl_seconds: Some(5),
            ..request("s", "h:1")
        };
        assert_eq!(ttl.validate().unwrap().ttl_seconds, Some(5));
    }
}
