//! The double's endpoints against Consul's documented behaviour: catalog, health (shape,
//! defaults, filters), agent writes, and the error answers with Consul's codes and texts.

use crate::common::{get, health, put, statuses};
use consul_double::ConsulDouble;
use serde_json::json;

#[tokio::test]
async fn catalog_lists_consul_and_the_union_of_tags() {
    let double = ConsulDouble::start().await;
    let answer = get(&double, "/v1/catalog/services").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json(), json!({"consul": []}));
    assert!(answer.index() >= 1);
    assert_eq!(answer.header("X-Consul-KnownLeader"), Some("true"));

    double
        .register(json!({"Name": "web", "ID": "web-1", "Tags": ["v1", "blue"]}))
        .await;
    double
        .register(json!({"Name": "web", "ID": "web-2", "Tags": ["v1", "green"]}))
        .await;
    let answer = get(&double, "/v1/catalog/services").await;
    let expected = json!({"consul": [], "web": ["blue", "green", "v1"]});
    assert_eq!(answer.json(), expected);
}

#[tokio::test]
async fn a_registration_shows_in_health_with_consuls_defaults() {
    let double = ConsulDouble::start().await;
    double
        .register(json!({"Name": "web", "Port": 8080, "Check": {"TTL": "30s"}}))
        .await;
    let (index, entries) = health(&double, "web", "").await;
    assert_eq!(entries.len(), 1);
    let entry = &entries[0];

    let node = &entry["Node"];
    assert_eq!(node["Node"], "node1");
    assert_eq!(node["Address"], "127.0.0.1");
    assert_eq!(node["Datacenter"], "dc1");
    assert!(node["ID"].as_str().is_some_and(|id| id.len() == 36));

    let service = &entry["Service"];
    assert_eq!(service["ID"], "web", "ID defaults to Name");
    assert_eq!(service["Service"], "web");
    assert_eq!(service["Address"], "", "an empty address stays empty");
    assert_eq!(service["Port"], 8080);
    assert_eq!(service["Tags"], json!([]));
    assert_eq!(service["Meta"], json!({}));
    assert_eq!(service["Weights"], json!({"Passing": 1, "Warning": 1}));
    assert_eq!(service["EnableTagOverride"], false);
    assert_eq!(service["CreateIndex"], index);
    assert_eq!(service["ModifyIndex"], index);
    assert!(
        service.get("TaggedAddresses").is_none(),
        "omitted when empty"
    );

    let expected = [("serfHealth", "passing"), ("service:web", "critical")];
    let expected: Vec<_> = expected.map(|(a, b)| (a.to_owned(), b.to_owned())).into();
    assert_eq!(statuses(entry), expected);
    let serf = &entry["Checks"][0];
    assert_eq!(serf["ServiceID"], "");
    assert_eq!(serf["Name"], "Serf Health Status");
    let check = &entry["Checks"][1];
    assert_eq!(check["Name"], "Service 'web' check");
    assert_eq!(check["Type"], "ttl");
    assert_eq!(check["ServiceID"], "web");
    assert_eq!(check["ServiceName"], "web");
    assert_eq!(check["Node"], "node1");
    assert_eq!(check["Output"], "");
}

#[tokio::test]
async fn registration_fields_round_trip() {
    let double = ConsulDouble::start().await;
    double
        .register(json!({
            "Name": "api", "ID": "api-1", "Address": "10.0.0.5", "Port": 9000,
            "Tags": ["a"], "Meta": {"version": "2"}, "EnableTagOverride": true,
            "Weights": {"Passing": 10, "Warning": 2},
            "TaggedAddresses": {"lan": {"Address": "10.0.0.5", "Port": 9000}},
            "Connect": {"Native": false}, "Kind": "",
            "Checks": [
                {"CheckID": "alive", "TTL": "10s", "Status": "passing", "Notes": "n"},
                {"Name": "web", "HTTP": "http://10.0.0.5:9000/health", "Interval": "10s"},
                {"TCP": "10.0.0.5:9000", "Interval": "5s", "Status": "warning"},
            ],
        }))
        .await;
    let (_, entries) = health(&double, "api", "").await;
    let service = &entries[0]["Service"];
    assert_eq!(service["Address"], "10.0.0.5");
    assert_eq!(service["Meta"], json!({"version": "2"}));
    assert_eq!(service["Weights"], json!({"Passing": 10, "Warning": 2}));
    assert_eq!(service["EnableTagOverride"], true);
    assert_eq!(
        service["TaggedAddresses"],
        json!({"lan": {"Address": "10.0.0.5", "Port": 9000}})
    );
    let checks = &entries[0]["Checks"];
    let by_id = |id: &str| {
        let found = checks
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["CheckID"] == id);
        found
            .unwrap_or_else(|| panic!("no check {id} in {checks}"))
            .clone()
    };
    assert_eq!(by_id("alive")["Status"], "passing");
    assert_eq!(by_id("alive")["Notes"], "n");
    assert_eq!(by_id("alive")["ServiceTags"], json!(["a"]));
    // Unnamed checks are numbered from 1 in registration order when there are several.
    assert_eq!(by_id("service:api-1:2")["Type"], "http");
    assert_eq!(by_id("service:api-1:2")["Name"], "web");
    assert_eq!(by_id("service:api-1:2")["Status"], "critical");
    assert_eq!(by_id("service:api-1:3")["Type"], "tcp");
    assert_eq!(by_id("service:api-1:3")["Status"], "warning");

    let services = get(&double, "/v1/agent/services").await.json();
    assert_eq!(services["api-1"]["Service"], "api");
    assert_eq!(services["api-1"]["Port"], 9000);
    assert!(services.get("consul").is_none());
    assert_eq!(
        get(&double, "/v1/status/leader").await.json(),
        "127.0.0.1:8300"
    );
}

