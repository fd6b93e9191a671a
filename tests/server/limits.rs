//! Resource limits, through real sockets: a flood from one client address stays within
//! its share while other clients read normally, the server-wide caps answer 503, idle
//! and half-sent connections are closed after `api.idle_timeout`, and parked slots are
//! given back when their clients go.
//!
//! The flooding client binds its sockets to another loopback address (Linux routes all
//! of 127/8 on `lo`), because the limits are counted per client address.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchboard::config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{watch, Semaphore};

use crate::support::{index_header, poll, test_config, wait_until, TestServer, DEADLINE};

/// A TCP connection to the server from `from`, as a client on that address would make.
async fn connect_from(from: Ipv4Addr, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((from, 0)))?;
    socket.connect(server).await
}

fn address(server: &TestServer) -> SocketAddr {
    server
        .base
        .strip_prefix("http://")
        .unwrap()
        .parse()
        .unwrap()
}

/// A GET request head. `Connection: close` makes the server close first once it has
/// answered, so the TIME_WAIT of thousands of short connections stays on the server's
/// side instead of using up the flooding address's ports.
fn get(path: &str, close: bool) -> Vec<u8> {
    let connection = if close { "Connection: close\r\n" } else { "" };
    format!("GET {path} HTTP/1.1\r\nHost: switchboard\r\n{connection}\r\n").into_bytes()
}

/// A response head, with the body bytes read along with it.
struct Head {
    status: u16,
    headers: Vec<(String, String)>,
    rest: Vec<u8>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Reads a response head; `None` when the server closes before sending one.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<Head>> {
    let mut buffer = Vec::with_capacity(1024);
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&buffer[..end]).into_owned();
            let mut lines = text.split("\r\n");
            let status = lines
                .next()
                .and_then(|line| line.split(' ').nth(1))
                .and_then(|code| code.parse().ok())
                .unwrap_or(0);
            let headers = lines
                .filter_map(|line| line.split_once(':'))
                .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
                .collect();
            let rest = buffer[end + 4..].to_vec();
            return Ok(Some(Head {
                status,
                headers,
                rest,
            }));
        }
        if stream.read_buf(&mut buffer).await? == 0 {
            return Ok(None);
        }
    }
}

/// Checks a refusal as a client sees it: `status`, a `Retry-After` in seconds, a
/// problem document, and the connection closed after it. Returns the problem's `code`.
async fn refusal(stream: &mut TcpStream, head: Head, status: u16) -> Result<String, String> {
    if head.status != status {
        return Err(format!(
            "status {} where {status} was expected",
            head.status
        ));
    }
    let retry = head.header("retry-after").unwrap_or_default();
    if retry.parse::<u64>().map_or(true, |seconds| seconds == 0) {
        return Err(format!("Retry-After is {retry:?}"));
    }
    let kind = head.header("content-type").unwrap_or_default();
    if !kind.starts_with("application/problem+json") {
        return Err(format!("content type {kind:?}"));
    }
    let mut body = head.rest;
    // Read to the end: the refused connection (or the one asked to close) must be
    // closed by the server, not left open.
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut body))
        .await
        .map_err(|_| "the connection stayed open after the refusal".to_owned())?
        .map_err(|err| format!("reading the refusal: {err}"))?;
    let problem: Value = serde_json::from_slice(&body)
        .map_err(|err| format!("{err}: {}", String::from_utf8_lossy(&body)))?;
    if problem["status"] != status {
        return Err(format!("problem status in {problem}"));
    }
    Ok(problem["code"].as_str().unwrap_or_default().to_owned())
}

/// `switchboard_limit_refusals_total` for one limit and scope.
async fn refusals(server: &TestServer, limit: &str, scope: &str) -> f64 {
    let name = format!("switchboard_limit_refusals_total{{limit=\"{limit}\",scope=\"{scope}\"}}");
    server.metric(&name).await
}

/// Parked watches of all clients: blocking queries waiting and SSE streams open.
async fn parked(server: &TestServer) -> f64 {
    server.metric("switchboard_blocking_queries_waiting").await
        + server.metric("switchboard_watch_streams_open").await
}

/// How one flood request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Outcome {
    TooManyWatches,
    TooManyConnections,
    /// Admitted and held until the flood was over: an SSE stream (its 200 came) or a
    /// blocking query (no answer came).
    Parked,
}

/// Tallies of a flood, shared by its requests.
#[derive(Default)]
struct Tally {
    /// Requests sent so far.
    sent: AtomicUsize,
    /// Requests sent and neither refused, failed nor (for streams) answered yet.
    unresolved: AtomicUsize,
    /// SSE streams whose 200 came and that are held open.
    streams: AtomicUsize,
    too_many_watches: AtomicUsize,
    too_many_connections: AtomicUsize,
    failed: AtomicUsize,
    /// The first failure, to say what went wrong.
    first_failure: std::sync::Mutex<Option<String>>,
}

