//! Access control, end to end: every route against every role and scope (`routes.rs`),
//! namespaces and tenants (`scopes.rs`), revocation and expiry cutting live requests
//! (`revocation.rs`), the attack access control exists to stop (`attack.rs`), and the
//! real binary's bootstrap file, logs and settings (`binary.rs`).

mod attack;
mod binary;
mod revocation;
mod routes;
mod scopes;

use std::path::Path;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use switchboard::auth::BOOTSTRAP_FILE;
use switchboard::config::Config;
use tempfile::TempDir;

use crate::support::{test_config, TestServer};

/// A server with access control on, and its bootstrap admin secret.
pub struct Guarded {
    pub server: TestServer,
    pub admin: String,
    _dir: TempDir,
}

impl Guarded {
    pub async fn start() -> Guarded {
        Guarded::start_with(|_| {}).await
    }

    /// [`Guarded::start`] with `adjust` applied to the config first.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Guarded {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        config.auth.enabled = true;
        adjust(&mut config);
        let server = TestServer::start(config).await;
        let admin = bootstrap_secret(dir.path());
        Guarded {
            server,
            admin,
            _dir: dir,
        }
    }

    /// Sends `method path` with `token` as a Bearer credential (none: no credential) and
    /// `body` as JSON.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> reqwest::Response {
        let mut request = self.server.client.request(method, self.server.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.unwrap()
    }

    /// `send`, answering the status and the JSON body (null when there is none).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let response = self.send(method, path, token, body.as_ref()).await;
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A new token (created by the bootstrap admin): its id and secret.
    pub async fn token(&self, role: &str, namespaces: &[&str]) -> (String, String) {
        let body = json!({"name": format!("{role} {namespaces:?}"), "role": role, "namespaces": namespaces});
        let (status, token) = self
            .call(
                Method::POST,
                "/api/v1/tokens",
                Some(&self.admin),
                Some(body),
            )
            .await;
        assert_eq!(status, 201, "{token}");
        let secret = token["secret"]
            .as_str()
            .expect("a new token shows its secret");
        (token["id"].as_str().unwrap().to_owned(), secret.to_owned())
    }
}

impl Guarded {
    /// Registers `body` as the bootstrap admin, which must succeed: 201 for a new
    /// instance, 200 for one registered again. The status and the instance.
    pub async fn seed(&self, body: Value) -> (StatusCode, Value) {
        let (status, instance) = self
            .call(
                Method::POST,
                "/api/v1/instances",
                Some(&self.admin),
                Some(body),
            )
            .await;
        assert!(status.is_success(), "{instance}");
        (status, instance)
    }

    /// Revokes token `id` as the bootstrap admin; the answer's status.
    pub async fn revoke(&self, id: &str) -> StatusCode {
        let path = format!("/api/v1/tokens/{id}");
        self.call(Method::DELETE, &path, Some(&self.admin), None)
            .await
            .0
    }
}

/// The bootstrap admin secret Switchboard wrote in `data_dir`.
pub fn bootstrap_secret(data_dir: &Path) -> String {
    let text = std::fs::read_to_string(data_dir.join(BOOTSTRAP_FILE))
        .expect("access control on with no token writes the bootstrap token");
    text.trim().to_owned()
}

/// A registration body for `service` in `namespace`.
pub fn registration(service: &str, namespace: &str, address: &str) -> Value {
    json!({"service": service, "namespace": namespace, "host": address, "port": 80})
}