#[tokio::test]
async fn passing_drops_critical_and_warning_and_tag_needs_every_tag() {
    let double = ConsulDouble::start().await;
    for (id, status, tags) in [
        ("ok", "passing", json!(["v1", "blue"])),
        ("warn", "warning", json!(["v1"])),
        ("bad", "critical", json!(["v1", "blue"])),
    ] {
        let check = json!({"TTL": "30s", "Status": status});
        double
            .register(json!({"Name": "web", "ID": id, "Tags": tags, "Check": check}))
            .await;
    }
    let ids = |entries: Vec<serde_json::Value>| -> Vec<String> {
        let id = |e: &serde_json::Value| e["Service"]["ID"].as_str().unwrap().to_owned();
        entries.iter().map(id).collect()
    };
    assert_eq!(
        ids(health(&double, "web", "").await.1),
        ["bad", "ok", "warn"]
    );
    for query in ["?passing", "?passing=true", "?passing=1"] {
        assert_eq!(
            ids(health(&double, "web", query).await.1),
            ["ok"],
            "{query}"
        );
    }
    assert_eq!(
        ids(health(&double, "web", "?passing=false").await.1).len(),
        3
    );
    let both = ids(health(&double, "web", "?tag=v1&tag=blue").await.1);
    assert_eq!(both, ["bad", "ok"]);
    let folded = ids(health(&double, "web", "?tag=BLUE&passing").await.1);
    assert_eq!(folded, ["ok"], "Consul matches tags case-insensitively");
    let answer = get(&double, "/v1/health/service/web?passing=maybe").await;
    assert_eq!(
        (answer.status, answer.text.as_str()),
        (400, "Invalid value for ?passing")
    );
}

#[tokio::test]
async fn unknown_service_is_an_empty_array_and_consul_has_an_entry() {
    let double = ConsulDouble::start().await;
    let (index, entries) = health(&double, "nope", "").await;
    assert!(entries.is_empty());
    assert!(index >= 1);
    let (_, entries) = health(&double, "consul", "?passing").await;
    assert_eq!(entries[0]["Service"]["Port"], 8300);
}

#[tokio::test]
async fn checks_take_pass_warn_fail_with_notes_and_updates() {
    let double = ConsulDouble::start().await;
    double
        .register(json!({"Name": "web", "Check": {"TTL": "30s"}}))
        .await;
    let output = |entries: &[serde_json::Value]| {
        let check = &entries[0]["Checks"][1];
        (check["Status"].clone(), check["Output"].clone())
    };
    for (action, status) in [
        ("pass", "passing"),
        ("warn", "warning"),
        ("fail", "critical"),
    ] {
        let path = format!("/v1/agent/check/{action}/service:web?note=said+{action}");
        let answer = put(&double, &path, None).await;
        assert_eq!((answer.status, answer.text.as_str()), (200, ""));
        let (_, entries) = health(&double, "web", "").await;
        assert_eq!(
            output(&entries),
            (json!(status), json!(format!("said {action}")))
        );
    }
    let body = json!({"Status": "passing", "Output": "all good"});
    let answer = put(&double, "/v1/agent/check/update/service:web", Some(body)).await;
    assert_eq!(answer.status, 200);
    let (_, entries) = health(&double, "web", "").await;
    assert_eq!(output(&entries), (json!("passing"), json!("all good")));
    let body = json!({"Status": "fine"});
    let answer = put(&double, "/v1/agent/check/update/service:web", Some(body)).await;
    assert_eq!(
        (answer.status, answer.text.as_str()),
        (400, "Invalid check status: 'fine'")
    );
}

