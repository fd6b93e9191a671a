//! The real binary with access control on: the bootstrap token's owner-only file, the
//! log (the file's path, audit lines, never a secret), tokens across a restart, and the
//! settings for anonymous reads and a guarded `/metrics`.

use std::path::Path;

use reqwest::Client;
use serde_json::{json, Value};

use super::bootstrap_secret;
use crate::support::BinaryServer;

const AUTH_ON: (&str, &str) = ("SWITCHBOARD_AUTH__ENABLED", "true");

async fn post(client: &Client, url: String, token: &str, body: Value) -> (u16, Value) {
    let response = client
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn read(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap()
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootstrap_token_is_owner_only_and_no_secret_reaches_the_log() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("switchboard.log");
    let mut server = BinaryServer::start_logged(&data, &[AUTH_ON], "127.0.0.1", &log).await;
    let file = data.join(switchboard::auth::BOOTSTRAP_FILE);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode, 0o600,
        "the bootstrap token's file is the owner's only"
    );
    let admin = bootstrap_secret(&data);
    let client = Client::new();

    let (status, operator) = post(
        &client,
        format!("{}/api/v1/tokens", server.base),
        &admin,
        json!({"name": "deployer", "role": "operate", "namespaces": ["*"]}),
    )
    .await;
    assert_eq!(status, 201, "{operator}");
    let operator_secret = operator["secret"].as_str().unwrap().to_owned();
    let (status, job) = post(
        &client,
        format!("{}/api/v1/syncs", server.base),
        &operator_secret,
        json!({"id": "to-native", "from": "*", "to": "native"}),
    )
    .await;
    assert_eq!(status, 201, "{job}");
    server.stop().await;

    let text = read(&log);
    assert!(
        text.contains(&file.display().to_string()),
        "the log names the file:\n{text}"
    );
    let audit = text
        .lines()
        .find(|line| line.contains("Change through the API") && line.contains("/api/v1/syncs"))
        .unwrap_or_else(|| panic!("an audit line for the sync job:\n{text}"));
    assert!(
        audit.contains(operator["id"].as_str().unwrap()) && audit.contains("deployer"),
        "{audit}"
    );
    for secret in [&admin, &operator_secret] {
        assert!(
            !text.contains(secret.as_str()),
            "a secret reached the log:\n{text}"
        );
    }

    // Tokens outlive a restart; with one there, no second bootstrap token is made.
    std::fs::remove_file(&file).unwrap();
    let restarted = BinaryServer::start_logged(&data, &[AUTH_ON], "127.0.0.1", &log).await;
    let me = client
        .get(format!("{}/api/v1/tokens/self", restarted.base))
        .bearer_auth(&operator_secret)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    assert!(!file.exists(), "no bootstrap while tokens exist");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_reads_and_a_guarded_metrics_page_are_settings() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("switchboard.log");
    let env = [
        AUTH_ON,
        ("SWITCHBOARD_AUTH__ANONYMOUS", "read"),
        ("SWITCHBOARD_AUTH__PROTECT_METRICS", "true"),
    ];
    let server = BinaryServer::start_logged(&data, &env, "127.0.0.1", &log).await;
    let admin = bootstrap_secret(&data);
    let client = Client::new();
    let get = |path: &str, token: Option<&str>| {
        let mut request = client.get(format!("{}{path}", server.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    assert_eq!(get("/api/v1/services", None).await.unwrap().status(), 200);
    assert_eq!(get("/health", None).await.unwrap().status(), 200);
    assert_eq!(get("/ready", None).await.unwrap().status(), 200);
    assert_eq!(get("/metrics", None).await.unwrap().status(), 401);
    assert_eq!(get("/metrics", Some(&admin)).await.unwrap().status(), 200);
    assert_eq!(get("/api/v1/sources", None).await.unwrap().status(), 401);
    let register = client
        .post(format!("{}/api/v1/instances", server.base))
        .json(&json!({"service": "s", "host": "10.0.0.1", "port": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(register.status(), 401, "anonymous is read only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_control_off_or_plain_http_beyond_loopback_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("loopback.log");
    let mut loopback =
        BinaryServer::start_logged(&dir.path().join("a"), &[], "127.0.0.1", &log).await;
    loopback.stop().await;
    let text = read(&log);
    assert!(text.contains("Access control is off"), "{text}");
    assert!(!text.contains("Listening beyond this machine"), "{text}");

    let log = dir.path().join("everywhere.log");
    let mut everywhere =
        BinaryServer::start_logged(&dir.path().join("b"), &[], "0.0.0.0", &log).await;
    everywhere.stop().await;
    let text = read(&log);
    assert!(
        text.contains("Listening beyond this machine with access control off"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_admin_secrets_are_replaced_offline_and_never_while_the_server_runs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("switchboard.log");
    let bootstrap = |data: &Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(["bootstrap", "--data-dir"])
            .arg(data)
            .output()
            .unwrap()
    };
    let refused = bootstrap(&data);
    assert!(!refused.status.success(), "no store there yet");

    let mut server = BinaryServer::start_logged(&data, &[AUTH_ON], "127.0.0.1", &log).await;
    let lost = bootstrap_secret(&data);
    let busy = bootstrap(&data);
    assert!(!busy.status.success(), "the running server holds the store");
    assert!(
        String::from_utf8_lossy(&busy.stderr).contains("stop the Switchboard"),
        "{busy:?}"
    );
    server.stop().await;

    let made = bootstrap(&data);
    assert!(made.status.success(), "{made:?}");
    let found = bootstrap_secret(&data);
    assert_ne!(found, lost);
    let restarted = BinaryServer::start_logged(&data, &[AUTH_ON], "127.0.0.1", &log).await;
    let client = Client::new();
    for secret in [&found, &lost] {
        let tokens = client
            .get(format!("{}/api/v1/tokens", restarted.base))
            .bearer_auth(secret)
            .send()
            .await
            .unwrap();
        assert_eq!(
            tokens.status(),
            200,
            "both admin tokens work; the old one stays until revoked"
        );
    }
}
