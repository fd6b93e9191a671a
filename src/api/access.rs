//! Who may call which route. Every request is checked against one table, [`ACCESS`],
//! before its handler runs: the credential, the role, and the namespaces the route
//! reaches. A route missing from the table is for admins over every namespace only, so
//! a new route is never open by accident (`tests/server/auth/routes.rs` walks
//! [`super::ROUTES`] against it).
//!
//! A request whose token is revoked or expires while it waits (a blocking query) is
//! answered 401 at once; a stream it holds (SSE) ends.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use switchboard_connectors::DEFAULT_NAMESPACE;

use super::error::{ApiError, CHALLENGE, INVALID_CHALLENGE};
use super::{tenant, AppState};
use crate::auth::{Caller, Denied, Role, Token};

/// What a route asks of its caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Nothing, even with access control on: probes and the API's own description.
    Open,
    /// `/metrics`: open unless `auth.protect_metrics`; then any live token.
    Metrics,
    /// Any live token (`/api/v1/tokens/self`).
    AnyToken,
    /// A role (or one above it), over the namespaces [`Reach`] says.
    Role(Role, Reach),
}

/// Which namespaces a route touches, so which the caller must reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// The one the request names: `namespace=` (or `X-Tenant-Id`), else `default`.
    /// Checked here.
    Named,
    /// One the handler finds (an instance's, a registration body's), which it checks.
    Found,
    /// Whatever the caller reaches, which the handler keeps to: lists leave out the
    /// rest; a token beyond the caller's is unknown to it (404) or refused (403).
    Within,
    /// Server-wide resources (sources, merge rules, sync jobs, catalog totals), which
    /// reach every namespace: so must the caller.
    Everywhere,
}

use Need::{AnyToken, Metrics, Open};
use Reach::{Everywhere, Found, Named, Within};
use Role::{Admin, Operate, Read, Register};

/// Every route's need, by method (`GET` covers `HEAD`) and route.
pub const ACCESS: &[(&str, &str, Need)] = &[
    ("GET", "/api/v1/services", Need::Role(Read, Within)),
    (
        "GET",
        "/api/v1/services/{name}/instances",
        Need::Role(Read, Named),
    ),
    (
        "GET",
        "/api/v1/services/{name}/stats",
        Need::Role(Read, Named),
    ),
    (
        "GET",
        "/api/v1/services/{name}/explain",
        Need::Role(Read, Named),
    ),
    ("GET", "/api/v1/watch", Need::Role(Read, Named)),
    ("POST", "/api/v1/instances", Need::Role(Register, Found)),
    ("GET", "/api/v1/instances/{id}", Need::Role(Read, Found)),
    (
        "DELETE",
        "/api/v1/instances/{id}",
        Need::Role(Register, Found),
    ),
    (
        "PUT",
        "/api/v1/instances/{id}/heartbeat",
        Need::Role(Register, Found),
    ),
    (
        "PUT",
        "/api/v1/instances/{id}/status",
        Need::Role(Register, Found),
    ),
    (
        "GET",
        "/api/v1/instances/{id}/health",
        Need::Role(Read, Found),
    ),
    ("GET", "/api/v1/stats", Need::Role(Read, Everywhere)),
    ("GET", "/api/v1/admin/all", Need::Role(Admin, Within)),
    (
        "DELETE",
        "/api/v1/admin/services/{name}",
        Need::Role(Admin, Named),
    ),
    ("GET", "/api/v1/sources", Need::Role(Operate, Everywhere)),
    ("POST", "/api/v1/sources", Need::Role(Operate, Everywhere)),
    (
        "POST",
        "/api/v1/sources:validate",
        Need::Role(Operate, Everywhere),
    ),
    (
        "GET",
        "/api/v1/sources/{id}",
        Need::Role(Operate, Everywhere),
    ),
    (
        "PUT",
        "/api/v1/sources/{id}",
        Need::Role(Operate, Everywhere),
    ),
    (
        "PATCH",
        "/api/v1/sources/{id}",
        Need::Role(Operate, Everywhere),
    ),
    (
        "DELETE",
        "/api/v1/sources/{id}",
        Need::Role(Operate, Everywhere),
    ),
    (
        "GET",
        "/api/v1/sources/{id}/status",
        Need::Role(Operate, Everywhere),
    ),
    (
        "POST",
        "/api/v1/sources/{id}/connect",
        Need::Role(Operate, Everywhere),
    ),
    (
        "POST",
        "/api/v1/sources/{id}/disconnect",
        Need::Role(Operate, Everywhere),
    ),
    ("GET", "/api/v1/merge", Need::Role(Operate, Everywhere)),
    ("PUT", "/api/v1/merge", Need::Role(Operate, Everywhere)),
    ("GET", "/api/v1/syncs", Need::Role(Operate, Everywhere)),
    ("POST", "/api/v1/syncs", Need::Role(Operate, Everywhere)),
    (
        "POST",
        "/api/v1/syncs:plan",
        Need::Role(Operate, Everywhere),
    ),
    ("GET", "/api/v1/syncs/{id}", Need::Role(Operate, Everywhere)),
    ("PUT", "/api/v1/syncs/{id}", Need::Role(Operate, Everywhere)),
    (
        "DELETE",
        "/api/v1/syncs/{id}",
        Need::Role(Operate, Everywhere),
    ),
    (
        "GET",
        "/api/v1/syncs/{id}/status",
        Need::Role(Operate, Everywhere),
    ),
    (
        "POST",
        "/api/v1/syncs/{id}/pause",
        Need::Role(Operate, Everywhere),
    ),
    (
        "POST",
        "/api/v1/syncs/{id}/resume",
        Need::Role(Operate, Everywhere),
    ),
    ("GET", "/api/v1/tokens", Need::Role(Admin, Within)),
    ("POST", "/api/v1/tokens", Need::Role(Admin, Within)),
    ("GET", "/api/v1/tokens/self", AnyToken),
    ("GET", "/api/v1/tokens/{id}", Need::Role(Admin, Within)),
    ("DELETE", "/api/v1/tokens/{id}", Need::Role(Admin, Within)),
    ("GET", "/health", Open),
    ("GET", "/ready", Open),
    ("GET", "/metrics", Metrics),
    ("GET", "/openapi.json", Open),
];