#[tokio::test]
async fn agent_errors_use_consuls_codes_and_texts() {
    let double = ConsulDouble::start().await;
    let answer = put(&double, "/v1/agent/service/deregister/ghost", None).await;
    assert_eq!(answer.status, 404);
    assert!(
        answer.text.starts_with("Unknown service ID \"ghost\""),
        "{answer:?}"
    );

    let answer = put(&double, "/v1/agent/check/pass/ghost", None).await;
    assert_eq!(answer.status, 404);
    assert!(
        answer.text.starts_with("Unknown check ID \"ghost\""),
        "{answer:?}"
    );

    let answer = put(
        &double,
        "/v1/agent/service/register",
        Some(json!({"Port": 80})),
    )
    .await;
    assert_eq!(
        (answer.status, answer.text.as_str()),
        (400, "Missing service name")
    );

    let url = format!("{}/v1/agent/service/register", double.url());
    let response = crate::common::http()
        .put(url)
        .body("{\"Name\":")
        .send()
        .await
        .unwrap();
    let answer = crate::common::Answer::read(response).await;
    assert_eq!(answer.status, 400);
    assert!(
        answer.text.starts_with("Request decode failed"),
        "{answer:?}"
    );

    let bad_check = json!({"Name": "web", "Check": {"Status": "passing"}});
    let answer = put(&double, "/v1/agent/service/register", Some(bad_check)).await;
    assert_eq!(answer.status, 400);
    assert!(answer.text.starts_with("Invalid check: "), "{answer:?}");

    let answer = get(&double, "/v1/agent/service/register").await;
    assert_eq!(answer.status, 405);
    assert_eq!(answer.header("Allow"), Some("PUT"));
    assert_eq!(answer.text, "method GET not allowed");
    let answer = put(&double, "/v1/health/service/web", None).await;
    assert_eq!((answer.status, answer.header("Allow")), (405, Some("GET")));

    // Only TTL checks take their status from the API.
    let probe = json!({"HTTP": "http://127.0.0.1:1/", "Interval": "10s"});
    double
        .register(json!({"Name": "web", "Check": probe}))
        .await;
    let answer = put(&double, "/v1/agent/check/pass/service:web", None).await;
    assert_eq!(answer.status, 500);
    assert_eq!(
        answer.text,
        "CheckID \"service:web\" does not have associated TTL"
    );

    assert_eq!(get(&double, "/v1/nothing/here").await.status, 404);
}

#[tokio::test]
async fn query_options_are_checked_like_consul() {
    let double = ConsulDouble::start().await;
    for (query, status, text) in [
        ("?wait=soon&index=1", 400, "Invalid wait time"),
        ("?index=minus", 400, "Invalid index"),
        ("?dc=dc2", 500, "No path to datacenter"),
    ] {
        for path in ["/v1/catalog/services", "/v1/health/service/web"] {
            let answer = get(&double, &format!("{path}{query}")).await;
            assert_eq!(
                (answer.status, answer.text.as_str()),
                (status, text),
                "{path}{query}"
            );
        }
    }
    let answer = get(&double, "/v1/catalog/services?stale&consistent").await;
    assert_eq!(answer.status, 400);
    assert!(answer
        .text
        .starts_with("Cannot specify ?stale with ?consistent"));

    let answer = get(&double, "/v1/health/service/web?stale&dc=dc1").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("X-Consul-LastContact"), Some("0"));
    assert_eq!(answer.header("X-Consul-KnownLeader"), Some("true"));
    assert!(answer.index() >= 1);
    let answer = get(&double, "/v1/status/leader?dc=elsewhere").await;
    assert_eq!(answer.status, 500);
}

#[tokio::test]
async fn reregistering_updates_in_place_and_keeps_create_index() {
    let double = ConsulDouble::start().await;
    let check = json!({"TTL": "30s"});
    double
        .register(json!({"Name": "web", "Port": 1, "Check": check}))
        .await;
    double.check("pass", "service:web").await;
    let (first, entries) = health(&double, "web", "").await;
    let created = entries[0]["Service"]["CreateIndex"].clone();

    double
        .register(json!({"Name": "web", "Port": 2, "Check": check}))
        .await;
    let (second, entries) = health(&double, "web", "").await;
    assert!(second > first);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["Service"]["Port"], 2);
    assert_eq!(entries[0]["Service"]["CreateIndex"], created);
    assert_eq!(entries[0]["Service"]["ModifyIndex"], second);
    // As in Consul, a re-registered check keeps the status it had.
    assert_eq!(entries[0]["Checks"][1]["Status"], "passing");

    double.deregister("web").await;
    let (third, entries) = health(&double, "web", "").await;
    assert!(entries.is_empty());
    assert!(third > second);
}
