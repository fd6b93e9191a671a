//! Switchboard with access control on, serving the same read to a client that sends a
//! `read` token with every request: what the check costs, against the same read with
//! access control off.

use anyhow::Context;
use serde_json::{json, Value};

use crate::servers::{self, Server};

/// The guarded server and the header its reads carry.
pub struct Guarded {
    pub server: Server,
    pub header: String,
}

/// Starts it with the bench instances registered; none when the binary has no access
/// control (a build from before it, run for a before/after comparison).
pub async fn start(
    binary: &std::path::Path,
    client: &reqwest::Client,
) -> anyhow::Result<Option<Guarded>> {
    let on = [("SWITCHBOARD_AUTH__ENABLED", "true".to_owned())];
    let server = servers::start_switchboard_with_env(binary, client, None, &on).await?;
    let file = server.dir().join("data").join("bootstrap-token");
    let Ok(admin) = std::fs::read_to_string(&file) else {
        crate::progress("this switchboard has no access control: no guarded reads");
        return Ok(None);
    };
    let admin = admin.trim();
    let token: Value = client
        .post(server.url("/api/v1/tokens"))
        .bearer_auth(admin)
        .json(&json!({"name": "bench reader", "role": "read", "namespaces": ["*"]}))
        .send()
        .await?
        .error_for_status()
        .context("the guarded switchboard refused to create a read token")?
        .json()
        .await?;
    let secret = token["secret"]
        .as_str()
        .context("a new token without its secret")?;
    servers::register_switchboard(&server, client, Some(admin)).await?;
    let listed = client
        .get(server.url(servers::SWITCHBOARD_READ_PATH))
        .bearer_auth(secret)
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    crate::lists_all_instances(&listed)
        .map_err(|why| anyhow::anyhow!("the guarded read: {why}"))?;
    Ok(Some(Guarded {
        server,
        header: format!("Authorization: Bearer {secret}"),
    }))
}
