//! The error answers many routes share, declared once so the document cannot drift from
//! [`ApiError`](crate::api::error::ApiError): every one is `application/problem+json` with a
//! [`Problem`] body whose `code` says which rule was broken.

use utoipa::IntoResponses;

use crate::api::error::Problem;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// 400: a path or query parameter breaks its rule (`invalid_service_name`,
/// `invalid_namespace`, `invalid_group`, `invalid_status`, `invalid_index`, `invalid_wait`,
/// `invalid_query`, `invalid_path`).
#[derive(IntoResponses)]
pub enum BadParameters {
    /// A parameter breaks its rule; `code` and `field` name it.
    #[response(status = 400, content_type = PROBLEM_JSON)]
    BadRequest(Problem),
}

/// What a route that reads a JSON body answers when the body is not acceptable.
#[derive(IntoResponses)]
pub enum BadBody {
    /// The body or a parameter breaks a rule: `invalid_json`, `invalid_body`, or the
    /// route's own code; `field` names the input at fault when there is one.
    #[response(status = 400, content_type = PROBLEM_JSON)]
    BadRequest(Problem),
    /// `payload_too_large`: the body is longer than `api.max_body_bytes`.
    #[response(status = 413, content_type = PROBLEM_JSON)]
    TooLarge(Problem),
    /// `unsupported_media_type`: the body was not sent as `application/json`.
    #[response(status = 415, content_type = PROBLEM_JSON)]
    NotJson(Problem),
}

/// What a write answers when the store cannot take it.
#[derive(IntoResponses)]
pub enum StoreFailure {
    /// `store_unavailable`: the store could not complete the write; nothing was changed.
    #[response(status = 503, content_type = PROBLEM_JSON)]
    Unavailable(Problem),
}

/// What a long-lived read (a blocking query, a watch stream) answers beyond the
/// configured limits. Both say when to try again.
#[derive(IntoResponses)]
pub enum WatchLimits {
    /// Too many watches from this client (`code` names the limit).
    #[response(
        status = 429,
        content_type = PROBLEM_JSON,
        headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))
    )]
    TooMany(Problem),
    /// Server watch capacity reached (`code` names the limit).
    #[response(
        status = 503,
        content_type = PROBLEM_JSON,
        headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))
    )]
    AtCapacity(Problem),
}
