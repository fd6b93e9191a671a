//! Every operation the OpenAPI document lists, walked with no token and with tokens of
//! each role over every namespace and over another namespace only: each answers as its
//! row of the access table says. An operation the table has no row for fails here, so a
//! new route cannot be added unguarded.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use switchboard::api::access::{self, Need, Reach};
use switchboard::api::ROUTES;
use switchboard::auth::Role;

use super::{registration, Guarded};

/// Who calls: a label, the secret, the role and whether the token reaches `default`.
struct Caller {
    label: String,
    secret: Option<String>,
    role: Option<Role>,
    everywhere: bool,
}

/// What access control should do with a request.
#[derive(Debug, PartialEq)]
enum Expect {
    Admit,
    Unauthenticated,
    Forbidden,
}

fn expect(need: Need, caller: &Caller) -> Expect {
    let Some(role) = caller.role else {
        return match need {
            Need::Open | Need::Metrics => Expect::Admit,
            _ => Expect::Unauthenticated,
        };
    };
    match need {
        Need::Open | Need::Metrics | Need::AnyToken => Expect::Admit,
        Need::Role(needed, _) if role < needed => Expect::Forbidden,
        // The walk's namespace is `default`, which only the everywhere tokens reach.
        Need::Role(_, Reach::Named | Reach::Found | Reach::Everywhere) if !caller.everywhere => {
            Expect::Forbidden
        }
        Need::Role(..) => Expect::Admit,
    }
}

const INSTANCE: &str = "walk-1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_admits_exactly_the_roles_and_namespaces_its_access_row_names() {
    let guarded = Guarded::start().await;
    let mut callers = vec![Caller {
        label: "no token".into(),
        secret: None,
        role: None,
        everywhere: false,
    }];
    for role in [Role::Read, Role::Register, Role::Operate, Role::Admin] {
        for (namespaces, everywhere) in [(&["*"][..], true), (&["elsewhere", "team-*"][..], false)]
        {
            let (_, secret) = guarded.token(role.as_str(), namespaces).await;
            callers.push(Caller {
                label: format!("{role} over {namespaces:?}"),
                secret: Some(secret),
                role: Some(role),
                everywhere,
            });
        }
    }
    let (status, document) = guarded.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, 200);
    let paths = document["paths"].as_object().unwrap();
    for route in ROUTES {
        assert!(
            paths.contains_key(*route),
            "{route} is served but not documented"
        );
    }

    let mut walked = 0;
    for (route, item) in paths {
        for (method, _) in item.as_object().unwrap() {
            let method: Method = method.to_uppercase().parse().unwrap();
            assert!(
                access::ACCESS
                    .iter()
                    .any(|(m, r, _)| *m == method.as_str() && r == route),
                "{method} {route} has no row in api::access::ACCESS"
            );
            let need = access::need_of(&method, route);
            for caller in &callers {
                let path = guarded.prepare(&method, route).await;
                let body = body_for(&method, route);
                let response = guarded
                    .send(
                        method.clone(),
                        &path,
                        caller.secret.as_deref(),
                        body.as_ref(),
                    )
                    .await;
                let status = response.status();
                let challenge = response.headers().get("www-authenticate").cloned();
                let seen = match status {
                    StatusCode::UNAUTHORIZED => Expect::Unauthenticated,
                    StatusCode::FORBIDDEN => Expect::Forbidden,
                    _ => Expect::Admit,
                };
                // An admitted watch is a stream that does not end: its body is not read.
                let text = match seen {
                    Expect::Admit => String::new(),
                    _ => response.text().await.unwrap_or_default(),
                };
                assert_eq!(
                    seen,
                    expect(need, caller),
                    "{method} {path} by {}: {status} {text}",
                    caller.label
                );
                match seen {
                    Expect::Unauthenticated => {
                        let challenge = challenge.expect("a 401 carries WWW-Authenticate");
                        assert!(
                            challenge.to_str().unwrap().starts_with("Bearer"),
                            "{challenge:?}"
                        );
                    }
                    Expect::Forbidden => {
                        let problem: Value = serde_json::from_str(&text).unwrap();
                        assert_eq!(problem["code"], "forbidden", "{problem}");
                    }
                    Expect::Admit => {}
                }
                walked += 1;
            }
        }
    }
    assert!(walked >= ROUTES.len() * callers.len(), "walked {walked}");
}

