//! Happy paths of the per-instance endpoints and the system endpoints: register (201 with
//! `Location`) and re-register (200), moving an id to another service, get, heartbeat,
//! health, status changes (`offline` with `offline_time`, back to `active`), deregister, and
//! `/health`, `/ready`, `/metrics`, `/openapi.json`.

use axum::http::{header, Method, StatusCode};
use serde_json::{json, Value};

use crate::{
    assert_fields, assert_has_keys, assert_invalid, assert_non_null, assert_problem, ids, keys,
    registration, timestamp, with, Harness, INSTANCES,
};

#[tokio::test]
async fn register_returns_201_with_location_and_replaces_with_200() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let body = json!({
        "id": "web-1", "service": "web", "address": "10.0.0.1:8080", "protocol": "http",
        "version": "1.2.3", "weight": 50, "metadata": { "zone": "us-1" }, "tags": ["blue"],
        "ttl_seconds": 60,
    });
    let reply = h.post_instance(body.clone()).await?;
    let created = reply.expect(StatusCode::CREATED).clone();
    assert_eq!(reply.headers[header::LOCATION], "/api/v1/instances/web-1");
    assert_has_keys(
        &created,
        &[
            "id",
            "service",
            "namespace",
            "group",
            "address",
            "host",
            "port",
            "protocol",
            "version",
            "weight",
            "status",
            "healthy",
            "metadata",
            "tags",
            "register_time",
            "start_time",
            "last_heartbeat",
            "sources",
            "stale",
        ],
    );
    // Optional fields with no value are left out, not sent as null.
    for absent in ["offline_time", "stale_since"] {
        assert!(
            created.get(absent).is_none(),
            "{absent} should be omitted: {created}"
        );
    }
    assert_fields(
        &created,
        &[
            ("id", json!("web-1")),
            ("service", json!("web")),
            ("namespace", json!("public")),
            ("group", json!("DEFAULT")),
            ("address", json!("10.0.0.1:8080")),
            ("host", json!("10.0.0.1")),
            ("port", json!(8080)),
            ("protocol", json!("http")),
            ("version", json!("1.2.3")),
            ("weight", json!(50)),
            ("status", json!("active")),
            ("healthy", json!(true)),
            ("metadata", json!({ "zone": "us-1" })),
            ("tags", json!(["blue"])),
            ("offline_time", Value::Null),
            ("sources", json!(["native"])),
            ("stale", json!(false)),
        ],
    );
    let registered = timestamp(&created["register_time"]);
    assert_eq!(timestamp(&created["start_time"]), registered);
    assert_eq!(timestamp(&created["last_heartbeat"]), registered);

    // Same id again: replaced, 200, same Location.
    let reply = h.post_instance(with(body, "weight", json!(60))).await?;
    assert_eq!(reply.expect(StatusCode::OK)["weight"], 60);
    assert_eq!(reply.headers[header::LOCATION], "/api/v1/instances/web-1");
    let listed = h.get_ok("/api/v1/services/web/instances").await?;
    assert_eq!(ids(&listed), vec!["web-1"]);
    assert_eq!(listed[0]["weight"], 60);

    // Without an id: generated `{service}-...`; the same endpoint again replaces it.
    let reply = h
        .post_instance(registration("web", "10.0.0.2:8080"))
        .await?;
    let generated = reply.expect(StatusCode::CREATED)["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert!(generated.starts_with("web-"), "{generated}");
    assert_eq!(
        reply.headers[header::LOCATION],
        format!("{INSTANCES}/{generated}").as_str()
    );
    let reply = h
        .post_instance(registration("web", "10.0.0.2:8080"))
        .await?;
    assert_eq!(reply.expect(StatusCode::OK)["id"], generated.as_str());
    let listed = h.get_ok("/api/v1/services/web/instances").await?;
    assert_eq!(ids(&listed).len(), 2);
    Ok(())
}

#[tokio::test]
async fn reregistering_an_id_under_another_service_moves_it() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.register(json!({ "id": "mover", "service": "old", "address": "10.0.0.1:80" }))
        .await?;
    let reply = h
        .post_instance(json!({ "id": "mover", "service": "new", "address": "10.0.0.1:80" }))
        .await?;
    assert_eq!(reply.expect(StatusCode::OK)["service"], "new");
    let old = h.get_ok("/api/v1/services/old/instances").await?;
    assert_eq!(old, json!([]));
    let new = h.get_ok("/api/v1/services/new/instances").await?;
    assert_eq!(ids(&new), vec!["mover"]);
    let stats = h.get("/api/v1/services/old/stats").await?;
    assert_problem(&stats, StatusCode::NOT_FOUND, "service_not_found");
    Ok(())
}

