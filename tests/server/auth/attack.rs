//! The attack access control exists to stop: register an instance pointing at your own
//! host, then create a sync job that writes it into a production Consul with the token
//! stored for that source. Without a token nothing of it gets in; with a `register`
//! token the registration does (that is its role) but the job, a new source or a merge
//! rule does not, and production never sees the instance. An `operate` token shows the
//! same job would have written it.

use consul_double::{ConsulDouble, Options};
use reqwest::Method;
use serde_json::{json, Value};
use switchboard_connectors::SourceConfig;

use super::Guarded;
use crate::support::{poll, DEADLINE};

const PRODUCTION_TOKEN: &str = "production-consul-acl-token";

/// The production Consul's registrations of `name`.
async fn in_production(consul: &ConsulDouble, name: &str) -> Vec<Value> {
    let url = format!("{}/v1/health/service/{name}", consul.url());
    let response = reqwest::Client::new()
        .get(&url)
        .header("X-Consul-Token", PRODUCTION_TOKEN)
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    body.as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registering_and_syncing_into_production_fails_without_the_operate_role() {
    let production = ConsulDouble::start_with(Options {
        token: Some(PRODUCTION_TOKEN.to_owned()),
        ..Options::default()
    })
    .await;
    let source: SourceConfig = serde_json::from_value(json!({
        "id": "prod-consul", "type": "consul", "endpoints": [production.url()], "token": PRODUCTION_TOKEN,
    }))
    .unwrap();
    let guarded = Guarded::start_with(|config| config.sources.push(source)).await;
    let evil = json!({"service": "payments", "host": "203.0.113.66", "port": 443});
    let job = json!({"id": "exfiltrate", "from": ["native"], "to": "prod-consul", "services": "payments", "debounce": "0s"});
    let own_source = json!({"id": "mine", "type": "consul", "endpoints": ["http://127.0.0.1:9"]});
    let rule = json!({"rules": [{"services": ["payments"], "policy": "failover"}]});

    // No token: nothing gets in.
    for (method, path, body) in [
        (Method::POST, "/api/v1/instances", &evil),
        (Method::POST, "/api/v1/syncs", &job),
    ] {
        let (status, problem) = guarded.call(method, path, None, Some(body.clone())).await;
        assert_eq!(
            (status.as_u16(), &problem["code"]),
            (401, &json!("unauthenticated")),
            "{path}"
        );
    }

    // A register token registers, which is its role, and goes no further.
    let (_, register) = guarded.token("register", &["*"]).await;
    let (status, _) = guarded
        .call(
            Method::POST,
            "/api/v1/instances",
            Some(&register),
            Some(evil.clone()),
        )
        .await;
    assert_eq!(status, 201);
    for (method, path, body) in [
        (Method::POST, "/api/v1/syncs", job.clone()),
        (Method::PUT, "/api/v1/syncs/exfiltrate", job.clone()),
        (Method::POST, "/api/v1/syncs:plan", job.clone()),
        (Method::POST, "/api/v1/sources", own_source),
        (Method::PUT, "/api/v1/merge", rule),
    ] {
        let (status, problem) = guarded
            .call(method.clone(), path, Some(&register), Some(body))
            .await;
        assert_eq!(
            (status.as_u16(), &problem["code"]),
            (403, &json!("forbidden")),
            "{method} {path}: {problem}"
        );
    }
    let (_, jobs) = guarded
        .call(Method::GET, "/api/v1/syncs", Some(&guarded.admin), None)
        .await;
    assert_eq!(jobs, json!([]), "no job was created");
    let (_, sources) = guarded
        .call(Method::GET, "/api/v1/sources", Some(&guarded.admin), None)
        .await;
    assert_eq!(sources.as_array().map(Vec::len), Some(1), "{sources}");
    assert!(in_production(&production, "payments").await.is_empty());
    assert_eq!(production.requests_to("/v1/agent/service/register"), 0);

    // The same job from an operate token writes it: the attack was real, the role stops it.
    let (_, operate) = guarded.token("operate", &["*"]).await;
    let (status, created) = guarded
        .call(Method::POST, "/api/v1/syncs", Some(&operate), Some(job))
        .await;
    assert_eq!(status, 201, "{created}");
    poll("the copy in production", DEADLINE, || async {
        let copies = in_production(&production, "payments").await;
        (copies.len() == 1)
            .then_some(())
            .ok_or(format!("{copies:?}"))
    })
    .await;
}
