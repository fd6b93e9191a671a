//! The HTTP API: one axum router, one file per resource.
//!
//! Every error is an RFC 9457 problem document ([`error::ApiError`]); request bodies are
//! capped (413 beyond `api.max_body_bytes`); a panic in a handler becomes a 500 problem,
//! never a dropped connection.

pub mod access;
pub mod admin;
pub mod error;
pub mod explain;
pub mod extract;
pub mod instances;
pub mod limits;
pub mod merge;
pub mod openapi;
pub mod query;
pub mod serve;
pub mod services;
pub mod sources;
pub mod stats;
pub mod syncs;
pub mod system;
pub mod tenant;
pub mod tokens;
pub mod watch;

use std::any::Any;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;

use crate::auth::Auth;
use crate::catalog::Catalog;
use crate::catalog::MergeSettings;
use crate::config::Config;
use crate::federation::Federation;
use crate::frontends::consul::{self, ConsulState};
use crate::registry::Registry;
use crate::sync::Syncs;
use crate::telemetry::{LatencyLabels, Metrics, RouteLabels};
use error::ApiError;

/// What every handler can reach. One pointer, so the per-request clones axum makes
/// (middleware, extractors) cost a single reference count.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// The parts of [`AppState`].
pub struct Shared {
    pub catalog: Catalog,
    pub federation: Arc<Federation>,
    /// Sync-back jobs.
    pub syncs: Syncs,
    /// The merge rules (file and API).
    pub merge: MergeSettings,
    pub registry: Arc<Registry>,
    pub metrics: Arc<Metrics>,
    pub config: Arc<Config>,
    /// Turns true when the server is shutting down; long-lived requests end then.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// Parked blocking queries and SSE streams, within `api.max_watches*`.
    pub watches: Arc<limits::Occupancy>,
    /// Slots for `sources:validate` dry runs (`api.validate_concurrency`).
    pub validations: tokio::sync::Semaphore,
    /// Access control: the tokens, and whether requests must present one.
    pub auth: Arc<Auth>,
    /// The Consul-compatible door (`/v1/`), merged in when `consul.enabled`.
    pub consul: ConsulState,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    pub fn new(shared: Shared) -> AppState {
        AppState(Arc::new(shared))
    }
}

impl AppState {
    /// Completes when the server starts shutting down.
    pub async fn stopped(&self) {
        let mut stopping = self.stopping.clone();
        let _ = stopping.wait_for(|stop| *stop).await;
    }
}

/// Runs `work` to the end even if the client goes away. axum drops a handler whose
/// connection closes; a change to the set of sources cut off half-way would leave the
/// store, the catalog and the running sources disagreeing.
pub(crate) async fn to_completion<T: Send + 'static>(
    work: impl std::future::Future<Output = T> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::spawn(work).await.map_err(|err| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            format!("the change did not complete: {err}"),
        )
    })
}

/// Runs `change` to completion (see [`to_completion`]), then answers with `show()`: what
/// the changed resource looks like now.
pub(crate) async fn change_then_show<V, E>(
    change: impl std::future::Future<Output = Result<(), E>> + Send + 'static,
    show: impl FnOnce() -> Result<V, ApiError>,
) -> Result<V, ApiError>
where
    E: Into<ApiError> + Send + 'static,
{
    to_completion(change).await?.map_err(Into::into)?;
    show()
}

/// Every route, as metrics label it (and as `/openapi.json` documents it).
pub const ROUTES: &[&str] = &[
    "/api/v1/services",
    "/api/v1/services/{name}/instances",
    "/api/v1/services/{name}/stats",
    "/api/v1/services/{name}/explain",
    "/api/v1/watch",
    "/api/v1/instances",
    "/api/v1/instances/{id}",
    "/api/v1/instances/{id}/heartbeat",
    "/api/v1/instances/{id}/status",
    "/api/v1/instances/{id}/health",
    "/api/v1/stats",
    "/api/v1/admin/all",
    "/api/v1/admin/services/{name}",
    "/api/v1/sources",
    "/api/v1/sources:validate",
    "/api/v1/sources/{id}",
    "/api/v1/sources/{id}/status",
    "/api/v1/sources/{id}/connect",
    "/api/v1/sources/{id}/disconnect",
    "/api/v1/merge",
    "/api/v1/syncs",
    "/api/v1/syncs:plan",
    "/api/v1/syncs/{id}",
    "/api/v1/syncs/{id}/status",
    "/api/v1/syncs/{id}/pause",
    "/api/v1/syncs/{id}/resume",
    "/api/v1/tokens",
    "/api/v1/tokens/self",
    "/api/v1/tokens/{id}",
    "/health",
    "/ready",
    "/metrics",
    "/openapi.json",
];

