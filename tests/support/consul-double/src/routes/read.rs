//! The read endpoints. `/v1/catalog/services` and `/v1/health/service/:name` are blocking
//! queries with Consul's query options; `/v1/agent/services` and `/v1/status/leader` are the
//! agent's plain answers (the agent endpoint ignores `?dc`, as Consul's does).

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::blocking::{self, Params, QueryOptions};
use crate::error::ApiError;
use crate::model;
use crate::shared::Shared;
use crate::state::Store;

/// After a parked query wakes, the double may have started failing meanwhile.
fn still_serving(shared: &Shared) -> Result<(), ApiError> {
    match shared.is_failing() {
        true => Err(ApiError::no_leader()),
        false => Ok(()),
    }
}

pub async fn catalog_services(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    let options = QueryOptions::parse(&params, &shared.node.datacenter)?;
    blocking::park(&shared, &options, Store::services_index).await;
    still_serving(&shared)?;
    let (index, body) = shared.read(|s| (s.services_index(), model::catalog_services(s)));
    Ok(blocking::respond(index, &options, &body))
}

pub async fn health_service(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    let options = QueryOptions::parse(&params, &shared.node.datacenter)?;
    let passing = params
        .flag("passing")
        .map_err(|()| ApiError::bad_request("Invalid value for ?passing"))?;
    let tags = params.all("tag");
    blocking::park(&shared, &options, |s| s.name_index(&name)).await;
    still_serving(&shared)?;
    let (index, body) = shared.read(|s| {
        let entries = model::health_entries(s, &shared.node, &name, passing, &tags);
        (s.name_index(&name), entries)
    });
    Ok(blocking::respond(index, &options, &body))
}

pub async fn agent_services(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.read(|s| model::agent_services(s, &shared.node))).into_response()
}

/// The leader's RPC address; the double is its own leader.
pub async fn status_leader(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    blocking::check_datacenter(&Params::parse(query.as_deref()), &shared.node.datacenter)?;
    Ok(Json(format!("{}:8300", shared.node.address)).into_response())
}
