//! Totals over the merged catalog: per service, per protocol, per status, per source.

use std::collections::BTreeMap;

use axum::extract::{RawQuery, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use switchboard_connectors::Status;
use utoipa::ToSchema;

use super::error::{ApiError, Problem};
use super::extract::PathParam;
use super::openapi::params::Placement;
use super::openapi::responses::{BadParameters, PROBLEM_JSON};
use super::openapi::schemas::Name;
use super::query::InstanceQuery;
use super::services::require_service;
use super::AppState;
use crate::catalog::{InstanceView, ServiceView};
use crate::vocab::validate_name;

#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogStats {
    pub total_services: usize,
    pub total_instances: usize,
    pub healthy_instances: usize,
    pub unhealthy_instances: usize,
    /// Instance count per service name.
    pub service_stats: BTreeMap<String, usize>,
    pub protocols: BTreeMap<String, usize>,
    pub statuses: BTreeMap<String, usize>,
    /// Instance count per source.
    pub sources: BTreeMap<String, usize>,
    pub index: u64,
    pub timestamp: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceStats {
    pub service_name: String,
    pub namespace: String,
    pub group: String,
    pub total_instances: usize,
    pub healthy_instances: usize,
    pub unhealthy_instances: usize,
    pub protocols: BTreeMap<String, usize>,
    pub statuses: BTreeMap<String, usize>,
    pub instances: Vec<InstanceView>,
    pub index: u64,
    pub timestamp: DateTime<Utc>,
}

/// Counts of instances by protocol and by status.
fn tally<'a>(
    instances: impl Iterator<Item = &'a InstanceView>,
) -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
    let mut protocols = BTreeMap::new();
    let mut statuses: BTreeMap<String, usize> =
        Status::ALL.iter().map(|s| (s.to_string(), 0)).collect();
    for instance in instances {
        *protocols.entry(instance.protocol.clone()).or_default() += 1;
        *statuses.entry(instance.status.to_string()).or_default() += 1;
    }
    (protocols, statuses)
}

/// Totals over every service.
#[utoipa::path(
    get, path = "/api/v1/stats", tag = "stats", operation_id = "get_catalog_stats",
    responses((status = 200, description = "Catalog totals", body = CatalogStats))
)]
pub async fn catalog(State(state): State<AppState>) -> Json<CatalogStats> {
    let snapshot = state.catalog.snapshot();
    let services: Vec<&std::sync::Arc<ServiceView>> = snapshot.services();
    let all = || services.iter().flat_map(|view| view.instances());
    let total_instances = all().count();
    let healthy_instances = all().filter(|i| i.healthy).count();
    let mut service_stats = BTreeMap::new();
    for view in &services {
        *service_stats.entry(view.key.name.clone()).or_default() += view.len();
    }
    let mut sources = BTreeMap::new();
    for instance in all() {
        for source in &instance.sources {
            *sources.entry(source.to_string()).or_default() += 1;
        }
    }
    let (protocols, statuses) = tally(all());
    Json(CatalogStats {
        total_services: services.len(),
        total_instances,
        healthy_instances,
        unhealthy_instances: total_instances - healthy_instances,
        service_stats,
        protocols,
        statuses,
        sources,
        index: snapshot.index,
        timestamp: Utc::now(),
    })
}

/// Totals and instances of one service.
#[utoipa::path(
    get, path = "/api/v1/services/{name}/stats", tag = "stats", operation_id = "get_service_stats",
    params(("name" = Name, Path, description = "Service name"), Placement),
    responses(
        (status = 200, description = "Service totals", body = ServiceStats),
        BadParameters,
        (status = 404, description = "service_not_found", body = Problem, content_type = PROBLEM_JSON),
    )
)]
pub async fn service(
    State(state): State<AppState>,
    PathParam(name): PathParam,
    RawQuery(query): RawQuery,
) -> Result<Json<ServiceStats>, ApiError> {
    validate_name(&name, "invalid_service_name", "name")?;
    let query = InstanceQuery::parse(query.as_deref())?;
    let snapshot = state.catalog.snapshot();
    let view = require_service(&snapshot, &name, &query)?;
    let (protocols, statuses) = tally(view.instances());
    Ok(Json(ServiceStats {
        service_name: view.key.name.clone(),
        namespace: view.key.namespace.clone(),
        group: view.key.group.clone(),
        total_instances: view.len(),
        healthy_instances: view.healthy_count,
        unhealthy_instances: view.len() - view.healthy_count,
        protocols,
        statuses,
        instances: view.instances().cloned().collect(),
        index: view.index,
        timestamp: Utc::now(),
    }))
}
