//! Removing a service (`DELETE /api/v1/admin/services/{name}`) while other services take
//! registrations: the reply counts exactly the instances the service had, none of them is
//! served afterwards, the other services keep every acknowledged registration, and a
//! second removal finds nothing.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use reqwest::Client;

use super::{discovery_view, pooled_client, register, registry_view, send};
use crate::support::{test_config, wait_until, TestServer, DEADLINE};

const DOOMED: &str = "doomed";
const DOOMED_INSTANCES: usize = 400;
const REGISTRARS: usize = 16;
const BYSTANDERS: usize = 4;

/// Registers `doomed-{first}`, `doomed-{first + REGISTRARS}`, … one at a time.
async fn register_doomed(base: String, first: usize) -> Result<Vec<String>, String> {
    let client = pooled_client();
    let mut ids = Vec::new();
    for k in (first..DOOMED_INSTANCES).step_by(REGISTRARS) {
        let id = format!("doomed-{k}");
        let address = format!("10.70.{}.{}:80", k / 250, k % 250);
        let (status, reply) = register(&client, &base, &id, DOOMED, &address, "active").await?;
        if status != 201 {
            return Err(format!("register {id}: {status} {reply}"));
        }
        ids.push(id);
    }
    Ok(ids)
}

/// Registers new instances into a service of its own until `stop`; returns the ids
/// acknowledged. `acked` counts them as they come.
async fn bystander(
    base: String,
    me: usize,
    acked: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) -> Result<Vec<String>, String> {
    let client = pooled_client();
    let service = format!("bystander-{me}");
    let mut ids = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let k = ids.len();
        let id = format!("bystander-{me}-{k}");
        let address = format!("10.71.{me}.{}:{}", k % 250, 1000 + k / 250);
        let (status, reply) = register(&client, &base, &id, &service, &address, "active").await?;
        if status != 201 {
            return Err(format!("register {id}: {status} {reply}"));
        }
        ids.push(id);
        acked.fetch_add(1, Ordering::SeqCst);
    }
    Ok(ids)
}

async fn remove(client: &Client, base: &str, service: &str) -> (u16, serde_json::Value) {
    send(client.delete(format!("{base}/api/v1/admin/services/{service}")))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_service_reports_what_it_removed() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(dir.path())).await;
    let base = server.base.clone();
    let registrars: Vec<_> = (0..REGISTRARS)
        .map(|first| tokio::spawn(register_doomed(base.clone(), first)))
        .collect();
    let mut doomed = Vec::new();
    for registrar in registrars {
        doomed.extend(
            registrar
                .await
                .unwrap()
                .unwrap_or_else(|err| panic!("{err}")),
        );
    }
    let client = pooled_client();
    let served = discovery_view(&client, &base, DOOMED).await.unwrap();
    assert_eq!(served.len(), DOOMED_INSTANCES, "served before the removal");

    let (acked, stop) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let bystanders: Vec<_> = (0..BYSTANDERS)
        .map(|me| tokio::spawn(bystander(base.clone(), me, acked.clone(), stop.clone())))
        .collect();
    // The removal lands among registrations in flight, not before they start.
    wait_until("the bystanders to be registering", DEADLINE, || async {
        (acked.load(Ordering::SeqCst) >= 4 * BYSTANDERS).then_some(())
    })
    .await;
    let (status, report) = remove(&client, &base, DOOMED).await;
    let during = acked.load(Ordering::SeqCst);
    // Let the bystanders register around the removal's aftermath too.
    wait_until("the bystanders to keep registering", DEADLINE, || async {
        (acked.load(Ordering::SeqCst) >= during + 4 * BYSTANDERS).then_some(())
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    let mut kept = Vec::new();
    for bystander in bystanders {
        kept.extend(
            bystander
                .await
                .unwrap()
                .unwrap_or_else(|err| panic!("{err}")),
        );
    }

    assert_eq!(status, 200, "{report}");
    assert_eq!(report["service_name"], DOOMED, "{report}");
    assert_eq!(report["total_instances"], DOOMED_INSTANCES, "{report}");
    assert_eq!(report["removed_count"], DOOMED_INSTANCES, "{report}");
    assert_eq!(report["errors"], serde_json::json!([]), "{report}");

    let served = discovery_view(&client, &base, DOOMED).await.unwrap();
    assert!(served.is_empty(), "still served: {:?}", served.keys());
    for id in &doomed {
        let view = registry_view(&client, &base, id).await.unwrap();
        assert_eq!(view, None, "{id} is still registered");
    }
    let (status, again) = remove(&client, &base, DOOMED).await;
    assert_eq!(status, 404, "{again}");
    assert_eq!(again["code"], "service_not_found", "{again}");

    // Nothing beside it was touched.
    for me in 0..BYSTANDERS {
        let served = discovery_view(&client, &base, &format!("bystander-{me}"))
            .await
            .unwrap();
        let prefix = format!("bystander-{me}-");
        let mine: Vec<&String> = kept.iter().filter(|id| id.starts_with(&prefix)).collect();
        assert_eq!(
            served.len(),
            mine.len(),
            "bystander-{me} serves {:?}",
            served.keys()
        );
        for id in mine {
            assert!(served.contains_key(id), "{id} is not served");
            assert!(
                registry_view(&client, &base, id).await.unwrap().is_some(),
                "{id}"
            );
        }
    }
    println!(
        "removed {DOOMED_INSTANCES} instances while {} registrations went on beside them",
        kept.len()
    );
}
