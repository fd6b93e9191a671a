//! One check of a Consul service definition (Consul's `CheckType`): decoded, checked with
//! Consul's `Validate` texts, and turned into a native [`CheckRequest`] for the kinds
//! Switchboard runs (HTTP, TCP, TTL). Other kinds, and options Switchboard does not
//! apply, are refused with a text that says so.

use std::collections::BTreeMap;

use super::decode::{Field, Fields};
use super::error::ConsulError;
use crate::registry::checks::CheckRequest;

pub const FIELDS: &[Field] = &[
    ("CheckID", &[]),
    ("Name", &[]),
    ("Status", &[]),
    ("Notes", &[]),
    ("ScriptArgs", &["args", "script_args"]),
    ("HTTP", &[]),
    ("H2PING", &[]),
    ("H2PingUseTLS", &["h2ping_use_tls"]),
    ("Header", &[]),
    ("Method", &[]),
    ("Body", &[]),
    ("DisableRedirects", &[]),
    ("TCP", &[]),
    ("TCPUseTLS", &["tcp_use_tls"]),
    ("UDP", &[]),
    ("Interval", &[]),
    ("AliasNode", &[]),
    ("AliasService", &[]),
    ("DockerContainerID", &["docker_container_id"]),
    ("Shell", &[]),
    ("GRPC", &[]),
    ("GRPCUseTLS", &["grpc_use_tls"]),
    ("OSService", &[]),
    ("TLSServerName", &["tls_server_name"]),
    ("TLSSkipVerify", &["tls_skip_verify"]),
    ("Timeout", &[]),
    ("TTL", &[]),
    ("SuccessBeforePassing", &[]),
    ("FailuresBeforeWarning", &[]),
    ("FailuresBeforeCritical", &[]),
    ("ProxyHTTP", &[]),
    ("ProxyGRPC", &[]),
    (
        "DeregisterCriticalServiceAfter",
        &["deregister_critical_service_after"],
    ),
    ("OutputMaxSize", &[]),
    ("ServiceID", &["service_id"]),
];

/// Kinds of check Consul runs and Switchboard does not, with the field that asks for each.
const UNRUN_KINDS: &[(&str, &str)] = &[
    ("UDP", "UDP"),
    ("DockerContainerID", "Docker"),
    ("ScriptArgs", "script"),
    ("GRPC", "gRPC"),
    ("H2PING", "H2PING"),
    ("AliasService", "alias"),
    ("AliasNode", "alias"),
    ("OSService", "OSService"),
];

/// One check of a definition, decoded.
#[derive(Debug)]
pub struct CheckType {
    id: String,
    name: String,
    pub status: String,
    notes: String,
    http: String,
    method: String,
    header: BTreeMap<String, Vec<String>>,
    tls_skip_verify: bool,
    tcp: String,
    interval: i64,
    timeout: i64,
    ttl: i64,
    deregister_after: i64,
    failures_before_warning: i64,
    failures_before_critical: i64,
    output_max_size: i64,
    /// Consul check kinds given that Switchboard does not run, by name.
    unrun: Vec<&'static str>,
    /// Options given that Switchboard does not apply to the check kind chosen.
    http_unsupported: Option<&'static str>,
    tcp_unsupported: Option<&'static str>,
    /// Whether an alias check was asked for (Consul's interval rules differ for it).
    alias: bool,
}