#[tokio::test]
async fn a_new_id_at_a_held_endpoint_takes_it_over() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.register(json!({ "id": "pod-a", "service": "ip-reuse", "address": "10.2.2.2:80" }))
        .await?;
    let listed_before = h.get("/api/v1/services/ip-reuse/instances").await?;
    let reply = h
        .post_instance(json!({ "id": "pod-b", "service": "ip-reuse", "address": "10.2.2.2:80" }))
        .await?;
    reply.expect(StatusCode::CREATED);
    let listed = h.get_ok("/api/v1/services/ip-reuse/instances").await?;
    assert_eq!(ids(&listed), vec!["pod-b"]);
    // The old registration is gone: its client learns so from a 404 on its next heartbeat.
    assert_problem(
        &h.get("/api/v1/instances/pod-a").await?,
        StatusCode::NOT_FOUND,
        "instance_not_found",
    );
    assert_problem(
        &h.heartbeat("pod-a").await?,
        StatusCode::NOT_FOUND,
        "instance_not_found",
    );
    // One change, not a remove-then-add: the index moved once.
    let after = h.get("/api/v1/services/ip-reuse/instances").await?;
    assert_eq!(after.index_header(), listed_before.index_header() + 1);
    Ok(())
}

#[tokio::test]
async fn get_returns_what_register_returned() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let body = json!({ "id": "get-1", "service": "getter", "address": "[::1]:9000",
        "metadata": { "a": "b" }, "tags": ["x", "y"] });
    let registered = h.register(body).await?;
    assert_eq!(h.get_ok("/api/v1/instances/get-1").await?, registered);
    Ok(())
}

#[tokio::test]
async fn heartbeat_renews_and_reports() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let registered = h
        .register(json!({ "id": "hb-1", "service": "hb", "address": "10.0.0.1:80" }))
        .await?;
    let reply = h.heartbeat("hb-1").await?;
    let beat = reply.expect(StatusCode::OK);
    assert_has_keys(beat, &["id", "status", "last_heartbeat", "revived"]);
    assert_fields(
        beat,
        &[
            ("id", json!("hb-1")),
            ("status", json!("active")),
            ("revived", json!(false)),
        ],
    );
    let registered_at = timestamp(&registered["register_time"]);
    assert!(timestamp(&beat["last_heartbeat"]) >= registered_at);

    // A heartbeat with a JSON body is fine too (the body is ignored).
    let uri = "/api/v1/instances/hb-1/heartbeat";
    let reply = h.send(Method::PUT, uri, Some(json!({}))).await?;
    reply.expect(StatusCode::OK);

    let got = h.get_ok("/api/v1/instances/hb-1").await?;
    assert!(timestamp(&got["last_heartbeat"]) >= registered_at);

    // An operator's offline stays offline: a heartbeat does not revive it.
    h.set_status("hb-1", "offline")
        .await?
        .expect(StatusCode::OK);
    let reply = h.heartbeat("hb-1").await?;
    let beat = reply.expect(StatusCode::OK);
    assert_fields(
        beat,
        &[("status", json!("offline")), ("revived", json!(false))],
    );
    Ok(())
}

