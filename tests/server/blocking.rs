//! Blocking queries: `index` + `wait` on a service's instances.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{index_header, test_config, wait_until, TestServer, DEADLINE};

#[tokio::test]
async fn a_blocking_query_wakes_within_100ms_of_a_registration() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(dir.path())).await;
    server
        .register(json!({"service": "orders", "address": "10.0.0.1:80"}))
        .await;
    let index = server.index_of("orders").await;

    let client = server.client.clone();
    let url = server.url(&format!(
        "/api/v1/services/orders/instances?index={index}&wait=30s"
    ));
    let blocked = tokio::spawn(async move {
        let response = client.get(url).send().await.unwrap();
        let woke = Instant::now();
        let new_index = index_header(&response);
        let body: Value = response.json().await.unwrap();
        (woke, new_index, body)
    });
    // The query must really be parked before the change, or the test proves nothing.
    wait_until("the blocking query to park", DEADLINE, || async {
        (server.metric("switchboard_blocking_queries_waiting").await >= 1.0).then_some(())
    })
    .await;

    server
        .register(json!({"service": "orders", "address": "10.0.0.2:80"}))
        .await;
    let registered = Instant::now();
    let (woke, new_index, body) = blocked.await.unwrap();
    let latency = woke.saturating_duration_since(registered);
    assert!(
        latency < Duration::from_millis(100),
        "woke {latency:?} after the 201"
    );
    assert!(new_index > index);
    assert_eq!(body.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_blocking_query_with_no_change_answers_when_the_wait_ends() {
    const WAIT: Duration = Duration::from_secs(1);
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(dir.path())).await;
    server
        .register(json!({"service": "quiet", "address": "10.0.0.1:80"}))
        .await;
    let index = server.index_of("quiet").await;
    let asked = Instant::now();
    let response = server
        .client
        .get(server.url(&format!(
            "/api/v1/services/quiet/instances?index={index}&wait=1s"
        )))
        .send()
        .await
        .unwrap();
    let answered = asked.elapsed();
    assert_eq!(response.status(), 200);
    assert_eq!(index_header(&response), index);
    // It really waited: nothing changed, so nothing may answer it before `wait` is over.
    // (Only a generous upper bound: the machine may be loaded.)
    assert!(answered >= WAIT, "answered after only {answered:?}");
    assert!(answered < WAIT + DEADLINE, "answered after {answered:?}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body.as_array().unwrap().len(), 1, "{body}");
}

#[tokio::test]
async fn an_index_this_catalog_never_issued_answers_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(dir.path())).await;
    server
        .register(json!({"service": "svc", "address": "10.0.0.1:80"}))
        .await;
    let service_index = server.index_of("svc").await;
    // The service listing carries the catalog's own index, the highest it has issued.
    let listing = server.client.get(server.url("/api/v1/services")).send();
    let catalog_index = index_header(&listing.await.unwrap());
    // Indexes keep rising across restarts, so an index above the catalog's can only come
    // from a wiped data dir: waiting on it could only hang the client. Just above counts
    // as much as far above.
    for (index, wait) in [(catalog_index + 1, "30s"), (u64::MAX, "5m")] {
        let asked = Instant::now();
        let response = server
            .client
            .get(server.url(&format!(
                "/api/v1/services/svc/instances?index={index}&wait={wait}"
            )))
            .timeout(DEADLINE)
            .send()
            .await
            .unwrap();
        let answered = asked.elapsed();
        assert_eq!(response.status(), 200);
        // At once, not when the wait ends: DEADLINE (10 s) is well under either wait.
        assert!(
            answered < DEADLINE,
            "index {index}: answered after {answered:?}"
        );
        // With the real index, from which the client starts over.
        assert_eq!(index_header(&response), service_index, "index {index}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body.as_array().unwrap().len(), 1, "index {index}: {body}");
    }
}

#[tokio::test]
async fn a_graceful_stop_ends_parked_blocking_queries() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(dir.path())).await;
    server
        .register(json!({"service": "svc", "address": "10.0.0.1:80"}))
        .await;
    let index = server.index_of("svc").await;
    let client = server.client.clone();
    let url = server.url(&format!(
        "/api/v1/services/svc/instances?index={index}&wait=5m"
    ));
    let blocked = tokio::spawn(async move { client.get(url).send().await.map(|r| r.status()) });
    wait_until("the blocking query to park", DEADLINE, || async {
        (server.metric("switchboard_blocking_queries_waiting").await >= 1.0).then_some(())
    })
    .await;
    tokio::time::timeout(DEADLINE, server.stop())
        .await
        .expect("stop does not wait for the 5m query");
    assert_eq!(blocked.await.unwrap().unwrap(), 200);
}
