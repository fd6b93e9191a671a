//! The double's own tests, against a started double over real HTTP (one test binary, so
//! the helpers in `common` are shared without being compiled once per file):
//! `api` (endpoints, shapes, errors), `blocking` (blocking queries, TTL, reaper), `hooks`
//! (ACL, failing, restore, stop/resume, request counters, metadata stripping).

mod api;
mod blocking;
mod common;
mod hooks;
