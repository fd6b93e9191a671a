//! `X-Tenant-Id`: names the namespace of a request that names none (tenants are
//! namespaces). On query-string routes it is read as `?namespace=`, so every handler and
//! the access check see one namespace; a registration takes it when its body has none.

use std::borrow::Cow;

use axum::http::{HeaderMap, HeaderName, Uri};

use super::error::ApiError;
use crate::vocab::validate_name;

pub const TENANT_HEADER: HeaderName = HeaderName::from_static("x-tenant-id");

/// The tenant the request names, checked like a namespace.
pub fn of(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(TENANT_HEADER) else {
        return Ok(None);
    };
    let tenant = value.to_str().unwrap_or("\u{0}");
    validate_name(tenant, "invalid_tenant", "X-Tenant-Id")?;
    Ok(Some(tenant))
}

/// Adds `namespace=<tenant>` to `uri` when the request carries a tenant and its query
/// names no namespace.
pub fn into_query(headers: &HeaderMap, uri: &mut Uri) -> Result<(), ApiError> {
    let Some(tenant) = of(headers)? else {
        return Ok(());
    };
    let query = uri.query().unwrap_or("");
    if namespace_in(query).is_some() {
        return Ok(());
    }
    // Tenants are checked names ([A-Za-z0-9._-]), so they need no escaping.
    let joiner = if query.is_empty() { "" } else { "&" };
    let rewritten = format!("{}?{query}{joiner}namespace={tenant}", uri.path());
    let unfit = || ApiError::bad_request("invalid_query", "the query cannot carry the tenant");
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(rewritten.parse().map_err(|_| unfit())?);
    *uri = Uri::from_parts(parts).map_err(|_| unfit())?;
    Ok(())
}

/// The `namespace` a query string names, if any (the last one, as the parsers take it).
pub fn namespace_in(query: &str) -> Option<Cow<'_, str>> {
    form_urlencoded::parse(query.as_bytes())
        .filter(|(key, _)| key == "namespace")
        .map(|(_, value)| value)
        .last()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn rewritten(uri: &str, tenant: Option<&str>) -> Result<String, ApiError> {
        let mut headers = HeaderMap::new();
        if let Some(tenant) = tenant {
            headers.insert(TENANT_HEADER, HeaderValue::from_str(tenant).unwrap());
        }
        let mut uri: Uri = uri.parse().unwrap();
        into_query(&headers, &mut uri)?;
        Ok(uri.to_string())
    }

    #[test]
    fn the_tenant_names_the_namespace_only_when_the_query_does_not() {
        let go = |uri, tenant| rewritten(uri, tenant).unwrap();
        assert_eq!(
            go("/api/v1/services", Some("t1")),
            "/api/v1/services?namespace=t1"
        );
        assert_eq!(go("/a?group=g", Some("t1")), "/a?group=g&namespace=t1");
        assert_eq!(go("/a?namespace=prod", Some("t1")), "/a?namespace=prod");
        assert_eq!(go("/a?x=1", None), "/a?x=1");
    }

    #[test]
    fn a_malformed_tenant_is_a_400() {
        let err = rewritten("/a", Some("a b")).unwrap_err();
        assert_eq!((err.status.as_u16(), err.code), (400, "invalid_tenant"));
    }
}
