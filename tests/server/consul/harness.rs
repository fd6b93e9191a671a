//! What the Consul tests share: `[[sources]]` tables for a Consul source, registration
//! bodies, and the source's state.

use serde_json::{json, Value};

use crate::sources::wait_source_state;
use crate::support::TestServer;

/// The source id every test uses.
pub const SOURCE: &str = "consul-main";

/// A `[[sources]]` table for the Consul source `consul-main` on `endpoints`, plus `extra`
/// lines (`only_passing = true`, `empty_confirm = "0s"`, ...).
pub fn consul_source(endpoints: &[String], extra: &str) -> String {
    let endpoints: Vec<String> = endpoints.iter().map(|e| format!("{e:?}")).collect();
    let endpoints = endpoints.join(", ");
    format!("[[sources]]\nid = {SOURCE:?}\ntype = \"consul\"\nendpoints = [{endpoints}]\n{extra}\n")
}

/// An agent registration of `name` instance `id` at `address:port`, without checks (so
/// only the node's check counts: passing).
pub fn service(name: &str, id: &str, address: &str, port: u16) -> Value {
    json!({ "Name": name, "ID": id, "Address": address, "Port": port })
}

/// [`service`] with a TTL check `service:<id>` in the given initial status.
pub fn service_with_ttl(name: &str, id: &str, address: &str, port: u16, status: &str) -> Value {
    let mut body = service(name, id, address, port);
    body["Check"] = json!({ "TTL": "10m", "Status": status });
    body
}

/// Waits until `consul-main`'s `state` is `state`; returns its status then.
pub async fn wait_state(server: &TestServer, state: &str) -> Value {
    wait_source_state(server, SOURCE, state).await
}
