//! One blocking-query loop on one Consul endpoint, by Consul's client rules: block on the
//! last index; start over from 0 when the index goes backwards (a snapshot restore);
//! never block on an index of 0 once running; and spend a token from a bucket per
//! request, so a result whose index churns cannot turn the loop into a busy loop.

use std::time::Duration;

use reqwest::Url;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use super::http::Http;
use crate::ConnectorError;

/// Requests a loop may make at once after being idle.
const BURST: f64 = 50.0;
/// Requests per second a loop may sustain.
const RATE: f64 = 50.0;

/// A blocking query that remembers its index.
pub(super) struct BlockingQuery {
    http: Http,
    url: Url,
    index: u64,
    bucket: TokenBucket,
}

impl BlockingQuery {
    /// Continues from `index` (what the previous answer to `url` said; 0 to answer at once).
    pub fn new(http: Http, url: Url, index: u64) -> BlockingQuery {
        BlockingQuery {
            http,
            url,
            index,
            bucket: TokenBucket::new(RATE, BURST),
        }
    }

    /// The next answer: at once when the index was reset, else after the result changes
    /// or the wait ends. An answer does not mean anything changed.
    pub async fn next<T: DeserializeOwned>(&mut self) -> Result<T, ConnectorError> {
        self.bucket.take().await;
        let answer = self.http.get::<T>(&self.url, self.index).await?;
        self.index = next_index(self.index, answer.index);
        Ok(answer.body)
    }
}

/// The index to block on next, given the one blocked on and the one returned.
pub(super) fn next_index(previous: u64, returned: u64) -> u64 {
    if returned < previous {
        // The server's index went backwards: start over with an immediate read.
        0
    } else {
        // An index of 0 would answer at once, forever.
        returned.max(1)
    }
}

/// A token bucket: `burst` tokens, refilled at `rate` per second.
struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    fn new(rate: f64, burst: f64) -> TokenBucket {
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            updated: Instant::now(),
        }
    }

    /// Takes a token, waiting for one when the bucket is empty.
    async fn take(&mut self) {
        let now = Instant::now();
        let refill = now.duration_since(self.updated).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.updated = now;
        if self.tokens < 1.0 {
            let missing = 1.0 - self.tokens;
            tokio::time::sleep(Duration::from_secs_f64(missing / self.rate)).await;
            self.tokens = 1.0;
            self.updated = Instant::now();
        }
        self.tokens -= 1.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_rules() {
        assert_eq!(next_index(0, 0), 1, "an index of 0 is treated as 1");
        assert_eq!(next_index(0, 17), 17);
        assert_eq!(next_index(17, 17), 17, "no change: block on the same index");
        assert_eq!(next_index(17, 30), 30);
        assert_eq!(next_index(30, 12), 0, "backwards: start over");
    }

    #[tokio::test(start_paused = true)]
    async fn the_bucket_allows_a_burst_then_the_rate() {
        let mut bucket = TokenBucket::new(10.0, 5.0);
        let started = Instant::now();
        for _ in 0..5 {
            bucket.take().await;
        }
        assert_eq!(started.elapsed(), Duration::ZERO, "the burst is free");
        for _ in 0..10 {
            bucket.take().await;
        }
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(990) && elapsed <= Duration::from_millis(1010),
            "10 more at 10/s take a second: {elapsed:?}"
        );
    }
}
