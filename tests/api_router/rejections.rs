//! Rejections change nothing: a batch of invalid requests aimed at an existing instance
//! (bad registrations, bad status changes, unknown instances, malformed paths and queries,
//! unknown routes, wrong methods) is answered with well-formed 4xx problem documents, never
//! a 5xx, and leaves the instance, the service listing and the store byte-for-byte
//! unchanged.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::{
    assert_well_formed_problem, instance_endpoints, registration, with, Harness, BODY_LIMIT,
    INSTANCES, JSON,
};

/// One request of the rejection batch: method, uri, content type, body.
type Attempt = (Method, String, Option<&'static str>, String);

/// The instance the batch aims at.
const INSTANCE: &str = "/api/v1/instances/keeper-1";

/// A view the batch must leave unchanged: its body, and its `X-Switchboard-Index` when
/// `indexed`. `stored` views are compared again after a restart (indexes are not kept).
struct View {
    uri: &'static str,
    indexed: bool,
    stored: bool,
}

const VIEWS: [View; 4] = [
    View {
        uri: INSTANCE,
        indexed: false,
        stored: true,
    },
    View {
        uri: "/api/v1/services",
        indexed: true,
        stored: false,
    },
    View {
        uri: "/api/v1/services/keeper/instances",
        indexed: true,
        stored: false,
    },
    View {
        uri: "/api/v1/admin/all",
        indexed: false,
        stored: true,
    },
];

/// Invalid registration bodies, each aimed at `id` (re-registering it) when given.
fn invalid_registrations(id: Option<&str>) -> Vec<Value> {
    let base = || {
        let body = registration("keeper", "10.0.0.9:8080");
        match id {
            Some(id) => with(body, "id", json!(id)),
            None => body,
        }
    };
    let too_many_keys: Value = (0..65).map(|i| (format!("k{i}"), json!("v"))).collect();
    let mut bodies: Vec<Value> = [
        ("service", json!("a".repeat(254))),
        ("service", json!("")),
        ("service", json!("bad name")),
        ("service", json!("bad/name")),
        ("service", json!("sérvice")),
        ("address", json!("10.0.0.9:0")),
        ("address", json!("10.0.0.9:65536")),
        ("address", json!("10.0.0.9")),
        ("address", json!("10.0.0.9:http")),
        ("address", json!("::1:8080")),
        ("host", json!("10.0.0.9")),
        ("weight", json!(-1)),
        ("weight", json!(10_001)),
        ("weight", json!("heavy")),
        ("metadata", json!({ "k".repeat(129): "v" })),
        ("metadata", json!({ "k": "v".repeat(1025) })),
        ("metadata", too_many_keys),
        ("status", json!("bogus")),
        ("namespace", json!("bad ns")),
        ("ttl_seconds", json!(0)),
        ("tags", json!([""])),
        ("unknown", json!(1)),
    ]
    .into_iter()
    .map(|(key, value)| with(base(), key, value))
    .collect();
    let split = with(base(), "address", Value::Null);
    bodies.push(with(
        with(split, "host", json!("10.0.0.9")),
        "port",
        json!(0),
    ));
    bodies
}

/// The invalid requests of the batch.
fn attempts() -> Vec<Attempt> {
    let mut attempts: Vec<Attempt> = Vec::new();
    let post =
        |content_type, body: String| (Method::POST, INSTANCES.to_owned(), content_type, body);

    // Re-registrations of the existing id (and, without an id, of its endpoint).
    for body in invalid_registrations(Some("keeper-1"))
        .into_iter()
        .chain(invalid_registrations(None))
    {
        attempts.push(post(JSON, body.to_string()));
    }
    let valid = json!({ "id": "keeper-1", "service": "moved", "address": "10.0.0.9:1" });
    let mut oversized = with(valid.clone(), "version", json!("x".repeat(BODY_LIMIT)));
    oversized["service"] = json!("keeper");
    attempts.extend([
        post(None, valid.to_string()),
        post(Some("text/plain"), valid.to_string()),
        post(JSON, "{\"id\":\"keeper-1\",".into()),
        post(JSON, String::new()),
        post(JSON, "null".into()),
        post(JSON, oversized.to_string()),
    ]);

    // Invalid status changes of the existing instance.
    let offline = r#"{"status":"offline"}"#;
    let big_status = format!("{offline}{}", " ".repeat(BODY_LIMIT));
    for (content_type, body) in [
        (JSON, r#"{"status":"bogus"}"#),
        (JSON, r#"{"status":"OFFLINE"}"#),
        (JSON, r#"{"status":""}"#),
        (JSON, r#"{"status":1}"#),
        (JSON, r#"{"status":null}"#),
        (JSON, r#"{}"#),
        (JSON, r#"{"status":"offline","extra":1}"#),
        (JSON, r#"{"status":"offline""#),
        (JSON, ""),
        (None, offline),
        (JSON, big_status.as_str()),
    ] {
        let uri = format!("{INSTANCE}/status");
        attempts.push((Method::PUT, uri, content_type, body.to_owned()));
    }

    // Unknown instances; the existing one with the wrong methods.
    for (method, uri, body) in instance_endpoints("keeper-2", "offline") {
        let content_type = body.as_ref().and(JSON);
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        attempts.push((method, uri, content_type, body));
    }
    for method in [Method::PUT, Method::POST] {
        attempts.push((method, INSTANCE.to_owned(), JSON, valid.to_string()));
    }

    // Malformed paths, bad queries, unknown services and routes, wrong methods: no body.
    let queries = [
        "index=abc",
        "wait=forever",
        "status=bogus",
        "healthy=maybe",
        "namespace=bad%20ns",
        "meta.=x",
    ]
    .map(|query| {
        (
            Method::GET,
            format!("/api/v1/services/keeper/instances?{query}"),
        )
    });
    let bodiless = [
        (Method::GET, "/api/v1/instances/%FF"),
        (Method::DELETE, "/api/v1/instances/%FF"),
        (Method::PUT, "/api/v1/instances/%FF/heartbeat"),
        (Method::GET, "/api/v1/services/bad%20name/instances"),
        (Method::GET, "/api/v1/services/bad%20name/stats"),
        (Method::GET, "/api/v1/services/nobody/stats"),
        (Method::GET, "/api/v1/services?index=abc"),
        (Method::GET, "/api/v1/watch"),
        (Method::GET, "/api/v1/watch?service=bad%20name"),
        (Method::DELETE, "/api/v1/admin/services/bad%20name"),
        (Method::DELETE, "/api/v1/admin/services/nobody"),
        (
            Method::DELETE,
            "/api/v1/admin/services/keeper?namespace=bad%20ns",
        ),
        (
            Method::DELETE,
            "/api/v1/admin/services/keeper?namespace=elsewhere",
        ),
        (Method::GET, "/api/v1/nope"),
        (Method::DELETE, "/api/v1/services/keeper/instances"),
    ]
    .map(|(method, uri)| (method, uri.to_owned()));
    for (method, uri) in queries.into_iter().chain(bodiless) {
        attempts.push((method, uri, None, String::new()));
    }
    attempts
}

/// The body of each of [`VIEWS`] and, for the indexed ones, the index; each asserted 200.
async fn snapshot(h: &Harness) -> anyhow::Result<Vec<(String, Option<u64>)>> {
    let mut seen = Vec::new();
    for view in &VIEWS {
        let reply = h.get(view.uri).await?;
        reply.expect(StatusCode::OK);
        seen.push((reply.text(), view.indexed.then(|| reply.index_header())));
    }
    Ok(seen)
}

#[tokio::test]
async fn rejected_requests_change_nothing_and_never_5xx() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let keeper = json!({
        "id": "keeper-1", "service": "keeper", "address": "10.0.0.9:8080",
        "protocol": "grpc", "weight": 7, "metadata": { "zone": "us-1" }, "tags": ["blue"],
    });
    h.register(keeper).await?;
    h.register(registration("bystander", "10.0.0.10:80"))
        .await?;
    let before = snapshot(&h).await?;

    let attempts = attempts();
    let total = attempts.len();
    for (method, uri, content_type, body) in attempts {
        let reply = h.send_raw(method, &uri, content_type, body).await?;
        assert!(
            reply.status.is_client_error(),
            "expected a 4xx: {} -> {} {}",
            reply.request,
            reply.status,
            reply.text()
        );
        assert_well_formed_problem(&reply);
    }
    assert!(total > 80, "the batch shrank to {total} requests");

    let after = snapshot(&h).await?;
    for ((view, before), after) in VIEWS.iter().zip(&before).zip(&after) {
        assert_eq!(after, before, "{} changed", view.uri);
    }

    // Nor did anything reach the store: a restarted app reads the same instance back.
    let h = h.restart().await?;
    let reloaded = snapshot(&h).await?;
    for ((view, before), reloaded) in VIEWS.iter().zip(&before).zip(&reloaded) {
        if view.stored {
            assert_eq!(reloaded.0, before.0, "stored {} changed", view.uri);
        }
    }
    Ok(())
}
