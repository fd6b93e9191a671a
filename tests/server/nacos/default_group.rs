//! Nacos's default group is Switchboard's default group: `orders` registered in Nacos
//! the default way (`DEFAULT_GROUP`), in a Nacos group literally named `DEFAULT`, and
//! natively the default way is one service. A sync job copying the native registry into
//! Nacos writes its copy to `DEFAULT_GROUP`, never to the group named `DEFAULT`, and the
//! copy comes back into the same service at the same endpoint, not as a second one.

use serde_json::{json, Value};

use crate::managed::harness::{poll_json, post};
use crate::nacos::harness::{nacos_source, wait_addresses_at, wait_instance, SOURCE};
use crate::sources::{start_server, SLOW};
use crate::support::poll;
use crate::support::rnacos::{Registration, RnacosServer, DEFAULT_GROUP, PUBLIC};
use switchboard_connectors::DEFAULT_GROUP as SWITCHBOARD_DEFAULT;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_in_nacos_and_native_meet_and_sync_back_writes_default_group() {
    let nacos = RnacosServer::start().await;
    nacos
        .register(&Registration::new("orders", "10.0.0.1", 8080))
        .await;
    let in_named_default = Registration::new("orders", "10.0.0.3", 8080).placed(PUBLIC, "DEFAULT");
    nacos.register(&in_named_default).await;
    let source = nacos_source(&nacos.endpoint(), "service_refresh = \"1s\"");
    let (server, _dir) = start_server(&source).await;
    server
        .register(json!({
            "id": "orders-native",
            "service": "orders",
            "address": "10.0.0.2:8080",
            "ttl_seconds": 600,
        }))
        .await;

    // One service in the default group, fed by Nacos and the native registry.
    let merged = (PUBLIC, SWITCHBOARD_DEFAULT, "orders");
    let all = ["10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080"];
    wait_addresses_at(&server, merged, &all).await;
    let (status, listing) = server.get_json("/api/v1/services").await;
    assert_eq!(status, 200, "{listing}");
    let orders: Vec<&Value> = (listing.as_array().into_iter().flatten())
        .filter(|s| s["name"] == "orders")
        .collect();
    assert_eq!(orders.len(), 1, "one `orders`: {listing}");
    assert_eq!(orders[0]["group"], SWITCHBOARD_DEFAULT, "{listing}");
    let mut sources: Vec<&str> = (orders[0]["sources"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    sources.sort();
    assert_eq!(sources, ["nacos-main", "native"], "{listing}");

    let job = json!({ "id": "to-nacos", "from": ["native"], "to": SOURCE, "debounce": "100ms" });
    let (status, view) = post(&server, "/api/v1/syncs", &job).await;
    assert_eq!(status, 201, "{view}");
    poll("the copy in rnacos's DEFAULT_GROUP", SLOW, || async {
        let ips = nacos.ips(PUBLIC, DEFAULT_GROUP, "orders").await;
        match ips == ["10.0.0.1", "10.0.0.2"] {
            true => Ok(()),
            false => Err(format!("{ips:?}")),
        }
    })
    .await;
    // Read back into the same service, at the native instance's endpoint.
    let both = |i: &Value| i["sources"].as_array().is_some_and(|s| s.len() == 2);
    wait_instance(&server, merged, "10.0.0.2:8080", "read back", both).await;
    let status = poll_json(
        "the job at rest with its one copy",
        SLOW,
        || async {
            let (_, status) = server.get_json("/api/v1/syncs/to-nacos/status").await;
            status
        },
        |s| s["last_run"].is_string() && s["pending_services"] == 0 && s["synced"] == 1,
    )
    .await;
    assert_eq!(status["writes"], 1, "written once: {status}");
    assert_eq!(status["errors"], 0, "{status}");
    wait_addresses_at(&server, merged, &all).await;
    // Nothing was written into the Nacos group named `DEFAULT`.
    assert_eq!(nacos.ips(PUBLIC, "DEFAULT", "orders").await, ["10.0.0.3"]);
}
