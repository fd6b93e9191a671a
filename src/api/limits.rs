//! Caps on what clients may hold open: connections, and parked watches (blocking queries
//! and SSE streams), each counted per client address and for all clients together, so one
//! client's flood cannot starve the others.
//!
//! A [`Held`] slot is given back when it drops, however the request ends (answered,
//! cancelled by the client going away, or cut at shutdown).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::http::StatusCode;
use dashmap::DashMap;

use super::error::ApiError;
use crate::telemetry::Metrics;

/// Seconds a refused client is told to wait before trying again.
pub const RETRY_AFTER_SECONDS: u32 = 5;

/// The address requests are counted under when the server did not record one (a router
/// driven without a listener, as the router tests do).
pub const UNKNOWN_CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

/// The address a client's slots are counted under: its IPv4 address (an IPv4-mapped
/// IPv6 one included), or the /64 network of an IPv6 address. One host is commonly
/// given a whole /64, so counting each of its addresses apart would give it billions
/// of shares.
pub fn client_of(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V6(v6) => {
            let network = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(network))
        }
        v4 => v4,
    }
}

/// Slots of one kind, counted per client and in total.
pub struct Occupancy {
    max_total: usize,
    max_per_client: usize,
    total: AtomicUsize,
    /// Only clients holding at least one slot have an entry, so addresses that come and
    /// go leave nothing behind.
    by_client: DashMap<IpAddr, usize>,
}

/// Why a slot was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// This client holds its share.
    Client,
    /// All clients together hold the server's capacity.
    Total,
}

impl Refusal {
    /// The label `/metrics` counts the refusal under.
    pub fn scope(self) -> &'static str {
        match self {
            Refusal::Client => "client",
            Refusal::Total => "total",
        }
    }
}

impl Occupancy {
    pub fn new(max_total: usize, max_per_client: usize) -> Arc<Occupancy> {
        Arc::new(Occupancy {
            max_total,
            max_per_client,
            total: AtomicUsize::new(0),
            by_client: DashMap::new(),
        })
    }

    /// Takes a slot for `client`, or says which limit is reached.
    pub fn try_hold(self: &Arc<Self>, client: IpAddr) -> Result<Held, Refusal> {
        // The client's count first: its entry lock orders this client's own requests, so
        // its share is exact; the total may be overshot by at most one per client racing
        // for the last slot, and is corrected at once.
        let mut count = self.by_client.entry(client).or_insert(0);
        if *count >= self.max_per_client {
            drop(count);
            self.forget_if_idle(client);
            return Err(Refusal::Client);
        }
        if self.total.fetch_add(1, Ordering::AcqRel) >= self.max_total {
            self.total.fetch_sub(1, Ordering::AcqRel);
            drop(count);
            self.forget_if_idle(client);
            return Err(Refusal::Total);
        }
        *count += 1;
        Ok(Held {
            occupancy: self.clone(),
            client,
        })
    }

    /// Slots held by all clients together.
    pub fn total(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }

    /// Clients holding at least one slot.
    pub fn clients(&self) -> usize {
        self.by_client.len()
    }

    fn release(&self, client: IpAddr) {
        if let Some(mut count) = self.by_client.get_mut(&client) {
            *count = count.saturating_sub(1);
        }
        self.forget_if_idle(client);
        self.total.fetch_sub(1, Ordering::AcqRel);
    }

    fn forget_if_idle(&self, client: IpAddr) {
        self.by_client.remove_if(&client, |_, count| *count == 0);
    }
}

/// One slot, given back on drop.
pub struct Held {
    occupancy: Arc<Occupancy>,
    client: IpAddr,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.occupancy.release(self.client);
    }
}

/// What one kind of slot is, for the refusals' answers and metrics.
pub struct Limit {
    /// The `limit` label of `switchboard_limit_refusals_total`.
    pub label: &'static str,
    /// What a client holds, in the answer's words.
    what: &'static str,
    /// Code and config key when the client's share is full (429)...
    client: (&'static str, &'static str),
    /// ...and when all clients' is (503).
    total: (&'static str, &'static str),
    /// What a refused client can do besides waiting.
    advice: &'static str,
}

