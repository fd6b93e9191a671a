//! The native registry's endpoints: register, read, heartbeat, status, deregister, health.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::ToSchema;

use super::access::check_reach;
use super::error::{ApiError, Problem};
use super::extract::{Json, PathParam};
use super::openapi::responses::{BadBody, BadParameters, StoreFailure, PROBLEM_JSON};
use super::openapi::schemas::InstanceId;
use super::{tenant, AppState};
use crate::auth::Caller;
use crate::catalog::InstanceView;
use crate::registry::{HeartbeatReply, InstanceHealth, RegisterRequest};
use crate::vocab::parse_status;
use switchboard_connectors::{Status, DEFAULT_NAMESPACE};

/// Register an instance. Durable before the response is sent. 201 when new; 200 when it
/// replaced an instance with the same id (or, without an id, the same service endpoint).
#[utoipa::path(
    post, path = "/api/v1/instances", tag = "registry", operation_id = "register_instance",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered", body = InstanceView,
            headers(("Location" = String, description = "The instance's URL"))),
        (status = 200, description = "Replaced an existing registration", body = InstanceView,
            headers(("Location" = String, description = "The instance's URL"))),
        BadBody,
        StoreFailure,
    )
)]
pub async fn register(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Json(mut request): Json<RegisterRequest>,
) -> Result<Response, ApiError> {
    if request.namespace.is_none() {
        request.namespace = tenant::of(&headers)?.map(str::to_owned);
    }
    let namespace = request.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE);
    check_reach(&caller, namespace)?;
    let reaches = |namespace: &str| caller.reaches(namespace);
    let (view, created) = state.registry.register_within(request, &reaches).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let location = HeaderValue::try_from(format!("/api/v1/instances/{}", view.id))
        .expect("validated ids are valid header values");
    Ok((status, [(header::LOCATION, location)], axum::Json(view)).into_response())
}

/// One native instance, with its live heartbeat time.
#[utoipa::path(
    get, path = "/api/v1/instances/{id}", tag = "registry", operation_id = "get_instance",
    params(("id" = InstanceId, Path, description = "Instance id")),
    responses(
        (status = 200, description = "The instance", body = InstanceView),
        BadParameters,
        (status = 404, description = "instance_not_found", body = Problem, content_type = PROBLEM_JSON),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam,
) -> Result<axum::Json<InstanceView>, ApiError> {
    reaches_instance(&state, &caller, &id)?;
    Ok(axum::Json(state.registry.get(&id).await?))
}

/// Renew an instance's TTL. 404 when unknown: the client should register again.
#[utoipa::path(
    put, path = "/api/v1/instances/{id}/heartbeat", tag = "registry", operation_id = "heartbeat_instance",
    params(("id" = InstanceId, Path, description = "Instance id")),
    responses(
        (status = 200, description = "Renewed", body = HeartbeatReply),
        BadParameters,
        (status = 404, description = "instance_not_found: register again", body = Problem, content_type = PROBLEM_JSON),
    )
)]
pub async fn heartbeat(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam,
) -> Result<axum::Json<HeartbeatReply>, ApiError> {
    reaches_instance(&state, &caller, &id)?;
    Ok(axum::Json(state.registry.heartbeat(&id).await?))
}

/// 403 unless `caller` reaches the namespace of instance `id`. An unknown id passes: the
/// handler answers its 404.
fn reaches_instance(state: &AppState, caller: &Caller, id: &str) -> Result<(), ApiError> {
    if caller.reaches_everything() {
        return Ok(());
    }
    match state.registry.namespace_of(id) {
        // Which namespace is not said: it is beyond the caller.
        Some(namespace) if !caller.reaches(&namespace) => Err(ApiError::forbidden(format!(
            "instance `{id}` is registered in a namespace outside this token's"
        ))),
        _ => Ok(()),
    }
}

/// Body of `PUT /api/v1/instances/{id}/status`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    /// `active`, `inactive`, `maintenance` or `offline`.
    #[schema(value_type = Status)]
    pub status: String,
}

/// Set an instance's status. `offline` keeps the instance (with `offline_time`).
#[utoipa::path(
    put, path = "/api/v1/instances/{id}/status", tag = "registry", operation_id = "set_instance_status",
    params(("id" = InstanceId, Path, description = "Instance id")),
    request_body = StatusChange,
    responses(
        (status = 200, description = "Status set", body = InstanceView),
        BadBody,
        (status = 404, description = "instance_not_found", body = Problem, content_type = PROBLEM_JSON),
        StoreFailure,
    )
)]
pub async fn set_status(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam,
    Json(change): Json<StatusChange>,
) -> Result<axum::Json<InstanceView>, ApiError> {
    reaches_instance(&state, &caller, &id)?;
    let status = parse_status(&change.status)?;
    Ok(axum::Json(state.registry.set_status(&id, status).await?))
}

/// Deregister an instance (deleted for good). Returns what was removed.
#[utoipa::path(
    delete, path = "/api/v1/instances/{id}", tag = "registry", operation_id = "deregister_instance",
    params(("id" = InstanceId, Path, description = "Instance id")),
    responses(
        (status = 200, description = "Removed", body = InstanceView),
        BadParameters,
        (status = 404, description = "instance_not_found", body = Problem, content_type = PROBLEM_JSON),
        StoreFailure,
    )
)]
pub async fn deregister(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam,
) -> Result<axum::Json<InstanceView>, ApiError> {
    reaches_instance(&state, &caller, &id)?;
    Ok(axum::Json(state.registry.deregister(&id).await?))
}

/// Status, uptime, registration age and TTL state of one instance.
#[utoipa::path(
    get, path = "/api/v1/instances/{id}/health", tag = "registry", operation_id = "get_instance_health",
    params(("id" = InstanceId, Path, description = "Instance id")),
    responses(
        (status = 200, description = "Health", body = InstanceHealth),
        BadParameters,
        (status = 404, description = "instance_not_found", body = Problem, content_type = PROBLEM_JSON),
    )
)]
pub async fn health(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam,
) -> Result<axum::Json<InstanceHealth>, ApiError> {
    reaches_instance(&state, &caller, &id)?;
    Ok(axum::Json(state.registry.health(&id).await?))
}
