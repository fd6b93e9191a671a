//! The connector-level conformance suite (`switchboard_connectors::testkit`) against the
//! Consul double; the interruption is the agent going away (every connection dropped,
//! new ones refused), and it comes back on the same port with its state.

use std::sync::Arc;

use consul_double::ConsulDouble;
use serde_json::json;
use switchboard_connectors::testkit::{run_conformance, Backend};
use switchboard_connectors::{Connector, SourceConfig};

use crate::consul::harness::{service, SOURCE};

struct ConsulBackend {
    consul: ConsulDouble,
    connector: Arc<dyn Connector>,
}

impl Backend for ConsulBackend {
    fn connector(&self) -> Arc<dyn Connector> {
        self.connector.clone()
    }

    async fn put(&mut self, name: &str, id: &str, host: &str, port: u16) {
        self.consul.register(service(name, id, host, port)).await;
    }

    async fn delete(&mut self, _name: &str, id: &str) {
        self.consul.deregister(id).await;
    }

    async fn interrupt(&mut self) {
        self.consul.stop().await;
    }

    async fn resume(&mut self) {
        self.consul.resume().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consul_connector_passes_the_conformance_suite() {
    let consul = ConsulDouble::start().await;
    let config: SourceConfig = serde_json::from_value(json!({
        "id": SOURCE,
        "type": "consul",
        "endpoints": [consul.url()],
        "timeout": "1s",
    }))
    .unwrap();
    let connector = switchboard_connectors::build(&config).unwrap();
    let mut backend = ConsulBackend { consul, connector };
    let timings = run_conformance(&mut backend).await;
    println!("Consul double conformance timings: {timings:?}");
}
