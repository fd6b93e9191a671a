//! Transport and routing errors, each answered with a well-formed problem document: the
//! 64 KiB body limit (413), malformed JSON, wrong JSON types and unknown fields, a missing
//! or wrong `Content-Type` (415), unknown routes (404, `route_not_found`), wrong methods
//! (405 with `Allow`), unknown instances (404, `instance_not_found`) and malformed query
//! parameters (400 with the field at fault).

use axum::http::{header, Method, StatusCode};
use serde_json::json;

use crate::{
    assert_problem, instance_endpoints, registration, with, Harness, BODY_LIMIT, INSTANCES, JSON,
};

/// A valid registration padded with trailing JSON whitespace to exactly `len` bytes.
fn padded_registration(service: &str, len: usize) -> String {
    let body = registration(service, "10.0.0.1:80").to_string();
    assert!(body.len() <= len);
    format!("{body}{}", " ".repeat(len - body.len()))
}

#[tokio::test]
async fn bodies_over_64_kib_are_413() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let id = h.register_id(registration("small", "10.0.0.1:80")).await?;

    // Well over the limit, with a body that would be invalid anyway; one byte over; and a
    // status change, which has the same limit.
    let huge = json!({ "service": "big", "address": "10.0.0.1:80",
        "metadata": { "pad": "x".repeat(70 * 1024) } });
    let status = format!("{{\"status\":\"active\"}}{}", " ".repeat(BODY_LIMIT));
    for (method, uri, body) in [
        (Method::POST, INSTANCES.to_owned(), huge.to_string()),
        (
            Method::POST,
            INSTANCES.to_owned(),
            padded_registration("big", BODY_LIMIT + 1),
        ),
        (Method::PUT, format!("{INSTANCES}/{id}/status"), status),
    ] {
        let reply = h.send_raw(method, &uri, JSON, body).await?;
        assert_problem(&reply, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    }

    // Exactly at and just under the limit: accepted.
    for (service, len) in [("at-limit", BODY_LIMIT), ("under-limit", BODY_LIMIT - 1)] {
        let reply = h.post_raw(padded_registration(service, len)).await?;
        assert_eq!(reply.expect(StatusCode::CREATED)["service"], service);
    }
    Ok(())
}

#[tokio::test]
async fn malformed_json_is_invalid_json() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    for body in [
        "",
        "{",
        "{\"service\":",
        "not json",
        "{\"service\":\"s\",\"address\":\"10.0.0.1:80\"} trailing",
        "{'service':'s'}",
    ] {
        let reply = h.post_raw(body).await?;
        assert_problem(&reply, StatusCode::BAD_REQUEST, "invalid_json");
    }
    Ok(())
}

#[tokio::test]
async fn wrong_types_and_unknown_fields_are_invalid_body() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let base = || registration("typed", "10.0.0.1:80");
    let mut bodies = vec![
        json!(null),
        json!([]),
        json!("service"),
        json!(42),
        json!({ "service": 5, "address": "10.0.0.1:80" }),
        json!({ "service": "typed", "address": ["10.0.0.1:80"] }),
    ];
    bodies.extend(
        [
            ("tags", json!("a")),
            ("metadata", json!(["k", "v"])),
            ("ttl_seconds", json!("30s")),
            ("start_time", json!("yesterday")),
            ("weight", json!(1e20)),
            ("servcie", json!("typo")),
            ("unknown", json!(true)),
        ]
        .map(|(key, value)| with(base(), key, value)),
    );
    h.assert_all_invalid_body(bodies).await
}

