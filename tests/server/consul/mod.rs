//! Tests of the Consul source against the Consul double (`tests/support/consul-double`,
//! written from Consul's API documentation; no Consul binary can be installed here):
//!
//! - `conformance`: the connector alone, through `switchboard_connectors::testkit`.
//! - `propagation`: registrations, health changes and deregistrations visible through
//!   the HTTP API within one second; the field mapping.
//! - `idle`: an idle Consul sees blocking queries, not polling.
//! - `outage`: index going backwards, the agent down and back, 500s, failover between
//!   endpoints, a bad token.
//! - `writer`: the source as a sync-back target (registrations with a kept TTL check).
//! - `tls`: `https://` endpoints through a TLS proxy: the CA, client certificates, a
//!   server from an unknown CA, an unreadable CA file.
//!
//! Every double and Switchboard a test starts is stopped when the test ends, also when it
//! fails.

mod conformance;
pub mod harness;
mod idle;
mod outage;
mod propagation;
mod tls;
mod writer;
