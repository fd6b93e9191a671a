//! etcd as a sync target: native instances are written into an etcd source in the JSON
//! layout that source reads back, kept under the source's prefix, and removed from etcd
//! when they are deregistered; the copy read back by the etcd source is an echo, not
//! new data.

use serde_json::{json, Value};
use tokio::time::Instant;

use super::common::{create_sync, sync_status};
use super::propagation::{assert_done, job, propagated, Done, PROPAGATION};
use crate::managed::harness::{create, delete, etcd_doc, poll};
use crate::sources::{start_server, wait_source_state};
use crate::support::etcd::EtcdServer;

/// The JSON values etcd holds under `prefix`, by key.
async fn values(etcd: &EtcdServer, prefix: &str) -> Vec<(String, Value)> {
    (etcd.get_prefix(prefix).await.into_iter())
        .map(|(key, value)| {
            let parsed = serde_json::from_str(&value)
                .unwrap_or_else(|err| panic!("{key}: not JSON ({err}): {value}"));
            (key, parsed)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_instances_are_written_into_etcd_and_removed_from_it() {
    let etcd = EtcdServer::start().await;
    let (server, _dir) = start_server("").await;
    create(&server, &etcd_doc("etcd-t", &etcd.endpoint(), "/copies/")).await;
    wait_source_state(&server, "etcd-t", "ready").await;
    let job_id = "native-to-etcd";
    create_sync(&server, &job(job_id, "native", "etcd-t")).await;
    let watched = (&server, job_id, "pay");

    let started = Instant::now();
    let registered = server
        .register(json!({
            "service": "pay", "address": "10.40.0.1:8080", "weight": 30,
            "metadata": {"zone": "b"}
        }))
        .await;
    let native_id = registered["id"].as_str().unwrap().to_owned();
    let took = propagated(watched, "the copy in etcd", started, || async {
        match values(&etcd, "/copies/pay/").await.as_slice() {
            [one] => Ok(one.clone()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    println!("native -> etcd: written in {took:?}");
    let (key, copy) = values(&etcd, "/copies/pay/").await.remove(0);
    let id = copy["id"].as_str().unwrap_or_default();
    assert_eq!(key, format!("/copies/pay/{id}"), "{copy}");
    assert_eq!(copy["address"], "10.40.0.1:8080", "{copy}");
    assert_eq!(copy["weight"], 30, "{copy}");
    assert_eq!(copy["metadata"]["zone"], "b", "{copy}");
    assert_eq!(copy["metadata"]["switchboard.origin"], "native", "{copy}");
    assert_eq!(copy["metadata"]["switchboard.sync"], job_id, "{copy}");
    let status = assert_done(
        &server,
        job_id,
        Done {
            writes: 1,
            deletes: 0,
            synced: 1,
        },
    )
    .await;
    // etcd's view of the copy came back to the catalog and is known as a copy.
    poll("the copy served from etcd-t too", PROPAGATION, || async {
        let (_, body) = server.get_json("/api/v1/services/pay/instances").await;
        match body[0]["sources"].as_array().map(Vec::len) {
            Some(2) => Ok(()),
            _ => Err(body.to_string()),
        }
    })
    .await;
    assert_eq!(status["errors"], 0, "{status}");

    let started = Instant::now();
    let (status, body) = delete(&server, &format!("/api/v1/instances/{native_id}")).await;
    assert!(status.is_success(), "{status} {body}");
    let took = propagated(watched, "the copy gone from etcd", started, || async {
        match values(&etcd, "/copies/pay/").await.as_slice() {
            [] => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    println!("native -> etcd: deleted in {took:?}");
    assert_done(
        &server,
        job_id,
        Done {
            writes: 1,
            deletes: 1,
            synced: 0,
        },
    )
    .await;
    let status = sync_status(&server, job_id).await;
    assert_eq!(status["writes"], 1, "written once, never again: {status}");
}
