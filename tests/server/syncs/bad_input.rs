//! Bad input changes nothing: a bad job definition answers 400 `invalid_sync` naming the
//! field at fault (for a new job, a replacement and a plan alike), a taken id 409, an
//! unknown id 404 for every method, and the job list is the same afterwards. A job from
//! the config file is read-only through the API, but can be paused and resumed.

use reqwest::Method;
use serde_json::{json, Value};

use super::common::{at_rest, plan_of, planned, served, sync_path, sync_status, wait_sync};
use crate::managed::harness::{assert_problem, etcd_table, post, post_empty, put, send, with};
use crate::sources::{start_server, wait_fresh, wait_source_state};
use crate::support::etcd::EtcdServer;
use crate::support::TestServer;

/// The one job the server holds: `web` from `etcd-b` into the native registry.
fn good_job() -> Value {
    json!({
        "id": "good",
        "from": ["etcd-b"],
        "to": "native",
        "services": "web",
        "debounce": "100ms",
    })
}

/// Definitions that must be refused, each with the field the error names.
fn bad_definitions() -> Vec<(&'static str, Value, &'static str)> {
    let new = || with(good_job(), json!({ "id": "new" }));
    let without = |field: &str| {
        let mut doc = new();
        doc.as_object_mut().unwrap().remove(field);
        doc
    };
    vec![
        ("missing id", without("id"), "id"),
        ("bad id", with(new(), json!({ "id": "not an id!" })), "id"),
        ("missing to", without("to"), "to"),
        ("unknown to", with(new(), json!({ "to": "nope" })), "to"),
        (
            "unknown from",
            with(new(), json!({ "from": ["nope"] })),
            "from[0]",
        ),
        (
            "from names the target",
            with(
                new(),
                json!({ "from": ["etcd-b", "etcd-c"], "to": "etcd-c" }),
            ),
            "from[1]",
        ),
        (
            "bad glob",
            with(new(), json!({ "services": ["a/b"] })),
            "services[0]",
        ),
        (
            "rate_limit 0",
            with(new(), json!({ "rate_limit": 0 })),
            "rate_limit",
        ),
        (
            "bad debounce",
            with(new(), json!({ "debounce": "soon" })),
            "debounce",
        ),
        (
            "unknown field",
            with(new(), json!({ "color": "red" })),
            "color",
        ),
    ]
}

