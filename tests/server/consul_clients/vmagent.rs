//! A Prometheus-compatible scraper discovers its targets through Switchboard's Consul API
//! with `consul_sd_configs`: vmagent (VictoriaMetrics 1.79, Debian's `victoria-metrics`
//! package). Debian's own Prometheus (2.42) is built without Consul discovery ("Disable
//! Consul SD until its Debian package is back in shape", its changelog; the binary
//! refuses `consul_sd_configs`), and no registry reachable here ships another, so
//! vmagent stands in: its own Consul client, nothing of Prometheus's code, but the same
//! config, the same `__meta_consul_*` labels and the same `GET /api/v1/targets`. It asks
//! `/v1/agent/self` for the datacenter, then sends blocking queries
//! (`?dc=dc1&stale&index=N&wait=..`) to `/v1/catalog/services` and to
//! `/v1/health/service/<name>` for each service.
//!
//! Its targets must be the instances merged from an etcd source, a Nacos source and
//! native registrations, and follow an addition and a removal.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use tempfile::TempDir;

use super::harness::{Door, Switchboard, SLOW};
use crate::support::etcd::EtcdServer;
use crate::support::rnacos::{Registration, RnacosServer};
use crate::support::{children, free_port};

/// Where Debian's `victoria-metrics` package puts vmagent.
const VMAGENT: &str = "/usr/bin/vmagent";

/// How long a change may take to reach vmagent's targets: the blocking query's answer,
/// then vmagent's pass over discovered targets every second.
const DISCOVERED: Duration = Duration::from_secs(20);

/// A vmagent owned by the test, with its config and buffers in a temporary dir; killed
/// on drop, and with the test process.
struct Vmagent {
    child: Child,
    base: String,
    dir: TempDir,
    http: reqwest::Client,
}

impl Vmagent {
    /// Starts vmagent with one job, `sb`, discovering through the Consul API at `consul`
    /// (`host:port`) and reading what it found every second; returns once it is up.
    async fn start(consul: &str) -> Vmagent {
        assert!(
            PathBuf::from(VMAGENT).is_file(),
            "{VMAGENT} is missing: run `make deps` (scripts/deps.sh installs Debian's \
             victoria-metrics)"
        );
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("scrape.yml");
        // No `datacenter:` and no `services:`: vmagent asks /v1/agent/self and watches
        // /v1/catalog/services, as a default configuration does.
        let yaml = format!(
            "global:\n  scrape_interval: 1m\n\
             scrape_configs:\n  - job_name: sb\n    consul_sd_configs:\n      \
             - server: {consul:?}\n        scheme: http\n"
        );
        std::fs::write(&config, yaml).unwrap();
        let port = free_port();
        let log = File::create(dir.path().join("vmagent.log")).unwrap();
        let mut command = children::command(VMAGENT);
        command
            .arg(format!("-promscrape.config={}", config.display()))
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg("-promscrape.consulSDCheckInterval=1s")
            // It must send its samples somewhere: a closed port, where they are dropped
            // after retries (its buffer is in the temporary dir).
            .arg(format!(
                "-remoteWrite.url=http://127.0.0.1:{}/api/v1/write",
                free_port()
            ))
            .arg(format!(
                "-remoteWrite.tmpDataPath={}",
                dir.path().join("buffer").display()
            ))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child =
            children::spawn(command).unwrap_or_else(|err| panic!("cannot start vmagent: {err}"));
        let mut vmagent = Vmagent {
            child,
            base: format!("http://127.0.0.1:{port}"),
            dir,
            http: reqwest::Client::new(),
        };
        vmagent.wait_ready().await;
        vmagent
    }

    async fn wait_ready(&mut self) {
        let url = format!("{}/health", self.base);
        crate::support::poll("vmagent to be ready", SLOW, || {
            if let Some(exit) = self.child.try_wait().unwrap() {
                panic!("vmagent exited ({exit}) before it was ready");
            }
            let (http, url) = (self.http.clone(), url.clone());
            async move {
                match http.get(&url).send().await {
                    Ok(response) if response.status().is_success() => Ok(()),
                    Ok(response) => Err(response.status().to_string()),
                    Err(err) => Err(err.to_string()),
                }
            }
        })
        .await
    }