pub fn router(state: AppState) -> Router {
    let max_body = state.config.api.max_body_bytes;
    let api = Router::new()
        .route("/api/v1/services", get(services::list))
        .route(
            "/api/v1/services/{name}/instances",
            get(services::instances),
        )
        .route("/api/v1/services/{name}/stats", get(stats::service))
        .route("/api/v1/services/{name}/explain", get(explain::explain))
        .route("/api/v1/watch", get(watch::watch))
        .route("/api/v1/instances", post(instances::register))
        .route(
            "/api/v1/instances/{id}",
            get(instances::get).delete(instances::deregister),
        )
        .route(
            "/api/v1/instances/{id}/heartbeat",
            put(instances::heartbeat),
        )
        .route("/api/v1/instances/{id}/status", put(instances::set_status))
        .route("/api/v1/instances/{id}/health", get(instances::health))
        .route("/api/v1/stats", get(stats::catalog))
        .route("/api/v1/admin/all", get(admin::all))
        .route(
            "/api/v1/admin/services/{name}",
            delete(admin::remove_service),
        )
        .route("/api/v1/sources", get(sources::list).post(sources::create))
        .route("/api/v1/sources:validate", post(sources::validate))
        .route(
            "/api/v1/sources/{id}",
            get(sources::get)
                .put(sources::replace)
                .patch(sources::patch)
                .delete(sources::delete),
        )
        .route("/api/v1/sources/{id}/status", get(sources::status))
        .route("/api/v1/sources/{id}/connect", post(sources::connect))
        .route("/api/v1/sources/{id}/disconnect", post(sources::disconnect))
        .route("/api/v1/merge", get(merge::get).put(merge::replace))
        .route("/api/v1/syncs", get(syncs::list).post(syncs::create))
        .route("/api/v1/syncs:plan", post(syncs::plan))
        .route(
            "/api/v1/syncs/{id}",
            get(syncs::get).put(syncs::replace).delete(syncs::delete),
        )
        .route("/api/v1/syncs/{id}/status", get(syncs::status))
        .route("/api/v1/syncs/{id}/pause", post(syncs::pause))
        .route("/api/v1/syncs/{id}/resume", post(syncs::resume))
        .route("/api/v1/tokens", get(tokens::list).post(tokens::create))
        .route("/api/v1/tokens/self", get(tokens::own))
        .route(
            "/api/v1/tokens/{id}",
            get(tokens::get).delete(tokens::revoke),
        )
        .route("/health", get(system::health))
        .route("/ready", get(system::ready))
        .route("/metrics", get(system::metrics))
        .route("/openapi.json", get(openapi::openapi))
        .method_not_allowed_fallback(error::method_not_allowed);
    // With access control off there is nothing to check: no layer, no cost per request.
    let api = if state.auth.enabled() {
        api.route_layer(middleware::from_fn_with_state(state.clone(), access::guard))
    } else {
        api
    };
    let api = api.route_layer(middleware::from_fn_with_state(state.clone(), track));
    let consul = (state.config.consul.enabled).then(|| consul_router(&state));
    let api = api
        .fallback(error::route_not_found)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(CatchPanicLayer::custom(panic_response))
        .with_state(state);
    match consul {
        Some(consul) => api.merge(consul),
        None => api,
    }
}

/// The Consul door alone (for `[consul] listen`), with the same body limit and panic
/// guard as the API.
pub fn consul_router(state: &AppState) -> Router {
    consul::router(state.consul.clone())
        .layer(DefaultBodyLimit::max(state.config.api.max_body_bytes))
        .layer(CatchPanicLayer::custom(panic_response))
}

/// Counts requests and records latency by matched route. Labels are static strings, so
/// recording costs no allocation on the read path. An `X-Tenant-Id` becomes the query's
/// namespace here ([`tenant`]), before access control and handlers read it.
async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .and_then(|path| ROUTES.iter().copied().find(|route| *route == path.as_str()))
        .unwrap_or("other");
    let response = if request.headers().contains_key(tenant::TENANT_HEADER) {
        let (mut parts, body) = request.into_parts();
        match tenant::into_query(&parts.headers, &mut parts.uri) {
            Ok(()) => next.run(Request::from_parts(parts, body)).await,
            Err(err) => err.into_response(),
        }
    } else {
        next.run(request).await
    };
    let status = response.status().as_u16();
    state
        .metrics
        .http_latency
        .get_or_create(&LatencyLabels { method, route })
        .observe(started.elapsed().as_secs_f64());
    state
        .metrics
        .http_requests
        .get_or_create(&RouteLabels {
            method,
            route,
            status,
        })
        .inc();
    response
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %detail, "Handler panicked");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "an internal error occurred; it has been logged",
    )
    .into_response()
}
