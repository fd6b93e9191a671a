//! The bodies the agent endpoints accept, decoded and validated as Consul's agent does:
//! `PUT /v1/agent/service/register` (a service with its `Check`/`Checks`) and
//! `PUT /v1/agent/check/update/:id` (`{Status, Output}`). Errors carry Consul's `400` texts,
//! so a client that surfaces them reads the same words it would read from Consul.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::fields::Fields;

/// A check's health, as Consul spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Passing,
    Warning,
    Critical,
}

impl Status {
    pub fn parse(text: &str) -> Option<Status> {
        match text {
            "passing" => Some(Status::Passing),
            "warning" => Some(Status::Warning),
            "critical" => Some(Status::Critical),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Passing => "passing",
            Status::Warning => "warning",
            Status::Critical => "critical",
        }
    }
}

/// One of the service's `TaggedAddresses` (`lan`, `wan`, `lan_ipv4`, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaggedAddress {
    pub address: String,
    pub port: u16,
}

/// A service as registered: everything but its indexes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceDef {
    pub id: String,
    pub name: String,
    pub tags: Vec<String>,
    pub address: String,
    pub port: u16,
    pub meta: BTreeMap<String, String>,
    pub tagged_addresses: BTreeMap<String, TaggedAddress>,
    /// `(Passing, Warning)`.
    pub weights: (i64, i64),
    pub enable_tag_override: bool,
}

/// What runs a check. Only `Ttl` checks change here: the double runs no probes, so the
/// others keep the status they were registered with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckKind {
    Ttl,
    Http,
    Tcp,
    Udp,
    Grpc,
    H2Ping,
    Script,
    Docker,
    OsService,
    Alias,
}

impl CheckKind {
    /// The check's `Type` field, as Consul's `CheckType.Type()` names it.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::Ttl => "ttl",
            CheckKind::Http => "http",
            CheckKind::Tcp => "tcp",
            CheckKind::Udp => "udp",
            CheckKind::Grpc => "grpc",
            CheckKind::H2Ping => "h2ping",
            CheckKind::Script => "script",
            CheckKind::Docker => "docker",
            CheckKind::OsService => "os_service",
            CheckKind::Alias => "alias",
        }
    }
}

/// One `Check` of a registration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckDef {
    /// `CheckID` (or `ID`); `None` gets Consul's default `service:<ID>[:<n>]`.
    pub id: Option<String>,
    /// `None` gets Consul's default `Service '<Name>' check`.
    pub name: Option<String>,
    /// The initial status; `None` is `critical`.
    pub status: Option<Status>,
    pub notes: String,
    pub kind: CheckKind,
    pub ttl: Option<Duration>,
    pub deregister_after: Option<Duration>,
}

/// A decoded `PUT /v1/agent/service/register` body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    pub service: ServiceDef,
    pub checks: Vec<CheckDef>,
}

fn decode_failed(reason: impl std::fmt::Display) -> String {
    format!("Request decode failed: {reason}")
}

/// Parses a request body as JSON; Go's decoder reports an empty body as `EOF`.
fn json(body: &[u8]) -> Result<Value, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(decode_failed("EOF"));
    }
    serde_json::from_slice(body).map_err(decode_failed)
}

impl Registration {
    /// Decodes and validates a register body, in the order Consul's handler does.
    pub fn decode(body: &[u8]) -> Result<Registration, String> {
        let value = json(body)?;
        let fields = Fields::of(&value, "body").map_err(decode_failed)?;
        let service = decode_service(&fields).map_err(decode_failed)?;
        let mut raw_checks = Vec::new();
        if let Some(check) = fields.object(&["Check"]).map_err(decode_failed)? {
            raw_checks.push(check);
        }
        raw_checks.extend(fields.object_list(&["Checks"]).map_err(decode_failed)?);

        if service.name.is_empty() {
            return Err("Missing service name".to_owned());
        }
        if matches!(service.address.as_str(), "0.0.0.0" | "::" | "[::]") {
            return Err("Invalid service address".to_owned());
        }
        let (passing, warning) = service.weights;
        if passing <= 0 {
            return Err("Invalid Weights: Passing must be greater than 0".to_owned());
        }
        if warning < 0 {
            return Err("Invalid Weights: Warning must be greater or equal than 0".to_owned());
        }
        let mut checks = Vec::new();
        for raw in raw_checks.iter().filter(|c| !c.is_empty()) {
            checks.push(decode_check(raw)?);
        }
        Ok(Registration { service, checks })
    }
}

