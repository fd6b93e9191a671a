//! The test hooks: ACL tokens, failing mode, snapshot restore, stop/resume, the request
//! counters (each also while requests are in flight), and metadata stripping.

use std::time::Duration;

use crate::common::{get, health, park, park_catalog, Answer};
use consul_double::{ConsulDouble, Options};
use serde_json::{json, Value};

const HEALTH: &str = "/v1/health/service/";

async fn get_with(double: &ConsulDouble, path: &str, header: Option<(&str, &str)>) -> Answer {
    let mut request = crate::common::http().get(format!("{}{path}", double.url()));
    if let Some((name, value)) = header {
        request = request.header(name, value);
    }
    Answer::read(request.send().await.unwrap()).await
}

#[tokio::test]
async fn a_required_token_guards_every_endpoint() {
    let double = ConsulDouble::start().await;
    assert_eq!(get(&double, "/v1/catalog/services").await.status, 200);
    double.set_token(Some("s3cret"));

    let missing = get(&double, "/v1/catalog/services").await;
    assert_eq!(
        (missing.status, missing.text.as_str()),
        (403, "Permission denied")
    );
    let wrong = get_with(
        &double,
        "/v1/catalog/services",
        Some(("X-Consul-Token", "nope")),
    )
    .await;
    assert_eq!((wrong.status, wrong.text.as_str()), (403, "ACL not found"));
    let write = crate::common::put(
        &double,
        "/v1/agent/service/register",
        Some(json!({"Name": "x"})),
    );
    assert_eq!(write.await.status, 403);

    let right = get_with(
        &double,
        "/v1/catalog/services",
        Some(("X-Consul-Token", "s3cret")),
    );
    assert_eq!(right.await.status, 200);
    let bearer = Some(("Authorization", "Bearer s3cret"));
    assert_eq!(
        get_with(&double, "/v1/catalog/services", bearer)
            .await
            .status,
        200
    );
    assert_eq!(
        get(&double, "/v1/catalog/services?token=s3cret")
            .await
            .status,
        200
    );

    // The conveniences send the token themselves.
    double.register(json!({"Name": "web"})).await;
    double.set_token(None);
    assert_eq!(health(&double, "web", "").await.1.len(), 1);
}

#[tokio::test]
async fn a_token_can_be_required_from_the_start() {
    let options = Options {
        token: Some("t".to_owned()),
        datacenter: "east".to_owned(),
        ..Options::default()
    };
    let double = ConsulDouble::start_with(options).await;
    assert_eq!(get(&double, "/v1/catalog/services").await.status, 403);
    let answer = get(&double, "/v1/health/service/consul?token=t&dc=east").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()[0]["Node"]["Datacenter"], "east");
}

#[tokio::test]
async fn a_restore_wakes_parked_queries_with_a_lower_index() {
    let double = ConsulDouble::start().await;
    double.register(json!({"Name": "web"})).await;
    double.register(json!({"Name": "web", "Port": 1})).await;
    let (index, _) = health(&double, "web", "").await;
    assert!(index >= 3);

    let parked = park(&double, &format!("{HEALTH}web"), index, "5s", HEALTH, 2).await;
    double.restore_index(1);
    let (answer, took) = parked.await.unwrap().unwrap();
    assert!(took < Duration::from_secs(3), "woke after {took:?}");
    assert_eq!(answer.index(), 1);
    assert_eq!(answer.json()[0]["Service"]["Port"], 1, "state is kept");
    assert_eq!(double.index(), 1);

    // The next write moves on from the restored index.
    double.register(json!({"Name": "web", "Port": 2})).await;
    assert_eq!(health(&double, "web", "").await.0, 2);
}

#[tokio::test]
async fn failing_answers_500_and_wakes_parked_queries() {
    let double = ConsulDouble::start().await;
    let index = get(&double, "/v1/catalog/services").await.index();
    let parked = park_catalog(&double, index, 2).await;
    double.set_failing(true);
    let (answer, took) = parked.await.unwrap().unwrap();
    assert!(took < Duration::from_secs(3), "woke after {took:?}");
    assert_eq!(
        (answer.status, answer.text.as_str()),
        (500, "rpc error: No cluster leader")
    );
    let answer = crate::common::put(
        &double,
        "/v1/agent/service/register",
        Some(json!({"Name": "w"})),
    );
    assert_eq!(answer.await.status, 500);

    double.set_failing(false);
    assert_eq!(get(&double, "/v1/catalog/services").await.status, 200);
}

