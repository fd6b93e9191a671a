//! What the HTTP handlers, the timer task and the test's handle share: the store behind a
//! mutex (never held across `.await`), the signal that wakes parked blocking queries, and
//! the test hooks' switches (ACL token, failing mode, metadata stripping, request counters).
//!
//! Waking: every write bumps a `watch` generation, and parked queries re-check their own
//! index when it moves, so a write to one service wakes the others' watchers only long
//! enough to see that their index did not change. `interrupt` additionally bumps an epoch
//! that makes every parked query answer at once (snapshot restore, failing mode).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::{watch, Notify};

use crate::model::NodeInfo;
use crate::state::Store;

pub struct Shared {
    pub node: NodeInfo,
    store: Mutex<Store>,
    /// Bumped after every write; parked queries watch it.
    changes: watch::Sender<u64>,
    /// Wakes the timer task when a write may have moved the next deadline.
    pub timers: Notify,
    token: Mutex<Option<String>>,
    failing: AtomicBool,
    /// Registrations are stored without their `Meta`.
    strip_meta: AtomicBool,
    /// Bumped to make every parked query answer now.
    epoch: AtomicU64,
    requests: AtomicU64,
    /// Requests received per path, for `requests_to`.
    paths: Mutex<HashMap<String, u64>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not take the double down with it.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub fn new(node: NodeInfo, token: Option<String>, strip_meta: bool) -> Shared {
        Shared {
            node,
            store: Mutex::new(Store::new()),
            changes: watch::channel(0).0,
            timers: Notify::new(),
            token: Mutex::new(token),
            failing: AtomicBool::new(false),
            strip_meta: AtomicBool::new(strip_meta),
            epoch: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            paths: Mutex::new(HashMap::new()),
        }
    }

    pub fn read<R>(&self, query: impl FnOnce(&Store) -> R) -> R {
        query(&lock(&self.store))
    }

    /// Runs a write, then wakes parked queries and the timer task.
    pub fn write<R>(&self, change: impl FnOnce(&mut Store) -> R) -> R {
        let result = change(&mut lock(&self.store));
        self.changes.send_modify(|generation| *generation += 1);
        self.timers.notify_one();
        result
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Makes every parked blocking query answer now.
    pub fn interrupt(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.changes.send_modify(|generation| *generation += 1);
    }

    pub fn token(&self) -> Option<String> {
        lock(&self.token).clone()
    }

    pub fn set_token(&self, token: Option<String>) {
        *lock(&self.token) = token;
    }

    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::SeqCst)
    }

    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
        if failing {
            self.interrupt();
        }
    }

    pub fn strips_meta(&self) -> bool {
        self.strip_meta.load(Ordering::SeqCst)
    }

    pub fn set_strip_meta(&self, strip: bool) {
        self.strip_meta.store(strip, Ordering::SeqCst);
    }

    /// Counts a request on arrival.
    pub fn count(&self, path: &str) {
        self.requests.fetch_add(1, Ordering::SeqCst);
        *lock(&self.paths).entry(path.to_owned()).or_default() += 1;
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    pub fn requests_to(&self, prefix: &str) -> u64 {
        lock(&self.paths)
            .iter()
            .filter(|(path, _)| path.starts_with(prefix))
            .map(|(_, count)| count)
            .sum()
    }
}
