//! Every endpoint any job has written into any source, from all ledgers: an instance a
//! source reports at such an endpoint is a copy coming back, never new data, even when
//! the source dropped the `switchboard.*` metadata that would say so.

use dashmap::DashMap;

use super::ledger::Spot;

/// (target source, service name, host, port).
type Written = (String, String, String, u16);

#[derive(Default)]
pub struct Echoes(DashMap<Written, usize>);

impl Echoes {
    /// One more job wrote `spot` into `target`.
    pub fn add(&self, target: &str, spot: &Spot) {
        *self.0.entry(key(target, spot)).or_default() += 1;
    }

    /// One job no longer has `spot` in `target`.
    pub fn remove(&self, target: &str, spot: &Spot) {
        let key = key(target, spot);
        let gone = self.0.get_mut(&key).is_some_and(|mut count| {
            *count = count.saturating_sub(1);
            *count == 0
        });
        if gone {
            self.0.remove_if(&key, |_, count| *count == 0);
        }
    }

    pub fn contains(&self, source: &str, name: &str, host: &str, port: u16) -> bool {
        let key = (source.to_owned(), name.to_owned(), host.to_owned(), port);
        self.0.contains_key(&key)
    }
}

fn key(target: &str, spot: &Spot) -> Written {
    (
        target.to_owned(),
        spot.service.name.clone(),
        spot.host.clone(),
        spot.port,
    )
}
