//! Merge rules: which policy (`union`, `failover`) applies to which services.

use axum::extract::State;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::error::ApiError;
use super::extract::Json;
use super::openapi::responses::{BadBody, StoreFailure};
use super::{to_completion, AppState};
use crate::catalog::MergeRule;
use crate::catalog::MergeRulesView;

/// The body of `PUT /api/v1/merge`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RulesBody {
    rules: Vec<MergeRule>,
}

/// Every merge rule in the order they are tried: the config file's, then the API's.
#[utoipa::path(
    get, path = "/api/v1/merge", tag = "sources", operation_id = "get_merge_rules",
    responses((status = 200, description = "Merge rules", body = MergeRulesView))
)]
pub async fn get(State(state): State<AppState>) -> axum::Json<MergeRulesView> {
    axum::Json(state.merge.view().await)
}

/// Replaces the API's merge rules (stored; the config file's stay first). Every service
/// is re-merged at once.
#[utoipa::path(
    put, path = "/api/v1/merge", tag = "sources", operation_id = "replace_merge_rules",
    request_body(content = RulesBody, description = r#"`{"rules": [{"services": ["pay-*"], "policy": "failover"}]}`"#),
    responses(
        (status = 200, description = "The rules now in force", body = MergeRulesView),
        BadBody,
        StoreFailure,
    )
)]
pub async fn replace(
    State(state): State<AppState>,
    Json(body): Json<Value>,
) -> Result<axum::Json<MergeRulesView>, ApiError> {
    let body: RulesBody = serde_path_to_error::deserialize(body).map_err(|err| {
        let field = err.path().to_string();
        ApiError::bad_request("invalid_merge_rule", err.into_inner().to_string()).with_field(field)
    })?;
    for (i, rule) in body.rules.iter().enumerate() {
        rule.validate().map_err(|(field, message)| {
            ApiError::bad_request("invalid_merge_rule", message)
                .with_field(format!("rules[{i}].{field}"))
        })?;
    }
    let shared = state.clone();
    to_completion(async move { shared.merge.replace(body.rules).await }).await??;
    Ok(axum::Json(state.merge.view().await))
}
