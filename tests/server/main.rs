//! Whole-server tests: Switchboard on a free port (in-process, or the real binary), driven
//! through real HTTP; `etcd` runs them against a real etcd, `consul` against the Consul
//! double. One test binary, so the shared support code is compiled (and linked) once.

#[path = "../support/mod.rs"]
mod support;

mod auth;
mod blocking;
mod cli;
mod consul;
mod consul_agent;
mod consul_clients;
mod consul_reads;
mod docs;
mod durability;
mod etcd;
mod expiry;
mod health_checks;
mod limits;
mod managed;
mod mutations;
mod nacos;
mod openapi;
mod orphans;
mod sources;
mod syncs;
mod tls;
mod watch;
