//! Name churn: 100 000 short-lived service names, each registered natively and then
//! deregistered, against Switchboard's resident memory before and after. A registry that
//! remembered every name it ever saw would grow here by the name's worth each time.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::time::Instant;

use crate::memory::{mib, settled_rss};
use crate::servers::{self, Server};

/// Names registered and deregistered in the measured run.
pub const NAMES: usize = 100_000;
/// Names churned before the first reading, so start-up allocations are behind it.
const WARM_UP_NAMES: usize = 2_000;
const CLIENTS: usize = 16;

pub struct Churn {
    pub names: usize,
    pub rss_before: u64,
    pub rss_after: u64,
    pub took: Duration,
}

impl Churn {
    /// Resident bytes kept per name that came and went.
    pub fn per_name(&self) -> f64 {
        self.rss_after.saturating_sub(self.rss_before) as f64 / self.names as f64
    }
}

pub async fn bench(binary: &Path) -> anyhow::Result<Churn> {
    let client = crate::pinned_client().await?;
    crate::progress("name churn: starting switchboard");
    let mut switchboard = servers::start_switchboard(binary, &client, None).await?;
    churn(&switchboard, &client, "warm", WARM_UP_NAMES).await?;
    let rss_before = settled_rss(switchboard.pid()).await?;
    crate::progress(&format!(
        "name churn: {NAMES} names, each registered then deregistered (RSS {})",
        mib(rss_before)
    ));
    let started = Instant::now();
    churn(&switchboard, &client, "churn", NAMES).await?;
    let took = started.elapsed();
    let listed = client
        .get(switchboard.url("/api/v1/services"))
        .send()
        .await?
        .json::<serde_json::Value>()
        .await?;
    if listed.as_array().is_none_or(|list| !list.is_empty()) {
        bail!("after the churn switchboard still lists services: {listed}");
    }
    let rss_after = settled_rss(switchboard.pid()).await?;
    switchboard.check_alive()?;
    let result = Churn {
        names: NAMES,
        rss_before,
        rss_after,
        took,
    };
    crate::progress(&format!(
        "name churn: done in {took:.2?}; RSS {} ({:.0} B per name)",
        mib(rss_after),
        result.per_name()
    ));
    Ok(result)
}

/// Registers and deregisters `count` names `{prefix}-{i}` from [`CLIENTS`] clients.
async fn churn(
    switchboard: &Server,
    client: &reqwest::Client,
    prefix: &str,
    count: usize,
) -> anyhow::Result<()> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let (next, client) = (next.clone(), client.clone());
        let register = switchboard.url("/api/v1/instances");
        let base = switchboard.url("/api/v1/instances/");
        let prefix = prefix.to_owned();
        clients.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return anyhow::Ok(());
                }
                let body = serde_json::json!({
                    "service": format!("{prefix}-{i}"),
                    "address": "10.0.0.1:8080",
                });
                let response = client.post(&register).json(&body).send().await?;
                if !response.status().is_success() {
                    bail!("registration {i} answered {}", response.status());
                }
                let created: serde_json::Value = response.json().await?;
                let id = created["id"].as_str().context("no id in the answer")?;
                let response = client.delete(format!("{base}{id}")).send().await?;
                if !response.status().is_success() {
                    bail!("deregistration {i} answered {}", response.status());
                }
            }
        });
    }
    while let Some(done) = clients.join_next().await {
        done??;
    }
    Ok(())
}
