//! `api.idle_timeout`: connections that send no complete request head are closed;
//! parked watches are requests in progress, not idle.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::raw::{address, connect_from, get, read_head};
use crate::support::{index_header, test_config, TestServer, DEADLINE};

#[tokio::test]
async fn connections_that_send_no_complete_request_head_are_closed_after_the_idle_timeout() {
    const IDLE: Duration = Duration::from_secs(1);
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.api.idle_timeout = IDLE;
    let server = TestServer::start(config).await;
    server
        .register(json!({"service": "orders", "address": "10.0.0.1:80"}))
        .await;
    let at = address(&server);
    let local = Ipv4Addr::LOCALHOST;

    /// Waits for the server to close `stream` (EOF or reset), reading whatever it sends.
    async fn closed(mut stream: TcpStream) {
        let mut sink = Vec::new();
        tokio::time::timeout(DEADLINE, stream.read_to_end(&mut sink))
            .await
            .expect("the server closes the connection")
            .ok();
    }
    // Each case measures from before its connection was made (or, for the idle
    // keep-alive connection, from when its answer was read).
    let silent = async {
        let started = Instant::now();
        let stream = connect_from(local, at).await.unwrap();
        closed(stream).await;
        started.elapsed()
    };
    let half_head = async {
        let started = Instant::now();
        let mut stream = connect_from(local, at).await.unwrap();
        stream
            .write_all(b"GET /ready HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        closed(stream).await;
        started.elapsed()
    };
    // A head begun late must still be complete by the deadline: the time runs from
    // the connection, not from its first byte.
    let late = async {
        let started = Instant::now();
        let mut stream = connect_from(local, at).await.unwrap();
        // The head begins at 0.9 of the timeout: a moment the test picks, not a wait.
        tokio::time::sleep_until((started + IDLE * 9 / 10).into()).await;
        stream.write_all(b"GET /ready HTTP/1.1\r\n").await.unwrap();
        closed(stream).await;
        started.elapsed()
    };
    // HTTP/2 (with prior knowledge) has no header timeout of its own: a client that
    // sends the preface and its settings, and then no request, is closed the same way.
    let http2 = async {
        let started = Instant::now();
        let mut stream = connect_from(local, at).await.unwrap();
        stream
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .unwrap();
        // An empty SETTINGS frame: length 0, type 4, no flags, stream 0.
        stream
            .write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0])
            .await
            .unwrap();
        closed(stream).await;
        started.elapsed()
    };
    // Sending a header line now and then does not keep a head that never ends alive.
    let trickle = async {
        let started = Instant::now();
        let mut stream = connect_from(local, at).await.unwrap();
        stream.write_all(b"GET /ready HTTP/1.1\r\n").await.unwrap();
        let (mut reader, mut writer) = stream.into_split();
        let dribble = async move {
            // One header line every 200 ms: the slow client's pace, not a wait.
            let mut pace = tokio::time::interval(Duration::from_millis(200));
            pace.tick().await;
            for i in 0.. {
                pace.tick().await;
                let line = format!("X-Slow-{i}: 1\r\n");
                if writer.write_all(line.as_bytes()).await.is_err() {
                    break;
                }
            }
        };
        let mut sink = Vec::new();
        tokio::select! {
            _ = dribble => {}
            read = tokio::time::timeout(DEADLINE, reader.read_to_end(&mut sink)) => {
                read.expect("the server closes the connection").ok();
            }
        }
        started.elapsed()
    };
    let kept_alive = async {
        let mut stream = connect_from(local, at).await.unwrap();
        stream.write_all(&get("/ready", false)).await.unwrap();
        let head = read_head(&mut stream).await.unwrap().unwrap();
        assert_eq!(head.status, 200);
        let answered = Instant::now();
        closed(stream).await;
        answered.elapsed()
    };
    // A parked blocking query is not idle: it is answered when its wait ends, after
    // the idle timeout.
    let index = server.index_of("orders").await;
    let parked_query = async {
        let started = Instant::now();
        let url = server.url(&format!(
            "/api/v1/services/orders/instances?index={index}&wait=2s"
        ));
        let response = server.client.get(url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        started.elapsed()
    };
    let (silent, half_head, late, http2, trickle, kept_alive, parked_query) = tokio::join!(
        silent,
        half_head,
        late,
        http2,
        trickle,
        kept_alive,
        parked_query
    );
    println!(
        "closed after: silent {silent:?}, half head {half_head:?}, late head {late:?}, http2 {http2:?}, \
         trickle {trickle:?}, keep-alive {kept_alive:?}; blocking query answered after \
         {parked_query:?}"
    );
    for (case, took) in [
        ("silent", silent),
        ("half a head", half_head),
        ("a head begun late", late),
        ("HTTP/2 with no request", http2),
        ("a head trickling in", trickle),
    ] {
        assert!(took >= IDLE, "{case}: closed after only {took:?}");
    }
    // Well before the first byte's time plus another timeout (1.9 s), which is when it
    // would close if the clock restarted at the first byte.
    assert!(
        late < IDLE * 17 / 10,
        "a head begun late: closed after {late:?}"
    );
    // The server may start the wait a moment before the client has read the answer.
    let early = IDLE - Duration::from_millis(100);
    assert!(
        kept_alive >= early,
        "idle keep-alive: closed after {kept_alive:?}"
    );
    assert!(
        parked_query >= Duration::from_secs(2),
        "answered after {parked_query:?}"
    );

    // An SSE stream is not idle either: it outlives the timeout and carries the next
    // change. (The blocking query's wait is the clock, so no fixed sleep.)
    let response = server
        .client
        .get(server.url("/api/v1/watch?service=orders"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut events = response.bytes_stream();
    let url = server.url(&format!(
        "/api/v1/services/orders/instances?index={index}&wait=2s"
    ));
    let waited = server.client.get(url).send().await.unwrap();
    assert_eq!(index_header(&waited), index, "nothing changed meanwhile");
    let second = server
        .register(json!({"service": "orders", "address": "10.0.0.2:80"}))
        .await;
    let id = second["id"].as_str().unwrap();
    let mut seen = String::new();
    while !seen.contains(id) {
        use futures::StreamExt;
        let chunk = tokio::time::timeout(DEADLINE, events.next())
            .await
            .expect("the change before the deadline")
            .expect("the stream stays open past the idle timeout")
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn a_connection_that_never_spoke_does_not_hold_up_a_stop() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path());
    // The default idle timeout (30s): a stop must not wait for it.
    let server = TestServer::start(config).await;
    let silent = TcpStream::connect(address(&server)).await.unwrap();
    let started = Instant::now();
    tokio::time::timeout(DEADLINE, server.stop())
        .await
        .expect("the stop finishes well before the idle timeout");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    drop(silent);
}
