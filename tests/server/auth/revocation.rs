//! A token stops working the moment it is revoked or expires: requests it has waiting
//! (a blocking query) are answered 401, streams it holds (SSE) end.

use futures::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};

use super::{registration, Guarded};
use crate::support::{index_header, wait_until, DEADLINE};

/// Registers `svc` and returns its index.
async fn seed(guarded: &Guarded) -> u64 {
    let (status, _) = guarded
        .seed(registration("svc", "default", "10.3.0.1"))
        .await;
    assert_eq!(status, 201);
    let response = guarded
        .send(
            Method::GET,
            "/api/v1/services/svc/instances",
            Some(&guarded.admin),
            None,
        )
        .await;
    index_header(&response)
}

/// Reads `stream` until it ends, failing after the deadline.
async fn until_end(response: reqwest::Response) {
    let mut body = response.bytes_stream();
    tokio::time::timeout(DEADLINE, async {
        while let Some(chunk) = body.next().await {
            if chunk.is_err() {
                break;
            }
        }
    })
    .await
    .expect("the stream ends");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_token_ends_its_streams_and_answers_its_waiting_queries_at_once() {
    let guarded = Guarded::start().await;
    let index = seed(&guarded).await;
    let (id, secret) = guarded.token("read", &["*"]).await;

    let stream = guarded
        .send(
            Method::GET,
            "/api/v1/watch?service=svc",
            Some(&secret),
            None,
        )
        .await;
    assert_eq!(stream.status(), 200);
    let waiting = tokio::spawn({
        let client = guarded.server.client.clone();
        let url = guarded.server.url(&format!(
            "/api/v1/services/svc/instances?index={index}&wait=5m"
        ));
        let secret = secret.clone();
        async move { client.get(url).bearer_auth(secret).send().await.unwrap() }
    });
    wait_until("the blocking query to park", DEADLINE, || async {
        let parked = guarded
            .server
            .metric("switchboard_blocking_queries_waiting")
            .await;
        (parked == 1.0).then_some(())
    })
    .await;

    assert_eq!(guarded.revoke(&id).await, 204);

    let answered = tokio::time::timeout(DEADLINE, waiting)
        .await
        .expect("answered at once")
        .unwrap();
    assert_eq!(answered.status(), 401);
    let problem: Value = answered.json().await.unwrap();
    assert_eq!(problem["code"], "token_revoked", "{problem}");
    until_end(stream).await;

    let (status, problem) = guarded
        .call(Method::GET, "/api/v1/services", Some(&secret), None)
        .await;
    assert_eq!(
        (status.as_u16(), &problem["code"]),
        (401, &json!("invalid_token"))
    );
    let revoked = guarded
        .server
        .metric("switchboard_auth_failures_total{reason=\"revoked\"}")
        .await;
    assert_eq!(revoked, 2.0, "the query and the stream");
    assert_eq!(guarded.revoke(&id).await, 404, "revoked once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiring_token_ends_its_stream_and_is_refused_after() {
    let guarded = Guarded::start().await;
    seed(&guarded).await;
    let (status, token) = guarded
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(&guarded.admin),
            Some(json!({"name": "brief", "role": "read", "namespaces": ["*"], "expires_in": "2s"})),
        )
        .await;
    assert_eq!(status, 201, "{token}");
    let secret = token["secret"].as_str().unwrap();
    let stream = guarded
        .send(Method::GET, "/api/v1/watch?service=svc", Some(secret), None)
        .await;
    assert_eq!(stream.status(), 200);
    until_end(stream).await;
    let (status, problem) = guarded
        .call(Method::GET, "/api/v1/services", Some(secret), None)
        .await;
    assert_eq!(
        (status.as_u16(), &problem["code"]),
        (401, &json!("token_expired"))
    );
    // Expiry is no revocation: the token stays listed, with its time, until deleted.
    let (_, listed) = guarded
        .call(
            Method::GET,
            &format!("/api/v1/tokens/{}", token["id"].as_str().unwrap()),
            Some(&guarded.admin),
            None,
        )
        .await;
    assert_eq!(listed["expires_at"], token["expires_at"]);
}
