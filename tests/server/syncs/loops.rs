//! Two jobs copying Nacos -> Consul and Consul -> Nacos converge: each registry ends up
//! with every instance exactly once (originals plus one copy of each of the other's),
//! each job writes exactly one copy per original and nothing more, and the copies coming
//! back are counted as echoes. This holds also when Consul drops every service's `Meta`
//! (`strip_meta`), so the copies carry no `switchboard.*` mark back: the jobs' ledgers
//! alone must recognise them.

use std::collections::BTreeMap;

use consul_double::{ConsulDouble, Options};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::common::{consul_health, create_sync, nacos_hosts, str_of, sync_status};
use super::propagation::{assert_done, job, nacos_source, Done, PROPAGATION};
use crate::managed::harness::{consul_doc, consul_service, create, poll, RECONNECT};
use crate::sources::{
    instances, sorted_addresses, start_server, wait_addresses, wait_source_state,
};
use crate::support::rnacos::{Registration, RnacosServer};
use crate::support::TestServer;

const SERVICE: &str = "loop";
const TO_CONSUL: &str = "nacos-to-consul";
const TO_NACOS: &str = "consul-to-nacos";

/// Registered in Nacos directly.
const IN_NACOS: [&str; 3] = ["10.40.0.1", "10.40.0.2", "10.40.0.3"];
/// Registered in Consul directly.
const IN_CONSUL: [&str; 2] = ["10.40.1.1", "10.40.1.2"];
/// The instance added once both registries have converged.
const LATE: &str = "10.40.0.4";

/// How many entries each `host:port` has in a registry.
type Counts = BTreeMap<String, usize>;

fn count(addresses: impl Iterator<Item = String>) -> Counts {
    let mut counts = Counts::new();
    for address in addresses {
        *counts.entry(address).or_default() += 1;
    }
    counts
}

/// Entries of the loop service in rnacos, by `ip:port`.
async fn nacos_counts(nacos: &RnacosServer) -> Counts {
    let hosts = nacos_hosts(nacos, SERVICE).await;
    count(
        hosts
            .iter()
            .map(|h| format!("{}:{}", str_of(&h["ip"]), h["port"])),
    )
}

/// Registrations of the loop service in the Consul double, by `address:port`.
async fn consul_counts(consul: &ConsulDouble) -> Counts {
    let entries = consul_health(consul, SERVICE).await;
    let services = entries.iter().map(|e| &e["Service"]);
    count(services.map(|s| format!("{}:{}", str_of(&s["Address"]), s["Port"])))
}

/// Every address in `hosts`, each once.
fn once_each(hosts: &[&str]) -> Counts {
    count(hosts.iter().map(|host| format!("{host}:80")))
}

/// Waits (at most `deadline`) until both registries hold exactly `expected`: every
/// address once, nothing else. A timeout shows both jobs' status.
async fn wait_both_hold(
    server: &TestServer,
    nacos: &RnacosServer,
    consul: &ConsulDouble,
    hosts: &[&str],
    started: Instant,
    deadline: std::time::Duration,
) -> std::time::Duration {
    let expected = once_each(hosts);
    let what = format!("rnacos and Consul each to hold exactly {expected:?}");
    poll(&what, deadline, || async {
        let (in_nacos, in_consul) = (nacos_counts(nacos).await, consul_counts(consul).await);
        match in_nacos == expected && in_consul == expected {
            true => Ok(()),
            false => Err(format!(
                "rnacos {in_nacos:?}, Consul {in_consul:?}\njobs: {}\n      {}",
                sync_status(server, TO_CONSUL).await,
                sync_status(server, TO_NACOS).await
            )),
        }
    })
    .await;
    started.elapsed()
}

/// Waits until Switchboard serves exactly `hosts` (port 80) in the loop service, each
/// reported by both registries: every change the jobs react to has reached the catalog.
async fn wait_served_by_both(server: &TestServer, hosts: &[&str]) {
    let mut expected: Vec<String> = hosts.iter().map(|host| format!("{host}:80")).collect();
    expected.sort();
    let what = format!("{SERVICE} to be {expected:?}, each from both registries");
    poll(&what, RECONNECT, || async {
        let served = instances(server, SERVICE).await;
        let both = served.iter().all(|instance| {
            let mut sources: Vec<&str> = (instance["sources"].as_array().into_iter().flatten())
                .map(str_of)
                .collect();
            sources.sort_unstable();
            sources == ["consul-b", "nacos-a"]
        });
        match both && sorted_addresses(&served) == expected {
            true => Ok(()),
            false => Err(Value::Array(served).to_string()),
        }
    })
    .await;
}