fn decode_service(fields: &Fields<'_>) -> Result<ServiceDef, String> {
    let name = fields.string(&["Name"])?.unwrap_or_default();
    let id = match fields.string(&["ID"])? {
        Some(id) if !id.is_empty() => id,
        _ => name.clone(),
    };
    let service_port = port(fields.integer(&["Port"])?)?;
    let mut tagged_addresses = BTreeMap::new();
    for (tag, address) in fields.objects_by_key(&["TaggedAddresses"])? {
        let entry = TaggedAddress {
            address: address.string(&["Address"])?.unwrap_or_default(),
            port: port(address.integer(&["Port"])?)?,
        };
        tagged_addresses.insert(tag, entry);
    }
    // Without `Weights` Consul uses 1/1; with it, the given values (validated later).
    let weights = match fields.object(&["Weights"])? {
        None => (1, 1),
        Some(w) => (
            w.integer(&["Passing"])?.unwrap_or(0),
            w.integer(&["Warning"])?.unwrap_or(0),
        ),
    };
    Ok(ServiceDef {
        id,
        name,
        tags: fields.strings(&["Tags"])?,
        address: fields.string(&["Address"])?.unwrap_or_default(),
        port: service_port,
        meta: fields.string_map(&["Meta"])?,
        tagged_addresses,
        weights,
        enable_tag_override: fields.boolean(&["EnableTagOverride"])?,
    })
}

fn port(value: Option<i64>) -> Result<u16, String> {
    let value = value.unwrap_or(0);
    u16::try_from(value).map_err(|_| format!("invalid port {value}"))
}

/// Decodes one check and validates it like Consul's `CheckType.Validate`.
fn decode_check(fields: &Fields<'_>) -> Result<CheckDef, String> {
    let text = |names: &[&str]| fields.string(names).map(Option::unwrap_or_default);
    let invalid = |reason: &str| format!("Invalid check: {reason}");

    let ttl = fields.duration(&["TTL"]).map_err(decode_failed)?;
    let interval = fields.duration(&["Interval"]).map_err(decode_failed)?;
    fields.duration(&["Timeout"]).map_err(decode_failed)?;
    let deregister_after = fields
        .duration(&["DeregisterCriticalServiceAfter"])
        .map_err(decode_failed)?
        .filter(|d| !d.is_zero());
    let script = !fields
        .strings(&["ScriptArgs", "Args"])
        .map_err(decode_failed)?
        .is_empty();
    let docker = !text(&["DockerContainerID"])
        .map_err(decode_failed)?
        .is_empty();
    let probe = |names: &[&str]| text(names).map(|s| !s.is_empty()).map_err(decode_failed);
    let (http, tcp, udp) = (probe(&["HTTP"])?, probe(&["TCP"])?, probe(&["UDP"])?);
    let (grpc, h2ping) = (probe(&["GRPC"])?, probe(&["H2PING"])?);
    let os_service = probe(&["OSService"])?;
    let alias = probe(&["AliasService"])? || probe(&["AliasNode"])?;

    let has_ttl = ttl.is_some_and(|d| !d.is_zero());
    let has_interval = interval.is_some_and(|d| !d.is_zero());
    let interval_check = script || http || tcp || udp || grpc || h2ping || os_service;
    if has_interval && has_ttl {
        return Err(invalid("Interval and TTL cannot both be specified"));
    }
    if interval_check && !has_interval {
        return Err(invalid(
            "Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or GRPC checks",
        ));
    }
    if interval_check && alias {
        return Err(invalid("Interval cannot be set for Alias checks"));
    }
    if alias && has_ttl {
        return Err(invalid("TTL must be not be set for Alias checks"));
    }
    if !interval_check && !alias && !has_ttl {
        return Err(invalid("TTL must be > 0 for TTL checks"));
    }
    // The precedence of Consul's `CheckType.Type()`.
    let kind = if grpc {
        CheckKind::Grpc
    } else if http {
        CheckKind::Http
    } else if has_ttl {
        CheckKind::Ttl
    } else if tcp {
        CheckKind::Tcp
    } else if udp {
        CheckKind::Udp
    } else if alias {
        CheckKind::Alias
    } else if script && docker {
        CheckKind::Docker
    } else if script {
        CheckKind::Script
    } else if h2ping {
        CheckKind::H2Ping
    } else {
        CheckKind::OsService
    };

    let status =
        match text(&["Status"]).map_err(decode_failed)?.as_str() {
            "" => None,
            other => Some(Status::parse(other).ok_or_else(|| {
                "Status for checks must 'passing', 'warning', 'critical'".to_owned()
            })?),
        };
    let non_empty = |s: String| Some(s).filter(|s| !s.is_empty());
    Ok(CheckDef {
        id: non_empty(text(&["CheckID", "ID"]).map_err(decode_failed)?),
        name: non_empty(text(&["Name"]).map_err(decode_failed)?),
        status,
        notes: text(&["Notes"]).map_err(decode_failed)?,
        kind,
        ttl: ttl.filter(|_| kind == CheckKind::Ttl),
        deregister_after,
    })
}

