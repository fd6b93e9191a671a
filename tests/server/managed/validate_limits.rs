//! `sources:validate` connects to any address it is sent, so it is bounded: at most
//! `api.validate_concurrency` dry runs at once (429 `validate_busy` with `Retry-After`
//! beyond), each given up after `api.validate_timeout`, and what a remote server answered
//! is shown only as a short excerpt without control characters.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::managed::harness::{assert_problem, consul_doc, post};
use crate::sources::start_server;
use crate::support::poll;

/// A server that accepts connections and never answers; its base URL and how many
/// connections it has accepted.
async fn silent() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    (base, accepted)
}

/// A server answering every request with `500` and `body`; its base URL.
async fn failing(body: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let head = format!(
                "HTTP/1.1 500 Internal Server Error\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = socket.write_all(head.as_bytes()).await;
            let _ = socket.write_all(body.as_bytes()).await;
        }
    });
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_runs_are_capped_short_and_relay_no_remote_page() {
    let toml = "[api]\nvalidate_concurrency = 1\nvalidate_timeout = \"3s\"\n";
    let (server, _dir) = start_server(toml).await;
    let server = Arc::new(server);

    // One dry run against a server that never answers holds the only slot...
    let (silent, accepted) = silent().await;
    let hanging = consul_doc("hangs", &silent);
    let started = Instant::now();
    let first = {
        let (server, hanging) = (server.clone(), hanging.clone());
        tokio::spawn(async move { post(&server, "/api/v1/sources:validate", &hanging).await })
    };
    poll(
        "the first dry run to connect",
        Duration::from_secs(10),
        || {
            let accepted = accepted.clone();
            async move {
                let count = accepted.load(Ordering::SeqCst);
                (count > 0)
                    .then_some(())
                    .ok_or(format!("{count} connections"))
            }
        },
    )
    .await;
    // ...so a second is refused at once.
    let refused = server
        .client
        .post(server.url("/api/v1/sources:validate"))
        .json(&consul_doc("second", "http://127.0.0.1:1"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    let retry_after = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(retry_after, "3", "the timeout");
    let body: Value = refused.json().await.unwrap();
    assert_problem(
        "a second dry run",
        &(reqwest::StatusCode::TOO_MANY_REQUESTS, body),
        429,
        "validate_busy",
        None,
    );

    let (status, report) = first.await.unwrap();
    let took = started.elapsed();
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["reachable"], false, "{report}");
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(10),
        "gave up after {took:?}, not the 3s configured: {report}"
    );

    // The slot is free again; a remote error page comes back as one short, clean line.
    let page = format!("\u{1b}[2J<html>\r\n{}</html>", "A".repeat(100_000));
    let noisy = consul_doc("noisy", &failing(page).await);
    let (status, report) = post(&server, "/api/v1/sources:validate", &noisy).await;
    assert_eq!(status, 200, "{report}");
    let message = report["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("500"), "{report}");
    assert!(
        message.contains("<html>"),
        "the excerpt starts the page: {message}"
    );
    assert!(message.chars().count() <= 400, "{} chars", message.len());
    assert!(!message.chars().any(char::is_control), "{message:?}");
}