/// What `method` on `route` needs; admin over every namespace when the table has no row.
pub fn need_of(method: &Method, route: &str) -> Need {
    row_of(method, route).0
}

/// [`need_of`], with the route as the table spells it (for messages, without copying
/// the request's).
fn row_of(method: &Method, route: &str) -> (Need, &'static str) {
    let method = if *method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    ACCESS
        .iter()
        .find(|(m, r, _)| *m == method && *r == route)
        .map_or(
            (Need::Role(Admin, Everywhere), "this route"),
            |(_, r, need)| (*need, *r),
        )
}

/// The check, as middleware. Layered only when access control is on.
pub async fn guard(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let matched = request.extensions().get::<MatchedPath>();
    let (need, route) = row_of(request.method(), matched.map_or("", MatchedPath::as_str));
    match need {
        Open => return next.run(request).await,
        Metrics if !state.auth.config.protect_metrics => return next.run(request).await,
        _ => {}
    }
    let caller = match credential(request.headers()).and_then(|secret| state.auth.identify(secret))
    {
        Ok(caller) => caller,
        Err(denied) => {
            state.metrics.auth_failed(denied.reason());
            return refusal(denied).into_response();
        }
    };
    if let Err(err) = permit(need, &caller, &request, route) {
        state.metrics.auth_failed(if err.status == 401 {
            "missing"
        } else {
            "forbidden"
        });
        return err.into_response();
    }
    request.extensions_mut().insert(caller.clone());
    let Some(token) = caller.token().cloned() else {
        return counted(&state, next.run(request).await);
    };
    if changes(need, request.method()) {
        // Changes run to completion even if the client goes (`to_completion`), so they
        // are not cut when the token is revoked meanwhile; the audit line is written
        // however the request ends.
        let mut audit = Audit {
            token: token.clone(),
            method: request.method().clone(),
            path: request.uri().path().to_owned(),
            status: None,
        };
        let response = next.run(request).await;
        audit.status = Some(response.status().as_u16());
        return counted(&state, response);
    }
    // A read may wait (a blocking query): it ends the moment its token stops working.
    // Most reads are answered on their first poll; only one that waits pays for
    // watching the token.
    let mut running = std::pin::pin!(next.run(request));
    let response = match futures::poll!(running.as_mut()) {
        std::task::Poll::Ready(response) => counted(&state, response),
        std::task::Poll::Pending => tokio::select! {
            () = state.auth.tokens.invalidated(&token) => {
                state.metrics.auth_failed("revoked");
                ApiError::unauthorized(
                    "token_revoked",
                    "the token was revoked or expired while the request waited",
                    INVALID_CHALLENGE,
                )
                .into_response()
            }
            response = running => counted(&state, response),
        },
    };
    if !is_stream(&response) {
        return response;
    }
    // A stream ends when its token stops working.
    let metrics = state.metrics.clone();
    let invalidated = async move {
        state.auth.tokens.invalidated(&token).await;
        metrics.auth_failed("revoked");
    };
    response
        .map(|body| Body::from_stream(body.into_data_stream().take_until(Box::pin(invalidated))))
}

/// Counts a 403 a handler gave (a namespace it found beyond the token), as the guard
/// counts its own.
fn counted(state: &AppState, response: Response) -> Response {
    if response.status() == StatusCode::FORBIDDEN {
        state.metrics.auth_failed("forbidden");
    }
    response
}

/// The audit log's line for one change, written when the request ends: with its status,
/// or as unanswered when the client went away first (the change itself still completes).
struct Audit {
    token: Arc<Token>,
    method: Method,
    path: String,
    status: Option<u16>,
}

