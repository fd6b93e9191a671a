//! `/api/v1/tokens`: create, list, show and revoke access tokens (admin tokens), and
//! `/api/v1/tokens/self` (any token). A token's secret is in the answer that creates
//! it and nowhere else.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, Problem};
use super::extract::{Json, PathParam};
use super::openapi::responses::{BadBody, BadParameters, StoreFailure, PROBLEM_JSON};
use super::AppState;
use crate::auth::{Caller, Token, TokenRequest, TokenView};

/// Create a token. The answer is the only time its `secret` is shown. The token may not
/// reach beyond the one creating it (no higher role, no namespace it does not reach).
#[utoipa::path(
    post, path = "/api/v1/tokens", tag = "tokens", operation_id = "create_token",
    request_body = TokenRequest,
    responses(
        (status = 201, description = "Created; `secret` is shown this once", body = TokenView,
            headers(("Location" = String, description = "The token's URL"))),
        BadBody,
        (status = 409, description = "auth_disabled: access control is off", body = Problem, content_type = PROBLEM_JSON),
        StoreFailure,
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(request): Json<TokenRequest>,
) -> Result<Response, ApiError> {
    if !state.auth.enabled() {
        // A token made while anyone may make one would outlast turning access control
        // on; the bootstrap token is how the first one is made.
        return Err(ApiError::conflict(
            "auth_disabled",
            "access control is off, so anyone could make this token: turn it on ([auth] enabled = true) and use the bootstrap token",
        ));
    }
    let shared = state.clone();
    let by = caller.token().cloned();
    let (token, secret) = super::to_completion(async move {
        let created = shared.auth.tokens.create(request, by.as_deref()).await;
        if let Ok((token, _)) = &created {
            tracing::info!(token = %token.id, token_name = %token.name, role = %token.role, namespaces = ?token.scope.patterns(), "Token created");
        }
        created
    })
    .await??;
    let mut view = token.view();
    view.secret = Some(secret);
    let location =
        HeaderValue::try_from(format!("/api/v1/tokens/{}", token.id)).expect("token ids are hex");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(view),
    )
        .into_response())
}

/// The tokens this token may manage: those within its namespaces. Never their secrets.
#[utoipa::path(
    get, path = "/api/v1/tokens", tag = "tokens", operation_id = "list_tokens",
    responses((status = 200, description = "Tokens, oldest first", body = [TokenView]))
)]
pub async fn list(State(state): State<AppState>, caller: Caller) -> axum::Json<Vec<TokenView>> {
    let tokens = state.auth.tokens.list();
    axum::Json(
        tokens
            .iter()
            .filter(|token| manages(&caller, token))
            .map(|token| token.view())
            .collect(),
    )
}

/// One token, without its secret.
#[utoipa::path(
    get, path = "/api/v1/tokens/{id}", tag = "tokens", operation_id = "get_token",
    params(("id" = String, Path, description = "Token id")),
    responses(
        (status = 200, description = "The token", body = TokenView),
        BadParameters,
        (status = 404, description = "token_not_found", body = Problem, content_type = PROBLEM_JSON),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam,
) -> Result<axum::Json<TokenView>, ApiError> {
    Ok(axum::Json(managed(&state, &caller, &id)?.view()))
}

/// Revoke a token. It stops working at once, also for its open watch streams and
/// waiting blocking queries.
#[utoipa::path(
    delete, path = "/api/v1/tokens/{id}", tag = "tokens", operation_id = "revoke_token",
    params(("id" = String, Path, description = "Token id")),
    responses(
        (status = 204, description = "Revoked"),
        BadParameters,
        (status = 404, description = "token_not_found", body = Problem, content_type = PROBLEM_JSON),
        StoreFailure,
    )
)]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam,
) -> Result<StatusCode, ApiError> {
    managed(&state, &caller, &id)?;
    let shared = state.clone();
    let owned = id.clone();
    let revoked = super::to_completion(async move {
        let revoked = shared.auth.tokens.revoke(&owned).await;
        if let Ok(Some(token)) = &revoked {
            tracing::info!(token = %token.id, token_name = %token.name, "Token revoked");
        }
        revoked
    })
    .await??;
    match revoked {
        Some(_) => Ok(StatusCode::NO_CONTENT),
        None => Err(not_found(&id)),
    }
}

/// The token this request presents.
#[utoipa::path(
    get, path = "/api/v1/tokens/self", tag = "tokens", operation_id = "get_own_token",
    responses(
        (status = 200, description = "The token presented", body = TokenView),
        (status = 404, description = "no_token: access control is off, so requests carry no token", body = Problem, content_type = PROBLEM_JSON),
    )
)]
pub async fn own(caller: Caller) -> Result<axum::Json<TokenView>, ApiError> {
    match caller.token() {
        Some(token) => Ok(axum::Json(token.view())),
        None => Err(ApiError::not_found(
            "no_token",
            "access control is off: requests carry no token",
        )),
    }
}

/// Whether `caller` may see and revoke `token`: its namespaces are within the caller's.
fn manages(caller: &Caller, token: &Token) -> bool {
    match caller {
        Caller::Token(own) => own.scope.covers(&token.scope),
        Caller::Unchecked => true,
        Caller::Anonymous(_) => false,
    }
}

/// Token `id`, if `caller` manages it. One it does not is as unknown as a missing one,
/// so tokens outside a caller's reach cannot be probed for.
fn managed(state: &AppState, caller: &Caller, id: &str) -> Result<std::sync::Arc<Token>, ApiError> {
    state
        .auth
        .tokens
        .get(id)
        .filter(|token| manages(caller, token))
        .ok_or_else(|| not_found(id))
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found("token_not_found", format!("no token `{id}`"))
}
