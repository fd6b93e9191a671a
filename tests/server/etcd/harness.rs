//! What the server-level etcd tests share: `[[sources]]` tables for etcd, and waits for
//! the catalog to match what etcd holds. Reads of the API every adapter's tests use are
//! in `crate::sources`, re-exported here.

use std::time::Duration;

use serde_json::Value;

pub use crate::sources::{
    addresses, assert_status_shape, instances, load_config, rfc3339, source_status, start_server,
    wait_addresses, wait_fresh, wait_source_state, SLOW,
};
use crate::support::etcd::EtcdServer;
use crate::support::TestServer;

/// The source id every test uses.
pub const SOURCE: &str = "etcd-main";
/// A `[[sources]]` table for an etcd source `etcd-main` on `endpoints`, plus `extra`
/// lines (`key_template = "..."`, `empty_confirm = "1s"`, ...).
pub fn etcd_source(endpoints: &[String], prefix: &str, extra: &str) -> String {
    named_source(SOURCE, endpoints, prefix, extra)
}

/// [`etcd_source`] with another id.
pub fn named_source(id: &str, endpoints: &[String], prefix: &str, extra: &str) -> String {
    let endpoints: Vec<String> = endpoints.iter().map(|e| format!("{e:?}")).collect();
    let endpoints = endpoints.join(", ");
    format!(
        "[[sources]]\nid = {id:?}\ntype = \"etcd\"\nendpoints = [{endpoints}]\nprefix = {prefix:?}\n{extra}\n"
    )
}

/// Waits until `etcd-main`'s `state` is `state`; returns its status then.
pub async fn wait_state(server: &TestServer, state: &str) -> Value {
    wait_source_state(server, SOURCE, state).await
}

/// What etcd holds under `prefix` in the plain layout (`{prefix}{service}/{id}` =
/// `host:port`), as `served_from` would list it.
pub async fn etcd_content(etcd: &EtcdServer, prefix: &str) -> Vec<(String, String)> {
    let mut expected: Vec<(String, String)> = etcd
        .get_prefix(prefix)
        .await
        .into_iter()
        .map(|(key, value)| {
            let rest = key.strip_prefix(prefix).unwrap();
            let service = rest.split('/').next().unwrap().to_owned();
            (service, value)
        })
        .collect();
    expected.sort();
    expected
}

/// Waits until Switchboard serves exactly what etcd holds (no leftovers, no duplicates)
/// and nothing of it is stale; returns how long that took.
pub async fn wait_converged(server: &TestServer, etcd: &EtcdServer, prefix: &str) -> Duration {
    let expected = etcd_content(etcd, prefix).await;
    wait_fresh(server, SOURCE, &expected).await
}
