//! Tests of sources managed at runtime (issue 6), against the whole server over HTTP
//! only, with real backends (etcd, rnacos) and the Consul double:
//!
//! - `crud`: create, list, disconnect and connect, delete a source by REST.
//! - `update`: PATCH renames one source's services at once and leaves the others'
//!   indexes and connections alone.
//! - `restart`: REST-made sources (and their `connected` intent) survive a restart.
//! - `secrets`: passwords and tokens show as `"***"` in every reply; `"***"` sent back
//!   keeps them.
//! - `moved_secrets`: a change of endpoints or TLS settings sends the stored secrets
//!   again or drops them (400 `secrets_required` otherwise).
//! - `file_sources`: config-file sources are read-only through the API.
//! - `bad_input`: bad documents, patches and ids answer 4xx naming the field and change
//!   nothing; `sources:validate` connects without adding.
//! - `validate_limits`: `sources:validate` is capped (429 `validate_busy`), short, and
//!   relays only a clean excerpt of a remote error.
//! - `merge`: union across adapters, failover by `[[merge]]` rule, the merge-rule API.
//! - `explain`: why each reported instance is or is not served.
//! - `warm`: a restart with a backend down serves its last view, stale, at once.
//!
//! Every backend and Switchboard a test starts is stopped when the test ends, also when
//! it fails.

mod bad_input;
mod crud;
mod explain;
mod file_sources;
pub mod harness;
mod merge;
mod moved_secrets;
mod restart;
mod secrets;
mod update;
mod validate_limits;
mod warm;
