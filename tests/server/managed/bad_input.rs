//! Bad input changes nothing: a bad document, patch or id answers 4xx with a stable
//! `code` and the `field` at fault, and `GET /api/v1/sources` is the same afterwards.
//! `sources:validate` connects to a document's backend and reports what it would serve,
//! without adding the source.

use serde_json::{json, Value};

use crate::managed::harness::{
    assert_problem, consul_doc, create, delete, etcd_doc, patch, post, put, settled_list,
    source_path, with,
};
use crate::sources::{addresses, source_status, start_server, wait_addresses, wait_source_state};
use crate::support::etcd::EtcdServer;
use crate::support::{free_port, TestServer};

/// A server with one ready API source `etcd-ok` (prefix `/ok/`, serving `web`).
async fn one_ready_source(etcd: &EtcdServer) -> (TestServer, tempfile::TempDir) {
    etcd.put("/ok/web/w1", "10.9.0.1:80").await;
    let (server, dir) = start_server("").await;
    create(&server, &etcd_doc("etcd-ok", &etcd.endpoint(), "/ok/")).await;
    wait_addresses(&server, "web", &["10.9.0.1:80"]).await;
    wait_source_state(&server, "etcd-ok", "ready").await;
    (server, dir)
}

/// Documents that must be refused, each with the field the error names.
fn bad_documents(endpoint: &str) -> Vec<(&'static str, Value, &'static str)> {
    let etcd = |id: &str| etcd_doc(id, endpoint, "/new/");
    vec![
        (
            "unknown type",
            json!({ "id": "new", "type": "zookeeper", "endpoints": [endpoint] }),
            "type",
        ),
        (
            "missing endpoints",
            json!({ "id": "new", "type": "etcd" }),
            "endpoints",
        ),
        (
            "empty endpoints",
            with(etcd("new"), json!({ "endpoints": [] })),
            "endpoints",
        ),
        (
            "malformed URL",
            with(etcd("new"), json!({ "endpoints": ["not a url"] })),
            "endpoints[0]",
        ),
        (
            "negative priority",
            with(etcd("new"), json!({ "priority": -1 })),
            "priority",
        ),
        (
            "unknown key",
            with(consul_doc("new", endpoint), json!({ "tokn": "x" })),
            "tokn",
        ),
        ("bad id", etcd("not an id!"), "id"),
        ("the native id", etcd("native"), "id"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_documents_are_refused_naming_the_field_and_change_nothing() {
    let etcd = EtcdServer::start().await;
    let (server, _dir) = one_ready_source(&etcd).await;
    let before = settled_list(&server).await;

    for (what, doc, field) in bad_documents(&etcd.endpoint()) {
        let created = post(&server, "/api/v1/sources", &doc).await;
        assert_problem(
            &format!("POST, {what}"),
            &created,
            400,
            "invalid_source",
            Some(field),
        );
        let checked = post(&server, "/api/v1/sources:validate", &doc).await;
        let what = format!("validate, {what}");
        assert_problem(&what, &checked, 400, "invalid_source", Some(field));
    }
    let duplicate = etcd_doc("etcd-ok", &etcd.endpoint(), "/elsewhere/");
    let created = post(&server, "/api/v1/sources", &duplicate).await;
    assert_problem("POST a taken id", &created, 409, "source_exists", None);

    assert_eq!(settled_list(&server).await, before, "nothing changed");
    let gone = server.get_json(&source_path("new")).await;
    assert_problem("GET a refused source", &gone, 404, "source_not_found", None);
    assert_eq!(addresses(&server, "web").await, ["10.9.0.1:80"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_put_or_patch_leaves_the_stored_source_unchanged() {
    let etcd = EtcdServer::start().await;
    let (server, _dir) = one_ready_source(&etcd).await;
    let before = settled_list(&server).await;
    let config = source_status(&server, "etcd-ok").await["config"].clone();
    let path = source_path("etcd-ok");

    let patches = [
        (json!({ "priority": -1 }), "priority"),
        (json!({ "endpoints": [] }), "endpoints"),
        (json!({ "endpoints": ["not a url"] }), "endpoints[0]"),
        (json!({ "type": "zookeeper" }), "type"),
        (json!({ "tokn": "x" }), "tokn"),
    ];
    for (body, field) in patches {
        let patched = patch(&server, &path, &body).await;
        let what = format!("PATCH {body}");
        assert_problem(&what, &patched, 400, "invalid_source", Some(field));
    }
    let other_id = with(config.clone(), json!({ "id": "etcd-other" }));
    let replaced = put(&server, &path, &other_id).await;
    assert_problem(
        "PUT another id",
        &replaced,
        400,
        "invalid_source",
        Some("id"),
    );
    let negative = with(config.clone(), json!({ "priority": -1 }));
    let replaced = put(&server, &path, &negative).await;
    let what = "PUT a negative priority";
    assert_problem(what, &replaced, 400, "invalid_source", Some("priority"));

    let after = source_status(&server, "etcd-ok").await;
    assert_eq!(after["config"], config, "the stored document");
    assert_eq!(settled_list(&server).await, before, "nothing changed");
    assert_eq!(after["state"], "ready", "{after}");
    assert_eq!(addresses(&server, "web").await, ["10.9.0.1:80"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_source_id_is_404_for_every_method() {
    let etcd = EtcdServer::start().await;
    let (server, _dir) = one_ready_source(&etcd).await;
    let path = source_path("nope");
    let doc = etcd_doc("nope", &etcd.endpoint(), "/nope/");

    let read = server.get_json(&path).await;
    assert_problem("GET", &read, 404, "source_not_found", None);
    let replaced = put(&server, &path, &doc).await;
    assert_problem("PUT", &replaced, 404, "source_not_found", None);
    let patched = patch(&server, &path, &json!({ "priority": 1 })).await;
    assert_problem("PATCH", &patched, 404, "source_not_found", None);
    let deleted = delete(&server, &path).await;
    assert_problem("DELETE", &deleted, 404, "source_not_found", None);
    let ids: Vec<Value> = settled_list(&server)
        .await
        .iter()
        .map(|v| v["id"].clone())
        .collect();
    assert_eq!(ids, [json!("etcd-ok")], "a PUT does not create");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_counts_a_reachable_etcd_and_adds_nothing() {
    let etcd = EtcdServer::start().await;
    let (server, _dir) = one_ready_source(&etcd).await;
    etcd.put("/v/api/a1", "10.9.1.1:80").await;
    etcd.put("/v/api/a2", "10.9.1.2:80").await;
    etcd.put("/v/db/d1", "10.9.2.1:5432").await;
    let before = settled_list(&server).await;

    let doc = etcd_doc("etcd-v", &etcd.endpoint(), "/v/");
    let (status, report) = post(&server, "/api/v1/sources:validate", &doc).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["valid"], true, "{report}");
    assert_eq!(report["reachable"], true, "{report}");
    assert_eq!(report["services"], 2, "{report}");
    assert_eq!(report["instances"], 3, "{report}");
    assert!(report["error"].is_null(), "{report}");

    assert_eq!(settled_list(&server).await, before, "nothing added");
    assert_eq!(addresses(&server, "api").await, Vec::<String>::new());
    let gone = server.get_json(&source_path("etcd-v")).await;
    assert_problem(
        "GET the validated source",
        &gone,
        404,
        "source_not_found",
        None,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_reports_an_unreachable_endpoint_as_a_connection_error() {
    let (server, _dir) = start_server("").await;
    let dead = format!("http://127.0.0.1:{}", free_port());
    let doc = with(
        etcd_doc("etcd-dead", &dead, "/v/"),
        json!({ "timeout": "2s" }),
    );
    let (status, report) = post(&server, "/api/v1/sources:validate", &doc).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["valid"], true, "{report}");
    assert_eq!(report["reachable"], false, "{report}");
    assert!(report["services"].is_null(), "{report}");
    assert!(report["instances"].is_null(), "{report}");
    assert_eq!(report["error"]["kind"], "connection", "{report}");
    assert!(report["error"]["message"].is_string(), "{report}");
    assert_eq!(
        settled_list(&server).await,
        Vec::<Value>::new(),
        "nothing added"
    );
}
