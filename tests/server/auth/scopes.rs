//! Namespaces: a token reaches only its own, lists show only those, `X-Tenant-Id` names
//! the namespace of a request that names none, and tokens manage only tokens within
//! their reach.

use reqwest::Method;
use serde_json::{json, Value};

use super::{registration, Guarded};

/// Registers `service` in `namespace` as the bootstrap admin; the instance's id.
async fn seed(guarded: &Guarded, service: &str, namespace: &str, address: &str) -> String {
    let (status, instance) = guarded
        .seed(registration(service, namespace, address))
        .await;
    assert_eq!(status, 201, "{instance}");
    instance["id"].as_str().unwrap().to_owned()
}

fn names(list: &Value) -> Vec<String> {
    let mut names: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{}/{}",
                s["namespace"].as_str().unwrap(),
                s["name"].as_str().unwrap()
            )
        })
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_token_reads_and_lists_only_its_namespaces() {
    let guarded = Guarded::start().await;
    seed(&guarded, "pay", "team-a", "10.1.0.1").await;
    seed(&guarded, "ship", "team-b", "10.1.0.2").await;
    seed(&guarded, "core", "default", "10.1.0.3").await;
    let (_, team_a) = guarded.token("read", &["team-a"]).await;
    let (_, teams) = guarded.token("admin", &["team-*"]).await;
    let read = |path: &'static str, token: &String| {
        let token = token.clone();
        let guarded = &guarded;
        async move { guarded.call(Method::GET, path, Some(&token), None).await }
    };

    let (status, list) = read("/api/v1/services", &team_a).await;
    assert_eq!(status, 200);
    assert_eq!(names(&list), ["team-a/pay"]);
    let (_, list) = read("/api/v1/services", &teams).await;
    assert_eq!(names(&list), ["team-a/pay", "team-b/ship"]);
    let (_, list) = read("/api/v1/services", &guarded.admin).await;
    assert_eq!(names(&list), ["default/core", "team-a/pay", "team-b/ship"]);

    let (status, _) = read("/api/v1/services?namespace=team-b", &team_a).await;
    assert_eq!(status, 403);
    let (status, body) = read("/api/v1/services/pay/instances?namespace=team-a", &team_a).await;
    assert_eq!(
        (status.as_u16(), body.as_array().map(Vec::len)),
        (200, Some(1)),
        "{body}"
    );
    let (status, body) = read("/api/v1/services/core/instances", &team_a).await;
    assert_eq!(
        (status.as_u16(), &body["code"]),
        (403, &json!("forbidden")),
        "{body}"
    );

    let (status, all) = read("/api/v1/admin/all", &teams).await;
    assert_eq!(status, 200);
    let mut services: Vec<&String> = all.as_object().unwrap().keys().collect();
    services.sort();
    assert_eq!(services, ["pay", "ship"], "{all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenant_header_names_the_namespace_of_reads_and_registrations() {
    let guarded = Guarded::start().await;
    let (_, tenant) = guarded.token("register", &["tenant-1"]).await;
    let client = &guarded.server.client;
    let registered: Value = client
        .post(guarded.server.url("/api/v1/instances"))
        .bearer_auth(&tenant)
        .header("X-Tenant-Id", "tenant-1")
        .json(&json!({"service": "user-service", "host": "192.168.1.100", "port": 8080}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(registered["namespace"], "tenant-1", "{registered}");

    let listed = |tenant_id: &'static str| {
        client
            .get(
                guarded
                    .server
                    .url("/api/v1/services/user-service/instances"),
            )
            .bearer_auth(&tenant)
            .header("X-Tenant-Id", tenant_id)
            .send()
    };
    let mine = listed("tenant-1").await.unwrap();
    assert_eq!(mine.status(), 200);
    let mine: Value = mine.json().await.unwrap();
    assert_eq!(mine.as_array().unwrap().len(), 1, "{mine}");
    assert_eq!(listed("tenant-2").await.unwrap().status(), 403);
    let bad = listed("no spaces").await.unwrap();
    assert_eq!(bad.status(), 400);
    let problem: Value = bad.json().await.unwrap();
    assert_eq!(problem["code"], "invalid_tenant", "{problem}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_register_token_changes_only_instances_in_its_namespaces() {
    let guarded = Guarded::start().await;
    let theirs = seed(&guarded, "ship", "team-b", "10.2.0.2").await;
    let (_, team_a) = guarded.token("register", &["team-a"]).await;
    let token = Some(team_a.as_str());

    let (status, _) = guarded
        .call(
            Method::POST,
            "/api/v1/instances",
            token,
            Some(registration("pay", "team-a", "10.2.0.1")),
        )
        .await;
    assert_eq!(status, 201);
    let (status, body) = guarded
        .call(
            Method::POST,
            "/api/v1/instances",
            token,
            Some(registration("pay", "team-b", "10.2.0.9")),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    // An id is one instance across namespaces: taking it over from team-b is a change
    // in team-b.
    let mut takeover = registration("ship", "team-a", "203.0.113.66");
    takeover["id"] = json!(theirs);
    let (status, body) = guarded
        .call(Method::POST, "/api/v1/instances", token, Some(takeover))
        .await;
    assert_eq!(
        (status.as_u16(), &body["code"]),
        (403, &json!("forbidden")),
        "{body}"
    );
    assert!(
        !body.to_string().contains("team-b"),
        "the namespace beyond the token is not named: {body}"
    );
    for (method, path, body) in [
        (Method::DELETE, format!("/api/v1/instances/{theirs}"), None),
        (
            Method::PUT,
            format!("/api/v1/instances/{theirs}/heartbeat"),
            None,
        ),
        (
            Method::PUT,
            format!("/api/v1/instances/{theirs}/status"),
            Some(json!({"status": "offline"})),
        ),
        (Method::GET, format!("/api/v1/instances/{theirs}"), None),
    ] {
        let (status, answer) = guarded.call(method.clone(), &path, token, body).await;
        assert_eq!(status, 403, "{method} {path}: {answer}");
    }
    let (status, still) = guarded
        .call(
            Method::GET,
            &format!("/api/v1/instances/{theirs}"),
            Some(&guarded.admin),
            None,
        )
        .await;
    assert_eq!(
        (status.as_u16(), &still["status"]),
        (200, &json!("active")),
        "{still}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_manage_only_tokens_within_their_reach_and_never_show_secrets_again() {
    let guarded = Guarded::start().await;
    let (teams_id, teams) = guarded.token("admin", &["team-*"]).await;
    let token = Some(teams.as_str());
    let (status, made) = guarded
        .call(
            Method::POST,
            "/api/v1/tokens",
            token,
            Some(json!({"name": "ci", "role": "register", "namespaces": ["team-a"], "expires_in": "24h"})),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["created_by"], teams_id.as_str());
    assert!(made["expires_at"].is_string(), "{made}");
    let secret = made["secret"].as_str().unwrap().to_owned();
    for beyond in [
        json!({"name": "x", "role": "read", "namespaces": ["*"]}),
        json!({"name": "x", "role": "read", "namespaces": ["prod"]}),
        json!({"name": "x", "role": "read", "namespaces": ["team-*", "x"]}),
    ] {
        let (status, body) = guarded
            .call(Method::POST, "/api/v1/tokens", token, Some(beyond))
            .await;
        assert_eq!(
            (status.as_u16(), &body["code"]),
            (403, &json!("forbidden")),
            "{body}"
        );
    }

    let (status, list) = guarded
        .call(Method::GET, "/api/v1/tokens", token, None)
        .await;
    assert_eq!(status, 200);
    let listed: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        listed,
        ["admin [\"team-*\"]", "ci"],
        "the bootstrap token is beyond its reach"
    );
    let (_, everything) = guarded
        .call(Method::GET, "/api/v1/tokens", Some(&guarded.admin), None)
        .await;
    let bootstrap = everything
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "bootstrap")
        .unwrap();
    let path = format!("/api/v1/tokens/{}", bootstrap["id"].as_str().unwrap());
    assert_eq!(guarded.call(Method::GET, &path, token, None).await.0, 404);
    assert_eq!(
        guarded.call(Method::DELETE, &path, token, None).await.0,
        404
    );

    for shown in [&list, &everything] {
        let text = shown.to_string();
        assert!(!text.contains("secret") && !text.contains("hash"), "{text}");
        assert!(!text.contains(&secret) && !text.contains(&guarded.admin));
    }
    let (status, own) = guarded
        .call(Method::GET, "/api/v1/tokens/self", Some(&secret), None)
        .await;
    assert_eq!(
        (status.as_u16(), &own["name"], &own["role"]),
        (200, &json!("ci"), &json!("register"))
    );
    assert!(own.get("secret").is_none(), "{own}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_question_mark_scope_cannot_make_itself_a_star() {
    let guarded = Guarded::start().await;
    let (_, narrow) = guarded.token("admin", &["?"]).await;
    let (status, body) = guarded
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(&narrow),
            Some(json!({"name": "wide", "role": "admin", "namespaces": ["*"]})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), &body["code"]),
        (403, &json!("forbidden")),
        "{body}"
    );
}
