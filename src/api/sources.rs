//! External sources: list and read them with their status (credentials never appear), and
//! change them at runtime. File sources are read-only here; API sources are stored.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::error::{ApiError, Problem};
use super::extract::{Json, PathParam};
use super::openapi::responses::{BadBody, BadParameters, StoreFailure, PROBLEM_JSON};
use super::{to_completion, AppState};
use crate::federation::{FederationError, ProbeReport, SourceStatus, SourceView};

impl From<FederationError> for ApiError {
    fn from(err: FederationError) -> ApiError {
        let detail = err.to_string();
        match err {
            FederationError::Invalid { field, .. } => {
                ApiError::bad_request("invalid_source", detail).with_field_if(field)
            }
            FederationError::SecretsRequired(fields) => {
                ApiError::bad_request("secrets_required", detail).with_fields(fields)
            }
            FederationError::Exists(_) => ApiError::conflict("source_exists", detail),
            FederationError::NotFound(_) => ApiError::not_found("source_not_found", detail),
            FederationError::ReadOnly(_) => ApiError::conflict("source_read_only", detail),
            FederationError::Store(store) => store.into(),
        }
    }
}

fn not_found(id: &str) -> ApiError {
    FederationError::NotFound(id.to_owned()).into()
}

/// Runs a change to source `id` to completion, then answers with the source as it is
/// now (with its new configuration).
async fn change_then_show<Fut>(
    state: AppState,
    id: String,
    change: impl FnOnce(AppState, String) -> Fut,
) -> Result<axum::Json<SourceView>, ApiError>
where
    Fut: std::future::Future<Output = Result<(), FederationError>> + Send + 'static,
{
    let change = change(state.clone(), id.clone());
    super::change_then_show(change, || current(&state, &id)).await
}

/// The source as it is now (after a change: with its new configuration).
fn current(state: &AppState, id: &str) -> Result<axum::Json<SourceView>, ApiError> {
    let snapshot = state.catalog.snapshot();
    state
        .federation
        .view(id, &snapshot)
        .map(axum::Json)
        .ok_or_else(|| not_found(id))
}

/// Every source: status, origin and configuration (secrets as `***`).
#[utoipa::path(
    get, path = "/api/v1/sources", tag = "sources", operation_id = "list_sources",
    responses((status = 200, description = "Sources, by id", body = [SourceView]))
)]
pub async fn list(State(state): State<AppState>) -> axum::Json<Vec<SourceView>> {
    let snapshot = state.catalog.snapshot();
    axum::Json(state.federation.views(&snapshot))
}

/// One source: status, origin and configuration (secrets as `***`).
#[utoipa::path(
    get, path = "/api/v1/sources/{id}", tag = "sources", operation_id = "get_source",
    params(("id" = String, Path, description = "Source id")),
    responses(
        BadParameters,
        (status = 200, description = "The source", body = SourceView),
        (status = 404, description = "source_not_found", body = Problem, content_type = PROBLEM_JSON),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    PathParam(id): PathParam,
) -> Result<axum::Json<SourceView>, ApiError> {
    current(&state, &id)
}

/// One source's status only.
#[utoipa::path(
    get, path = "/api/v1/sources/{id}/status", tag = "sources", operation_id = "get_source_status",
    params(("id" = String, Path, description = "Source id")),
    responses(
        BadParameters,
        (status = 200, description = "The source's status", body = SourceStatus),
        (status = 404, description = "source_not_found", body = Problem, content_type = PROBLEM_JSON),
    )
)]
pub async fn status(
    State(state): State<AppState>,
    PathParam(id): PathParam,
) -> Result<axum::Json<SourceStatus>, ApiError> {
    let snapshot = state.catalog.snapshot();
    state
        .federation
        .status(&id, &snapshot)
        .map(axum::Json)
        .ok_or_else(|| not_found(&id))
}

/// Adds a source (the same fields as a `[[sources]]` table) and connects it. It is
/// stored and comes back after a restart.
#[utoipa::path(
    post, path = "/api/v1/sources", tag = "sources", operation_id = "create_source",
    request_body(content = Object, description = "A source document, as a `[[sources]]` table"),
    responses(
        (status = 201, description = "Created", body = SourceView),
        BadBody,
        (status = 409, description = "source_exists", body = Problem, content_type = PROBLEM_JSON),
        StoreFailure,
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Json(document): Json<Value>,
) -> Result<Response, ApiError> {
    let shared = state.clone();
    let id = to_completion(async move { shared.federation.create(document).await }).await??;
    Ok((StatusCode::CREATED, current(&state, &id)?).into_response())
}

/// Replaces an API source's document; only it reconnects, its instances served (stale)
/// until its new view arrives. Secrets sent as `***` keep their stored value, unless the
/// document changes `endpoints` or `tls`: then each stored secret is sent again or left
/// out (400 `secrets_required` names those neither).
#[utoipa::path(
    put, path = "/api/v1/sources/{id}", tag = "sources", operation_id = "replace_source",
    params(("id" = String, Path, description = "Source id")),
    request_body(content = Object, description = "The whole source document"),
    responses(
        (status = 200, description = "Replaced", body = SourceView),
        BadBody,
        (status = 404, description = "source_not_found", body = Problem, content_type = PROBLEM_JSON),
        (status = 409, description = "source_read_only (a config-file source)", body = Problem, content_type = PROBLEM_JSON),
        StoreFailure,
    )
)]
pub async fn replace(
    State(state): State<AppState>,
    PathParam(id): PathParam,
    Json(document): Json<Value>,
) -> Result<axum::Json<SourceView>, ApiError> {
    change_then_show(state, id, |state, id| async move {
        state.federation.replace(&id, document).await
    })
    .await
}

