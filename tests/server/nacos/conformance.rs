//! The connector-level conformance suite (`switchboard_connectors::testkit`) against
//! rnacos: instances are persistent registrations through the HTTP OpenAPI; the
//! interruption is `kill -9`, the resumption a restart on the same ports and data.
//!
//! Nacos names an instance by its ip, port and cluster, the suite by an id: the backend
//! remembers where each id was registered, and a "move" is a deregistration of the old
//! endpoint plus a registration of the new one.
//!
//! rnacos 0.8.8 now and then comes back from `kill -9` without writes it had
//! acknowledged and applied (seen once in CI: the instances as first registered, none of
//! the later changes). The suite tests the connector, not rnacos's durability, so after a
//! restart the backend puts back what the suite last wrote, and says when it had to.

use std::collections::{BTreeSet, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use serde_json::json;
use switchboard_connectors::testkit::{run_conformance, Backend};
use switchboard_connectors::{Connector, SourceConfig};

use crate::support::rnacos::{Registration, RnacosServer, DEFAULT_GROUP, PUBLIC};

struct NacosBackend {
    nacos: RnacosServer,
    connector: Arc<dyn Connector>,
    /// Where each `(service, id)` the suite wrote is registered.
    written: HashMap<(String, String), Registration>,
    /// Every service the suite wrote to.
    services: BTreeSet<String>,
}

impl NacosBackend {
    /// Makes rnacos hold exactly what the suite last wrote: registers what is missing,
    /// deregisters what the suite deleted but rnacos lists again.
    async fn restore_acknowledged(&self) {
        let mut repaired = Vec::new();
        for service in &self.services {
            let listed: BTreeSet<String> = (self.nacos.hosts(PUBLIC, DEFAULT_GROUP, service))
                .await
                .iter()
                .map(|host| format!("{}:{}", host["ip"].as_str().unwrap_or(""), host["port"]))
                .collect();
            let wanted: HashMap<String, &Registration> = (self.written.iter())
                .filter(|((written_to, _), _)| written_to == service)
                .map(|(_, instance)| (instance.address(), instance))
                .collect();
            for (address, instance) in &wanted {
                if !listed.contains(address) {
                    self.nacos.register(instance).await;
                    repaired.push(format!("{service} {address} registered again"));
                }
            }
            for address in listed.iter().filter(|a| !wanted.contains_key(*a)) {
                let (host, port) = address.rsplit_once(':').expect("host:port");
                let stale = Registration::new(service, host, port.parse().expect("a port"));
                self.nacos.deregister(&stale).await;
                repaired.push(format!("{service} {address} deregistered again"));
            }
        }
        if !repaired.is_empty() {
            eprintln!("rnacos lost acknowledged writes across kill -9: {repaired:?}");
        }
    }
}

impl Backend for NacosBackend {
    fn connector(&self) -> Arc<dyn Connector> {
        self.connector.clone()
    }

    async fn put(&mut self, service: &str, id: &str, host: &str, port: u16) {
        let instance = Registration::new(service, host, port);
        self.services.insert(service.to_owned());
        let key = (service.to_owned(), id.to_owned());
        if let Some(old) = self.written.insert(key, instance.clone()) {
            if old.address() != instance.address() {
                self.nacos.deregister(&old).await;
            }
        }
        self.nacos.register(&instance).await;
    }

    async fn delete(&mut self, service: &str, id: &str) {
        let key = (service.to_owned(), id.to_owned());
        let instance = self
            .written
            .remove(&key)
            .expect("the suite deletes what it put");
        self.nacos.deregister(&instance).await;
    }

    async fn interrupt(&mut self) {
        self.nacos.kill_9();
    }

    async fn resume(&mut self) {
        self.nacos.restart().await;
        self.restore_acknowledged().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nacos_connector_passes_the_conformance_suite_against_rnacos() {
    let nacos = RnacosServer::start().await;
    let config: SourceConfig = serde_json::from_value(json!({
        "id": "nacos-conformance",
        "type": "nacos",
        "endpoints": [nacos.endpoint()],
        // A new service (and a service gone) shows within the suite's deadline.
        "service_refresh": "1s",
        "probe_interval": "500ms",
        "timeout": "1s",
    }))
    .unwrap();
    let connector = switchboard_connectors::build(&config).unwrap();
    let mut backend = NacosBackend {
        nacos,
        connector,
        written: HashMap::new(),
        services: BTreeSet::new(),
    };
    let outcome = AssertUnwindSafe(run_conformance(&mut backend))
        .catch_unwind()
        .await;
    match outcome {
        Ok(timings) => println!("rnacos conformance (HTTP OpenAPI, kill -9): {timings:?}"),
        Err(panic) => {
            eprintln!("rnacos's log:\n{}", backend.nacos.log_tail());
            std::panic::resume_unwind(panic);
        }
    }
}
