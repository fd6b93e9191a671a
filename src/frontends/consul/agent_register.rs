//! `PUT /v1/agent/service/register`: a Consul service definition registered as a native
//! instance (`definition.rs` reads it), with Consul's re-registration rules.
//!
//! Re-registering an ID replaces the instance, as in Consul. Without
//! `?replace-existing-checks`, checks the instance had that the new definition does not
//! name are kept, and so is maintenance mode (its `_service_maintenance:<id>` check), as
//! a Consul agent keeps a service's other checks; with it, only the checks given remain.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;

use super::definition::{self, Registration};
use super::error::ConsulError;
use super::{acl, decode, ConsulState};
use crate::auth::Role;
use crate::registry::checks::{CheckDefinition, CheckRequest, Probe};
use crate::registry::{maintenance_check_id, RegistryError};

/// The client's own address as the listener saw it (none when the router runs without a
/// listener, as in `oneshot` tests).
pub struct PeerIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for PeerIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>();
        Ok(PeerIp(peer.map(|info| info.0.ip().to_canonical())))
    }
}

/// The value of query parameter `name` (the first, when repeated).
pub fn param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// The namespace a request names: `?ns=`, else the `X-Consul-Namespace` header.
pub fn requested_namespace(query: Option<&str>, headers: &HeaderMap) -> Option<String> {
    param(query, "ns").or_else(|| {
        let header = headers.get("x-consul-namespace")?.to_str().ok()?;
        Some(header.to_owned())
    })
}

pub async fn register(
    State(state): State<ConsulState>,
    PeerIp(peer): PeerIp,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ConsulError> {
    let query = query.as_deref();
    let caller = acl::identify(&state, query, &headers)?;
    let body = decode::parse(&body)
        .map_err(|err| ConsulError::bad_request(format!("Request decode failed: {err}")))?;
    let ns = requested_namespace(query, &headers);
    let mut registration = definition::registration(&body, ns.as_deref(), peer)?;
    acl::require(
        &state,
        &caller,
        Role::Register,
        &registration.namespace,
        "service:write",
        &registration.name,
    )?;
    let replace = matches!(
        param(query, "replace-existing-checks").as_deref(),
        Some("" | "true")
    );
    let maintenance = match replace {
        true => None,
        false => keep_earlier_checks(&state, &mut registration).await,
    };
    let reaches = |namespace: &str| caller.0.as_ref().is_some_and(|c| c.reaches(namespace));
    (state.registry)
        .register_agent(registration.request, &reaches)
        .await
        .map_err(registry_error)?;
    if let Some(reason) = maintenance {
        (state.registry)
            .set_maintenance(&registration.id, true, Some(&reason))
            .await?;
    }
    Ok(StatusCode::OK)
}

/// Adds to `registration` the checks its instance has now that it does not name, and
/// keeps it in maintenance if it is: returns the maintenance reason then.
async fn keep_earlier_checks(
    state: &ConsulState,
    registration: &mut Registration,
) -> Option<String> {
    let earlier = state.registry.get(&registration.id).await.ok()?;
    let maintenance = maintenance_check_id(&registration.id);
    let checks = registration.request.checks.get_or_insert_with(Vec::new);
    let mut reason = None;
    for check in &earlier.checks {
        if check.id == maintenance {
            reason = Some(check.notes.clone());
        } else if !checks
            .iter()
            .any(|given| given.id.as_ref() == Some(&check.id))
        {
            let definition = state.registry.check_definition(&registration.id, &check.id);
            checks.extend(definition.map(check_request));
        }
    }
    if reason.is_some() {
        // Registered straight into maintenance, so the instance never shows as serving.
        registration.request.status = Some("maintenance".to_owned());
    }
    reason
}

/// A stored check definition asked for again.
fn check_request(definition: CheckDefinition) -> CheckRequest {
    let text = |duration: Duration| format!("{}ns", duration.as_nanos());
    let mut request = CheckRequest {
        id: Some(definition.id),
        name: Some(definition.name),
        notes: (!definition.notes.is_empty()).then_some(definition.notes),
        interval: definition.interval.map(text),
        timeout: definition.timeout.map(text),
        deregister_critical_after: definition.deregister_critical_after.map(text),
        ..CheckRequest::default()
    };
    match definition.probe {
        Probe::Ttl { ttl } => request.ttl = Some(text(ttl)),
        Probe::Http {
            url,
            method,
            headers,
            tls_skip_verify,
        } => {
            request.http = Some(url);
            request.method = Some(method);
            request.header = Some(headers);
            request.tls_skip_verify = Some(tls_skip_verify);
        }
        Probe::Tcp { address } => request.tcp = Some(address),
    }
    request
}

/// A registry refusal in Consul's manner. The native rules Consul does not have (name
/// and id characters, host names, tag sizes, check limits) get a Consul-like prefix.
pub fn registry_error(err: RegistryError) -> ConsulError {
    let RegistryError::Invalid(invalid) = err else {
        return ConsulError::from(err);
    };
    let message = invalid.message;
    let text = match invalid.field {
        _ if message.starts_with("Status for checks") => message,
        "service" | "group" => format!("Invalid service name: {message}"),
        "id" => format!("Invalid service ID: {message}"),
        "namespace" => format!("Invalid namespace: {message}"),
        "address" | "host" | "port" => format!("Invalid service address: {message}"),
        "tags" => format!("Invalid service tags: {message}"),
        "metadata" => format!("Invalid Service Meta: {message}"),
        "weight" => format!("Invalid Weights: {message}"),
        "checks" => format!("Invalid check: {message}"),
        _ => message,
    };
    ConsulError::bad_request(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::invalid;

    #[test]
    fn native_refusals_read_like_consuls() {
        let err = |field, message: &str| {
            registry_error(RegistryError::Invalid(invalid("x", field, message))).text
        };
        assert_eq!(err("id", "bad"), "Invalid service ID: bad");
        assert_eq!(err("checks", "ttl too long"), "Invalid check: ttl too long");
        assert_eq!(
            err(
                "checks",
                "Status for checks must 'passing', 'warning', 'critical'"
            ),
            "Status for checks must 'passing', 'warning', 'critical'"
        );
    }

    #[test]
    fn stored_checks_are_asked_for_again_unchanged() {
        let definition = CheckDefinition {
            id: "c".into(),
            name: "n".into(),
            probe: Probe::Http {
                url: "http://a:1/".into(),
                method: "GET".into(),
                headers: Default::default(),
                tls_skip_verify: false,
            },
            interval: Some(Duration::from_millis(1500)),
            timeout: None,
            deregister_critical_after: Some(Duration::from_secs(90)),
            notes: String::new(),
        };
        let (again, _) = check_request(definition.clone())
            .validate("i", "s", 0, 1)
            .unwrap();
        assert_eq!(again, definition);
    }

    #[test]
    fn query_parameters() {
        assert_eq!(param(Some("a=1&ns=x%20y"), "ns").as_deref(), Some("x y"));
        assert_eq!(
            param(Some("replace-existing-checks"), "replace-existing-checks").as_deref(),
            Some("")
        );
        assert_eq!(param(None, "ns"), None);
    }
}
