//! Consul's service definition (the body of `PUT /v1/agent/service/register`) turned into
//! a native [`RegisterRequest`], checked in Consul's order with Consul's texts.
//!
//! How Consul's fields land on a native instance:
//! - `Name` is the service (`<group>@@<name>` for a group other than the default);
//!   `ID` defaults to `Name`, as in Consul.
//! - `Address` empty: the connecting client's IP address. A Consul agent leaves it
//!   empty to mean "the node's address", and the node of a service is the host it runs
//!   on; a Switchboard instance needs a host of its own, and the client's address is the
//!   closest one there is.
//! - `Port` must be 1-65535: Consul allows none (0), but a native instance is an endpoint.
//! - `Weights.Passing` is the native weight (0-10000; larger values count as 10000).
//!   Without `Weights` the native default weight (100) applies, so Consul-registered
//!   instances share traffic evenly with natively registered ones. `Weights.Warning` is
//!   checked as Consul checks it and not kept.
//! - `Check` and `Checks` (in that order) become the instance's checks: HTTP, TCP and
//!   TTL. Switchboard runs no script, Docker, gRPC, UDP, H2PING, alias or OSService
//!   checks, and refuses them (and HTTP `Body`, `DisableRedirects`, `TLSServerName`,
//!   TCP `TCPUseTLS`) rather than pretend; the success/failure thresholds and
//!   `OutputMaxSize` are accepted and not applied.
//! - `TaggedAddresses`, `EnableTagOverride`, `Locality` and `Token` are accepted and not
//!   kept; `Kind`, `Proxy`, `Connect` and `SocketPath` (Connect and sockets) are refused.
//! - `Namespace` (Consul Enterprise's field) or `?ns=` names the namespace; `default`
//!   is Switchboard's default namespace.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::Value;

use super::check_type::{self, CheckType};
use super::decode::{Field, Fields};
use super::error::ConsulError;
use super::{namespace_from, split_service_name};
use crate::registry::RegisterRequest;

/// The native registry's largest weight (`registry::validate::MAX_WEIGHT`).
const MAX_WEIGHT: i64 = 10_000;

const SERVICE_FIELDS: &[Field] = &[
    ("Kind", &[]),
    ("ID", &[]),
    ("Name", &[]),
    ("Tags", &[]),
    ("Address", &[]),
    ("TaggedAddresses", &["tagged_addresses"]),
    ("Meta", &[]),
    ("Port", &[]),
    ("SocketPath", &[]),
    ("Check", &[]),
    ("Checks", &[]),
    ("Weights", &[]),
    ("Token", &[]),
    ("EnableTagOverride", &["enable_tag_override"]),
    ("Locality", &[]),
    ("Proxy", &[]),
    ("Connect", &[]),
    ("Namespace", &[]),
    ("Partition", &[]),
];

const WEIGHT_FIELDS: &[Field] = &[("Passing", &[]), ("Warning", &[])];

/// A registration ready for the registry.
#[derive(Debug)]
pub struct Registration {
    pub request: RegisterRequest,
    pub id: String,
    /// The Consul name, for ACL texts.
    pub name: String,
    pub namespace: String,
}

fn decode_failed(err: String) -> ConsulError {
    ConsulError::bad_request(format!("Request decode failed: {err}"))
}