/// A decoded `PUT /v1/agent/check/update/:id` body.
pub struct CheckUpdate {
    pub status: Status,
    pub output: String,
}

impl CheckUpdate {
    pub fn decode(body: &[u8]) -> Result<CheckUpdate, String> {
        // Consul decodes an empty body as an empty update, which then fails on `Status`.
        let value = if body.iter().all(u8::is_ascii_whitespace) {
            Value::Object(Default::default())
        } else {
            serde_json::from_slice(body).map_err(decode_failed)?
        };
        let fields = Fields::of(&value, "body").map_err(decode_failed)?;
        let status = fields.string(&["Status"]).map_err(decode_failed)?;
        let status = status.unwrap_or_default();
        Ok(CheckUpdate {
            status: Status::parse(&status)
                .ok_or_else(|| format!("Invalid check status: '{status}'"))?,
            output: fields
                .string(&["Output"])
                .map_err(decode_failed)?
                .unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decode(body: Value) -> Result<Registration, String> {
        Registration::decode(body.to_string().as_bytes())
    }

    #[test]
    fn defaults_follow_consul() {
        let reg = decode(json!({"Name": "web"})).unwrap();
        assert_eq!(reg.service.id, "web");
        assert_eq!(reg.service.weights, (1, 1));
        assert!(reg.checks.is_empty());
    }

    #[test]
    fn checks_are_validated_like_consul() {
        let err = decode(json!({"Name": "web", "Check": {"Status": "passing"}})).unwrap_err();
        assert_eq!(err, "Invalid check: TTL must be > 0 for TTL checks");
        let err = decode(json!({"Name": "web", "Check": {"HTTP": "http://x"}})).unwrap_err();
        assert!(
            err.starts_with("Invalid check: Interval must be > 0"),
            "{err}"
        );
        let err = decode(json!({"Name": "web", "Check": {"TTL": "1s", "Status": "ok"}}));
        assert_eq!(
            err.unwrap_err(),
            "Status for checks must 'passing', 'warning', 'critical'"
        );
        let err = decode(json!({"Name": "web", "Check": {"TTL": "ten"}})).unwrap_err();
        assert_eq!(err, "Request decode failed: time: invalid duration \"ten\"");
        // An empty `Check` object is skipped, as Consul does.
        assert!(decode(json!({"Name": "web", "Check": {}}))
            .unwrap()
            .checks
            .is_empty());
    }

    #[test]
    fn check_kinds_and_fields() {
        let reg = decode(json!({"name": "web", "checks": [
            {"ttl": "10s", "check_id": "a", "status": "passing"},
            {"HTTP": "http://127.0.0.1/", "Interval": "10s", "DeregisterCriticalServiceAfter": "1m"},
        ]}))
        .unwrap();
        assert_eq!(reg.checks[0].kind, CheckKind::Ttl);
        assert_eq!(reg.checks[0].id.as_deref(), Some("a"));
        assert_eq!(reg.checks[0].status, Some(Status::Passing));
        assert_eq!(reg.checks[1].kind, CheckKind::Http);
        assert_eq!(reg.checks[1].ttl, None);
        assert_eq!(
            reg.checks[1].deregister_after,
            Some(Duration::from_secs(60))
        );
    }

    #[test]
    fn malformed_bodies_are_decode_errors() {
        assert_eq!(
            Registration::decode(b"").unwrap_err(),
            "Request decode failed: EOF"
        );
        assert!(Registration::decode(b"{nope")
            .unwrap_err()
            .starts_with("Request decode failed: "));
        assert!(decode(json!({"Name": "web", "Port": "80"}))
            .unwrap_err()
            .starts_with("Request decode failed: "));
        assert_eq!(
            decode(json!({"Name": ""})).unwrap_err(),
            "Missing service name"
        );
        assert!(decode(json!({"Name": "web", "Weights": {"Passing": 0}}))
            .unwrap_err()
            .starts_with("Invalid Weights"));
    }
}
