//! Operator endpoints: everything grouped by service; removing a service's native instances.

use std::collections::BTreeMap;

use axum::extract::{RawQuery, State};
use axum::Json;
use switchboard_connectors::ServiceKey;

use super::error::{ApiError, Problem};
use super::extract::PathParam;
use super::openapi::params::Placement;
use super::openapi::responses::{BadParameters, StoreFailure, PROBLEM_JSON};
use super::openapi::schemas::Name;
use super::query::InstanceQuery;
use super::AppState;
use crate::auth::Caller;
use crate::catalog::InstanceView;
use crate::registry::RemovalReport;
use crate::vocab::validate_name;

/// Every instance of every service, as an object of service name to instances (services
/// of the same name in other namespaces or groups share the list; each instance names
/// its namespace and group).
#[utoipa::path(
    get, path = "/api/v1/admin/all", tag = "admin", operation_id = "list_all_instances",
    responses((status = 200, description = "Service name to instances", body = BTreeMap<String, Vec<InstanceView>>))
)]
pub async fn all(
    State(state): State<AppState>,
    caller: Caller,
) -> Json<BTreeMap<String, Vec<InstanceView>>> {
    let snapshot = state.catalog.snapshot();
    let mut grouped: BTreeMap<String, Vec<InstanceView>> = BTreeMap::new();
    for view in snapshot.services() {
        if !caller.reaches(&view.key.namespace) {
            continue;
        }
        grouped
            .entry(view.key.name.clone())
            .or_default()
            .extend(view.instances().cloned());
    }
    Json(grouped)
}

/// Deregister every native instance of a service (external sources are not touched).
#[utoipa::path(
    delete, path = "/api/v1/admin/services/{name}", tag = "admin", operation_id = "remove_native_service",
    params(("name" = Name, Path, description = "Service name"), Placement),
    responses(
        (status = 200, description = "What was removed", body = RemovalReport),
        BadParameters,
        (status = 404, description = "service_not_found: no native instances", body = Problem, content_type = PROBLEM_JSON),
        StoreFailure,
    )
)]
pub async fn remove_service(
    State(state): State<AppState>,
    PathParam(name): PathParam,
    RawQuery(query): RawQuery,
) -> Result<Json<RemovalReport>, ApiError> {
    validate_name(&name, "invalid_service_name", "name")?;
    let query = InstanceQuery::parse(query.as_deref())?;
    let key = ServiceKey::new(query.namespace(), query.group(), name);
    Ok(Json(state.registry.remove_service(&key).await?))
}
