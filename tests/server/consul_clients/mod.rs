//! Switchboard's Consul API proven with Consul clients nobody here wrote, installed by
//! `make deps` (`scripts/deps.sh`): py-consul 1.8.0 (its scripts are the `*.py` files
//! here, run with the venv's python) and vmagent's `consul_sd_configs` (Prometheus's
//! config and labels; Debian's Prometheus is built without Consul discovery). Each test
//! starts the real binary, and the etcd, rnacos and vmagent it needs, on free
//! ports with temporary directories; all are killed when the test ends, also when it
//! fails.
//!
//! - `py_consul`: every catalog, health, status and agent-info read, blocking queries and
//!   the errors py-consul raises (`py_consul_reads.py`); the agent routes: registration
//!   with HTTP, TCP and TTL checks, TTL updates, maintenance, deregistration
//!   (`py_consul_agent.py`); ACL errors with access control on (`py_consul_acl.py`).
//! - `wake`: a parked `/v1/health/service` query answers right after an etcd write, a
//!   Nacos registration and a native registration (`py_consul_wake.py`).
//! - `vmagent`: a Prometheus-style scraper's targets are the instances merged from etcd,
//!   Nacos and native registrations, and follow an addition and a removal.
//! - `spring`: a registration shaped as Spring Cloud Consul sends it, with an HTTP check
//!   against a server the test starts and stops: critical, passing again, and removed by
//!   `DeregisterCriticalServiceAfter`.
//!
//! How Consul behaves, with sources, is in research notes 17 (§7 py-consul, §8
//! `consul_sd_configs`, §9 Spring); what the tests lean on is said where they do.

mod harness;
mod py_consul;
mod spring;
mod vmagent;
mod wake;
