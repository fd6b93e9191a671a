//! Resource limits, through real sockets: a flood from one client address stays within
//! its share while other clients read normally, the server-wide caps answer 503, idle
//! and half-sent connections are closed after `api.idle_timeout`, and parked slots are
//! given back when their clients go.
//!
//! The flooding client binds its sockets to another loopback address (Linux routes all
//! of 127/8 on `lo`), because the limits are counted per client address.
//!
//! - `flood`: 20 000 requests from one address, held to its share, while another
//!   address reads and waits normally; the slots come back when the flooder goes.
//! - `caps`: the server-wide caps (503) and refused connections beyond those being
//!   answered.
//! - `idle`: connections with no complete request head are closed after
//!   `api.idle_timeout`; parked watches are not idle.
//! - `raw`: the raw HTTP/1.1 client the tests speak through.

mod caps;
mod flood;
mod idle;
mod raw;
