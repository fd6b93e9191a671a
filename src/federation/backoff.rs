//! Exponential backoff with jitter between reconnection attempts.

use std::time::Duration;

use rand::Rng;

/// Doubles from `base` up to `max`; each delay is drawn from [delay/2, delay] so that many
/// sources failing together do not reconnect in lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Backoff {
        Backoff {
            base,
            max,
            attempt: 0,
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let low = ceiling / 2;
        low + rand::thread_rng().gen_range(Duration::ZERO..=ceiling - low)
    }

    /// Back to `base`, after a connection stayed healthy long enough.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_with_jitter_and_resets() {
        let (base, max) = (Duration::from_millis(200), Duration::from_secs(30));
        let mut backoff = Backoff::new(base, max);
        let first = backoff.next_delay();
        assert!(first >= base / 2 && first <= base, "{first:?}");
        for _ in 0..30 {
            let delay = backoff.next_delay();
            assert!(delay <= max, "{delay:?}");
        }
        let late = backoff.next_delay();
        assert!(late >= max / 2, "capped delays stay near the cap: {late:?}");
        backoff.reset();
        assert!(backoff.next_delay() <= base);
    }
}
