//! Tests of the etcd source against a real etcd (Debian's 3.4, installed by `make deps`):
//!
//! - `conformance`: the connector alone, through `switchboard_connectors::testkit`.
//! - `layouts`: every key layout and value format of the seeds, through the HTTP API.
//! - `latency`: puts, updates, deletes and lease expiry visible within one second.
//! - `outage`: etcd killed, restarted, partitioned and compacted; stale serving and
//!   convergence to exactly etcd's content.
//! - `federation`: two sources reporting one endpoint, merged, failing over.
//! - `edges`: garbage values, a dead first endpoint, credentials, and `/ready`.
//!
//! Every etcd, proxy and Switchboard a test starts is stopped when the test ends, also
//! when it fails.

mod conformance;
mod edges;
mod federation;
mod harness;
mod latency;
mod layouts;
mod outage;
mod proxy;
