//! The Consul door's read: `/v1/health/service/{name}?passing` of the bench service,
//! measured against a static server answering the same bytes (the ceiling).

use anyhow::Context;
use bytes::Bytes;

use crate::servers::Server;

/// The Consul read the bench measures.
pub const CONSUL_READ_PATH: &str = "/v1/health/service/bench-svc?passing";

/// Whether `switchboard` serves the Consul door (a build from before it does not).
pub async fn has_consul_door(
    switchboard: &Server,
    client: &reqwest::Client,
) -> anyhow::Result<bool> {
    let response = client.get(switchboard.url("/v1/agent/self")).send().await?;
    Ok(response.status().is_success())
}

/// The door's answer, once it lists every bench instance; none without the door.
pub async fn body(switchboard: &Server, client: &reqwest::Client) -> anyhow::Result<Option<Bytes>> {
    if !has_consul_door(switchboard, client).await? {
        crate::progress("this switchboard has no Consul door: no Consul reads");
        return Ok(None);
    }
    let body = client
        .get(switchboard.url(CONSUL_READ_PATH))
        .send()
        .await?
        .error_for_status()
        .context("the Consul read failed")?
        .bytes()
        .await?;
    let entries: serde_json::Value =
        serde_json::from_slice(&body).context("the Consul read is not JSON")?;
    let listed = entries.as_array().map_or(0, Vec::len);
    if listed != crate::servers::INSTANCES {
        anyhow::bail!(
            "the Consul read lists {listed} of {} instances",
            crate::servers::INSTANCES
        );
    }
    Ok(Some(body))
}
