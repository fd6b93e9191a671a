//! Tests of the Nacos source against a real Nacos server, rnacos 0.8.8
//! (`tests/support/rnacos.rs`), whose instances are written through its HTTP OpenAPI and
//! through the official `nacos-sdk`, as Nacos applications write them:
//!
//! - `conformance`: the connector alone, through `switchboard_connectors::testkit`;
//!   the interruption is `kill -9` rnacos, the resumption a restart on the same data.
//! - `propagation`: registrations, updates, health and `enabled` changes and
//!   deregistrations pushed to `GET /api/v1/services/{name}/instances` within 2 s (with
//!   a 60 s service refresh, so only pushes can be that fast); a new service within one
//!   refresh; the field mapping.
//! - `placement`: Nacos namespaces and groups placed where the source says.
//! - `default_group`: Nacos's `DEFAULT_GROUP` and Switchboard's `DEFAULT` are one group,
//!   read and written back (sync-back).
//! - `outage`: rnacos killed (stale but served) and restarted (converged); a wrong
//!   password.
//! - `writer`: the source as a sync-back target (persistent instances over HTTP).
//!
//! rnacos habits shape what the tests can see: it leaves disabled instances out of every
//! list and push; over gRPC (what `nacos-sdk`, and so the source, reads) it answers and
//! pushes healthy instances only; and when none of a service's instances is healthy it
//! reports them all healthy (a protection threshold of 0). So an `enabled=false` or
//! unhealthy instance leaves the served list, and an unhealthy one is tested next to a
//! healthy one.
//!
//! Every rnacos and Switchboard a test starts is stopped when the test ends, also when
//! it fails.

mod conformance;
mod default_group;
mod harness;
mod outage;
mod placement;
mod propagation;
mod writer;