/// `GET /api/v1/syncs` without the status fields, which move as the job runs: what
/// "nothing changed" compares.
async fn settled_jobs(server: &TestServer) -> Vec<Value> {
    let (status, body) = server.get_json("/api/v1/syncs").await;
    assert_eq!(status, 200, "GET /api/v1/syncs: {body}");
    let views = body.as_array().cloned().unwrap_or_default();
    views
        .iter()
        .map(|view| {
            json!({
                "id": view["id"],
                "to": view["to"],
                "origin": view["origin"],
                "paused": view["paused"],
                "state": view["state"],
                "config": view["config"],
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_definitions_and_ids_are_refused_and_change_nothing() {
    let etcd = EtcdServer::start().await;
    etcd.put("/b/web/w1", "10.25.0.1:80").await;
    let toml = etcd_table("etcd-b", &etcd.endpoint(), "/b/", "")
        + &etcd_table("etcd-c", &etcd.endpoint(), "/c/", "");
    let (server, _dir) = start_server(&toml).await;
    wait_source_state(&server, "etcd-b", "ready").await;
    let (status, created) = post(&server, "/api/v1/syncs", &good_job()).await;
    assert_eq!(status, 201, "{created}");
    wait_sync(&server, "good", "its copy written", |s| {
        s["synced"] == 1 && at_rest(s)
    })
    .await;
    let before = settled_jobs(&server).await;
    assert_eq!(before.len(), 1, "{before:?}");
    assert_eq!(before[0]["config"], created["config"], "{before:?}");

    for (what, doc, field) in bad_definitions() {
        let created = post(&server, "/api/v1/syncs", &doc).await;
        let what_post = format!("POST, {what}: {doc}");
        assert_problem(&what_post, &created, 400, "invalid_sync", Some(field));
        let planned = post(&server, "/api/v1/syncs:plan", &doc).await;
        let what_plan = format!("plan, {what}: {doc}");
        assert_problem(&what_plan, &planned, 400, "invalid_sync", Some(field));
    }
    let taken = with(good_job(), json!({ "services": "other" }));
    let created = post(&server, "/api/v1/syncs", &taken).await;
    assert_problem("POST a taken id", &created, 409, "sync_exists", None);

    // Replacing the job: its target is fixed, and the body must hold.
    let path = sync_path("good");
    let moved = with(good_job(), json!({ "to": "etcd-c" }));
    let replaced = put(&server, &path, &moved).await;
    assert_problem(
        "PUT another target",
        &replaced,
        400,
        "invalid_sync",
        Some("to"),
    );
    let zero = with(good_job(), json!({ "rate_limit": 0 }));
    let replaced = put(&server, &path, &zero).await;
    assert_problem(
        "PUT rate_limit 0",
        &replaced,
        400,
        "invalid_sync",
        Some("rate_limit"),
    );
    let renamed = with(good_job(), json!({ "id": "other" }));
    let replaced = put(&server, &path, &renamed).await;
    assert_problem("PUT another id", &replaced, 400, "invalid_sync", Some("id"));

    // An id nobody has: 404 whatever the method, and a PUT does not create it.
    let path = sync_path("nope");
    let nope = with(good_job(), json!({ "id": "nope" }));
    let calls = [
        ("GET", server.get_json(&path).await),
        (
            "GET status",
            server.get_json(&format!("{path}/status")).await,
        ),
        ("PUT", put(&server, &path, &nope).await),
        ("DELETE", send(&server, Method::DELETE, &path, None).await),
        ("pause", post_empty(&server, &format!("{path}/pause")).await),
        (
            "resume",
            post_empty(&server, &format!("{path}/resume")).await,
        ),
    ];
    for (what, reply) in &calls {
        assert_problem(what, reply, 404, "sync_not_found", None);
    }

    assert_eq!(settled_jobs(&server).await, before, "nothing changed");
    let refused = server.get_json(&sync_path("new")).await;
    assert_problem("GET a refused job", &refused, 404, "sync_not_found", None);
    let status = sync_status(&server, "good").await;
    assert_eq!(status["synced"], 1, "{status}");
    assert_eq!(status["errors"], 0, "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_job_is_read_only_but_can_be_paused_and_resumed() {
    let etcd = EtcdServer::start().await;
    etcd.put("/f/web/w1", "10.26.0.1:80").await;
    let toml = etcd_table("etcd-f", &etcd.endpoint(), "/f/", "")
        + "[[syncs]]\nid = \"from-file\"\nfrom = [\"etcd-f\"]\nto = \"native\"\n\
           services = \"web\"\ndebounce = \"100ms\"\n";
    let (server, _dir) = start_server(&toml).await;
    let path = sync_path("from-file");
    let (status, view) = server.get_json(&path).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["origin"], "file", "{view}");
    assert_eq!(view["paused"], false, "{view}");
    assert_eq!(view["config"]["to"], "native", "{view}");
    assert_eq!(view["config"]["debounce"], "100ms", "{view}");
    wait_sync(&server, "from-file", "w1 copied", |s| {
        s["synced"] == 1 && at_rest(s)
    })
    .await;
    let definition = view["config"].clone();

    let replaced = put(
        &server,
        &path,
        &with(definition.clone(), json!({ "rate_limit": 5 })),
    )
    .await;
    assert_problem("PUT a file job", &replaced, 409, "sync_read_only", None);
    let deleted = send(&server, Method::DELETE, &path, None).await;
    assert_problem("DELETE a file job", &deleted, 409, "sync_read_only", None);
    let (status, still) = server.get_json(&path).await;
    assert_eq!(status, 200, "{still}");
    assert_eq!(still["config"], definition, "{still}");

    // Paused: a new instance in the source is not written (the plan still lists it).
    // Counters run for the whole process, across pauses.
    let writes_before = sync_status(&server, "from-file").await["writes"].clone();
    let (status, paused) = post_empty(&server, &format!("{path}/pause")).await;
    assert_eq!(status, 200, "{paused}");
    assert_eq!(paused["paused"], true, "{paused}");
    assert_eq!(paused["state"], "paused", "{paused}");
    assert_eq!(paused["origin"], "file", "{paused}");
    etcd.put("/f/web/w2", "10.26.0.2:80").await;
    wait_fresh(
        &server,
        "etcd-f",
        &served(&[("web", "10.26.0.1:80"), ("web", "10.26.0.2:80")]),
    )
    .await;
    let plan = plan_of(&server, &definition).await;
    let writes = planned(&plan, "writes");
    assert_eq!(writes.len(), 1, "{plan}");
    assert_eq!(writes[0]["host"], "10.26.0.2", "{plan}");
    assert_eq!(writes[0]["reason"], "new", "{plan}");
    assert_eq!(sync_status(&server, "from-file").await["state"], "paused");

    let (status, resumed) = post_empty(&server, &format!("{path}/resume")).await;
    assert_eq!(status, 200, "{resumed}");
    assert_eq!(resumed["paused"], false, "{resumed}");
    assert_eq!(resumed["state"], "running", "{resumed}");
    let caught_up = wait_sync(&server, "from-file", "w2 copied after resuming", |s| {
        s["synced"] == 2 && at_rest(s)
    })
    .await;
    assert_eq!(
        caught_up["writes"].as_u64(),
        writes_before.as_u64().map(|w| w + 1),
        "{caught_up}"
    );
    let (_, native) = server
        .get_json("/api/v1/services/web/instances?source=native")
        .await;
    let mut copied: Vec<&str> = native
        .as_array()
        .map(|list| list.iter().filter_map(|i| i["address"].as_str()).collect())
        .unwrap_or_default();
    copied.sort();
    assert_eq!(copied, ["10.26.0.1:80", "10.26.0.2:80"], "{native}");
}
