//! Liveness, readiness and Prometheus metrics.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use super::AppState;

/// Liveness: 200 while the process serves requests.
#[utoipa::path(
    get, path = "/health", tag = "system", operation_id = "health",
    responses((status = 200, description = r#"Alive: `{"status": "ok"}`"#, body = Object))
)]
pub async fn health() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// Readiness: 200 once the store is loaded, the catalog published, and every source has
/// delivered its first full view or failed its first connection attempt; 503 before.
#[utoipa::path(
    get, path = "/ready", tag = "system", operation_id = "ready",
    responses(
        (status = 200, description = r#"Ready: `{"status": "ready"}`"#, body = Object),
        (status = 503, description = r#"Starting: `{"status": "starting"}`"#, body = Object),
    )
)]
pub async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    // The router only exists once the store is loaded and the catalog published, so the
    // sources are all that can still be pending.
    if state.federation.is_ready() {
        (StatusCode::OK, Json(json!({ "status": "ready" })))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "starting" })),
        )
    }
}

/// Prometheus metrics (OpenMetrics text).
#[utoipa::path(get, path = "/metrics", tag = "system", operation_id = "metrics", responses((status = 200, description = "Metrics", content_type = "application/openmetrics-text", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}
