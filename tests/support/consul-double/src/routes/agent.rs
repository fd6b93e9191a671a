//! The agent's write endpoints: registering and deregistering services, and setting TTL
//! checks (pass/warn/fail with `?note`, or `update` with `{Status, Output}`). Answers are
//! Consul's: `200` with an empty body, or its error texts. With `strip_meta` on, a
//! registration loses its `Meta` here, after validation and before the store.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use tokio::time::Instant;

use crate::blocking::Params;
use crate::error::ApiError;
use crate::register::{CheckUpdate, Registration, Status};
use crate::shared::Shared;
use crate::state::CheckError;

pub async fn register(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let mut registration = Registration::decode(&body).map_err(ApiError::bad_request)?;
    // Dropped before the store sees it, so every read agrees and a re-registration that
    // differs only in `Meta` is an unchanged row (no index moves), as in a lossy registry.
    if shared.strips_meta() {
        registration.service.meta.clear();
    }
    let params = Params::parse(query.as_deref());
    // Consul: the bare flag or `=true`; any other value leaves existing checks alone.
    let replace = matches!(params.get("replace-existing-checks"), Some("" | "true"));
    tracing::debug!(service.id = %registration.service.id, "Registering service");
    shared.write(|s| s.register(registration, replace, Instant::now()));
    Ok(StatusCode::OK)
}

pub async fn deregister(
    State(shared): State<Arc<Shared>>,
    Path(service_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if shared.write(|s| s.deregister(&service_id)) {
        return Ok(StatusCode::OK);
    }
    Err(ApiError::not_found(format!(
        "Unknown service ID \"{service_id}\". Ensure that the service ID is passed, not the service name."
    )))
}

/// `pass`, `warn` or `fail`, with `?note=` as the check's output.
pub async fn check(
    State(shared): State<Arc<Shared>>,
    Path(check_id): Path<String>,
    RawQuery(query): RawQuery,
    action: &'static str,
) -> Result<StatusCode, ApiError> {
    let status = match action {
        "pass" => Status::Passing,
        "warn" => Status::Warning,
        _ => Status::Critical,
    };
    let params = Params::parse(query.as_deref());
    let note = params.get("note").unwrap_or_default().to_owned();
    set_check(&shared, &check_id, status, &note)
}

pub async fn update_check(
    State(shared): State<Arc<Shared>>,
    Path(check_id): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let update = CheckUpdate::decode(&body).map_err(ApiError::bad_request)?;
    set_check(&shared, &check_id, update.status, &update.output)
}

fn set_check(
    shared: &Shared,
    check_id: &str,
    status: Status,
    output: &str,
) -> Result<StatusCode, ApiError> {
    match shared.write(|s| s.update_check(check_id, status, output, Instant::now())) {
        Ok(()) => Ok(StatusCode::OK),
        Err(CheckError::Unknown) => Err(ApiError::not_found(format!(
            "Unknown check ID \"{check_id}\". Ensure that the check ID is passed, not the check name."
        ))),
        // Only a TTL check takes its status from the API; Consul answers this with a 500.
        Err(CheckError::NotTtl) => Err(ApiError::internal(format!(
            "CheckID \"{check_id}\" does not have associated TTL"
        ))),
    }
}
