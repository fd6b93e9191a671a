//! The connector-level conformance suite (`switchboard_connectors::testkit`) against a
//! real etcd: once with seed 000's JSON values and etcd killed with SIGKILL as the
//! interruption, once with plain `host:port` values and a network cut (etcd stays up).

use std::sync::Arc;

use serde_json::json;
use switchboard_connectors::testkit::{run_conformance, Backend};
use switchboard_connectors::{Connector, SourceConfig};

use crate::etcd::proxy::{Mode, Proxy};
use crate::support::etcd::EtcdServer;

const PREFIX: &str = "/services/";

/// How instances are written, and how the connector is cut off.
#[derive(Clone, Copy)]
enum Flavour {
    /// Seed 000 JSON values; interruption = `kill -9` etcd, resume = restart it.
    JsonKill,
    /// `host:port` values; interruption = the proxy closes every connection.
    PlainCut,
}

struct EtcdBackend {
    etcd: EtcdServer,
    proxy: Proxy,
    flavour: Flavour,
    connector: Arc<dyn Connector>,
}

impl EtcdBackend {
    async fn start(flavour: Flavour) -> EtcdBackend {
        let etcd = EtcdServer::start().await;
        let proxy = Proxy::start(etcd.client_port(), Mode::Forward).await;
        let config: SourceConfig = serde_json::from_value(json!({
            "id": "etcd-main",
            "type": "etcd",
            "endpoints": [proxy.endpoint()],
            "prefix": PREFIX,
        }))
        .unwrap();
        let connector = switchboard_connectors::build(&config).unwrap();
        EtcdBackend {
            etcd,
            proxy,
            flavour,
            connector,
        }
    }
}

impl Backend for EtcdBackend {
    fn connector(&self) -> Arc<dyn Connector> {
        self.connector.clone()
    }

    async fn put(&mut self, service: &str, id: &str, host: &str, port: u16) {
        let value = match self.flavour {
            Flavour::JsonKill => json!({
                "id": id,
                "name": service,
                "address": format!("{host}:{port}"),
                "protocol": "http",
                "status": "active",
                "weight": 100,
                "metadata": {},
            })
            .to_string(),
            Flavour::PlainCut => format!("{host}:{port}"),
        };
        self.etcd
            .put(&format!("{PREFIX}{service}/{id}"), &value)
            .await;
    }

    async fn delete(&mut self, service: &str, id: &str) {
        self.etcd.delete(&format!("{PREFIX}{service}/{id}")).await;
    }

    async fn interrupt(&mut self) {
        match self.flavour {
            Flavour::JsonKill => self.etcd.kill_9(),
            Flavour::PlainCut => self.proxy.set(Mode::Cut),
        }
    }

    async fn resume(&mut self) {
        match self.flavour {
            Flavour::JsonKill => self.etcd.restart().await,
            Flavour::PlainCut => self.proxy.set(Mode::Forward),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_etcd_connector_conforms_with_json_values_and_a_killed_etcd() {
    let mut backend = EtcdBackend::start(Flavour::JsonKill).await;
    let timings = run_conformance(&mut backend).await;
    println!("etcd conformance (JSON, kill -9): {timings:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_etcd_connector_conforms_with_plain_values_and_a_network_cut() {
    let mut backend = EtcdBackend::start(Flavour::PlainCut).await;
    let timings = run_conformance(&mut backend).await;
    println!("etcd conformance (host:port, cut): {timings:?}");
}