#[tokio::test]
async fn health_reports_uptime_and_ttl() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.register(
        json!({ "id": "up-1", "service": "up", "address": "10.0.0.1:80",
        "ttl_seconds": 60, "start_time": "2020-01-01T00:00:00Z" }),
    )
    .await?;
    let health = &h.get_ok("/api/v1/instances/up-1/health").await?;
    assert_non_null(
        health,
        &[
            "uptime",
            "register_duration",
            "last_check",
            "status",
            "healthy",
        ],
    );
    assert_fields(
        health,
        &[
            ("id", json!("up-1")),
            ("service", json!("up")),
            ("status", json!("active")),
            ("healthy", json!(true)),
            ("ttl_seconds", json!(60)),
        ],
    );
    let expires_in = health["expires_in_seconds"].as_u64().expect("expires_in");
    assert!((1..=60).contains(&expires_in), "{health}");
    // Uptime counts from start_time (years ago); registration was just now.
    let uptime = health["uptime_seconds"].as_u64().expect("uptime_seconds");
    assert!(uptime > 5 * 365 * 86_400, "{health}");
    let uptime_text = health["uptime"].as_str().expect("uptime");
    assert!(
        uptime_text.ends_with('s') && uptime_text.contains('h'),
        "{uptime_text}"
    );
    let registered_for = health["register_duration_seconds"].as_u64();
    assert!(registered_for.expect("seconds") < 60, "{health}");
    let registered_text = health["register_duration"].as_str().expect("text");
    assert!(registered_text.ends_with('s'), "{registered_text}");
    timestamp(&health["last_check"]);

    // Offline: unhealthy and nothing left to expire.
    h.set_status("up-1", "offline")
        .await?
        .expect(StatusCode::OK);
    assert_fields(
        &h.get_ok("/api/v1/instances/up-1/health").await?,
        &[
            ("status", json!("offline")),
            ("healthy", json!(false)),
            ("expires_in_seconds", json!(0)),
        ],
    );
    Ok(())
}

#[tokio::test]
async fn status_changes() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let id = h.register_id(registration("stat", "10.0.0.1:80")).await?;
    let uri = format!("{INSTANCES}/{id}/status");

    let reply = h.set_status(&id, "bogus").await?;
    assert_invalid(&reply, "invalid_status", "status");
    for body in [
        json!({}),
        json!({ "status": 1 }),
        json!({ "status": "active", "x": 1 }),
    ] {
        let reply = h.send(Method::PUT, &uri, Some(body)).await?;
        assert_problem(&reply, StatusCode::BAD_REQUEST, "invalid_body");
    }

    let offline = h.set_status(&id, "offline").await?;
    let offline = offline.expect(StatusCode::OK).clone();
    assert_fields(
        &offline,
        &[("status", json!("offline")), ("healthy", json!(false))],
    );
    let offline_time = timestamp(&offline["offline_time"]);
    assert!(offline_time >= timestamp(&offline["register_time"]));
    assert_eq!(h.get_ok(&format!("{INSTANCES}/{id}")).await?, offline);

    // Setting the same status again keeps the original offline_time.
    let again = h.set_status(&id, "offline").await?;
    assert_eq!(
        timestamp(&again.expect(StatusCode::OK)["offline_time"]),
        offline_time
    );

    // The catalog sees the change.
    let listed = h
        .get_ok("/api/v1/services/stat/instances?status=offline")
        .await?;
    assert_eq!(ids(&listed), vec![id.clone()]);

    // Back to active, and to the other statuses, none of which has an offline_time.
    for (status, healthy) in [
        ("active", true),
        ("maintenance", false),
        ("inactive", false),
    ] {
        let reply = h.set_status(&id, status).await?;
        assert_fields(
            reply.expect(StatusCode::OK),
            &[
                ("status", json!(status)),
                ("healthy", json!(healthy)),
                ("offline_time", Value::Null),
            ],
        );
    }
    Ok(())
}

#[tokio::test]
async fn registering_offline_sets_offline_time() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let body = with(
        registration("born-offline", "10.0.0.1:80"),
        "status",
        json!("offline"),
    );
    let reply = h.post_instance(body).await?;
    let instance = reply.expect(StatusCode::CREATED);
    assert_fields(
        instance,
        &[("status", json!("offline")), ("healthy", json!(false))],
    );
    timestamp(&instance["offline_time"]);
    Ok(())
}

#[tokio::test]
async fn deregister_removes_the_instance() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let registered = h
        .register(json!({ "id": "gone-1", "service": "gone", "address": "10.0.0.1:80" }))
        .await?;
    h.register(json!({ "id": "gone-2", "service": "gone", "address": "10.0.0.2:80" }))
        .await?;
    let reply = h.delete("/api/v1/instances/gone-1").await?;
    assert_eq!(reply.expect(StatusCode::OK), &registered);

    let reply = h.get("/api/v1/instances/gone-1").await?;
    assert_problem(&reply, StatusCode::NOT_FOUND, "instance_not_found");
    let reply = h.delete("/api/v1/instances/gone-1").await?;
    assert_problem(&reply, StatusCode::NOT_FOUND, "instance_not_found");
    let listed = h.get_ok("/api/v1/services/gone/instances").await?;
    assert_eq!(ids(&listed), vec!["gone-2"]);

    // Deleted for good: not back after a restart.
    let h = h.restart().await?;
    let reply = h.get("/api/v1/instances/gone-1").await?;
    assert_problem(&reply, StatusCode::NOT_FOUND, "instance_not_found");
    h.get_ok("/api/v1/instances/gone-2").await?;
    Ok(())
}