/// Parked blocking queries and SSE streams.
pub const WATCHES: Limit = Limit {
    label: "watches",
    what: "parked blocking queries and watch streams",
    client: ("too_many_watches", "api.max_watches_per_client"),
    total: ("watch_capacity", "api.max_watches"),
    advice: "close some",
};

/// Open connections.
pub const CONNECTIONS: Limit = Limit {
    label: "connections",
    what: "connections",
    client: ("too_many_connections", "api.max_connections_per_client"),
    total: ("connection_capacity", "api.max_connections"),
    advice: "reuse them",
};

impl Limit {
    /// The answer to a refusal: 429 when the client holds its share, 503 when the server
    /// is full; both with `Retry-After`.
    pub fn refused(&self, refusal: Refusal, occupancy: &Occupancy) -> ApiError {
        let error = match refusal {
            Refusal::Client => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                self.client.0,
                format!(
                    "this client already holds {} {} ({}); {} or retry later",
                    occupancy.max_per_client, self.what, self.client.1, self.advice
                ),
            ),
            Refusal::Total => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                self.total.0,
                format!(
                    "the server holds {} {} ({}); retry later",
                    occupancy.max_total, self.what, self.total.1
                ),
            ),
        };
        error.retry_after(RETRY_AFTER_SECONDS)
    }
}

impl Occupancy {
    /// Takes a slot of `limit` for `client`, or counts the refusal in `metrics` and
    /// answers it.
    pub fn hold(
        self: &Arc<Self>,
        limit: &Limit,
        client: IpAddr,
        metrics: &Metrics,
    ) -> Result<Held, ApiError> {
        self.try_hold(client).map_err(|refusal| {
            metrics.refused(limit.label, refusal.scope());
            limit.refused(refusal, self)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
    }

    #[test]
    fn a_client_gets_its_share_and_no_more() {
        let slots = Occupancy::new(10, 2);
        let first = slots.try_hold(client(1)).unwrap();
        let _second = slots.try_hold(client(1)).unwrap();
        assert_eq!(slots.try_hold(client(1)).err(), Some(Refusal::Client));
        // Another client is not affected by the first one's share.
        let _other = slots.try_hold(client(2)).unwrap();
        drop(first);
        assert!(slots.try_hold(client(1)).is_ok());
    }

    #[test]
    fn the_total_caps_all_clients_together() {
        let slots = Occupancy::new(3, 2);
        let held: Vec<Held> = (1..=3)
            .map(|i| slots.try_hold(client(i)).unwrap())
            .collect();
        assert_eq!(slots.try_hold(client(4)).err(), Some(Refusal::Total));
        assert_eq!(slots.total(), 3);
        drop(held);
        assert_eq!(slots.total(), 0);
        assert!(slots.try_hold(client(4)).is_ok());
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64_network() {
        let parse = |text: &str| text.parse::<IpAddr>().unwrap();
        let slots = Occupancy::new(10, 1);
        let _held = slots.try_hold(client_of(parse("2001:db8:1:2::1"))).unwrap();
        // Another address of the same /64 is the same client...
        let same = client_of(parse("2001:db8:1:2:ffff::9"));
        assert_eq!(slots.try_hold(same).err(), Some(Refusal::Client));
        // ...and the next /64 another one.
        assert!(slots.try_hold(client_of(parse("2001:db8:1:3::1"))).is_ok());
        // IPv4, mapped into IPv6 or not, is counted by its own address.
        assert_eq!(client_of(parse("::ffff:127.0.0.2")), parse("127.0.0.2"));
        assert_eq!(client_of(parse("127.0.0.3")), parse("127.0.0.3"));
    }

    #[test]
    fn clients_that_left_leave_no_entry() {
        let slots = Occupancy::new(100, 100);
        for i in 0..50 {
            drop(slots.try_hold(client(i)).unwrap());
        }
        let refused = Occupancy::new(1, 1);
        let _held = refused.try_hold(client(1)).unwrap();
        assert!(refused.try_hold(client(2)).is_err());
        assert_eq!(slots.clients(), 0);
        assert_eq!(refused.clients(), 1, "a refused client is not remembered");
    }
}
