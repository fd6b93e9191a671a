//! A sync job's adds, updates and deletes reach its target within 2 s: etcd -> Nacos,
//! Nacos -> Consul, and etcd -> the native registry, each read in the target itself (the
//! copy carries `switchboard.origin` and `switchboard.sync`), and the job's counters say
//! exactly what it did. Native copies never expire, however short the registry's TTL.
//!
//! Every origin service keeps one untouched instance (the anchor): removing the last
//! instance of a service is an emptying the wipe-out guard holds for `empty_confirm`,
//! which is not what these tests time.

use std::time::Duration;

use consul_double::ConsulDouble;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::common::{
    at_rest, consul_health, create_sync, nacos_hosts, str_of, sync_status, wait_sync,
};
use crate::managed::harness::{
    consul_doc, create, etcd_doc, explain, nacos_doc, poll, with, RECONNECT,
};
use crate::sources::{instances, start_server, wait_source_state};
use crate::support::etcd::EtcdServer;
use crate::support::rnacos::{Registration, RnacosServer};
use crate::support::{test_config, TestServer, DEADLINE};

/// How long a change may take from the origin to the target (the contract).
pub(super) const PROPAGATION: Duration = Duration::from_secs(2);

/// The readable id of the copy of `service`'s instance at `host:port`:
/// `{service}-{host}-{port}` with anything but `[A-Za-z0-9._-]` as `_`.
pub(super) fn copy_id(service: &str, host: &str, port: u16) -> String {
    format!("{service}-{host}-{port}")
        .chars()
        .map(|c| match c.is_ascii_alphanumeric() || "._-".contains(c) {
            true => c,
            false => '_',
        })
        .collect()
}

/// Whether `id` names the copy of `service`'s instance at `host:port`: [`copy_id`], as
/// the contract has it, or that followed by `-` and 8 hex digits, as the implementation
/// now writes it (a hash of namespace, group, name and endpoint, so that copies of
/// equally named services in other groups differ).
pub(super) fn is_copy_id(id: &str, service: &str, host: &str, port: u16) -> bool {
    match id.strip_prefix(copy_id(service, host, port).as_str()) {
        Some(hash) => {
            hash.len() == 9
                && hash.starts_with('-')
                && hash[1..].bytes().all(|b| b.is_ascii_hexdigit())
        }
        None => false,
    }
}

/// A Nacos source that lists services every second (so a new service shows soon), with
/// the default placement of Nacos's `DEFAULT_GROUP` in Switchboard's `DEFAULT`, where
/// etcd and Consul services are: they meet as one service, and copies are written to
/// `DEFAULT_GROUP`.
pub(super) fn nacos_source(id: &str, nacos: &RnacosServer) -> Value {
    let extra = json!({ "service_refresh": "1s" });
    with(nacos_doc(id, &nacos.endpoint()), extra)
}

/// A job definition: copy `from` into `to`, quiet for 100 ms before writing.
pub(super) fn job(id: &str, from: &str, to: &str) -> Value {
    json!({ "id": id, "from": [from], "to": to, "debounce": "100ms" })
}

/// What a job has done, once at rest: its counters and the size of its ledger.
#[derive(Clone, Copy, Debug)]
pub(super) struct Done {
    pub writes: u64,
    pub deletes: u64,
    pub synced: u64,
}

/// Waits until job `id` has finished a pass with `done.synced` instances in its ledger,
/// made at least `done`'s writes and deletes, and has nothing pending; then asserts it
/// made exactly those, without errors, and returns the status. (The counters move
/// during a pass, `synced` and `last_run` at its end.)
pub(super) async fn assert_done(server: &TestServer, id: &str, done: Done) -> Value {
    let what = format!("to be at rest having done {done:?}");
    let status = wait_sync(server, id, &what, |status| {
        status["writes"].as_u64() >= Some(done.writes)
            && status["deletes"].as_u64() >= Some(done.deletes)
            && status["synced"] == done.synced
            && at_rest(status)
    })
    .await;
    assert_eq!(status["writes"], done.writes, "no write twice: {status}");
    assert_eq!(status["deletes"], done.deletes, "{status}");
    assert_eq!(status["errors"], 0, "{status}");
    assert_eq!(status["state"], "running", "{status}");
    assert!(status["last_error"].is_null(), "{status}");
    status
}

