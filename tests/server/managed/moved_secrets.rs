//! Credentials stay with the endpoints they were given for: a PUT or PATCH that points a
//! source at other endpoints (or TLS settings) while keeping its stored token is refused
//! with 400 `secrets_required` naming the token, and changes nothing; sending the token
//! again, or dropping it with `null`, goes through.

use consul_double::{ConsulDouble, Options};
use serde_json::{json, Value};

use crate::managed::harness::{
    assert_problem, consul_doc, consul_service, patch, put, source_path, wait_source, with,
};
use crate::sources::{source_status, start_server, wait_addresses};

const TOKEN: &str = "consul-t0ken-for-the-first-host";

/// A 400 `secrets_required` whose `fields` are exactly `["token"]`.
fn assert_token_required(what: &str, answer: &(reqwest::StatusCode, Value)) {
    assert_problem(what, answer, 400, "secrets_required", None);
    assert_eq!(answer.1["fields"], json!(["token"]), "{what}: {}", answer.1);
    assert!(
        !answer.1.to_string().contains(TOKEN),
        "{what}: {}",
        answer.1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_a_source_needs_its_secrets_again_or_drops_them() {
    let first = ConsulDouble::start_with(Options {
        token: Some(TOKEN.to_owned()),
        ..Options::default()
    })
    .await;
    first
        .register(consul_service("ledger", "l1", "10.7.1.1", 80))
        .await;
    let other = ConsulDouble::start().await;
    let (server, _dir) = start_server("").await;
    let doc = with(
        consul_doc("moving", &first.url()),
        json!({ "token": TOKEN }),
    );
    crate::managed::harness::create(&server, &doc).await;
    wait_addresses(&server, "ledger", &["10.7.1.1:80"]).await;
    let before = source_status(&server, "moving").await["config"].clone();

    let elsewhere = json!([other.url()]);
    let moved = patch(
        &server,
        &source_path("moving"),
        &json!({ "endpoints": elsewhere }),
    )
    .await;
    assert_token_required("PATCH endpoints", &moved);
    let masked = json!({ "endpoints": elsewhere, "token": "***" });
    let masked = patch(&server, &source_path("moving"), &masked).await;
    assert_token_required("PATCH endpoints with the mask", &masked);
    // A document read back (token `***`) and PUT with other endpoints.
    let read_back = with(before.clone(), json!({ "endpoints": elsewhere }));
    let replaced = put(&server, &source_path("moving"), &read_back).await;
    assert_token_required("PUT endpoints with the mask", &replaced);

    // Nothing changed: same document, still connected to the first host with its token.
    let after = source_status(&server, "moving").await;
    assert_eq!(after["config"], before, "{after}");
    first
        .register(consul_service("ledger", "l2", "10.7.1.2", 80))
        .await;
    wait_addresses(&server, "ledger", &["10.7.1.1:80", "10.7.1.2:80"]).await;

    // Other fields still change with the mask echoed, as before.
    let (status, body) = patch(
        &server,
        &source_path("moving"),
        &json!({ "priority": 4, "token": "***" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // Dropping the token moves the source, and it has no token any more.
    let dropped = json!({ "endpoints": elsewhere, "token": null });
    let (status, body) = patch(&server, &source_path("moving"), &dropped).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["config"].get("token").is_none(), "{body}");
    assert_eq!(body["config"]["endpoints"], elsewhere, "{body}");
    other
        .register(consul_service("ledger", "o1", "10.7.2.1", 80))
        .await;
    wait_addresses(&server, "ledger", &["10.7.2.1:80"]).await;

    // Sending a token again with the move is accepted too.
    let back = json!({ "endpoints": [first.url()], "token": TOKEN });
    let (status, body) = patch(&server, &source_path("moving"), &back).await;
    assert_eq!(status, 200, "{body}");
    wait_source(&server, "moving", "ready on the first host again", |view| {
        view["state"] == "ready" && view["last_error"]["kind"] != "auth"
    })
    .await;
    wait_addresses(&server, "ledger", &["10.7.1.1:80", "10.7.1.2:80"]).await;
}
