//! A flood from one client address: thousands of blocking queries and SSE streams, the
//! admitted ones held, the refused ones checked and closed at once.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchboard::config::Config;
use tokio::io::AsyncWriteExt;
use tokio::sync::{watch, Semaphore};

use super::raw::{address, ask, connect_from, get, parked, read_head, refusal, refusals};
use crate::support::{
    index_header, metric_in, metrics_text, poll, test_config, wait_until, TestServer, DEADLINE,
};

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
            // A reading every 20 ms: the sampling rate, not a wait for anything.
            let mut sampling = tokio::time::interval(Duration::from_millis(20));
            while !*over.borrow() {
                sampling.tick().await;
                // Both gauges from one reading, so their sum is one moment's.
                let text = metrics_text(&client, &base).await;
                let now = metric_in(&text, "switchboard_blocking_queries_waiting")
                    + metric_in(&text, "switchboard_watch_streams_open");
                most_parked.fetch_max(now as usize, Ordering::SeqCst);
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
