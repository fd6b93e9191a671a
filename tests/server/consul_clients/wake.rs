//! A Consul blocking query parked on `/v1/health/service/web` answers right after a change
//! from any source: an etcd write, a Nacos registration, a native registration. The query
//! is py-consul's (`py_consul_wake.py`, `wait=60s`); the test makes each change once the
//! query is parked, so an answer within seconds is a wake, not the wait running out.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{ChildStdin, ChildStdout};
use tokio::time::Instant;

use super::harness::{Door, Switchboard, SLOW};
use crate::support::etcd::EtcdServer;
use crate::support::rnacos::{Registration, RnacosServer};
use crate::support::{metric, poll};

/// How soon after a change the parked query must answer (its wait is 60 s): etcd's watch
/// and rnacos's push (batched for about 0.5 s) included.
const WOKE: Duration = Duration::from_secs(5);

/// How long the test looks for the server to count the query parked before it makes the
/// change anyway (then the answer may come without parking, which proves less).
const PARK_SEEN: Duration = Duration::from_secs(5);

/// The py-consul reader, one round per line.
struct Waiter {
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    _child: tokio::process::Child,
}

impl Waiter {
    /// Asks the reader to park until `address` is listed; returns its first answer.
    async fn park(&mut self, address: &str) -> Value {
        let line = format!("web {address}\n");
        self.stdin.write_all(line.as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
        self.next(SLOW).await
    }

    /// The reader's next line, within `deadline`.
    async fn next(&mut self, deadline: Duration) -> Value {
        let line = tokio::time::timeout(deadline, self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("py_consul_wake.py said nothing for {deadline:?}"))
            .expect("read py_consul_wake.py's output")
            .expect("py_consul_wake.py exited");
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"))
    }
}

/// Parks the reader on `address`, makes `change` once the server counts the query
/// parked, and asserts the query answers with `address` within [`WOKE`] of it.
async fn wakes_on(
    switchboard: &Switchboard,
    waiter: &mut Waiter,
    what: &str,
    address: &str,
    change: impl std::future::Future<Output = ()>,
) {
    let parked = waiter.park(address).await;
    assert!(parked["parked"].is_string(), "{what}: {parked}");
    // The gauge is the server's own word that the query waits: the change comes only
    // once it says so, or the answer would prove nothing.
    crate::support::wait_until(&format!("{what}: the query to park"), PARK_SEEN, || async {
        let waiting = metric(
            &switchboard.http,
            switchboard.base(),
            "switchboard_blocking_queries_waiting",
        )
        .await;
        (waiting >= 1.0).then_some(())
    })
    .await;
    let changed = Instant::now();
    change.await;
    let found = waiter.next(SLOW).await;
    let took = changed.elapsed();
    println!("{what}: answered {took:?} after the change: {found}");
    assert_eq!(found["found"], address, "{what}: {found}");
    assert!(
        took <= WOKE,
        "{what}: the parked query answered {took:?} after the change, over {WOKE:?}: {found}"
    );
    let last = found["queries"].as_array().and_then(|q| q.last()).cloned();
    let last_took = last.as_ref().and_then(|q| q["seconds"].as_f64());
    assert!(
        last_took.is_some_and(|seconds| seconds < 30.0),
        "{what}: the answering query did not wake before its 60s wait: {found}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_health_query_wakes_on_an_etcd_write_a_nacos_registration_and_a_native_one() {
    let etcd = EtcdServer::start().await;
    let nacos = RnacosServer::start().await;
    // Both sources know `web` before the query parks, so each change is a push into a
    // service the source already follows.
    etcd.put("/sb/web/e1", "192.0.2.71:80").await;
    nacos
        .register(&Registration::new("web", "192.0.2.81", 80))
        .await;
    let sources = format!(
        "[[sources]]\nid = \"etcd-main\"\ntype = \"etcd\"\nendpoints = [{:?}]\nprefix = \"/sb/\"\n\n\
         [[sources]]\nid = \"nacos-main\"\ntype = \"nacos\"\nendpoints = [{:?}]\n",
        etcd.endpoint(),
        nacos.endpoint()
    );
    let switchboard = Switchboard::start(&sources, &[], Door::OwnListener).await;
    switchboard.wait_source_ready("etcd-main").await;
    switchboard.wait_source_ready("nacos-main").await;
    poll(
        "web from etcd and Nacos on /v1/health/service/web",
        SLOW,
        || async {
            let (status, entries) = switchboard.consul_get("/v1/health/service/web").await;
            let found = addresses(&entries);
            let both = ["192.0.2.71:80", "192.0.2.81:80"];
            (status == 200 && both.iter().all(|a| found.contains(&(*a).to_owned())))
                .then_some(())
                .ok_or_else(|| format!("{status} {found:?}"))
        },
    )
    .await;

    let mut child = switchboard
        .python("py_consul_wake.py")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start py_consul_wake.py");
    let mut waiter = Waiter {
        stdin: child.stdin.take().unwrap(),
        lines: BufReader::new(child.stdout.take().unwrap()).lines(),
        _child: child,
    };

    wakes_on(
        &switchboard,
        &mut waiter,
        "etcd write",
        "192.0.2.72:80",
        async {
            etcd.put("/sb/web/e2", "192.0.2.72:80").await;
        },
    )
    .await;
    wakes_on(
        &switchboard,
        &mut waiter,
        "Nacos registration",
        "192.0.2.82:80",
        async {
            nacos
                .register(&Registration::new("web", "192.0.2.82", 80))
                .await;
        },
    )
    .await;
    wakes_on(
        &switchboard,
        &mut waiter,
        "native registration",
        "192.0.2.91:80",
        async {
            let body = json!({"id": "web-n1", "service": "web", "host": "192.0.2.91", "port": 80,
                          "ttl_seconds": 86400});
            switchboard.register(body).await;
        },
    )
    .await;
}

/// The sorted `Service.Address:Service.Port` of a `/v1/health/service` answer.
fn addresses(entries: &Value) -> Vec<String> {
    let mut found: Vec<String> = (entries.as_array().map(Vec::as_slice).unwrap_or_default())
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["Service"]["Address"].as_str().unwrap_or("?"),
                e["Service"]["Port"]
            )
        })
        .collect();
    found.sort();
    found
}
