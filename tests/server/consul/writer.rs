//! The Consul source as a sync-back target: instances written through its
//! [`RegistryWriter`] become agent registrations with a TTL check that Switchboard keeps
//! passing (or failing, for an unhealthy instance), come back when the agent forgets
//! them, and go on deregister.

use std::sync::Arc;

use consul_double::ConsulDouble;
use serde_json::{json, Value};
use switchboard_connectors::{Connector, Instance, ServiceKey, SourceConfig};

use crate::sources::SLOW;
use crate::support::wait_until;

fn connector(consul: &ConsulDouble) -> Arc<dyn Connector> {
    let config: SourceConfig = serde_json::from_value(json!({
        "id": "consul-target",
        "type": "consul",
        "endpoints": [consul.url()],
        // The shortest TTL allowed: the keeper passes it every ~333 ms.
        "check_ttl": "1s",
    }))
    .unwrap();
    switchboard_connectors::build(&config).unwrap()
}

/// `GET /v1/health/service/{name}` on the double.
async fn health(consul: &ConsulDouble, name: &str) -> Vec<Value> {
    let url = format!("{}/v1/health/service/{name}", consul.url());
    let body: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    body.as_array().cloned().unwrap_or_default()
}

/// The status of Switchboard's check on instance `id`, if registered.
async fn check_status(consul: &ConsulDouble, name: &str, id: &str) -> Option<String> {
    let entries = health(consul, name).await;
    let entry = entries.iter().find(|e| e["Service"]["ID"] == id)?;
    let checks = entry["Checks"].as_array()?;
    let check_id = format!("switchboard:{id}");
    let check = checks.iter().find(|c| c["CheckID"] == check_id.as_str())?;
    check["Status"].as_str().map(str::to_owned)
}

/// Asserts the status of Switchboard's check on each `(instance, status)` of `pay`.
async fn assert_checks(consul: &ConsulDouble, expected: &[(&str, &str)]) {
    for (id, status) in expected {
        let found = check_status(consul, "pay", id).await;
        assert_eq!(found.as_deref(), Some(*status), "the check of {id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn written_instances_are_kept_alive_restored_and_removed() {
    let consul = ConsulDouble::start().await;
    let connector = connector(&consul);
    let writer = connector.writer().expect("a Consul source is writable");

    let mut up = Instance::new("pay-1", ServiceKey::named("pay"), "10.0.0.1", 8080);
    up.tags = vec!["v2".to_owned()];
    up.metadata
        .insert("switchboard.origin".to_owned(), "etcd-main".to_owned());
    up.metadata
        .insert("consul.node".to_owned(), "elsewhere".to_owned());
    let mut down = Instance::new("pay-2", ServiceKey::named("pay"), "10.0.0.2", 8080);
    down.healthy = false;
    writer.register(&up).await.unwrap();
    writer.register(&down).await.unwrap();

    let entries = health(&consul, "pay").await;
    let written = entries
        .iter()
        .find(|e| e["Service"]["ID"] == "pay-1")
        .unwrap();
    assert_eq!(written["Service"]["Address"], "10.0.0.1");
    assert_eq!(written["Service"]["Port"], 8080);
    assert_eq!(written["Service"]["Tags"], json!(["v2"]));
    // Switchboard's default weight 100 is Consul's default 1.
    assert_eq!(written["Service"]["Weights"]["Passing"], 1);
    // Consul's metadata keys allow no dots; Switchboard's own `consul.*` keys stay home.
    assert_eq!(
        written["Service"]["Meta"],
        json!({ "switchboard_origin": "etcd-main" })
    );
    assert_checks(&consul, &[("pay-1", "passing"), ("pay-2", "critical")]).await;

    // Several TTLs later the checks still say what the instances are: the keeper runs.
    let refreshed = consul.requests_to("/v1/agent/check/");
    wait_until(
        "the keeper to refresh the checks over 2 TTLs",
        SLOW,
        || async { (consul.requests_to("/v1/agent/check/") >= refreshed + 12).then_some(()) },
    )
    .await;
    assert_checks(&consul, &[("pay-1", "passing"), ("pay-2", "critical")]).await;

    // The agent loses a registration (restarted without state): it comes back.
    consul.deregister("pay-1").await;
    wait_until("pay-1 registered again", SLOW, || async {
        let status = check_status(&consul, "pay", "pay-1").await;
        (status.as_deref() == Some("passing")).then_some(())
    })
    .await;

    writer.deregister(&up.key()).await.unwrap();
    writer.deregister(&down.key()).await.unwrap();
    assert!(health(&consul, "pay").await.is_empty());
    // Deregistering what the agent does not hold is not an error.
    writer.deregister(&up.key()).await.unwrap();
}
