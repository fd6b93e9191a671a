//! Whole-server tests: Switchboard on a free port (in-process, or the real binary), driven
//! through real HTTP.

#[path = "../support/mod.rs"]
mod support;

mod blocking;
mod cli;
mod durability;
mod expiry;
mod watch;
