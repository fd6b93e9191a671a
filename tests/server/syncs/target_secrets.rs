//! A sync job writes with its target source's credentials, so the rule that keeps them
//! with their endpoints covers the job: pointing the target elsewhere without sending
//! its token again is 400 `secrets_required`, and the job goes on writing, with the
//! token, into the registry it was given for and nowhere else.

use consul_double::{ConsulDouble, Options};
use serde_json::{json, Value};

use super::common::create_sync;
use crate::managed::harness::{
    assert_problem, consul_doc, create, patch, poll, source_path, with, RECONNECT,
};
use crate::sources::{start_server, wait_source_state};

const TOKEN: &str = "consul-t0ken-of-the-sync-target";

/// The double's registrations of `name`, read with `token` when it needs one.
async fn registered(consul: &ConsulDouble, name: &str, token: Option<&str>) -> Vec<Value> {
    let url = format!("{}/v1/health/service/{name}", consul.url());
    let mut request = reqwest::Client::new().get(&url);
    if let Some(token) = token {
        request = request.header("X-Consul-Token", token);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let body: Value = response.json().await.unwrap_or(Value::Null);
    body.as_array().cloned().unwrap_or_default()
}

/// Waits until `consul` holds exactly `count` copies of `name`.
async fn wait_copies(consul: &ConsulDouble, name: &str, token: Option<&str>, count: usize) {
    poll(&format!("{count} copies of {name}"), RECONNECT, || async {
        let found = registered(consul, name, token).await.len();
        (found == count).then_some(()).ok_or(format!("{found}"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_target_keeps_its_token_with_its_endpoints() {
    let first = ConsulDouble::start_with(Options {
        token: Some(TOKEN.to_owned()),
        ..Options::default()
    })
    .await;
    let other = ConsulDouble::start().await;
    let (server, _dir) = start_server("").await;
    let target = with(
        consul_doc("target", &first.url()),
        json!({ "token": TOKEN }),
    );
    create(&server, &target).await;
    wait_source_state(&server, "target", "ready").await;
    let job = json!({ "id": "into-consul", "from": ["native"], "to": "target", "debounce": "0s" });
    create_sync(&server, &job).await;
    server
        .register(json!({ "service": "till", "address": "10.8.0.1:80" }))
        .await;
    wait_copies(&first, "till", Some(TOKEN), 1).await;

    let moved = patch(
        &server,
        &source_path("target"),
        &json!({ "endpoints": [other.url()] }),
    )
    .await;
    assert_problem(
        "PATCH the target's endpoints",
        &moved,
        400,
        "secrets_required",
        None,
    );
    assert_eq!(moved.1["fields"], json!(["token"]), "{}", moved.1);

    // The job still writes, with the token, into the first registry only.
    server
        .register(json!({ "service": "till", "address": "10.8.0.2:80" }))
        .await;
    wait_copies(&first, "till", Some(TOKEN), 2).await;
    assert!(registered(&other, "till", None).await.is_empty());
}