#[tokio::test]
async fn bodies_must_be_sent_as_json() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let body = registration("typed", "10.0.0.1:80").to_string();
    let reply = h
        .send_raw(
            Method::POST,
            INSTANCES,
            Some("application/json; charset=utf-8"),
            body.clone(),
        )
        .await?;
    reply.expect(StatusCode::CREATED);
    let id = reply.json["id"].as_str().expect("id");

    let status_uri = format!("{INSTANCES}/{id}/status");
    let status = r#"{"status":"offline"}"#.to_owned();
    for (method, uri, content_type, body) in [
        (Method::POST, INSTANCES, None, body.clone()),
        (Method::POST, INSTANCES, Some("text/plain"), body.clone()),
        (
            Method::POST,
            INSTANCES,
            Some("application/x-www-form-urlencoded"),
            body,
        ),
        (Method::PUT, status_uri.as_str(), None, status),
    ] {
        let reply = h.send_raw(method, uri, content_type, body).await?;
        assert_problem(
            &reply,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        );
    }
    Ok(())
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    for (method, uri) in [
        (Method::GET, "/"),
        (Method::GET, "/nope"),
        (Method::GET, "/api/v1/nope"),
        (Method::GET, "/api/v2/services"),
        (Method::GET, "/api/v1/services/web/nope"),
        (Method::POST, "/api/v1/instances/x/y"),
    ] {
        let reply = h.send(method, uri, None).await?;
        assert_problem(&reply, StatusCode::NOT_FOUND, "route_not_found");
    }
    // A 405 names the methods the path does accept.
    for (method, uri, allowed) in [
        (Method::DELETE, "/api/v1/services", "GET"),
        (Method::POST, "/api/v1/services/web/instances", "GET"),
        (Method::GET, "/api/v1/instances", "POST"),
        (Method::POST, "/api/v1/instances/x", "DELETE"),
        (Method::PUT, "/api/v1/instances/x", "GET"),
        (Method::GET, "/api/v1/instances/x/heartbeat", "PUT"),
        (Method::POST, "/api/v1/instances/x/status", "PUT"),
        (Method::GET, "/api/v1/admin/services/web", "DELETE"),
        (Method::POST, "/health", "GET"),
        (Method::DELETE, "/metrics", "GET"),
    ] {
        let reply = h.send(method, uri, None).await?;
        assert_problem(&reply, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
        let allow = reply
            .headers
            .get(header::ALLOW)
            .and_then(|v| v.to_str().ok());
        assert!(
            allow.is_some_and(|allow| allow.split(',').any(|m| m.trim() == allowed)),
            "{}: Allow {allow:?} should include {allowed}",
            reply.request
        );
    }
    Ok(())
}

#[tokio::test]
async fn unknown_instances_are_404_on_every_endpoint() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    // Another instance exists, so the registry is not simply empty.
    h.register(registration("present", "10.0.0.1:80")).await?;
    let id = "no-such-instance";
    for (method, uri, body) in instance_endpoints(id, "active") {
        let reply = h.send(method, &uri, body).await?;
        assert_problem(&reply, StatusCode::NOT_FOUND, "instance_not_found");
        assert!(
            reply.json["detail"]
                .as_str()
                .unwrap_or_default()
                .contains(id),
            "detail should name the id: {}",
            reply.text()
        );
    }
    Ok(())
}

#[tokio::test]
async fn malformed_query_parameters_are_400() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.register(registration("queried", "10.0.0.1:80")).await?;
    let instances = "/api/v1/services/queried/instances";
    for (uri, code, field) in [
        ("index=abc", "invalid_index", Some("index")),
        ("index=-1", "invalid_index", Some("index")),
        ("index=1.5", "invalid_index", Some("index")),
        ("index=", "invalid_index", Some("index")),
        ("wait=forever", "invalid_wait", Some("wait")),
        ("wait=-1s", "invalid_wait", Some("wait")),
        ("wait=", "invalid_wait", Some("wait")),
        ("index=1&wait=10x", "invalid_wait", Some("wait")),
        ("status=bogus", "invalid_status", Some("status")),
        ("healthy=maybe", "invalid_query", Some("healthy")),
        ("namespace=bad%20ns", "invalid_namespace", Some("namespace")),
        ("group=a%2Fb", "invalid_group", Some("group")),
        ("meta.=x", "invalid_query", None),
    ]
    .map(|(query, code, field)| (format!("{instances}?{query}"), code, field))
    .into_iter()
    .chain(
        [
            // Names in the path, and the listing and stats parse the same parameters.
            (
                "/api/v1/services/bad%20name/instances",
                "invalid_service_name",
            ),
            ("/api/v1/services/bad%20name/stats", "invalid_service_name"),
            ("/api/v1/services?namespace=bad%20ns", "invalid_namespace"),
            (
                "/api/v1/services/queried/stats?group=bad%20g",
                "invalid_group",
            ),
        ]
        .map(|(uri, code)| (uri.to_owned(), code, None)),
    ) {
        let reply = h.get(&uri).await?;
        assert_problem(&reply, StatusCode::BAD_REQUEST, code);
        if let Some(field) = field {
            assert_eq!(reply.json["field"], field, "{uri}");
        }
    }
    Ok(())
}
