//! Errors as Consul writes them: a status code and a plain-text body, which Consul's
//! clients show or match (py-consul maps 400 to `BadRequest`, 403 to
//! `ACLPermissionDenied`, and returns `None`/`False` on 404; go's `api` keeps the text).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsulError {
    pub status: StatusCode,
    pub text: String,
}

impl ConsulError {
    pub fn new(status: StatusCode, text: impl Into<String>) -> ConsulError {
        ConsulError {
            status,
            text: text.into(),
        }
    }

    /// 400, e.g. `Invalid wait time`, `Missing service name`.
    pub fn bad_request(text: impl Into<String>) -> ConsulError {
        ConsulError::new(StatusCode::BAD_REQUEST, text)
    }

    pub fn not_found(text: impl Into<String>) -> ConsulError {
        ConsulError::new(StatusCode::NOT_FOUND, text)
    }

    /// 403 `ACL not found`: a token this server did not issue, revoked or expired.
    pub fn acl_not_found() -> ConsulError {
        ConsulError::new(StatusCode::FORBIDDEN, "ACL not found")
    }

    /// 403 in Consul's words for a token that lacks `permission` on `resource`.
    pub fn permission_denied(
        accessor: Option<&str>,
        permission: &str,
        resource: &str,
    ) -> ConsulError {
        let text = match accessor {
            Some(id) => format!(
                "Permission denied: token with AccessorID '{id}' lacks permission '{permission}' on \"{resource}\""
            ),
            None => format!(
                "Permission denied: anonymous token lacks permission '{permission}' on \"{resource}\". The anonymous token is used implicitly when a request does not specify a token."
            ),
        };
        ConsulError::new(StatusCode::FORBIDDEN, text)
    }
}

impl IntoResponse for ConsulError {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.text).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response
    }
}

impl From<crate::registry::RegistryError> for ConsulError {
    fn from(err: crate::registry::RegistryError) -> ConsulError {
        use crate::registry::RegistryError;
        match err {
            RegistryError::Invalid(invalid) => ConsulError::bad_request(invalid.message),
            RegistryError::OutOfReach(id) => ConsulError::new(
                StatusCode::FORBIDDEN,
                format!("Permission denied: service ID \"{id}\" is registered in a namespace this token does not reach"),
            ),
            RegistryError::Store(store) => {
                tracing::error!(error = %store, "Store failure");
                ConsulError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the store could not complete the write; nothing was changed",
                )
            }
            other => ConsulError::not_found(other.to_string()),
        }
    }
}
