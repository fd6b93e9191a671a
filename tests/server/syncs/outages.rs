//! A job never deletes what it cannot prove gone, nor what it did not write: while its
//! origin is down, copies stay in the target even once the catalog stops serving the
//! origin's instances (the deletes are held and the status says why), and go once the
//! origin is back and really lacks them; an instance someone else registered in the
//! target is never deleted nor written over, even at an endpoint the origin reports too.

use serde_json::{json, Value};

use super::common::{
    at_rest, create_sync, nacos_addresses, nacos_hosts, nacos_table, plan_of, planned, served,
    sync_path, sync_status, wait_nacos_addresses, wait_sync,
};
use crate::managed::harness::{etcd_table, poll, put, PROMPTLY};
use crate::sources::{load_config, served_from, wait_fresh, wait_source_state, SLOW};
use crate::support::etcd::EtcdServer;
use crate::support::rnacos::{Registration, RnacosServer};
use crate::support::TestServer;

/// A job copying `web` from etcd source `from` into the Nacos source `nacos-t`.
fn to_nacos(id: &str, from: &str) -> Value {
    json!({
        "id": id,
        "from": [from],
        "to": "nacos-t",
        "services": "web",
        "debounce": "100ms",
    })
}

/// Whether a held reason names `etcd-a` as unreachable.
fn names_etcd_a_unreachable(reason: &Value) -> bool {
    let reason = reason.as_str().unwrap_or_default();
    reason.contains("`etcd-a`") && (reason.contains("down") || reason.contains("connecting"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_source_holds_the_deletes_of_its_copies_until_it_is_back() {
    let mut etcd = EtcdServer::start().await;
    etcd.put("/a/web/w1", "10.21.0.1:80").await;
    etcd.put("/a/web/w2", "10.21.0.2:80").await;
    etcd.put("/a/api/a1", "10.21.1.1:80").await;
    let nacos = RnacosServer::start().await;
    // `max_stale`: the catalog stops serving the down source's instances after 1 s, so
    // a job that trusted the catalog alone would delete their copies.
    let toml = etcd_table("etcd-a", &etcd.endpoint(), "/a/", "max_stale = \"1s\"")
        + &nacos_table("nacos-t", &nacos.endpoint());
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(load_config(dir.path(), &toml)).await;
    wait_source_state(&server, "etcd-a", "ready").await;
    wait_source_state(&server, "nacos-t", "ready").await;
    let mut definition = to_nacos("etcd-to-nacos", "etcd-a");
    definition["services"] = json!(["web", "api"]);
    create_sync(&server, &definition).await;
    wait_nacos_addresses(&nacos, "web", &["10.21.0.1:80", "10.21.0.2:80"]).await;
    wait_nacos_addresses(&nacos, "api", &["10.21.1.1:80"]).await;
    let written = wait_sync(&server, "etcd-to-nacos", "the three copies written", |s| {
        s["writes"] == 3 && s["synced"] == 3 && at_rest(s)
    })
    .await;
    assert_eq!(written["deletes_paused"], false, "{written}");
    let paused_metric = "switchboard_sync_deletes_paused{sync=\"etcd-to-nacos\"}";
    assert_eq!(server.metric(paused_metric).await, 0.0, "{paused_metric}");

    etcd.kill_9();
    wait_source_state(&server, "etcd-a", "down").await;
    let held = wait_sync(&server, "etcd-to-nacos", "deletes paused", |s| {
        s["deletes_paused"] == true
    })
    .await;
    assert!(names_etcd_a_unreachable(&held["held_reason"]), "{held}");
    poll("max_stale to run out", SLOW, || async {
        let found = served_from(&server, "etcd-a").await;
        match found.is_empty() {
            true => Ok(()),
            false => Err(format!("{found:?}")),
        }
    })
    .await;
    assert_eq!(server.metric(paused_metric).await, 1.0, "{paused_metric}");
    let during = sync_status(&server, "etcd-to-nacos").await;
    assert_eq!(during["deletes"], 0, "{during}");
    assert_eq!(during["deletes_paused"], true, "{during}");
    assert_eq!(
        nacos_addresses(&nacos, "web").await,
        ["10.21.0.1:80", "10.21.0.2:80"],
        "the copies stay while their origin is down"
    );
    assert_eq!(nacos_addresses(&nacos, "api").await, ["10.21.1.1:80"]);

    // `api` is no longer copied: its copy is due for deletion, but its origin's silence
    // proves nothing while the origin is down, so the delete is held.
    definition["services"] = json!("web");
    // Counters run for the whole process, across a PUT.
    let writes_before = sync_status(&server, "etcd-to-nacos").await["writes"].clone();
    let (status, view) = put(&server, &sync_path("etcd-to-nacos"), &definition).await;
    assert_eq!(status, 200, "{view}");
    let held = wait_sync(
        &server,
        "etcd-to-nacos",
        "the delete of the api copy held",
        |s| s["held_deletes"] == 1 && s["deletes_paused"] == true && at_rest(s),
    )
    .await;
    assert!(names_etcd_a_unreachable(&held["held_reason"]), "{held}");
    assert_eq!(held["deletes"], 0, "{held}");
    let plan = plan_of(&server, &definition).await;
    assert!(planned(&plan, "deletes").is_empty(), "{plan}");
    let held_deletes = planned(&plan, "held_deletes");
    assert_eq!(held_deletes.len(), 1, "{plan}");
    assert_eq!(held_deletes[0]["host"], "10.21.1.1", "{plan}");
    assert!(names_etcd_a_unreachable(&held_deletes[0]["held"]), "{plan}");
    assert_eq!(nacos_addresses(&nacos, "api").await, ["10.21.1.1:80"]);
    assert_eq!(nacos_addresses(&nacos, "web").await.len(), 2);

    // Back: the held delete is made, and nothing else is deleted or written again.
    etcd.restart().await;
    wait_source_state(&server, "etcd-a", "ready").await;
    wait_nacos_addresses(&nacos, "api", &[]).await;
    let resumed = wait_sync(&server, "etcd-to-nacos", "deletes resumed", |s| {
        s["deletes"] == 1 && s["deletes_paused"] == false && s["held_deletes"] == 0 && at_rest(s)
    })
    .await;
    assert!(resumed["held_reason"].is_null(), "{resumed}");
    assert_eq!(
        resumed["writes"], writes_before,
        "unchanged copies are not written again: {resumed}"
    );
    assert_eq!(resumed["synced"], 2, "{resumed}");
    assert_eq!(
        nacos_addresses(&nacos, "web").await,
        ["10.21.0.1:80", "10.21.0.2:80"]
    );
    assert_eq!(server.metric(paused_metric).await, 0.0, "{paused_metric}");

    // A delete in the origin is trusted again and propagates promptly.
    etcd.delete("/a/web/w2").await;
    poll("the copy of w2 to go", PROMPTLY, || async {
        let found = nacos_addresses(&nacos, "web").await;
        match found == ["10.21.0.1:80"] {
            true => Ok(()),
            false => Err(format!("{found:?}")),
        }
    })
    .await;
    let done = wait_sync(&server, "etcd-to-nacos", "two deletes", |s| {
        s["deletes"] == 2 && s["synced"] == 1 && at_rest(s)
    })
    .await;
    assert_eq!(done["deletes_paused"], false, "{done}");
}

/// rnacos's entry for `ip` in `web`.
async fn nacos_entry(nacos: &RnacosServer, ip: &str) -> Option<Value> {
    let hosts = nacos_hosts(nacos, "web").await;
    hosts.into_iter().find(|h| h["ip"] == ip)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_registered_in_the_target_is_never_deleted_nor_written_over() {
    let etcd = EtcdServer::start().await;
    etcd.put("/f/web/w1", "10.22.0.1:80").await;
    etcd.put("/f/web/w2", "10.22.0.2:80").await;
    let nacos = RnacosServer::start().await;
    let foreign = Registration::new("web", "10.22.0.9", 80).meta("owner", "ops");
    nacos.register(&foreign).await;
    // A short guard, so emptying `web` in etcd is confirmed quickly.
    let toml = etcd_table("etcd-f", &etcd.endpoint(), "/f/", "empty_confirm = \"1s\"")
        + &nacos_table("nacos-t", &nacos.endpoint());
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(load_config(dir.path(), &toml)).await;
    wait_source_state(&server, "etcd-f", "ready").await;
    wait_fresh(&server, "nacos-t", &served(&[("web", "10.22.0.9:80")])).await;
    let before = nacos_entry(&nacos, "10.22.0.9")
        .await
        .expect("the foreign instance");
    assert_eq!(before["metadata"], json!({ "owner": "ops" }), "{before}");

    let definition = to_nacos("to-nacos", "etcd-f");
    create_sync(&server, &definition).await;
    wait_nacos_addresses(
        &nacos,
        "web",
        &["10.22.0.1:80", "10.22.0.2:80", "10.22.0.9:80"],
    )
    .await;
    wait_sync(&server, "to-nacos", "both copies written", |s| {
        s["writes"] == 2 && s["synced"] == 2 && at_rest(s)
    })
    .await;
    let untouched = nacos_entry(&nacos, "10.22.0.9").await;
    assert_eq!(untouched.as_ref(), Some(&before), "the foreign instance");

    // The origin reports the foreign endpoint too: left alone, counted as foreign.
    etcd.put("/f/web/w9", "10.22.0.9:80").await;
    wait_fresh(
        &server,
        "etcd-f",
        &served(&[
            ("web", "10.22.0.1:80"),
            ("web", "10.22.0.2:80"),
            ("web", "10.22.0.9:80"),
        ]),
    )
    .await;
    let seen = wait_sync(&server, "to-nacos", "the foreign endpoint seen", |s| {
        s["foreign"].as_u64() >= Some(1) && at_rest(s)
    })
    .await;
    assert_eq!(seen["writes"], 2, "nothing written over it: {seen}");
    assert_eq!(seen["synced"], 2, "not taken into the ledger: {seen}");
    let plan = plan_of(&server, &definition).await;
    assert!(planned(&plan, "writes").is_empty(), "{plan}");
    assert_eq!(plan["foreign"], 1, "{plan}");
    let untouched = nacos_entry(&nacos, "10.22.0.9").await.expect("still there");
    assert_eq!(untouched, before, "the foreign instance");
    assert!(
        untouched["metadata"].get("switchboard.sync").is_none(),
        "{untouched}"
    );

    // The origin drops every instance of `web`: its copies go, the foreign one stays.
    for key in ["/f/web/w1", "/f/web/w2", "/f/web/w9"] {
        etcd.delete(key).await;
    }
    wait_nacos_addresses(&nacos, "web", &["10.22.0.9:80"]).await;
    let done = wait_sync(&server, "to-nacos", "both copies deleted", |s| {
        s["deletes"] == 2 && s["synced"] == 0 && at_rest(s)
    })
    .await;
    assert_eq!(done["errors"], 0, "{done}");
    let untouched = nacos_entry(&nacos, "10.22.0.9").await;
    assert_eq!(untouched.as_ref(), Some(&before), "the foreign instance");
    assert_eq!(
        sync_status(&server, "to-nacos").await["deletes"],
        2,
        "and nothing more"
    );
    // Switchboard serves it from the target still.
    wait_fresh(&server, "nacos-t", &served(&[("web", "10.22.0.9:80")])).await;
}
