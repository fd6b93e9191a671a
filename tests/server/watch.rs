//! Server-Sent Events: `GET /api/v1/watch`.

use futures::StreamExt;
use serde_json::{json, Value};

use crate::support::{test_config, TestServer, DEADLINE};

/// Reads the next SSE event's `data:` payload as JSON.
async fn next_event(
    stream: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    buffer: &mut String,
) -> Value {
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data:")) {
                return serde_json::from_str(data.trim()).unwrap();
            }
            continue; // a keep-alive comment
        }
        let chunk = tokio::time::timeout(DEADLINE, stream.next())
            .await
            .expect("an event before the deadline")
            .expect("the stream stays open")
            .unwrap();
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[tokio::test]
async fn sse_delivers_the_current_state_then_each_change() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(dir.path())).await;
    let response = server
        .client
        .get(server.url("/api/v1/watch?service=payments"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();

    let initial = next_event(&mut stream, &mut buffer).await;
    assert_eq!(initial["service"], "payments");
    assert_eq!(initial["instances"], json!([]));

    let registered = server
        .register(json!({"service": "payments", "address": "10.1.1.1:443"}))
        .await;
    let change = next_event(&mut stream, &mut buffer).await;
    assert_eq!(change["instances"][0]["id"], registered["id"]);
    assert!(change["index"].as_u64().unwrap() > initial["index"].as_u64().unwrap());

    let id = registered["id"].as_str().unwrap();
    server.set_status(id, "maintenance").await;
    let change = next_event(&mut stream, &mut buffer).await;
    assert_eq!(change["instances"][0]["status"], "maintenance");
}

#[tokio::test]
async fn sse_without_a_service_is_a_400() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(dir.path())).await;
    let (status, body) = server.get_json("/api/v1/watch").await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "invalid_query");
}
