//! API errors as RFC 9457 `application/problem+json`, each with a stable `code`.

use std::borrow::Cow;

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::TokenError;
use crate::registry::RegistryError;
use crate::store::StoreError;
use crate::vocab::ValidationError;

/// `WWW-Authenticate` of a 401 for a request with no token (RFC 6750).
pub const CHALLENGE: &str = "Bearer realm=\"switchboard\"";
/// `WWW-Authenticate` of a 401 for a token that is not (or no longer) good.
pub const INVALID_CHALLENGE: &str = "Bearer realm=\"switchboard\", error=\"invalid_token\"";

/// The problem document every error response carries.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URN naming the problem type: `urn:switchboard:problem:{code}`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    /// Stable, machine-readable error code, e.g. `invalid_address`, `instance_not_found`.
    pub code: &'static str,
    /// The input field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub field: Option<Cow<'static, str>>,
    /// The input fields at fault, when there are several (`secrets_required`: the secrets
    /// to send again or drop).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub field: Option<Cow<'static, str>>,
    pub fields: Option<Vec<String>>,
    /// Seconds to send in `Retry-After` (429 and 503 answers that may pass soon).
    pub retry_after: Option<u32>,
    /// `WWW-Authenticate` of a 401 (RFC 6750's Bearer challenge).
    pub challenge: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            detail: detail.into(),
            field: None,
            fields: None,
            retry_after: None,
            challenge: None,
        }
    }

    /// 403 `forbidden`: the caller is known but may not do this here.
    pub fn forbidden(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// 401 with a Bearer challenge.
    pub fn unauthorized(
        code: &'static str,
        detail: impl Into<String>,
        challenge: &'static str,
    ) -> ApiError {
        let mut err = ApiError::new(StatusCode::UNAUTHORIZED, code, detail);
        err.challenge = Some(challenge);
        err
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, detail)
    }

    pub fn not_found(code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, detail)
    }

    pub fn with_field(mut self, field: impl Into<Cow<'static, str>>) -> ApiError {
        self.field = Some(field.into());
        self
    }

    /// [`ApiError::with_field`] when there is a field to name.
    pub fn with_field_if(self, field: Option<String>) -> ApiError {
        match field {
            Some(field) => self.with_field(field),
            None => self,
        }
    }

    /// Names several fields at fault.
    pub fn with_fields(mut self, fields: Vec<String>) -> ApiError {
        self.fields = Some(fields);
        self
    }

    /// Asks the client to retry after `seconds`.
    pub fn retry_after(mut self, seconds: u32) -> ApiError {
        self.retry_after = Some(seconds);
        self
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, code, detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = self.code, detail = %self.detail, "Request failed");
        } else {
            tracing::debug!(code = self.code, detail = %self.detail, "Request rejected");
        }
        let problem = Problem {
            kind: format!("urn:switchboard:problem:{}", self.code),
            title: self.status.canonical_reason().unwrap_or("Error"),
            status: self.status.as_u16(),
            detail: self.detail,
            code: self.code,
            field: self.field,
            fields: self.fields,
        };
        let body = serde_json::to_vec(&problem).expect("problem serializes");
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
        }
        if let Some(challenge) = self.challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

impl From<TokenError> for ApiError {
    fn from(err: TokenError) -> ApiError {
        match err {
            TokenError::Invalid {
                code,
                field,
                message,
            } => ApiError::bad_request(code, message).with_field(field),
            TokenError::Beyond(detail) => ApiError::forbidden(detail),
            TokenError::Store(err) => err.into(),
        }
    }
}

impl From<ValidationError> for ApiError {
    fn from(err: ValidationError) -> ApiError {
        ApiError::bad_request(err.code, err.message).with_field(err.field)
    }
}

impl From<RegistryError> for ApiError {
    fn from(err: RegistryError) -> ApiError {
        match err {
            RegistryError::NotFound(_) => {
                ApiError::not_found("instance_not_found", err.to_string())
            }
            RegistryError::ServiceNotFound(_) => {
                ApiError::not_found("service_not_found", err.to_string())
            }
            RegistryError::CheckNotFound(_) => {
                ApiError::not_found("check_not_found", err.to_string())
            }
            RegistryError::Invalid(invalid) => invalid.into(),
            RegistryError::OutOfReach(_) => ApiError::forbidden(err.to_string()),
            RegistryError::Store(store) => store.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> ApiError {
        tracing::error!(error = %err, "Store failure");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the store could not complete the write; nothing was changed",
        )
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        match &rejection {
            JsonRejection::JsonSyntaxError(_) => {
                ApiError::bad_request("invalid_json", rejection.body_text())
            }
            JsonRejection::JsonDataError(_) => {
                ApiError::bad_request("invalid_body", rejection.body_text())
            }
            JsonRejection::MissingJsonContentType(_) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with `Content-Type: application/json`",
            ),
            _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is larger than the configured limit",
            ),
            _ => ApiError::bad_request("invalid_body", rejection.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> ApiError {
        ApiError::bad_request("invalid_path", rejection.body_text())
    }
}

/// Answer for routes that do not exist.
pub async fn route_not_found() -> ApiError {
    ApiError::not_found("route_not_found", "no such endpoint; see /openapi.json")
}

/// Answer for a known path with the wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not accept that method; see /openapi.json",
    )
}
