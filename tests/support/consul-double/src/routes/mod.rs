//! The HTTP surface: which paths and methods exist, and the gate every request passes on
//! arrival (counting, failing mode, ACL token), like Consul's HTTP wrapper.
//!
//! Routes: `read.rs` (catalog, health, agent services, status) and `agent.rs` (service and
//! check writes). A known path with the wrong method answers Consul's `405 method X not
//! allowed` with an `Allow` header; an unknown path answers an empty `404`.

mod agent;
mod read;

use std::sync::Arc;

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put, MethodRouter};
use axum::Router;

use crate::blocking::Params;
use crate::error::ApiError;
use crate::shared::Shared;

/// The double's whole HTTP API.
pub fn router(shared: Arc<Shared>) -> Router {
    let check = |action: &'static str| {
        put(move |s: State<Arc<Shared>>, p: Path<String>, q: RawQuery| {
            agent::check(s, p, q, action)
        })
    };
    Router::new()
        .route(
            "/v1/catalog/services",
            only(get(read::catalog_services), "GET"),
        )
        .route(
            "/v1/health/service/{*name}",
            only(get(read::health_service), "GET"),
        )
        .route("/v1/agent/services", only(get(read::agent_services), "GET"))
        .route("/v1/status/leader", only(get(read::status_leader), "GET"))
        .route(
            "/v1/agent/service/register",
            only(put(agent::register), "PUT"),
        )
        .route(
            "/v1/agent/service/deregister/{*service_id}",
            only(put(agent::deregister), "PUT"),
        )
        .route(
            "/v1/agent/check/pass/{*check_id}",
            only(check("pass"), "PUT"),
        )
        .route(
            "/v1/agent/check/warn/{*check_id}",
            only(check("warn"), "PUT"),
        )
        .route(
            "/v1/agent/check/fail/{*check_id}",
            only(check("fail"), "PUT"),
        )
        .route(
            "/v1/agent/check/update/{*check_id}",
            only(put(agent::update_check), "PUT"),
        )
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(middleware::from_fn_with_state(shared.clone(), gate))
        .with_state(shared)
}

/// Answers other methods as Consul does: `405`, `Allow`, `method X not allowed`.
fn only(route: MethodRouter<Arc<Shared>>, allow: &'static str) -> MethodRouter<Arc<Shared>> {
    route.fallback(move |method: Method| async move {
        let body = format!("method {method} not allowed");
        (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, allow)],
            body,
        )
    })
}

/// Runs on every request's arrival: counts it, then refuses it if the double is failing or
/// the ACL token does not match.
async fn gate(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    shared.count(request.uri().path());
    if shared.is_failing() {
        return ApiError::no_leader().into_response();
    }
    if let Some(required) = shared.token() {
        let params = Params::parse(request.uri().query());
        match presented_token(&params, request.headers()) {
            None => {
                return ApiError::new(StatusCode::FORBIDDEN, "Permission denied").into_response()
            }
            Some(token) if token != required => {
                return ApiError::new(StatusCode::FORBIDDEN, "ACL not found").into_response()
            }
            Some(_) => {}
        }
    }
    next.run(request).await
}

/// The request's ACL token, in Consul's order: `?token=`, `X-Consul-Token`,
/// `Authorization: Bearer`.
fn presented_token(params: &Params, headers: &HeaderMap) -> Option<String> {
    let non_empty = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    if let Some(token) = params.get("token").and_then(non_empty) {
        return Some(token);
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(token) = header("x-consul-token").and_then(non_empty) {
        return Some(token);
    }
    let bearer = header("authorization")?;
    let (scheme, token) = bearer.trim().split_once(' ')?;
    match scheme.eq_ignore_ascii_case("bearer") {
        true => non_empty(token),
        false => None,
    }
}
