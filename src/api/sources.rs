//! External sources: their state, counts and last error. Credentials never appear.

use axum::extract::State;
use axum::Json;

use super::error::{ApiError, Problem};
use super::extract::PathParam;
use super::AppState;
use crate::federation::SourceStatus;

/// Every configured source's status.
#[utoipa::path(
    get, path = "/api/v1/sources", tag = "sources",
    responses((status = 200, description = "Sources", body = [SourceStatus]))
)]
pub async fn list(State(state): State<AppState>) -> Json<Vec<SourceStatus>> {
    let snapshot = state.catalog.snapshot();
    Json(state.federation.statuses(&snapshot))
}

/// One source's status.
#[utoipa::path(
    get, path = "/api/v1/sources/{id}", tag = "sources",
    params(("id" = String, Path, description = "Source id")),
    responses(
        (status = 200, description = "The source", body = SourceStatus),
        (status = 404, description = "source_not_found", body = Problem),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    PathParam(id): PathParam,
) -> Result<Json<SourceStatus>, ApiError> {
    let snapshot = state.catalog.snapshot();
    state
        .federation
        .status(&id, &snapshot)
        .map(Json)
        .ok_or_else(|| ApiError::not_found("source_not_found", format!("no source `{id}`")))
}
