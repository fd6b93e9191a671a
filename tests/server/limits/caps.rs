//! The server-wide caps, and connections refused beyond those being answered.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::raw::{address, ask, connect_from, get, parked, refusal, refusals};
use crate::support::{poll, test_config, wait_until, TestServer, DEADLINE};

#[tokio::test]
async fn beyond_the_server_wide_watch_cap_clients_get_503_watch_capacity() {
    const FIRST: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
    const SECOND: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 4);
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.api.max_watches = 4;
    config.api.max_watches_per_client = 3;
    let server = TestServer::start(config).await;
    server
        .register(json!({"service": "orders", "address": "10.0.0.1:80"}))
        .await;
    let index = server.index_of("orders").await;
    let at = address(&server);
    let blocking = format!("/api/v1/services/orders/instances?index={index}&wait=60s");
    let stream = "/api/v1/watch?service=orders";

    // The first client takes its whole share: three blocking queries.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from(FIRST, at).await.unwrap());
        held.last_mut()
            .unwrap()
            .write_all(&get(&blocking, false))
            .await
            .unwrap();
    }
    wait_until("three blocking queries to park", DEADLINE, || async {
        (parked(&server).await >= 3.0).then_some(())
    })
    .await;
    // The second takes the last slot with a stream.
    let (open, head) = ask(SECOND, at, stream, true).await;
    assert_eq!(head.status, 200);
    held.push(open);

    // Now the server is full: the second client, below its own share, gets 503, for a
    // stream as for a blocking query; the first, at its share, still gets 429.
    for path in [stream, blocking.as_str()] {
        let (mut refused, head) = ask(SECOND, at, path, true).await;
        let code = refusal(&mut refused, head, 503).await;
        assert_eq!(code.as_deref(), Ok("watch_capacity"), "{path}");
    }
    let (mut refused, head) = ask(FIRST, at, stream, true).await;
    let code = refusal(&mut refused, head, 429).await;
    assert_eq!(code.as_deref(), Ok("too_many_watches"));
    // A blocking query that need not wait (its index is behind the service's) is
    // answered at once, even from a client at its share on a full server.
    let (_, head) = ask(
        FIRST,
        at,
        "/api/v1/services/orders/instances?index=1&wait=60s",
        true,
    )
    .await;
    assert_eq!(head.status, 200);
    // A client with none parked is refused as well, through an ordinary HTTP client.
    let response = server
        .client
        .get(server.url(&format!("{blocking}&wait=1s")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "watch_capacity");
    // Reads that do not park are not limited.
    let (status, instances) = server.get_json("/api/v1/services/orders/instances").await;
    assert_eq!(
        (status.as_u16(), instances.as_array().map(Vec::len)),
        (200, Some(1))
    );

    assert_eq!(refusals(&server, "watches", "total").await, 3.0);
    assert_eq!(refusals(&server, "watches", "client").await, 1.0);
    assert_eq!(parked(&server).await, 4.0);
}

#[tokio::test]
async fn beyond_the_server_wide_connection_cap_clients_get_503_connection_capacity() {
    const FIRST: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 5);
    const SECOND: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 6);
    const PER_CLIENT: usize = 3;
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    // Room for the first client's share and the test's own HTTP client (its idle
    // pooled connection counts too), and little more.
    config.api.max_connections = 5;
    config.api.max_connections_per_client = PER_CLIENT;
    let server = TestServer::start(config).await;
    let at = address(&server);

    /// Opens connections from `from`, each answered on `/ready`, until one is refused;
    /// returns those held and the refusal's status and code.
    async fn fill(from: Ipv4Addr, at: SocketAddr) -> (Vec<TcpStream>, u16, String) {
        let mut held = Vec::new();
        loop {
            assert!(held.len() <= 10, "no connection refused");
            let (mut stream, head) = ask(from, at, "/ready", false).await;
            if head.status == 200 {
                held.push(stream);
                continue;
            }
            let status = head.status;
            let code = refusal(&mut stream, head, status).await.unwrap();
            return (held, status, code);
        }
    }
    let (first, status, code) = fill(FIRST, at).await;
    assert_eq!(
        (first.len(), status, code.as_str()),
        (PER_CLIENT, 429, "too_many_connections")
    );
    // The second client holds fewer than its share when it is refused: the server-wide
    // cap is what it met.
    let (second, status, code) = fill(SECOND, at).await;
    assert!(second.len() < PER_CLIENT, "{} held", second.len());
    assert_eq!((status, code.as_str()), (503, "connection_capacity"));

    drop((first, second));
    poll("refusals to be counted", DEADLINE, || async {
        let seen = (
            refusals(&server, "connections", "client").await,
            refusals(&server, "connections", "total").await,
        );
        (seen == (1.0, 1.0))
            .then_some(())
            .ok_or(format!("{seen:?}"))
    })
    .await;
}

#[tokio::test]
async fn refused_connections_beyond_those_being_answered_are_closed_at_once() {
    const FLOODER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 8);
    // More than the server answers at once (128), few enough for a 1024 `ulimit -n`.
    const SILENT: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.api.max_connections_per_client = 1;
    let server = TestServer::start(config).await;
    let at = address(&server);
    let (_held, head) = ask(FLOODER, at, "/ready", false).await;
    assert_eq!(head.status, 200);

    // Refused connections that never send a request: the server holds those it is
    // answering for up to a second, waiting for one, and closes the rest at once.
    let mut silent = Vec::new();
    for _ in 0..SILENT {
        silent.push((Instant::now(), connect_from(FLOODER, at).await.unwrap()));
    }
    let closings = silent
        .into_iter()
        .map(|(connected, mut stream)| async move {
            let mut sink = Vec::new();
            tokio::time::timeout(DEADLINE, stream.read_to_end(&mut sink))
                .await
                .expect("the server closes a refused connection")
                .ok();
            (connected.elapsed(), sink.len())
        });
    let closed = futures::future::join_all(closings).await;
    let at_once = closed
        .iter()
        .filter(|(took, _)| *took < Duration::from_millis(900))
        .count();
    assert!(
        at_once >= SILENT - 128,
        "only {at_once} of {SILENT} closed before the grace"
    );
    assert!(
        closed.iter().all(|(_, sent)| *sent == 0),
        "a client that asked nothing was sent something"
    );
    assert_eq!(
        refusals(&server, "connections", "client").await,
        SILENT as f64
    );

    // Once they are gone, a refused connection that asks gets its answer again.
    let (mut refused, head) = ask(FLOODER, at, "/ready", true).await;
    let code = refusal(&mut refused, head, 429).await;
    assert_eq!(code.as_deref(), Ok("too_many_connections"));
}
