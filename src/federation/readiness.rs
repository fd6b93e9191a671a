//! Readiness: `/readyz` waits until every source connected at start has delivered its
//! first full view or failed its first connection attempt.

use std::collections::HashSet;
use std::sync::Mutex;

/// Sources that have not yet settled (first full view, or first failure).
#[derive(Default)]
pub struct Readiness {
    pending: Mutex<HashSet<String>>,
}

impl Readiness {
    /// Readiness waits for `source` too (a source connected at start).
    pub(crate) fn wait_for(&self, source: &str) {
        self.lock().insert(source.to_owned());
    }

    /// Marks a source settled; later calls are no-ops.
    pub fn settle(&self, source: &str) {
        self.lock().remove(source);
    }

    pub fn is_ready(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
