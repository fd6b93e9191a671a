//! `GET /api/v1/services/{name}/explain`: why each source's instances of a service are or
//! are not served. A diagnostic, read from every source's raw reports (without waiting
//! for pending changes); discovery reads never take this path.

use axum::extract::{RawQuery, State};
use switchboard_connectors::ServiceKey;

use super::error::{ApiError, Problem};
use super::extract::PathParam;
use super::openapi::params::Placement;
use super::openapi::responses::{BadParameters, PROBLEM_JSON};
use super::openapi::schemas::Name;
use super::query::InstanceQuery;
use super::AppState;
use crate::catalog::Explanation;
use crate::vocab::validate_name;

/// Per source: what it reports for the service and its state; the policy applied; and for
/// every instance whether clients get it and, if not, why (`excluded`, `renamed`,
/// `lower_priority`, `merged`, `stale_dropped`).
#[utoipa::path(
    get, path = "/api/v1/services/{name}/explain", tag = "discovery", operation_id = "explain_service",
    params(("name" = Name, Path, description = "Service name, as served or as a source names it"), Placement),
    responses(
        (status = 200, description = "The explanation", body = Explanation),
        BadParameters,
        (status = 404, description = "service_not_found: no source reports it", body = Problem, content_type = PROBLEM_JSON),
    )
)]
pub async fn explain(
    State(state): State<AppState>,
    PathParam(name): PathParam,
    RawQuery(query): RawQuery,
) -> Result<axum::Json<Explanation>, ApiError> {
    validate_name(&name, "invalid_service_name", "name")?;
    let query = InstanceQuery::parse(query.as_deref())?;
    let key = ServiceKey::new(query.namespace(), query.group(), name.as_str());
    // Taken before the catalog is read, so no lock is held inside another. A source
    // being removed meanwhile shows as `unknown`.
    let states = state.federation.state_names();
    let state_of = |id: &str| states.get(id).copied().unwrap_or("unknown").to_owned();
    let explanation = state.catalog.explain(&key, &state_of).ok_or_else(|| {
        ApiError::not_found(
            "service_not_found",
            format!(
                "no source reports service `{name}` in namespace `{}`, group `{}`",
                query.namespace(),
                query.group()
            ),
        )
    })?;
    Ok(axum::Json(explanation))
}