#[tokio::test]
async fn stop_breaks_connections_and_resume_serves_the_same_state_on_the_same_port() {
    let double = ConsulDouble::start().await;
    double.register(json!({"Name": "web"})).await;
    let (index, _) = health(&double, "web", "").await;
    let addr = double.addr();

    let parked = park(&double, &format!("{HEALTH}web"), index, "10s", HEALTH, 2).await;
    double.stop().await;
    let broken = tokio::time::timeout(Duration::from_secs(3), parked).await;
    let broken = broken.expect("the parked request ends when the double stops");
    assert!(
        broken.unwrap().is_err(),
        "an in-flight request sees a broken connection"
    );
    let refused = crate::common::http().get(double.url()).send().await;
    assert!(refused.is_err(), "a stopped double refuses connections");

    double.resume().await;
    assert_eq!(double.addr(), addr);
    let (again, entries) = health(&double, "web", "").await;
    assert_eq!((again, entries.len()), (index, 1));
    double.register(json!({"Name": "db"})).await;
}

#[tokio::test]
async fn requests_are_counted_on_arrival_by_path() {
    let double = ConsulDouble::start().await;
    assert_eq!(double.requests(), 0);
    get(&double, "/v1/catalog/services").await;
    health(&double, "web", "?passing").await;
    health(&double, "db", "").await;
    get(&double, "/v1/unknown").await;
    assert_eq!(double.requests(), 4);
    assert_eq!(double.requests_to("/v1/health/service/"), 2);
    assert_eq!(double.requests_to("/v1/health/service/web"), 1);
    assert_eq!(double.requests_to("/v1/catalog/"), 1);
    double.set_failing(true);
    get(&double, "/v1/catalog/services").await;
    assert_eq!(
        double.requests_to("/v1/catalog/"),
        2,
        "refused requests count too"
    );
}

/// A registration marked the way Switchboard marks its writes, plus a user key.
fn marked(id: &str, sync: &str) -> Value {
    json!({
        "Name": "web", "ID": id, "Tags": ["v1"], "Address": "10.0.0.1", "Port": 80,
        "Meta": {"switchboard.sync": sync, "zone": "a"},
        "Weights": {"Passing": 3, "Warning": 2},
        "Check": {"TTL": "30s", "Status": "passing"},
    })
}

/// `Meta` of service `id` in `/v1/health/service/web` and in `/v1/agent/services`.
async fn meta_of(double: &ConsulDouble, id: &str) -> (Value, Value) {
    let (_, entries) = health(double, "web", "").await;
    let entry = entries.iter().find(|e| e["Service"]["ID"] == id);
    let health_meta =
        entry.unwrap_or_else(|| panic!("no {id} in {entries:?}"))["Service"]["Meta"].clone();
    let agent = get(double, "/v1/agent/services").await.json();
    (health_meta, agent[id]["Meta"].clone())
}

#[tokio::test]
async fn strip_meta_stores_registrations_without_meta_and_keeps_the_rest() {
    let options = Options {
        strip_meta: true,
        ..Options::default()
    };
    let double = ConsulDouble::start_with(options).await;
    double.register(marked("web-1", "j1")).await;

    assert_eq!(meta_of(&double, "web-1").await, (json!({}), json!({})));
    let (index, entries) = health(&double, "web", "").await;
    let service = &entries[0]["Service"];
    assert_eq!(service["Tags"], json!(["v1"]));
    assert_eq!(
        (&service["Address"], &service["Port"]),
        (&json!("10.0.0.1"), &json!(80))
    );
    assert_eq!(service["Weights"], json!({"Passing": 3, "Warning": 2}));
    let checks = entries[0]["Checks"].as_array().unwrap();
    assert_eq!(checks[1]["CheckID"], "service:web-1");
    assert_eq!(checks[1]["Status"], "passing");
    let agent = get(&double, "/v1/agent/services").await.json();
    assert_eq!(agent["web-1"]["Tags"], json!(["v1"]));
    assert_eq!(
        agent["web-1"]["Weights"],
        json!({"Passing": 3, "Warning": 2})
    );

    // What a syncing client's rewrite looks like once the registry has dropped the marks: an
    // unchanged row, so no watcher of the name wakes.
    double.register(marked("web-1", "j2")).await;
    assert_eq!(health(&double, "web", "").await.0, index);
}

#[tokio::test]
async fn meta_is_kept_by_default_and_stripping_can_be_switched_at_runtime() {
    let double = ConsulDouble::start().await;
    let kept = json!({"switchboard.sync": "j1", "zone": "a"});
    double.register(marked("web-1", "j1")).await;
    assert_eq!(
        meta_of(&double, "web-1").await,
        (kept.clone(), kept.clone())
    );

    double.set_strip_meta(true);
    double.register(marked("web-2", "j1")).await;
    assert_eq!(meta_of(&double, "web-2").await, (json!({}), json!({})));
    // Stripping happens on registration: what is already stored stays.
    assert_eq!(
        meta_of(&double, "web-1").await,
        (kept.clone(), kept.clone())
    );

    double.set_strip_meta(false);
    double.register(marked("web-3", "j1")).await;
    assert_eq!(meta_of(&double, "web-3").await, (kept.clone(), kept));
}
