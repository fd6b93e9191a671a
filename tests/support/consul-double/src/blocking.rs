//! Consul's query options and blocking queries: parsing `?index`, `?wait`, `?stale`,
//! `?consistent` and `?dc` with Consul's error texts, holding a request until its query's
//! index passes `index` or `wait` (+ jitter) runs out, and the `X-Consul-*` answer headers.
//!
//! As in Consul: no `index` (or `0`) answers at once; `wait` defaults to 5 minutes, is capped
//! at 10 and gets up to `wait/16` of random jitter; an `index` above the current one blocks
//! (until a write passes it or `wait` ends), which is how a client learns that the index went
//! backwards. A parked query also answers at once when the double is "restored" or starts
//! failing (`Shared::interrupt`).

use std::time::Duration;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde::Serialize;
use tokio::time::{sleep_until, Instant};

use crate::duration;
use crate::error::ApiError;
use crate::shared::Shared;
use crate::state::Store;

const DEFAULT_WAIT: Duration = Duration::from_secs(5 * 60);
const MAX_WAIT: Duration = Duration::from_secs(10 * 60);
/// Consul's `JitterFraction`: up to wait/16 is added.
const JITTER_FRACTION: u32 = 16;

/// A request's query string, decoded; a bare `?flag` has the value `""`.
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(raw: Option<&str>) -> Params {
        let pairs = form_urlencoded::parse(raw.unwrap_or_default().as_bytes());
        Params(pairs.into_owned().collect())
    }

    pub fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    /// The first value, like Go's `Values.Get`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// A boolean flag as Consul reads it: absent is false, bare is true, otherwise Go's
    /// `strconv.ParseBool`; `Err` for anything else.
    pub fn flag(&self, key: &str) -> Result<bool, ()> {
        match self.get(key) {
            None => Ok(false),
            Some("" | "1" | "t" | "T" | "TRUE" | "true" | "True") => Ok(true),
            Some("0" | "f" | "F" | "FALSE" | "false" | "False") => Ok(false),
            Some(_) => Err(()),
        }
    }
}

/// A `?dc=` naming another datacenter: the double knows no other, so it has no path there.
pub fn check_datacenter(params: &Params, datacenter: &str) -> Result<(), ApiError> {
    match params.get("dc") {
        Some(dc) if !dc.is_empty() && dc != datacenter => {
            Err(ApiError::internal("No path to datacenter"))
        }
        _ => Ok(()),
    }
}

/// The query options of a read endpoint.
#[derive(Debug)]
pub struct QueryOptions {
    /// `0`: answer at once.
    pub min_index: u64,
    pub wait: Duration,
    pub consistency: &'static str,
}

impl QueryOptions {
    /// Parses the options in Consul's order: consistency, wait, index, then the datacenter
    /// (whose error comes from forwarding, after parsing).
    pub fn parse(params: &Params, datacenter: &str) -> Result<QueryOptions, ApiError> {
        let (stale, consistent) = (params.has("stale"), params.has("consistent"));
        if stale && consistent {
            return Err(ApiError::bad_request(
                "Cannot specify ?stale with ?consistent, conflicting semantics.",
            ));
        }
        let wait = match params.get("wait") {
            None | Some("") => DEFAULT_WAIT,
            Some(text) => {
                let wait = duration::parse(text)
                    .map_err(|_| ApiError::bad_request("Invalid wait time"))?;
                match wait {
                    d if d.is_zero() => DEFAULT_WAIT,
                    d => d.min(MAX_WAIT),
                }
            }
        };
        let min_index = match params.get("index") {
            None | Some("") => 0,
            Some(text) => text
                .parse::<u64>()
                .map_err(|_| ApiError::bad_request("Invalid index"))?,
        };
        check_datacenter(params, datacenter)?;
        let consistency = match (stale, consistent) {
            (true, _) => "stale",
            (_, true) => "consistent",
            _ => "leader",
        };
        Ok(QueryOptions {
            min_index,
            wait,
            consistency,
        })
    }
}

/// Holds a blocking query until `index_of` passes `options.min_index`, `wait` plus jitter
/// runs out, or the double is interrupted. Returns at once without `?index`.
pub async fn park(shared: &Shared, options: &QueryOptions, index_of: impl Fn(&Store) -> u64) {
    if options.min_index == 0 {
        return;
    }
    let epoch = shared.epoch();
    let mut changes = shared.subscribe();
    let jitter_bound = options.wait / JITTER_FRACTION;
    let jitter = match jitter_bound.is_zero() {
        true => Duration::ZERO,
        false => rand::thread_rng().gen_range(Duration::ZERO..jitter_bound),
    };
    let deadline = Instant::now() + options.wait + jitter;
    loop {
        // Mark the generation seen before looking, so a write after the look wakes us.
        changes.borrow_and_update();
        if shared.epoch() != epoch || shared.is_failing() {
            return;
        }
        if shared.read(&index_of) > options.min_index {
            return;
        }
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = sleep_until(deadline) => return,
        }
    }
}

/// A read endpoint's answer: the JSON body with `X-Consul-Index` (at least 1, as Consul
/// guarantees) and the leader headers. `X-Consul-LastContact` is always 0: the double is
/// its own leader.
pub fn respond<T: Serialize>(index: u64, options: &QueryOptions, body: &T) -> Response {
    let mut response = axum::Json(body).into_response();
    let headers = response.headers_mut();
    headers.insert("X-Consul-Index", HeaderValue::from(index.max(1)));
    headers.insert("X-Consul-KnownLeader", HeaderValue::from_static("true"));
    headers.insert("X-Consul-LastContact", HeaderValue::from_static("0"));
    headers.insert(
        "X-Consul-Effective-Consistency",
        HeaderValue::from_static(options.consistency),
    );
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(query: &str) -> Result<QueryOptions, String> {
        QueryOptions::parse(&Params::parse(Some(query)), "dc1").map_err(|e| e.message)
    }

    #[test]
    fn parses_consul_query_options() {
        let o = options("index=7&wait=150ms&stale").unwrap();
        assert_eq!(o.min_index, 7);
        assert_eq!(o.wait, Duration::from_millis(150));
        assert_eq!(o.consistency, "stale");
        let o = options("").unwrap();
        assert_eq!((o.min_index, o.wait), (0, DEFAULT_WAIT));
        assert_eq!(options("wait=1h").unwrap().wait, MAX_WAIT);
        assert_eq!(options("wait=-1s").unwrap().wait, DEFAULT_WAIT);
        assert_eq!(options("dc=dc1").unwrap().consistency, "leader");
    }

    #[test]
    fn rejects_with_consuls_texts() {
        assert_eq!(options("wait=soon").unwrap_err(), "Invalid wait time");
        assert_eq!(options("wait=10").unwrap_err(), "Invalid wait time");
        assert_eq!(options("index=-1").unwrap_err(), "Invalid index");
        assert_eq!(options("index=x").unwrap_err(), "Invalid index");
        assert!(options("stale&consistent")
            .unwrap_err()
            .starts_with("Cannot specify ?stale with ?consistent"));
        assert_eq!(options("dc=dc2").unwrap_err(), "No path to datacenter");
    }

    #[test]
    fn flags_read_like_go() {
        let params = Params::parse(Some("a&b=1&c=false&d=yes"));
        assert_eq!(params.flag("a"), Ok(true));
        assert_eq!(params.flag("b"), Ok(true));
        assert_eq!(params.flag("c"), Ok(false));
        assert_eq!(params.flag("d"), Err(()));
        assert_eq!(params.flag("e"), Ok(false));
    }
}
