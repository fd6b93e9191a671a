//! Agent writes on what is registered: deregistration, maintenance mode, and TTL check
//! updates (`check/pass|warn|fail/<id>?note=`, `check/update/<id>`), in Consul's order:
//! the request is read, then the service or check is found (404) and the caller vetted
//! (403, `service:write` on its service), then the change is made.
//!
//! A TTL update is a heartbeat of the instance owning the check (it renews the TTL and
//! revives an expired instance) plus the check's new status, with `note` or `Output` as
//! the check's output, as Consul keeps it.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use switchboard_connectors::CheckStatus;

use super::agent_register::param;
use super::decode::{self, go_quote, Fields};
use super::error::ConsulError;
use super::{acl, consul_service_name, ConsulState};
use crate::auth::Role;
use crate::registry::checks::Probe;
use crate::registry::RegistryError;

/// Consul keeps this much of a check's output (`DefaultBufSize`).
const MAX_OUTPUT: usize = 4096;

fn unknown_service(id: &str) -> ConsulError {
    ConsulError::not_found(format!(
        "Unknown service ID {}. Ensure that the service ID is passed, not the service name.",
        go_quote(id)
    ))
}

fn unknown_check(id: &str) -> ConsulError {
    ConsulError::not_found(format!(
        "Unknown check ID {}. Ensure that the check ID is passed, not the check name.",
        go_quote(id)
    ))
}

/// The instance `id`, if the caller may change it (Consul's `vetServiceUpdate`).
/// Refuses a caller without `register` over instance `id`'s namespace, or answers
/// `unknown()` when there is no such instance. From memory: a TTL pass never waits for
/// the store.
fn vet_service(
    state: &ConsulState,
    caller: &acl::ConsulCaller,
    id: &str,
    unknown: impl Fn() -> ConsulError,
) -> Result<(), ConsulError> {
    let service = state.registry.service_of(id).ok_or_else(unknown)?;
    let name = consul_service_name(&service.group, &service.name);
    acl::require(
        state,
        caller,
        Role::Register,
        &service.namespace,
        "service:write",
        &name,
    )
}

pub async fn deregister(
    State(state): State<ConsulState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<StatusCode, ConsulError> {
    let caller = acl::identify(&state, query.as_deref(), &headers)?;
    vet_service(&state, &caller, &id, || unknown_service(&id))?;
    (state.registry.deregister(&id).await).map_err(|_| unknown_service(&id))?;
    Ok(StatusCode::OK)
}

/// Go's `strconv.ParseBool`.
fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

pub async fn maintenance(
    State(state): State<ConsulState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<StatusCode, ConsulError> {
    let query = query.as_deref();
    let caller = acl::identify(&state, query, &headers)?;
    let raw = param(query, "enable")
        .ok_or_else(|| ConsulError::bad_request("Missing value for enable"))?;
    let enable = parse_bool(&raw).ok_or_else(|| {
        ConsulError::bad_request(format!("Invalid value for enable: {}", go_quote(&raw)))
    })?;
    vet_service(&state, &caller, &id, || unknown_service(&id))?;
    let reason = param(query, "reason");
    (state
        .registry
        .set_maintenance(&id, enable, reason.as_deref())
        .await)
        .map_err(|_| unknown_service(&id))?;
    Ok(StatusCode::OK)
}

pub async fn pass(
    state: State<ConsulState>,
    id: Path<String>,
    query: RawQuery,
    headers: HeaderMap,
) -> Result<StatusCode, ConsulError> {
    ttl_note(state, id, query, headers, CheckStatus::Passing).await
}

pub async fn warn(
    state: State<ConsulState>,
    id: Path<String>,
    query: RawQuery,
    headers: HeaderMap,
) -> Result<StatusCode, ConsulError> {
    ttl_note(state, id, query, headers, CheckStatus::Warning).await
}

pub async fn fail(
    state: State<ConsulState>,
    id: Path<String>,
    query: RawQuery,
    headers: HeaderMap,
) -> Result<StatusCode, ConsulError> {
    ttl_note(state, id, query, headers, CheckStatus::Critical).await
}

async fn ttl_note(
    State(state): State<ConsulState>,
    Path(check_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    status: CheckStatus,
) -> Result<StatusCode, ConsulError> {
    let query = query.as_deref();
    let caller = acl::identify(&state, query, &headers)?;
    let note = param(query, "note").unwrap_or_default();
    ttl_update(&state, &caller, &check_id, status, note).await
}

/// `PUT /v1/agent/check/update/<id>` with `{"Status": ..., "Output": ...}`.
pub async fn update(
    State(state): State<ConsulState>,
    Path(check_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ConsulError> {
    let caller = acl::identify(&state, query.as_deref(), &headers)?;
    let decode_failed = |err| ConsulError::bad_request(format!("Request decode failed: {err}"));
    let body = decode::parse(&body).map_err(decode_failed)?;
    const FIELDS: &[decode::Field] = &[("Status", &[]), ("Output", &[])];
    let fields =
        Fields::of(&body, "checkUpdate", "agent.checkUpdate", FIELDS).map_err(decode_failed)?;
    let (status, output) = (fields.text("Status"), fields.text("Output"));
    let (status, output) = (
        status.map_err(decode_failed)?,
        output.map_err(decode_failed)?,
    );
    let status = CheckStatus::parse(&status)
        .ok_or_else(|| ConsulError::bad_request(format!("Invalid check status: '{status}'")))?;
    ttl_update(&state, &caller, &check_id, status, output).await
}

async fn ttl_update(
    state: &ConsulState,
    caller: &acl::ConsulCaller,
    check_id: &str,
    status: CheckStatus,
    output: String,
) -> Result<StatusCode, ConsulError> {
    let owner = (state.registry.check_owner(check_id)).ok_or_else(|| unknown_check(check_id))?;
    vet_service(state, caller, &owner, || unknown_check(check_id))?;
    let definition = state.registry.check_definition(&owner, check_id);
    if !definition.is_some_and(|check| matches!(check.probe, Probe::Ttl { .. })) {
        return Err(ConsulError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "CheckID {} does not have associated TTL",
                go_quote(check_id)
            ),
        ));
    }
    let output = truncated(output);
    (state
        .registry
        .update_ttl_check(&owner, check_id, status, &output)
        .await)
        .map_err(|err| match err {
            RegistryError::NotFound(_) | RegistryError::CheckNotFound(_) => unknown_check(check_id),
            other => other.into(),
        })?;
    Ok(StatusCode::OK)
}

/// Output cut to [`MAX_OUTPUT`] bytes the way Consul cuts it.
fn truncated(output: String) -> String {
    if output.len() <= MAX_OUTPUT {
        return output;
    }
    let mut cut = MAX_OUTPUT;
    while !output.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(
        "{} ... (captured {cut} of {} bytes)",
        &output[..cut],
        output.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bools_parse_as_go_does() {
        for yes in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_bool(yes), Some(true));
        }
        for no in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_bool(no), Some(false));
        }
        for bad in ["", "yes", "tRUE", "on"] {
            assert_eq!(parse_bool(bad), None);
        }
    }

    #[test]
    fn long_outputs_are_cut_with_consuls_suffix() {
        assert_eq!(truncated("ok".into()), "ok");
        let cut = truncated("x".repeat(5000));
        assert!(cut.ends_with(" ... (captured 4096 of 5000 bytes)"));
        assert!(cut.starts_with(&"x".repeat(4096)));
    }
}