/// Changes some fields of an API source (a JSON merge patch, RFC 7386: `null` removes a
/// field). Applied like `PUT`: a patch of `endpoints` or `tls` sends each stored secret
/// again or drops it with `null`.
#[utoipa::path(
    patch, path = "/api/v1/sources/{id}", tag = "sources", operation_id = "patch_source",
    params(("id" = String, Path, description = "Source id")),
    request_body(content = Object, description = "JSON merge patch of the source document"),
    responses(
        (status = 200, description = "Changed", body = SourceView),
        BadBody,
        (status = 404, description = "source_not_found", body = Problem, content_type = PROBLEM_JSON),
        (status = 409, description = "source_read_only", body = Problem, content_type = PROBLEM_JSON),
        StoreFailure,
    )
)]
pub async fn patch(
    State(state): State<AppState>,
    PathParam(id): PathParam,
    Json(patch): Json<Value>,
) -> Result<axum::Json<SourceView>, ApiError> {
    change_then_show(state, id, |state, id| async move {
        state.federation.patch(&id, &patch).await
    })
    .await
}

/// Removes an API source and its instances.
#[utoipa::path(
    delete, path = "/api/v1/sources/{id}", tag = "sources", operation_id = "delete_source",
    params(("id" = String, Path, description = "Source id")),
    responses(
        BadParameters,
        (status = 204, description = "Deleted"),
        (status = 404, description = "source_not_found", body = Problem, content_type = PROBLEM_JSON),
        (status = 409, description = "source_read_only", body = Problem, content_type = PROBLEM_JSON),
        StoreFailure,
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    PathParam(id): PathParam,
) -> Result<StatusCode, ApiError> {
    to_completion(async move { state.federation.delete(&id).await }).await??;
    Ok(StatusCode::NO_CONTENT)
}

/// Connects a disconnected source; its instances come back with its first full view.
#[utoipa::path(
    post, path = "/api/v1/sources/{id}/connect", tag = "sources", operation_id = "connect_source",
    params(("id" = String, Path, description = "Source id")),
    responses(
        BadParameters,
        (status = 200, description = "Connecting", body = SourceView),
        (status = 404, description = "source_not_found", body = Problem, content_type = PROBLEM_JSON),
        StoreFailure,
    )
)]
pub async fn connect(
    State(state): State<AppState>,
    PathParam(id): PathParam,
) -> Result<axum::Json<SourceView>, ApiError> {
    change_then_show(state, id, |state, id| async move {
        state.federation.connect(&id).await
    })
    .await
}

/// Disconnects a source and removes its instances from the catalog at once (unlike an
/// outage, which keeps them served as stale). Kept across restarts for API sources.
#[utoipa::path(
    post, path = "/api/v1/sources/{id}/disconnect", tag = "sources", operation_id = "disconnect_source",
    params(("id" = String, Path, description = "Source id")),
    responses(
        BadParameters,
        (status = 200, description = "Disconnected", body = SourceView),
        (status = 404, description = "source_not_found", body = Problem, content_type = PROBLEM_JSON),
        StoreFailure,
    )
)]
pub async fn disconnect(
    State(state): State<AppState>,
    PathParam(id): PathParam,
) -> Result<axum::Json<SourceView>, ApiError> {
    change_then_show(state, id, |state, id| async move {
        state.federation.disconnect(&id).await
    })
    .await
}

/// Dry run: checks a source document and tries to connect, without adding it. The
/// attempt ends after `api.validate_timeout`; at most `api.validate_concurrency` run at
/// once, as each connects wherever the body says.
#[utoipa::path(
    post, path = "/api/v1/sources:validate", tag = "sources", operation_id = "validate_source",
    request_body(content = Object, description = "A source document"),
    responses(
        (status = 200, description = "What a connection found", body = ProbeReport),
        BadBody,
        (status = 429, description = "validate_busy: as many dry runs as allowed are running (`Retry-After`)", body = Problem, content_type = PROBLEM_JSON),
    )
)]
pub async fn validate(
    State(state): State<AppState>,
    Json(document): Json<Value>,
) -> Result<axum::Json<ProbeReport>, ApiError> {
    let api = &state.config.api;
    let Ok(_slot) = state.validations.try_acquire() else {
        // A slot frees within one timeout at the latest.
        let seconds = api.validate_timeout.as_secs_f64().ceil().max(1.0) as u32;
        let detail = format!(
            "{} dry runs are already connecting (api.validate_concurrency); try again shortly",
            api.validate_concurrency
        );
        return Err(
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, "validate_busy", detail)
                .retry_after(seconds),
        );
    };
    let report = state
        .federation
        .probe(document, api.validate_timeout)
        .await?;
    Ok(axum::Json(report))
}