/// Where a change propagates: Switchboard, the job, and the service changed.
pub(super) type Watched<'a> = (&'a TestServer, &'a str, &'a str);

/// Polls `probe` for at most [`PROPAGATION`]; returns how long it took from `started`.
/// A timeout shows, besides what the probe saw, the job's status and what Switchboard
/// serves of the service.
pub(super) async fn propagated<T, F, Fut>(
    (server, job, service): Watched<'_>,
    what: &str,
    started: Instant,
    mut probe: F,
) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    poll(what, PROPAGATION, || {
        let attempt = probe();
        async move {
            let seen = match attempt.await {
                Ok(_) => return Ok(()),
                Err(seen) => seen,
            };
            let status = sync_status(server, job).await;
            let served = Value::Array(instances(server, service).await);
            Err(format!("{seen}\njob: {status}\nserved: {served}"))
        }
    })
    .await;
    started.elapsed()
}

/// The rnacos entry at `ip:port`, if it satisfies `check` (else why not).
async fn nacos_entry(
    nacos: &RnacosServer,
    service: &str,
    (ip, port): (&str, u16),
    check: impl Fn(&Value) -> bool,
) -> Result<Value, String> {
    let hosts = nacos_hosts(nacos, service).await;
    let found = hosts.iter().find(|h| h["ip"] == ip && h["port"] == port);
    match found {
        Some(entry) if check(entry) => Ok(entry.clone()),
        _ => Err(Value::Array(hosts).to_string()),
    }
}

/// The Consul health entry of `name` at `address:port`, if it satisfies `check`.
async fn consul_entry(
    consul: &ConsulDouble,
    name: &str,
    (address, port): (&str, u16),
    check: impl Fn(&Value) -> bool,
) -> Result<Value, String> {
    let entries = consul_health(consul, name).await;
    let found = (entries.iter())
        .find(|e| e["Service"]["Address"] == address && e["Service"]["Port"] == port);
    match found {
        Some(entry) if check(entry) => Ok(entry.clone()),
        _ => Err(Value::Array(entries).to_string()),
    }
}

/// The status of the TTL check Switchboard keeps on the copy in `entry`.
fn kept_alive_check(entry: &Value) -> Option<&str> {
    let check_id = format!("switchboard:{}", entry["Service"]["ID"].as_str()?);
    let checks = entry["Checks"].as_array()?;
    let check = checks.iter().find(|c| c["CheckID"] == check_id.as_str())?;
    check["Status"].as_str()
}

