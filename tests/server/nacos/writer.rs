//! The Nacos source as a sync-back target: instances written through its
//! [`RegistryWriter`] become persistent rnacos instances (HTTP OpenAPI, no heartbeat
//! needed) in the Nacos group their Switchboard group is placed from, carrying their
//! weight, metadata and version; a re-registration at a new endpoint moves them; a
//! deregistration removes them, also one made by another process (found by its
//! `switchboard.id`), and one an earlier version wrote to the Nacos group named `DEFAULT`.

use std::sync::Arc;

use serde_json::{json, Value};
use switchboard_connectors::{Connector, Instance, ServiceKey, SourceConfig};

use crate::support::rnacos::{Registration, RnacosServer, DEFAULT_GROUP, PUBLIC};

/// A Nacos source on `nacos` with the default placement: `DEFAULT_GROUP` is Switchboard's
/// `DEFAULT`, so it writes `DEFAULT` instances back to `DEFAULT_GROUP`.
fn connector(nacos: &RnacosServer) -> Arc<dyn Connector> {
    let config: SourceConfig = serde_json::from_value(json!({
        "id": "nacos-target",
        "type": "nacos",
        "endpoints": [nacos.endpoint()],
    }))
    .unwrap();
    switchboard_connectors::build(&config).unwrap()
}

/// rnacos's entry for `ip`, if it lists one in `pay`.
async fn entry(nacos: &RnacosServer, ip: &str) -> Option<Value> {
    let hosts = nacos.hosts(PUBLIC, DEFAULT_GROUP, "pay").await;
    hosts.into_iter().find(|h| h["ip"] == ip)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn written_instances_are_persistent_moved_and_removed() {
    let nacos = RnacosServer::start().await;
    let source = connector(&nacos);
    let writer = source.writer().expect("a Nacos source is writable");

    let mut up = Instance::new("pay-1", ServiceKey::named("pay"), "10.0.0.1", 8080);
    up.weight = 250;
    up.version = Some("2.1".to_owned());
    up.metadata.insert("zone".to_owned(), "a".to_owned());
    up.metadata
        .insert("nacos.ephemeral".to_owned(), "true".to_owned());
    writer.register(&up).await.unwrap();

    let written = entry(&nacos, "10.0.0.1").await.expect("pay-1 in rnacos");
    assert_eq!(written["port"], 8080, "{written}");
    assert_eq!(
        written["weight"], 2.5,
        "Switchboard's 250 is Nacos's 2.5: {written}"
    );
    assert_eq!(
        written["ephemeral"], false,
        "persistent by default: {written}"
    );
    assert_eq!(written["enabled"], true, "{written}");
    assert_eq!(written["healthy"], true, "{written}");
    assert_eq!(written["clusterName"], "DEFAULT", "{written}");
    // What Switchboard adds on reading (`nacos.*`) is not written back.
    assert_eq!(
        written["metadata"],
        json!({ "switchboard.id": "pay-1", "version": "2.1", "zone": "a" })
    );

    // The same instance at a new port: the old endpoint goes.
    let mut moved = up.clone();
    moved.port = 9090;
    writer.register(&moved).await.unwrap();
    let hosts = nacos.hosts(PUBLIC, DEFAULT_GROUP, "pay").await;
    let ports: Vec<&Value> = hosts.iter().map(|h| &h["port"]).collect();
    assert_eq!(ports, [&json!(9090)], "{hosts:?}");

    writer.deregister(&moved.key()).await.unwrap();
    assert!(entry(&nacos, "10.0.0.1").await.is_none());
    // Deregistering what Nacos does not hold is not an error.
    writer.deregister(&moved.key()).await.unwrap();

    // Written by one process, removed by another that never wrote it.
    let other = Instance::new("pay-2", ServiceKey::named("pay"), "10.0.0.2", 8080);
    writer.register(&other).await.unwrap();
    assert!(entry(&nacos, "10.0.0.2").await.is_some());
    // A second connector of the same source, as after a restart of Switchboard.
    let restarted = connector(&nacos);
    let writer = restarted.writer().unwrap();
    writer.deregister(&other.key()).await.unwrap();
    assert!(entry(&nacos, "10.0.0.2").await.is_none(), "pay-2 removed");
}

/// Before Nacos's `DEFAULT_GROUP` was Switchboard's `DEFAULT`, copies of `DEFAULT`
/// services were written to a Nacos group named `DEFAULT`. Removing such an instance now
/// also removes the copy left there (found by its `switchboard.id`), and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_an_earlier_version_left_in_the_group_named_default_is_removed() {
    let nacos = RnacosServer::start().await;
    let source = connector(&nacos);
    let writer = source.writer().expect("a Nacos source is writable");
    let earlier = Registration::new("pay", "10.0.0.1", 8080)
        .placed(PUBLIC, "DEFAULT")
        .meta("switchboard.id", "pay-1");
    nacos.register(&earlier).await;
    let someone_else = Registration::new("pay", "10.0.0.2", 8080).placed(PUBLIC, "DEFAULT");
    nacos.register(&someone_else).await;

    assert_eq!(
        nacos.ips(PUBLIC, "DEFAULT", "pay").await,
        ["10.0.0.1", "10.0.0.2"]
    );

    let ours = Instance::new("pay-1", ServiceKey::named("pay"), "10.0.0.1", 8080);
    writer.register(&ours).await.unwrap();
    assert!(
        entry(&nacos, "10.0.0.1").await.is_some(),
        "in DEFAULT_GROUP"
    );
    writer.deregister_instance(&ours).await.unwrap();
    assert!(
        entry(&nacos, "10.0.0.1").await.is_none(),
        "gone from DEFAULT_GROUP"
    );
    assert_eq!(nacos.ips(PUBLIC, "DEFAULT", "pay").await, ["10.0.0.2"]);

    // Someone else's entry at the endpoint of an instance removed: kept.
    let theirs = Instance::new("pay-2", ServiceKey::named("pay"), "10.0.0.2", 8080);
    writer.deregister_instance(&theirs).await.unwrap();
    assert_eq!(nacos.ips(PUBLIC, "DEFAULT", "pay").await, ["10.0.0.2"]);
}
