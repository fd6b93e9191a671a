//! The agent API's routes: registration into the native registry
//! (`agent_register.rs`, reading bodies with `definition.rs` and `check_type.rs` over
//! the Go-style decoder of `decode.rs`), deregistration,
//! maintenance and check updates (`agent_checks.rs`), and the agent's local reads
//! (`agent_reads.rs`).
//!
//! Each route answers a method it does not serve as Consul does: 405 `method <M> not
//! allowed` with an `Allow` header, and `OPTIONS` with 200 and that header.

use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put, MethodRouter};
use axum::Router;

use super::error::ConsulError;
use super::{agent_checks, agent_reads, agent_register, ConsulState};

pub fn routes() -> Router<ConsulState> {
    Router::new()
        .route(
            "/v1/agent/services",
            only(get(agent_reads::services), "GET,OPTIONS"),
        )
        .route(
            "/v1/agent/service/{id}",
            only(get(agent_reads::service), "GET,OPTIONS"),
        )
        .route(
            "/v1/agent/checks",
            only(get(agent_reads::checks), "GET,OPTIONS"),
        )
        .route(
            "/v1/agent/service/register",
            only(put(agent_register::register), "OPTIONS,PUT"),
        )
        .route(
            "/v1/agent/service/deregister/{id}",
            only(put(agent_checks::deregister), "OPTIONS,PUT"),
        )
        .route(
            "/v1/agent/service/maintenance/{id}",
            only(put(agent_checks::maintenance), "OPTIONS,PUT"),
        )
        .route(
            "/v1/agent/check/pass/{id}",
            only(put(agent_checks::pass), "OPTIONS,PUT"),
        )
        .route(
            "/v1/agent/check/warn/{id}",
            only(put(agent_checks::warn), "OPTIONS,PUT"),
        )
        .route(
            "/v1/agent/check/fail/{id}",
            only(put(agent_checks::fail), "OPTIONS,PUT"),
        )
        .route(
            "/v1/agent/check/update/{id}",
            only(put(agent_checks::update), "OPTIONS,PUT"),
        )
}

/// `route` answering every other method as Consul does; `allow` is Consul's `Allow`.
fn only(route: MethodRouter<ConsulState>, allow: &'static str) -> MethodRouter<ConsulState> {
    route.fallback(move |method: Method| async move { not_allowed(&method, allow) })
}

fn not_allowed(method: &Method, allow: &'static str) -> Response {
    let mut response = if method == Method::OPTIONS {
        StatusCode::OK.into_response()
    } else {
        let text = format!("method {method} not allowed");
        ConsulError::new(StatusCode::METHOD_NOT_ALLOWED, text).into_response()
    };
    (response.headers_mut()).insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}
