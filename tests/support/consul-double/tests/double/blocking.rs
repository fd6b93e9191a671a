//! Blocking queries and the timers behind them: a parked query returns when its result set
//! changes (and only then, or when `wait` runs out), catalog watchers wake on registrations,
//! TTL checks expire and critical services are reaped.

use std::time::Duration;

use crate::common::{get, health, park, park_catalog, spawn_get, wait_until};
use consul_double::ConsulDouble;
use serde_json::json;

const HEALTH: &str = "/v1/health/service/";

#[tokio::test]
async fn a_parked_query_returns_when_its_service_changes() {
    let double = ConsulDouble::start().await;
    double
        .register(json!({"Name": "web", "Check": {"TTL": "30s"}}))
        .await;
    let (index, _) = health(&double, "web", "").await;

    let parked = park(&double, &format!("{HEALTH}web"), index, "5s", HEALTH, 2).await;
    double.check("pass", "service:web").await;
    let (answer, took) = parked.await.unwrap().unwrap();
    assert!(took < Duration::from_secs(3), "woke after {took:?}");
    assert!(answer.index() > index);
    assert_eq!(answer.json()[0]["Checks"][1]["Status"], "passing");
}

#[tokio::test]
async fn a_parked_query_times_out_with_the_same_index() {
    let double = ConsulDouble::start().await;
    double.register(json!({"Name": "web"})).await;
    let (index, _) = health(&double, "web", "").await;
    let (answer, took) = spawn_get(&double, &format!("{HEALTH}web?index={index}&wait=200ms"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.index(), index);
    // wait plus at most wait/16 of jitter, plus slack for a loaded machine.
    let wait = Duration::from_millis(200);
    assert!(took >= wait, "returned early, after {took:?}");
    assert!(
        took < wait + wait / 16 + Duration::from_millis(500),
        "took {took:?}"
    );

    // Without `index` (or with 0) the answer is immediate whatever `wait` says.
    let (_, took) = spawn_get(&double, &format!("{HEALTH}web?index=0&wait=5s"))
        .await
        .unwrap()
        .unwrap();
    assert!(took < Duration::from_secs(2));
}

#[tokio::test]
async fn a_write_to_another_service_does_not_wake_a_parked_query() {
    let double = ConsulDouble::start().await;
    double.register(json!({"Name": "web"})).await;
    let (index, _) = health(&double, "web", "").await;
    let parked = park(&double, &format!("{HEALTH}web"), index, "400ms", HEALTH, 2).await;
    double.register(json!({"Name": "db"})).await;
    double.deregister("db").await;
    let (answer, took) = parked.await.unwrap().unwrap();
    assert!(took >= Duration::from_millis(400), "woken after {took:?}");
    assert_eq!(answer.index(), index);
}

#[tokio::test]
async fn the_catalog_wakes_on_register_and_deregister() {
    let double = ConsulDouble::start().await;
    let index = get(&double, "/v1/catalog/services").await.index();
    let parked = park_catalog(&double, index, 2).await;
    double
        .register(json!({"Name": "web", "Tags": ["v1"]}))
        .await;
    let (answer, _) = parked.await.unwrap().unwrap();
    assert!(answer.index() > index);
    assert_eq!(answer.json(), json!({"consul": [], "web": ["v1"]}));

    let index = answer.index();
    let parked = park_catalog(&double, index, 3).await;
    double.deregister("web").await;
    let (answer, _) = parked.await.unwrap().unwrap();
    assert!(answer.index() > index);
    assert_eq!(answer.json(), json!({"consul": []}));
}

#[tokio::test]
async fn deregistering_the_last_instance_wakes_its_watchers_with_nothing() {
    let double = ConsulDouble::start().await;
    double.register(json!({"Name": "web", "ID": "web-1"})).await;
    let (index, entries) = health(&double, "web", "").await;
    assert_eq!(entries.len(), 1);
    let parked = park(&double, &format!("{HEALTH}web"), index, "5s", HEALTH, 2).await;
    double.deregister("web-1").await;
    let (answer, _) = parked.await.unwrap().unwrap();
    assert_eq!(answer.json(), json!([]));
    assert!(answer.index() > index);
}

#[tokio::test]
async fn a_ttl_check_turns_critical_when_not_refreshed() {
    let double = ConsulDouble::start().await;
    let check = json!({"TTL": "300ms", "Status": "passing"});
    double
        .register(json!({"Name": "web", "Check": check}))
        .await;
    let (index, entries) = health(&double, "web", "?passing").await;
    assert_eq!(entries.len(), 1);

    // A watcher sees the expiry as a change.
    let (answer, took) = spawn_get(&double, &format!("{HEALTH}web?index={index}&wait=5s"))
        .await
        .unwrap()
        .unwrap();
    assert!(took >= Duration::from_millis(250), "expired after {took:?}");
    let check = &answer.json()[0]["Checks"][1];
    assert_eq!(check["Status"], "critical");
    assert_eq!(check["Output"], "TTL expired");

    // A pass restarts the clock; the next expiry quotes the pass's note.
    let path = "/v1/agent/check/pass/service:web?note=fine";
    assert_eq!(crate::common::put(&double, path, None).await.status, 200);
    assert_eq!(health(&double, "web", "?passing").await.1.len(), 1);
    let expired = wait_until("the TTL to run out again", || async {
        let (_, entries) = health(&double, "web", "").await;
        let output = entries[0]["Checks"][1]["Output"]
            .as_str()
            .unwrap()
            .to_owned();
        output.starts_with("TTL expired").then_some(output)
    })
    .await;
    assert_eq!(
        expired,
        "TTL expired (last output before timeout follows): fine"
    );
}

#[tokio::test]
async fn a_critical_service_is_reaped_after_deregister_critical_service_after() {
    let double = ConsulDouble::start().await;
    let check = json!({"TTL": "10s", "DeregisterCriticalServiceAfter": "300ms"});
    double
        .register(json!({"Name": "web", "Check": check}))
        .await;
    let keep =
        json!({"TTL": "10s", "Status": "passing", "DeregisterCriticalServiceAfter": "300ms"});
    double.register(json!({"Name": "db", "Check": keep})).await;
    let (index, entries) = health(&double, "web", "").await;
    assert_eq!(entries.len(), 1);
    let (answer, took) = spawn_get(&double, &format!("{HEALTH}web?index={index}&wait=5s"))
        .await
        .unwrap()
        .unwrap();
    assert!(took >= Duration::from_millis(250), "reaped after {took:?}");
    assert_eq!(answer.json(), json!([]));
    let services = get(&double, "/v1/agent/services").await.json();
    assert!(services.get("web").is_none());
    assert!(services.get("db").is_some(), "a passing service is kept");
}