/// One flood request from `from`: connects, asks `path`, and either checks the refusal
/// and closes at once, or holds what parked until `over`.
async fn flood_one(
    from: Ipv4Addr,
    server: SocketAddr,
    path: &str,
    tally: &Tally,
    mut over: watch::Receiver<bool>,
) -> Result<Outcome, String> {
    let mut stream = connect_from(from, server)
        .await
        .map_err(|err| format!("connect: {err}"))?;
    stream
        .write_all(&get(path, true))
        .await
        .map_err(|err| format!("send: {err}"))?;
    let head = tokio::select! {
        head = read_head(&mut stream) => head.map_err(|err| format!("read: {err}"))?,
        // No answer: a blocking query, parked until the end.
        _ = over.wait_for(|over| *over) => return Ok(Outcome::Parked),
    };
    let head = head.ok_or("closed without an answer")?;
    if head.status == 200 && path.starts_with("/api/v1/watch") {
        tally.streams.fetch_add(1, Ordering::SeqCst);
        tally.unresolved.fetch_sub(1, Ordering::SeqCst);
        let _ = over.wait_for(|over| *over).await;
        return Ok(Outcome::Parked);
    }
    let code = refusal(&mut stream, head, 429).await?;
    let outcome = match code.as_str() {
        "too_many_watches" => {
            tally.too_many_watches.fetch_add(1, Ordering::SeqCst);
            Outcome::TooManyWatches
        }
        "too_many_connections" => {
            tally.too_many_connections.fetch_add(1, Ordering::SeqCst);
            Outcome::TooManyConnections
        }
        other => return Err(format!("refused with code {other:?}")),
    };
    tally.unresolved.fetch_sub(1, Ordering::SeqCst);
    Ok(outcome)
}

/// A flood from one client address: `total` requests, alternately blocking queries on
/// `service` at `index` (its current one) and SSE streams on it, at most `concurrency`
/// open at once.
struct Flood {
    from: Ipv4Addr,
    server: SocketAddr,
    service: &'static str,
    index: u64,
    total: usize,
    concurrency: usize,
}

