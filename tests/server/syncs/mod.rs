//! Tests of sync-back jobs (issue 7), against the whole server over HTTP, with real
//! backends (etcd, rnacos) and the Consul double:
//!
//! - `propagation`: etcd -> Nacos, Nacos -> Consul, etcd -> native: add, update and
//!   delete reach the target within 2 s.
//! - `etcd_target`: native -> etcd, in the JSON layout the etcd source reads back.
//! - `loops`: A -> B plus B -> A converge with one copy each and the write counters at
//!   rest, also when the target strips all metadata.
//! - `outages`: a killed source holds deletes (status says paused); an instance
//!   registered directly in the target is never deleted.
//! - `plan`: `syncs:plan` lists exactly the writes the job then performs.
//! - `restart`: a restart reloads the ledger and writes nothing twice.
//! - `target_secrets`: a target source moved without its token again is refused, and
//!   the job keeps writing with the token into the registry it was given for.
//! - `bad_input`: bad definitions answer 4xx naming the field and change nothing.
//!
//! Every backend and Switchboard a test starts is stopped when the test ends, also when
//! it fails.

mod bad_input;
mod common;
mod etcd_target;
mod loops;
mod outages;
mod plan;
mod propagation;
mod restart;
mod target_secrets;
