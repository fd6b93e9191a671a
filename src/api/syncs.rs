//! Sync-back jobs: list, read, create, replace, delete, pause, resume, status, and a dry
//! run (`syncs:plan`) that returns exactly the writes and deletes the job would make.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::error::{ApiError, Problem};
use super::extract::{Json, PathParam};
use super::openapi::responses::{BadBody, BadParameters, StoreFailure, PROBLEM_JSON};
use super::{change_then_show, to_completion, AppState};
use crate::sync::{Plan, SyncError, SyncSpec, SyncStatus, SyncView};

impl From<SyncError> for ApiError {
    fn from(err: SyncError) -> ApiError {
        let detail = err.to_string();
        match err {
            SyncError::Invalid(spec) => {
                ApiError::bad_request("invalid_sync", spec.message).with_field_if(spec.field)
            }
            SyncError::Exists(_) => ApiError::conflict("sync_exists", detail),
            SyncError::NotFound(_) => ApiError::not_found("sync_not_found", detail),
            SyncError::ReadOnly(_) => ApiError::conflict("sync_read_only", detail),
            SyncError::Store(store) => store.into(),
        }
    }
}

fn current(state: &AppState, id: &str) -> Result<axum::Json<SyncView>, ApiError> {
    state
        .syncs
        .view(id)
        .map(axum::Json)
        .ok_or_else(|| SyncError::NotFound(id.to_owned()).into())
}

/// Every sync job with its status.
#[utoipa::path(
    get, path = "/api/v1/syncs", tag = "syncs", operation_id = "list_syncs",
    responses((status = 200, description = "Jobs, by id", body = [SyncView]))
)]
pub async fn list(State(state): State<AppState>) -> axum::Json<Vec<SyncView>> {
    axum::Json(state.syncs.views())
}

/// One job: status, origin and definition.
#[utoipa::path(
    get, path = "/api/v1/syncs/{id}", tag = "syncs", operation_id = "get_sync",
    params(("id" = String, Path, description = "Sync job id")),
    responses(
        BadParameters,
        (status = 200, description = "The job", body = SyncView),
        (status = 404, description = "sync_not_found", body = Problem, content_type = PROBLEM_JSON),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    PathParam(id): PathParam,
) -> Result<axum::Json<SyncView>, ApiError> {
    current(&state, &id)
}

/// One job's status only.
#[utoipa::path(
    get, path = "/api/v1/syncs/{id}/status", tag = "syncs", operation_id = "get_sync_status",
    params(("id" = String, Path, description = "Sync job id")),
    responses(
        BadParameters,
        (status = 200, description = "The job's status", body = SyncStatus),
        (status = 404, description = "sync_not_found", body = Problem, content_type = PROBLEM_JSON),
    )
)]
pub async fn status(
    State(state): State<AppState>,
    PathParam(id): PathParam,
) -> Result<axum::Json<SyncStatus>, ApiError> {
    current(&state, &id).map(|view| axum::Json(view.0.status))
}

/// Adds a job (the fields of a `[[syncs]]` table) and starts it. Stored; comes back
/// after a restart.
#[utoipa::path(
    post, path = "/api/v1/syncs", tag = "syncs", operation_id = "create_sync",
    request_body(content = SyncSpec, description = "A sync job, as a `[[syncs]]` table"),
    responses(
        (status = 201, description = "Created", body = SyncView),
        BadBody,
        (status = 409, description = "sync_exists", body = Problem, content_type = PROBLEM_JSON),
        StoreFailure,
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Json(document): Json<Value>,
) -> Result<Response, ApiError> {
    let shared = state.clone();
    let id = to_completion(async move { shared.syncs.create(document).await }).await??;
    Ok((StatusCode::CREATED, current(&state, &id)?).into_response())
}