impl Flood {
    /// Sends the flood; what is admitted is held until `over` turns true. The task ends
    /// with every request's outcome once all have ended.
    fn start(
        self,
        tally: Arc<Tally>,
        over: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<Vec<Result<Outcome, String>>> {
        let paths = [
            format!(
                "/api/v1/services/{}/instances?index={}&wait=60s",
                self.service, self.index
            ),
            format!("/api/v1/watch?service={}", self.service),
        ];
        tokio::spawn(async move {
            let permits = Arc::new(Semaphore::new(self.concurrency));
            let mut tasks = tokio::task::JoinSet::new();
            let mut results = Vec::with_capacity(self.total);
            for i in 0..self.total {
                let permit = permits.clone().acquire_owned().await.unwrap();
                tally.unresolved.fetch_add(1, Ordering::SeqCst);
                tally.sent.fetch_add(1, Ordering::SeqCst);
                let (tally, over, path) = (tally.clone(), over.clone(), paths[i % 2].clone());
                tasks.spawn(async move {
                    let outcome = flood_one(self.from, self.server, &path, &tally, over).await;
                    if let Err(err) = &outcome {
                        tally
                            .first_failure
                            .lock()
                            .unwrap()
                            .get_or_insert(err.clone());
                        tally.failed.fetch_add(1, Ordering::SeqCst);
                        tally.unresolved.fetch_sub(1, Ordering::SeqCst);
                    }
                    drop(permit);
                    outcome
                });
                // Collect finished tasks as we go, so the set stays small.
                while let Some(done) = tasks.try_join_next() {
                    results.push(done.unwrap_or_else(|err| Err(format!("task: {err}"))));
                }
            }
            while let Some(done) = tasks.join_next().await {
                results.push(done.unwrap_or_else(|err| Err(format!("task: {err}"))));
            }
            results
        })
    }
}

/// Waits until every one of the flood's `total` requests was sent and is refused,
/// failed or parked (the unanswered ones left are the parked blocking queries).
async fn settled(server: &TestServer, tally: &Tally, total: usize) {
    poll(
        "every flood request to be refused or parked",
        DEADLINE * 3,
        || async {
            let blocking = server.metric("switchboard_blocking_queries_waiting").await;
            let streams = tally.streams.load(Ordering::SeqCst);
            let unresolved = tally.unresolved.load(Ordering::SeqCst);
            let failed = tally.failed.load(Ordering::SeqCst);
            let first_failure = tally.first_failure.lock().unwrap().clone();
            let sent = tally.sent.load(Ordering::SeqCst);
            if sent == total && unresolved as f64 == blocking {
                Ok(())
            } else {
                Err(format!(
                    "sent {sent}, {unresolved} unanswered, {blocking} blocking queries parked, \
                 {streams} streams, {failed} failed (first: {first_failure:?})"
                ))
            }
        },
    )
    .await;
}

fn limits_config(dir: &std::path::Path) -> Config {
    let mut config = test_config(dir);
    config.api.max_watches_per_client = 50;
    config.api.max_watches = 200;
    config.api.max_connections_per_client = 150;
    config.api.max_connections = 1000;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_client_leaves_other_clients_reads_normal() {
    const FLOODER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
    const REQUESTS: usize = 20_000;
    // Above the flooder's connection share (150), so it meets that limit as well as the
    // watch limit; a few hundred sockets on each side, well under a 1024 `ulimit -n`.
    const CONCURRENCY: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(limits_config(dir.path())).await;
    let orders = server
        .register(json!({"service": "orders", "address": "10.0.0.1:80"}))
        .await;
    let payments = server
        .register(json!({"service": "payments", "address": "10.0.1.1:443"}))
        .await;
    let index = server.index_of("orders").await;

    let tally = Arc::new(Tally::default());
    let (end_flood, over) = watch::channel(false);
    let started = Instant::now();
    let flooding = Flood {
        from: FLOODER,
        server: address(&server),
        service: "orders",
        index,
        total: REQUESTS,
        concurrency: CONCURRENCY,
    }
    .start(tally.clone(), over.clone());

    // The most parked at any time, sampled all along (the flood's share, plus the one
    // blocking query the other client parks).
    let most_parked = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (base, most_parked, over) = (server.base.clone(), most_parked.clone(), over.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            while !*over.borrow() {
                let text = client
                    .get(format!("{base}/metrics"))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                let gauge = |name: &str| -> usize {
                    text.lines()
                        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
                        .unwrap_or(0)
                };
                let now = gauge("switchboard_blocking_queries_waiting")
                    + gauge("switchboard_watch_streams_open");
                most_parked.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    // The flood fills its share first, so what follows happens while it is refused.
    wait_until("the flood to hold its 50 watches", DEADLINE, || async {
        (parked(&server).await >= 50.0).then_some(())
    })
    .await;

    // Meanwhile, 127.0.0.1 parks a blocking query on another service and gets its
    // answer after a change.
    let payments_index = server.index_of("payments").await;
    let blocked = {
        let client = server.client.clone();
        let url = server.url(&format!(
            "/api/v1/services/payments/instances?index={payments_index}&wait=60s"
        ));
        tokio::spawn(async move { client.get(url).send().await.unwrap() })
    };
    wait_until("127.0.0.1's blocking query to park", DEADLINE, || async {
        (parked(&server).await >= 51.0).then_some(())
    })
    .await;
    let second = server
        .register(json!({"service": "payments", "address": "10.0.1.2:443"}))
        .await;
    let answer = tokio::time::timeout(DEADLINE, blocked)
        .await
        .expect("the blocking query answers after the change")
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert!(index_header(&answer) > payments_index);
    let body: Value = answer.json().await.unwrap();
    let mut ids: Vec<&str> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|instance| instance["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let mut expected = vec![
        payments["id"].as_str().unwrap(),
        second["id"].as_str().unwrap(),
    ];
    expected.sort_unstable();
    assert_eq!(ids, expected);

    // And reads the listing and the flooded service's instances, again and again while
    // the flood lasts, each answered in full and promptly.
    let mut reads = 0;
    let mut slowest = Duration::ZERO;
    while tally.sent.load(Ordering::SeqCst) < REQUESTS || reads == 0 {
        let asked = Instant::now();
        let (status, listing) = server.get_json("/api/v1/services").await;
        assert_eq!(status, 200, "{listing}");
        let names: Vec<&str> = listing
            .as_array()
            .unwrap()
            .iter()
            .map(|service| service["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["orders", "payments"], "{listing}");
        let (status, instances) = server.get_json("/api/v1/services/orders/instances").await;
        assert_eq!(status, 200, "{instances}");
        assert_eq!(instances.as_array().unwrap().len(), 1, "{instances}");
        assert_eq!(instances[0]["id"], orders["id"]);
        slowest = slowest.max(asked.elapsed());
        reads += 1;
    }
    // Generous for a loaded machine, but far from what a starved client would see.
    assert!(slowest < Duration::from_secs(2), "a read took {slowest:?}");

    // Once every request has been answered or parked, the server counted each refusal
    // the flooder saw, and held no more watches for it than its share.
    settled(&server, &tally, REQUESTS).await;
    let watches = tally.too_many_watches.load(Ordering::SeqCst);
    let connections = tally.too_many_connections.load(Ordering::SeqCst);
    assert!(watches > 0 && connections > 0, "{watches} {connections}");
    assert_eq!(refusals(&server, "watches", "client").await, watches as f64);
    assert_eq!(
        refusals(&server, "connections", "client").await,
        connections as f64
    );
    assert_eq!(refusals(&server, "watches", "total").await, 0.0);
    assert_eq!(refusals(&server, "connections", "total").await, 0.0);
    assert_eq!(parked(&server).await, 50.0);

    end_flood.send(true).unwrap();
    sampler.await.unwrap();
    let results = flooding.await.unwrap();
    let elapsed = started.elapsed();
    let errors: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        errors.is_empty(),
        "{} failed, e.g. {:?}",
        errors.len(),
        &errors[..1]
    );
    let held = results
        .iter()
        .filter(|r| **r == Ok(Outcome::Parked))
        .count();
    assert_eq!(results.len(), REQUESTS);
    assert_eq!(held, 50, "the flooder held more or less than its share");
    assert_eq!(watches + connections + held, REQUESTS);
    let most = most_parked.load(Ordering::SeqCst);
    assert!(
        (50..=51).contains(&most),
        "{most} watches were parked at once"
    );
    println!(
        "{REQUESTS} requests in {elapsed:?}: {watches} too_many_watches, {connections} \
         too_many_connections, {held} held; {reads} reads from 127.0.0.1, slowest {slowest:?}"
    );
}

/// Asks `path` on a new connection from `from` and returns the connection with the
/// response head. With `close`, the server closes the connection once it has answered.
async fn ask(from: Ipv4Addr, server: SocketAddr, path: &str, close: bool) -> (TcpStream, Head) {
    let mut stream = connect_from(from, server).await.unwrap();
    stream.write_all(&get(path, close)).await.unwrap();
    let head = tokio::time::timeout(DEADLINE, read_head(&mut stream))
        .await
        .expect("an answer before the deadline")
        .unwrap()
        .expect("an answer, not a closed connection");
    (stream, head)
}

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
        tokio::time::sleep(IDLE * 9 / 10).await;
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
            for i in 0.. {
                tokio::time::sleep(Duration::from_millis(200)).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_slots_are_given_back_when_the_flooding_client_goes() {
    const FLOODER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 7);
    const REQUESTS: usize = 1_000;
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(limits_config(dir.path())).await;
    server
        .register(json!({"service": "orders", "address": "10.0.0.1:80"}))
        .await;
    let index = server.index_of("orders").await;
    let at = address(&server);

    let tally = Arc::new(Tally::default());
    let (end_flood, over) = watch::channel(false);
    let flooding = Flood {
        from: FLOODER,
        server: at,
        service: "orders",
        index,
        total: REQUESTS,
        concurrency: 100,
    }
    .start(tally.clone(), over);
    settled(&server, &tally, REQUESTS).await;
    assert_eq!(parked(&server).await, 50.0);
    assert!(server.metric("switchboard_blocking_queries_waiting").await > 0.0);
    assert!(server.metric("switchboard_watch_streams_open").await > 0.0);

    // The flooder goes away: every socket it held is closed.
    end_flood.send(true).unwrap();
    let results = flooding.await.unwrap();
    assert!(results.iter().all(Result::is_ok), "a flood request failed");
    poll("the parked slots to be given back", DEADLINE, || async {
        let seen = (
            server.metric("switchboard_blocking_queries_waiting").await,
            server.metric("switchboard_watch_streams_open").await,
            server.metric("switchboard_http_connections_open").await,
        );
        // The connections left are the test's own HTTP client's.
        (seen.0 == 0.0 && seen.1 == 0.0 && seen.2 < 5.0)
            .then_some(())
            .ok_or(format!("{seen:?}"))
    })
    .await;

    // Its whole share is its own again: 50 streams are admitted, the 51st is not.
    let mut streams = Vec::new();
    for _ in 0..50 {
        let (stream, head) = ask(FLOODER, at, "/api/v1/watch?service=orders", true).await;
        assert_eq!(head.status, 200);
        streams.push(stream);
    }
    let (mut refused, head) = ask(FLOODER, at, "/api/v1/watch?service=orders", true).await;
    let code = refusal(&mut refused, head, 429).await;
    assert_eq!(code.as_deref(), Ok("too_many_watches"));
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
