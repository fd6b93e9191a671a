//! Discovery reads: the service listing and a service's instances, with blocking queries.

use std::net::IpAddr;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use switchboard_connectors::ServiceKey;
use tokio::time::Instant;

use super::access::check_reach;
use super::error::ApiError;
use super::extract::{ClientIp, PathParam};
use super::limits;
use super::openapi::params::{InstanceFilters, Placement};
use super::openapi::responses::{BadParameters, WatchLimits};
use super::openapi::schemas::Name;
use super::query::InstanceQuery;
use super::AppState;
use crate::auth::Caller;
use crate::catalog::{InstanceView, Snapshot};
use crate::vocab::validate_name;

/// Header carrying the index a blocking query passes back as `index`.
pub const INDEX_HEADER: &str = "x-switchboard-index";

/// A JSON 200 with the catalog index header.
pub fn json_with_index(body: Bytes, index: u64) -> Response {
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(INDEX_HEADER, HeaderValue::from(index));
    response
}

/// List services with their instance and healthy counts and contributing sources.
#[utoipa::path(
    get, path = "/api/v1/services", tag = "discovery", operation_id = "list_services",
    params(Placement),
    responses(
        (status = 200, description = "Services", body = [crate::catalog::ServiceSummary],
            headers(("x-switchboard-index" = u64, description = "The catalog's index"))),
        BadParameters,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = InstanceQuery::parse(query.as_deref())?;
    let snapshot = state.catalog.snapshot();
    let (namespace, group) = (query.namespace.as_deref(), query.group.as_deref());
    if let Some(namespace) = namespace {
        check_reach(&caller, namespace)?;
    }
    let body = if caller.reaches_everything() {
        snapshot.listing(namespace, group)
    } else {
        snapshot.listing_within(namespace, group, &|ns| caller.reaches(ns))
    };
    Ok(json_with_index(body, snapshot.index))
}

/// A service's merged instances. With `index`, a blocking query: answers once the
/// service's index is greater than `index`, or when `wait` (default 5m, capped at the
/// configured maximum) runs out.
#[utoipa::path(
    get, path = "/api/v1/services/{name}/instances", tag = "discovery", operation_id = "list_service_instances",
    params(("name" = Name, Path, description = "Service name"), Placement, InstanceFilters),
    responses(
        (status = 200, description = "Instances; header X-Switchboard-Index carries the service's index",
            body = [InstanceView], headers(("x-switchboard-index" = u64, description = "Index of the service's last change"))),
        BadParameters,
        WatchLimits,
    )
)]
pub async fn instances(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    PathParam(name): PathParam,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    validate_name(&name, "invalid_service_name", "name")?;
    let query = InstanceQuery::parse(query.as_deref())?;
    if let Some(index) = query.index {
        wait_for_change(&state, client, &name, &query, index).await?;
    }
    let snapshot = state.catalog.snapshot();
    Ok(render(&snapshot, &name, &query))
}

/// Waits until the service's index passes `index` or the wait runs out. Only a query
/// that has to wait takes one of `client`'s watch slots: one whose index is behind is
/// answered at once, even from a client at its share.
async fn wait_for_change(
    state: &AppState,
    client: IpAddr,
    name: &str,
    query: &InstanceQuery,
    index: u64,
) -> Result<(), ApiError> {
    let wait = query
        .wait
        .unwrap_or(state.config.api.default_wait)
        .min(state.config.api.max_wait);
    let deadline = Instant::now() + wait;
    let key = ServiceKey::new(query.namespace(), query.group(), name);
    // Subscribe before looking, so a change between the look and the wait is not missed.
    let mut subscription = state.catalog.subscribe(&key);
    let changes = &mut subscription.receiver;
    let mut parked = None;
    loop {
        // The snapshot is dropped before waiting, so a parked query keeps no old one alive.
        let (current, latest) = {
            let snapshot = state.catalog.snapshot();
            (service_index(&snapshot, name, query, index), snapshot.index)
        };
        // An index above anything this catalog has issued comes from before a restart:
        // answer now so the client resynchronises instead of hanging.
        if current > index || index > latest {
            return Ok(());
        }
        if parked.is_none() {
            let slot = (state.watches).hold(&limits::WATCHES, client, &state.metrics)?;
            parked = Some((slot, state.metrics.blocking_queries.park()));
        }
        tokio::select! {
            changed = tokio::time::timeout_at(deadline, changes.changed()) => {
                if !matches!(changed, Ok(Ok(()))) {
                    return Ok(());
                }
            }
            _ = state.stopped() => return Ok(()),
        }
    }
}

/// The index a blocking query at `index` compares with: the service's own, or for one
/// with no instances the index absent services share, except at `index=0`, which asks to
/// wait until the service has an instance at all.
fn service_index(snapshot: &Snapshot, name: &str, query: &InstanceQuery, index: u64) -> u64 {
    match snapshot.service(query.namespace(), query.group(), name) {
        Some(view) => view.index,
        None if index == 0 => 0,
        None => snapshot.absent_index,
    }
}

/// The response for one service: the pre-encoded body when unfiltered.
fn render(snapshot: &Snapshot, name: &str, query: &InstanceQuery) -> Response {
    let Some(view) = snapshot.service(query.namespace(), query.group(), name) else {
        return json_with_index(Bytes::from_static(b"[]"), snapshot.absent_index);
    };
    if query.filter.is_empty() {
        return json_with_index(view.encoded(), view.index);
    }
    let selected: Vec<&InstanceView> = view
        .instances()
        .filter(|instance| query.filter.matches(instance))
        .collect();
    let body = serde_json::to_vec(&selected).expect("instances serialize");
    json_with_index(Bytes::from(body), view.index)
}

/// Looks up a service (one with instances) or answers 404 `service_not_found`.
pub fn require_service<'a>(
    snapshot: &'a Snapshot,
    name: &str,
    query: &InstanceQuery,
) -> Result<&'a std::sync::Arc<crate::catalog::ServiceView>, ApiError> {
    snapshot
        .service(query.namespace(), query.group(), name)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "service_not_found",
                format!(
                    "service `{name}` has no instances in namespace `{}`, group `{}`",
                    query.namespace(),
                    query.group()
                ),
            )
        })
}