/// Asserts job `id` is at rest having written `writes` copies, the ledger holding them,
/// and that its last pass (which saw every copy of the other job) counted exactly
/// `echoes` copies coming back and nothing foreign: a copy not known as an echo would
/// be wanted, and found in the target "from someone else".
async fn assert_settled(server: &TestServer, id: &str, writes: u64, echoes: u64) {
    let done = Done {
        writes,
        deletes: 0,
        synced: writes,
    };
    assert_done(server, id, done).await;
    let what = format!("job {id}'s last pass to count {echoes} echoes and nothing foreign");
    let status = poll(&what, PROPAGATION, || async {
        let status = sync_status(server, id).await;
        let settled =
            status["echoes"] == echoes && status["foreign"] == 0 && status["pending_services"] == 0;
        match settled {
            true => Ok(status),
            false => Err(status.to_string()),
        }
    })
    .await;
    assert_eq!(status["writes"], writes, "no write twice: {status}");
    assert_eq!(status["deletes_paused"], false, "{status}");
}

/// Nacos <-> Consul through two jobs; with `strips`, Consul drops every `Meta`.
async fn two_way_sync_converges(strips: bool) {
    let options = Options {
        strip_meta: strips,
        ..Options::default()
    };
    let consul = ConsulDouble::start_with(options).await;
    let nacos = RnacosServer::start().await;
    for ip in IN_NACOS {
        nacos.register(&Registration::new(SERVICE, ip, 80)).await;
    }
    for (i, ip) in IN_CONSUL.iter().enumerate() {
        let id = format!("b{i}");
        consul.register(consul_service(SERVICE, &id, ip, 80)).await;
    }
    let (server, _dir) = start_server("").await;
    create(&server, &nacos_source("nacos-a", &nacos)).await;
    create(&server, &consul_doc("consul-b", &consul.url())).await;
    wait_source_state(&server, "nacos-a", "ready").await;
    wait_source_state(&server, "consul-b", "ready").await;
    let originals: Vec<String> = (IN_NACOS.iter().chain(&IN_CONSUL))
        .map(|ip| format!("{ip}:80"))
        .collect();
    let originals: Vec<&str> = originals.iter().map(String::as_str).collect();
    wait_addresses(&server, SERVICE, &originals).await;

    let started = Instant::now();
    create_sync(&server, &job(TO_CONSUL, "nacos-a", "consul-b")).await;
    create_sync(&server, &job(TO_NACOS, "consul-b", "nacos-a")).await;
    let all: Vec<&str> = IN_NACOS.iter().chain(&IN_CONSUL).copied().collect();
    let converged = wait_both_hold(&server, &nacos, &consul, &all, started, RECONNECT).await;

    wait_served_by_both(&server, &all).await;
    // One write per original, none for a copy coming back.
    assert_settled(&server, TO_CONSUL, 3, 2).await;
    assert_settled(&server, TO_NACOS, 2, 3).await;

    // Each copy says where it came from; in Consul only unless it strips metadata.
    for host in nacos_hosts(&nacos, SERVICE).await {
        let origin = &host["metadata"]["switchboard.origin"];
        match IN_CONSUL.contains(&str_of(&host["ip"])) {
            true => assert_eq!(*origin, "consul-b", "{host}"),
            false => assert!(origin.is_null(), "an original: {host}"),
        }
    }
    for entry in consul_health(&consul, SERVICE).await {
        let meta = &entry["Service"]["Meta"];
        let copy = IN_NACOS.contains(&str_of(&entry["Service"]["Address"]));
        match (strips, copy) {
            (true, _) => assert_eq!(*meta, json!({}), "stripped: {entry}"),
            (false, true) => assert_eq!(meta["switchboard_origin"], "nacos-a", "{entry}"),
            (false, false) => assert!(meta["switchboard_origin"].is_null(), "{entry}"),
        }
    }

    // One more instance, in the same service: its pass plans every instance of the
    // service again, so a copy written twice would show in the counters now.
    let started = Instant::now();
    nacos.register(&Registration::new(SERVICE, LATE, 80)).await;
    let mut all = all;
    all.push(LATE);
    let late = wait_both_hold(&server, &nacos, &consul, &all, started, PROPAGATION).await;
    println!("two-way sync: converged {converged:?} after the jobs started; one more in {late:?}");
    wait_served_by_both(&server, &all).await;
    assert_settled(&server, TO_CONSUL, 4, 2).await;
    assert_settled(&server, TO_NACOS, 2, 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nacos_to_consul_and_back_converge_with_one_copy_each() {
    two_way_sync_converges(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_way_sync_converges_when_consul_strips_the_metadata() {
    two_way_sync_converges(true).await;
}