/// Reads a service definition. `ns` is the `?ns=` query parameter; `peer` the client's
/// address, for an empty `Address`.
pub fn registration(
    body: &Value,
    ns: Option<&str>,
    peer: Option<IpAddr>,
) -> Result<Registration, ConsulError> {
    let service = Fields::of(
        body,
        "ServiceDefinition",
        "structs.ServiceDefinition",
        SERVICE_FIELDS,
    )
    .map_err(decode_failed)?;
    let decoded = decode(&service).map_err(decode_failed)?;
    let Decoded {
        name,
        weights,
        checks,
        ..
    } = &decoded;
    if name.is_empty() {
        return Err(ConsulError::bad_request("Missing service name"));
    }
    let weight = match weights {
        None => None,
        Some((passing, warning)) => {
            let why = if *passing < 1 {
                Some("Passing must be greater than 0")
            } else if *warning < 0 {
                Some("Warning must be greater or equal than 0")
            } else if *passing > 65535 || *warning > 65535 {
                Some("DNS Weight must be between 0 and 65535")
            } else {
                None
            };
            if let Some(why) = why {
                return Err(ConsulError::bad_request(format!("Invalid Weights: {why}")));
            }
            Some((*passing).min(MAX_WEIGHT))
        }
    };
    validate_meta(&decoded.meta)
        .map_err(|why| ConsulError::bad_request(format!("Invalid Service Meta: {why}")))?;
    refuse_unsupported(&service, &decoded)?;
    let mut check_requests = Vec::with_capacity(checks.len());
    for check in checks {
        check_type::validate(check)
            .map_err(|why| ConsulError::bad_request(format!("Invalid check: {why}")))?;
    }
    if (checks.iter()).any(|check| {
        !matches!(
            check.status.as_str(),
            "" | "passing" | "warning" | "critical"
        )
    }) {
        return Err(ConsulError::bad_request(
            "Status for checks must 'passing', 'warning', 'critical'",
        ));
    }
    let id = if decoded.id.is_empty() {
        name.clone()
    } else {
        decoded.id.clone()
    };
    for (n, check) in checks.iter().enumerate() {
        let default_id = match checks.len() {
            1 => format!("service:{id}"),
            _ => format!("service:{id}:{}", n + 1),
        };
        check_requests.push(check_type::request(check, default_id, name)?);
    }
    let host = match decoded.address.as_str() {
        "0.0.0.0" | "::" | "[::]" => {
            return Err(ConsulError::bad_request("Invalid service address"))
        }
        "" => peer
            .map(|ip| ip.to_canonical().to_string())
            .ok_or_else(|| {
                ConsulError::bad_request(
                    "Invalid service address: give Address (the client's own address is not known)",
                )
            })?,
        address => address.to_owned(),
    };
    let port = u16::try_from(decoded.port).ok().filter(|port| *port != 0);
    let port = port.ok_or_else(|| {
        ConsulError::bad_request(format!(
            "Invalid service port: Switchboard needs a Port from 1 to 65535, got {}",
            decoded.port
        ))
    })?;
    let namespace = match decoded.namespace.as_str() {
        "" => namespace_from(ns),
        given => namespace_from(Some(given)),
    }
    .to_owned();
    let (group, service_name) = split_service_name(name);
    let request = RegisterRequest {
        id: Some(id.clone()),
        service: Some(service_name.to_owned()),
        namespace: Some(namespace.clone()),
        group: Some(group.to_owned()),
        host: Some(host),
        port: Some(i64::from(port)),
        weight,
        metadata: Some(decoded.meta.clone()),
        tags: Some(decoded.tags.clone()),
        checks: Some(check_requests),
        ..RegisterRequest::default()
    };
    Ok(Registration {
        request,
        id,
        name: name.clone(),
        namespace,
    })
}

/// The fields a registration uses, decoded.
struct Decoded {
    kind: String,
    id: String,
    name: String,
    tags: Vec<String>,
    address: String,
    meta: BTreeMap<String, String>,
    port: i64,
    socket_path: String,
    weights: Option<(i64, i64)>,
    namespace: String,
    partition: String,
    /// `Check` when it is not empty, then each of `Checks`.
    checks: Vec<CheckType>,
}

fn decode(service: &Fields<'_>) -> Result<Decoded, String> {
    let weights = match service.get("Weights") {
        None => None,
        Some(value) => {
            let path = service.path_of("Weights");
            let weights = Fields::of(value, &path, "structs.Weights", WEIGHT_FIELDS)?;
            Some((weights.int("Passing")?, weights.int("Warning")?))
        }
    };
    let mut checks = Vec::new();
    if let Some(value) = service.get("Check") {
        let check = Fields::of(
            value,
            &service.path_of("Check"),
            "structs.CheckType",
            check_type::FIELDS,
        )?;
        // An empty `Check` (Spring and go's api send one) is no check, as in Consul.
        if !check.is_zero() {
            checks.push(CheckType::decode(&check)?);
        }
    }
    let path = service.path_of("Checks");
    for value in service.array("Checks", "structs.CheckTypes")? {
        if !value.is_null() {
            checks.push(CheckType::decode(&Fields::of(
                value,
                &path,
                "structs.CheckType",
                check_type::FIELDS,
            )?)?);
        }
    }
    service.object("TaggedAddresses", "map[string]structs.ServiceAddress")?;
    service.object("Locality", "structs.Locality")?;
    service.bool("EnableTagOverride")?;
    service.string("Token")?;
    Ok(Decoded {
        kind: service.text("Kind")?,
        id: service.text("ID")?,
        name: service.text("Name")?,
        tags: service.strings("Tags")?,
        address: service.text("Address")?,
        meta: service.string_map("Meta")?,
        port: service.int("Port")?,
        socket_path: service.text("SocketPath")?,
        weights,
        namespace: service.text("Namespace")?,
        partition: service.text("Partition")?,
        checks,
    })
}

