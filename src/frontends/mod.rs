//! Doors that imitate other systems, so their clients work against Switchboard unchanged.
//! Each owns only translation: its request parsing, its response shapes (encoded per
//! chunk and cached in the snapshot beside the native JSON, see
//! [`crate::catalog::formats`]) and its error conventions. Registrations go through the
//! registry, reads to the snapshot, credentials to `auth`.
//!
//! - [`consul`]: Consul's HTTP API (`/v1/...`): catalog, health, agent, status.

pub mod consul;
pub mod slots;