/// Replaces an API job's definition (not its target); the job restarts with its ledger.
#[utoipa::path(
    put, path = "/api/v1/syncs/{id}", tag = "syncs", operation_id = "replace_sync",
    params(("id" = String, Path, description = "Sync job id")),
    request_body(content = SyncSpec, description = "The whole job definition"),
    responses(
        (status = 200, description = "Replaced", body = SyncView),
        BadBody,
        (status = 404, description = "sync_not_found", body = Problem, content_type = PROBLEM_JSON),
        (status = 409, description = "sync_read_only (a config-file job)", body = Problem, content_type = PROBLEM_JSON),
        StoreFailure,
    )
)]
pub async fn replace(
    State(state): State<AppState>,
    PathParam(id): PathParam,
    Json(document): Json<Value>,
) -> Result<axum::Json<SyncView>, ApiError> {
    let (shared, key) = (state.clone(), id.clone());
    let change = async move { shared.syncs.replace(&key, document).await };
    change_then_show(change, || current(&state, &id)).await
}

/// Removes an API job and its ledger. What it wrote stays in the target, unmanaged.
#[utoipa::path(
    delete, path = "/api/v1/syncs/{id}", tag = "syncs", operation_id = "delete_sync",
    params(("id" = String, Path, description = "Sync job id")),
    responses(
        BadParameters,
        (status = 204, description = "Deleted"),
        (status = 404, description = "sync_not_found", body = Problem, content_type = PROBLEM_JSON),
        (status = 409, description = "sync_read_only", body = Problem, content_type = PROBLEM_JSON),
        StoreFailure,
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    PathParam(id): PathParam,
) -> Result<StatusCode, ApiError> {
    to_completion(async move { state.syncs.delete(&id).await }).await??;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_paused(
    state: AppState,
    id: String,
    paused: bool,
) -> Result<axum::Json<SyncView>, ApiError> {
    let (shared, key) = (state.clone(), id.clone());
    let change = async move { shared.syncs.set_paused(&key, paused).await };
    change_then_show(change, || current(&state, &id)).await
}

/// Pauses a job: nothing is written until it resumes; its ledger is kept. Stored.
#[utoipa::path(
    post, path = "/api/v1/syncs/{id}/pause", tag = "syncs", operation_id = "pause_sync",
    params(("id" = String, Path, description = "Sync job id")),
    responses(
        BadParameters,
        (status = 200, description = "Paused", body = SyncView),
        (status = 404, description = "sync_not_found", body = Problem, content_type = PROBLEM_JSON),
        StoreFailure,
    )
)]
pub async fn pause(
    State(state): State<AppState>,
    PathParam(id): PathParam,
) -> Result<axum::Json<SyncView>, ApiError> {
    set_paused(state, id, true).await
}

/// Resumes a paused job; it catches up with everything that changed meanwhile.
#[utoipa::path(
    post, path = "/api/v1/syncs/{id}/resume", tag = "syncs", operation_id = "resume_sync",
    params(("id" = String, Path, description = "Sync job id")),
    responses(
        BadParameters,
        (status = 200, description = "Running", body = SyncView),
        (status = 404, description = "sync_not_found", body = Problem, content_type = PROBLEM_JSON),
        StoreFailure,
    )
)]
pub async fn resume(
    State(state): State<AppState>,
    PathParam(id): PathParam,
) -> Result<axum::Json<SyncView>, ApiError> {
    set_paused(state, id, false).await
}

/// Dry run: the writes and deletes the job in the body would make now (with the ledger
/// of the job of that id, if there is one). Nothing is written.
#[utoipa::path(
    post, path = "/api/v1/syncs:plan", tag = "syncs", operation_id = "plan_sync",
    request_body(content = SyncSpec, description = "A sync job definition"),
    responses(
        (status = 200, description = "What the job would do", body = Plan),
        BadBody,
    )
)]
pub async fn plan(
    State(state): State<AppState>,
    Json(document): Json<Value>,
) -> Result<axum::Json<Plan>, ApiError> {
    Ok(axum::Json(state.syncs.plan(document).await?))
}