/// An etcd JSON value for an instance at `address` with `weight` and zone `zone`.
fn etcd_value(address: &str, weight: u32, zone: &str) -> String {
    json!({ "address": address, "weight": weight, "metadata": { "zone": zone } }).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_adds_updates_and_deletes_reach_nacos_within_two_seconds() {
    let etcd = EtcdServer::start().await;
    let nacos = RnacosServer::start().await;
    etcd.put("/e/web/anchor", &etcd_value("10.30.0.1:80", 100, "a"))
        .await;
    let (server, _dir) = start_server("").await;
    create(&server, &etcd_doc("etcd-a", &etcd.endpoint(), "/e/")).await;
    create(&server, &nacos_source("nacos-a", &nacos)).await;
    wait_source_state(&server, "etcd-a", "ready").await;
    wait_source_state(&server, "nacos-a", "ready").await;
    let job_id = "etcd-to-nacos";
    let watched = (&server, job_id, "web");
    create_sync(&server, &job(job_id, "etcd-a", "nacos-a")).await;
    poll("the anchor's copy in rnacos", RECONNECT, || {
        nacos_entry(&nacos, "web", ("10.30.0.1", 80), |_| true)
    })
    .await;

    let started = Instant::now();
    etcd.put("/e/web/w2", &etcd_value("10.30.0.2:8080", 100, "a"))
        .await;
    let added = propagated(watched, "the new instance in rnacos", started, || {
        nacos_entry(&nacos, "web", ("10.30.0.2", 8080), |_| true)
    })
    .await;
    let copy = nacos_entry(&nacos, "web", ("10.30.0.2", 8080), |_| true)
        .await
        .unwrap();
    let metadata = &copy["metadata"];
    assert_eq!(metadata["switchboard.origin"], "etcd-a", "{copy}");
    assert_eq!(metadata["switchboard.sync"], job_id, "{copy}");
    assert_eq!(metadata["zone"], "a", "{copy}");
    assert_eq!(
        copy["weight"], 1.0,
        "Switchboard's 100 is Nacos's 1.0: {copy}"
    );
    assert_eq!(copy["ephemeral"], false, "persistent: {copy}");
    assert_eq!(copy["healthy"], true, "{copy}");

    let started = Instant::now();
    etcd.put("/e/web/w2", &etcd_value("10.30.0.2:8080", 250, "b"))
        .await;
    let updated = propagated(watched, "the update in rnacos", started, || {
        nacos_entry(&nacos, "web", ("10.30.0.2", 8080), |h| {
            h["metadata"]["zone"] == "b" && h["weight"] == 2.5
        })
    })
    .await;

    let started = Instant::now();
    etcd.delete("/e/web/w2").await;
    let deleted = propagated(watched, "the delete in rnacos", started, || async {
        let hosts = nacos_hosts(&nacos, "web").await;
        let ips: Vec<&Value> = hosts.iter().map(|h| &h["ip"]).collect();
        match ips == [&json!("10.30.0.1")] {
            true => Ok(()),
            false => Err(Value::Array(hosts.clone()).to_string()),
        }
    })
    .await;
    println!("etcd -> Nacos: add {added:?}, update {updated:?}, delete {deleted:?}");

    // The anchor, the new instance and its update; one delete; the anchor is left.
    let done = Done {
        writes: 3,
        deletes: 1,
        synced: 1,
    };
    let status = assert_done(&server, job_id, done).await;
    assert_eq!(status["deletes_paused"], false, "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nacos_adds_updates_and_deletes_reach_consul_within_two_seconds() {
    let nacos = RnacosServer::start().await;
    let consul = ConsulDouble::start().await;
    nacos
        .register(&Registration::new("pay", "10.31.0.1", 80))
        .await;
    let (server, _dir) = start_server("").await;
    create(&server, &nacos_source("nacos-a", &nacos)).await;
    create(&server, &consul_doc("consul-b", &consul.url())).await;
    wait_source_state(&server, "nacos-a", "ready").await;
    wait_source_state(&server, "consul-b", "ready").await;
    let job_id = "nacos-to-consul";
    let watched = (&server, job_id, "pay");
    create_sync(&server, &job(job_id, "nacos-a", "consul-b")).await;
    poll("the anchor's copy in Consul", RECONNECT, || {
        consul_entry(&consul, "pay", ("10.31.0.1", 80), |_| true)
    })
    .await;

    let mut instance = Registration::new("pay", "10.31.0.2", 8080).meta("zone", "a");
    let started = Instant::now();
    nacos.register(&instance).await;
    let added = propagated(
        watched,
        "the new instance in Consul, passing",
        started,
        || {
            consul_entry(&consul, "pay", ("10.31.0.2", 8080), |e| {
                kept_alive_check(e) == Some("passing")
            })
        },
    )
    .await;
    let entry = consul_entry(&consul, "pay", ("10.31.0.2", 8080), |_| true)
        .await
        .unwrap();
    let service = &entry["Service"];
    let id = str_of(&service["ID"]);
    assert!(is_copy_id(id, "pay", "10.31.0.2", 8080), "{entry}");
    assert_eq!(service["Service"], "pay", "{entry}");
    // Consul's metadata keys allow no `.`: the writer spells them with `_`.
    assert_eq!(service["Meta"]["switchboard_origin"], "nacos-a", "{entry}");
    assert_eq!(service["Meta"]["switchboard_sync"], job_id, "{entry}");
    assert_eq!(service["Meta"]["zone"], "a", "{entry}");
    assert_eq!(service["Weights"]["Passing"], 1, "{entry}");

    instance.weight = 3.0;
    instance = instance.meta("zone", "b");
    let started = Instant::now();
    nacos.register(&instance).await;
    let updated = propagated(watched, "the update in Consul", started, || {
        consul_entry(&consul, "pay", ("10.31.0.2", 8080), |e| {
            e["Service"]["Meta"]["zone"] == "b"
                && e["Service"]["Weights"]["Passing"] == 3
                && kept_alive_check(e) == Some("passing")
        })
    })
    .await;

    let started = Instant::now();
    nacos.deregister(&instance).await;
    let deleted = propagated(watched, "the delete in Consul", started, || async {
        let entries = consul_health(&consul, "pay").await;
        let addresses: Vec<&Value> = entries.iter().map(|e| &e["Service"]["Address"]).collect();
        match addresses == [&json!("10.31.0.1")] {
            true => Ok(()),
            false => Err(Value::Array(entries.clone()).to_string()),
        }
    })
    .await;
    println!("Nacos -> Consul: add {added:?}, update {updated:?}, delete {deleted:?}");

    let done = Done {
        writes: 3,
        deletes: 1,
        synced: 1,
    };
    assert_done(&server, job_id, done).await;
}

/// `GET /api/v1/instances/{id}`: the native instance, or the status when there is none.
async fn native(server: &TestServer, id: &str) -> Result<Value, String> {
    let (status, body) = server.get_json(&format!("/api/v1/instances/{id}")).await;
    match status.as_u16() {
        200 => Ok(body),
        _ => Err(format!("{status}: {body}")),
    }
}

/// The addresses of `service` Switchboard serves from the native registry.
async fn native_addresses(server: &TestServer, service: &str) -> Vec<String> {
    let path = format!("/api/v1/services/{service}/instances?source=native");
    let (status, body) = server.get_json(&path).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    crate::sources::sorted_addresses(body.as_array().map(Vec::as_slice).unwrap_or_default())
}

/// The id of the native registry's instance at `address` in `service`, as
/// `explain` lists each source's instances (serving shows the merge winner's id).
async fn native_id(server: &TestServer, service: &str, address: &str) -> Result<String, String> {
    let (_, reply) = explain(server, service).await;
    let mut reported = reply["instances"].as_array().into_iter().flatten();
    let found = reported.find(|i| i["source"] == "native" && i["address"] == address);
    found
        .and_then(|instance| instance["id"].as_str().map(str::to_owned))
        .ok_or_else(|| reply.to_string())
}

/// Asserts the native copy `id` is active and healthy, from `etcd-a` by `job`.
async fn assert_active_copy(server: &TestServer, id: &str, job: &str) -> Value {
    let copy = native(server, id)
        .await
        .unwrap_or_else(|seen| panic!("{id}: {seen}"));
    assert_eq!(copy["status"], "active", "{copy}");
    assert_eq!(copy["healthy"], true, "{copy}");
    assert!(copy["offline_time"].is_null(), "{copy}");
    assert_eq!(copy["metadata"]["switchboard.origin"], "etcd-a", "{copy}");
    assert_eq!(copy["metadata"]["switchboard.sync"], job, "{copy}");
    copy
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_changes_reach_the_native_registry_as_copies_that_never_expire() {
    let etcd = EtcdServer::start().await;
    // An IPv6 anchor: its id shows how `:` is spelled.
    etcd.put("/n/api/anchor", "[fd00::32]:80").await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.registry.default_ttl = Duration::from_secs(1);
    let server = TestServer::start(config).await;
    create(&server, &etcd_doc("etcd-a", &etcd.endpoint(), "/n/")).await;
    wait_source_state(&server, "etcd-a", "ready").await;
    let job_id = "etcd-to-native";
    let watched = (&server, job_id, "api");
    create_sync(&server, &job(job_id, "etcd-a", "native")).await;
    let anchor = poll("the anchor's native copy", RECONNECT, || {
        native_id(&server, "api", "[fd00::32]:80")
    })
    .await;
    assert!(is_copy_id(&anchor, "api", "fd00::32", 80), "{anchor}");
    assert!(
        anchor.starts_with("api-fd00__32-80"),
        "`:` is `_`: {anchor}"
    );

    let started = Instant::now();
    etcd.put("/n/api/w2", &etcd_value("10.32.0.2:8080", 100, "a"))
        .await;
    let added = propagated(watched, "the new instance's native copy", started, || {
        native_id(&server, "api", "10.32.0.2:8080")
    })
    .await;
    let id = native_id(&server, "api", "10.32.0.2:8080").await.unwrap();
    assert!(is_copy_id(&id, "api", "10.32.0.2", 8080), "{id}");
    let copy = assert_active_copy(&server, &id, job_id).await;
    assert_eq!(copy["metadata"]["zone"], "a", "{copy}");
    let wanted = ["10.32.0.2:8080", "[fd00::32]:80"];
    poll(
        "both copies in the catalog as native",
        PROPAGATION,
        || async {
            let found = native_addresses(&server, "api").await;
            match found == wanted {
                true => Ok(()),
                false => Err(format!("{found:?}")),
            }
        },
    )
    .await;

    // A heartbeat-less instance registered now is offline three default TTLs later; the
    // copies, just as heartbeat-less and older, must still be active then.
    let witness = server
        .register(json!({ "service": "witness", "address": "10.32.9.9:80", "ttl_seconds": 3 }))
        .await;
    let witness = witness["id"].as_str().unwrap().to_owned();
    poll("the witness to expire", DEADLINE, || async {
        let body = native(&server, &witness).await?;
        match body["status"] == "offline" {
            true => Ok(()),
            false => Err(body.to_string()),
        }
    })
    .await;
    assert_active_copy(&server, &anchor, job_id).await;
    assert_active_copy(&server, &id, job_id).await;
    assert_eq!(native_addresses(&server, "api").await, wanted);
    assert_eq!(server.metric("switchboard_expiries_total").await, 1.0);

    let started = Instant::now();
    etcd.put("/n/api/w2", &etcd_value("10.32.0.2:8080", 250, "b"))
        .await;
    let updated = propagated(
        watched,
        "the update of the native copy",
        started,
        || async {
            let copy = native(&server, &id).await?;
            match copy["weight"] == 250 && copy["metadata"]["zone"] == "b" {
                true => Ok(()),
                false => Err(copy.to_string()),
            }
        },
    )
    .await;
    assert_active_copy(&server, &id, job_id).await;

    let started = Instant::now();
    etcd.delete("/n/api/w2").await;
    let deleted = propagated(watched, "the native copy to go", started, || async {
        match native(&server, &id).await {
            Ok(copy) => Err(copy.to_string()),
            Err(_) => Ok(()),
        }
    })
    .await;
    assert_eq!(native_addresses(&server, "api").await, ["[fd00::32]:80"]);
    let served = instances(&server, "api").await;
    assert_eq!(served.len(), 1, "{served:?}");
    println!("etcd -> native: add {added:?}, update {updated:?}, delete {deleted:?}");

    let done = Done {
        writes: 3,
        deletes: 1,
        synced: 1,
    };
    let status = assert_done(&server, job_id, done).await;
    assert_eq!(status["to"], "native", "{status}");
}