impl Drop for Audit {
    fn drop(&mut self) {
        let status = self.status.map_or_else(
            || "unanswered: the client left first".to_owned(),
            |s| s.to_string(),
        );
        tracing::info!(
            target: "switchboard::audit",
            token = %self.token.id,
            token_name = %self.token.name,
            method = %self.method,
            path = self.path.as_str(),
            %status,
            "Change through the API"
        );
    }
}

/// The secret the request presents: `Authorization: Bearer …` or `X-Switchboard-Token`.
/// Another scheme in `Authorization` is no credential of ours: refused as invalid.
pub fn credential(headers: &HeaderMap) -> Result<Option<&str>, Denied> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| Denied::Invalid)?;
        let (scheme, secret) = value.split_once(' ').ok_or(Denied::Invalid)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(Denied::Invalid);
        }
        return Ok(Some(secret.trim()));
    }
    match headers.get("x-switchboard-token") {
        Some(value) => value
            .to_str()
            .map(|s| Some(s.trim()))
            .map_err(|_| Denied::Invalid),
        None => Ok(None),
    }
}

/// The 401 for a refused credential.
fn refusal(denied: Denied) -> ApiError {
    match denied {
        Denied::Missing => ApiError::unauthorized(
            "unauthenticated",
            "this request needs a token: send `Authorization: Bearer <secret>`",
            CHALLENGE,
        ),
        Denied::Invalid => ApiError::unauthorized(
            "invalid_token",
            "the token is not one this server knows (mistyped, or revoked)",
            INVALID_CHALLENGE,
        ),
        Denied::Expired => {
            ApiError::unauthorized("token_expired", "the token has expired", INVALID_CHALLENGE)
        }
    }
}

/// Whether `caller` may make this request, as far as the route's need says.
fn permit(need: Need, caller: &Caller, request: &Request, route: &str) -> Result<(), ApiError> {
    let (role, reach) = match need {
        Open => return Ok(()),
        // Guarded metrics are for tokens: anonymous discovery reads do not open them.
        Metrics | AnyToken => {
            return match caller {
                Caller::Anonymous(_) => Err(refusal(Denied::Missing)),
                _ => Ok(()),
            }
        }
        Need::Role(role, reach) => (role, reach),
    };
    if !caller.has(role) {
        if let Caller::Anonymous(_) = caller {
            return Err(refusal(Denied::Missing));
        }
        return Err(ApiError::forbidden(format!(
            "{} {route} needs the `{role}` role; this token's is `{}`",
            request.method(),
            caller.role()
        )));
    }
    match reach {
        Named => {
            let query = request.uri().query().unwrap_or("");
            let named = tenant::namespace_in(query);
            let namespace = named.as_deref().unwrap_or(DEFAULT_NAMESPACE);
            check_reach(caller, namespace)
        }
        Everywhere if !caller.reaches_everything() => Err(ApiError::forbidden(format!(
            "{route} reaches every namespace; this token reaches only {}",
            scope_of(caller)
        ))),
        _ => Ok(()),
    }
}

/// 403 unless `caller` reaches `namespace`.
pub fn check_reach(caller: &Caller, namespace: &str) -> Result<(), ApiError> {
    if caller.reaches(namespace) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "namespace `{namespace}` is outside this token's namespaces {}",
            scope_of(caller)
        )))
    }
}

fn scope_of(caller: &Caller) -> String {
    caller
        .token()
        .map(|token| format!("({})", token.scope.patterns().join(", ")))
        .unwrap_or_default()
}

/// Whether a request changes something the audit log records: anything past
/// registration (sources, merge rules, sync jobs, tokens, admin removals).
fn changes(need: Need, method: &Method) -> bool {
    matches!(need, Need::Role(role, _) if role >= Operate)
        && *method != Method::GET
        && *method != Method::HEAD
}

fn is_stream(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"text/event-stream"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_names_a_route_and_no_route_twice() {
        let mut seen = std::collections::HashSet::new();
        for (method, route, _) in ACCESS {
            assert!(
                super::super::ROUTES.contains(route),
                "{route} is not in ROUTES"
            );
            assert!(seen.insert((method, route)), "{method} {route} twice");
        }
    }

    #[test]
    fn a_route_missing_from_the_table_is_for_admins_everywhere() {
        assert_eq!(
            need_of(&Method::GET, "/api/v1/new"),
            Need::Role(Admin, Everywhere)
        );
        assert_eq!(need_of(&Method::HEAD, "/health"), Open);
    }

    #[test]
    fn credentials_come_from_bearer_or_our_header() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (k, v) in pairs {
                map.insert(*k, v.parse().unwrap());
            }
            map
        };
        assert_eq!(
            credential(&headers(&[("authorization", "Bearer abc")])),
            Ok(Some("abc"))
        );
        assert_eq!(
            credential(&headers(&[("authorization", "bearer  abc ")])),
            Ok(Some("abc"))
        );
        assert_eq!(
            credential(&headers(&[("x-switchboard-token", "abc")])),
            Ok(Some("abc"))
        );
        assert_eq!(
            credential(&headers(&[("authorization", "Basic YTpi")])),
            Err(Denied::Invalid)
        );
        assert_eq!(credential(&headers(&[])), Ok(None));
    }
}