#[tokio::test]
async fn health_and_ready() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    assert_eq!(h.get_ok("/health").await?, json!({ "status": "ok" }));
    assert_eq!(h.get_ok("/ready").await?, json!({ "status": "ready" }));
    Ok(())
}

#[tokio::test]
async fn metrics_are_prometheus_text() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.register(registration("metered", "10.0.0.1:80")).await?;
    h.get("/api/v1/instances/none").await?;
    let reply = h.get("/metrics").await?;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply
            .content_type()
            .starts_with("application/openmetrics-text"),
        "{}",
        reply.content_type()
    );
    let text = reply.text();
    for needle in [
        "switchboard_http_requests_total",
        "switchboard_registrations_total 1",
        "route=\"/api/v1/instances/{id}\"",
        "status=\"404\"",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    Ok(())
}

#[tokio::test]
async fn openapi_document_lists_the_routes() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let doc = h.get_ok("/openapi.json").await?;
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with('3')),
        "{}",
        doc["openapi"]
    );
    let paths = keys(&doc["paths"]);
    for path in switchboard::api::ROUTES {
        assert!(paths.contains(path), "missing {path} in {paths:?}");
    }
    Ok(())
}

/// Every `$ref` names a component (utoipa collects response bodies' schemas, but not those
/// of parameters), operation ids are unique, and every error answer is a problem document. schemathesis
/// (`tests/server/openapi.rs`) checks the rest against the server.
#[tokio::test]
async fn openapi_refs_resolve_ids_are_unique_and_errors_are_problem_documents() -> anyhow::Result<()>
{
    fn walk<'a>(value: &'a Value, refs: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    refs.push(target);
                }
                map.values().for_each(|v| walk(v, refs));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, refs)),
            _ => {}
        }
    }
    let h = Harness::start().await?;
    let doc = h.get_ok("/openapi.json").await?;
    let mut refs = Vec::new();
    walk(&doc, &mut refs);
    for target in refs {
        let pointer = target.strip_prefix('#').expect("a local reference");
        assert!(doc.pointer(pointer).is_some(), "unresolved {target}");
    }
    // Generated clients name their methods after operation ids: each must be unique.
    let mut operation_ids = std::collections::BTreeSet::new();
    for (path, operations) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in operations.as_object().expect("operations") {
            let id = operation["operationId"].as_str().expect("an operation id");
            assert!(
                operation_ids.insert(id),
                "{method} {path}: operation id {id} is taken"
            );
            for (status, response) in operation["responses"].as_object().expect("responses") {
                if status.starts_with('4') || status.starts_with('5') {
                    let content: Vec<&str> = keys(&response["content"]).into_iter().collect();
                    // `/ready` answers 503 with its own JSON status, not an error.
                    if path != "/ready" {
                        assert_eq!(
                            content,
                            ["application/problem+json"],
                            "{method} {path} {status}"
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

#[tokio::test]
async fn every_documented_route_is_labelled_in_metrics() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let doc = h.get_ok("/openapi.json").await?;
    let paths = doc["paths"].as_object().expect("paths");
    for (path, operations) in paths {
        // Placeholders only need to route; the answers (mostly 4xx) do not matter here.
        let uri = path
            .replace("{name}", "metered")
            .replace("{id}", "metered-1");
        for method in operations.as_object().expect("operations").keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes())?;
            h.send(method, &uri, None).await?;
        }
    }
    let text = h.get("/metrics").await?.text();
    for path in paths.keys() {
        let label = format!("route=\"{path}\"");
        assert!(text.contains(&label), "no metrics for {path}:\n{text}");
    }
    assert!(
        !text.contains("route=\"other\""),
        "a route is missing from ROUTES:\n{text}"
    );
    Ok(())
}