/// What Switchboard refuses of a definition Consul would take: other kinds of service,
/// Connect, sockets and admin partitions.
fn refuse_unsupported(service: &Fields<'_>, decoded: &Decoded) -> Result<(), ConsulError> {
    if !decoded.kind.is_empty() {
        return Err(ConsulError::bad_request(format!(
            "Invalid service kind {}: Switchboard registers only typical services (Kind \"\")",
            super::decode::go_quote(&decoded.kind)
        )));
    }
    if service.is_set("Proxy") || service.is_set("Connect") {
        return Err(ConsulError::bad_request(
            "Switchboard does not support Connect: Proxy and Connect must be empty",
        ));
    }
    if !decoded.socket_path.is_empty() {
        return Err(ConsulError::bad_request(
            "Switchboard does not support SocketPath: give Address and Port",
        ));
    }
    if !matches!(decoded.partition.as_str(), "" | "default") {
        return Err(ConsulError::bad_request(
            "Switchboard has no admin partitions: Partition must be \"\" or \"default\"",
        ));
    }
    Ok(())
}

/// Consul's service metadata rules (`structs.ValidateServiceMetadata`), pairs checked in
/// key order.
fn validate_meta(meta: &BTreeMap<String, String>) -> Result<(), String> {
    if meta.len() > 64 {
        return Err("Node metadata cannot contain more than 64 key/value pairs".into());
    }
    for (key, value) in meta {
        let why = super::encode::meta_refusal(key, value);
        if let Some(why) = why {
            return Err(format!(
                "Couldn't load metadata pair ('{key}', '{value}'): {why}"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const PEER: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 1, 2, 3)));

    fn ok(body: Value) -> Registration {
        registration(&body, None, PEER).unwrap()
    }

    fn refused(body: Value) -> String {
        let err = registration(&body, None, PEER).unwrap_err();
        assert_eq!(err.status, 400, "{}", err.text);
        err.text
    }

    #[test]
    fn a_spring_body_registers_with_its_http_check() {
        let body = json!({
            "ID": "orders-8080", "Name": "orders", "Tags": ["v1"], "Address": "10.0.0.5",
            "Meta": {"zone": "a"}, "Port": 8080, "EnableTagOverride": false,
            "Check": {"Args": null, "DockerContainerID": null, "Shell": null,
                      "Interval": "10s", "TTL": null, "HTTP": "http://10.0.0.5:8080/actuator/health",
                      "Method": null, "Header": {"X-A": ["b"]}, "TCP": null, "Timeout": "2s",
                      "DeregisterCriticalServiceAfter": "90s", "TLSSkipVerify": true,
                      "Status": null, "GRPC": null, "GRPCUseTLS": null},
            "Checks": null,
        });
        let registration = ok(body);
        assert_eq!(registration.id, "orders-8080");
        let request = registration.request;
        assert_eq!(request.host.as_deref(), Some("10.0.0.5"));
        assert_eq!(request.port, Some(8080));
        assert_eq!(request.weight, None);
        let checks = request.checks.unwrap();
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].id.as_deref(), Some("service:orders-8080"));
        assert_eq!(checks[0].name.as_deref(), Some("Service 'orders' check"));
        assert_eq!(checks[0].interval.as_deref(), Some("10000000000ns"));
        assert_eq!(checks[0].tls_skip_verify, Some(true));
        assert!(checks[0]
            .clone()
            .validate("orders-8080", "orders", 0, 1)
            .is_ok());
    }

    #[test]
    fn a_py_consul_body_registers_with_its_checks_list() {
        let body = json!({
            "name": "web", "id": "web-1", "address": "", "port": 80, "tags": ["a"],
            "meta": {}, "weights": {"passing": 3, "warning": 1}, "enabletagoverride": false,
            "checks": [{"ttl": "15s"}, {"tcp": "10.0.0.1:80", "interval": 5_000_000_000u64}],
        });
        let registration = ok(body);
        let request = registration.request;
        assert_eq!(
            request.host.as_deref(),
            Some("10.1.2.3"),
            "the client's address"
        );
        assert_eq!(request.weight, Some(3));
        let checks = request.checks.unwrap();
        let ids: Vec<_> = checks.iter().map(|c| c.id.clone().unwrap()).collect();
        assert_eq!(ids, ["service:web-1:1", "service:web-1:2"]);
        assert_eq!(checks[0].ttl.as_deref(), Some("15000000000ns"));
        assert_eq!(checks[1].tcp.as_deref(), Some("10.0.0.1:80"));
    }

    #[test]
    fn names_groups_and_namespaces() {
        let registration = registration(
            &json!({"Name": "grp@@pay", "Port": 1}),
            Some("team-a"),
            PEER,
        )
        .unwrap();
        assert_eq!(registration.id, "grp@@pay");
        assert_eq!(registration.request.group.as_deref(), Some("grp"));
        assert_eq!(registration.request.service.as_deref(), Some("pay"));
        assert_eq!(registration.namespace, "team-a");
        let body = json!({"Name": "pay", "Port": 1, "Namespace": "default"});
        assert_eq!(registration_ns(body), "public");
    }

    fn registration_ns(body: Value) -> String {
        registration(&body, Some("ignored"), PEER)
            .unwrap()
            .namespace
    }

    #[test]
    fn consuls_texts_for_bad_definitions() {
        let base = || json!({"Name": "web", "Port": 80});
        let with = |key: &str, value: Value| {
            let mut body = base();
            body[key] = value;
            body
        };
        assert_eq!(refused(json!({"Port": 80})), "Missing service name");
        assert_eq!(refused(json!(null)), "Missing service name");
        assert_eq!(
            refused(with("Bogus", json!(1))),
            r#"Request decode failed: json: unknown field "Bogus""#
        );
        assert_eq!(
            refused(with("Check", json!({"ID": "x", "TTL": "1s"}))),
            r#"Request decode failed: json: unknown field "ID""#
        );
        assert_eq!(
            refused(with("Check", json!({"TTL": "soon"}))),
            r#"Request decode failed: time: invalid duration "soon""#
        );
        assert_eq!(
            refused(with("Port", json!("80"))),
            "Request decode failed: json: cannot unmarshal string into Go struct field ServiceDefinition.Port of type int"
        );
        assert_eq!(
            refused(with("Weights", json!({}))),
            "Invalid Weights: Passing must be greater than 0"
        );
        assert_eq!(
            refused(with("Weights", json!({"Passing": 1, "Warning": -1}))),
            "Invalid Weights: Warning must be greater or equal than 0"
        );
        assert_eq!(
            refused(with("Meta", json!({"a b": "v"}))),
            "Invalid Service Meta: Couldn't load metadata pair ('a b', 'v'): Key contains invalid characters"
        );
        assert_eq!(
            refused(with("Meta", json!({"consul-x": "v"}))),
            "Invalid Service Meta: Couldn't load metadata pair ('consul-x', 'v'): Key prefix 'consul-' is reserved for internal use"
        );
        assert_eq!(
            refused(with("Check", json!({"TTL": "1s", "Interval": "1s"}))),
            "Invalid check: Interval and TTL cannot both be specified"
        );
        assert_eq!(
            refused(with("Check", json!({"HTTP": "http://a/"}))),
            "Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks"
        );
        assert_eq!(
            refused(with("Checks", json!([{"Name": "x"}]))),
            "Invalid check: TTL must be > 0 for TTL checks"
        );
        assert_eq!(
            refused(with("Check", json!({"TTL": "1s", "Status": "ok"}))),
            "Status for checks must 'passing', 'warning', 'critical'"
        );
        assert_eq!(
            refused(with("Address", json!("0.0.0.0"))),
            "Invalid service address"
        );
        assert!(refused(with("Port", json!(0))).starts_with("Invalid service port"));
        assert!(refused(with("Kind", json!("connect-proxy"))).starts_with("Invalid service kind"));
        assert!(refused(with("Connect", json!({"Native": true}))).contains("Connect"));
    }

    #[test]
    fn empty_checks_and_null_members_are_no_checks() {
        let body = json!({"Name": "web", "Port": 80, "Check": {"Interval": null, "TLSSkipVerify": false},
                          "Checks": [null], "Weights": null, "Meta": null, "Tags": null});
        let request = ok(body).request;
        assert!(request.checks.unwrap().is_empty());
        assert_eq!(request.weight, None);
    }

    #[test]
    fn big_weights_are_capped_at_the_native_maximum() {
        let body = json!({"Name": "web", "Port": 80, "Weights": {"Passing": 65535, "Warning": 1}});
        assert_eq!(ok(body).request.weight, Some(MAX_WEIGHT));
    }
}