impl CheckType {
    pub fn decode(check: &Fields<'_>) -> Result<CheckType, String> {
        let script = !check.strings("ScriptArgs")?.is_empty();
        for name in [
            "UDP",
            "DockerContainerID",
            "GRPC",
            "H2PING",
            "AliasService",
            "AliasNode",
        ] {
            check.string(name)?;
        }
        for name in [
            "OSService",
            "Body",
            "TLSServerName",
            "Shell",
            "ProxyHTTP",
            "ProxyGRPC",
        ] {
            check.string(name)?;
        }
        for name in [
            "DisableRedirects",
            "TCPUseTLS",
            "GRPCUseTLS",
            "H2PingUseTLS",
        ] {
            check.bool(name)?;
        }
        check.int("SuccessBeforePassing")?;
        check.string("ServiceID")?;
        let unrun = (UNRUN_KINDS.iter())
            .filter(|(field, _)| match *field {
                "ScriptArgs" => script,
                field => check.is_set(field),
            })
            .map(|(_, kind)| *kind)
            .collect();
        let first_set = |fields: &[&'static str]| fields.iter().copied().find(|f| check.is_set(f));
        Ok(CheckType {
            id: check.text("CheckID")?,
            name: check.text("Name")?,
            status: check.text("Status")?,
            notes: check.text("Notes")?,
            http: check.text("HTTP")?,
            method: check.text("Method")?,
            header: check.string_lists("Header")?,
            tls_skip_verify: check.bool("TLSSkipVerify")?,
            tcp: check.text("TCP")?,
            interval: check.nanos("Interval")?,
            timeout: check.nanos("Timeout")?,
            ttl: check.nanos("TTL")?,
            deregister_after: check.nanos("DeregisterCriticalServiceAfter")?,
            failures_before_warning: check.int("FailuresBeforeWarning")?,
            failures_before_critical: check.int("FailuresBeforeCritical")?,
            output_max_size: check.int("OutputMaxSize")?,
            unrun,
            http_unsupported: first_set(&["Body", "DisableRedirects", "TLSServerName"]),
            tcp_unsupported: first_set(&["TCPUseTLS"]),
            alias: check.is_set("AliasService") || check.is_set("AliasNode"),
        })
    }

    /// Whether Consul runs this check on an interval (Consul's `intervalCheck`).
    fn runs_on_interval(&self) -> bool {
        !self.http.is_empty()
            || !self.tcp.is_empty()
            || self.unrun.iter().any(|kind| *kind != "alias")
    }
}

/// Consul's `CheckType.Validate`, with its texts.
pub fn validate(check: &CheckType) -> Result<(), String> {
    if check.interval > 0 && check.ttl > 0 {
        return Err("Interval and TTL cannot both be specified".into());
    }
    if check.runs_on_interval() && check.interval <= 0 {
        return Err(
            "Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks".into(),
        );
    }
    if check.alias && check.ttl > 0 {
        return Err("TTL must be not be set for Alias checks".into());
    }
    if check.alias && check.interval > 0 {
        return Err("Interval cannot be set for Alias checks".into());
    }
    if !check.runs_on_interval() && !check.alias && check.ttl <= 0 {
        return Err("TTL must be > 0 for TTL checks".into());
    }
    if check.output_max_size < 0 {
        return Err("MaxOutputMaxSize must be positive".into());
    }
    if check.failures_before_warning > check.failures_before_critical {
        return Err("FailuresBeforeWarning can't be higher than FailuresBeforeCritical".into());
    }
    Ok(())
}

/// The native form of a valid check, picking its kind in Consul's order (TTL, HTTP,
/// TCP, then the kinds Switchboard refuses).
pub fn request(
    check: &CheckType,
    default_id: String,
    service: &str,
) -> Result<CheckRequest, ConsulError> {
    let refuse = |why: String| ConsulError::bad_request(format!("Invalid check: {why}"));
    let text = |ns: i64| (ns > 0).then(|| format!("{ns}ns"));
    let mut request = CheckRequest {
        id: Some(if check.id.is_empty() {
            default_id
        } else {
            check.id.clone()
        }),
        name: Some(if check.name.is_empty() {
            format!("Service '{service}' check")
        } else {
            check.name.clone()
        }),
        status: (!check.status.is_empty()).then(|| check.status.clone()),
        notes: (!check.notes.is_empty()).then(|| check.notes.clone()),
        timeout: text(check.timeout),
        deregister_critical_after: text(check.deregister_after),
        ..CheckRequest::default()
    };
    let unsupported = |option: &str, kind: &str| {
        refuse(format!(
            "Switchboard does not support {option} on {kind} checks"
        ))
    };
    if check.ttl > 0 {
        request.ttl = text(check.ttl);
    } else if !check.http.is_empty() {
        if let Some(option) = check.http_unsupported {
            return Err(unsupported(option, "HTTP"));
        }
        request.http = Some(check.http.clone());
        request.method = (!check.method.is_empty()).then(|| check.method.clone());
        request.header = Some(check.header.clone());
        request.tls_skip_verify = Some(check.tls_skip_verify);
        request.interval = text(check.interval);
    } else if !check.tcp.is_empty() {
        if let Some(option) = check.tcp_unsupported {
            return Err(unsupported(option, "TCP"));
        }
        request.tcp = Some(check.tcp.clone());
        request.interval = text(check.interval);
    } else {
        let kind = check.unrun.first().copied().unwrap_or("this kind of");
        return Err(refuse(format!(
            "Switchboard does not run {kind} checks; use HTTP, TCP or TTL checks"
        )));
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    /// The native request for `check`, or the text it is refused with.
    fn request_of(check: Value) -> Result<CheckRequest, String> {
        let fields = Fields::of(&check, "T.Check", "structs.CheckType", FIELDS)?;
        let check = CheckType::decode(&fields)?;
        validate(&check).map_err(|why| format!("Invalid check: {why}"))?;
        request(&check, "service:web".into(), "web").map_err(|err| err.text)
    }

    #[test]
    fn checks_switchboard_does_not_run_are_refused_clearly() {
        let refused = |check: Value| request_of(check).unwrap_err();
        assert_eq!(
            refused(json!({"Args": ["/bin/true"], "Interval": "10s"})),
            "Invalid check: Switchboard does not run script checks; use HTTP, TCP or TTL checks"
        );
        assert!(refused(json!({"GRPC": "a:1", "Interval": "1s"})).contains("gRPC"));
        assert!(refused(json!({"AliasService": "db"})).contains("alias"));
        let body = json!({"HTTP": "http://a/", "Interval": "1s", "Body": "x"});
        assert!(refused(body).contains("Body"));
        let tls = json!({"TCP": "a:1", "Interval": "1s", "TCPUseTLS": true});
        assert!(refused(tls).contains("TCPUseTLS"));
    }

    #[test]
    fn kinds_are_picked_in_consuls_order() {
        // HTTP before TCP, and options of other kinds are left alone.
        let both =
            json!({"HTTP": "http://a/", "TCP": "a:1", "Interval": "5s", "GRPCUseTLS": false});
        let request = request_of(both).unwrap();
        assert_eq!(
            (request.http.as_deref(), request.tcp),
            (Some("http://a/"), None)
        );
        let ttl = request_of(json!({"TTL": 1_500_000_000u64, "Timeout": "0s"})).unwrap();
        assert_eq!(
            (ttl.ttl.as_deref(), ttl.timeout),
            (Some("1500000000ns"), None)
        );
    }
}