    /// The end of vmagent's log, for failure messages: its discovery errors are there.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("vmagent.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// The discovered labels of every active target, by `__address__`.
    async fn targets(&self) -> Result<BTreeMap<String, Value>, String> {
        let url = format!("{}/api/v1/targets?state=active", self.base);
        let response = self.http.get(url).send().await;
        let body: Value = (response.map_err(|err| err.to_string())?)
            .json()
            .await
            .map_err(|err| err.to_string())?;
        let active = body["data"]["activeTargets"].as_array().cloned();
        let active = active.ok_or_else(|| format!("no activeTargets: {body}"))?;
        Ok(active
            .into_iter()
            .filter_map(|target| {
                let labels = target["discoveredLabels"].clone();
                let address = labels["__address__"].as_str()?.to_owned();
                Some((address, labels))
            })
            .collect())
    }

    /// Waits until the targets of Consul service `service` are exactly `expected`
    /// (`host:port`); returns their labels then.
    async fn wait_targets(&self, service: &str, expected: &[&str]) -> BTreeMap<String, Value> {
        let mut expected: Vec<String> = expected.iter().map(|a| (*a).to_owned()).collect();
        expected.sort();
        let what = format!("vmagent's targets of {service} to be {expected:?}");
        crate::support::poll(&what, DISCOVERED, || async {
            let targets = self.targets().await?;
            let of_service: BTreeMap<String, Value> = targets
                .into_iter()
                .filter(|(_, labels)| labels["__meta_consul_service"] == service)
                .collect();
            if of_service.keys().eq(expected.iter()) {
                return Ok(of_service);
            }
            Err(format!("{:?}", of_service.keys().collect::<Vec<_>>()))
        })
        .await
    }
}

impl Drop for Vmagent {
    fn drop(&mut self) {
        // A failing test shows what vmagent logged, read once.
        if std::thread::panicking() {
            eprintln!("vmagent's log, last lines:\n{}", self.log_tail());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vmagent_targets_are_the_merged_etcd_nacos_and_native_instances_and_follow_changes() {
    let etcd = EtcdServer::start().await;
    let nacos = RnacosServer::start().await;
    etcd.put("/sb/web/e1", "192.0.2.101:9100").await;
    nacos
        .register(&Registration::new("web", "192.0.2.102", 9100))
        .await;
    let sources = format!(
        "[[sources]]\nid = \"etcd-main\"\ntype = \"etcd\"\nendpoints = [{:?}]\nprefix = \"/sb/\"\n\n\
         [[sources]]\nid = \"nacos-main\"\ntype = \"nacos\"\nendpoints = [{:?}]\n\
         service_refresh = \"1s\"\n",
        etcd.endpoint(),
        nacos.endpoint()
    );
    let switchboard = Switchboard::start(&sources, &[], Door::OwnListener).await;
    switchboard
        .register(
            json!({"id": "web-n1", "service": "web", "host": "192.0.2.103", "port": 9100,
                         "tags": ["v1", "blue"], "ttl_seconds": 86400}),
        )
        .await;
    switchboard.wait_source_ready("etcd-main").await;
    switchboard.wait_source_ready("nacos-main").await;

    let vmagent = Vmagent::start(&switchboard.consul).await;
    let web = ["192.0.2.101:9100", "192.0.2.102:9100", "192.0.2.103:9100"];
    let found = vmagent.wait_targets("web", &web).await;
    let native = &found["192.0.2.103:9100"];
    assert_eq!(native["__meta_consul_dc"], "dc1", "{native}");
    assert_eq!(native["__meta_consul_service_id"], "web-n1", "{native}");
    assert_eq!(native["__meta_consul_service_port"], "9100", "{native}");
    assert_eq!(native["__meta_consul_health"], "passing", "{native}");
    assert_eq!(
        native["__meta_consul_node"], "192.0.2.103",
        "the host is the node: {native}"
    );
    let tags = native["__meta_consul_tags"].as_str().unwrap_or_default();
    assert!(
        tags.starts_with(',') && tags.ends_with(',') && tags.contains(",v1,"),
        "tags as ,tag,...,: {native}"
    );
    assert_eq!(found["192.0.2.101:9100"]["job"], "sb", "{found:?}");

    // An addition: a new service from etcd (the catalog watch) and a new Nacos
    // instance of web (its health watch); a removal: the native instance.
    etcd.put("/sb/metrics/m1", "192.0.2.111:9100").await;
    vmagent.wait_targets("metrics", &["192.0.2.111:9100"]).await;
    nacos
        .register(&Registration::new("web", "192.0.2.104", 9100))
        .await;
    switchboard.deregister("web-n1").await;
    vmagent
        .wait_targets(
            "web",
            &["192.0.2.101:9100", "192.0.2.102:9100", "192.0.2.104:9100"],
        )
        .await;
    // A service gone from the catalog leaves no target behind.
    etcd.delete("/sb/metrics/m1").await;
    vmagent.wait_targets("metrics", &[]).await;
}
