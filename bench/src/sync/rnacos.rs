//! The sync part's dealings with rnacos directly: the baseline's writes (the call the
//! job's Nacos writer makes, one at a time) and the reads that count what rnacos lists.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use reqwest::Url;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::{cpu, INSTANCES, JOB, NAME, PER_SERVICE, SERVICES};
use crate::etcd::spread_instance;
use crate::servers::Server;
use crate::{etcd, nacos};

/// Where the job's Nacos writer puts copies: the source's namespace and the Nacos group
/// of Switchboard's default group (the etcd source's services are in it), Nacos's own
/// default group.
const NAMESPACE: &str = "public";
const GROUP: &str = "DEFAULT_GROUP";

/// One run of the baseline.
#[derive(Clone, Copy, Debug)]
pub struct Baseline {
    pub time: Duration,
    /// CPU time rnacos spent on the writes.
    pub rnacos_cpu: Duration,
}

/// Writes every instance into a fresh rnacos one request at a time, as the job's Nacos
/// writer does: the same call with the same parameters and metadata.
pub async fn baseline(rnacos_binary: &Path) -> anyhow::Result<Baseline> {
    // The job's writer keeps its connection alive and sets TCP_NODELAY; so does this.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .build()?;
    let mut fresh = nacos::start(rnacos_binary, &client).await?;
    let base = Url::parse(&fresh.url("/nacos/v1/ns/instance"))?;
    let cpu_before = cpu(fresh.pid())?;
    let started = Instant::now();
    for s in 0..SERVICES {
        for i in 0..PER_SERVICE {
            let (service, host, port) = spread_instance(NAME, s, i);
            let metadata = json!({
                "switchboard.id": format!("{service}-{host}-{port}"),
                "switchboard.origin": etcd::SOURCE_ID,
                "switchboard.sync": JOB,
            });
            let mut url = base.clone();
            url.query_pairs_mut()
                .append_pair("serviceName", &service)
                .append_pair("groupName", GROUP)
                .append_pair("ip", &host)
                .append_pair("port", &port.to_string())
                .append_pair("clusterName", "DEFAULT")
                .append_pair("ephemeral", "false")
                .append_pair("weight", "1")
                .append_pair("healthy", "true")
                .append_pair("enabled", "true")
                .append_pair("metadata", &metadata.to_string())
                .append_pair("namespaceId", NAMESPACE);
            let response = client.post(url).send().await?;
            let status = response.status();
            let text = response.text().await?;
            if !status.is_success() {
                bail!("rnacos refused the baseline's write of {host}:{port}: {status}: {text}");
            }
        }
    }
    let time = started.elapsed();
    let rnacos_cpu = cpu(fresh.pid())?.saturating_sub(cpu_before);
    let counted = catalog_count(&client, &fresh).await?;
    fresh.check_alive()?;
    if counted != INSTANCES {
        bail!("after the baseline's writes rnacos counts {counted} of {INSTANCES} instances");
    }
    Ok(Baseline { time, rnacos_cpu })
}

/// The instances rnacos's catalog counts in the namespace, summed over its services
/// (`ipCount`): two requests, cheap enough to poll while the job writes.
pub async fn catalog_count(client: &reqwest::Client, rnacos: &Server) -> anyhow::Result<usize> {
    const PAGE: usize = 500;
    let mut total = 0;
    for page in 1.. {
        let url = rnacos.url(&format!(
            "/nacos/v1/ns/catalog/services?pageNo={page}&pageSize={PAGE}&withInstances=false\
             &namespaceId={NAMESPACE}"
        ));
        let body: Value = client.get(&url).send().await?.json().await?;
        let list = body["serviceList"]
            .as_array()
            .with_context(|| format!("rnacos's catalog has no serviceList: {body}"))?;
        total += list
            .iter()
            .map(|entry| entry["ipCount"].as_u64().unwrap_or_default() as usize)
            .sum::<usize>();
        let count = body["count"].as_u64().unwrap_or_default() as usize;
        if list.len() < PAGE || page * PAGE >= count {
            break;
        }
    }
    Ok(total)
}

/// The hosts rnacos lists service by service (the read Nacos clients make) that carry
/// the job's `switchboard.sync` mark.
pub async fn listed_copies(client: &reqwest::Client, rnacos: &Server) -> anyhow::Result<usize> {
    let mut total = 0;
    for s in 0..SERVICES {
        let (service, _, _) = spread_instance(NAME, s, 0);
        let hosts = list_service(client, rnacos, &service).await?;
        total += hosts
            .iter()
            .filter(|host| host["metadata"]["switchboard.sync"] == JOB)
            .count();
    }
    Ok(total)
}

/// The hosts rnacos lists for `service`, unhealthy ones included.
pub async fn list_service(
    client: &reqwest::Client,
    rnacos: &Server,
    service: &str,
) -> anyhow::Result<Vec<Value>> {
    let url = rnacos.url(&format!(
        "/nacos/v1/ns/instance/list?serviceName={service}&groupName={GROUP}\
         &namespaceId={NAMESPACE}&healthyOnly=false"
    ));
    let body: Value = client.get(&url).send().await?.json().await?;
    match body["hosts"].as_array() {
        Some(hosts) => Ok(hosts.clone()),
        None => bail!("rnacos's list of {service} has no hosts: {body}"),
    }
}
