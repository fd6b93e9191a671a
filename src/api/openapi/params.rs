//! Query parameters several routes share, with their rules as schemas (see
//! [`super::schemas`]), so a generated client validates what the server would.

use switchboard_connectors::Status;
use utoipa::IntoParams;

use super::schemas::{Index, Name, Wait};

/// Where a service lives; both default when left out.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(
    dead_code,
    reason = "only the OpenAPI derive reads it: handlers parse the raw query"
)]
pub struct Placement {
    /// Default `public`.
    namespace: Option<Name>,
    /// Default `DEFAULT`.
    group: Option<Name>,
}

/// Filters and blocking-query parameters of a service's instance list. Every given
/// filter must match; `meta.KEY=VALUE` (any KEY) filters on metadata too.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(
    dead_code,
    reason = "only the OpenAPI derive reads it: handlers parse the raw query"
)]
pub struct InstanceFilters {
    /// Only instances with this status.
    status: Option<Status>,
    /// Only healthy (or only unhealthy) instances.
    healthy: Option<bool>,
    /// Only this protocol.
    protocol: Option<String>,
    /// Only instances with every one of these tags.
    tag: Option<Vec<String>>,
    /// Only instances reported by this source.
    source: Option<String>,
    /// Blocking query: answer once the service's index is greater than this.
    index: Option<Index>,
    /// Blocking query: the longest wait (default 5m, capped at the configured maximum).
    wait: Option<Wait>,
}