impl Guarded {
    /// The concrete path for `route`, with what it names in place: the instance (put
    /// back first, as an earlier step may have removed it), a fresh token for a token
    /// route (one may be revoked), made-up names elsewhere.
    async fn prepare(&self, method: &Method, route: &str) -> String {
        if route.contains("/instances/{id}") || route.starts_with("/api/v1/admin/") {
            let mut body = registration("svc", "default", "10.0.0.1");
            body["id"] = json!(INSTANCE);
            self.seed(body).await;
        }
        let mut path = route.replace("{name}", "svc");
        if route.starts_with("/api/v1/instances/") {
            path = path.replace("{id}", INSTANCE);
        } else if route == "/api/v1/tokens/{id}" {
            let (id, _) = self.token("read", &["*"]).await;
            path = path.replace("{id}", &id);
        } else {
            path = path.replace("{id}", "nope");
        }
        if route == "/api/v1/watch" && *method == Method::GET {
            // A stream: its first event shows it was admitted; the test reads no further.
            path.push_str("?service=svc");
        }
        path
    }
}

/// A body that passes validation where the route's check comes after it (the
/// registration and the status change read their namespace from it or after it); `{}`
/// for the other writes, which access control decides on before reading a body.
fn body_for(method: &Method, route: &str) -> Option<Value> {
    match (method.as_str(), route) {
        ("POST", "/api/v1/instances") => Some(registration("svc", "default", "10.0.0.2")),
        ("PUT", "/api/v1/instances/{id}/status") => Some(json!({"status": "active"})),
        ("POST" | "PUT" | "PATCH", _) => Some(json!({})),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_works_in_either_header_and_a_bad_one_is_told_apart_from_none() {
    let guarded = Guarded::start().await;
    let (_, secret) = guarded.token("read", &["*"]).await;
    let url = guarded.server.url("/api/v1/services");
    let client = &guarded.server.client;
    let by_header = client
        .get(&url)
        .header("X-Switchboard-Token", &secret)
        .send()
        .await
        .unwrap();
    assert_eq!(by_header.status(), 200);

    let none = client.get(&url).send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert_eq!(
        none.headers()["www-authenticate"],
        "Bearer realm=\"switchboard\""
    );
    let problem: Value = none.json().await.unwrap();
    assert_eq!(problem["code"], "unauthenticated");

    // The last digit changed (to one it is not: a fixed digit matched 1 time in 16).
    let last = if secret.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &secret[..secret.len() - 1]);
    for (header, value) in [
        ("authorization", format!("Bearer {forged}")),
        ("authorization", "Basic YWRtaW46YWRtaW4=".to_owned()),
        ("x-switchboard-token", "sb_nothing".to_owned()),
    ] {
        let bad = client
            .get(&url)
            .header(header, &value)
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), 401, "{header}: {value}");
        assert_eq!(
            bad.headers()["www-authenticate"],
            "Bearer realm=\"switchboard\", error=\"invalid_token\""
        );
        let problem: Value = bad.json().await.unwrap();
        assert_eq!(problem["code"], "invalid_token", "{problem}");
    }
    let failures = guarded
        .server
        .metric("switchboard_auth_failures_total{reason=\"invalid\"}")
        .await;
    assert_eq!(failures, 3.0);
    let missing = guarded
        .server
        .metric("switchboard_auth_failures_total{reason=\"missing\"}")
        .await;
    assert_eq!(missing, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_access_control_off_no_token_can_be_made() {
    let dir = tempfile::tempdir().unwrap();
    let server = crate::support::TestServer::start(crate::support::test_config(dir.path())).await;
    let response = server
        .client
        .post(server.url("/api/v1/tokens"))
        .json(&json!({"name": "early", "role": "admin", "namespaces": ["*"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "auth_disabled", "{problem}");
    let (status, own) = server.get_json("/api/v1/tokens/self").await;
    assert_eq!((status.as_u16(), &own["code"]), (404, &json!("no_token")));
}
