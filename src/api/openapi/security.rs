//! How requests authenticate, in the document: the two ways to present a token, and on
//! every operation access control guards, its requirement and its 401 and 403 answers.
//! Drawn from [`access::ACCESS`], so the document cannot drift from the check.

use utoipa::openapi::path::{HttpMethod, Operation};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{Content, OpenApi, Ref, ResponseBuilder};
use utoipa::Modify;

use super::responses::PROBLEM_JSON;
use crate::api::access::{self, Need};

pub struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        components.add_security_scheme(
            "token_header",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Switchboard-Token"))),
        );
        for (path, item) in openapi.paths.paths.iter_mut() {
            for (method, operation) in [
                (HttpMethod::Get, &mut item.get),
                (HttpMethod::Post, &mut item.post),
                (HttpMethod::Put, &mut item.put),
                (HttpMethod::Patch, &mut item.patch),
                (HttpMethod::Delete, &mut item.delete),
            ] {
                if let Some(operation) = operation {
                    guard(operation, access::need_of(&method_of(method), path));
                }
            }
        }
    }
}

fn method_of(method: HttpMethod) -> axum::http::Method {
    match method {
        HttpMethod::Post => axum::http::Method::POST,
        HttpMethod::Put => axum::http::Method::PUT,
        HttpMethod::Patch => axum::http::Method::PATCH,
        HttpMethod::Delete => axum::http::Method::DELETE,
        _ => axum::http::Method::GET,
    }
}

/// Declares what access control asks of `operation` and what it answers when refused.
fn guard(operation: &mut Operation, need: Need) {
    let tokens = || {
        vec![
            SecurityRequirement::new("bearer", Vec::<String>::new()),
            SecurityRequirement::new("token_header", Vec::<String>::new()),
        ]
    };
    operation.security = Some(match need {
        Need::Open => vec![SecurityRequirement::default()],
        // Open unless `auth.protect_metrics`, and with access control off.
        Need::Metrics => [vec![SecurityRequirement::default()], tokens()].concat(),
        // With access control off (the default) every route takes requests without one.
        _ => [tokens(), vec![SecurityRequirement::default()]].concat(),
    });
    if need == Need::Open {
        return;
    }
    for (status, description) in [
        ("401", "unauthenticated, invalid_token, token_expired or token_revoked: access control is on and the request has no live token (`WWW-Authenticate: Bearer`)"),
        ("403", "forbidden: the token's role or namespaces do not cover this request"),
    ] {
        let response = ResponseBuilder::new()
            .description(description)
            .content(PROBLEM_JSON, Content::new(Some(Ref::from_schema_name("Problem"))))
            .build();
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert(response.into());
    }
}
