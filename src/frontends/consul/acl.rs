//! Consul's ACL tokens, checked by `auth` with the native roles and namespaces.
//!
//! The token comes from where Consul takes it, in Consul's order: `?token=`, then
//! `X-Consul-Token`, then `Authorization: Bearer`. With access control off every request
//! is allowed (Consul with ACLs disabled). A token this server does not know is 403
//! `ACL not found`; a token without the role a write needs is 403 `Permission denied`;
//! reads leave out the namespaces the caller does not reach, as Consul filters them.

use axum::http::HeaderMap;

use super::error::ConsulError;
use super::ConsulState;
use crate::auth::{Caller, Denied, Role};

/// The credential of a Consul request, from the query or the headers.
pub fn credential<'a>(query: Option<&'a str>, headers: &'a HeaderMap) -> Option<String> {
    let from_query = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(key, _)| key == "token")
        .map(|(_, value)| value.into_owned())
        .filter(|token| !token.is_empty());
    from_query
        .or_else(|| {
            (headers.get("x-consul-token"))
                .and_then(|value| value.to_str().ok())
                .filter(|token| !token.is_empty())
                .map(str::to_owned)
        })
        .or_else(|| {
            let value = headers
                .get(axum::http::header::AUTHORIZATION)?
                .to_str()
                .ok()?;
            let (scheme, rest) = value.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| rest.trim())?
                .split(' ')
                .next()
                .filter(|token| !token.is_empty())
                .map(str::to_owned)
        })
}

/// A Consul caller: `None` is the anonymous token with no access (access control on,
/// anonymous access off), which reads nothing and writes nothing, as Consul's anonymous
/// token under a deny policy.
#[derive(Clone, Debug)]
pub struct ConsulCaller(pub Option<Caller>);

impl ConsulCaller {
    pub fn has(&self, role: Role) -> bool {
        self.0.as_ref().is_some_and(|caller| caller.has(role))
    }

    /// Whether reads may show `namespace`.
    pub fn reads(&self, namespace: &str) -> bool {
        self.0
            .as_ref()
            .is_some_and(|caller| caller.has(Role::Read) && caller.reaches(namespace))
    }

    /// Whether reads show everything (no filtering to do).
    pub fn reads_everything(&self) -> bool {
        self.0
            .as_ref()
            .is_some_and(|caller| caller.has(Role::Read) && caller.reaches_everything())
    }

    /// Whether the request named a token (Consul says when it filtered results only then).
    pub fn named_token(&self) -> bool {
        self.0
            .as_ref()
            .is_some_and(|caller| caller.token().is_some())
    }
}

/// Who is calling.
pub fn identify(
    state: &ConsulState,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<ConsulCaller, ConsulError> {
    // With access control off no token is looked for (a read's path stays short).
    if !state.auth.enabled() {
        return Ok(ConsulCaller(Some(Caller::Unchecked)));
    }
    let secret = credential(query, headers);
    match state.auth.identify(secret.as_deref()) {
        Ok(caller) => Ok(ConsulCaller(Some(caller))),
        Err(Denied::Missing) => Ok(ConsulCaller(None)),
        Err(denied) => {
            state.metrics.auth_failed(match denied {
                Denied::Expired => "expired",
                _ => "invalid",
            });
            Err(ConsulError::acl_not_found())
        }
    }
}

/// Refuses a caller without `role` over `namespace`, in Consul's words.
pub fn require(
    state: &ConsulState,
    caller: &ConsulCaller,
    role: Role,
    namespace: &str,
    permission: &str,
    resource: &str,
) -> Result<(), ConsulError> {
    let allowed = (caller.0.as_ref()).is_some_and(|c| c.has(role) && c.reaches(namespace));
    if allowed {
        return Ok(());
    }
    state.metrics.auth_failed("forbidden");
    let accessor = (caller.0.as_ref())
        .and_then(|caller| caller.token())
        .map(|token| token.id.as_str());
    Err(ConsulError::permission_denied(
        accessor, permission, resource,
    ))
}
