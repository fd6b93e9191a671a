//! The Consul side of the propagation samples: writes are agent registrations of `i{k}`
//! (`Address` `10.1.x.y`, `Port` 80) and their deregistrations in the Consul double, and
//! the direct observer is the double's own blocking query,
//! `GET /v1/health/service/{svc}?index=C&wait=30s` with the `X-Consul-Index` of its
//! previous answer, on a keep-alive client of its own.
//!
//! Before each write both Consul clients must be parked in the double: the bench's direct
//! query, and Switchboard's connector, which re-issues its own blocking query on the same
//! path after every answer (token-bucket paced, so not always at once). The double counts
//! requests by path on arrival, so the bench tracks the count on the service's health
//! path: at the start it waits for the count to stay still (the connector has parked);
//! before a write it waits for the connector's re-issue (+1 since the last write), then
//! sends its own query and waits for that (+1 again). A write thus never lands while the
//! connector is between queries, which would time the connector's pacing instead of the
//! propagation, just as the etcd samples never write while the etcd watch is closed.

use std::time::Duration;

use anyhow::{bail, Context};
use consul_double::ConsulDouble;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::query::{blocking_read, Answer, CONSUL_INDEX};
use super::{Backend, Change, STUCK};

/// The service the samples write to.
pub const SERVICE: &str = "bench-consul";
/// How long the health path's request count must stay still before the connector counts
/// as parked at the start.
const QUIET: Duration = Duration::from_millis(200);

/// Writes to the Consul double and watches the writes with its own blocking query.
pub struct Consul<'a> {
    double: &'a ConsulDouble,
    /// The direct query's own client, so each query reuses the previous one's connection.
    client: reqwest::Client,
    /// `/v1/health/service/{SERVICE}`.
    path: String,
    /// The `X-Consul-Index` of the direct query's last answer.
    index: u64,
    /// The health-path request count the double reaches once the connector has
    /// re-issued its query after the last write.
    connector_parked_at: u64,
    /// The direct query armed for the next write.
    query: Option<JoinHandle<anyhow::Result<Answer>>>,
}

impl Consul<'_> {
    pub fn new(double: &ConsulDouble) -> anyhow::Result<Consul<'_>> {
        Ok(Consul {
            double,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()?,
            path: format!("/v1/health/service/{SERVICE}"),
            index: 0,
            connector_parked_at: 0,
            query: None,
        })
    }

    /// Health requests of the service the double has received.
    fn health_requests(&self) -> u64 {
        self.double.requests_to(&self.path)
    }

    /// Polls the health-path count until it reaches `count`.
    async fn wait_count(&self, count: u64, what: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + STUCK;
        loop {
            let seen = self.health_requests();
            if seen >= count {
                return Ok(());
            }
            if self.query.as_ref().is_some_and(JoinHandle::is_finished) {
                bail!("the direct query returned before any write (is its index stale?)");
            }
            if Instant::now() > deadline {
                bail!("{what}: the double received {seen} health queries, not {count}");
            }
            tokio::time::sleep(Duration::from_micros(100)).await;
        }
    }
}

impl Backend for Consul<'_> {
    const SERVICE: &'static str = SERVICE;

    fn observer(&self) -> &'static str {
        "the double's own blocking query"
    }

    async fn write(&mut self, change: &Change) -> anyhow::Result<()> {
        if change.put {
            let service = serde_json::json!({
                "Name": SERVICE,
                "ID": change.id,
                "Address": change.host,
                "Port": change.port,
            });
            self.double.register(service).await;
        } else {
            self.double.deregister(&change.id).await;
        }
        Ok(())
    }

    async fn ready(&mut self) -> anyhow::Result<()> {
        let url = format!("{}{}", self.double.url(), self.path);
        let first = blocking_read(self.client.clone(), url, CONSUL_INDEX).await?;
        let listed = health_addresses(&first.body)?;
        if !listed.contains(&Change::anchor().address()) {
            bail!("the double's health read lacks the anchor: {listed:?}");
        }
        self.index = first.index;

        let deadline = Instant::now() + STUCK;
        let (mut count, mut since) = (self.health_requests(), Instant::now());
        while since.elapsed() < QUIET {
            if Instant::now() > deadline {
                bail!(
                    "Switchboard's connector kept querying {} for {STUCK:?}",
                    self.path
                );
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
            let now = self.health_requests();
            if now != count {
                (count, since) = (now, Instant::now());
            }
        }
        self.connector_parked_at = count;
        Ok(())
    }

    async fn arm(&mut self) -> anyhow::Result<()> {
        self.wait_count(
            self.connector_parked_at,
            "Switchboard's connector did not query again after the last write",
        )
        .await?;
        let before = self.health_requests();
        let url = format!(
            "{}{}?index={}&wait=30s",
            self.double.url(),
            self.path,
            self.index
        );
        let query = blocking_read(self.client.clone(), url, CONSUL_INDEX);
        self.query = Some(tokio::spawn(query));
        self.wait_count(before + 1, "the direct query did not arrive")
            .await?;
        // After the write the connector's query returns and it sends the next one.
        self.connector_parked_at = self.health_requests() + 1;
        Ok(())
    }

    async fn observed(&mut self, change: &Change) -> anyhow::Result<Instant> {
        let query = self.query.take().context("no direct query was armed")?;
        let answer = tokio::time::timeout(STUCK, query)
            .await
            .with_context(|| format!("it did not return within {STUCK:?}"))?
            .context("the direct query task panicked")??;
        let listed = health_addresses(&answer.body)?;
        if listed.contains(&change.address()) != change.put {
            bail!(
                "it returned without the {} of {} (index {} -> {}): {listed:?}",
                change.verb(),
                change.id,
                self.index,
                answer.index
            );
        }
        if answer.index <= self.index {
            bail!("it returned index {} after {}", answer.index, self.index);
        }
        self.index = answer.index;
        Ok(answer.at)
    }
}

/// The `host:port` of every entry of a `/v1/health/service/{name}` answer: the service's
/// address, or the node's where the service has none, as Switchboard's connector reads it.
fn health_addresses(body: &[u8]) -> anyhow::Result<Vec<String>> {
    let entries: Vec<serde_json::Value> =
        serde_json::from_slice(body).context("the health answer is not a JSON array")?;
    entries
        .iter()
        .map(|entry| {
            let service = &entry["Service"];
            let host = match service["Address"].as_str() {
                Some(address) if !address.is_empty() => address,
                _ => entry["Node"]["Address"].as_str().unwrap_or_default(),
            };
            let port = service["Port"]
                .as_u64()
                .with_context(|| format!("a health entry has no Service.Port: {entry}"))?;
            Ok(format!("{host}:{port}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_service_then_node_addresses() {
        let body = br#"[
            {"Node": {"Address": "127.0.0.1"}, "Service": {"ID": "a", "Address": "10.1.0.7", "Port": 80}},
            {"Node": {"Address": "127.0.0.1"}, "Service": {"ID": "b", "Address": "", "Port": 8080}}
        ]"#;
        assert_eq!(
            health_addresses(body).unwrap(),
            ["10.1.0.7:80", "127.0.0.1:8080"]
        );
        assert!(health_addresses(b"[]").unwrap().is_empty());
        assert!(health_addresses(b"{}").is_err());
        assert!(health_addresses(br#"[{"Service": {"Address": "x"}}]"#).is_err());
    }
}
